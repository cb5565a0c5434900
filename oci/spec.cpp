#include "oci/spec.hpp"

#include <unistd.h>

#include "base/version.hpp"
#include "oci/config.hpp"

namespace trustme::oci {
using nlohmann::json;

// The same defaults `runc spec` writes (runc libcontainer/specconv.Example), so bundles made for runc
// behave the same here.
json default_spec(bool rootless) {
    json caps = json::array({"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"});
    json s = {{"ociVersion", kOciVersion},
              {"process",
               {{"terminal", true},
                {"user", {{"uid", 0}, {"gid", 0}}},
                {"args", {"sh"}},
                {"env", {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"}},
                {"cwd", "/"},
                {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
                {"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}}},
                {"noNewPrivileges", true}}},
              {"root", {{"path", "rootfs"}, {"readonly", true}}},
              {"hostname", "trustme"},
              {"mounts",
               {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
                {{"destination", "/dev"},
                 {"type", "tmpfs"},
                 {"source", "tmpfs"},
                 {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
                {{"destination", "/dev/pts"},
                 {"type", "devpts"},
                 {"source", "devpts"},
                 {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}}},
                {{"destination", "/dev/shm"},
                 {"type", "tmpfs"},
                 {"source", "shm"},
                 {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
                {{"destination", "/dev/mqueue"},
                 {"type", "mqueue"},
                 {"source", "mqueue"},
                 {"options", {"nosuid", "noexec", "nodev"}}},
                {{"destination", "/sys"},
                 {"type", "sysfs"},
                 {"source", "sysfs"},
                 {"options", {"nosuid", "noexec", "nodev", "ro"}}},
                {{"destination", "/sys/fs/cgroup"},
                 {"type", "cgroup"},
                 {"source", "cgroup"},
                 {"options", {"nosuid", "noexec", "nodev", "relatime", "ro"}}}}},
              {"linux",
               {{"resources", {{"devices", {{{"allow", false}, {"access", "rwm"}}}}}},
                {"namespaces",
                 {{{"type", "pid"}},
                  {{"type", "network"}},
                  {{"type", "ipc"}},
                  {{"type", "uts"}},
                  {{"type", "mount"}},
                  {{"type", "cgroup"}}}},
                {"maskedPaths",
                 {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                  "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"}},
                {"readonlyPaths", {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}}}}};
    if (rootless) {
        // As runc's ToRootless: a user namespace mapping the caller, no network namespace, sysfs bound.
        auto& ns = s["linux"]["namespaces"];
        json kept = json::array();
        for (auto& n : ns)
            if (n["type"] != "network") kept.push_back(n);
        kept.push_back({{"type", "user"}});
        ns = kept;
        // The caller's own ids (runc spec --rootless does the same), not a fixed 1000.
        s["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", ::geteuid()}, {"size", 1}}};
        s["linux"]["gidMappings"] = {{{"containerID", 0}, {"hostID", ::getegid()}, {"size", 1}}};
        s["linux"].erase("resources");
        for (auto& m : s["mounts"]) {
            if (m["destination"] == "/sys") {
                m = {{"destination", "/sys"},
                     {"type", "none"},
                     {"source", "/sys"},
                     {"options", {"rbind", "nosuid", "noexec", "nodev", "ro"}}};
            }
            if (m.contains("options")) {
                json opts = json::array();
                for (auto& o : m["options"])
                    if (o != "gid=5") opts.push_back(o);
                m["options"] = opts;
            }
        }
    }
    return s;
}

json features() {
    return {
        {"ociVersionMin", "1.0.0"},
        {"ociVersionMax", kOciVersion},
        {"hooks", {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}},
        {"mountOptions",
         {"async",         "atime",        "bind",     "defaults",    "dev",        "diratime",    "dirsync",
          "exec",          "idmap",        "iversion", "lazytime",    "loud",       "mand",        "noatime",
          "nodev",         "nodiratime",   "noexec",   "noiversion",  "nolazytime", "nomand",      "norelatime",
          "nostrictatime", "nosuid",       "private",  "rbind",       "rdev",       "rdiratime",   "relatime",
          "remount",       "rexec",        "ridmap",   "rnoatime",    "rnodev",     "rnodiratime", "rnoexec",
          "rnosuid",       "ro",           "rprivate", "rrelatime",   "rro",        "rrw",         "rshared",
          "rslave",        "rstrictatime", "rsuid",    "runbindable", "rw",         "shared",      "silent",
          "slave",         "strictatime",  "suid",     "sync",        "tmpcopyup",  "unbindable"}},
        {"linux",
         {{"namespaces", {"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"}},
          {"capabilities", nlohmann::json::array()},
          {"cgroup", {{"v1", true}, {"v2", true}, {"systemd", true}, {"systemdUser", false}, {"rdma", false}}},
          {"seccomp",
           {{"enabled", true},
            {"actions",
             {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
              "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"}},
            {"operators",
             {"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ",
              "SCMP_CMP_NE"}},
            {"archs", {"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"}},
            {"supportedFlags",
             {"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"}}}},
          {"apparmor", {{"enabled", true}}},
          {"selinux", {{"enabled", true}}},
          {"intelRdt", {{"enabled", false}}},
          {"mountExtensions", {{"idmap", {{"enabled", true}}}}}}},
        {"annotations",
         {{"org.opencontainers.runc.version", "trustme-runtime compatible"},
          {"org.trustme.runtime.version", kVersion}}},
    };
}

}  // namespace trustme::oci
