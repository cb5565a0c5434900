// linux.personality, process.ioPriority, process.scheduler, and the parse-time validation of everything in
// this folder.
#include <sched.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/log.hpp"
#include "runtime/security/json_util.hpp"
#include "runtime/security/seccomp_internal.hpp"
#include "runtime/security/security.hpp"

namespace trustme::security {
using nlohmann::json;
using namespace detail;

namespace {

// ---- personality ----
unsigned long parse_personality(const json& j) {
    const std::string path = "linux.personality";
    expect_object(j, path);
    const json* d = field(j, "domain");
    if (!d) fail(path + ".domain: required");
    std::string domain = as_string(*d, path + ".domain");
    unsigned long value;
    // The spec defines LINUX and LINUX32 only (config-linux.md "Personality").
    if (domain == "LINUX") value = PER_LINUX;
    else if (domain == "LINUX32") value = PER_LINUX32;
    else fail(path + ".domain: unknown personality domain " + domain);
    if (const json* f = field(j, "flags")) {
        // The spec says "currently no flag values are supported" and runc ignores them; we accept the
        // kernel's own flag names (include/uapi/linux/personality.h) so that a flag asked for is applied.
        static constexpr std::pair<const char*, unsigned long> kFlags[] = {
            {"UNAME26", UNAME26},
            {"ADDR_NO_RANDOMIZE", ADDR_NO_RANDOMIZE},
            {"FDPIC_FUNCPTRS", FDPIC_FUNCPTRS},
            {"MMAP_PAGE_ZERO", MMAP_PAGE_ZERO},
            {"ADDR_COMPAT_LAYOUT", ADDR_COMPAT_LAYOUT},
            {"READ_IMPLIES_EXEC", READ_IMPLIES_EXEC},
            {"ADDR_LIMIT_32BIT", ADDR_LIMIT_32BIT},
            {"SHORT_INODE", SHORT_INODE},
            {"WHOLE_SECONDS", WHOLE_SECONDS},
            {"STICKY_TIMEOUTS", STICKY_TIMEOUTS},
            {"ADDR_LIMIT_3GB", ADDR_LIMIT_3GB},
        };
        expect_array(*f, path + ".flags");
        for (size_t i = 0; i < f->size(); ++i) {
            std::string p = idx(path + ".flags", i);
            std::string name = as_string((*f)[i], p);
            auto it =
                std::find_if(std::begin(kFlags), std::end(kFlags), [&](const auto& k) { return name == k.first; });
            if (it == std::end(kFlags)) fail(p + ": unknown personality flag " + name);
            value |= it->second;
        }
    }
    return value;
}

// ---- I/O priority (ioprio_set(2); glibc has no wrapper) ----
constexpr int kIoprioWhoProcess = 1;
constexpr int kIoprioClassShift = 13;

int parse_io_priority(const json& j) {
    const std::string path = "process.ioPriority";
    expect_object(j, path);
    const json* c = field(j, "class");
    if (!c) fail(path + ".class: required");
    std::string cls = as_string(*c, path + ".class");
    int klass;
    if (cls == "IOPRIO_CLASS_RT") klass = 1;
    else if (cls == "IOPRIO_CLASS_BE") klass = 2;
    else if (cls == "IOPRIO_CLASS_IDLE") klass = 3;
    else fail(path + ".class: unknown class " + cls);
    int64_t prio = 0;
    if (const json* p = field(j, "priority")) prio = as_i64(*p, path + ".priority");
    // Levels 0 (highest) to 7 (ioprio_set(2)); runc refuses others the same way.
    if (prio < 0 || prio > 7) fail(path + ".priority: " + std::to_string(prio) + " is out of range 0-7");
    return (klass << kIoprioClassShift) | static_cast<int>(prio);
}

// ---- scheduler (sched_setattr(2); glibc 2.36 has no wrapper) ----
struct SchedAttr {  // struct sched_attr, include/uapi/linux/sched/types.h (SCHED_ATTR_SIZE_VER1)
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
    uint32_t sched_util_min;
    uint32_t sched_util_max;
};

SchedAttr parse_scheduler(const json& j) {
    const std::string path = "process.scheduler";
    expect_object(j, path);
    SchedAttr a{};
    a.size = sizeof(SchedAttr);
    const json* pol = field(j, "policy");
    if (!pol) fail(path + ".policy: required");
    std::string policy = as_string(*pol, path + ".policy");
    // Numbers from include/uapi/linux/sched.h; SCHED_ISO (4) is reserved there and refused by the kernel.
    static constexpr std::pair<const char*, uint32_t> kPolicies[] = {
        {"SCHED_OTHER", 0}, {"SCHED_FIFO", 1}, {"SCHED_RR", 2},       {"SCHED_BATCH", 3},
        {"SCHED_ISO", 4},   {"SCHED_IDLE", 5}, {"SCHED_DEADLINE", 6},
    };
    auto pit =
        std::find_if(std::begin(kPolicies), std::end(kPolicies), [&](const auto& k) { return policy == k.first; });
    if (pit == std::end(kPolicies)) fail(path + ".policy: unknown policy " + policy);
    a.sched_policy = pit->second;
    const bool realtime = policy == "SCHED_FIFO" || policy == "SCHED_RR";
    const bool deadline = policy == "SCHED_DEADLINE";

    if (const json* n = field(j, "nice")) {
        int64_t nice = as_i64(*n, path + ".nice");
        if (nice < -20 || nice > 19) fail(path + ".nice: " + std::to_string(nice) + " is out of range -20..19");
        a.sched_nice = static_cast<int32_t>(nice);
    }
    if (const json* p = field(j, "priority")) {
        int64_t prio = as_i64(*p, path + ".priority");
        // runc's validateScheduler: a static priority only means something for the realtime policies.
        if (prio != 0 && !realtime) fail(path + ".priority: only SCHED_FIFO and SCHED_RR take a priority");
        if (prio < 0 || prio > 99) fail(path + ".priority: " + std::to_string(prio) + " is out of range 1..99");
        a.sched_priority = static_cast<uint32_t>(prio);
    }
    for (auto [name, member] :
         {std::pair{"runtime", &SchedAttr::sched_runtime}, std::pair{"deadline", &SchedAttr::sched_deadline},
          std::pair{"period", &SchedAttr::sched_period}}) {
        if (const json* v = field(j, name)) {
            uint64_t x = as_u64(*v, path + "." + name);
            if (x != 0 && !deadline) fail(path + "." + name + ": only SCHED_DEADLINE takes runtime/deadline/period");
            a.*member = x;
        }
    }
    if (const json* f = field(j, "flags")) {
        static constexpr std::pair<const char*, uint64_t> kFlags[] = {
            {"SCHED_FLAG_RESET_ON_FORK", 0x01},  {"SCHED_FLAG_RECLAIM", 0x02},     {"SCHED_FLAG_DL_OVERRUN", 0x04},
            {"SCHED_FLAG_KEEP_POLICY", 0x08},    {"SCHED_FLAG_KEEP_PARAMS", 0x10}, {"SCHED_FLAG_UTIL_CLAMP_MIN", 0x20},
            {"SCHED_FLAG_UTIL_CLAMP_MAX", 0x40},
        };
        expect_array(*f, path + ".flags");
        for (size_t i = 0; i < f->size(); ++i) {
            std::string p = idx(path + ".flags", i);
            std::string name = as_string((*f)[i], p);
            auto it =
                std::find_if(std::begin(kFlags), std::end(kFlags), [&](const auto& k) { return name == k.first; });
            if (it == std::end(kFlags)) fail(p + ": unknown flag " + name);
            a.sched_flags |= it->second;
        }
    }
    return a;
}

void check_string(const json& obj, const char* k, const std::string& path) {
    if (const json* v = field(obj, k)) as_string(*v, path);
}

}  // namespace

void apply_personality(const json& personality) {
    if (personality.is_null()) return;
    unsigned long p = parse_personality(personality);
    if (::personality(p) < 0) fail_errno("linux.personality: personality(" + std::to_string(p) + ")");
}

void apply_io_priority(const json& io_priority) {
    if (io_priority.is_null()) return;
    int value = parse_io_priority(io_priority);
    if (syscall(SYS_ioprio_set, kIoprioWhoProcess, 0, value) < 0) fail_errno("process.ioPriority: ioprio_set");
}

void apply_scheduler(const json& scheduler) {
    if (scheduler.is_null()) return;
    SchedAttr a = parse_scheduler(scheduler);
    if (syscall(SYS_sched_setattr, 0, &a, 0) < 0) fail_errno("process.scheduler: sched_setattr");
}

void validate_process_extras(const json& process, const json& linux_) {
    if (process.is_object()) {
        if (const json* caps = field(process, "capabilities")) detail::parse_capabilities(*caps, false);
        if (const json* io = field(process, "ioPriority")) parse_io_priority(*io);
        if (const json* s = field(process, "scheduler")) parse_scheduler(*s);
        check_string(process, "selinuxLabel", "process.selinuxLabel");
        check_string(process, "apparmorProfile", "process.apparmorProfile");
    }
    if (linux_.is_object()) {
        if (const json* s = field(linux_, "seccomp")) parse_seccomp(*s, "linux.seccomp");
        if (const json* p = field(linux_, "personality")) parse_personality(*p);
        check_string(linux_, "mountLabel", "linux.mountLabel");
    }
}

}  // namespace trustme::security
