// Config rules that keep the host's kernel settings and /proc out of a container's reach, checked at
// create before anything is made (one-line errors naming the field).
#pragma once
#include <string>

#include "oci/config.hpp"

namespace trustme::process::checks {

// linux.sysctl: each key must live in a namespace the container has of its own (runc's rules):
// ipc sysctls (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*) need an ipc namespace, net.* a
// network namespace that is not the runtime's, kernel.domainname and kernel.hostname a uts namespace;
// anything else is global to the host and refused.
void sysctls(const oci::Config& cfg);

// The file under /proc/sys a validated key names ("net.ipv4.ip_forward" → "sys/net/ipv4/ip_forward";
// '/' separators as sysctl.d(5) allows: "net/ipv4/conf/eth0.100/rp_filter").
std::string sysctl_path(const std::string& key);

// mounts[].destination inside /proc: refused, except /proc itself for a procfs (or a bind of one) and
// the few files runc allows for lxcfs.
void proc_mounts(const oci::Config& cfg);

// At mount time, for a destination that resolved onto a procfs (through a symlink in the image, say):
// true only for the destinations proc_mounts() lets through by name.
bool proc_destination_allowed(const std::string& destination);

}  // namespace trustme::process::checks
