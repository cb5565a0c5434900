// Pure logic: paths, conversions, device rule semantics, validation messages. No cgroup is touched.
#include <gtest/gtest.h>

#include <cmath>

#include "base/error.hpp"
#include "runtime/cgroups/bpf_devices.hpp"
#include "runtime/cgroups/cgroups.hpp"
#include "runtime/cgroups/internal.hpp"

using namespace trustme::cgroups;
using nlohmann::json;

namespace {
std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const trustme::Error& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST(CgroupPath, CleanPathLikeRunc) {
    EXPECT_EQ(detail::clean_path(""), "");
    EXPECT_EQ(detail::clean_path("/a/b/"), "/a/b");
    EXPECT_EQ(detail::clean_path("a/./b//c"), "a/b/c");
    EXPECT_EQ(detail::clean_path("../../etc"), "etc");  // relative paths cannot climb out
    EXPECT_EQ(detail::clean_path("/a/../../b"), "/b");
    EXPECT_EQ(detail::clean_path("/.."), "/");
}

TEST(CgroupPath, DefaultAndAbsoluteAndRelative) {
    auto m = Manager::create("", "abc");
    std::string d = m->dir("pids");
    ASSERT_FALSE(d.empty());
    EXPECT_EQ(d.substr(d.size() - 12), "/trustme-abc") << d;
    EXPECT_EQ(m->path_for_namespace(), "/trustme-abc");

    auto a = Manager::create("/x/../y/z", "abc");
    EXPECT_EQ(a->path_for_namespace(), "/y/z");
    if (a->mode() == Mode::Legacy) {
        EXPECT_EQ(a->dir("memory"), "/sys/fs/cgroup/memory/y/z");
    }

    auto r = Manager::create("rel/c", "abc");
    std::string rd = r->dir("memory");
    EXPECT_EQ(rd.substr(rd.size() - 6), "/rel/c");
    EXPECT_THROW(Manager::create("/", "abc"), trustme::Error);
    EXPECT_THROW(Manager::create("", "a/b"), trustme::Error);
}

TEST(CgroupPath, SaveLoadRoundTrip) {
    auto m = Manager::create("/trustme-unit/x", "x");
    json saved = m->save();
    auto l = Manager::load(saved);
    EXPECT_EQ(l->save(), saved);
    EXPECT_EQ(l->dir("memory"), m->dir("memory"));
    EXPECT_EQ(l->path_for_namespace(), m->path_for_namespace());
    EXPECT_THROW(Manager::load(json{{"mode", "v3"}}), trustme::Error);
}

TEST(Convert, SharesToWeightMatchesLibmForEveryValue) {
    // The runtime computes log2 and 10^x itself (no libm.so at start); libm's answer is the reference.
    for (uint64_t shares = 3; shares < 262144; ++shares) {
        double l = std::log2(static_cast<double>(shares));
        auto want = static_cast<uint64_t>(std::ceil(std::pow(10.0, (l * l + 125 * l) / 612.0 - 7.0 / 34.0)));
        ASSERT_EQ(detail::shares_to_weight(shares), want) << "shares " << shares;
    }
}

TEST(Convert, SharesToWeight) {
    EXPECT_EQ(detail::shares_to_weight(0), 0u);
    EXPECT_EQ(detail::shares_to_weight(2), 1u);
    EXPECT_EQ(detail::shares_to_weight(1024), 100u);  // v1 default → v2 default
    EXPECT_EQ(detail::shares_to_weight(262144), 10000u);
    EXPECT_EQ(detail::shares_to_weight(512), 59u);
    EXPECT_EQ(detail::shares_to_weight(1000000), 10000u);
}

TEST(Convert, BlkioWeightAndSwap) {
    EXPECT_EQ(detail::blkio_weight_to_io_weight(10), 1u);
    EXPECT_EQ(detail::blkio_weight_to_io_weight(1000), 10000u);
    EXPECT_EQ(detail::blkio_weight_to_io_weight(500), 4950u);
    EXPECT_EQ(detail::swap_to_v2(0, -1), -1);
    EXPECT_EQ(detail::swap_to_v2(-1, 100), -1);
    EXPECT_EQ(detail::swap_to_v2(0, 100), 0);
    EXPECT_EQ(detail::swap_to_v2(300, 100), 200);
    EXPECT_EQ(detail::swap_to_v2(300, -1), 300);
    EXPECT_THROW(detail::swap_to_v2(50, 100), trustme::Error);
    EXPECT_THROW(detail::swap_to_v2(50, 0), trustme::Error);
}

TEST(Devices, RulesGetDenyAllFirstAndRuncDefaultsLast) {
    auto rules = device_rules(json{
        {"devices", json::array({{{"allow", true}, {"type", "c"}, {"major", 1}, {"minor", 11}, {"access", "r"}}})}});
    ASSERT_EQ(rules.size(), 2 + default_allowed_devices().size());
    EXPECT_EQ(detail::v1_rule_string(rules[0]), "a");
    EXPECT_FALSE(rules[0].allow);
    EXPECT_EQ(detail::v1_rule_string(rules[1]), "c 1:11 r");
    EXPECT_EQ(detail::v1_rule_string(rules[2]), "c *:* m");
    EXPECT_EQ(detail::v1_rule_string(rules.back()), "c 10:200 rwm");
}

TEST(Devices, BadRulesNameTheJsonPath) {
    EXPECT_EQ(error_of([] {
                  device_rules(json{{"devices", json::array({{{"allow", true}, {"type", "x"}, {"access", "r"}}})}});
              }),
              "linux.resources.devices[0].type: invalid device type \"x\" (want a, b or c)");
    EXPECT_EQ(error_of([] {
                  device_rules(json{{"devices", json::array({{{"allow", true}, {"type", "c"}, {"access", "rx"}}})}});
              }),
              "linux.resources.devices[0].access: invalid access \"rx\" (want a subset of rwm)");
    EXPECT_EQ(error_of([] {
                  device_rules(json{{"devices", json::array({{{"allow", true}, {"type", "c"}}})}});
              }),
              "linux.resources.devices[0].access: must not be empty");
    EXPECT_EQ(error_of([] {
                  device_rules(json{{"devices", json::array({{{"type", "c"}, {"access", "r"}}})}});
              }),
              "linux.resources.devices[0].allow: required");
}

TEST(Devices, EmulatorFollowsKernelV1Semantics) {
    using R = DeviceRule;
    // deny all; allow c 1:3 rw; allow c 1:3 m → one widened exception.
    auto st =
        detail::emulate_devices({R{false, 'a', -1, -1, "rwm"}, R{true, 'c', 1, 3, "rw"}, R{true, 'c', 1, 3, "m"}});
    EXPECT_FALSE(st.default_allow);
    ASSERT_EQ(st.exceptions.size(), 1u);
    EXPECT_EQ(st.exceptions[0].access, "rwm");
    // ... then deny c 1:3 w removes just that bit; deny of another device changes nothing.
    st = detail::emulate_devices(
        {R{false, 'a', -1, -1, "rwm"}, R{true, 'c', 1, 3, "rwm"}, R{false, 'c', 1, 3, "w"}, R{false, 'c', 1, 5, "r"}});
    ASSERT_EQ(st.exceptions.size(), 1u);
    EXPECT_EQ(st.exceptions[0].access, "rm");
    // allow all (privileged), then a deny exception.
    st = detail::emulate_devices(
        {R{false, 'a', -1, -1, "rwm"}, R{true, 'a', -1, -1, "rwm"}, R{false, 'b', 7, -1, "rw"}});
    EXPECT_TRUE(st.default_allow);
    ASSERT_EQ(st.exceptions.size(), 1u);
    EXPECT_FALSE(st.exceptions[0].allow);
}

TEST(Devices, ProgramShape) {
    using R = DeviceRule;
    auto st =
        detail::emulate_devices({R{false, 'a', -1, -1, "rwm"}, R{true, 'c', 1, 3, "rwm"}, R{true, 'c', 136, -1, "rw"}});
    auto prog = detail::build_device_program(st);
    // 6 loads + block(type, major, minor, mov, exit)=5 + block(type, mov, and, jne, major, mov, exit)=7 + 2.
    ASSERT_EQ(prog.size(), 6u + 5u + 7u + 2u);
    EXPECT_EQ(prog.back().code, BPF_JMP | BPF_EXIT);
    EXPECT_EQ(prog[prog.size() - 2].imm, 0);  // default deny
    // The first block's type mismatch jumps exactly past the block.
    EXPECT_EQ(prog[6].off, 4);
}

TEST(Validate, MessagesNameJsonPaths) {
    EXPECT_NO_THROW(validate(json::object()));
    EXPECT_NO_THROW(validate(nullptr));
    EXPECT_EQ(error_of([] {
                  validate(json{{"memory", {{"limit", "1G"}}}});
              }),
              "linux.resources.memory.limit: expected an integer, got \"1G\"");
    EXPECT_EQ(error_of([] {
                  validate(json{{"memory", {{"swappiness", 101}}}});
              }),
              "linux.resources.memory.swappiness: 101 is out of range [0, 100]");
    EXPECT_EQ(error_of([] {
                  validate(json{{"memory", {{"limit", 200}, {"swap", 100}}}});
              }),
              "linux.resources.memory.swap: memory+swap limit 100 should be >= memory limit 200");
    EXPECT_EQ(error_of([] {
                  validate(json{{"cpu", {{"shares", -5}}}});
              }),
              "linux.resources.cpu.shares: must not be negative, got -5");
    EXPECT_EQ(error_of([] {
                  validate(json{{"cpu", {{"cpus", "0-"}}}});
              }),
              "linux.resources.cpu.cpus: invalid list \"0-\" (want e.g. \"0-3,5\")");
    // Found by fuzz.resources: a number past 2^64 was an uncaught std::out_of_range from std::stoul.
    EXPECT_EQ(error_of([] {
                  validate(json{{"cpu", {{"cpus", "0-99999999999999999999"}}}});
              }),
              "linux.resources.cpu.cpus: number out of range in \"0-99999999999999999999\"");
    EXPECT_EQ(error_of([] {
                  validate(json{{"cpu", {{"mems", "4294967296"}}}});
              }),
              "linux.resources.cpu.mems: number out of range in \"4294967296\"");
    EXPECT_EQ(error_of([] {
                  validate(json{{"blockIO", {{"weight", 5}}}});
              }),
              "linux.resources.blockIO.weight: 5 is out of range [10, 1000]");
    EXPECT_EQ(error_of([] {
                  validate(json{{"hugepageLimits", {{{"pageSize", "2M"}, {"limit", 1}}}}});
              }),
              "linux.resources.hugepageLimits[0].pageSize: invalid page size \"2M\" (want e.g. \"2MB\")");
    EXPECT_EQ(error_of([] {
                  validate(json{{"unified", {{"../memory.max", "1"}}}});
              }),
              "linux.resources.unified[\"../memory.max\"]: invalid key (want \"<controller>.<file>\")");
    EXPECT_EQ(error_of([] {
                  validate(json{{"pids", {{"limit", 1.5}}}});
              }),
              "linux.resources.pids.limit: expected an integer, got 1.5");
}
