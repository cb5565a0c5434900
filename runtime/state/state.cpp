#include "state.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "runtime/base/error.hpp"
#include "runtime/base/files.hpp"
#include "runtime/base/procfs.hpp"

namespace trustme::state {
namespace {
constexpr const char* kState = "state.json";
constexpr const char* kCreating = "state.creating.json";

void lock_fd(int fd, const std::string& id) {
    while (::flock(fd, LOCK_EX) < 0) {
        if (errno == EINTR) continue;
        fail_errno(errno, "lock container \"" + id + "\"");
    }
}

}  // namespace

ContainerDir ContainerDir::create(const std::string& root, const std::string& id) {
    if (::mkdir(root.c_str(), 0700) < 0 && errno != EEXIST) fail_errno(errno, "create state root " + root);
    ContainerDir d;
    d.path_ = root + "/" + id;
    if (::mkdir(d.path_.c_str(), 0700) < 0) {
        if (errno == EEXIST) fail("container \"" + id + "\" already exists");
        fail_errno(errno, "create state directory " + d.path_);
    }
    d.fd_.reset(::open(d.path_.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!d.fd_) fail_errno(errno, d.path_);
    lock_fd(d.fd_.get(), id);
    return d;
}

ContainerDir ContainerDir::open(const std::string& root, const std::string& id, bool lock) {
    ContainerDir d;
    d.path_ = root + "/" + id;
    d.fd_.reset(::open(d.path_.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!d.fd_) {
        if (errno == ENOENT) fail("container \"" + id + "\" does not exist");
        fail_errno(errno, d.path_);
    }
    if (lock) lock_fd(d.fd_.get(), id);
    return d;
}

void ContainerDir::unlock() const { ::flock(fd_.get(), LOCK_UN); }
void ContainerDir::lock() const { lock_fd(fd_.get(), path_); }

Record ContainerDir::read() const {
    std::string text;
    const char* file = kState;
    try {
        text = read_file_at(fd_.get(), file);
    } catch (const Error&) {
        try {
            file = kCreating;  // create has not finished (or crashed)
            text = read_file_at(fd_.get(), file);
        } catch (const Error&) {
            // Crashed before the first write: an empty record that delete --force can remove.
            Record r;
            r.st.id = path_.substr(path_.find_last_of('/') + 1);
            return r;
        }
    }
    Record r;
    try {
        auto j = nlohmann::json::parse(text);
        r.st.id = j.at("id").get<std::string>();
        r.st.pid = j.value("pid", 0);
        r.st.bundle = j.value("bundle", "");
        r.st.rootfs = j.value("rootfs", "");
        r.st.created = j.value("created", "");
        r.st.owner = j.value("owner", "");
        // Stored as a uid; the name is looked up here, off the start path.
        if (!r.st.owner.empty() && std::isdigit(static_cast<unsigned char>(r.st.owner[0]))) {
            if (struct passwd* pw = ::getpwuid(static_cast<uid_t>(std::stoul(r.st.owner)))) r.st.owner = pw->pw_name;
        }
        if (j.contains("annotations")) r.st.annotations = j["annotations"].get<std::map<std::string, std::string>>();
        r.pid_start = j.value("pid_start", uint64_t{0});
        r.created = j.value("created_done", false);
        r.cgroup = j.value("cgroup", nlohmann::json());
        r.config = j.value("config", nlohmann::json());
        r.volumes = j.value("volumes", false);
    } catch (const std::exception& e) {
        fail(path_ + "/" + file + ": corrupt: " + e.what());
    }
    return r;
}

void ContainerDir::write(const Record& r) const {
    nlohmann::json j = {{"id", r.st.id},          {"pid", r.st.pid},       {"bundle", r.st.bundle},
                        {"rootfs", r.st.rootfs},  {"created", r.st.created}, {"owner", r.st.owner},
                        {"pid_start", r.pid_start}, {"created_done", r.created}, {"cgroup", r.cgroup},
                        {"config", r.config},     {"volumes", r.volumes}};
    if (!r.st.annotations.empty()) j["annotations"] = r.st.annotations;
    // While `create` runs, the record goes to its own file, and state.json is written once, when the
    // container is created: on ext4, replacing a file by rename makes the kernel allocate and write out the
    // new file's blocks at once (auto_da_alloc), and unlinking it later frees them: ~0.25 ms per start
    // (docs/benchmark.md). read() falls back to the creating record.
    write_file_atomic(fd_.get(), r.created ? kState : kCreating, j.dump());
}

void ContainerDir::remove() const {
    UniqueFd dfd(::openat(fd_.get(), ".", O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (DIR* dir = dfd ? ::fdopendir(dfd.release()) : nullptr) {
        while (struct dirent* e = ::readdir(dir)) {
            if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
            if (::unlinkat(fd_.get(), e->d_name, 0) < 0 && errno == EISDIR) ::unlinkat(fd_.get(), e->d_name, AT_REMOVEDIR);
        }
        ::closedir(dir);
    }
    if (::rmdir(path_.c_str()) < 0 && errno != ENOENT) fail_errno(errno, "remove " + path_);
}

std::vector<std::string> list_ids(const std::string& root) {
    std::vector<std::string> ids;
    DIR* dir = ::opendir(root.c_str());
    if (!dir) return ids;
    while (struct dirent* e = ::readdir(dir)) {
        if (e->d_name[0] == '.') continue;
        if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) ids.emplace_back(e->d_name);
    }
    ::closedir(dir);
    std::sort(ids.begin(), ids.end());
    return ids;
}

ProcInfo proc_info(pid_t pid) {
    ProcInfo pi;
    if (pid <= 0) return pi;
    char path[32];
    std::snprintf(path, sizeof path, "%d/stat", pid);
    int fd = procfs::open(path, O_RDONLY);
    if (fd < 0) return pi;
    char buf[1024];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
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
    const long long doe = z - era * 146097;                                   // [0, 146096]
    const long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
    const long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);            // [0, 365]
    const long long mp = (5 * doy + 2) / 153;                                 // [0, 11]
    const long long day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
    const long long year = yoe + era * 400 + (month <= 2);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%09ldZ", year, month, day, rem / 3600,
                  rem / 60 % 60, rem % 60, ts.tv_nsec);
    return buf;
}

}  // namespace trustme::state
