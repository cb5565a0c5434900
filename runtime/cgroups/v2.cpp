// cgroup v2 ("unified"): one directory; controllers enabled through the ancestors'
// cgroup.subtree_control. Files and semantics: Documentation/admin-guide/cgroup-v2.rst; mapping of OCI
// values follows runc's libcontainer/cgroups/fs2.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "base/error.hpp"
#include "base/strings.hpp"
#include "runtime/cgroups/bpf_devices.hpp"
#include "runtime/cgroups/internal.hpp"
#include "base/owned.hpp"

namespace trustme::cgroups::detail {
namespace {

std::string dev_key(const nlohmann::json& d) {
    return std::to_string(d.at("major").get<int64_t>()) + ":" + std::to_string(d.at("minor").get<int64_t>());
}

class UnifiedManager final : public Manager {
public:
    UnifiedManager(std::string root, std::string inner, std::string dir)
        : root_(std::move(root)), inner_(std::move(inner)), dir_(std::move(dir)) {}

    Mode mode() const override { return Mode::Unified; }
    nlohmann::json save() const override {
        return {{"mode", "unified"}, {"path", inner_}, {"root", root_}, {"dir", dir_}};
    }
    std::string dir(const std::string&) const override { return dir_; }
    std::string path_for_namespace() const override {
        return dir_.size() > root_.size() ? dir_.substr(root_.size()) : "/";
    }

    void create_dirs() override {
        std::vector<std::string> made;
        try {
            mkdir_p(dir_, made);
            enable_controllers();
        } catch (...) {
            for (auto it = made.rbegin(); it != made.rend(); ++it) ::rmdir(it->c_str());
            throw;
        }
    }

    void apply(const nlohmann::json& r) override { set(r, true); }
    void update(const nlohmann::json& r) override { set(r, false); }
    void add_process(pid_t pid) override { write_pid(dir_, pid); }

    void freeze() override {
        // cgroup.freeze (kernel 5.2+); the cgroup is frozen once cgroup.events says "frozen 1".
        write_value(dir_, "cgroup.freeze", "1");
        for (int i = 0; i < 2000; ++i) {
            if (read_keyed(dir_, "cgroup.events")["frozen"] == 1) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        write_value(dir_, "cgroup.freeze", "0");
        fail("cgroups: freezing " + dir_ + " did not complete");
    }
    void thaw() override { write_value(dir_, "cgroup.freeze", "0"); }
    bool frozen() override { return try_read(dir_, "cgroup.freeze").value_or("0") == "1"; }

    std::vector<pid_t> pids() override {
        std::vector<pid_t> out;
        collect_pids(dir_, out);
        return out;
    }

    void kill_all(int sig) override {
        // cgroup.kill (kernel 5.14+) kills the whole sub-tree atomically, for SIGKILL only.
        if (sig == SIGKILL && exists(dir_, "cgroup.kill")) {
            write_value(dir_, "cgroup.kill", "1");
            return;
        }
        bool can_freeze = exists(dir_, "cgroup.freeze");
        if (can_freeze) freeze();
        for (pid_t p : pids()) ::kill(p, sig);
        if (can_freeze) thaw();
    }

    void destroy() override { remove_cgroup_dir(dir_); }  // the device programs go with the cgroup

    nlohmann::json stats() override;

private:
    // runc fs2/create.go CreateCgroupPath: every ancestor below the root enables, in its
    // cgroup.subtree_control, all the controllers it has, so the leaf gets them all. Writes only what
    // is missing; when the combined write fails (e.g. a threaded subtree, or processes in an
    // ancestor for domain controllers) each controller is tried alone and failures are left to apply()
    // to report for the resources that need them.
    void enable_controllers() {
        std::string rel = dir_.substr(root_.size());
        std::vector<std::string> parts;
        for (std::string& part : split(rel, '/'))
            if (!part.empty()) parts.push_back(std::move(part));
        std::string cur = root_;
        for (size_t i = 0; i < parts.size(); ++i) {
            auto avail = words(try_read(cur, "cgroup.controllers").value_or(""));
            auto enabled = words(try_read(cur, "cgroup.subtree_control").value_or(""));
            std::vector<std::string> missing;
            for (auto& c : avail)
                if (std::find(enabled.begin(), enabled.end(), c) == enabled.end()) missing.push_back(c);
            if (!missing.empty()) {
                std::string all;
                for (auto& c : missing) all += (all.empty() ? "+" : " +") + c;
                if (try_write(cur, "cgroup.subtree_control", all) != 0)
                    for (auto& c : missing) try_write(cur, "cgroup.subtree_control", "+" + c);
            }
            cur = path_join(cur, parts[i]);
        }
    }

    const std::vector<std::string>& controllers() {
        if (!ctrl_loaded_) {
            ctrl_ = words(try_read(dir_, "cgroup.controllers").value_or(""));
            ctrl_loaded_ = true;
        }
        return ctrl_;
    }
    void need(const std::string& c, const std::string& json_path) {
        auto& cs = controllers();
        if (std::find(cs.begin(), cs.end(), c) == cs.end())
            fail(json_path + ": the " + c + " controller is not available in " + path_join(dir_, "cgroup.controllers") +
                 " (cgroup v2)");
    }

    void set(const nlohmann::json& r, bool creating);
    void set_cpu(const nlohmann::json& c);
    void set_memory(const nlohmann::json& m);
    void set_io(const nlohmann::json& io);

    std::string root_, inner_, dir_;
    std::vector<std::string> ctrl_;
    bool ctrl_loaded_ = false;
};

void UnifiedManager::set(const nlohmann::json& resources, bool creating) {
    // No linux.resources still gets the device rules (deny all + runc's defaults) at create.
    static const nlohmann::json no_resources = nlohmann::json::object();
    const nlohmann::json& r = resources.is_null() ? no_resources : resources;
    validate(r);
    const std::string base = "linux.resources";
    ctrl_loaded_ = false;
    if (creating) attach_device_filter(dir_, device_rules(r));

    if (auto* c = member(r, "cpu")) {
        set_cpu(*c);
        auto cpus = get_str(*c, "cpus", "");
        auto mems = get_str(*c, "mems", "");
        if ((cpus && !cpus->empty()) || (mems && !mems->empty())) need("cpuset", base + ".cpu.cpus");
        if (cpus && !cpus->empty()) write_value(dir_, "cpuset.cpus", *cpus);
        if (mems && !mems->empty()) write_value(dir_, "cpuset.mems", *mems);
    }
    if (auto* m = member(r, "memory")) set_memory(*m);
    if (auto* p = member(r, "pids")) {
        if (auto limit = get_i64(*p, "limit", ""); limit && *limit != 0) {
            need("pids", base + ".pids.limit");
            write_value(dir_, "pids.max", *limit > 0 ? std::to_string(*limit) : "max");
        }
    }
    if (auto* io = member(r, "blockIO")) set_io(*io);
    if (auto* hl = member(r, "hugepageLimits"); hl && !hl->empty()) {
        need("hugetlb", base + ".hugepageLimits");
        for (auto& l : *hl) {
            std::string size = l.at("pageSize").get<std::string>();
            std::string value = std::to_string(l.at("limit").get<uint64_t>());
            write_value(dir_, "hugetlb." + size + ".max", value);
            std::string rsvd = "hugetlb." + size + ".rsvd.max";  // kernel 5.7+, as runc
            if (exists(dir_, rsvd)) write_value(dir_, rsvd, value);
        }
    }
    if (auto* n = member(r, "network")) {
        bool any = get_u64(*n, "classID", "").value_or(0) != 0;
        if (auto* p = member(*n, "priorities"); p && !p->empty()) any = true;
        // net_cls/net_prio exist only in v1; on v2 an eBPF program does that job.
        if (any) fail(base + ".network: net_cls/net_prio are cgroup v1 controllers, not available on cgroup v2");
    }
    if (auto* rd = member(r, "rdma")) {
        auto lines = rdma_lines(*rd);
        if (!lines.empty()) need("rdma", base + ".rdma");
        for (auto& l : lines) write_value(dir_, "rdma.max", l);
    }
    // unified last, so its keys override what was derived above (runc fs2 setUnified).
    if (auto* u = member(r, "unified")) {
        for (auto& [k, v] : u->items()) {
            std::string value = v.get<std::string>();
            int err = try_write(dir_, k, value);
            if (err == 0) continue;
            std::string q = base + ".unified[\"" + k + "\"]";
            if (err == ENOENT) {
                std::string ctrl = k.substr(0, k.find('.'));
                auto& cs = controllers();
                if (ctrl != "cgroup" && std::find(cs.begin(), cs.end(), ctrl) == cs.end())
                    fail(q + ": the " + ctrl + " controller is not available in " +
                         path_join(dir_, "cgroup.controllers"));
            }
            fail(err, q + ": write \"" + value + "\" to " + path_join(dir_, k));
        }
    }
}

void UnifiedManager::set_cpu(const nlohmann::json& c) {
    const std::string p = "linux.resources.cpu";
    const auto [shares, period, burst, rt_period, quota, rt_runtime, idle] = read_cpu(c, p);
    // Real-time group scheduling has no cgroup v2 interface (cgroup-v2.rst: "the cpu controller
    // doesn't support realtime processes"... until RT_GROUP_SCHED is enabled in v2); crun errors too.
    if ((rt_runtime && *rt_runtime) || (rt_period && *rt_period))
        fail(p + ".realtimeRuntime/realtimePeriod: real-time scheduling limits are not supported on cgroup v2");
    bool any = (shares && *shares) || (quota && *quota) || (period && *period) || burst || idle;
    if (!any) return;
    need("cpu", p);
    if (shares && *shares) write_value(dir_, "cpu.weight", std::to_string(shares_to_weight(*shares)));
    // cpu.max "$MAX $PERIOD" (runc fs2/cpu.go): quota <= 0 → "max"; period only when given.
    if ((quota && *quota) || (period && *period)) {
        std::string v = quota && *quota > 0 ? std::to_string(*quota) : "max";
        if (period && *period) v += " " + std::to_string(*period);
        write_value(dir_, "cpu.max", v);
    }
    if (burst) write_value(dir_, "cpu.max.burst", std::to_string(*burst));
    if (idle) write_value(dir_, "cpu.idle", std::to_string(*idle));
}

void UnifiedManager::set_memory(const nlohmann::json& m) {
    const std::string p = "linux.resources.memory";
    int64_t limit = get_i64(m, "limit", p).value_or(0);
    int64_t swap = get_i64(m, "swap", p).value_or(0);
    int64_t reservation = get_i64(m, "reservation", p).value_or(0);
    // swappiness, kernel, kernelTCP and disableOOMKiller have no v2 files; runc fs2 ignores them.
    if (!limit && !swap && !reservation) return;
    need("memory", p);
    int64_t swap2 = swap_to_v2(swap, limit);
    auto str = [](int64_t v) { return v == -1 ? std::string("max") : std::to_string(v); };
    // runc fs2/memory.go: swap first, then max, then low; a missing memory.swap.max (no swap
    // accounting) is fine when asking for "max" or 0.
    if (swap2 != 0) {
        if (exists(dir_, "memory.swap.max")) write_value(dir_, "memory.swap.max", str(swap2));
        else if (swap2 != -1) write_value(dir_, "memory.swap.max", str(swap2));  // fails naming the file
    }
    if (limit != 0) write_value(dir_, "memory.max", str(limit));
    if (reservation != 0) write_value(dir_, "memory.low", str(reservation));
}

void UnifiedManager::set_io(const nlohmann::json& io) {
    const std::string p = "linux.resources.blockIO";
    auto weight = get_u64(io, "weight", p);
    auto* wd = member(io, "weightDevice");
    bool any = (weight && *weight) || (wd && !wd->empty());
    for (auto key :
         {"throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"})
        if (auto* l = member(io, key); l && !l->empty()) any = true;
    if (!any) return;  // leafWeight has no v2 equivalent (runc ignores it)
    need("io", p);
    // BFQ takes blkio-style weights directly in io.bfq.weight; io.weight wants [1, 10000]
    // (runc fs2/io.go).
    bool bfq = exists(dir_, "io.bfq.weight");
    if (weight && *weight) {
        if (bfq) write_value(dir_, "io.bfq.weight", std::to_string(*weight));
        else write_value(dir_, "io.weight", "default " + std::to_string(blkio_weight_to_io_weight(*weight)));
    }
    if (wd)
        for (auto& d : *wd)
            if (auto w = get_u64(d, "weight", p); w && *w) {
                if (bfq) write_value(dir_, "io.bfq.weight", dev_key(d) + " " + std::to_string(*w));
                else write_value(dir_, "io.weight", dev_key(d) + " " + std::to_string(blkio_weight_to_io_weight(*w)));
            }
    const std::pair<const char*, const char*> throttles[] = {
        {"throttleReadBpsDevice", "rbps"},
        {"throttleWriteBpsDevice", "wbps"},
        {"throttleReadIOPSDevice", "riops"},
        {"throttleWriteIOPSDevice", "wiops"},
    };
    for (auto [key, name] : throttles)
        if (auto* l = member(io, key))
            for (auto& d : *l)
                write_value(dir_, "io.max",
                            dev_key(d) + " " + name + "=" + std::to_string(d.at("rate").get<uint64_t>()));
}

nlohmann::json UnifiedManager::stats() {
    // The "data" object of runc events --stats (runc types/events.go), filled the way runc fs2 does.
    nlohmann::json s = empty_stats();
    auto cpu = read_keyed(dir_, "cpu.stat");  // usec → ns
    s["cpu"] = {{"usage",
                 {{"total", cpu["usage_usec"] * 1000},
                  {"kernel", cpu["system_usec"] * 1000},
                  {"user", cpu["user_usec"] * 1000}}},
                {"throttling",
                 {{"periods", cpu["nr_periods"]},
                  {"throttledPeriods", cpu["nr_throttled"]},
                  {"throttledTime", cpu["throttled_usec"] * 1000}}}};
    if (exists(dir_, "cpuset.cpus.effective"))
        s["cpuset"] = cpuset_stats(dir_, "cpuset.cpus.effective", "cpuset.mems.effective");
    if (exists(dir_, "memory.current")) {
        auto raw = read_keyed(dir_, "memory.stat");
        auto val = [&](const char* f) { return parse_u64(try_read(dir_, f).value_or("0")); };
        uint64_t cur = val("memory.current"), max = val("memory.max");
        uint64_t swap_cur = val("memory.swap.current"), swap_max = val("memory.swap.max");
        auto events = read_keyed(dir_, "memory.events");
        auto sat_add = [](uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; };
        s["memory"] = {
            {"cache", raw["file"]},
            {"usage", {{"usage", cur}, {"limit", max}, {"max", val("memory.peak")}, {"failcnt", events["max"]}}},
            // runc reports v1-style memory+swap here (fs2 statMemory).
            {"swap", {{"usage", sat_add(cur, swap_cur)}, {"limit", sat_add(max, swap_max)}, {"failcnt", 0}}},
            {"kernel", {{"usage", 0}, {"limit", 0}, {"failcnt", 0}}},
            {"kernelTCP", {{"usage", 0}, {"limit", 0}, {"failcnt", 0}}},
            {"raw", raw}};
    }
    if (exists(dir_, "pids.current")) {
        auto max = try_read(dir_, "pids.max").value_or("max");
        s["pids"] = {{"current", parse_u64(try_read(dir_, "pids.current").value_or("0"))},
                     {"limit", max == "max" ? 0 : parse_u64(max)}};
    }
    if (auto text = try_read(dir_, "io.stat")) {
        nlohmann::json bytes = nlohmann::json::array(), ios = nlohmann::json::array();
        for (const std::string& line : split(*text, '\n')) {
            auto w = words(line);
            if (w.empty()) continue;
            auto colon = w[0].find(':');
            if (colon == std::string::npos) continue;
            uint64_t major = parse_u64(w[0].substr(0, colon)), minor = parse_u64(w[0].substr(colon + 1));
            for (size_t i = 1; i < w.size(); ++i) {
                auto eq = w[i].find('=');
                if (eq == std::string::npos) continue;
                std::string k = w[i].substr(0, eq);
                uint64_t v = parse_u64(w[i].substr(eq + 1));
                auto entry = [&](const char* op) {
                    return nlohmann::json{{"major", major}, {"minor", minor}, {"op", op}, {"value", v}};
                };
                if (k == "rbytes") bytes.push_back(entry("Read"));
                if (k == "wbytes") bytes.push_back(entry("Write"));
                if (k == "rios") ios.push_back(entry("Read"));
                if (k == "wios") ios.push_back(entry("Write"));
            }
        }
        s["blkio"] = {{"ioServiceBytesRecursive", bytes}, {"ioServicedRecursive", ios}};
    }
    if (auto cs = controllers(); std::find(cs.begin(), cs.end(), "hugetlb") != cs.end()) {
        nlohmann::json hs = nlohmann::json::object();
        if (UniqueDir d{::opendir(dir_.c_str())}) {
            while (dirent* e = ::readdir(d.get())) {
                std::string n = e->d_name;  // hugetlb.<size>.current
                if (n.rfind("hugetlb.", 0) != 0 || n.size() < 16 || n.substr(n.size() - 8) != ".current") continue;
                std::string size = n.substr(8, n.size() - 16);
                if (size.find('.') != std::string::npos) continue;  // rsvd.current
                hs[size] = {{"usage", parse_u64(try_read(dir_, n).value_or("0"))},
                            {"max", 0},
                            {"failcnt", read_keyed(dir_, "hugetlb." + size + ".events")["max"]}};
            }
        }
        s["hugetlb"] = hs;
    }
    return s;
}

}  // namespace

std::unique_ptr<Manager> make_unified(const std::string& inner, bool absolute) {
    std::string root = kCgroupRoot;
    std::string base = root;
    if (!absolute) {
        // runc fs2/defaultpath.go: below the parent of our own cgroup (ours has processes in it, so
        // it cannot enable controllers for a child: the "no internal processes" rule).
        std::string own = own_cgroups()[""];
        std::string mount_root = "/";
        for (auto& m : cgroup_mounts())
            if (m.v2 && m.mountpoint == root) mount_root = m.root;
        if (mount_root != "/" && own.rfind(mount_root, 0) == 0) own = own.substr(mount_root.size());
        base = path_join(root, dirname(own.empty() ? "/" : own));
    }
    return std::make_unique<UnifiedManager>(root, inner, path_join(base, inner));
}

std::unique_ptr<Manager> load_unified(const nlohmann::json& saved) {
    try {
        return std::make_unique<UnifiedManager>(saved.at("root").get<std::string>(), saved.value("path", ""),
                                                saved.at("dir").get<std::string>());
    } catch (const nlohmann::json::exception& e) {
        fail(std::string("cgroups: bad saved v2 state: ") + e.what());
    }
}

}  // namespace trustme::cgroups::detail
