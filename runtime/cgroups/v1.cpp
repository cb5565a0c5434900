// cgroup v1 ("legacy", also hybrid hosts): one directory per mounted hierarchy.
// Files and their semantics: Documentation/admin-guide/cgroup-v1/*.rst; write order and quirks follow
// runc's libcontainer/cgroups/fs.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "base/error.hpp"
#include "base/strings.hpp"
#include "runtime/cgroups/internal.hpp"
#include "base/owned.hpp"

namespace trustme::cgroups::detail {
namespace {

struct Hierarchy {
    std::vector<std::string> controllers;  // e.g. {"cpu"} or {"cpu","cpuacct"} or {"name=systemd"}
    std::string mountpoint;
    std::string dir;  // the container's directory in this hierarchy
};

// Hugepage sizes the kernel supports, as hugetlb file names spell them ("2MB", "1GB"), from
// /sys/kernel/mm/hugepages/hugepages-<N>kB (runc cgroups.HugePageSizes does the same).
std::vector<std::string> hugepage_sizes() {
    std::vector<std::string> out;
    UniqueDir d(::opendir("/sys/kernel/mm/hugepages"));
    if (!d) return out;
    while (dirent* e = ::readdir(d.get())) {
        std::string n = e->d_name;
        if (n.rfind("hugepages-", 0) != 0) continue;
        uint64_t kb = parse_u64(n.substr(10));
        const char* units[] = {"KB", "MB", "GB", "TB", "PB"};
        int u = 0;
        while (kb >= 1024 && kb % 1024 == 0 && u < 4) {
            kb /= 1024;
            ++u;
        }
        out.push_back(std::to_string(kb) + units[u]);
    }
    return out;
}

class LegacyManager final : public Manager {
public:
    LegacyManager(std::string inner, std::vector<Hierarchy> h) : inner_(std::move(inner)), hier_(std::move(h)) {}

    Mode mode() const override { return Mode::Legacy; }

    nlohmann::json save() const override {
        nlohmann::json paths = nlohmann::json::object();
        nlohmann::json mounts = nlohmann::json::object();
        for (auto& h : hier_)
            for (auto& c : h.controllers) {
                paths[c] = h.dir;
                mounts[c] = h.mountpoint;
            }
        return {{"mode", "legacy"}, {"path", inner_}, {"paths", paths}, {"mountpoints", mounts}};
    }

    std::string dir(const std::string& controller) const override {
        const Hierarchy* h = find(controller);
        return h ? h->dir : "";
    }

    std::string path_for_namespace() const override {
        for (const char* c : {"memory", "devices", "pids", "cpu", "freezer", "name=systemd"})
            if (auto* h = find(c)) return h->dir.substr(h->mountpoint.size());
        return inner_;
    }

    void create_dirs() override {
        std::vector<std::string> made;
        try {
            for (auto& h : hier_) {
                mkdir_p(h.dir, made);
                if (has(h, "cpuset")) init_cpuset(h);
            }
        } catch (...) {
            for (auto it = made.rbegin(); it != made.rend(); ++it) ::rmdir(it->c_str());
            throw;
        }
    }

    void apply(const nlohmann::json& r) override { set(r, true); }
    void update(const nlohmann::json& r) override { set(r, false); }

    void add_process(pid_t pid) override {
        for (auto& h : hier_) write_pid(h.dir, pid);
    }

    void freeze() override {
        const Hierarchy& h = need("freezer", "cgroups: freeze");
        // The freezer may sit in FREEZING while tasks are in uninterruptible sleep; runc rewrites
        // FROZEN in a loop and thaws every few rounds to let stuck tasks move. Bounded: ~2 s.
        for (int i = 0; i < 2000; ++i) {
            if (i % 50 == 49) write_value(h.dir, "freezer.state", "THAWED");
            write_value(h.dir, "freezer.state", "FROZEN");
            if (read_value(h.dir, "freezer.state") == "FROZEN") return;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        write_value(h.dir, "freezer.state", "THAWED");
        fail("cgroups: freezing " + h.dir + " did not complete (tasks stuck in FREEZING)");
    }

    void thaw() override {
        const Hierarchy& h = need("freezer", "cgroups: thaw");
        write_value(h.dir, "freezer.state", "THAWED");
    }

    bool frozen() override {
        const Hierarchy* h = find("freezer");
        if (!h) return false;
        auto s = try_read(h->dir, "freezer.state");
        return s && *s != "THAWED";
    }

    std::vector<pid_t> pids() override {
        std::vector<pid_t> out;
        for (const char* c : {"pids", "freezer", "memory", "devices", "cpu", "name=systemd"})
            if (auto* h = find(c)) {
                collect_pids(h->dir, out);
                return out;
            }
        if (!hier_.empty()) collect_pids(hier_.front().dir, out);
        return out;
    }

    void kill_all(int sig) override {
        // Freeze first so nothing forks between listing and signalling (runc signalAllProcesses).
        bool can_freeze = find("freezer") && path_exists_dir(find("freezer")->dir);
        if (can_freeze) freeze();
        for (pid_t p : pids()) ::kill(p, sig);
        if (can_freeze) thaw();
    }

    void destroy() override {
        std::string errors;
        for (auto& h : hier_) {
            try {
                remove_cgroup_dir(h.dir);
            } catch (const Error& e) {
                if (!errors.empty()) errors += "; ";
                errors += e.what();
            }
        }
        if (!errors.empty()) fail(errors);
    }

    nlohmann::json stats() override;

private:
    static bool has(const Hierarchy& h, const std::string& c) {
        return std::find(h.controllers.begin(), h.controllers.end(), c) != h.controllers.end();
    }
    static bool path_exists_dir(const std::string& d) { return ::access(d.c_str(), F_OK) == 0; }
    const Hierarchy* find(const std::string& c) const {
        for (auto& h : hier_)
            if (has(h, c)) return &h;
        return nullptr;
    }
    const Hierarchy& need(const std::string& c, const std::string& what) const {
        auto* h = find(c);
        if (!h) fail(what + ": the " + c + " controller is not mounted (cgroup v1)");
        return *h;
    }
    // A resource asked for by the config needs its controller; name the JSON path.
    const Hierarchy& need_for(const std::string& c, const std::string& json_path) const {
        auto* h = find(c);
        if (!h) fail(json_path + ": the " + c + " cgroup controller is not mounted on this host (cgroup v1)");
        return *h;
    }

    // cpuset.cpus/mems start empty in a new v1 cpuset cgroup and a task cannot join until both are
    // set (cgroup-v1/cpusets.rst); copy them down from the parent at every level, as runc does.
    void init_cpuset(const Hierarchy& h) {
        std::string rel = h.dir.substr(h.mountpoint.size());
        std::string cur = h.mountpoint;
        for (const std::string& part : split(rel, '/')) {
            if (part.empty()) continue;
            std::string parent = cur;
            cur = path_join(cur, part);
            for (const char* f : {"cpuset.cpus", "cpuset.mems"}) {
                if (read_value(cur, f).empty()) write_value(cur, f, read_value(parent, f));
            }
        }
    }

    void set(const nlohmann::json& r, bool creating);
    void set_cpu(const nlohmann::json& c);
    void set_memory(const nlohmann::json& m);
    void set_blkio(const nlohmann::json& io);

    std::string inner_;
    std::vector<Hierarchy> hier_;
};

void LegacyManager::set(const nlohmann::json& resources, bool creating) {
    // No linux.resources still gets the device rules (deny all + runc's defaults) at create.
    static const nlohmann::json no_resources = nlohmann::json::object();
    const nlohmann::json& r = resources.is_null() ? no_resources : resources;
    validate(r);
    const std::string base = "linux.resources";
    if (member(r, "unified") && !member(r, "unified")->empty())
        fail(base + ".unified: not supported on cgroup v1 hosts (runc: \"cannot use unified on cgroup v1\")");

    if (auto* c = member(r, "cpu")) {
        auto cpus = get_str(*c, "cpus", "");
        auto mems = get_str(*c, "mems", "");
        if ((cpus && !cpus->empty()) || (mems && !mems->empty())) {
            auto& h = need_for("cpuset", base + ".cpu.cpus");
            if (cpus && !cpus->empty()) write_value(h.dir, "cpuset.cpus", *cpus);
            if (mems && !mems->empty()) write_value(h.dir, "cpuset.mems", *mems);
        }
    }
    // Devices only at create: runc update does not take device rules, and rewriting "a" on a running
    // container would briefly deny everything.
    if (creating) {
        auto rules = device_rules(r);
        if (auto* h = find("devices")) {
            for (auto& rule : rules)
                write_value(h->dir, rule.allow ? "devices.allow" : "devices.deny", v1_rule_string(rule));
        } else {
            // runc fs.go: "devices cgroup is hard requirement for container security".
            fail(
                "cgroups: the devices controller is not mounted (cgroup v1): refusing to create a container "
                "without device isolation");
        }
    }
    if (auto* m = member(r, "memory")) set_memory(*m);
    if (auto* c = member(r, "cpu")) set_cpu(*c);
    if (auto* p = member(r, "pids")) {
        if (auto limit = get_i64(*p, "limit", ""); limit && *limit != 0) {
            // runc: 0 = unset, negative = unlimited.
            auto& h = need_for("pids", base + ".pids.limit");
            write_value(h.dir, "pids.max", *limit > 0 ? std::to_string(*limit) : "max");
        }
    }
    if (auto* io = member(r, "blockIO")) set_blkio(*io);
    if (auto* hl = member(r, "hugepageLimits"); hl && !hl->empty()) {
        auto& h = need_for("hugetlb", base + ".hugepageLimits");
        for (auto& l : *hl) {
            std::string size = l.at("pageSize").get<std::string>();
            std::string value = std::to_string(l.at("limit").get<uint64_t>());
            write_value(h.dir, "hugetlb." + size + ".limit_in_bytes", value);
            // Reservation accounting (kernel 5.7+), written too when present, as runc does.
            std::string rsvd = "hugetlb." + size + ".rsvd.limit_in_bytes";
            if (exists(h.dir, rsvd)) write_value(h.dir, rsvd, value);
        }
    }
    if (auto* n = member(r, "network")) {
        if (auto id = get_u64(*n, "classID", ""); id && *id != 0)
            write_value(need_for("net_cls", base + ".network.classID").dir, "net_cls.classid", std::to_string(*id));
        if (auto* prios = member(*n, "priorities"); prios && !prios->empty()) {
            auto& h = need_for("net_prio", base + ".network.priorities");
            for (auto& p : *prios)
                write_value(h.dir, "net_prio.ifpriomap",
                            p.at("name").get<std::string>() + " " + std::to_string(p.at("priority").get<uint64_t>()));
        }
    }
    if (auto* rd = member(r, "rdma")) {
        auto lines = rdma_lines(*rd);
        if (!lines.empty()) {
            auto& h = need_for("rdma", base + ".rdma");
            for (auto& l : lines) write_value(h.dir, "rdma.max", l);
        }
    }
}

void LegacyManager::set_cpu(const nlohmann::json& c) {
    const std::string p = "linux.resources.cpu";
    const auto [shares, period, burst, rt_period, quota, rt_runtime, idle] = read_cpu(c, p);
    bool any = (shares && *shares) || (quota && *quota) || (period && *period) || burst ||
               (rt_runtime && *rt_runtime) || (rt_period && *rt_period) || idle;
    if (!any) return;
    auto& h = need_for("cpu", p);
    // Real-time: period before runtime (runc fs/cpu.go setRtSched).
    if (rt_period && *rt_period) write_value(h.dir, "cpu.rt_period_us", std::to_string(*rt_period));
    if (rt_runtime && *rt_runtime) write_value(h.dir, "cpu.rt_runtime_us", std::to_string(*rt_runtime));
    if (shares && *shares) {
        write_value(h.dir, "cpu.shares", std::to_string(*shares));
        // The kernel clamps silently to [2, 262144]; runc reads back and reports the clamp.
        uint64_t got = parse_u64(read_value(h.dir, "cpu.shares"));
        if (got != *shares)
            fail(p + ".shares: " + std::to_string(*shares) + " is out of the kernel's range (it set " +
                 std::to_string(got) + " in " + path_join(h.dir, "cpu.shares") + ")");
    }
    // A new period may be rejected against the old quota; runc then writes the quota first.
    bool quota_done = false;
    if (period && *period) {
        int err = try_write(h.dir, "cpu.cfs_period_us", std::to_string(*period));
        if (err == EINVAL && quota && *quota) {
            write_value(h.dir, "cpu.cfs_quota_us", std::to_string(*quota));
            quota_done = true;
            write_value(h.dir, "cpu.cfs_period_us", std::to_string(*period));
        } else if (err) {
            write_value(h.dir, "cpu.cfs_period_us", std::to_string(*period));  // rethrows with the context
        }
    }
    if (quota && *quota && !quota_done) write_value(h.dir, "cpu.cfs_quota_us", std::to_string(*quota));
    if (burst) write_value(h.dir, "cpu.cfs_burst_us", std::to_string(*burst));
    if (idle) write_value(h.dir, "cpu.idle", std::to_string(*idle));
}

void LegacyManager::set_memory(const nlohmann::json& m) {
    const std::string p = "linux.resources.memory";
    int64_t limit = get_i64(m, "limit", p).value_or(0);
    int64_t swap = get_i64(m, "swap", p).value_or(0);
    int64_t reservation = get_i64(m, "reservation", p).value_or(0);
    auto kernel = get_i64(m, "kernel", p);
    auto kernel_tcp = get_i64(m, "kernelTCP", p);
    auto swappiness = get_u64(m, "swappiness", p);
    auto no_oom = get_bool(m, "disableOOMKiller", p);
    bool any = limit || swap || reservation || (kernel && *kernel) || (kernel_tcp && *kernel_tcp) || swappiness ||
               (no_oom && *no_oom);
    if (!any) return;
    auto& h = need_for("memory", p);
    // runc fs/memory.go setMemoryAndSwap: 0 means unset; memory -1 with swap unset means both
    // unlimited; with both set, order the writes so the kernel's memsw >= limit check holds at every step.
    if (limit == -1 && swap == 0) swap = -1;
    auto mem = [&](int64_t v) { write_value(h.dir, "memory.limit_in_bytes", std::to_string(v)); };
    auto memsw = [&](int64_t v) { write_value(h.dir, "memory.memsw.limit_in_bytes", std::to_string(v)); };
    if (limit != 0 && swap != 0) {
        uint64_t cur = parse_u64(read_value(h.dir, "memory.limit_in_bytes"));
        if (swap == -1 || cur < static_cast<uint64_t>(swap)) {
            memsw(swap);
            mem(limit);
        } else {
            mem(limit);
            memsw(swap);
        }
    } else {
        if (limit != 0) mem(limit);
        if (swap != 0) {
            // Without swap accounting the file is absent; unlimited swap is then what we have already.
            if (swap == -1 && !exists(h.dir, "memory.memsw.limit_in_bytes")) {
            } else {
                memsw(swap);
            }
        }
    }
    if (reservation != 0) write_value(h.dir, "memory.soft_limit_in_bytes", std::to_string(reservation));
    // Kernel memory limits: deprecated (kernel 5.4+), ignored by newer kernels and by runc 1.2+; written
    // only where the file still exists.
    if (kernel && *kernel && exists(h.dir, "memory.kmem.limit_in_bytes"))
        write_value(h.dir, "memory.kmem.limit_in_bytes", std::to_string(*kernel));
    if (kernel_tcp && *kernel_tcp && exists(h.dir, "memory.kmem.tcp.limit_in_bytes"))
        write_value(h.dir, "memory.kmem.tcp.limit_in_bytes", std::to_string(*kernel_tcp));
    if (swappiness) write_value(h.dir, "memory.swappiness", std::to_string(*swappiness));
    if (no_oom && *no_oom) write_value(h.dir, "memory.oom_control", "1");
}

void LegacyManager::set_blkio(const nlohmann::json& io) {
    const std::string p = "linux.resources.blockIO";
    auto weight = get_u64(io, "weight", p);
    auto leaf = get_u64(io, "leafWeight", p);
    auto* wd = member(io, "weightDevice");
    bool any = (weight && *weight) || (leaf && *leaf) || (wd && !wd->empty());
    for (auto key :
         {"throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"})
        if (auto* l = member(io, key); l && !l->empty()) any = true;
    if (!any) return;
    auto& h = need_for("blkio", p);
    // CFQ's blkio.weight is gone with the legacy block layer; BFQ provides blkio.bfq.weight (runc
    // fs/blkio.go detectWeightFilenames picks whichever exists).
    bool cfq = exists(h.dir, "blkio.weight");
    std::string wfile = cfq ? "blkio.weight" : "blkio.bfq.weight";
    std::string wdfile = cfq ? "blkio.weight_device" : "blkio.bfq.weight_device";
    if (weight && *weight) write_value(h.dir, wfile, std::to_string(*weight));
    if (leaf && *leaf) write_value(h.dir, "blkio.leaf_weight", std::to_string(*leaf));
    if (wd)
        for (auto& d : *wd) {
            std::string dev =
                std::to_string(d.at("major").get<int64_t>()) + ":" + std::to_string(d.at("minor").get<int64_t>());
            if (auto w = get_u64(d, "weight", p); w && *w) write_value(h.dir, wdfile, dev + " " + std::to_string(*w));
            if (auto w = get_u64(d, "leafWeight", p); w && *w)
                write_value(h.dir, "blkio.leaf_weight_device", dev + " " + std::to_string(*w));
        }
    const std::pair<const char*, const char*> throttles[] = {
        {"throttleReadBpsDevice", "blkio.throttle.read_bps_device"},
        {"throttleWriteBpsDevice", "blkio.throttle.write_bps_device"},
        {"throttleReadIOPSDevice", "blkio.throttle.read_iops_device"},
        {"throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"},
    };
    for (auto [key, file] : throttles)
        if (auto* l = member(io, key))
            for (auto& d : *l)
                write_value(h.dir, file,
                            std::to_string(d.at("major").get<int64_t>()) + ":" +
                                std::to_string(d.at("minor").get<int64_t>()) + " " +
                                std::to_string(d.at("rate").get<uint64_t>()));
}

// blkio "maj:min Op value" lines → runc BlkioStatEntry list.
nlohmann::json blkio_entries(const std::string& dir, const char* file) {
    nlohmann::json out = nlohmann::json::array();
    auto text = try_read(dir, file);
    if (!text) return out;
    for (const std::string& line : split(*text, '\n')) {
        auto w = words(line);
        if (w.size() < 3) continue;  // "Total N" has no device
        const std::string &dev = w[0], &op = w[1], &value = w[2];
        auto colon = dev.find(':');
        if (colon == std::string::npos) continue;
        out.push_back({{"major", parse_u64(dev.substr(0, colon))},
                       {"minor", parse_u64(dev.substr(colon + 1))},
                       {"op", op},
                       {"value", parse_u64(value)}});
    }
    return out;
}

nlohmann::json memory_entry(const std::string& dir, const std::string& prefix) {
    // runc MemoryEntry: limit, usage, max, failcnt.
    auto v = [&](const char* f) { return parse_u64(try_read(dir, prefix + f).value_or("0")); };
    return {{"limit", v("limit_in_bytes")},
            {"usage", v("usage_in_bytes")},
            {"max", v("max_usage_in_bytes")},
            {"failcnt", v("failcnt")}};
}

std::vector<uint64_t> u64_list(const std::string& dir, const char* file) {
    std::vector<uint64_t> out;
    auto text = try_read(dir, file);
    if (!text) return out;
    for (const std::string& v : words(*text)) out.push_back(parse_u64(v));
    return out;
}

nlohmann::json LegacyManager::stats() {
    // The "data" object of runc events --stats: runc types/events.go Stats (key names from its json
    // tags; every top-level key is present, as Go encodes non-pointer structs).
    nlohmann::json s = empty_stats();
    nlohmann::json cpu = {{"usage", nlohmann::json::object()}, {"throttling", nlohmann::json::object()}};
    if (auto* h = find("cpuacct")) {
        static const double ns_per_tick = 1e9 / static_cast<double>(::sysconf(_SC_CLK_TCK));
        auto st = read_keyed(h->dir, "cpuacct.stat");  // user/system in USER_HZ ticks
        cpu["usage"] = {{"total", parse_u64(try_read(h->dir, "cpuacct.usage").value_or("0"))},
                        {"percpu", u64_list(h->dir, "cpuacct.usage_percpu")},
                        {"percpu_kernel", u64_list(h->dir, "cpuacct.usage_percpu_sys")},
                        {"percpu_user", u64_list(h->dir, "cpuacct.usage_percpu_user")},
                        {"kernel", static_cast<uint64_t>(static_cast<double>(st["system"]) * ns_per_tick)},
                        {"user", static_cast<uint64_t>(static_cast<double>(st["user"]) * ns_per_tick)}};
    }
    if (auto* h = find("cpu")) {
        auto st = read_keyed(h->dir, "cpu.stat");
        cpu["throttling"] = {{"periods", st["nr_periods"]},
                             {"throttledPeriods", st["nr_throttled"]},
                             {"throttledTime", st["throttled_time"]}};
    }
    s["cpu"] = cpu;
    if (auto* h = find("cpuset")) s["cpuset"] = cpuset_stats(h->dir, "cpuset.cpus", "cpuset.mems");
    if (auto* h = find("memory")) {
        auto raw = read_keyed(h->dir, "memory.stat");
        nlohmann::json mem = {{"cache", raw["cache"]},
                              {"usage", memory_entry(h->dir, "memory.")},
                              {"swap", memory_entry(h->dir, "memory.memsw.")},
                              {"kernel", memory_entry(h->dir, "memory.kmem.")},
                              {"kernelTCP", memory_entry(h->dir, "memory.kmem.tcp.")},
                              {"raw", raw}};
        // runc: use_hierarchy is always 1 on current kernels.
        s["memory"] = mem;
    }
    if (auto* h = find("pids")) {
        auto max = try_read(h->dir, "pids.max").value_or("max");
        s["pids"] = {{"current", parse_u64(try_read(h->dir, "pids.current").value_or("0"))},
                     {"limit", max == "max" ? 0 : parse_u64(max)}};  // runc reports "max" as 0
    }
    if (auto* h = find("blkio")) {
        // With CFQ gone, the throttle files carry the per-device totals (runc getBlkioStat falls back
        // to them, then to BFQ's).
        bool bfq = exists(h->dir, "blkio.bfq.io_service_bytes_recursive");
        s["blkio"] = {{"ioServiceBytesRecursive", blkio_entries(h->dir, "blkio.throttle.io_service_bytes_recursive")},
                      {"ioServicedRecursive", blkio_entries(h->dir, "blkio.throttle.io_serviced_recursive")}};
        if (bfq && s["blkio"]["ioServiceBytesRecursive"].empty()) {
            s["blkio"]["ioServiceBytesRecursive"] = blkio_entries(h->dir, "blkio.bfq.io_service_bytes_recursive");
            s["blkio"]["ioServicedRecursive"] = blkio_entries(h->dir, "blkio.bfq.io_serviced_recursive");
        }
    }
    if (auto* h = find("hugetlb")) {
        nlohmann::json hs = nlohmann::json::object();
        for (auto& size : hugepage_sizes()) {
            std::string pre = "hugetlb." + size + ".";
            hs[size] = {{"usage", parse_u64(try_read(h->dir, pre + "usage_in_bytes").value_or("0"))},
                        {"max", parse_u64(try_read(h->dir, pre + "max_usage_in_bytes").value_or("0"))},
                        {"failcnt", parse_u64(try_read(h->dir, pre + "failcnt").value_or("0"))}};
        }
        s["hugetlb"] = hs;
    }
    return s;
}

std::vector<Hierarchy> hierarchies_from_saved(const nlohmann::json& saved) {
    std::vector<Hierarchy> out;
    const auto& paths = saved.at("paths");
    const nlohmann::json empty = nlohmann::json::object();
    const auto& mounts = saved.contains("mountpoints") ? saved.at("mountpoints") : empty;
    for (auto& [c, d] : paths.items()) {
        std::string dir = d.get<std::string>();
        auto it = std::find_if(out.begin(), out.end(), [&](const Hierarchy& h) { return h.dir == dir; });
        if (it != out.end()) {
            it->controllers.push_back(c);
            continue;
        }
        out.push_back({{c}, mounts.contains(c) ? mounts.at(c).get<std::string>() : kCgroupRoot, dir});
    }
    return out;
}

}  // namespace

std::unique_ptr<Manager> make_legacy(const std::string& inner, bool absolute) {
    std::vector<Hierarchy> hier;
    std::map<std::string, std::string> own;
    if (!absolute) own = own_cgroups();
    for (auto& m : cgroup_mounts()) {
        // Hybrid hosts: runc's fs driver also creates and joins the container's cgroup in the cgroup2
        // tree at /sys/fs/cgroup/unified (fs.go: `NameGroup{GroupName: "", Join: true}` when
        // IsCgroup2HybridMode), so /proc/<pid>/cgroup's "0::" line names the container there too. No
        // limits are written there; controllers bound to that tree (here: hugetlb) are not used.
        if (m.v2 && m.mountpoint != std::string(kCgroupRoot) + "/unified") continue;
        if (m.v2) m.controllers = {"unified"};
        if (m.controllers.empty()) continue;
        std::string base = m.mountpoint;
        if (!absolute) {
            // runc fs/paths.go subsysPath: relative to this process's own cgroup in the hierarchy,
            // taken relative to the mount's root (matters inside a container with its own cgroupns).
            auto it = own.find(m.v2 ? std::string() : m.controllers.front());
            std::string mine = it == own.end() ? "/" : it->second;
            if (m.root != "/" && mine.rfind(m.root, 0) == 0) mine = mine.substr(m.root.size());
            base = path_join(m.mountpoint, mine);
        }
        hier.push_back({m.controllers, m.mountpoint, path_join(base, inner)});
    }
    if (hier.empty()) fail("cgroups: no cgroup v1 hierarchy is mounted below " + std::string(kCgroupRoot));
    return std::make_unique<LegacyManager>(inner, std::move(hier));
}

std::unique_ptr<Manager> load_legacy(const nlohmann::json& saved) {
    try {
        return std::make_unique<LegacyManager>(saved.value("path", ""), hierarchies_from_saved(saved));
    } catch (const nlohmann::json::exception& e) {
        fail(std::string("cgroups: bad saved v1 state: ") + e.what());
    }
}

}  // namespace trustme::cgroups::detail
