#include "runtime/state/state.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "oci/config.hpp"
#include "base/error.hpp"
#include "base/files.hpp"
#include "base/procfs.hpp"
#include "base/owned.hpp"

namespace trustme::state {
namespace {
constexpr const char* kState = "state.json";
constexpr const char* kCreating = "state.creating.json";

void lock_fd(int fd, const std::string& id) {
    while (::flock(fd, LOCK_EX) < 0) {
        if (errno == EINTR) continue;
        fail_errno("lock container \"" + id + "\"");
    }
}

// mkdir -p with mode 0711 for what is missing (runc: os.MkdirAll(root, 0o711)).
void make_dirs(const std::string& path) {
    for (size_t pos = 1; pos <= path.size(); ++pos) {
        if (pos != path.size() && path[pos] != '/') continue;
        std::string part = path.substr(0, pos);
        if (::mkdir(part.c_str(), 0711) < 0 && errno != EEXIST) fail_errno("create state root " + part);
    }
}

// An absolute path without "." or ".." components or empty ones.
bool clean_abs(const std::string& p) {
    if (p.empty() || p[0] != '/') return false;
    size_t i = 1;
    while (i <= p.size()) {
        size_t j = p.find('/', i);
        if (j == std::string::npos) j = p.size();
        std::string_view c(p.data() + i, j - i);
        if ((c.empty() && j != p.size()) || c == "." || c == "..") return false;
        i = j + 1;
    }
    return true;
}

// `dir` lies strictly below `top`, both clean and absolute: `delete` signals every process in it and
// removes it, so a record must not be able to name a hierarchy's root or anything outside it.
void check_below(const std::string& dir, const std::string& top, const char* what) {
    if (!clean_abs(dir) || !clean_abs(top) || top.rfind("/sys/fs/cgroup", 0) != 0 || dir.size() <= top.size() + 1 ||
        dir.compare(0, top.size(), top) != 0 || dir[top.size()] != '/')
        throw std::runtime_error(std::string("cgroup: ") + what + " \"" + dir + "\" is not below \"" + top + "\"");
}

void check_cgroup(const nlohmann::json& cg) {
    if (cg.is_null()) return;
    const std::string mode = cg.at("mode").get<std::string>();
    if (mode == "unified") {
        check_below(cg.at("dir").get<std::string>(), cg.at("root").get<std::string>(), "dir");
    } else if (mode == "legacy") {
        const auto& mounts = cg.contains("mountpoints") ? cg.at("mountpoints") : nlohmann::json::object();
        for (auto& [c, d] : cg.at("paths").items())
            check_below(d.get<std::string>(), mounts.contains(c) ? mounts.at(c).get<std::string>() : "/sys/fs/cgroup",
                        ("paths." + c).c_str());
    } else if (mode == "systemd") {
        // delete stops the unit: only a transient scope of ours, never a service a record could name.
        const std::string unit = cg.at("unit").get<std::string>();
        if (unit.size() <= 6 || unit.compare(unit.size() - 6, 6, ".scope") != 0 || unit.find('/') != std::string::npos)
            throw std::runtime_error("cgroup: unit \"" + unit + "\" is not a scope");
        check_cgroup(cg.at("fs"));
    } else if (mode != "none") {  // "none": a rootless container without a cgroup names nothing
        throw std::runtime_error("cgroup: unknown mode \"" + mode + "\"");
    }
}

// The name /etc/passwd gives a uid (decimal text), else the uid itself. The file is read directly, as runc
// does (moby/sys/user), not through getpwuid: NSS in the static runtime would dlopen libnss_*.so, which
// needs a shared libc of the very version it was linked with.
std::string user_name(const std::string& uid) {
    std::string text;
    try {
        text = read_file("/etc/passwd", 1 << 20);
    } catch (const Error&) {
        return uid;
    }
    std::string_view rest(text);
    while (!rest.empty()) {
        const size_t nl = rest.find('\n');
        const std::string_view line = rest.substr(0, nl);  // name:password:uid:gid:gecos:home:shell
        rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
        const size_t c1 = line.find(':'), c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
        if (c2 == std::string_view::npos || c1 == 0) continue;
        const size_t c3 = line.find(':', c2 + 1);
        if (line.substr(c2 + 1, c3 == std::string_view::npos ? c3 : c3 - c2 - 1) == uid)
            return std::string(line.substr(0, c1));
    }
    return uid;
}

// nlohmann's get<> throws type_error on a wrong type; values are checked by check_record.
void parse_record(const nlohmann::json& j, Record& r) {
    const std::string id = r.st.id;
    r.st.id = j.at("id").get<std::string>();
    if (r.st.id != id) throw std::runtime_error("id \"" + r.st.id + "\" is not its directory's name");
    const int64_t pid = j.value("pid", int64_t{0});
    if (pid < 0 || pid > 4194304) throw std::runtime_error("pid " + std::to_string(pid) + " out of range");
    r.st.pid = static_cast<pid_t>(pid);
    r.st.bundle = j.value("bundle", "");
    r.st.rootfs = j.value("rootfs", "");
    r.st.created = j.value("created", "");
    r.st.owner = j.value("owner", "");
    // Stored as a uid; the name is looked up here, off the start path.
    if (!r.st.owner.empty() && std::isdigit(static_cast<unsigned char>(r.st.owner[0])))
        r.st.owner = user_name(r.st.owner);
    if (j.contains("annotations")) r.st.annotations = j["annotations"].get<std::map<std::string, std::string>>();
    r.pid_start = j.value("pid_start", uint64_t{0});
    r.created = j.value("created_done", false);
    r.cgroup = j.value("cgroup", nlohmann::json());
    r.config = j.value("config", nlohmann::json::object());
    r.volumes = j.value("volumes", false);
}

void check_record(const Record& r) {
    if (!r.st.bundle.empty() && !clean_abs(r.st.bundle))
        throw std::runtime_error("bundle \"" + r.st.bundle + "\" is not a clean absolute path");
    check_cgroup(r.cgroup);
    if (!r.config.is_object()) throw std::runtime_error("config: must be an object");
    // The hooks that later commands run from the record: parsed now, so a bad one breaks the record
    // rather than a delete halfway through.
    if (auto it = r.config.find("hooks"); it != r.config.end()) {
        if (!it->is_object()) throw std::runtime_error("config.hooks: must be an object");
        for (const char* kind : {"poststart", "poststop"}) {
            auto h = it->find(kind);
            if (h == it->end()) continue;
            if (!h->is_array()) throw std::runtime_error(std::string("config.hooks.") + kind + ": must be an array");
            for (size_t i = 0; i < h->size(); ++i)
                oci::parse_hook((*h)[i], "state.json", std::string("hooks.") + kind + "[" + std::to_string(i) + "]");
        }
    }
}

}  // namespace

ContainerDir ContainerDir::create(const std::string& root, const std::string& id) {
    if (!oci::valid_id(id)) oci::invalid_id(id);
    ContainerDir d;
    d.path_ = root + "/" + id;
    int rc = ::mkdir(d.path_.c_str(), 0700);
    if (rc < 0 && errno == ENOENT) {  // the first container: make --root with its parents, as runc does
        make_dirs(root);
        rc = ::mkdir(d.path_.c_str(), 0700);
    }
    if (rc < 0) {
        if (errno == EEXIST) fail("container \"" + id + "\" already exists");
        fail_errno("create state directory " + d.path_);
    }
    d.fd_.reset(::open(d.path_.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!d.fd_) fail_errno(d.path_);
    lock_fd(d.fd_.get(), id);
    return d;
}

ContainerDir ContainerDir::open(const std::string& root, const std::string& id, bool lock) {
    if (!oci::valid_id(id)) oci::invalid_id(id);
    ContainerDir d;
    d.path_ = root + "/" + id;
    d.fd_.reset(::open(d.path_.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!d.fd_) {
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
            throw Error("container \"" + id + "\" does not exist", ENOENT);
        fail_errno(d.path_);
    }
    if (lock) lock_fd(d.fd_.get(), id);
    return d;
}

void ContainerDir::unlock() const { ::flock(fd_.get(), LOCK_UN); }
void ContainerDir::lock() const { lock_fd(fd_.get(), path_); }

Record ContainerDir::read() const {
    Record r = read_any();
    if (r.foreign) fail("container \"" + r.st.id + "\" does not exist");
    if (!r.broken.empty()) fail(r.broken);
    return r;
}

Record ContainerDir::read_any() const {
    Record r;
    r.st.id = path_.substr(path_.find_last_of('/') + 1);
    std::string text;
    const char* file = kState;
    UniqueFd fd(::openat(fd_.get(), file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd && errno == ENOENT) {
        file = kCreating;  // create has not finished (or crashed)
        fd.reset(::openat(fd_.get(), file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
        // No record at all: the directory of another runtime sharing --root (runc makes its directory
        // before its state.json). Ours is never without one: create writes it right after mkdir.
        if (!fd && errno == ENOENT) {
            r.foreign = true;
            return r;
        }
    }
    if (!fd) {
        r.broken = path_ + "/" + file + ": " + std::strerror(errno);  // a symlink (ELOOP), ...
        return r;
    }
    try {
        text = read_all(fd.get(), path_ + "/" + file, oci::kMaxStateBytes);
    } catch (const Error& e) {
        r.broken = e.what();
        return r;
    }
    const std::string where = path_ + "/" + file;
    nlohmann::json j;
    try {
        j = oci::parse_json(text, where, oci::kMaxStateDepth);
    } catch (const Error& e) {
        r.broken = e.what();  // a state.json that is not JSON is nobody's: shown, so that it can be removed
        return r;
    }
    // Valid JSON without our marker: another runtime's record (runc's state.json), none of our business.
    if (!j.is_object() || j.value("runtime", nlohmann::json()) != kMarker) {
        r.foreign = true;
        return r;
    }
    try {
        parse_record(j, r);
        check_record(r);
    } catch (const std::exception& e) {
        r.broken = where + ": corrupt: " + e.what();
    }
    return r;
}

void ContainerDir::write(const Record& r) const {
    nlohmann::json j = {
        {"runtime", kMarker},        {"id", r.st.id},           {"pid", r.st.pid},     {"bundle", r.st.bundle},
        {"rootfs", r.st.rootfs},     {"created", r.st.created}, {"owner", r.st.owner}, {"pid_start", r.pid_start},
        {"created_done", r.created}, {"cgroup", r.cgroup},      {"config", r.config},  {"volumes", r.volumes}};
    if (!r.st.annotations.empty()) j["annotations"] = r.st.annotations;
    // While `create` runs, the record goes to its own file, and state.json is written once, when the
    // container is created: on ext4, replacing a file by rename makes the kernel allocate and write out the
    // new file's blocks at once (auto_da_alloc), and unlinking it later frees them: ~0.25 ms per start
    // (docs/benchmark.md). read() falls back to the creating record, which goes once state.json is there.
    write_file_atomic(fd_.get(), r.created ? kState : kCreating, j.dump());
    if (r.created) ::unlinkat(fd_.get(), kCreating, 0);
}

void ContainerDir::remove() const {
    UniqueFd dfd(::openat(fd_.get(), ".", O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (UniqueDir dir = dfd ? open_dir(dfd.get()) : nullptr) {
        while (struct dirent* e = ::readdir(dir.get())) {
            if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
            if (::unlinkat(fd_.get(), e->d_name, 0) < 0 && errno == EISDIR)
                ::unlinkat(fd_.get(), e->d_name, AT_REMOVEDIR);
        }
    }
    if (::rmdir(path_.c_str()) < 0 && errno != ENOENT) fail_errno("remove " + path_);
}

std::vector<std::string> list_ids(const std::string& root) {
    std::vector<std::string> ids;
    UniqueDir dir(::opendir(root.c_str()));
    if (!dir) return ids;
    while (struct dirent* e = ::readdir(dir.get())) {
        if ((e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) && oci::valid_id(e->d_name)) ids.emplace_back(e->d_name);
    }
    dir.reset();
    std::sort(ids.begin(), ids.end());
    return ids;
}

ProcInfo proc_info(pid_t pid) {
    ProcInfo pi;
    if (pid <= 0) return pi;
    char path[32];
    std::snprintf(path, sizeof path, "%d/stat", pid);
    UniqueFd fd(procfs::open(path, O_RDONLY));
    if (!fd) return pi;
    char buf[1024];
    ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
    fd.reset();
    if (n <= 0) return pi;
    buf[n] = 0;
    // comm may contain spaces and ')': fields restart after the last ')'. Field 3 is the state, 22 starttime.
    char* p = std::strrchr(buf, ')');
    if (!p) return pi;
    p += 2;
    char st = *p;
    int field = 3;
    while (*p && field < 22) {
        if (*p == ' ') ++field;
        ++p;
    }
    pi.start = std::strtoull(p, nullptr, 10);
    pi.alive = st != 'Z' && st != 'X';
    return pi;
}

std::string status_of(const Record& r, const ContainerDir& d, bool (*frozen)(const Record&)) {
    if (!r.created) return r.st.pid > 0 && proc_info(r.st.pid).alive ? "creating" : "stopped";
    ProcInfo pi = proc_info(r.st.pid);
    if (!pi.alive || pi.start != r.pid_start) return "stopped";
    struct stat st;
    if (::fstatat(d.fd(), "exec.fifo", &st, 0) == 0) return "created";
    if (frozen && frozen(r)) return "paused";
    return "running";
}

std::string now_rfc3339() {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return rfc3339_utc(ts);
}

std::string rfc3339_utc(const struct timespec& ts) {
    // UTC by hand: glibc's gmtime_r initialises the time zone on first use, which reads /etc/localtime
    // (tzset_internal), 7 system calls on the start path for nothing. Civil date from days since
    // 1970-01-01: H. Hinnant, "chrono-Compatible Low-Level Date Algorithms", civil_from_days.
    const long long secs = ts.tv_sec;
    long long days = secs / 86400, rem = secs % 86400;
    if (rem < 0) rem += 86400, --days;
    const long long z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    const long long doe = z - era * 146097;                                       // [0, 146096]
    const long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
    const long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365]
    const long long mp = (5 * doy + 2) / 153;                                     // [0, 11]
    const long long day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
    const long long year = yoe + era * 400 + (month <= 2);
    char buf[80];  // room for the widest values the types allow (78 bytes), so nothing can be cut off
    std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%09ldZ", year, month, day, rem / 3600,
                  rem / 60 % 60, rem % 60, ts.tv_nsec);
    return buf;
}

}  // namespace trustme::state
