#include "runtime/process/checks.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/procfs.hpp"

namespace trustme::process::checks {
namespace {

// sysctl.d(5): a key whose first separator is '/' uses '/' between components and '.' inside them.
std::string dotted(const std::string& key) {
    auto first = key.find_first_of("./");
    if (first == std::string::npos || key[first] == '.') return key;
    std::string s = key;
    for (char& c : s) c = c == '.' ? '/' : c == '/' ? '.' : c;
    return s;
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// runc's isHostNetNS: "host" is the runtime's current network namespace.
bool is_own_netns(const std::string& path) {
    struct stat a, b;
    UniqueFd self(procfs::open_link("self/ns/net", O_RDONLY));
    if (!self || ::fstat(self.get(), &a) < 0) fail_errno("/proc/self/ns/net");
    if (::stat(path.c_str(), &b) < 0) fail_errno("linux.namespaces network path " + path);
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// Lexically clean an absolute path ("//", ".", ".." collapsed; ".." at the top stays at "/").
std::string clean(const std::string& p) {
    std::string out;
    size_t i = 0;
    while (i < p.size()) {
        size_t j = p.find('/', i);
        if (j == std::string::npos) j = p.size();
        std::string c = p.substr(i, j - i);
        i = j + 1;
        if (c.empty() || c == ".") continue;
        if (c == "..") {
            auto k = out.rfind('/');
            out.erase(k == std::string::npos ? 0 : k);
            continue;
        }
        out += "/" + c;
    }
    return out.empty() ? "/" : out;
}

}  // namespace

std::string sysctl_path(const std::string& key) {
    std::string p = "sys/" + dotted(key);
    for (size_t i = 4; i < p.size(); ++i) p[i] = p[i] == '.' ? '/' : p[i] == '/' ? '.' : p[i];
    return p;
}

// Source: runc libcontainer/configs/validate/validator.go, sysctl().
void sysctls(const oci::Config& cfg) {
    static const char* const kIpc[] = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                                       "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"};
    int own_net = -1;  // unknown until a net.* key asks
    for (auto& [key, value] : cfg.linux_.sysctl) {
        const std::string field = "linux.sysctl \"" + key + "\"";
        const std::string s = dotted(key);
        // Components are names: nothing empty, "." or ".." (the path is resolved beneath /proc/sys).
        for (size_t i = 0, j; i <= s.size(); i = j + 1) {
            j = s.find('.', i);
            if (j == std::string::npos) j = s.size();
            std::string c = s.substr(i, j - i);
            if (c.empty() || c == "/" || c == ".." || c.find("//") != std::string::npos || c.front() == '/' ||
                c.back() == '/')
                fail(field + ": invalid sysctl name");
        }
        bool ipc = starts_with(s, "fs.mqueue.");
        for (auto* k : kIpc) ipc |= s == k;
        if (ipc) {
            if (!cfg.linux_.find(CLONE_NEWIPC))
                fail(field + ": not allowed without an ipc namespace of the container's own");
            continue;
        }
        if (starts_with(s, "net.")) {
            if (own_net < 0) {
                const oci::Namespace* ns = cfg.linux_.find(CLONE_NEWNET);
                own_net = ns && (ns->path.empty() || !is_own_netns(ns->path));
            }
            if (!own_net) fail(field + ": not allowed in the host's network namespace");
            continue;
        }
        if (s == "kernel.domainname" || s == "kernel.hostname") {
            if (!cfg.linux_.find(CLONE_NEWUTS))
                fail(field + ": not allowed without a uts namespace of the container's own");
            continue;
        }
        fail(field + ": not in a namespace of the container's own (it would change the host)");
    }
}

// Source: runc libcontainer/rootfs_linux.go, checkProcMount() and its validProcMounts list (files
// that lxcfs emulates).
bool proc_destination_allowed(const std::string& destination) {
    static const char* const kAllowed[] = {"/proc",
                                           "/proc/cpuinfo",
                                           "/proc/diskstats",
                                           "/proc/meminfo",
                                           "/proc/stat",
                                           "/proc/swaps",
                                           "/proc/uptime",
                                           "/proc/loadavg",
                                           "/proc/slabinfo",
                                           "/proc/net/dev",
                                           "/proc/sys/kernel/ns_last_pid",
                                           "/proc/sys/crypto/fips_enabled"};
    const std::string d = clean(destination);
    for (auto* a : kAllowed)
        if (d == a) return true;
    return false;
}

void proc_mounts(const oci::Config& cfg) {
    for (size_t i = 0; i < cfg.mounts.size(); ++i) {
        const oci::Mount& m = cfg.mounts[i];
        const std::string d = clean(m.destination);
        const std::string field = "mounts[" + std::to_string(i) + "].destination " + m.destination;
        if (d == "/proc") {
            if (m.type == "proc" && !m.bind) continue;
            if (m.bind) {
                struct statfs sf;
                if (::statfs(m.source.c_str(), &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC) continue;
            }
            fail(field + ": only a procfs may be mounted on /proc");
        }
        if (d.rfind("/proc/", 0) != 0) continue;
        if (!proc_destination_allowed(d))
            fail(field + ": a mount inside /proc is refused (it could redirect the runtime's procfs writes)");
    }
}

}  // namespace trustme::process::checks
