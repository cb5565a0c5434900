// linux.resources validation without side effects: types and the ranges runc checks itself. Values
// only the kernel can judge (a cpuset outside the parent's, a limit below usage) fail in apply() with
// the file and the value.
#include "base/error.hpp"
#include "base/strings.hpp"
#include "runtime/cgroups/internal.hpp"

namespace trustme::cgroups {
namespace {
using namespace detail;

void check_object(const nlohmann::json& v, const std::string& path) {
    if (!v.is_object()) fail(path + ": expected an object, got " + v.dump());
}

void check_array(const nlohmann::json& v, const std::string& path) {
    if (!v.is_array()) fail(path + ": expected an array, got " + v.dump());
}

// "0-3,5,7-8": the kernel's cpulist format (Documentation/admin-guide/cgroup-v1/cpusets.rst).
void check_list(const std::string& s, const std::string& path) {
    if (s.empty()) return;  // empty = inherit from the parent
    size_t i = 0;
    auto number = [&]() {
        size_t start = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        if (i == start) fail(path + ": invalid list \"" + s + "\" (want e.g. \"0-3,5\")");
        auto n = parse_decimal<uint32_t>(std::string_view(s).substr(start, i - start));
        if (!n) fail(path + ": number out of range in \"" + s + "\"");
        return *n;
    };
    for (;;) {
        auto a = number();
        if (i < s.size() && s[i] == '-') {
            ++i;
            if (number() < a) fail(path + ": invalid range in \"" + s + "\"");
        }
        if (i == s.size()) return;
        if (s[i] != ',') fail(path + ": invalid list \"" + s + "\" (want e.g. \"0-3,5\")");
        ++i;
    }
}

void check_throttle(const nlohmann::json& io, const char* key) {
    std::string path = std::string("linux.resources.blockIO.") + key;
    auto* list = member(io, key);
    if (!list) return;
    check_array(*list, path);
    for (size_t i = 0; i < list->size(); ++i) {
        std::string p = path + "[" + std::to_string(i) + "]";
        check_object((*list)[i], p);
        if (!get_i64((*list)[i], "major", p)) fail(p + ".major: required");
        if (!get_i64((*list)[i], "minor", p)) fail(p + ".minor: required");
        if (!get_u64((*list)[i], "rate", p)) fail(p + ".rate: required");
    }
}

void check_weight(std::optional<uint64_t> w, const std::string& path) {
    // blkio.weight range [10, 1000] (cgroup-v1/blkio-controller.rst); 0 = unset.
    if (w && *w != 0 && (*w < 10 || *w > 1000)) fail(path + ": " + std::to_string(*w) + " is out of range [10, 1000]");
}

void check_memory(const nlohmann::json& m, const std::string& p) {
    check_object(m, p);
    auto limit = get_i64(m, "limit", p);
    auto swap = get_i64(m, "swap", p);
    get_i64(m, "reservation", p);
    get_i64(m, "kernel", p);
    get_i64(m, "kernelTCP", p);
    get_bool(m, "disableOOMKiller", p);
    get_bool(m, "useHierarchy", p);
    get_bool(m, "checkBeforeUpdate", p);
    if (auto sw = get_u64(m, "swappiness", p); sw && *sw > 100)
        fail(p + ".swappiness: " + std::to_string(*sw) + " is out of range [0, 100]");
    for (auto [k, v] : {std::pair{"limit", limit}, std::pair{"swap", swap}})
        if (v && *v < -1) fail(p + "." + k + ": " + std::to_string(*v) + " is invalid (-1 means unlimited)");
    // The same check runc makes before touching v1 or v2 files.
    if (limit && swap && *limit > 0 && *swap > 0 && *swap < *limit)
        fail(p + ".swap: memory+swap limit " + std::to_string(*swap) + " should be >= memory limit " +
             std::to_string(*limit));
}

void check_cpu(const nlohmann::json& c, const std::string& p) {
    check_object(c, p);
    get_u64(c, "shares", p);
    get_i64(c, "quota", p);
    get_u64(c, "burst", p);
    get_u64(c, "period", p);
    get_i64(c, "realtimeRuntime", p);
    get_u64(c, "realtimePeriod", p);
    get_i64(c, "idle", p);
    if (auto s = get_str(c, "cpus", p)) check_list(*s, p + ".cpus");
    if (auto s = get_str(c, "mems", p)) check_list(*s, p + ".mems");
}

void check_block_io(const nlohmann::json& io, const std::string& p) {
    check_object(io, p);
    check_weight(get_u64(io, "weight", p), p + ".weight");
    check_weight(get_u64(io, "leafWeight", p), p + ".leafWeight");
    if (auto* wd = member(io, "weightDevice")) {
        check_array(*wd, p + ".weightDevice");
        for (size_t i = 0; i < wd->size(); ++i) {
            std::string q = p + ".weightDevice[" + std::to_string(i) + "]";
            check_object((*wd)[i], q);
            if (!get_i64((*wd)[i], "major", q)) fail(q + ".major: required");
            if (!get_i64((*wd)[i], "minor", q)) fail(q + ".minor: required");
            check_weight(get_u64((*wd)[i], "weight", q), q + ".weight");
            check_weight(get_u64((*wd)[i], "leafWeight", q), q + ".leafWeight");
        }
    }
    for (auto key :
         {"throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"})
        check_throttle(io, key);
}

void check_hugepage_limits(const nlohmann::json& h, const std::string& p) {
    check_array(h, p);
    for (size_t i = 0; i < h.size(); ++i) {
        std::string q = p + "[" + std::to_string(i) + "]";
        check_object(h[i], q);
        auto size = get_str(h[i], "pageSize", q);
        if (!size) fail(q + ".pageSize: required");
        if (!valid_hugepage_size(*size)) fail(q + ".pageSize: invalid page size \"" + *size + "\" (want e.g. \"2MB\")");
        if (!get_u64(h[i], "limit", q)) fail(q + ".limit: required");
    }
}

void check_network(const nlohmann::json& n, const std::string& p) {
    check_object(n, p);
    if (auto id = get_u64(n, "classID", p); id && *id > UINT32_MAX) fail(p + ".classID: out of range");
    if (auto* prios = member(n, "priorities")) {
        check_array(*prios, p + ".priorities");
        for (size_t i = 0; i < prios->size(); ++i) {
            std::string q = p + ".priorities[" + std::to_string(i) + "]";
            check_object((*prios)[i], q);
            auto name = get_str((*prios)[i], "name", q);
            if (!name || name->empty()) fail(q + ".name: required");
            if (!get_u64((*prios)[i], "priority", q)) fail(q + ".priority: required");
        }
    }
}

void check_unified(const nlohmann::json& u, const std::string& p) {
    check_object(u, p);
    for (auto& [k, v] : u.items()) {
        std::string q = p + "[\"" + k + "\"]";
        if (!v.is_string()) fail(q + ": expected a string value");
        // A key is a file name in the container's cgroup ("memory.high"): never a path (runc
        // rejects '/' the same way), never a cgroup core file that moves processes.
        if (k.empty() || k.find('/') != std::string::npos || k == "." || k == ".." || k.find('.') == std::string::npos)
            fail(q + ": invalid key (want \"<controller>.<file>\")");
        if (k == "cgroup.procs" || k == "cgroup.threads" || k == "cgroup.subtree_control")
            fail(q + ": \"" + k + "\" cannot be set through unified");
    }
}

void check_rdma(const nlohmann::json& rd, const std::string& p) {
    check_object(rd, p);
    for (auto& [dev, lim] : rd.items()) {
        std::string q = p + "[\"" + dev + "\"]";
        check_object(lim, q);
        if (dev.empty() || dev.find_first_of(" \n") != std::string::npos) fail(q + ": invalid device name");
        get_u64(lim, "hcaHandles", q);
        get_u64(lim, "hcaObjects", q);
    }
}

}  // namespace

void validate(const nlohmann::json& r) {
    const std::string base = "linux.resources";
    if (r.is_null()) return;
    check_object(r, base);

    (void)device_rules(r);

    if (auto* m = member(r, "memory")) check_memory(*m, base + ".memory");
    if (auto* c = member(r, "cpu")) check_cpu(*c, base + ".cpu");
    if (auto* pids = member(r, "pids")) {
        check_object(*pids, base + ".pids");
        get_i64(*pids, "limit", base + ".pids");
    }
    if (auto* io = member(r, "blockIO")) check_block_io(*io, base + ".blockIO");
    if (auto* h = member(r, "hugepageLimits")) check_hugepage_limits(*h, base + ".hugepageLimits");
    if (auto* n = member(r, "network")) check_network(*n, base + ".network");
    if (auto* u = member(r, "unified")) check_unified(*u, base + ".unified");
    if (auto* rd = member(r, "rdma")) check_rdma(*rd, base + ".rdma");
}

}  // namespace trustme::cgroups
