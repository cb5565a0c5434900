// The systemd driver's pure parts: unit names and paths from cgroupsPath, linux.resources and annotations
// as D-Bus properties (runc libcontainer/cgroups/systemd, devices/systemd.go, specconv). No systemd needed.
#include <gtest/gtest.h>

#include <cstdint>

#include "base/error.hpp"
#include "runtime/cgroups/systemd.hpp"

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

// The value of the last property called `name`, or null.
json find(const json& props, const std::string& name, std::string* sig = nullptr) {
    json out;
    for (auto& p : props)
        if (p[0] == name) {
            out = p[2];
            if (sig) *sig = p[1];
        }
    return out;
}
}  // namespace

TEST(SystemdUnit, NamesLikeRunc) {
    auto u = systemd::unit_for("", "abc");  // runc: ":runc:<id>", slice system.slice
    EXPECT_EQ(u.slice, "system.slice");
    EXPECT_EQ(u.name, "runc-abc.scope");
    EXPECT_EQ(u.path, "/system.slice/runc-abc.scope");
    u = systemd::unit_for("machine.slice:libpod:0123", "x");
    EXPECT_EQ(u.name, "libpod-0123.scope");
    EXPECT_EQ(u.path, "/machine.slice/libpod-0123.scope");
    u = systemd::unit_for("kubepods-besteffort-pod1.slice:cri-containerd:c1", "x");
    EXPECT_EQ(u.path,
              "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-c1.scope");
    u = systemd::unit_for(":docker:d1", "x");
    EXPECT_EQ(u.path, "/system.slice/docker-d1.scope");
    u = systemd::unit_for("-.slice:p:n", "x");
    EXPECT_EQ(u.path, "/p-n.scope");
    u = systemd::unit_for("system.slice::my.slice", "x");  // a name ending in .slice is the unit itself
    EXPECT_EQ(u.name, "my.slice");
    EXPECT_TRUE(u.is_slice());
}

TEST(SystemdUnit, BadPathsAreOneLine) {
    EXPECT_EQ(error_of([] { systemd::unit_for("/a/b", "x"); }),
              "linux.cgroupsPath: expected \"slice:prefix:name\" for systemd cgroups, got \"/a/b\"");
    EXPECT_NE(error_of([] { systemd::unit_for("a:b", "x"); }), "");
    EXPECT_NE(error_of([] { systemd::unit_for("a.slice:b:c:d", "x"); }), "");
    EXPECT_NE(error_of([] { systemd::unit_for("system.slice:p:../../x", "x"); }), "");
    EXPECT_NE(error_of([] { systemd::unit_for("bad:p:n", "x"); }), "");
    EXPECT_NE(error_of([] { systemd::unit_for("system.slice:p:", "x"); }), "");
}

TEST(SystemdUnit, ExpandSlice) {
    EXPECT_EQ(systemd::expand_slice("-.slice"), "/");
    EXPECT_EQ(systemd::expand_slice("a-b-c.slice"), "/a.slice/a-b.slice/a-b-c.slice");
    for (const char* bad : {".slice", "a--b.slice", "-a.slice", "a-.slice", "a/b.slice", "a.scope"})
        EXPECT_NE(error_of([&] { systemd::expand_slice(bad); }), "") << bad;
}

TEST(SystemdUnit, UnitProperties) {
    auto u = systemd::unit_for("", "c1");
    auto p = systemd::unit_properties(u, 42, Mode::Unified);
    EXPECT_EQ(find(p, "Slice"), "system.slice");
    EXPECT_EQ(find(p, "Delegate"), true);
    EXPECT_EQ(find(p, "PIDs"), json::array({42}));
    EXPECT_EQ(find(p, "DefaultDependencies"), false);
    EXPECT_EQ(find(p, "IOAccounting"), true);
    EXPECT_TRUE(find(p, "BlockIOAccounting").is_null());
    p = systemd::unit_properties(u, 42, Mode::Legacy);
    EXPECT_EQ(find(p, "BlockIOAccounting"), true);
}

TEST(SystemdUnit, ResourcesV2) {
    json r = {{"memory", {{"limit", 1 << 30}, {"reservation", 1 << 20}, {"swap", int64_t(2) << 30}}},
              {"cpu", {{"shares", 1024}, {"quota", 50000}, {"period", 100000}, {"cpus", "0-1,3"}, {"mems", "0"}}},
              {"pids", {{"limit", 100}}},
              {"blockIO", {{"weight", 500}}}};
    std::string sig;
    auto p = systemd::resource_properties(r, Mode::Unified, false);
    EXPECT_EQ(find(p, "MemoryMax", &sig), 1 << 30);
    EXPECT_EQ(sig, "t");
    EXPECT_EQ(find(p, "MemoryLow"), 1 << 20);
    EXPECT_EQ(find(p, "MemorySwapMax"), uint64_t(1) << 30);  // swap - limit (ConvertMemorySwapToCgroupV2Value)
    EXPECT_EQ(find(p, "CPUWeight"), 100);                    // 1024 shares → weight 100
    EXPECT_EQ(find(p, "CPUQuotaPerSecUSec"), 500000);
    EXPECT_EQ(find(p, "CPUQuotaPeriodUSec"), 100000);
    EXPECT_EQ(find(p, "AllowedCPUs", &sig), json::array({0x0b}));
    EXPECT_EQ(sig, "ay");
    EXPECT_EQ(find(p, "AllowedMemoryNodes"), json::array({1}));
    EXPECT_EQ(find(p, "TasksMax"), 100);
    EXPECT_TRUE(find(p, "IOWeight").is_number());
    EXPECT_TRUE(find(p, "CPUShares").is_null());
    EXPECT_TRUE(find(p, "DevicePolicy").is_null());  // update: devices untouched
}

TEST(SystemdUnit, ResourcesV1AndLimits) {
    json r = {{"memory", {{"limit", -1}}},
              {"cpu", {{"shares", 512}, {"quota", 12345}}},
              {"pids", {{"limit", -1}}},
              {"blockIO", {{"weight", 300}}}};
    auto p = systemd::resource_properties(r, Mode::Legacy, false);
    EXPECT_EQ(find(p, "MemoryLimit"), UINT64_MAX);
    EXPECT_EQ(find(p, "CPUShares"), 512);
    // 12345 us per 100 ms = 123450 us/s, rounded up to 10 ms as runc does
    EXPECT_EQ(find(p, "CPUQuotaPerSecUSec"), 130000);
    EXPECT_TRUE(find(p, "CPUQuotaPeriodUSec").is_null());
    EXPECT_EQ(find(p, "TasksMax"), UINT64_MAX);
    EXPECT_EQ(find(p, "BlockIOWeight"), 300);
    EXPECT_TRUE(find(p, "MemoryMax").is_null());
}

TEST(SystemdUnit, UnifiedKeys) {
    json r = {
        {"unified", {{"memory.high", "1048576"}, {"pids.max", "max"}, {"cpu.max", "max 50000"}, {"io.weight", "50"}}}};
    auto p = systemd::resource_properties(r, Mode::Unified, false);
    EXPECT_EQ(find(p, "MemoryHigh"), 1048576);
    EXPECT_EQ(find(p, "TasksMax"), UINT64_MAX);
    EXPECT_EQ(find(p, "CPUQuotaPerSecUSec"), UINT64_MAX);
    EXPECT_EQ(find(p, "CPUQuotaPeriodUSec"), 50000);
    EXPECT_EQ(p.size(), 4u);  // io.weight: written to the file only
}

TEST(SystemdUnit, Devices) {
    // The defaults alone: strict, with runc's allowed devices as DeviceAllow entries.
    auto p = systemd::device_properties(json::object());
    EXPECT_EQ(find(p, "DevicePolicy"), "strict");
    auto allow = find(p, "DeviceAllow");
    EXPECT_NE(std::find(allow.begin(), allow.end(), json::array({"/dev/char/1:3", "rwm"})), allow.end());  // /dev/null
    EXPECT_NE(std::find(allow.begin(), allow.end(), json::array({"char-136", "rwm"})), allow.end());       // pts
    // allow-all
    json all = {{"devices", json::array({{{"allow", true}, {"access", "rwm"}}})}};
    p = systemd::device_properties(all);
    EXPECT_EQ(find(p, "DevicePolicy"), "auto");
    EXPECT_EQ(find(p, "DeviceAllow"), json::array());
    // a wildcard type rule (runc's defaults add "b *:* m")
    json blk = {{"devices", json::array({{{"allow", true}, {"type", "b"}, {"access", "r"}}})}};
    allow = find(systemd::device_properties(blk), "DeviceAllow");
    EXPECT_NE(std::find(allow.begin(), allow.end(), json::array({"block-*", "rm"})), allow.end());
}

TEST(SystemdUnit, Annotations) {
    std::map<std::string, std::string> a = {{"org.systemd.property.TimeoutStopSec", "5"},
                                            {"org.systemd.property.CollectMode", "'inactive-or-failed'"},
                                            {"org.systemd.property.MemoryHigh", "uint64 1000"},
                                            {"org.systemd.property.IOAccounting", "false"},
                                            {"org.other", "x"}};
    std::string sig;
    auto p = systemd::annotation_properties(a);
    EXPECT_EQ(p.size(), 4u);
    EXPECT_EQ(find(p, "TimeoutStopUSec", &sig), 5000000);
    EXPECT_EQ(sig, "t");
    EXPECT_EQ(find(p, "CollectMode", &sig), "inactive-or-failed");
    EXPECT_EQ(sig, "s");
    EXPECT_EQ(find(p, "MemoryHigh", &sig), 1000);
    EXPECT_EQ(sig, "t");
    EXPECT_EQ(find(p, "IOAccounting"), false);
    EXPECT_EQ(error_of([] {
                  systemd::annotation_properties({{"org.systemd.property.A1b", "1"}});
              }),
              "annotations.org.systemd.property.A1b: not a systemd property name (letters only, at least 3)");
    EXPECT_NE(error_of([] { systemd::annotation_properties({{"org.systemd.property.Foo", "what"}}); }), "");
    EXPECT_NE(error_of([] { systemd::annotation_properties({{"org.systemd.property.TimeoutSec", "'x'"}}); }), "");
}

TEST(SystemdUnit, Variants) {
    EXPECT_EQ(systemd::parse_variant("true"), json::array({"b", true}));
    EXPECT_EQ(systemd::parse_variant("-7"), json::array({"i", -7}));
    EXPECT_EQ(systemd::parse_variant("1.5"), json::array({"d", 1.5}));
    EXPECT_EQ(systemd::parse_variant("int64 -3"), json::array({"x", -3}));
    EXPECT_EQ(systemd::parse_variant("\"a b\""), json::array({"s", "a b"}));
    EXPECT_EQ(systemd::parse_variant("['a.service', 'b,c']"), json::array({"as", json::array({"a.service", "b,c"})}));
    EXPECT_NE(error_of([] { systemd::parse_variant("uint32 -1"); }), "");
    EXPECT_NE(error_of([] { systemd::parse_variant("[1, 'a']"); }), "");
}

TEST(SystemdUnit, RangeToBits) {
    EXPECT_EQ(systemd::range_to_bits("0"), std::vector<uint8_t>({1}));
    EXPECT_EQ(systemd::range_to_bits("0-3,8"), std::vector<uint8_t>({0x0f, 0x01}));
    EXPECT_EQ(systemd::range_to_bits("9-10"), std::vector<uint8_t>({0, 0x06}));
    for (const char* bad : {"", "a", "3-1", "1,", "1-", "-1"})
        EXPECT_NE(error_of([&] { systemd::range_to_bits(bad); }), "") << bad;
}
