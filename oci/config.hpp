// The OCI runtime-spec data model (config.json), parsed and validated once. Errors name the JSON path:
// "config.json: process.args: must be a non-empty array of strings".
// Subtrees owned by other folders (linux.resources → cgroups, linux.seccomp / capabilities / personality /
// ioPriority / scheduler → security) are kept as JSON here and validated by their owners.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace trustme::oci {

struct User {
    uint32_t uid = 0, gid = 0;
    std::optional<uint32_t> umask;
    std::vector<uint32_t> additional_gids;
};

struct Rlimit {
    int resource = 0;
    std::string type;
    uint64_t soft = 0, hard = 0;
};

struct Process {
    bool terminal = false;
    unsigned console_height = 0, console_width = 0;
    User user;
    std::vector<std::string> args;
    std::vector<std::string> env;
    std::string cwd = "/";
    nlohmann::json capabilities;  // null when absent
    std::vector<Rlimit> rlimits;
    bool no_new_privileges = false;
    std::string apparmor_profile;
    std::optional<int> oom_score_adj;
    std::string selinux_label;
    nlohmann::json io_priority;  // null when absent
    nlohmann::json scheduler;    // null when absent
};

struct IdMapping {
    uint32_t container_id = 0, host_id = 0, size = 0;
    bool operator==(const IdMapping&) const = default;
};

struct Mount {
    std::string destination, type, source;
    std::vector<std::string> options;
    // Derived from options (mount(2) flags), runc's option table.
    unsigned long flags = 0;                           // flags set
    unsigned long propagation = 0;                     // MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (| MS_REC)
    unsigned long rec_attr_set = 0, rec_attr_clr = 0;  // MOUNT_ATTR_* for "r" options (rro, rnosuid...)
    bool bind = false;
    std::string data;      // options the kernel takes as data ("mode=755,size=65536k")
    int detached_fd = -1;  // runtime-made mounts (volumes, idmapped binds): a detached mount the child only attaches
    // Idmapped bind mounts (runtime-spec 1.2 mount uidMappings/gidMappings and the idmap/ridmap options):
    // the mappings to apply (the container's own when the options name none), and whether the mapping
    // covers the submounts of an rbind too (ridmap).
    std::vector<IdMapping> uid_mappings, gid_mappings;
    enum class Idmap { None, Top, Recursive } idmap = Idmap::None;
};

struct Hook {
    std::string path;
    std::vector<std::string> args, env;
    bool has_env = false;  // "env" given (even empty); without it the hook inherits the runtime's environment
    std::optional<int> timeout;
};

struct Hooks {
    std::vector<Hook> prestart, create_runtime, create_container, start_container, poststart, poststop;
    bool empty() const {
        return prestart.empty() && create_runtime.empty() && create_container.empty() && start_container.empty() &&
               poststart.empty() && poststop.empty();
    }
};

struct Namespace {
    int flag = 0;  // CLONE_NEW*
    std::string type;
    std::string path;
};

struct Device {
    char type = 'c';  // c, u, b, p
    std::string path;
    int64_t major = 0, minor = 0;
    uint32_t file_mode = 0666;
    uint32_t uid = 0, gid = 0;
};

struct Linux {
    std::vector<Namespace> namespaces;
    std::vector<IdMapping> uid_mappings, gid_mappings;
    std::vector<Device> devices;
    std::string cgroups_path;
    nlohmann::json resources = nlohmann::json::object();
    std::string rootfs_propagation;
    std::vector<std::string> masked_paths, readonly_paths;
    std::string mount_label;
    std::vector<std::pair<std::string, std::string>> sysctl;
    nlohmann::json seccomp;                                            // null when absent
    nlohmann::json personality;                                        // null when absent
    std::map<std::string, std::pair<int64_t, uint32_t>> time_offsets;  // "monotonic"/"boottime" → secs, nanosecs

    const Namespace* find(int flag) const {
        for (auto& n : namespaces)
            if (n.flag == flag) return &n;
        return nullptr;
    }
};

struct Config {
    std::string oci_version;
    std::string root_path;
    bool root_readonly = false;
    std::optional<Process> process;
    std::string hostname, domainname;
    std::vector<Mount> mounts;
    Hooks hooks;
    std::map<std::string, std::string> annotations;
    Linux linux_;
    nlohmann::json raw;  // the whole document, for subtrees owned elsewhere
};

// Parse and validate; `origin` prefixes every error ("config.json").
Config parse_config(std::string_view text, const std::string& origin = "config.json");
Process parse_process(const nlohmann::json& j, const std::string& origin, const std::string& path = "process");
Hook parse_hook(const nlohmann::json& j, const std::string& origin, const std::string& path);
Mount parse_mount_options(Mount m, const std::string& where);
// Container ids, runc's rule (libcontainer validateID): non-empty, only A-Z a-z 0-9 _ + - ., and not "."
// or ".." (ids that cannot name a file). Every command checks it before an id becomes part of a path.
bool valid_id(std::string_view id);
// The error for an id that fails valid_id: one line naming the id and the rule.
[[noreturn]] void invalid_id(std::string_view id);

// Bounds on every JSON document the runtime reads (config.json, process.json, `update --resources`,
// state.json): a size cap applied while reading, and a nesting depth checked by one linear scan before
// the parser runs, so nothing that walks the tree recursively afterwards (copy, dump, merge_patch,
// comparison) can exhaust the stack on input written by someone else.
inline constexpr size_t kMaxConfigBytes = 16u << 20;           // config.json, process.json
inline constexpr size_t kMaxResourcesBytes = 1u << 20;         // update --resources
inline constexpr size_t kMaxStateBytes = 32u << 20;            // state.json holds the config
inline constexpr unsigned kMaxJsonDepth = 64;                  // config.json, process.json
inline constexpr unsigned kMaxResourcesDepth = 16;             // merged into config.linux.resources by update
inline constexpr unsigned kMaxStateDepth = kMaxJsonDepth + 4;  // state.json nests the config one level down
// Parse `text` as JSON within max_depth; errors are one line starting with `origin` ("malformed JSON: ...",
// "nested deeper than N levels").
nlohmann::json parse_json(std::string_view text, const std::string& origin, unsigned max_depth = kMaxJsonDepth);

// Namespace type name ↔ CLONE_NEW* flag.
int namespace_flag(std::string_view type);
const char* namespace_proc_name(int flag);  // "net", "mnt", ...

// The spec version this runtime implements (features.json, state.json).
inline constexpr const char* kOciVersion = "1.2.0";

}  // namespace trustme::oci
