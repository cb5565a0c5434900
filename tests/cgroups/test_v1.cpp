// cgroup v1 on the real host: a forked child in a uniquely named cgroup, limits read back from the
// files, effects observed from inside (device access, fork under pids.max, freezing).
#include <gtest/gtest.h>

#include <fstream>

#include "base/error.hpp"
#include "runtime/cgroups/cgroups.hpp"
#include "tests/cgroups/helpers.hpp"

using namespace trustme::cgroups;
using cgtest::read_trim;
using nlohmann::json;

namespace {

class V1 : public ::testing::Test {
protected:
    void SetUp() override {
        if (detect() != Mode::Legacy) GTEST_SKIP() << "not a cgroup v1 host";
        base_ = "/trustme-test-" + std::to_string(::getpid());
        mgr_ = Manager::create(base_ + "/c1", "c1");
    }
    void TearDown() override {
        if (child_) child_->stop();
        if (mgr_) {
            try {
                mgr_->thaw();
            } catch (...) {
            }
            try {
                mgr_->destroy();
            } catch (...) {
            }
        }
        // The per-test parent in every hierarchy (the Manager removes only the container's own dir).
        for (const char* c : {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                              "name=systemd", "unified", "hugetlb", "net_cls", "net_prio"})
            if (mgr_) {
                std::string d = mgr_->dir(c);
                if (!d.empty()) ::rmdir(d.substr(0, d.size() - 3).c_str());
            }
    }
    std::string file(const char* controller, const char* name) { return mgr_->dir(controller) + "/" + name; }
    bool mounted(const char* controller) { return !mgr_->dir(controller).empty(); }

    std::string base_;
    std::unique_ptr<Manager> mgr_;
    cgtest::DeviceDir devs_;
    std::unique_ptr<cgtest::Child> child_;
};

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const trustme::Error& e) {
        return e.what();
    }
    return "";
}

TEST_F(V1, ApplyEveryResourceReadBackAndObserve) {
    std::string blk = cgtest::some_block_device();
    json r = {
        {"devices", json::array({{{"allow", false}, {"access", "rwm"}},
                                 {{"allow", true}, {"type", "c"}, {"major", 1}, {"minor", 11}, {"access", "r"}}})},
        {"memory",
         {{"limit", 64 << 20},
          {"reservation", 32 << 20},
          {"swap", 128 << 20},
          {"swappiness", 10},
          {"disableOOMKiller", true},
          {"kernelTCP", 16 << 20}}},
        {"cpu",
         {{"shares", 512},
          {"quota", 50000},
          {"period", 100000},
          {"realtimePeriod", 500000},
          {"cpus", "0"},
          {"mems", "0"}}},
        {"pids", {{"limit", 10}}},
    };
    if (!blk.empty()) {
        auto colon = blk.find(':');
        int64_t major = std::stoll(blk.substr(0, colon)), minor = std::stoll(blk.substr(colon + 1));
        r["blockIO"] = {{"throttleReadBpsDevice", {{{"major", major}, {"minor", minor}, {"rate", 1048576}}}},
                        {"throttleWriteIOPSDevice", {{{"major", major}, {"minor", minor}, {"rate", 100}}}}};
    }
    ASSERT_NO_THROW(validate(r));
    mgr_->create_dirs();
    mgr_->apply(r);

    EXPECT_EQ(read_trim(file("cpu", "cpu.shares")), "512");
    EXPECT_EQ(read_trim(file("cpu", "cpu.cfs_quota_us")), "50000");
    EXPECT_EQ(read_trim(file("cpu", "cpu.cfs_period_us")), "100000");
    EXPECT_EQ(read_trim(file("cpu", "cpu.rt_period_us")), "500000");
    EXPECT_EQ(read_trim(file("cpuset", "cpuset.cpus")), "0");
    EXPECT_EQ(read_trim(file("cpuset", "cpuset.mems")), "0");
    EXPECT_EQ(read_trim(file("memory", "memory.limit_in_bytes")), std::to_string(64 << 20));
    EXPECT_EQ(read_trim(file("memory", "memory.soft_limit_in_bytes")), std::to_string(32 << 20));
    if (cgtest::dir_exists(mgr_->dir("memory")) &&
        ::access(file("memory", "memory.memsw.limit_in_bytes").c_str(), F_OK) == 0) {
        EXPECT_EQ(read_trim(file("memory", "memory.memsw.limit_in_bytes")), std::to_string(128 << 20));
    }
    EXPECT_EQ(read_trim(file("memory", "memory.swappiness")), "10");
    EXPECT_NE(read_trim(file("memory", "memory.oom_control")).find("oom_kill_disable 1"), std::string::npos);
    if (::access(file("memory", "memory.kmem.tcp.limit_in_bytes").c_str(), F_OK) == 0) {
        EXPECT_EQ(read_trim(file("memory", "memory.kmem.tcp.limit_in_bytes")), std::to_string(16 << 20));
    }
    EXPECT_EQ(read_trim(file("pids", "pids.max")), "10");
    if (!blk.empty()) {
        EXPECT_EQ(read_trim(file("blkio", "blkio.throttle.read_bps_device")), blk + " 1048576");
        EXPECT_EQ(read_trim(file("blkio", "blkio.throttle.write_iops_device")), blk + " 100");
    }
    // Device list: only the config's rule and runc's defaults.
    std::string list = read_trim(file("devices", "devices.list"));
    EXPECT_NE(list.find("c 1:11 r\n"), std::string::npos) << list;
    EXPECT_NE(list.find("c 1:3 rwm"), std::string::npos) << list;
    EXPECT_NE(list.find("c 136:* rwm"), std::string::npos) << list;
    EXPECT_EQ(list.find("a *:* rwm"), std::string::npos) << list;

    // Observed from inside.
    child_ = std::make_unique<cgtest::Child>(devs_.dir);
    mgr_->add_process(child_->pid());
    for (const char* c : {"memory", "pids", "devices", "cpu", "freezer", "name=systemd", "unified"})
        if (mounted(c)) {
            EXPECT_EQ(read_trim(file(c, "cgroup.procs")), std::to_string(child_->pid())) << c;
        }
    EXPECT_EQ(child_->run('n'), 0);      // /dev/null: runc default
    EXPECT_EQ(child_->run('r'), 0);      // c 1:11 r: allowed by the config
    EXPECT_EQ(child_->run('w'), EPERM);  // c 1:11 w: not allowed
    EXPECT_EQ(child_->run('b'), EPERM);  // b 7:0: not in the list
    EXPECT_EQ(child_->run('f'), 0);      // fork below pids.max

    auto pids = mgr_->pids();
    ASSERT_EQ(pids.size(), 1u);
    EXPECT_EQ(pids[0], child_->pid());

    // runc update: tighter pids limit is seen by the child's next fork.
    mgr_->update(json{{"pids", {{"limit", 1}}}});
    EXPECT_EQ(read_trim(file("pids", "pids.max")), "1");
    EXPECT_EQ(child_->run('f'), EAGAIN);
    mgr_->update(json{{"pids", {{"limit", -1}}}, {"memory", {{"limit", 96 << 20}, {"swap", 192 << 20}}}});
    EXPECT_EQ(read_trim(file("pids", "pids.max")), "max");
    EXPECT_EQ(read_trim(file("memory", "memory.limit_in_bytes")), std::to_string(96 << 20));
    EXPECT_EQ(child_->run('f'), 0);
    // update never resets the device list
    EXPECT_EQ(child_->run('b'), EPERM);

    // stats in runc's events --stats shape
    json s = mgr_->stats();
    EXPECT_EQ(s["pids"]["current"], 1u);
    EXPECT_GT(s["memory"]["usage"]["usage"].get<uint64_t>(), 0u);
    EXPECT_EQ(s["memory"]["usage"]["limit"], static_cast<uint64_t>(96 << 20));
    EXPECT_TRUE(s["cpu"]["usage"].contains("total"));
    EXPECT_TRUE(s["cpu"]["throttling"].contains("throttledPeriods"));
    EXPECT_EQ(s["cpuset"]["cpus"], json::array({0}));
    for (const char* k : {"cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"}) {
        EXPECT_TRUE(s.contains(k)) << k;
    }
    EXPECT_TRUE(s.contains("blkio"));
}

TEST_F(V1, FreezeThawAndKillAll) {
    if (!mounted("freezer")) GTEST_SKIP() << "no freezer";
    mgr_->create_dirs();
    mgr_->apply(json::object());
    child_ = std::make_unique<cgtest::Child>(devs_.dir);
    mgr_->add_process(child_->pid());
    ASSERT_EQ(child_->run('n'), 0);

    EXPECT_FALSE(mgr_->frozen());
    mgr_->freeze();
    EXPECT_TRUE(mgr_->frozen());
    EXPECT_EQ(read_trim(file("freezer", "freezer.state")), "FROZEN");
    child_->send('n');
    EXPECT_EQ(child_->reply(200), -1);  // a frozen child does not answer
    mgr_->thaw();
    EXPECT_FALSE(mgr_->frozen());
    EXPECT_EQ(child_->reply(), 0);  // ... and answers once thawed

    pid_t pid = child_->pid();
    mgr_->kill_all(SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGKILL);
    EXPECT_FALSE(mgr_->frozen());
}

TEST_F(V1, KillAllWithAnotherSignal) {
    mgr_->create_dirs();
    mgr_->apply(nullptr);
    child_ = std::make_unique<cgtest::Child>(devs_.dir);
    mgr_->add_process(child_->pid());
    ASSERT_EQ(child_->run('n'), 0);
    pid_t pid = child_->pid();
    mgr_->kill_all(SIGTERM);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGTERM);
    EXPECT_FALSE(mgr_->frozen());
}

TEST_F(V1, DestroyRemovesEverythingAlsoFromSavedState) {
    mgr_->create_dirs();
    mgr_->apply(nullptr);  // no linux.resources: still deny-all plus runc's default devices
    std::string list = read_trim(file("devices", "devices.list"));
    EXPECT_NE(list.find("c 1:3 rwm"), std::string::npos) << list;
    EXPECT_EQ(list.find("a *:* rwm"), std::string::npos) << list;
    child_ = std::make_unique<cgtest::Child>(devs_.dir);
    mgr_->add_process(child_->pid());
    std::vector<std::string> dirs;
    for (const char* c :
         {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "name=systemd", "unified"})
        if (mounted(c)) {
            dirs.push_back(mgr_->dir(c));
            EXPECT_TRUE(cgtest::dir_exists(dirs.back())) << dirs.back();
        }
    ASSERT_FALSE(dirs.empty());
    // A sub-cgroup the container made itself (writable cgroupns) goes too.
    ASSERT_EQ(::mkdir((mgr_->dir("memory") + "/inner").c_str(), 0755), 0);

    // "crash": a new process knows only state.json.
    json saved = mgr_->save();
    child_->stop();
    auto loaded = Manager::load(json::parse(saved.dump()));
    loaded->destroy();
    for (auto& d : dirs) EXPECT_FALSE(cgtest::dir_exists(d)) << d;
    EXPECT_NO_THROW(loaded->destroy());  // idempotent
}

TEST_F(V1, KernelRejectedValueNamesFileAndValueAndLeavesNothing) {
    mgr_->create_dirs();
    std::string msg = error_of([&] { mgr_->apply(json{{"cpu", {{"cpus", "4095"}}}}); });
    // The kernel says EINVAL or ERANGE depending on its version; the file and the value are ours.
    EXPECT_EQ(msg.rfind("cgroups: write \"4095\" to " + file("cpuset", "cpuset.cpus") + ": ", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos);
    msg = error_of([&] { mgr_->apply(json{{"cpu", {{"shares", 1}}}}); });
    EXPECT_NE(msg.find("linux.resources.cpu.shares: 1 is out of the kernel's range"), std::string::npos) << msg;
    msg = error_of([&] {
        mgr_->apply(json{{"memory", {{"limit", 4096}, {"swap", 8192}}}, {"cpu", {{"realtimeRuntime", 999999999}}}});
    });
    EXPECT_NE(msg.find("cpu.rt_runtime_us"), std::string::npos) << msg;
    EXPECT_NE(msg.find("999999999"), std::string::npos) << msg;
    // The lifecycle destroys on a failed apply: nothing is left.
    std::string mem = mgr_->dir("memory");
    mgr_->destroy();
    EXPECT_FALSE(cgtest::dir_exists(mem));
}

TEST_F(V1, MissingControllerIsAClearErrorOnlyWhenAskedFor) {
    mgr_->create_dirs();
    EXPECT_NO_THROW(mgr_->apply(json{{"hugepageLimits", json::array()}, {"network", json::object()}}));
    if (!mounted("hugetlb"))
        EXPECT_EQ(
            error_of([&] {
                mgr_->apply(json{{"hugepageLimits", {{{"pageSize", "2MB"}, {"limit", 2097152}}}}});
            }),
            "linux.resources.hugepageLimits: the hugetlb cgroup controller is not mounted on this host (cgroup v1)");
    else {
        mgr_->apply(json{{"hugepageLimits", {{{"pageSize", "2MB"}, {"limit", 2097152}}}}});
        EXPECT_EQ(read_trim(file("hugetlb", "hugetlb.2MB.limit_in_bytes")), "2097152");
    }
    if (!mounted("net_cls"))
        EXPECT_EQ(
            error_of([&] {
                mgr_->apply(json{{"network", {{"classID", 1048577}}}});
            }),
            "linux.resources.network.classID: the net_cls cgroup controller is not mounted on this host (cgroup v1)");
    else {
        mgr_->apply(json{{"network", {{"classID", 1048577}}}});
        EXPECT_EQ(read_trim(file("net_cls", "net_cls.classid")), "1048577");
    }
    if (!mounted("rdma")) {
        EXPECT_EQ(error_of([&] {
                      mgr_->apply(json{{"rdma", {{"mlx5_1", {{"hcaHandles", 3}}}}}});
                  }),
                  "linux.resources.rdma: the rdma cgroup controller is not mounted on this host (cgroup v1)");
    }
    EXPECT_EQ(error_of([&] {
                  mgr_->apply(json{{"unified", {{"memory.high", "1"}}}});
              }).rfind("linux.resources.unified:", 0),
              0u);
}

}  // namespace
