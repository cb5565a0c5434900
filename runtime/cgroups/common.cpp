// Paths, mount discovery and file access shared by both managers.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/files.hpp"
#include "base/strings.hpp"
#include "runtime/cgroups/internal.hpp"
#include "base/procfs.hpp"
#include "base/owned.hpp"

namespace trustme::cgroups::detail {

std::string clean_path(const std::string& path) {
    if (path.empty()) return "";
    bool absolute = path[0] == '/';
    std::vector<std::string> parts;
    for (const std::string& part : split(path, '/')) {
        if (part.empty() || part == ".") continue;
        if (part == "..") {
            // Rooted at "/" either way: ".." at the top stays at the top (runc's CleanPath).
            if (!parts.empty()) parts.pop_back();
            continue;
        }
        parts.push_back(part);
    }
    std::string out = absolute ? "/" : "";
    for (size_t i = 0; i < parts.size(); ++i) {
        if (i) out += '/';
        out += parts[i];
    }
    if (out.empty()) out = absolute ? "/" : "";
    return out;
}

std::string path_join(const std::string& a, const std::string& b) {
    if (b.empty() || b == "/") return a.empty() ? "/" : a;
    if (a.empty()) return b;
    std::string out = a;
    while (out.size() > 1 && out.back() == '/') out.pop_back();
    size_t i = 0;
    while (i < b.size() && b[i] == '/') ++i;
    if (out != "/") out += '/';
    out += b.substr(i);
    return out;
}

std::string dirname(const std::string& path) {
    auto pos = path.find_last_of('/');
    if (pos == std::string::npos) return ".";
    if (pos == 0) return "/";
    return path.substr(0, pos);
}

namespace {
// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])) &&
            std::isdigit(static_cast<unsigned char>(s[i + 2])) && std::isdigit(static_cast<unsigned char>(s[i + 3]))) {
            out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            out += s[i];
        }
    }
    return out;
}
}  // namespace

std::vector<CgroupMount> cgroup_mounts() {
    std::string text = procfs::read("self/mountinfo");
    std::vector<CgroupMount> out;
    for (const std::string& line : split(text, '\n')) {
        // "id parent maj:min root mountpoint opts [optional...] - fstype source superopts"
        auto sep = line.find(" - ");
        if (sep == std::string::npos) continue;
        auto tail = words(std::string_view(line).substr(sep + 3));
        auto head = words(std::string_view(line).substr(0, sep));
        if (tail.size() < 2 || head.size() < 5) continue;  // fstype [source] superopts (source may be empty)
        const std::string &fstype = tail[0], &superopts = tail.back(), &root = head[3], &mountpoint = head[4];
        if (fstype != "cgroup" && fstype != "cgroup2") continue;
        CgroupMount m;
        m.root = unescape(root);
        m.mountpoint = unescape(mountpoint);
        m.v2 = fstype == "cgroup2";
        if (!m.v2) {
            for (const std::string& o : split(superopts, ',')) {
                if (o == "rw" || o == "ro" || o == "noprefix" || o == "clone_children" || o == "xattr" ||
                    o == "cpuset_v2_mode" || o == "favordynmods" || o.rfind("release_agent=", 0) == 0)
                    continue;
                m.controllers.push_back(o);
            }
        }
        // The first mount of a hierarchy wins: later ones are usually bind mounts of sub-trees.
        bool dup = false;
        for (auto& e : out)
            if (e.v2 == m.v2 && e.controllers == m.controllers) dup = true;
        if (!dup) out.push_back(std::move(m));
    }
    return out;
}

std::map<std::string, std::string> own_cgroups() {
    std::map<std::string, std::string> out;
    for (const std::string& line : split(procfs::read("self/cgroup"), '\n')) {
        // "hierarchy-id:controller-list:path"
        auto a = line.find(':');
        auto b = line.find(':', a + 1);
        if (a == std::string::npos || b == std::string::npos) continue;
        std::string ctrls = line.substr(a + 1, b - a - 1);
        std::string path = line.substr(b + 1);
        if (ctrls.empty()) {
            out[""] = path;
            continue;
        }
        for (const std::string& c : split(ctrls, ',')) out[c] = path;
    }
    return out;
}

void write_value(const std::string& dir, std::string_view file, const std::string& value) {
    std::string path = path_join(dir, std::string(file));
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) fail_errno("cgroups: open " + path + " to write \"" + value + "\"");
    ssize_t n;
    do {
        n = ::write(fd.get(), value.data(), value.size());
    } while (n < 0 && errno == EINTR);
    if (n < 0) fail_errno("cgroups: write \"" + value + "\" to " + path);
}

std::optional<std::string> try_read(const std::string& dir, std::string_view file) {
    std::string path = path_join(dir, std::string(file));
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return std::nullopt;
    std::string out;
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return std::nullopt;
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

std::string read_value(const std::string& dir, std::string_view file) {
    auto v = try_read(dir, file);
    if (!v) fail_errno("cgroups: read " + path_join(dir, std::string(file)));
    return *v;
}

bool exists(const std::string& dir, std::string_view file) {
    std::string path = path_join(dir, std::string(file));
    return ::access(path.c_str(), F_OK) == 0;
}

uint64_t parse_u64(const std::string& s) {
    if (s == "max") return UINT64_MAX;
    errno = 0;
    char* end = nullptr;
    unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (end == s.c_str() || errno) return 0;
    return v;
}

std::map<std::string, uint64_t> read_keyed(const std::string& dir, std::string_view file) {
    std::map<std::string, uint64_t> out;
    auto text = try_read(dir, file);
    if (!text) return out;
    auto w = words(*text);
    for (size_t i = 0; i + 1 < w.size(); i += 2) out[w[i]] = parse_u64(w[i + 1]);
    return out;
}

std::vector<pid_t> read_procs(const std::string& dir) {
    std::vector<pid_t> out;
    auto text = try_read(dir, "cgroup.procs");
    if (!text) return out;
    for (const std::string& p : words(*text))
        if (auto pid = parse_decimal<pid_t>(p)) out.push_back(*pid);
    return out;
}

void write_pid(const std::string& dir, pid_t pid) {
    std::string value = std::to_string(pid);
    std::string path = path_join(dir, "cgroup.procs");
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) fail_errno("cgroups: open " + path + " to write \"" + value + "\"");
    for (int attempt = 0;; ++attempt) {
        if (::write(fd.get(), value.data(), value.size()) >= 0) return;
        int err = errno;
        // runc retries EINVAL (5 x 30 ms): the task may still be TASK_NEW right after clone.
        if ((err != EINVAL && err != EINTR) || attempt >= 4) fail(err, "cgroups: write \"" + value + "\" to " + path);
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
}

int try_write(const std::string& dir, std::string_view file, const std::string& value) {
    std::string path = path_join(dir, std::string(file));
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return errno;
    return ::write(fd.get(), value.data(), value.size()) < 0 ? errno : 0;
}

bool child_cgroups(const std::string& dir, std::vector<std::string>& out) {
    UniqueDir d(::opendir(dir.c_str()));
    if (!d) return false;
    while (dirent* e = ::readdir(d.get())) {
        std::string n = e->d_name;
        if (e->d_type == DT_DIR && n != "." && n != "..") out.push_back(path_join(dir, n));
    }
    return true;  // closed before the caller descends: one open directory at a time
}

void collect_pids(const std::string& dir, std::vector<pid_t>& out, int depth) {
    for (pid_t p : read_procs(dir)) out.push_back(p);
    std::vector<std::string> children;
    if (depth > 32 || !child_cgroups(dir, children)) return;
    for (auto& c : children) collect_pids(c, out, depth + 1);
}

void mkdir_p(const std::string& dir, std::vector<std::string>& made) {
    if (dir.empty() || dir == "/") return;
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) fail("cgroups: " + dir + " exists and is not a directory");
        return;
    }
    mkdir_p(dirname(dir), made);
    if (::mkdir(dir.c_str(), 0755) < 0) {
        if (errno == EEXIST) return;  // a concurrent creator (another container sharing a parent)
        fail_errno("cgroups: mkdir " + dir);
    }
    made.push_back(dir);
}

void remove_cgroup_dir(const std::string& dir) {
    // rmdir first: an empty cgroup (the usual case) goes in one syscall. EBUSY means child cgroups (a
    // container with a writable cgroupns may have made some) or tasks still exiting: then the container's
    // own sub-tree is walked (directories only) and rmdir retried, bounded (runc does 5 tries with an
    // increasing delay; we allow ~1 s in total).
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
    if (errno != EBUSY) fail_errno("cgroups: rmdir " + dir);
    if (std::vector<std::string> children; child_cgroups(dir, children)) {
        for (auto& c : children) remove_cgroup_dir(c);
    } else if (errno == ENOENT) {
        return;
    }
    int delay_ms = 10;
    for (int attempt = 0;; ++attempt) {
        if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
        if (errno != EBUSY || attempt >= 7) fail_errno("cgroups: rmdir " + dir);
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        delay_ms = std::min(delay_ms * 2, 320);
    }
}

const nlohmann::json* member(const nlohmann::json& obj, const char* key) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

std::optional<int64_t> get_i64(const nlohmann::json& obj, const char* key, const std::string& path) {
    auto* v = member(obj, key);
    if (!v) return std::nullopt;
    if (v->is_number_integer()) {
        if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
            fail(path + "." + key + ": " + v->dump() + " is out of range");
        return v->get<int64_t>();
    }
    fail(path + "." + key + ": expected an integer, got " + v->dump());
}

std::optional<uint64_t> get_u64(const nlohmann::json& obj, const char* key, const std::string& path) {
    auto* v = member(obj, key);
    if (!v) return std::nullopt;
    if (v->is_number_unsigned()) return v->get<uint64_t>();
    if (v->is_number_integer() && v->get<int64_t>() >= 0) return static_cast<uint64_t>(v->get<int64_t>());
    if (v->is_number_integer()) fail(path + "." + key + ": must not be negative, got " + v->dump());
    fail(path + "." + key + ": expected an unsigned integer, got " + v->dump());
}

std::optional<std::string> get_str(const nlohmann::json& obj, const char* key, const std::string& path) {
    auto* v = member(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_string()) fail(path + "." + key + ": expected a string, got " + v->dump());
    return v->get<std::string>();
}

std::optional<bool> get_bool(const nlohmann::json& obj, const char* key, const std::string& path) {
    auto* v = member(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) fail(path + "." + key + ": expected true or false, got " + v->dump());
    return v->get<bool>();
}

CpuResources read_cpu(const nlohmann::json& cpu, const std::string& path) {
    CpuResources r;
    r.shares = get_u64(cpu, "shares", path);
    r.quota = get_i64(cpu, "quota", path);
    r.period = get_u64(cpu, "period", path);
    r.burst = get_u64(cpu, "burst", path);
    r.rt_runtime = get_i64(cpu, "realtimeRuntime", path);
    r.rt_period = get_u64(cpu, "realtimePeriod", path);
    r.idle = get_i64(cpu, "idle", path);
    return r;
}

std::vector<std::string> rdma_lines(const nlohmann::json& rdma) {
    std::vector<std::string> out;
    if (!rdma.is_object()) return out;
    for (auto& [dev, lim] : rdma.items()) {
        std::string line = dev;
        if (auto h = get_u64(lim, "hcaHandles", "linux.resources.rdma." + dev))
            line += " hca_handle=" + std::to_string(*h);
        if (auto o = get_u64(lim, "hcaObjects", "linux.resources.rdma." + dev))
            line += " hca_object=" + std::to_string(*o);
        if (line != dev) out.push_back(line);
    }
    return out;
}

nlohmann::json empty_stats() {
    using nlohmann::json;
    return {{"cpu", {{"usage", {{"kernel", 0}, {"user", 0}}}, {"throttling", json::object()}}},
            {"cpuset", json::object()},
            {"memory", json::object()},
            {"pids", json::object()},
            {"blkio", json::object()},
            {"hugetlb", json::object()},
            {"intel_rdt", json::object()},
            {"network_interfaces", nullptr}};
}

namespace {
// "0-2,5" → [0,1,2,5]
nlohmann::json expand_list(const std::string& s) {
    nlohmann::json out = nlohmann::json::array();
    for (const std::string& part : split(s, ',')) {
        if (part.empty()) continue;
        auto dash = part.find('-');
        uint64_t a = parse_u64(part.substr(0, dash));
        uint64_t b = dash == std::string::npos ? a : parse_u64(part.substr(dash + 1));
        for (uint64_t i = a; i <= b && i < a + 65536; ++i) out.push_back(i);
    }
    return out;
}
}  // namespace

nlohmann::json cpuset_stats(const std::string& dir, const char* cpus_file, const char* mems_file) {
    nlohmann::json out = {{"cpus", expand_list(try_read(dir, cpus_file).value_or(""))},
                          {"mems", expand_list(try_read(dir, mems_file).value_or(""))}};
    const std::pair<const char*, const char*> flags[] = {
        {"cpu_exclusive", "cpuset.cpu_exclusive"},           {"mem_hardwall", "cpuset.mem_hardwall"},
        {"mem_exclusive", "cpuset.mem_exclusive"},           {"memory_migrate", "cpuset.memory_migrate"},
        {"memory_spread_page", "cpuset.memory_spread_page"}, {"memory_spread_slab", "cpuset.memory_spread_slab"},
        {"memory_pressure", "cpuset.memory_pressure"},       {"sched_load_balance", "cpuset.sched_load_balance"},
    };
    for (auto [key, file] : flags)
        if (auto v = try_read(dir, file)) out[key] = parse_u64(*v);
    return out;
}

}  // namespace trustme::cgroups::detail
