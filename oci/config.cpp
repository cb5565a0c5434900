#include "oci/config.hpp"

#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include <cstring>

#include "base/error.hpp"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace trustme::oci {
namespace {
using nlohmann::json;

struct Ctx {
    const std::string& origin;
    [[noreturn]] void bad(const std::string& path, const std::string& why) const {
        fail(origin + ": " + path + ": " + why);
    }
};

const json* member(const json& obj, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

std::string str(const Ctx& c, const json& j, const std::string& path) {
    if (!j.is_string()) c.bad(path, "must be a string");
    return j.get<std::string>();
}

bool boolean(const Ctx& c, const json& j, const std::string& path) {
    if (!j.is_boolean()) c.bad(path, "must be a boolean");
    return j.get<bool>();
}

uint64_t u64(const Ctx& c, const json& j, const std::string& path) {
    if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<int64_t>() >= 0))
        c.bad(path, "must be a non-negative integer");
    return j.get<uint64_t>();
}

uint32_t u32(const Ctx& c, const json& j, const std::string& path) {
    uint64_t v = u64(c, j, path);
    if (v > UINT32_MAX) c.bad(path, "out of range");
    return static_cast<uint32_t>(v);
}

int64_t i64(const Ctx& c, const json& j, const std::string& path) {
    if (!j.is_number_integer()) c.bad(path, "must be an integer");
    return j.get<int64_t>();
}

const json& object(const Ctx& c, const json& j, const std::string& path) {
    if (!j.is_object()) c.bad(path, "must be an object");
    return j;
}

const json& array(const Ctx& c, const json& j, const std::string& path) {
    if (!j.is_array()) c.bad(path, "must be an array");
    return j;
}

std::vector<std::string> strings(const Ctx& c, const json& j, const std::string& path) {
    array(c, j, path);
    std::vector<std::string> out;
    out.reserve(j.size());
    for (size_t i = 0; i < j.size(); ++i) out.push_back(str(c, j[i], path + "[" + std::to_string(i) + "]"));
    return out;
}

std::string idx(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

struct RlimitName {
    const char* name;
    int resource;
};
constexpr RlimitName kRlimits[] = {
    {"RLIMIT_AS", RLIMIT_AS},           {"RLIMIT_CORE", RLIMIT_CORE},         {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA},       {"RLIMIT_FSIZE", RLIMIT_FSIZE},       {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE},   {"RLIMIT_NPROC", RLIMIT_NPROC},       {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},   {"RLIMIT_RTTIME", RLIMIT_RTTIME},     {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
};

// runc's mount option table (libcontainer/specconv): flag options, their clearing twins, propagation.
struct Opt {
    const char* name;
    bool clear;
    unsigned long flag;
};
constexpr Opt kFlagOpts[] = {
    {"async", true, MS_SYNCHRONOUS},
    {"atime", true, MS_NOATIME},
    {"bind", false, MS_BIND},
    {"defaults", false, 0},
    {"dev", true, MS_NODEV},
    {"diratime", true, MS_NODIRATIME},
    {"dirsync", false, MS_DIRSYNC},
    {"exec", true, MS_NOEXEC},
    {"iversion", false, MS_I_VERSION},
    {"lazytime", false, MS_LAZYTIME},
    {"loud", true, MS_SILENT},
    {"mand", false, MS_MANDLOCK},
    {"noatime", false, MS_NOATIME},
    {"nodev", false, MS_NODEV},
    {"nodiratime", false, MS_NODIRATIME},
    {"noexec", false, MS_NOEXEC},
    {"noiversion", true, MS_I_VERSION},
    {"nolazytime", true, MS_LAZYTIME},
    {"nomand", true, MS_MANDLOCK},
    {"norelatime", true, MS_RELATIME},
    {"nostrictatime", true, MS_STRICTATIME},
    {"nosuid", false, MS_NOSUID},
    {"rbind", false, MS_BIND | MS_REC},
    {"relatime", false, MS_RELATIME},
    {"remount", false, MS_REMOUNT},
    {"ro", false, MS_RDONLY},
    {"rw", true, MS_RDONLY},
    {"silent", false, MS_SILENT},
    {"strictatime", false, MS_STRICTATIME},
    {"suid", true, MS_NOSUID},
    {"sync", false, MS_SYNCHRONOUS},
};
constexpr Opt kPropagation[] = {
    {"private", false, MS_PRIVATE},       {"rprivate", false, MS_PRIVATE | MS_REC},
    {"shared", false, MS_SHARED},         {"rshared", false, MS_SHARED | MS_REC},
    {"slave", false, MS_SLAVE},           {"rslave", false, MS_SLAVE | MS_REC},
    {"unbindable", false, MS_UNBINDABLE}, {"runbindable", false, MS_UNBINDABLE | MS_REC},
};
// Recursive mount attributes (mount_setattr(2), AT_RECURSIVE), runc 1.1+ "rro", "rnosuid", ...
constexpr Opt kRecAttr[] = {
    {"rro", false, MOUNT_ATTR_RDONLY},
    {"rrw", true, MOUNT_ATTR_RDONLY},
    {"rnosuid", false, MOUNT_ATTR_NOSUID},
    {"rsuid", true, MOUNT_ATTR_NOSUID},
    {"rnodev", false, MOUNT_ATTR_NODEV},
    {"rdev", true, MOUNT_ATTR_NODEV},
    {"rnoexec", false, MOUNT_ATTR_NOEXEC},
    {"rexec", true, MOUNT_ATTR_NOEXEC},
    {"rnodiratime", false, MOUNT_ATTR_NODIRATIME},
    {"rdiratime", true, MOUNT_ATTR_NODIRATIME},
    {"rnoatime", false, MOUNT_ATTR_NOATIME},
    {"rstrictatime", false, MOUNT_ATTR_STRICTATIME},
    {"rrelatime", false, MOUNT_ATTR_RELATIME},
};

Hooks parse_hooks(const Ctx& c, const json& j) {
    object(c, j, "hooks");
    Hooks h;
    auto list = [&](const char* key, std::vector<Hook>& out) {
        if (auto* v = member(j, key)) {
            std::string p = std::string("hooks.") + key;
            array(c, *v, p);
            for (size_t i = 0; i < v->size(); ++i) out.push_back(parse_hook((*v)[i], c.origin, idx(p, i)));
        }
    };
    list("prestart", h.prestart);
    list("createRuntime", h.create_runtime);
    list("createContainer", h.create_container);
    list("startContainer", h.start_container);
    list("poststart", h.poststart);
    list("poststop", h.poststop);
    return h;
}

std::vector<IdMapping> parse_idmaps(const Ctx& c, const json& j, const std::string& path) {
    array(c, j, path);
    std::vector<IdMapping> out;
    for (size_t i = 0; i < j.size(); ++i) {
        std::string p = idx(path, i);
        object(c, j[i], p);
        IdMapping m;
        for (auto [key, dst] :
             {std::pair{"containerID", &m.container_id}, std::pair{"hostID", &m.host_id}, std::pair{"size", &m.size}}) {
            auto* v = member(j[i], key);
            if (!v) c.bad(p + "." + key, "required");
            *dst = u32(c, *v, p + "." + key);
        }
        out.push_back(m);
    }
    return out;
}

Linux parse_linux(const Ctx& c, const json& j) {
    object(c, j, "linux");
    Linux l;
    if (auto* v = member(j, "namespaces")) {
        array(c, *v, "linux.namespaces");
        int seen = 0;
        for (size_t i = 0; i < v->size(); ++i) {
            std::string p = idx("linux.namespaces", i);
            object(c, (*v)[i], p);
            Namespace ns;
            auto* t = member((*v)[i], "type");
            if (!t) c.bad(p + ".type", "required");
            ns.type = str(c, *t, p + ".type");
            ns.flag = namespace_flag(ns.type);
            if (!ns.flag) c.bad(p + ".type", "unknown namespace type \"" + ns.type + "\"");
            if (seen & ns.flag) c.bad(p + ".type", "namespace \"" + ns.type + "\" listed twice");
            seen |= ns.flag;
            if (auto* pa = member((*v)[i], "path")) {
                ns.path = str(c, *pa, p + ".path");
                if (!ns.path.empty() && ns.path[0] != '/') c.bad(p + ".path", "must be an absolute path");
            }
            l.namespaces.push_back(ns);
        }
    }
    if (auto* v = member(j, "uidMappings")) l.uid_mappings = parse_idmaps(c, *v, "linux.uidMappings");
    if (auto* v = member(j, "gidMappings")) l.gid_mappings = parse_idmaps(c, *v, "linux.gidMappings");
    if ((!l.uid_mappings.empty() || !l.gid_mappings.empty())) {
        auto* u = l.find(CLONE_NEWUSER);
        if (!u) c.bad("linux.uidMappings", "id mappings need a user namespace in linux.namespaces");
    }
    if (auto* u = l.find(CLONE_NEWUSER); u && u->path.empty() && (l.uid_mappings.empty() || l.gid_mappings.empty()))
        c.bad("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings");
    if (auto* v = member(j, "devices")) {
        array(c, *v, "linux.devices");
        for (size_t i = 0; i < v->size(); ++i) {
            std::string p = idx("linux.devices", i);
            const json& d = object(c, (*v)[i], p);
            Device dev;
            auto* t = member(d, "type");
            if (!t) c.bad(p + ".type", "required");
            std::string ts = str(c, *t, p + ".type");
            if (ts != "c" && ts != "b" && ts != "u" && ts != "p")
                c.bad(p + ".type", "invalid device type \"" + ts + "\" (want c, b, u or p)");
            dev.type = ts[0];
            auto* pa = member(d, "path");
            if (!pa) c.bad(p + ".path", "required");
            dev.path = str(c, *pa, p + ".path");
            if (dev.path.empty() || dev.path[0] != '/') c.bad(p + ".path", "must be an absolute path");
            if (dev.type != 'p') {
                auto* ma = member(d, "major");
                auto* mi = member(d, "minor");
                if (!ma) c.bad(p + ".major", "required for type " + ts);
                if (!mi) c.bad(p + ".minor", "required for type " + ts);
                dev.major = i64(c, *ma, p + ".major");
                dev.minor = i64(c, *mi, p + ".minor");
            }
            if (auto* fm = member(d, "fileMode")) dev.file_mode = u32(c, *fm, p + ".fileMode");
            if (auto* x = member(d, "uid")) dev.uid = u32(c, *x, p + ".uid");
            if (auto* x = member(d, "gid")) dev.gid = u32(c, *x, p + ".gid");
            l.devices.push_back(dev);
        }
    }
    if (auto* v = member(j, "cgroupsPath")) l.cgroups_path = str(c, *v, "linux.cgroupsPath");
    if (auto* v = member(j, "resources")) l.resources = object(c, *v, "linux.resources");
    if (auto* v = member(j, "rootfsPropagation")) {
        l.rootfs_propagation = str(c, *v, "linux.rootfsPropagation");
        static const char* ok[] = {"shared",  "slave",  "private",  "unbindable",
                                   "rshared", "rslave", "rprivate", "runbindable"};
        bool found = false;
        for (auto* o : ok) found |= l.rootfs_propagation == o;
        if (!found) c.bad("linux.rootfsPropagation", "invalid value \"" + l.rootfs_propagation + "\"");
    }
    if (auto* v = member(j, "maskedPaths")) l.masked_paths = strings(c, *v, "linux.maskedPaths");
    if (auto* v = member(j, "readonlyPaths")) l.readonly_paths = strings(c, *v, "linux.readonlyPaths");
    for (auto* list : {&l.masked_paths, &l.readonly_paths})
        for (size_t i = 0; i < list->size(); ++i)
            if ((*list)[i].empty() || (*list)[i][0] != '/')
                c.bad(std::string(list == &l.masked_paths ? "linux.maskedPaths" : "linux.readonlyPaths") + "[" +
                          std::to_string(i) + "]",
                      "must be an absolute path");
    if (auto* v = member(j, "mountLabel")) l.mount_label = str(c, *v, "linux.mountLabel");
    if (auto* v = member(j, "sysctl")) {
        object(c, *v, "linux.sysctl");
        for (auto& [k, val] : v->items()) {
            std::string s = str(c, val, "linux.sysctl." + k);
            if (k.find("..") != std::string::npos || k.find('/') == 0)
                c.bad("linux.sysctl." + k, "invalid sysctl name");
            l.sysctl.emplace_back(k, s);
        }
    }
    if (auto* v = member(j, "seccomp")) l.seccomp = object(c, *v, "linux.seccomp");
    if (auto* v = member(j, "personality")) l.personality = object(c, *v, "linux.personality");
    if (member(j, "intelRdt")) c.bad("linux.intelRdt", "Intel RDT is not supported by trustme-runtime");
    if (auto* v = member(j, "timeOffsets")) {
        object(c, *v, "linux.timeOffsets");
        for (auto& [k, val] : v->items()) {
            std::string p = "linux.timeOffsets." + k;
            if (k != "monotonic" && k != "boottime") c.bad(p, "unknown clock (want monotonic or boottime)");
            object(c, val, p);
            int64_t secs = 0;
            uint32_t nsecs = 0;
            if (auto* s = member(val, "secs")) secs = i64(c, *s, p + ".secs");
            if (auto* n = member(val, "nanosecs")) nsecs = u32(c, *n, p + ".nanosecs");
            l.time_offsets[k] = {secs, nsecs};
        }
        if (!l.time_offsets.empty() && !l.find(CLONE_NEWTIME))
            c.bad("linux.timeOffsets", "needs a time namespace in linux.namespaces");
    }
    return l;
}

}  // namespace

int namespace_flag(std::string_view t) {
    if (t == "pid") return CLONE_NEWPID;
    if (t == "network") return CLONE_NEWNET;
    if (t == "mount") return CLONE_NEWNS;
    if (t == "ipc") return CLONE_NEWIPC;
    if (t == "uts") return CLONE_NEWUTS;
    if (t == "user") return CLONE_NEWUSER;
    if (t == "cgroup") return CLONE_NEWCGROUP;
    if (t == "time") return CLONE_NEWTIME;
    return 0;
}

const char* namespace_proc_name(int flag) {
    switch (flag) {
        case CLONE_NEWPID: return "pid";
        case CLONE_NEWNET: return "net";
        case CLONE_NEWNS: return "mnt";
        case CLONE_NEWIPC: return "ipc";
        case CLONE_NEWUTS: return "uts";
        case CLONE_NEWUSER: return "user";
        case CLONE_NEWCGROUP: return "cgroup";
        case CLONE_NEWTIME: return "time";
    }
    return "?";
}

bool valid_id(std::string_view id) {
    // runc libcontainer validateID: the characters below, and "/" + id == CleanPath("/" + id), which with
    // these characters rules out exactly "." and "..". The length cap is ours (a file name is at most
    // NAME_MAX bytes; longer ids could never be created anyway).
    if (id.empty() || id == "." || id == ".." || id.size() > 255) return false;
    for (char ch : id)
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '+' || ch == '-' || ch == '.'))
            return false;
    return true;
}

void invalid_id(std::string_view id) {
    std::string shown;
    for (char ch : id.substr(0, 300)) shown += (ch >= 0x20 && ch < 0x7f) ? ch : '?';
    fail("invalid container id \"" + shown + "\" (allowed: letters, digits, _ + - . ; not \".\" or \"..\")");
}

json parse_json(std::string_view text, const std::string& origin, unsigned max_depth) {
    unsigned depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char ch = text[i];
        if (in_string) {
            if (ch == '\\') ++i;
            else if (ch == '"') in_string = false;
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == '{' || ch == '[') {
            if (++depth > max_depth)
                fail(origin + ": JSON nested deeper than " + std::to_string(max_depth) + " levels");
        } else if ((ch == '}' || ch == ']') && depth > 0) {
            --depth;
        }
    }
    try {
        return json::parse(text);
    } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers such as 1e555
        // nlohmann's message carries "line N, column M" after its "[json.exception...] " tag: keep that part.
        // A number beyond double's range is an out_of_range (406): "number overflow parsing '1e555'".
        std::string m = e.what();
        auto pos = m.find("] ");
        fail(origin + ": malformed JSON: " + (pos == std::string::npos ? m : m.substr(pos + 2)));
    }
}

Hook parse_hook(const json& j, const std::string& origin, const std::string& path) {
    Ctx c{origin};
    object(c, j, path);
    Hook h;
    auto* p = member(j, "path");
    if (!p) c.bad(path + ".path", "required");
    h.path = str(c, *p, path + ".path");
    if (h.path.empty() || h.path[0] != '/') c.bad(path + ".path", "must be an absolute path");
    if (auto* v = member(j, "args")) h.args = strings(c, *v, path + ".args");
    if (auto* v = member(j, "env")) {
        h.env = strings(c, *v, path + ".env");
        h.has_env = true;
    }
    if (auto* v = member(j, "timeout")) {
        int64_t t = i64(c, *v, path + ".timeout");
        if (t <= 0) c.bad(path + ".timeout", "must be greater than zero");
        h.timeout = static_cast<int>(std::min<int64_t>(t, INT32_MAX));
    }
    return h;
}

Process parse_process(const json& j, const std::string& origin, const std::string& path) {
    Ctx c{origin};
    object(c, j, path);
    Process p;
    if (auto* v = member(j, "terminal")) p.terminal = boolean(c, *v, path + ".terminal");
    if (auto* v = member(j, "consoleSize")) {
        object(c, *v, path + ".consoleSize");
        if (auto* h = member(*v, "height")) p.console_height = u32(c, *h, path + ".consoleSize.height");
        if (auto* w = member(*v, "width")) p.console_width = u32(c, *w, path + ".consoleSize.width");
    }
    auto* u = member(j, "user");
    if (!u) c.bad(path + ".user", "required");
    object(c, *u, path + ".user");
    if (auto* v = member(*u, "uid")) p.user.uid = u32(c, *v, path + ".user.uid");
    if (auto* v = member(*u, "gid")) p.user.gid = u32(c, *v, path + ".user.gid");
    if (auto* v = member(*u, "umask")) p.user.umask = u32(c, *v, path + ".user.umask");
    if (auto* v = member(*u, "additionalGids")) {
        array(c, *v, path + ".user.additionalGids");
        for (size_t i = 0; i < v->size(); ++i)
            p.user.additional_gids.push_back(u32(c, (*v)[i], idx(path + ".user.additionalGids", i)));
    }
    auto* a = member(j, "args");
    if (a) p.args = strings(c, *a, path + ".args");
    if (p.args.empty()) c.bad(path + ".args", "must be a non-empty array of strings");
    if (auto* v = member(j, "env")) p.env = strings(c, *v, path + ".env");
    for (size_t i = 0; i < p.env.size(); ++i)
        if (p.env[i].find('=') == std::string::npos) c.bad(idx(path + ".env", i), "must be KEY=VALUE");
    auto* cw = member(j, "cwd");
    if (!cw) c.bad(path + ".cwd", "required");
    p.cwd = str(c, *cw, path + ".cwd");
    if (p.cwd.empty() || p.cwd[0] != '/') c.bad(path + ".cwd", "must be an absolute path");
    if (auto* v = member(j, "capabilities")) p.capabilities = object(c, *v, path + ".capabilities");
    if (auto* v = member(j, "rlimits")) {
        array(c, *v, path + ".rlimits");
        for (size_t i = 0; i < v->size(); ++i) {
            std::string rp = idx(path + ".rlimits", i);
            const json& r = object(c, (*v)[i], rp);
            Rlimit rl;
            auto* t = member(r, "type");
            if (!t) c.bad(rp + ".type", "required");
            rl.type = str(c, *t, rp + ".type");
            rl.resource = -1;
            for (auto& n : kRlimits)
                if (rl.type == n.name) rl.resource = n.resource;
            if (rl.resource < 0) c.bad(rp + ".type", "unknown rlimit \"" + rl.type + "\"");
            for (auto& prev : p.rlimits)
                if (prev.resource == rl.resource) c.bad(rp + ".type", "rlimit \"" + rl.type + "\" listed twice");
            auto* s = member(r, "soft");
            auto* h = member(r, "hard");
            if (!s) c.bad(rp + ".soft", "required");
            if (!h) c.bad(rp + ".hard", "required");
            rl.soft = u64(c, *s, rp + ".soft");
            rl.hard = u64(c, *h, rp + ".hard");
            if (rl.soft > rl.hard) c.bad(rp, "soft limit is greater than hard limit");
            p.rlimits.push_back(rl);
        }
    }
    if (auto* v = member(j, "noNewPrivileges")) p.no_new_privileges = boolean(c, *v, path + ".noNewPrivileges");
    if (auto* v = member(j, "apparmorProfile")) p.apparmor_profile = str(c, *v, path + ".apparmorProfile");
    if (auto* v = member(j, "oomScoreAdj")) {
        int64_t o = i64(c, *v, path + ".oomScoreAdj");
        if (o < -1000 || o > 1000) c.bad(path + ".oomScoreAdj", "must be between -1000 and 1000");
        p.oom_score_adj = static_cast<int>(o);
    }
    if (auto* v = member(j, "selinuxLabel")) p.selinux_label = str(c, *v, path + ".selinuxLabel");
    if (auto* v = member(j, "ioPriority")) p.io_priority = object(c, *v, path + ".ioPriority");
    if (auto* v = member(j, "scheduler")) p.scheduler = object(c, *v, path + ".scheduler");
    return p;
}

Mount parse_mount_options(Mount m, const std::string& where) {
    for (auto& o : m.options) {
        bool done = false;
        for (auto& f : kFlagOpts)
            if (o == f.name) {
                if (f.clear) m.flags &= ~f.flag;
                else m.flags |= f.flag;
                done = true;
                break;
            }
        if (done) continue;
        for (auto& f : kPropagation)
            if (o == f.name) {
                m.propagation = f.flag;
                done = true;
                break;
            }
        if (done) continue;
        for (auto& f : kRecAttr)
            if (o == f.name) {
                if (f.clear) m.rec_attr_clr |= f.flag;
                else m.rec_attr_set |= f.flag;
                done = true;
                break;
            }
        if (done) continue;
        if (o == "idmap" || o == "ridmap") {
            m.idmap = o == "idmap" ? Mount::Idmap::Top : Mount::Idmap::Recursive;
            continue;
        }
        if (o == "tmpcopyup") continue;
        if (!m.data.empty()) m.data += ',';
        m.data += o;
    }
    m.bind = (m.flags & MS_BIND) || m.type == "bind";
    if (m.type == "bind") m.flags |= MS_BIND;
    return m;
}

// runtime-spec config.md (1.2) "idmap"/"ridmap": mappings on a mount make it idmapped; the options without
// mappings take the container's user namespace mappings. As runc 1.2 (libcontainer/configs/validate
// checkIDMapMount): bind mounts only, and both uid and gid mappings.
namespace {
void check_idmapped_mounts(const Ctx& c, Config& cfg) {
    for (size_t i = 0; i < cfg.mounts.size(); ++i) {
        Mount& m = cfg.mounts[i];
        if (m.idmap == Mount::Idmap::None && m.uid_mappings.empty() && m.gid_mappings.empty()) continue;
        const std::string p = idx("mounts", i);
        if (m.idmap == Mount::Idmap::None) m.idmap = Mount::Idmap::Top;
        if (!m.bind) c.bad(p + ".options", "idmapped mounts are supported for bind mounts only");
        if (m.uid_mappings.empty() && m.gid_mappings.empty()) {
            if (cfg.linux_.uid_mappings.empty())
                c.bad(p + ".uidMappings", "\"idmap\" without mappings needs the container's linux.uidMappings");
            m.uid_mappings = cfg.linux_.uid_mappings;
            m.gid_mappings = cfg.linux_.gid_mappings;
        }
        if (m.uid_mappings.empty() || m.gid_mappings.empty())
            c.bad(p + (m.uid_mappings.empty() ? ".uidMappings" : ".gidMappings"),
                  "an idmapped mount needs both uidMappings and gidMappings");
    }
}
}  // namespace

Config parse_config(std::string_view text, const std::string& origin) {
    Ctx c{origin};
    Config cfg;
    if (text.size() > kMaxConfigBytes) fail(origin + ": larger than " + std::to_string(kMaxConfigBytes) + " bytes");
    cfg.raw = parse_json(text, origin);
    const json& j = cfg.raw;
    if (!j.is_object()) c.bad("(root)", "must be a JSON object");
    auto* ver = member(j, "ociVersion");
    if (!ver) c.bad("ociVersion", "required");
    cfg.oci_version = str(c, *ver, "ociVersion");
    // Spec (config.md): ociVersion is SemVer; this runtime implements 1.x.
    if (cfg.oci_version.rfind("1.", 0) != 0)
        c.bad("ociVersion", "unsupported version \"" + cfg.oci_version + "\" (this runtime implements 1.x)");
    auto* root = member(j, "root");
    if (!root) c.bad("root", "required");
    object(c, *root, "root");
    auto* rp = member(*root, "path");
    if (!rp) c.bad("root.path", "required");
    cfg.root_path = str(c, *rp, "root.path");
    if (cfg.root_path.empty()) c.bad("root.path", "must not be empty");
    if (auto* v = member(*root, "readonly")) cfg.root_readonly = boolean(c, *v, "root.readonly");
    if (auto* v = member(j, "process")) cfg.process = parse_process(*v, origin);
    if (auto* v = member(j, "hostname")) cfg.hostname = str(c, *v, "hostname");
    if (auto* v = member(j, "domainname")) cfg.domainname = str(c, *v, "domainname");
    if (auto* v = member(j, "mounts")) {
        array(c, *v, "mounts");
        for (size_t i = 0; i < v->size(); ++i) {
            std::string p = idx("mounts", i);
            const json& mj = object(c, (*v)[i], p);
            Mount m;
            auto* d = member(mj, "destination");
            if (!d) c.bad(p + ".destination", "required");
            m.destination = str(c, *d, p + ".destination");
            if (m.destination.empty() || m.destination[0] != '/') c.bad(p + ".destination", "must be an absolute path");
            if (auto* t = member(mj, "type")) m.type = str(c, *t, p + ".type");
            if (auto* s = member(mj, "source")) m.source = str(c, *s, p + ".source");
            if (auto* o = member(mj, "options")) m.options = strings(c, *o, p + ".options");
            if (auto* u = member(mj, "uidMappings")) m.uid_mappings = parse_idmaps(c, *u, p + ".uidMappings");
            if (auto* g = member(mj, "gidMappings")) m.gid_mappings = parse_idmaps(c, *g, p + ".gidMappings");
            cfg.mounts.push_back(parse_mount_options(std::move(m), origin + ": " + p + ".options"));
        }
    }
    if (auto* v = member(j, "hooks")) cfg.hooks = parse_hooks(c, *v);
    if (auto* v = member(j, "annotations")) {
        object(c, *v, "annotations");
        for (auto& [k, val] : v->items()) cfg.annotations[k] = str(c, val, "annotations." + k);
    }
    if (auto* v = member(j, "linux")) cfg.linux_ = parse_linux(c, *v);
    check_idmapped_mounts(c, cfg);
    if (!cfg.hostname.empty() && !cfg.linux_.find(CLONE_NEWUTS))
        c.bad("hostname", "setting the hostname needs a new uts namespace");
    if (!cfg.domainname.empty() && !cfg.linux_.find(CLONE_NEWUTS))
        c.bad("domainname", "setting the domainname needs a new uts namespace");
    return cfg;
}

}  // namespace trustme::oci
