// Capabilities: parse in the parent, apply in a forked child (bounding before the user switch, the rest
// after), observe /proc/self/status of the child and of a program it execs.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/prctl.h>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "tests/security/child.hpp"
#include "runtime/security/security.hpp"

using nlohmann::json;
using namespace trustme::security;
using namespace trustme::testing;

namespace {

uint64_t bit(int cap) { return uint64_t{1} << cap; }

// Runs apply_bounding → KEEPCAPS → setresuid(uid) → apply_after_user_switch in a child; then either
// reports its own /proc/self/status, or execs `cat /proc/self/status`, through a pipe.
std::string status_after(const Capabilities& caps, uid_t uid, bool exec_cat, int* exit_code = nullptr) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return {};
    trustme::UniqueFd rd(p[0]), wr(p[1]);
    pid_t pid = spawn([&] {
        rd.reset();
        apply_bounding(caps);
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return 91;
        if (setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0) return 92;
        apply_after_user_switch(caps);
        if (exec_cat) {
            dup2(wr.get(), 1);
            execl("/bin/cat", "cat", "/proc/self/status", nullptr);
            return 93;
        }
        std::string st = read_file("/proc/self/status");
        return write(wr.get(), st.data(), st.size()) == static_cast<ssize_t>(st.size()) ? 0 : 94;
    });
    wr.reset();
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(rd.get(), buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    auto r = wait_child(pid);
    if (exit_code) *exit_code = r.exited ? r.code : 128 + r.signal;
    return out;
}

std::string error_of(const json& caps) {
    try {
        parse_capabilities(caps);
    } catch (const trustme::Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(Capabilities, AbsentMeansUntouched) {
    auto c = parse_capabilities(json());
    EXPECT_FALSE(c.present);
    int code = -1;
    std::string st = status_after(c, 0, false, &code);
    ASSERT_EQ(code, 0);
    EXPECT_EQ(status_hex(st, "CapBnd"), status_hex(read_file("/proc/self/status"), "CapBnd"));
}

TEST(Capabilities, RootSetsAsConfigured) {
    json j = {{"bounding", {"CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"}},
              {"effective", {"CAP_CHOWN", "CAP_KILL"}},
              {"permitted", {"CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"}},
              {"inheritable", {"CAP_NET_BIND_SERVICE"}},
              {"ambient", {"CAP_NET_BIND_SERVICE"}}};
    auto c = parse_capabilities(j);
    int code = -1;
    std::string st = status_after(c, 0, false, &code);
    ASSERT_EQ(code, 0) << st;
    EXPECT_EQ(status_hex(st, "CapBnd"), bit(CAP_CHOWN) | bit(CAP_NET_BIND_SERVICE) | bit(CAP_KILL));
    EXPECT_EQ(status_hex(st, "CapEff"), bit(CAP_CHOWN) | bit(CAP_KILL));
    EXPECT_EQ(status_hex(st, "CapPrm"), bit(CAP_CHOWN) | bit(CAP_NET_BIND_SERVICE) | bit(CAP_KILL));
    EXPECT_EQ(status_hex(st, "CapInh"), bit(CAP_NET_BIND_SERVICE));
    EXPECT_EQ(status_hex(st, "CapAmb"), bit(CAP_NET_BIND_SERVICE));
}

TEST(Capabilities, NonRootKeepsAmbientAcrossExec) {
    // uid 1000 execs cat: without ambient it would lose every capability at execve.
    json j = {{"bounding", {"CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}},
              {"effective", {"CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}},
              {"permitted", {"CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}},
              {"inheritable", {"CAP_NET_BIND_SERVICE"}},
              {"ambient", {"CAP_NET_BIND_SERVICE"}}};
    int code = -1;
    std::string st = status_after(parse_capabilities(j), 1000, true, &code);
    ASSERT_EQ(code, 0) << st;
    EXPECT_NE(st.find("Uid:\t1000"), std::string::npos);
    EXPECT_EQ(status_hex(st, "CapEff"), bit(CAP_NET_BIND_SERVICE));
    EXPECT_EQ(status_hex(st, "CapPrm"), bit(CAP_NET_BIND_SERVICE));
    EXPECT_EQ(status_hex(st, "CapAmb"), bit(CAP_NET_BIND_SERVICE));
    EXPECT_EQ(status_hex(st, "CapBnd"), bit(CAP_NET_BIND_SERVICE) | bit(CAP_NET_RAW));
}

TEST(Capabilities, EmptySetsDropEverything) {
    int code = -1;
    std::string st = status_after(parse_capabilities(json::object()), 0, false, &code);
    ASSERT_EQ(code, 0);
    for (const char* k : {"CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"}) EXPECT_EQ(status_hex(st, k), 0u) << k;
}

TEST(Capabilities, AmbientNotInheritableIsSkipped) {
    // As runc and crun: an ambient capability that is not also inheritable and permitted is left out.
    json j = {{"bounding", {"CAP_KILL", "CAP_CHOWN"}},
              {"permitted", {"CAP_KILL", "CAP_CHOWN"}},
              {"inheritable", {"CAP_CHOWN"}},
              {"ambient", {"CAP_KILL", "CAP_CHOWN"}}};
    int code = -1;
    std::string st = status_after(parse_capabilities(j), 0, false, &code);
    ASSERT_EQ(code, 0) << st;
    EXPECT_EQ(status_hex(st, "CapAmb"), bit(CAP_CHOWN));
}

TEST(Capabilities, InheritableOutsideTheBoundingSetIsNamed) {
    json j = {{"bounding", json::array()}, {"inheritable", {"CAP_CHOWN"}}};
    int code = -1;
    status_after(parse_capabilities(j), 0, false, &code);
    EXPECT_EQ(code, 100);  // the child's message names CAP_CHOWN (printed on stderr)
}

TEST(Capabilities, CapabilityOutsideTheRuntimesBoundingSetFails) {
    // This host's root lacks some capabilities (CAP_SYS_RESOURCE); find one.
    uint64_t bnd = status_hex(read_file("/proc/self/status"), "CapBnd");
    int missing = -1;
    for (int c = 0; c <= CAP_LAST_CAP; ++c)
        if (!(bnd & bit(c)) && prctl(PR_CAPBSET_READ, c, 0, 0, 0) >= 0) missing = c;
    if (missing < 0) GTEST_SKIP() << "root holds every capability here";
    char* name = cap_to_name(missing);
    std::string cap = name;
    cap_free(name);
    for (auto& ch : cap) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    json j = {{"bounding", {cap}}, {"effective", {cap}}, {"permitted", {cap}}};
    int code = -1;
    status_after(parse_capabilities(j), 0, false, &code);
    EXPECT_EQ(code, 100) << cap;
}

TEST(Capabilities, UnknownNameIsIgnoredWithAWarning) {
    // runtime-spec 1.1: a capability that cannot be mapped MUST be logged as a warning; runtimes SHOULD NOT fail.
    EXPECT_EQ(error_of({{"bounding", {"CAP_CHOWN", "CAP_KILL", "CAP_FOO"}}}), "");
    auto c = parse_capabilities(
        {{"bounding", {"CAP_CHOWN", "CAP_KILL", "CAP_FOO"}}, {"ambient", {"chown"}}, {"effective", {"12"}}});
    EXPECT_EQ(c.bounding, (std::vector<cap_value_t>{CAP_CHOWN, CAP_KILL}));
    EXPECT_TRUE(c.ambient.empty());
    EXPECT_TRUE(c.effective.empty());
    EXPECT_EQ(error_of({{"permitted", "CAP_KILL"}}), "process.capabilities.permitted: expected an array");
    EXPECT_EQ(error_of({{"inheritable", {7}}}), "process.capabilities.inheritable[0]: expected a string");
    EXPECT_EQ(error_of(json::array()), "process.capabilities: expected an object");
}
