// personality, I/O priority, scheduler, LSM labels on a host without an active LSM, and validation.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cstring>

#include "base/error.hpp"
#include "tests/security/child.hpp"
#include "runtime/security/security.hpp"

using nlohmann::json;
using namespace trustme::security;
using namespace trustme::testing;

namespace {

std::string validation_error(const json& process, const json& linux_) {
    try {
        validate_process_extras(process, linux_);
    } catch (const trustme::Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(Personality, Linux32ChangesUname) {
    auto r = run_child([] {
        apply_personality({{"domain", "LINUX32"}, {"flags", {"ADDR_NO_RANDOMIZE"}}});
        int p = personality(0xffffffff);
        if ((p & PER_MASK) != PER_LINUX32) return 1;
        if (!(p & ADDR_NO_RANDOMIZE)) return 2;
        utsname u{};
        uname(&u);
        return std::strcmp(u.machine, "i686") == 0 ? 0 : 3;
    });
    EXPECT_EQ(r.code, 0);
}

TEST(Personality, LinuxKeepsTheNativeMachine) {
    auto r = run_child([] {
        apply_personality({{"domain", "LINUX"}});
        utsname u{};
        uname(&u);
        return (personality(0xffffffff) & PER_MASK) == PER_LINUX && std::strcmp(u.machine, "x86_64") == 0 ? 0 : 1;
    });
    EXPECT_EQ(r.code, 0);
}

TEST(IoPriority, ClassAndLevelAreSet) {
    auto r = run_child([] {
        apply_io_priority({{"class", "IOPRIO_CLASS_BE"}, {"priority", 6}});
        long v = syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, 0);
        if (v != ((2 << 13) | 6)) return 1;
        apply_io_priority({{"class", "IOPRIO_CLASS_IDLE"}, {"priority", 0}});
        v = syscall(SYS_ioprio_get, 1, 0);
        return (v >> 13) == 3 ? 0 : 2;
    });
    EXPECT_EQ(r.code, 0);
}

TEST(Scheduler, BatchWithNice) {
    auto r = run_child([] {
        apply_scheduler({{"policy", "SCHED_BATCH"}, {"nice", 7}});
        if (sched_getscheduler(0) != SCHED_BATCH) return 1;
        errno = 0;
        return getpriority(PRIO_PROCESS, 0) == 7 ? 0 : 2;
    });
    EXPECT_EQ(r.code, 0);
}

TEST(Scheduler, IdleAndResetOnFork) {
    auto r = run_child([] {
        apply_scheduler({{"policy", "SCHED_IDLE"}, {"flags", {"SCHED_FLAG_RESET_ON_FORK"}}});
        return sched_getscheduler(0) == (SCHED_IDLE | SCHED_RESET_ON_FORK) ? 0 : 1;
    });
    EXPECT_EQ(r.code, 0);
}

TEST(Scheduler, RealtimePriority) {
    auto r = run_child([] {
        try {
            apply_scheduler({{"policy", "SCHED_RR"}, {"priority", 3}});
        } catch (const trustme::Error& e) {
            // cgroup v1 with RT group scheduling may leave this group no realtime budget.
            return std::strstr(e.what(), "Operation not permitted") ? 77 : 100;
        }
        sched_param sp{};
        sched_getparam(0, &sp);
        return sched_getscheduler(0) == SCHED_RR && sp.sched_priority == 3 ? 0 : 1;
    });
    if (r.code == 77) GTEST_SKIP() << "no realtime budget in this cgroup";
    EXPECT_EQ(r.code, 0);
}

TEST(Lsm, SelinuxLabelsAreIgnoredWhenNotEnabled) {
    if (selinux_enabled()) GTEST_SKIP() << "SELinux is active here (the vm-guest tests cover it)";
    EXPECT_EQ(mount_label_option("system_u:object_r:container_file_t:s0:c1,c2"), "");
    auto r = run_child([] {
        set_exec_label("system_u:system_r:container_t:s0:c1,c2");
        return 0;
    });
    EXPECT_EQ(r.code, 0);
}

TEST(Lsm, ApparmorProfileIgnoredWhenAbsent) {
    if (apparmor_enabled()) GTEST_SKIP() << "AppArmor is active here";
    auto r = run_child([] {
        apply_apparmor("docker-default");
        return 0;
    });
    EXPECT_EQ(r.code, 0);
}

TEST(Validate, AcceptsAFullConfig) {
    json process = {
        {"capabilities", {{"bounding", {"CAP_KILL"}}}},
        {"ioPriority", {{"class", "IOPRIO_CLASS_RT"}, {"priority", 0}}},
        {"scheduler", {{"policy", "SCHED_DEADLINE"}, {"runtime", 1000000}, {"deadline", 2000000}, {"period", 2000000}}},
        {"selinuxLabel", "system_u:system_r:container_t:s0"},
        {"apparmorProfile", "p"}};
    json linux_ = {{"seccomp", {{"defaultAction", "SCMP_ACT_ALLOW"}}},
                   {"personality", {{"domain", "LINUX"}}},
                   {"mountLabel", "system_u:object_r:container_file_t:s0"}};
    EXPECT_EQ(validation_error(process, linux_), "");
    EXPECT_EQ(validation_error(json(), json()), "");
}

TEST(Validate, OneLineErrorsWithThePath) {
    EXPECT_EQ(validation_error({{"ioPriority", {{"class", "IOPRIO_CLASS_XX"}, {"priority", 0}}}}, json()),
              "process.ioPriority.class: unknown class IOPRIO_CLASS_XX");
    EXPECT_EQ(validation_error({{"ioPriority", {{"class", "IOPRIO_CLASS_BE"}, {"priority", 8}}}}, json()),
              "process.ioPriority.priority: 8 is out of range 0-7");
    EXPECT_EQ(validation_error({{"scheduler", {{"policy", "SCHED_FOO"}}}}, json()),
              "process.scheduler.policy: unknown policy SCHED_FOO");
    EXPECT_EQ(validation_error({{"scheduler", {{"policy", "SCHED_OTHER"}, {"nice", 20}}}}, json()),
              "process.scheduler.nice: 20 is out of range -20..19");
    EXPECT_EQ(validation_error({{"scheduler", {{"policy", "SCHED_OTHER"}, {"priority", 5}}}}, json()),
              "process.scheduler.priority: only SCHED_FIFO and SCHED_RR take a priority");
    EXPECT_EQ(validation_error({{"scheduler", {{"policy", "SCHED_RR"}, {"runtime", 5}}}}, json()),
              "process.scheduler.runtime: only SCHED_DEADLINE takes runtime/deadline/period");
    EXPECT_EQ(validation_error({{"scheduler", {{"policy", "SCHED_OTHER"}, {"flags", {"SCHED_FLAG_X"}}}}}, json()),
              "process.scheduler.flags[0]: unknown flag SCHED_FLAG_X");
    EXPECT_EQ(validation_error(json(), {{"personality", {{"domain", "LINUX64"}}}}),
              "linux.personality.domain: unknown personality domain LINUX64");
    EXPECT_EQ(validation_error(json(), {{"personality", {{"domain", "LINUX"}, {"flags", {"NOPE"}}}}}),
              "linux.personality.flags[0]: unknown personality flag NOPE");
    EXPECT_EQ(validation_error({{"capabilities", {{"bounding", {"CAP_FOO"}}}}}, json()),
              "");  // a warning, as the spec asks
    EXPECT_EQ(validation_error(json(), {{"seccomp",
                                         {{"defaultAction", "SCMP_ACT_ALLOW"},
                                          {"syscalls", {{{"names", {"read"}}, {"action", "SCMP_ACT_BAD"}}}}}}}),
              "linux.seccomp.syscalls[0].action: unknown action SCMP_ACT_BAD");
    EXPECT_EQ(validation_error({{"selinuxLabel", 5}}, json()), "process.selinuxLabel: expected a string");
}

TEST(Features, SeccompAndCapabilities) {
    json f = seccomp_features();
    EXPECT_EQ(f["enabled"], true);
    EXPECT_NE(std::find(f["actions"].begin(), f["actions"].end(), "SCMP_ACT_NOTIFY"), f["actions"].end());
    EXPECT_NE(std::find(f["operators"].begin(), f["operators"].end(), "SCMP_CMP_MASKED_EQ"), f["operators"].end());
    EXPECT_NE(std::find(f["archs"].begin(), f["archs"].end(), "SCMP_ARCH_X86_64"), f["archs"].end());
    EXPECT_EQ(f["knownFlags"].size(), 4u);
    EXPECT_NE(std::find(f["supportedFlags"].begin(), f["supportedFlags"].end(), "SECCOMP_FILTER_FLAG_LOG"),
              f["supportedFlags"].end());
    auto caps = known_capabilities();
    EXPECT_EQ(caps.front(), "CAP_CHOWN");
    EXPECT_NE(std::find(caps.begin(), caps.end(), "CAP_SYS_ADMIN"), caps.end());
    // Every name we list is one parse_capabilities accepts.
    json all = {{"bounding", caps}};
    EXPECT_EQ(parse_capabilities(all).bounding.size(), caps.size());
}
