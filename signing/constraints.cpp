#include "signing/constraints.hpp"

#include <algorithm>
#include <array>
#include <set>
#include <string_view>

#include "base/error.hpp"

namespace trustme::signing::policy {
namespace {

// Linux capability names up to CAP_CHECKPOINT_RESTORE (40, Linux 5.9; include/uapi/linux/capability.h).
constexpr std::array<std::string_view, 41> kAllCaps = {"CAP_CHOWN",
                                                       "CAP_DAC_OVERRIDE",
                                                       "CAP_DAC_READ_SEARCH",
                                                       "CAP_FOWNER",
                                                       "CAP_FSETID",
                                                       "CAP_KILL",
                                                       "CAP_SETGID",
                                                       "CAP_SETUID",
                                                       "CAP_SETPCAP",
                                                       "CAP_LINUX_IMMUTABLE",
                                                       "CAP_NET_BIND_SERVICE",
                                                       "CAP_NET_BROADCAST",
                                                       "CAP_NET_ADMIN",
                                                       "CAP_NET_RAW",
                                                       "CAP_IPC_LOCK",
                                                       "CAP_IPC_OWNER",
                                                       "CAP_SYS_MODULE",
                                                       "CAP_SYS_RAWIO",
                                                       "CAP_SYS_CHROOT",
                                                       "CAP_SYS_PTRACE",
                                                       "CAP_SYS_PACCT",
                                                       "CAP_SYS_ADMIN",
                                                       "CAP_SYS_BOOT",
                                                       "CAP_SYS_NICE",
                                                       "CAP_SYS_RESOURCE",
                                                       "CAP_SYS_TIME",
                                                       "CAP_SYS_TTY_CONFIG",
                                                       "CAP_MKNOD",
                                                       "CAP_LEASE",
                                                       "CAP_AUDIT_WRITE",
                                                       "CAP_AUDIT_CONTROL",
                                                       "CAP_SETFCAP",
                                                       "CAP_MAC_OVERRIDE",
                                                       "CAP_MAC_ADMIN",
                                                       "CAP_SYSLOG",
                                                       "CAP_WAKE_ALARM",
                                                       "CAP_BLOCK_SUSPEND",
                                                       "CAP_AUDIT_READ",
                                                       "CAP_PERFMON",
                                                       "CAP_BPF",
                                                       "CAP_CHECKPOINT_RESTORE"};

// The default set of Docker/containerd/podman (moby oci/caps/defaults.go, containerd oci/spec.go
// defaultUnixCaps): what an engine grants when the user asked for nothing more.
const std::set<std::string> kDefaultCaps = {"CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
                                            "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
                                            "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
                                            "CAP_KILL",    "CAP_AUDIT_WRITE"};

// OCI runtime-spec config-linux.md "Namespaces": the types a config may list.
const std::set<std::string> kNamespaceTypes = {"pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"};
// Sharing any of these with the host is what --pid=host / --net=host / --ipc=host / --uts=host do.
constexpr std::array<std::string_view, 5> kIsolatedByDefault = {"pid", "network", "ipc", "uts", "mount"};

const std::set<std::string> kBoolFields = {"allow_privileged_devices", "allow_hooks", "require_no_new_privileges",
                                           "require_readonly_rootfs", "require_seccomp"};

[[noreturn]] void bad(const std::string& origin, const std::string& field, const std::string& why) {
    fail(origin + ": constraints." + field + ": " + why);
}

bool get_bool(const nlohmann::json& c, const char* k, bool dflt) {
    auto it = c.find(k);
    return it == c.end() ? dflt : it->get<bool>();
}

std::set<std::string> allowed_caps(const nlohmann::json& c) {
    auto it = c.find("allowed_capabilities");
    if (it == c.end()) return kDefaultCaps;
    return std::set<std::string>(it->begin(), it->end());
}

// Character devices a default container gets (runtime-spec config-linux.md "Default Devices" plus the
// pty master/slaves and /dev/console): harmless to grant read/write on.
bool benign_char_device(int64_t major, int64_t minor) {
    if (major == 1) return minor == 3 || minor == 5 || minor == 7 || minor == 8 || minor == 9;
    if (major == 5) return minor == 0 || minor == 1 || minor == 2;
    if (major == 136) return true;                         // /dev/pts/*
    if (major == 10) return minor == 200 || minor == 229;  // /dev/net/tun, /dev/fuse: containerd/podman defaults
    return false;
}

bool under(const std::string& path, std::string prefix) {
    if (path.find("/../") != std::string::npos || path.ends_with("/..")) return false;
    while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
    if (prefix == "/") return !path.empty() && path[0] == '/';
    return path == prefix || (path.starts_with(prefix) && path[prefix.size()] == '/');
}

struct Judge {
    const nlohmann::json& c;
    const std::string& name;

    [[noreturn]] void refuse(const std::string& path, const std::string& why, const std::string& field) const {
        fail(name + ": " + path + ": " + why + " (policy constraints." + field + ")");
    }

    void capabilities(const nlohmann::json& cfg) const {
        auto proc = cfg.find("process");
        if (proc == cfg.end() || !proc->is_object()) return;
        auto caps = proc->find("capabilities");
        if (caps == proc->end() || !caps->is_object()) return;
        auto allowed = allowed_caps(c);
        for (const char* set : {"bounding", "effective", "permitted", "inheritable", "ambient"}) {
            auto s = caps->find(set);
            if (s == caps->end() || !s->is_array()) continue;
            for (size_t i = 0; i < s->size(); ++i) {
                const auto& v = (*s)[i];
                std::string cap = v.is_string() ? v.get<std::string>() : v.dump();
                if (!allowed.count(cap))
                    refuse(std::string("process.capabilities.") + set + "[" + std::to_string(i) + "]",
                           cap + " is not allowed", "allowed_capabilities");
            }
        }
    }

    void namespaces(const nlohmann::json& cfg) const {
        std::set<std::string> shared_ok;
        if (auto a = c.find("allowed_host_namespaces"); a != c.end())
            for (auto& v : *a) shared_ok.insert(v.get<std::string>());
        std::set<std::string> own;
        auto lin = cfg.find("linux");
        if (lin != cfg.end() && lin->is_object()) {
            if (auto ns = lin->find("namespaces"); ns != lin->end() && ns->is_array()) {
                for (size_t i = 0; i < ns->size(); ++i) {
                    const auto& e = (*ns)[i];
                    if (!e.is_object() || !e.contains("type") || !e["type"].is_string()) continue;
                    std::string t = e["type"].get<std::string>();
                    // A namespace joined by path is not the container's own: it may be the host's
                    // (/proc/1/ns/net); we cannot tell whose, so it counts as shared.
                    if (e.contains("path") && !(e["path"].is_string() && e["path"].get<std::string>().empty())) {
                        if (!shared_ok.count(t))
                            refuse("linux.namespaces[" + std::to_string(i) + "]",
                                   "joins an existing " + t + " namespace", "allowed_host_namespaces");
                    } else {
                        own.insert(t);
                    }
                }
            }
        }
        for (auto t : kIsolatedByDefault) {
            std::string ts(t);
            if (!own.count(ts) && !shared_ok.count(ts))
                refuse("linux.namespaces", "no new " + ts + " namespace: it would be shared with the host",
                       "allowed_host_namespaces");
        }
    }

    void devices(const nlohmann::json& cfg) const {
        if (get_bool(c, "allow_privileged_devices", false)) return;
        auto lin = cfg.find("linux");
        if (lin == cfg.end() || !lin->is_object()) return;
        if (auto d = lin->find("devices"); d != lin->end() && d->is_array()) {
            for (size_t i = 0; i < d->size(); ++i) {
                const auto& e = (*d)[i];
                std::string type = e.value("type", "");
                int64_t maj = e.value("major", int64_t(-1)), min = e.value("minor", int64_t(-1));
                if (!(type == "c" || type == "u") || !benign_char_device(maj, min))
                    refuse("linux.devices[" + std::to_string(i) + "]",
                           "device " + e.value("path", std::string("?")) + " (" + type + " " + std::to_string(maj) +
                               ":" + std::to_string(min) + ") is privileged",
                           "allow_privileged_devices");
            }
        }
        auto res = lin->find("resources");
        if (res == lin->end() || !res->is_object()) return;
        auto rules = res->find("devices");
        if (rules == res->end() || !rules->is_array()) return;
        for (size_t i = 0; i < rules->size(); ++i) {
            const auto& r = (*rules)[i];
            if (!r.is_object() || !r.value("allow", false)) continue;
            std::string access = r.value("access", std::string("rwm"));
            // mknod alone ("m") grants nothing: a node is useless without read or write access to it.
            if (access.find_first_of("rw") == std::string::npos) continue;
            std::string type = r.value("type", std::string("a"));
            bool has_major = r.contains("major") && r["major"].is_number_integer();
            bool has_minor = r.contains("minor") && r["minor"].is_number_integer();
            int64_t maj = has_major ? r["major"].get<int64_t>() : -1;
            int64_t min = has_minor ? r["minor"].get<int64_t>() : -1;
            bool ok = (type == "c") && has_major &&
                      ((has_minor && benign_char_device(maj, min)) || (!has_minor && maj == 136));
            if (!ok)
                refuse("linux.resources.devices[" + std::to_string(i) + "]",
                       "allows " + access + " on " + type + " " + (has_major ? std::to_string(maj) : "*") + ":" +
                           (has_minor ? std::to_string(min) : "*"),
                       "allow_privileged_devices");
        }
    }

    void hooks(const nlohmann::json& cfg) const {
        if (get_bool(c, "allow_hooks", false)) return;
        // Hooks other than startContainer run on the host with the runtime's privileges.
        auto h = cfg.find("hooks");
        if (h == cfg.end() || !h->is_object()) return;
        for (auto it = h->begin(); it != h->end(); ++it)
            if (it->is_array() && !it->empty()) refuse("hooks." + it.key(), "hooks are not allowed", "allow_hooks");
    }

    void binds(const nlohmann::json& cfg) const {
        auto a = c.find("allowed_bind_sources");
        if (a == c.end()) return;
        auto m = cfg.find("mounts");
        if (m == cfg.end() || !m->is_array()) return;
        for (size_t i = 0; i < m->size(); ++i) {
            const auto& e = (*m)[i];
            if (!e.is_object()) continue;
            bool bind = e.value("type", std::string()) == "bind";
            if (auto o = e.find("options"); o != e.end() && o->is_array())
                for (auto& opt : *o)
                    if (opt == "bind" || opt == "rbind") bind = true;
            if (!bind) continue;
            std::string src = e.value("source", std::string());
            bool ok = false;
            for (auto& p : *a) ok = ok || under(src, p.get<std::string>());
            if (!ok)
                refuse("mounts[" + std::to_string(i) + "].source", "bind mount of " + src + " is not allowed",
                       "allowed_bind_sources");
        }
    }

    void requirements(const nlohmann::json& cfg) const {
        if (get_bool(c, "require_no_new_privileges", false)) {
            bool nnp =
                cfg.contains("process") && cfg["process"].is_object() && cfg["process"].value("noNewPrivileges", false);
            if (!nnp) refuse("process.noNewPrivileges", "must be true", "require_no_new_privileges");
        }
        if (get_bool(c, "require_readonly_rootfs", false)) {
            bool ro = cfg.contains("root") && cfg["root"].is_object() && cfg["root"].value("readonly", false);
            if (!ro) refuse("root.readonly", "must be true", "require_readonly_rootfs");
        }
        if (get_bool(c, "require_seccomp", false)) {
            bool sc = cfg.contains("linux") && cfg["linux"].is_object() && cfg["linux"].contains("seccomp") &&
                      cfg["linux"]["seccomp"].is_object();
            if (!sc) refuse("linux.seccomp", "a seccomp profile is required", "require_seccomp");
        }
    }
};

}  // namespace

void validate_constraints(const nlohmann::json& c, const std::string& origin) {
    for (auto it = c.begin(); it != c.end(); ++it) {
        const std::string& k = it.key();
        const auto& v = it.value();
        if (kBoolFields.count(k)) {
            if (!v.is_boolean()) bad(origin, k, "must be true or false");
        } else if (k == "allowed_capabilities") {
            if (!v.is_array()) bad(origin, k, "must be an array of capability names");
            for (size_t i = 0; i < v.size(); ++i) {
                if (!v[i].is_string() ||
                    std::find(kAllCaps.begin(), kAllCaps.end(), v[i].get<std::string>()) == kAllCaps.end())
                    bad(origin, k + "[" + std::to_string(i) + "]",
                        "not a capability name (CAP_CHOWN ... CAP_CHECKPOINT_RESTORE)");
            }
        } else if (k == "allowed_host_namespaces") {
            if (!v.is_array()) bad(origin, k, "must be an array of namespace types");
            for (size_t i = 0; i < v.size(); ++i)
                if (!v[i].is_string() || !kNamespaceTypes.count(v[i].get<std::string>()))
                    bad(origin, k + "[" + std::to_string(i) + "]",
                        "not a namespace type (pid network mount ipc uts user cgroup time)");
        } else if (k == "allowed_bind_sources") {
            if (!v.is_array()) bad(origin, k, "must be an array of absolute paths");
            for (size_t i = 0; i < v.size(); ++i)
                if (!v[i].is_string() || v[i].get<std::string>().empty() || v[i].get<std::string>()[0] != '/' ||
                    v[i].get<std::string>().find("..") != std::string::npos)
                    bad(origin, k + "[" + std::to_string(i) + "]", "must be an absolute path without ..");
        } else if (k == "comment" || (!k.empty() && k[0] == '_')) {
        } else {
            bad(origin, k, "unknown field");
        }
    }
}

void judge_config(const nlohmann::json& c, const nlohmann::json& config, const std::string& name) {
    if (!config.is_object()) fail(name + ": not a JSON object");
    Judge j{c, name};
    try {
        j.capabilities(config);
        j.namespaces(config);
        j.devices(config);
        j.hooks(config);
        j.binds(config);
        j.requirements(config);
    } catch (const nlohmann::json::exception& e) {
        // A field of the wrong type (the OCI validator normally refuses it first): refuse, never crash.
        fail(name + ": malformed config (" + e.what() + ")");
    }
}

}  // namespace trustme::signing::policy
