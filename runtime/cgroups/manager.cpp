// Mode detection and the choice of manager.
#include <linux/magic.h>
#include <sys/statfs.h>

#include "base/error.hpp"
#include "runtime/cgroups/internal.hpp"

namespace trustme::cgroups {

Mode detect() {
    // The kernel's own test (and runc's IsCgroup2UnifiedMode): /sys/fs/cgroup is a cgroup2 mount.
    struct statfs st;
    if (::statfs(detail::kCgroupRoot, &st) < 0) fail_errno(std::string("cgroups: statfs ") + detail::kCgroupRoot);
    return st.f_type == CGROUP2_SUPER_MAGIC ? Mode::Unified : Mode::Legacy;
}

Manager::~Manager() = default;

std::unique_ptr<Manager> Manager::create(const std::string& cgroups_path, const std::string& container_id,
                                         const CreateOptions& opts) {
    if (opts.systemd) return detail::make_systemd(cgroups_path, container_id, opts.annotations, opts.user);
    // runc (fs/fs2 drivers, specconv.CreateCgroupConfig): the path is CleanPath'ed; absolute paths are
    // below the hierarchy root; relative ones below the runtime's own cgroup (v1, per hierarchy) or
    // its parent (v2, because the own cgroup has processes and cannot enable controllers). With no
    // cgroupsPath runc uses the relative name <id>; this runtime uses "/trustme-<id>", so containers
    // land in one place whatever cgroup the caller runs in, and no shared parent is left behind or
    // raced over (an rmdir of a shared "/trustme" parent at delete could break a concurrent create).
    std::string inner = detail::clean_path(cgroups_path);
    if (inner.empty()) {
        if (container_id.empty() || container_id.find('/') != std::string::npos || container_id == "." ||
            container_id == "..")
            fail("cgroups: invalid container id \"" + container_id + "\"");
        inner = "/trustme-" + container_id;
    }
    if (inner == "/") fail("linux.cgroupsPath: \"" + cgroups_path + "\" names the root cgroup");
    bool absolute = inner[0] == '/';
    if (detect() == Mode::Unified) return detail::make_unified(inner, absolute);
    return detail::make_legacy(inner, absolute);
}

std::unique_ptr<Manager> Manager::load(const nlohmann::json& saved) {
    if (saved_is_systemd(saved)) return detail::load_systemd(saved);
    if (!saved.is_object() || !saved.contains("mode")) fail("cgroups: saved state has no \"mode\"");
    std::string mode = saved.at("mode").get<std::string>();
    if (mode == "legacy") return detail::load_legacy(saved);
    if (mode == "unified") return detail::load_unified(saved);
    if (mode == "none") return none();
    fail("cgroups: saved state has unknown mode \"" + mode + "\"");
}

}  // namespace trustme::cgroups
