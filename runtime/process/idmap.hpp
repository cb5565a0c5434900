// Idmapped bind mounts (runtime-spec 1.2: mount uidMappings/gidMappings, options idmap/ridmap).
//
// Made by the runtime in its own namespaces, before the container init exists: MOUNT_ATTR_IDMAP needs
// privilege over the user namespace of the source's filesystem (the host's), which the init, inside the
// container's user namespace, does not have. The init only attaches the detached result (as it does with
// volumes), the way runc 1.2 opens idmapped sources in its parent.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "oci/config.hpp"
#include "base/fd.hpp"

namespace trustme::process::rootfs {

// Write `maps` ("containerID hostID size" lines) to /proc/<pid>/<file> (uid_map or gid_map), through the
// runtime's procfs handle.
void write_id_map(pid_t pid, const char* file, const std::vector<oci::IdMapping>& maps);

// A user namespace whose uid_map/gid_map are exactly `uids`/`gids` ("containerID hostID size" lines: an
// id k on disk shows as the id it maps to), held by the returned fd.
UniqueFd make_userns(const std::vector<oci::IdMapping>& uids, const std::vector<oci::IdMapping>& gids);

// For every mount of cfg with an idmap: a detached, private clone of its source (relative sources from
// `bundle`) with the mapping and the mount's flags applied, stored in m.detached_fd and owned by `held`.
void prepare_idmapped_mounts(oci::Config& cfg, const std::string& bundle, std::vector<UniqueFd>& held);

}  // namespace trustme::process::rootfs
