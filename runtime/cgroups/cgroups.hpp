// Control groups: one interface, two managers (v1 "legacy" incl. hybrid hosts, v2 "unified").
//
// Call order on the create path (what runc does): create() → create_dirs() → apply(resources) →
// add_process(pid) → save() into state.json. Later commands: load(saved) → update / freeze / thaw /
// pids / stats / kill_all / destroy.
#pragma once
#include <sys/types.h>

#include <cstddef>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace trustme::cgroups {

enum class Mode { Legacy /*v1, incl. hybrid*/, Unified /*v2*/ };

// At run time, cheap: statfs("/sys/fs/cgroup") == CGROUP2_SUPER_MAGIC → Unified, else Legacy
// (a tmpfs with v1 hierarchies, possibly plus a cgroup2 at unified/: hybrid is treated as v1).
Mode detect();

// Validate linux.resources without side effects; errors name the JSON path
// ("linux.resources.memory.limit: ..."). apply()/update() call it too.
void validate(const nlohmann::json& resources);

// One OCI linux.resources.devices rule (also used for the defaults the runtime always allows).
struct DeviceRule {
    bool allow = false;
    char type = 'a';     // 'a', 'c', 'b'
    int64_t major = -1;  // -1 = wildcard '*'
    int64_t minor = -1;  // -1 = wildcard '*'
    std::string access;  // non-empty subset of "rwm" (runc rejects an empty access)
};

// The rules enforced for a config: "deny all", then the config's rules in order, then the default
// allowed devices runc appends (libcontainer/specconv AllowedDevices; list documented in devices.cpp).
std::vector<DeviceRule> device_rules(const nlohmann::json& resources);
// runc's default allowed devices alone.
const std::vector<DeviceRule>& default_allowed_devices();

// The systemd driver's D-Bus calls live in a plugin (libsystemd stays off the cgroupfs path): `load`
// returns its entry point, trustme_systemd_call of systemd_plugin.h. Set by the caller before a
// systemd manager starts, updates or stops a unit.
using SystemdCall = int (*)(const char* request, char* err, size_t errlen);
void set_systemd_loader(SystemdCall (*load)());
// What save() wrote came from the systemd driver (its commands need the plugin).
bool saved_is_systemd(const nlohmann::json& saved);
// The systemd driver's unit has been freed by systemd (its last process exited), now or within a short wait
// when its cgroup is empty already: stopping it needs no D-Bus call, so the command need not load the
// plugin. False when in doubt.
bool systemd_unit_gone(const nlohmann::json& saved);

struct CreateOptions {
    bool systemd = false;  // --systemd-cgroup: a transient systemd unit holds the container (systemd.hpp)
    const std::map<std::string, std::string>* annotations = nullptr;  // org.systemd.property.* for it
    bool user = false;  // rootless: the unit goes to the caller's own systemd instance (its user bus)
};

// The first limit that linux.resources sets ("memory.limit"), "" when it sets none (device rules aside).
std::string first_setting(const nlohmann::json& resources);

class Manager {
public:
    // cgroups_path: config's linux.cgroupsPath ("" → default "/trustme-<id>"); absolute or relative as
    // runc's fs/fs2 drivers treat them (relative: v1 below this process's own cgroup in each hierarchy,
    // v2 below the parent of this process's own cgroup). Nothing is touched on disk. With the systemd
    // driver it is "slice:prefix:name" and the unit is started by add_process (it needs the first pid).
    static std::unique_ptr<Manager> create(const std::string& cgroups_path, const std::string& container_id,
                                           const CreateOptions& opts = {});
    static std::unique_ptr<Manager> load(const nlohmann::json& saved);  // from state.json (what save() wrote)
    // No cgroup (rootless without delegation): nothing to create or remove; update/pause/resume refuse.
    static std::unique_ptr<Manager> none();
    virtual ~Manager();

    virtual Mode mode() const = 0;
    virtual nlohmann::json save() const = 0;                   // enough to find and remove everything later
    virtual void create_dirs() = 0;                            // mkdir in every hierarchy; on error remove what it made
    virtual void apply(const nlohmann::json& resources) = 0;   // write limits; error names file and value
    virtual void add_process(pid_t pid) = 0;                   // cgroup.procs in every hierarchy
    virtual void update(const nlohmann::json& resources) = 0;  // runc update
    virtual void freeze() = 0;
    virtual void thaw() = 0;
    virtual bool frozen() = 0;
    virtual std::vector<pid_t> pids() = 0;
    // runc `events --stats` "data" object shape (cpu, memory, pids, blkio, hugetlb).
    virtual nlohmann::json stats() = 0;
    virtual void kill_all(int sig) = 0;  // signal every process in the cgroup (freeze, signal, thaw)
    virtual void destroy() = 0;          // remove dirs (bounded retries); idempotent; works after a crash
    // The container's cgroup path as seen from the hierarchy root (e.g. "/trustme-<id>"), for the
    // cgroup namespace / mountinfo. On v1 with a relative cgroupsPath, the path in the memory hierarchy
    // (or the first one mounted).
    virtual std::string path_for_namespace() const = 0;
    // Absolute directory of the container's cgroup in a v1 controller's hierarchy ("memory", "cpu",
    // "name=systemd", ...) or, on v2, the one directory for any name. "" when not mounted.
    virtual std::string dir(const std::string& controller) const = 0;
};

}  // namespace trustme::cgroups
