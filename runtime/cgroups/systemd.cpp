// The systemd cgroup driver: a transient scope started through systemd's D-Bus API holds the container,
// then the cgroup files are written in the scope's directory as the cgroupfs driver writes them (runc
// libcontainer/cgroups/systemd: Apply starts the unit, Set sets unit properties and then the fs/fs2
// files). The D-Bus calls are made by libtrustme-systemd.so (systemd_plugin.h): libsystemd is loaded
// only when this driver is asked for.
#include "runtime/cgroups/systemd.hpp"

#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/files.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "runtime/cgroups/internal.hpp"

namespace trustme::cgroups {

namespace {
SystemdCall (*g_loader)() = nullptr;
}  // namespace

void set_systemd_loader(SystemdCall (*load)()) { g_loader = load; }

bool saved_is_systemd(const nlohmann::json& saved) {
    return saved.is_object() && saved.value("driver", "") == "systemd";
}

namespace {

// A transient unit is a file in systemd's transient directory (/run/systemd/transient; a user instance's
// in $XDG_RUNTIME_DIR/systemd/transient) from StartTransientUnit until systemd frees the unit, which
// unlinks it (systemd src/core/unit.c: unit_free → unit_remove_transient; unit_make_transient writes it).
// A scope is freed once its last process has exited and it went inactive; a failed one stays loaded,
// file and all, until ResetFailedUnit. So: directory there, file not → the unit is gone.

// That directory, "" when there is none to look at.
std::string transient_dir(bool user) {
    std::string dir = "/run/systemd/transient";
    if (user) {
        const char* x = std::getenv("XDG_RUNTIME_DIR");
        if (!x || *x != '/') return "";
        dir = std::string(x) + "/systemd/transient";
    }
    struct stat st;
    return ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) ? dir : "";
}

bool transient_unit_gone(const std::string& unit, bool user) {
    if (unit.empty() || unit[0] == '.' || unit.find('/') != std::string::npos) return false;
    std::string dir = transient_dir(user);
    struct stat st;
    return !dir.empty() && ::lstat((dir + "/" + unit).c_str(), &st) != 0 && errno == ENOENT;
}

}  // namespace

namespace systemd {
namespace {

using detail::get_i64;
using detail::get_str;
using detail::get_u64;
using detail::member;

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

nlohmann::json prop(const char* name, const char* sig, nlohmann::json value) {
    return nlohmann::json::array({name, sig, std::move(value)});
}

constexpr uint64_t kInfinity = UINT64_MAX;  // systemd's CGROUP_LIMIT_MAX / USEC_INFINITY

// runc systemd/common.go addCpuQuota: the period as CPUQuotaPeriodUSec; the quota as microseconds per
// CPU second, rounded up to 10 ms (systemd keeps CPUQuota as a whole percentage), "infinity" for none.
void add_cpu_quota(Properties& p, int64_t quota, uint64_t period) {
    if (period != 0) p.push_back(prop("CPUQuotaPeriodUSec", "t", period));
    if (quota == 0 && period == 0) return;
    uint64_t per_sec = kInfinity;
    if (quota > 0) {
        if (period == 0) period = 100000;  // the kernel's default period
        per_sec = static_cast<uint64_t>(quota) * 1000000 / period;
        if (per_sec % 10000 != 0) per_sec = (per_sec / 10000 + 1) * 10000;
    }
    p.push_back(prop("CPUQuotaPerSecUSec", "t", per_sec));
}

void add_cpuset(Properties& p, const std::string& cpus, const std::string& mems) {
    if (!cpus.empty()) p.push_back(prop("AllowedCPUs", "ay", range_to_bits(cpus)));
    if (!mems.empty()) p.push_back(prop("AllowedMemoryNodes", "ay", range_to_bits(mems)));
}

uint64_t max_or(const std::string& v, const std::string& key) {
    if (v == "max") return kInfinity;
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end || errno || v[0] == '-')
        fail("linux.resources.unified." + key + ": invalid value \"" + v + "\"");
    return n;
}

// runc systemd/v2.go unifiedResToSystemdProps: the unified keys systemd knows; the others are written
// to the cgroup files only.
void add_unified(Properties& p, const nlohmann::json& unified) {
    for (auto& [k, val] : unified.items()) {
        if (!val.is_string()) continue;  // validate() reports it
        std::string v = val.get<std::string>();
        while (!v.empty() && (v.back() == ' ' || v.back() == '\n' || v.back() == '\t')) v.pop_back();
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
        static const std::map<std::string, const char*> memory = {{"memory.high", "MemoryHigh"},
                                                                  {"memory.low", "MemoryLow"},
                                                                  {"memory.min", "MemoryMin"},
                                                                  {"memory.max", "MemoryMax"},
                                                                  {"memory.swap.max", "MemorySwapMax"}};
        if (auto it = memory.find(k); it != memory.end()) {
            p.push_back(prop(it->second, "t", max_or(v, k)));
        } else if (k == "pids.max") {
            p.push_back(prop("TasksMax", "t", max_or(v, k)));
        } else if (k == "cpu.weight") {
            p.push_back(prop("CPUWeight", "t", max_or(v, k)));
        } else if (k == "cpuset.cpus") {
            add_cpuset(p, v, "");
        } else if (k == "cpuset.mems") {
            add_cpuset(p, "", v);
        } else if (k == "cpu.max") {
            auto f = words(v);
            if (f.empty() || f.size() > 2) fail("linux.resources.unified.cpu.max: invalid value \"" + v + "\"");
            int64_t quota = f[0] == "max" ? 0 : static_cast<int64_t>(max_or(f[0], k));
            uint64_t period = f.size() == 2 ? max_or(f[1], k) : 100000;
            add_cpu_quota(p, quota, period);
        }
    }
}

// A number or a typed number as GVariant text prints it.
nlohmann::json parse_number(const std::string& sig, const std::string& s, const std::string& text) {
    auto bad = [&]() -> nlohmann::json { fail("cannot parse \"" + text + "\" as a GVariant value"); };
    if (s.empty()) return bad();
    char* end = nullptr;
    errno = 0;
    if (sig == "d") {
        double d = std::strtod(s.c_str(), &end);
        if (*end || errno) return bad();
        return d;
    }
    if (sig == "t" || sig == "u" || sig == "q" || sig == "y") {
        if (s[0] == '-') return bad();
        unsigned long long n = std::strtoull(s.c_str(), &end, 0);
        uint64_t max = sig == "t" ? UINT64_MAX : sig == "u" ? UINT32_MAX : sig == "q" ? UINT16_MAX : UINT8_MAX;
        if (*end || errno || n > max) return bad();
        return static_cast<uint64_t>(n);
    }
    long long n = std::strtoll(s.c_str(), &end, 0);
    int64_t lo = sig == "x" ? INT64_MIN : sig == "i" ? INT32_MIN : INT16_MIN;
    int64_t hi = sig == "x" ? INT64_MAX : sig == "i" ? INT32_MAX : INT16_MAX;
    if (*end || errno || n < lo || n > hi) return bad();
    return static_cast<int64_t>(n);
}

nlohmann::json parse_scalar(const std::string& s, const std::string& text) {
    if (s == "true" || s == "false") return nlohmann::json::array({"b", s == "true"});
    if (s.size() >= 2 && (s[0] == '\'' || s[0] == '"') && s.back() == s[0]) {
        std::string out;
        for (size_t i = 1; i + 1 < s.size(); ++i) {
            if (s[i] == '\\' && i + 2 < s.size()) ++i;
            else if (s[i] == s[0]) fail("cannot parse \"" + text + "\" as a GVariant value");
            out += s[i];
        }
        return nlohmann::json::array({"s", out});
    }
    static const std::map<std::string, std::string> types = {{"byte", "y"},   {"int16", "n"},  {"uint16", "q"},
                                                             {"int32", "i"},  {"uint32", "u"}, {"int64", "x"},
                                                             {"uint64", "t"}, {"double", "d"}};
    auto w = words(s);
    if (w.size() == 2) {
        auto it = types.find(w[0]);
        if (it == types.end()) fail("cannot parse \"" + text + "\" as a GVariant value");
        return nlohmann::json::array({it->second, parse_number(it->second, w[1], text)});
    }
    // Untyped: an integer is an int32, anything with a fraction or exponent a double (GVariant text).
    bool floating = s.find_first_of(".eE") != std::string::npos && s.rfind("0x", 0) != 0;
    return nlohmann::json::array({floating ? "d" : "i", parse_number(floating ? "d" : "i", s, text)});
}

std::string trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t\n"), e = s.find_last_not_of(" \t\n");
    return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

bool Unit::is_slice() const { return ends_with(name, ".slice"); }

std::string expand_slice(const std::string& slice) {
    const std::string suffix = ".slice";
    if (slice.size() <= suffix.size() || !ends_with(slice, suffix) || slice.find('/') != std::string::npos)
        fail("invalid slice name \"" + slice + "\"");
    std::string name = slice.substr(0, slice.size() - suffix.size());
    if (name == "-") return "/";
    std::string path, prefix;
    for (auto& part : split(name, '-')) {
        if (part.empty()) fail("invalid slice name \"" + slice + "\"");
        path += "/" + prefix + part + suffix;
        prefix += part + "-";
    }
    if (name.back() == '-') fail("invalid slice name \"" + slice + "\"");
    return path;
}

Unit unit_for(const std::string& cgroups_path, const std::string& container_id) {
    std::string slice, prefix = "runc", name = container_id;
    if (!cgroups_path.empty()) {
        auto parts = split(cgroups_path, ':');
        if (cgroups_path.back() == ':') parts.emplace_back();
        if (parts.size() != 3)
            fail("linux.cgroupsPath: expected \"slice:prefix:name\" for systemd cgroups, got \"" + cgroups_path + "\"");
        slice = parts[0];
        prefix = parts[1];
        name = parts[2];
    }
    if (slice.empty()) slice = "system.slice";
    for (const std::string* s : {&prefix, &name})
        if (s->find('/') != std::string::npos || *s == "." || *s == "..")
            fail("linux.cgroupsPath: \"" + *s + "\" is not a valid unit name part");
    if (name.empty()) fail("linux.cgroupsPath: \"" + cgroups_path + "\" has no name");
    Unit u;
    u.slice = slice;
    u.name = ends_with(name, ".slice") ? name : prefix + "-" + name + ".scope";
    std::string base = expand_slice(slice);
    u.path = (base == "/" ? "" : base) + "/" + u.name;
    return u;
}

Properties unit_properties(const Unit& u, pid_t pid, Mode mode) {
    Properties p = nlohmann::json::array();
    p.push_back(prop("Description", "s", "trustme-runtime container " + u.name));
    if (u.is_slice()) {
        p.push_back(prop("Wants", "as", nlohmann::json::array({u.slice})));
    } else {
        p.push_back(prop("Slice", "s", u.slice));
        p.push_back(prop("Delegate", "b", true));
        if (pid > 0) p.push_back(prop("PIDs", "au", nlohmann::json::array({pid})));
    }
    // Accounting on, as runc: the behaviour of the cgroupfs driver, and the memory controller must be there
    // before the first process joins.
    p.push_back(prop("MemoryAccounting", "b", true));
    p.push_back(prop("CPUAccounting", "b", true));
    p.push_back(prop(mode == Mode::Unified ? "IOAccounting" : "BlockIOAccounting", "b", true));
    p.push_back(prop("TasksAccounting", "b", true));
    p.push_back(prop("DefaultDependencies", "b", false));
    return p;
}

Properties device_properties(const nlohmann::json& resources) {
    detail::DeviceState st = detail::emulate_devices(device_rules(resources));
    auto allow = nlohmann::json::array();
    if (st.default_allow) {
        // systemd has no deny lists. Allow-all maps exactly; anything else becomes deny-all here and the
        // cgroup's own rules (written next) are what the container gets, as with runc.
        if (st.exceptions.empty())
            return nlohmann::json::array({prop("DevicePolicy", "s", "auto"), prop("DeviceAllow", "a(ss)", allow)});
    } else {
        for (auto& r : st.exceptions) {
            if (r.type != 'c' && r.type != 'b') continue;
            std::string group = r.type == 'c' ? "char-" : "block-";
            std::string path;
            if (r.major < 0 && r.minor >= 0) continue;  // "*:n": systemd cannot say it; the cgroup rules do
            if (r.major < 0) path = group + "*";
            else if (r.minor < 0) path = group + std::to_string(r.major);  // systemd >= 240
            else
                path = std::string(r.type == 'c' ? "/dev/char/" : "/dev/block/") + std::to_string(r.major) + ":" +
                       std::to_string(r.minor);
            allow.push_back(nlohmann::json::array({path, r.access}));
        }
    }
    return nlohmann::json::array({prop("DevicePolicy", "s", "strict"),
                                  prop("DeviceAllow", "a(ss)", nlohmann::json::array()),
                                  prop("DeviceAllow", "a(ss)", allow)});
}

Properties resource_properties(const nlohmann::json& r, Mode mode, bool devices) {
    Properties p = devices ? device_properties(r) : nlohmann::json::array();
    if (!r.is_object()) return p;
    const std::string base = "linux.resources.";
    const bool v2 = mode == Mode::Unified;
    std::optional<int64_t> limit, reservation, swap;
    if (auto* m = member(r, "memory")) {
        limit = get_i64(*m, "limit", base + "memory.limit");
        reservation = get_i64(*m, "reservation", base + "memory.reservation");
        swap = get_i64(*m, "swap", base + "memory.swap");
    }
    if (limit && *limit != 0) p.push_back(prop(v2 ? "MemoryMax" : "MemoryLimit", "t", static_cast<uint64_t>(*limit)));
    if (v2) {
        if (reservation && *reservation != 0) p.push_back(prop("MemoryLow", "t", static_cast<uint64_t>(*reservation)));
        int64_t s = detail::swap_to_v2(swap.value_or(0), limit.value_or(0));
        if (s != 0) p.push_back(prop("MemorySwapMax", "t", s < 0 ? kInfinity : static_cast<uint64_t>(s)));
    }
    if (auto* c = member(r, "cpu")) {
        if (auto shares = get_u64(*c, "shares", base + "cpu.shares"); shares && *shares != 0)
            p.push_back(v2 ? prop("CPUWeight", "t", detail::shares_to_weight(*shares))
                           : prop("CPUShares", "t", *shares));
        add_cpu_quota(p, get_i64(*c, "quota", base + "cpu.quota").value_or(0),
                      get_u64(*c, "period", base + "cpu.period").value_or(0));
        add_cpuset(p, get_str(*c, "cpus", base + "cpu.cpus").value_or(""),
                   get_str(*c, "mems", base + "cpu.mems").value_or(""));
    }
    if (auto* pids = member(r, "pids")) {
        auto n = get_i64(*pids, "limit", base + "pids.limit");
        if (n && *n != 0) p.push_back(prop("TasksMax", "t", *n < 0 ? kInfinity : static_cast<uint64_t>(*n)));
    }
    if (auto* b = member(r, "blockIO")) {
        if (auto w = get_u64(*b, "weight", base + "blockIO.weight"); w && *w != 0)
            p.push_back(v2 ? prop("IOWeight", "t", detail::blkio_weight_to_io_weight(*w))
                           : prop("BlockIOWeight", "t", *w));
    }
    if (auto* u = member(r, "unified"); u && v2) add_unified(p, *u);
    return p;
}

nlohmann::json parse_variant(const std::string& text) {
    std::string s = trim(text);
    if (s.empty() || s[0] != '[') return parse_scalar(s, text);
    if (s.back() != ']') fail("cannot parse \"" + text + "\" as a GVariant value");
    std::string body = trim(s.substr(1, s.size() - 2));
    std::string elem_sig;
    auto values = nlohmann::json::array();
    size_t i = 0;
    while (i < body.size()) {
        size_t j = i;
        char quote = 0;
        for (; j < body.size(); ++j) {
            if (quote) {
                if (body[j] == '\\') ++j;
                else if (body[j] == quote) quote = 0;
            } else if (body[j] == '\'' || body[j] == '"') {
                quote = body[j];
            } else if (body[j] == ',') {
                break;
            }
        }
        auto v = parse_scalar(trim(body.substr(i, j - i)), text);
        if (!elem_sig.empty() && v[0] != elem_sig) fail("cannot parse \"" + text + "\": mixed array");
        elem_sig = v[0].get<std::string>();
        values.push_back(v[1]);
        i = j + 1;
    }
    return nlohmann::json::array({"a" + (elem_sig.empty() ? std::string("s") : elem_sig), values});
}

Properties annotation_properties(const std::map<std::string, std::string>& annotations) {
    const std::string key = "org.systemd.property.";
    Properties p = nlohmann::json::array();
    for (auto& [k, v] : annotations) {
        if (k.rfind(key, 0) != 0) continue;
        std::string name = k.substr(key.size());
        bool letters = name.size() >= 3;
        for (char c : name) letters = letters && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
        if (!letters) fail("annotations." + k + ": not a systemd property name (letters only, at least 3)");
        nlohmann::json val;
        try {
            val = parse_variant(v);
        } catch (const Error& e) {
            throw Error("annotations." + k + ": " + e.what(), e.code());
        }
        std::string sig = val[0].get<std::string>();
        if (name.size() > 4 && ends_with(name, "Sec") && name[name.size() - 4] >= 'a' && name[name.size() - 4] <= 'z') {
            // "TimeoutStopSec" is spelled "TimeoutStopUSec" on D-Bus, in microseconds (runc convertSecToUSec).
            name = name.substr(0, name.size() - 3) + "USec";
            const auto& n = val[1];
            uint64_t us;
            if (sig == "d") us = static_cast<uint64_t>(n.get<double>() * 1000000);
            else if (sig.size() == 1 && std::string("ynqiuxt").find(sig) != std::string::npos)
                us = (n.is_number_unsigned() ? n.get<uint64_t>() : static_cast<uint64_t>(n.get<int64_t>())) * 1000000;
            else fail("annotations." + k + ": \"" + v + "\" is not a number");
            val = nlohmann::json::array({"t", us});
        }
        p.push_back(nlohmann::json::array({name, val[0], val[1]}));
    }
    return p;
}

std::vector<uint8_t> range_to_bits(const std::string& list) {
    std::vector<uint8_t> bits;
    auto bad = [&] { fail("invalid CPU/memory node list \"" + list + "\""); };
    if (!list.empty() && list.back() == ',') bad();
    for (auto& part : split(list, ',')) {
        std::string t = trim(part);
        if (t.empty()) bad();
        size_t dash = t.find('-');
        char* end = nullptr;
        unsigned long lo = std::strtoul(t.c_str(), &end, 10), hi = lo;
        if (end == t.c_str() || (dash == std::string::npos ? *end != 0 : end != t.c_str() + dash)) bad();
        if (dash != std::string::npos) {
            const char* h = t.c_str() + dash + 1;
            hi = std::strtoul(h, &end, 10);
            if (end == h || *end) bad();
        }
        if (hi < lo || hi >= 8192) bad();  // CONFIG_NR_CPUS tops out at 8192
        if (bits.size() <= hi / 8) bits.resize(hi / 8 + 1, 0);
        for (unsigned long c = lo; c <= hi; ++c) bits[c / 8] |= static_cast<uint8_t>(1u << (c % 8));
    }
    if (bits.empty()) bad();
    return bits;
}

namespace {

// One transient unit and, below it, the cgroupfs manager for its directory (v2: the scope's directory;
// v1: the scope's directory in each hierarchy, those systemd does not manage made by us).
class SystemdManager final : public Manager {
public:
    SystemdManager(Unit u, std::unique_ptr<Manager> fs, Properties extra, bool exists, bool user)
        : unit_(std::move(u)), fs_(std::move(fs)), extra_(std::move(extra)), exists_(exists), user_(user) {}

    Mode mode() const override { return fs_->mode(); }
    nlohmann::json save() const override {
        nlohmann::json j = {{"driver", "systemd"},
                            {"mode", "systemd"},
                            {"unit", unit_.name},
                            {"slice", unit_.slice},
                            {"fs", fs_->save()}};
        if (user_) j["user"] = true;
        return j;
    }
    // The unit needs the container's first process: it is started in add_process.
    void create_dirs() override {}
    void apply(const nlohmann::json& r) override {
        resources_ = r;
        props_ = resource_properties(r, mode(), true);  // errors before anything runs
    }
    void add_process(pid_t pid) override {
        if (exists_) return fs_->add_process(pid);  // exec: the unit is there
        Properties p = unit_properties(unit_, pid, mode());
        for (auto& x : props_) p.push_back(x);
        for (auto& x : extra_) p.push_back(x);  // annotations last: they win, as with runc
        call({{"op", "start"}, {"unit", unit_.name}, {"properties", p}}, user_);
        exists_ = true;
        fs_->create_dirs();  // v1: the hierarchies systemd does not manage (cpuset, freezer, ...)
        // Rootless, the files only: loading the device filter (BPF_PROG_LOAD) needs privilege over the host,
        // and a user namespace's container gets bind mounts of the host's devices anyway (runc's fs2
        // Manager.Set ignores device errors when rootless).
        if (user_) fs_->update(resources_);
        else fs_->apply(resources_);
        fs_->add_process(pid);
    }
    void update(const nlohmann::json& r) override {
        Properties p = resource_properties(r, mode(), false);
        if (!p.empty()) {
            // On v1 systemd rewrites the device cgroup of a unit whose properties change, deny-all first:
            // the container is frozen meanwhile so it sees no spurious EPERM (runc legacyManager.Set).
            bool freeze = mode() == Mode::Legacy && !fs_->dir("freezer").empty() && !fs_->frozen();
            if (freeze) fs_->freeze();
            try {
                call({{"op", "set"}, {"unit", unit_.name}, {"properties", p}}, user_);
            } catch (...) {
                if (freeze) fs_->thaw();
                throw;
            }
            if (freeze) fs_->thaw();
        }
        fs_->update(r);
    }
    void freeze() override { fs_->freeze(); }
    void thaw() override { fs_->thaw(); }
    bool frozen() override { return fs_->frozen(); }
    std::vector<pid_t> pids() override { return fs_->pids(); }
    nlohmann::json stats() override { return fs_->stats(); }
    void kill_all(int sig) override { fs_->kill_all(sig); }
    void destroy() override {
        // Stop the unit (systemd removes its cgroups; an unknown unit is already gone), then whatever we
        // made ourselves. Both are tried; the first error is reported.
        std::string err;
        if (exists_ && gone()) {
            log::debug("systemd: unit " + unit_.name + " is gone already (systemd freed it): no D-Bus call");
        } else if (exists_) {
            log::debug("systemd: stopping unit " + unit_.name + " over D-Bus");
            try {
                call({{"op", "stop"}, {"unit", unit_.name}}, user_);
            } catch (const Error& e) {
                err = e.what();
            }
        }
        try {
            fs_->destroy();
        } catch (const Error& e) {
            if (err.empty()) err = e.what();
        }
        if (!err.empty()) fail(err);
    }
    // gone(), or about to be: the unit's cgroup is empty (its processes all exited) and systemd, which learns
    // of that from cgroup.events, stops and frees the scope on its own (a few ms natively). Waits for that
    // at most wait_ms, watching the transient directory: cheaper than loading libsystemd to ask. A failed
    // unit is never freed, but systemd has removed its cgroup already: no wait, StopUnit and ResetFailedUnit.
    bool settled(int wait_ms) const {
        if (gone()) return true;
        if (!exists_ || mode() != Mode::Unified) return false;
        std::string events;
        try {
            events = read_file(fs_->dir("") + "/cgroup.events", 4096);
        } catch (const Error&) {
            return gone();  // removed meanwhile
        }
        std::string dir = transient_dir(user_);
        if (events.find("populated 0") == std::string::npos || dir.empty()) return false;
        UniqueFd in(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
        if (!in || ::inotify_add_watch(in.get(), dir.c_str(), IN_DELETE | IN_MOVED_FROM) < 0) return false;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
        while (!gone()) {
            auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
                    .count();
            if (left <= 0) return false;
            struct pollfd p = {in.get(), POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left)) > 0) {
                alignas(struct inotify_event) char buf[4096];
                while (::read(in.get(), buf, sizeof buf) > 0) {
                }
            }
        }
        return true;
    }
    // systemd has freed the unit: on cgroup v2 (one hierarchy, systemd's), its directory is gone and so is
    // its transient file. Both, so that a live unit is never taken for gone.
    bool gone() const {
        struct stat st;
        return exists_ && mode() == Mode::Unified && ::lstat(fs_->dir("").c_str(), &st) != 0 && errno == ENOENT &&
               transient_unit_gone(unit_.name, user_);
    }
    std::string path_for_namespace() const override { return fs_->path_for_namespace(); }
    std::string dir(const std::string& controller) const override { return fs_->dir(controller); }

    // One D-Bus call through the plugin; with user, to the caller's own systemd instance. Returns what
    // the plugin answers (op "cgroup": the manager's own cgroup).
    static std::string call(nlohmann::json req, bool user) {
        SystemdCall fn = g_loader ? g_loader() : nullptr;
        if (!fn) fail("--systemd-cgroup: the systemd driver is not available in this program");
        if (user) req["user"] = true;
        char buf[1024] = {0};
        if (fn(req.dump().c_str(), buf, sizeof buf) != 0) fail(buf[0] ? buf : "systemd: D-Bus call failed");
        return buf;
    }

private:
    Unit unit_;
    std::unique_ptr<Manager> fs_;
    Properties extra_;
    bool exists_;
    bool user_;
    nlohmann::json resources_;
    Properties props_ = nlohmann::json::array();
};

}  // namespace
}  // namespace systemd

namespace detail {

std::unique_ptr<Manager> make_systemd(const std::string& cgroups_path, const std::string& id,
                                      const std::map<std::string, std::string>* annotations, bool user) {
    // sd_booted(3) / runc IsRunningSystemd: systemd is PID 1 when /run/systemd/system is a directory.
    struct stat st;
    if (::stat("/run/systemd/system", &st) != 0 || !S_ISDIR(st.st_mode))
        fail("--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); use the cgroupfs driver");
    // Rootless (runc systemd/user.go, v2.go): the unit goes to the caller's own systemd instance, whose
    // default slice is user.slice and whose units live below its own cgroup (user@UID.service, delegated
    // on cgroup v2 only).
    auto u = systemd::unit_for(cgroups_path.empty() && user ? "user.slice:runc:" + id : cgroups_path, id);
    if (user) {
        if (detect() != Mode::Unified)
            fail("--systemd-cgroup: rootless needs cgroup v2 (a systemd user instance delegates no v1 hierarchy)");
        std::string base = systemd::SystemdManager::call({{"op", "cgroup"}, {"unit", ""}}, true);
        if (base.empty() || base[0] != '/' || base.find("..") != std::string::npos)
            fail("--systemd-cgroup: the user's systemd instance reports its cgroup as \"" + base + "\"");
        u.path = (base == "/" ? "" : base) + u.path;
    }
    auto extra = annotations ? systemd::annotation_properties(*annotations) : nlohmann::json::array();
    auto fs = detect() == Mode::Unified ? make_unified(u.path, true) : make_legacy(u.path, true);
    return std::make_unique<systemd::SystemdManager>(std::move(u), std::move(fs), std::move(extra), false, user);
}

std::unique_ptr<Manager> load_systemd(const nlohmann::json& saved) {
    try {
        systemd::Unit u;
        u.name = saved.at("unit").get<std::string>();
        u.slice = saved.value("slice", "");
        const auto& fs = saved.at("fs");
        auto inner = fs.value("mode", "") == "unified" ? load_unified(fs) : load_legacy(fs);
        return std::make_unique<systemd::SystemdManager>(std::move(u), std::move(inner), nlohmann::json::array(), true,
                                                         saved.value("user", false));
    } catch (const nlohmann::json::exception& e) {
        fail(std::string("cgroups: bad saved systemd state: ") + e.what());
    }
}

}  // namespace detail

bool systemd_unit_gone(const nlohmann::json& saved) {
    // How long delete waits for systemd to free the unit of a container that has exited, before asking
    // over D-Bus. systemd frees an emptied scope within a millisecond or two natively, tens under emulation;
    // loading libsystemd and the twin to ask costs ~10 ms natively, ~200 ms emulated.
    constexpr int kSettleMs = 50;
    if (!saved_is_systemd(saved)) return false;
    try {
        auto m = detail::load_systemd(saved);
        return static_cast<const systemd::SystemdManager&>(*m).settled(kSettleMs);
    } catch (const Error&) {
        return false;
    }
}
}  // namespace trustme::cgroups
