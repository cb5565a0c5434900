#include "signing/manifest.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <queue>
#include <thread>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/files.hpp"
#include "signing/cache.hpp"
#include "signing/fsverity.hpp"
#include "signing/sha256.hpp"
#include "base/owned.hpp"

namespace trustme::signing {
namespace {

constexpr std::string_view kHeader = "trustme-manifest v1\n";
#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x00004000U  // Linux 6.8, include/uapi/linux/stat.h
#endif
// The unique mount id is part of the cache key (cache.hpp); older kernels ignore the bit.
constexpr unsigned kStatxMask = STATX_BASIC_STATS | STATX_MNT_ID_UNIQUE;
constexpr int kMaxDepth = 1024;
constexpr size_t kMaxPendingFds = 128;  // open files queued for hashing: bounded, whatever RLIMIT_NOFILE is

bool is_hex(std::string_view s, size_t len) {
    return s.size() == len &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string octal4(uint32_t m) {
    char b[8];
    snprintf(b, sizeof b, "%04o", m & 07777);
    return b;
}

// Xattrs that say something about the file itself. Left out: security.selinux (the host's labelling,
// relabelled by engines), security.ima / security.evm (the host's integrity appraisal writes them) and
// trusted.* (overlayfs bookkeeping, visible to root only).
bool xattr_matters(std::string_view n) {
    if (n == "security.selinux" || n == "security.ima" || n == "security.evm") return false;
    if (n.starts_with("trusted.")) return false;
    return true;
}

// fd-based for files and directories; through /proc/self/fd for O_PATH fds (devices, fifos, sockets),
// where the magic link resolves to that very inode.
std::vector<std::pair<std::string, std::string>> read_xattrs(int fd, bool opath, const std::string& what) {
    std::string proc = "/proc/self/fd/" + std::to_string(fd);
    auto list = [&](char* buf, size_t n) {
        return opath ? ::listxattr(proc.c_str(), buf, n) : ::flistxattr(fd, buf, n);
    };
    auto get = [&](const char* name, void* buf, size_t n) {
        return opath ? ::getxattr(proc.c_str(), name, buf, n) : ::fgetxattr(fd, name, buf, n);
    };
    std::vector<std::pair<std::string, std::string>> out;
    std::string names;
    for (int tries = 0;; ++tries) {
        ssize_t n = list(nullptr, 0);
        if (n < 0) {
            if (errno == EOPNOTSUPP) return out;  // Linux: ENOTSUP is the same value (errno(3))
            fail_errno("listxattr " + what);
        }
        if (n == 0) return out;
        names.resize(static_cast<size_t>(n));
        n = list(names.data(), names.size());
        if (n >= 0) {
            names.resize(static_cast<size_t>(n));
            break;
        }
        if (errno != ERANGE || tries > 8) fail_errno("listxattr " + what);
    }
    for (size_t p = 0; p < names.size();) {
        std::string name(names.c_str() + p);
        p += name.size() + 1;
        if (name.empty() || !xattr_matters(name)) continue;
        std::string val;
        for (int tries = 0;; ++tries) {
            ssize_t n = get(name.c_str(), nullptr, 0);
            if (n < 0) {
                if (errno == ENODATA) goto next;  // removed meanwhile
                fail_errno("getxattr " + name + " " + what);
            }
            val.resize(static_cast<size_t>(n));
            n = get(name.c_str(), val.data(), val.size());
            if (n >= 0) {
                val.resize(static_cast<size_t>(n));
                break;
            }
            if (errno != ERANGE || tries > 8) fail_errno("getxattr " + name + " " + what);
        }
        out.emplace_back(std::move(name), std::move(val));
    next:;
    }
    std::sort(out.begin(), out.end());
    return out;
}

void fill_meta(Entry& e, const struct statx& st) {
    e.stamp = stamp_of(st);
    e.mode = st.stx_mode & 07777;
    e.uid = st.stx_uid;
    e.gid = st.stx_gid;
    e.dev = makedev(st.stx_dev_major, st.stx_dev_minor);
    e.ino = st.stx_ino;
    e.nlink = st.stx_nlink;
    switch (st.stx_mode & S_IFMT) {
        case S_IFDIR: e.type = 'd'; break;
        case S_IFREG:
            e.type = 'f';
            e.size = st.stx_size;
            break;
        case S_IFLNK: e.type = 'l'; break;
        case S_IFCHR: e.type = 'c'; break;
        case S_IFBLK: e.type = 'b'; break;
        case S_IFIFO: e.type = 'p'; break;
        case S_IFSOCK: e.type = 's'; break;
        default: fail(e.path + ": unknown file type");
    }
    if (e.type == 'c' || e.type == 'b') {
        e.rdev_major = st.stx_rdev_major;
        e.rdev_minor = st.stx_rdev_minor;
    }
}

struct statx statx_fd(int fd, const std::string& what) {
    struct statx st {};
    check(::statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, kStatxMask, &st), "statx " + what);
    return st;
}

bool same_stamp(const struct statx& a, const struct statx& b) {
    return a.stx_ino == b.stx_ino && a.stx_size == b.stx_size && a.stx_ctime.tv_sec == b.stx_ctime.tv_sec &&
           a.stx_ctime.tv_nsec == b.stx_ctime.tv_nsec && a.stx_mtime.tv_sec == b.stx_mtime.tv_sec &&
           a.stx_mtime.tv_nsec == b.stx_mtime.tv_nsec;
}

struct HashJob {
    UniqueFd fd;
    Entry* entry;
    struct statx before;
};

// Walker thread: getdents + statx + openat. Hashing threads: read + SHA-256 + close. Files queued with
// their open fd, so what is hashed is the inode the walk saw.
class Walker {
public:
    Walker(const WalkOptions& opt, WalkStats* stats)
        : opt_(opt),
          stats_(stats),
          max_threads_(opt.threads ? opt.threads : std::max(1u, std::thread::hardware_concurrency())) {}
    ~Walker() { finish(); }

    std::optional<std::vector<Entry>> run(int rootfs_fd) {
        // Reopen: the caller's fd may be O_PATH, which neither getdents nor flistxattr accept.
        UniqueFd root(::openat(rootfs_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!root) fail_errno("rootfs");
        Entry& e = entries_.emplace_back();
        e.path = "/";
        fill_meta(e, statx_fd(root.get(), "rootfs"));
        e.xattrs = read_xattrs(root.get(), false, "rootfs/");
        const bool decided = walk_dir(root.get(), "/", 0);
        finish();
        if (!error_.empty()) fail(error_);
        if (!decided) return std::nullopt;

        // Sorted through pointers: each Entry (strings, xattrs, stamps) is moved once, not per swap.
        std::vector<Entry*> sorted;
        sorted.reserve(entries_.size());
        for (size_t i = 0; i < entries_.size(); ++i) {
            entries_[i].order = static_cast<uint32_t>(i);
            sorted.push_back(&entries_[i]);
        }
        std::sort(sorted.begin(), sorted.end(), [](const Entry* a, const Entry* b) { return a->path < b->path; });
        std::vector<Entry> out;
        out.reserve(sorted.size());
        for (Entry* p : sorted) out.push_back(std::move(*p));
        // Hard links: the first path in canonical order carries the content, later ones name it.
        std::map<std::pair<uint64_t, uint64_t>, std::string> first;
        for (auto& x : out) {
            if (x.type == 'd' || x.nlink < 2) continue;
            auto [it, inserted] = first.emplace(std::make_pair(x.dev, x.ino), x.path);
            if (!inserted) x.link = it->second;
        }
        if (stats_) stats_->entries = out.size();
        return out;
    }

private:
    // False when cache_only and a file's digest is not known without reading it: the walk stops there.
    bool walk_dir(int dirfd, const std::string& path, int depth) {
        if (depth > kMaxDepth) fail("rootfs" + path + ": directories nested deeper than " + std::to_string(kMaxDepth));
        std::vector<std::string> names;
        {
            UniqueDir d = open_dir(dirfd);
            if (!d) fail_errno("rootfs" + path);
            errno = 0;
            while (struct dirent* de = ::readdir(d.get())) {
                if (std::strcmp(de->d_name, ".") && std::strcmp(de->d_name, "..")) names.emplace_back(de->d_name);
                errno = 0;
            }
            if (errno) fail_errno("readdir rootfs" + path);
        }
        for (const auto& name : names) {
            std::string child = path == "/" ? "/" + name : path + "/" + name;
            std::string what = "rootfs" + child;
            struct statx st {};
            check(::statx(dirfd, name.c_str(), AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT, kStatxMask, &st),
                  "statx " + what);
            auto type = st.stx_mode & S_IFMT;
            // Only the two regular files are outside the manifest: a directory under either name (which
            // could hide a tree) is listed like anything else, and so refused as added.
            if (opt_.exclude_embedded && type == S_IFREG &&
                (child == "/.trustme/manifest" || child == "/.trustme/manifest.p7s"))
                continue;
            if (type == S_IFDIR) {
                UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
                if (!fd) fail_errno(what);
                Entry& e = entries_.emplace_back();
                e.path = child;
                fill_meta(e, statx_fd(fd.get(), what));
                e.xattrs = read_xattrs(fd.get(), false, what);
                if (!walk_dir(fd.get(), child, depth + 1)) return false;
            } else if (type == S_IFREG) {
                // A cache hit costs this one statx: the key (mount, inode, ctime, mtime, size) moves with any
                // change of content or xattrs, and the metadata comes from the same atomic statx.
                if (opt_.cache) {
                    std::string sha;
                    Xattrs xa;
                    if (opt_.cache->lookup(st, sha, xa)) {
                        Entry& e = entries_.emplace_back();
                        e.path = child;
                        fill_meta(e, st);
                        e.sha256 = std::move(sha);
                        e.xattrs = std::move(xa);
                        if (stats_) ++stats_->files, ++stats_->cache_hits;
                        continue;
                    }
                }
                const Entry* want = signed_verity(child);
                if (opt_.cache_only && !want) return false;
                // O_NONBLOCK|O_NOCTTY: should the entry have become a fifo or a tty since statx, open
                // neither blocks nor adopts it; the fstat below then notices the change of type.
                int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
                int fd = ::openat(dirfd, name.c_str(), flags | O_NOATIME);
                if (fd < 0 && errno == EPERM)
                    fd = ::openat(dirfd, name.c_str(), flags);  // O_NOATIME needs ownership or CAP_FOWNER
                if (fd < 0) fail_errno(what);
                UniqueFd owned(fd);
                struct statx fst = statx_fd(fd, what);
                if ((fst.stx_mode & S_IFMT) != S_IFREG) fail(what + ": changed type during the walk");
                Entry& e = entries_.emplace_back();
                e.path = child;
                fill_meta(e, fst);
                e.xattrs = read_xattrs(fd, false, what);
                if (stats_) ++stats_->files;
                // fs-verity vouches for the content: the kernel's digest of this very inode is the signed
                // one (and it checks every later read against it). A different digest is reported as such
                // by the comparison; no digest (verity not enabled) means reading it like any other file.
                if (want) {
                    if (auto d = measure_verity(fd, nullptr)) {
                        if (*d == want->fsverity) {
                            e.sha256 = want->sha256;
                            if (stats_) ++stats_->verity_files;
                        }
                        e.fsverity = std::move(*d);
                        continue;
                    }
                    if (opt_.cache_only) return false;
                }
                submit({std::move(owned), &e, fst});
            } else if (type == S_IFLNK) {
                // Like a cached file, a cached symlink costs the one statx above.
                std::string target;
                if (stats_) ++stats_->links;
                if (opt_.cache && opt_.cache->lookup_link(st, target)) {
                    if (stats_) ++stats_->link_cache_hits;
                } else {
                    target.assign(PATH_MAX, '\0');
                    ssize_t n = ::readlinkat(dirfd, name.c_str(), target.data(), target.size());
                    if (n < 0) fail_errno("readlink " + what);
                    target.resize(static_cast<size_t>(n));
                    // A length other than statx's means the link was replaced in between: not remembered.
                    if (opt_.cache && target.size() == st.stx_size) opt_.cache->insert_link(st, target);
                }
                Entry& e = entries_.emplace_back();
                e.path = child;
                fill_meta(e, st);
                if (e.type != 'l') fail(what + ": changed type during the walk");
                e.target = std::move(target);
            } else {
                UniqueFd fd(::openat(dirfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
                if (!fd) fail_errno(what);
                Entry& e = entries_.emplace_back();
                e.path = child;
                fill_meta(e, statx_fd(fd.get(), what));
                if (e.type == 'd' || e.type == 'f' || e.type == 'l') fail(what + ": changed type during the walk");
                e.xattrs = read_xattrs(fd.get(), true, what);
            }
        }
        return true;
    }

    // The signed entry of `path` if it carries an fs-verity digest (WalkOptions::signed_entries).
    const Entry* signed_verity(const std::string& path) const {
        if (!opt_.signed_entries) return nullptr;
        const auto& v = *opt_.signed_entries;
        auto it =
            std::lower_bound(v.begin(), v.end(), path, [](const Entry& e, const std::string& p) { return e.path < p; });
        if (it == v.end() || it->path != path || it->type != 'f') return nullptr;
        if (!it->link.empty()) {  // a later path of a hard link: the content is the first path's
            it = std::lower_bound(v.begin(), v.end(), it->link,
                                  [](const Entry& e, const std::string& p) { return e.path < p; });
            if (it == v.end() || it->type != 'f' || !it->link.empty()) return nullptr;
        }
        return it->fsverity.empty() ? nullptr : &*it;
    }

    void submit(HashJob job) {
        // Threads start with the first file that needs hashing: when everything comes from the cache there
        // are none to create, schedule and join (measured under load: ~200 ms of futex waits otherwise).
        // Small trees are hashed right here: for a few MiB, starting threads costs more than it saves.
        if (threads_.empty() && job.before.stx_size <= inline_budget_) {
            inline_budget_ -= job.before.stx_size;
            if (!inline_ctx_) inline_ctx_ = std::make_unique<Sha256>();
            if (inline_buf_.empty()) inline_buf_.resize(1 << 18);
            hash_one(*inline_ctx_, job.fd.get(), job, inline_buf_);
            return;
        }
        if (threads_.empty())
            for (unsigned i = 0; i < max_threads_; ++i) threads_.emplace_back([this] { work(); });
        std::unique_lock lk(mu_);
        space_.wait(lk, [&] { return queue_.size() < kMaxPendingFds; });
        queue_.push(std::move(job));
        ready_.notify_one();
    }

    void work() {
        std::vector<unsigned char> buf(1 << 18);
        std::unique_ptr<Sha256> ctx;
        try {
            ctx = std::make_unique<Sha256>();
        } catch (const Error& e) {
            std::lock_guard lk(mu_);
            if (error_.empty()) error_ = e.what();
        }
        for (;;) {
            HashJob job;
            {
                std::unique_lock lk(mu_);
                ready_.wait(lk, [&] { return !queue_.empty() || done_; });
                if (queue_.empty()) break;
                job = std::move(queue_.front());
                queue_.pop();
                space_.notify_one();
            }
            if (!ctx) continue;  // error_ says why; the queue is drained so that the walker does not block
            try {
                hash_one(*ctx, job.fd.get(), job, buf);
            } catch (const Error& e) {
                std::lock_guard lk(mu_);
                if (error_.empty()) error_ = e.what();
            }
        }
    }

    // `h` is fresh (constructed, or finished by hex()).
    void hash_one(Sha256& h, int fd, const HashJob& job, std::vector<unsigned char>& buf) {
        const std::string what = "rootfs" + job.entry->path;
        ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        // At most the size statx gave plus one byte: a file that grows while it is hashed (a writer
        // appending, or extending it sparsely faster than we read) is refused below, never followed.
        const uint64_t limit = job.before.stx_size + 1;
        std::optional<FsVerityDigest> fv;
        if (opt_.fsverity) fv.emplace(job.before.stx_size);
        uint64_t total = 0;
        while (total < limit) {
            ssize_t n = ::read(fd, buf.data(), static_cast<size_t>(std::min<uint64_t>(buf.size(), limit - total)));
            if (n < 0) {
                if (errno == EINTR) continue;
                int e = errno;
                h.hex();  // start over: `h` hashes the next file of this thread
                fail(e, "read " + what);
            }
            if (n == 0) break;
            h.update(buf.data(), static_cast<size_t>(n));
            if (fv && total + static_cast<uint64_t>(n) <= job.before.stx_size)
                fv->update(buf.data(), static_cast<size_t>(n));
            total += static_cast<uint64_t>(n);
        }
        std::string digest = h.hex();
        // The content read must be the content the stamps describe; otherwise the file changed under us.
        struct statx after = statx_fd(fd, what);
        if (total != job.before.stx_size || !same_stamp(job.before, after)) fail(what + ": changed while being hashed");
        job.entry->sha256 = std::move(digest);
        if (fv) job.entry->fsverity = fv->hex();
        if (stats_) bytes_ += total;
        if (opt_.cache) opt_.cache->insert(job.before, job.entry->sha256, job.entry->xattrs);
    }

    void finish() {
        {
            std::lock_guard lk(mu_);
            done_ = true;
        }
        ready_.notify_all();
        for (auto& t : threads_)
            if (t.joinable()) t.join();
        threads_.clear();
        // Anything still queued (after an error in the walker) is closed here: a job owns its fd.
        while (!queue_.empty()) queue_.pop();
        if (stats_) stats_->bytes_hashed = bytes_;
    }

    const WalkOptions& opt_;
    WalkStats* stats_;
    unsigned max_threads_;
    uint64_t inline_budget_ = 4 << 20;  // bytes hashed on the walking thread before threads start
    std::unique_ptr<Sha256> inline_ctx_;
    std::vector<unsigned char> inline_buf_;
    std::deque<Entry> entries_;  // stable addresses: hashing threads write sha256 into queued entries
    std::mutex mu_;
    std::condition_variable ready_, space_;
    std::queue<HashJob> queue_;
    bool done_ = false;
    std::string error_;
    std::atomic<uint64_t> bytes_{0};
    std::vector<std::thread> threads_;
};

int unhex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

Entry::statx_stamp stamp_of(const struct statx& st) {
    Entry::statx_stamp s;
    s.has_mnt_id = (st.stx_mask & STATX_MNT_ID_UNIQUE) != 0;
    s.mnt_id = st.stx_mnt_id;
    s.ino = st.stx_ino;
    s.size = st.stx_size;
    s.dev_major = st.stx_dev_major;
    s.dev_minor = st.stx_dev_minor;
    s.mode = st.stx_mode;
    s.uid = st.stx_uid;
    s.gid = st.stx_gid;
    s.nlink = st.stx_nlink;
    s.mtime_sec = st.stx_mtime.tv_sec;
    s.mtime_nsec = st.stx_mtime.tv_nsec;
    s.ctime_sec = st.stx_ctime.tv_sec;
    s.ctime_nsec = st.stx_ctime.tv_nsec;
    return s;
}

size_t render_stamp(const Entry::statx_stamp& s, char (&b)[kStampMax]) {
    if (!s.has_mnt_id) return 0;
    // "MNT MAJ:MIN INO MODE(octal) UID GID NLINK SIZE MTIME_S.NS CTIME_S.NS" (std::to_chars: the warm path
    // renders one per entry; snprintf was most of its user time).
    char* p = b;
    char* const end = b + kStampMax;
    auto num = [&](auto v, char sep, int base = 10) {
        p = std::to_chars(p, end, v, base).ptr;
        *p++ = sep;
    };
    num(s.mnt_id, ' ');
    num(s.dev_major, ':');
    num(s.dev_minor, ' ');
    num(s.ino, ' ');
    num(s.mode, ' ', 8);
    num(s.uid, ' ');
    num(s.gid, ' ');
    num(s.nlink, ' ');
    num(s.size, ' ');
    num(s.mtime_sec, '.');
    num(s.mtime_nsec, ' ');
    num(s.ctime_sec, '.');
    num(s.ctime_nsec, ' ');
    return static_cast<size_t>(p - b - 1);  // without the last separator
}

std::string tree_stamp(const Entry::statx_stamp& s) {
    char b[kStampMax];
    return std::string(b, render_stamp(s, b));
}

// Inverse of encode_field; nullopt for anything encode_field would not have produced.
std::optional<std::string> decode_field(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '%') {
            if (i + 2 >= s.size()) return std::nullopt;
            int h = unhex(s[i + 1]), l = unhex(s[i + 2]);
            if (h < 0 || l < 0 || std::islower(static_cast<unsigned char>(s[i + 1])) ||
                std::islower(static_cast<unsigned char>(s[i + 2])))
                return std::nullopt;
            unsigned char v = static_cast<unsigned char>(h * 16 + l);
            if (v > ' ' && v < 0x7f && v != '%') return std::nullopt;  // not canonical
            out += static_cast<char>(v);
            i += 2;
        } else if (c > ' ' && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            return std::nullopt;
        }
    }
    return out;
}

namespace {

std::string hex_bytes(std::string_view raw) {
    return to_hex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
}

std::optional<std::string> unhex_bytes(std::string_view h) {
    if (h.size() % 2) return std::nullopt;
    std::string out;
    for (size_t i = 0; i < h.size(); i += 2) {
        if (!is_hex(h.substr(i, 2), 2)) return std::nullopt;
        out += static_cast<char>(unhex(h[i]) * 16 + unhex(h[i + 1]));
    }
    return out;
}

std::string render_entry(const Entry& e) {
    std::string l = encode_field(e.path);
    l += ' ';
    l += e.type;
    l += ' ' + octal4(e.mode) + ' ' + std::to_string(e.uid) + ' ' + std::to_string(e.gid);
    if (!e.link.empty()) return l + " link=" + encode_field(e.link) + '\n';
    if (e.type == 'f') l += " size=" + std::to_string(e.size) + " sha256=" + e.sha256;
    if (e.type == 'f' && !e.fsverity.empty()) l += " fsverity=" + e.fsverity;
    if (e.type == 'l') l += " target=" + encode_field(e.target);
    if (e.type == 'c' || e.type == 'b')
        l += " rdev=" + std::to_string(e.rdev_major) + ":" + std::to_string(e.rdev_minor);
    return l + render_xattrs(e.xattrs) + '\n';
}

// A canonical path: "/" or "/a/b" with non-empty components other than "." and "..", no NUL.
std::string path_problem(const std::string& p) {
    if (p == "/") return "";
    if (p.empty() || p[0] != '/') return "is not absolute";
    if (p.back() == '/') return "ends with /";
    if (p.find('\0') != std::string::npos) return "contains NUL";
    size_t i = 1;
    while (i <= p.size()) {
        size_t j = p.find('/', i);
        if (j == std::string::npos) j = p.size();
        std::string_view c(p.data() + i, j - i);
        if (c.empty()) return "has an empty component (//)";
        if (c == "..") return "leaves the rootfs (.. component)";
        if (c == ".") return "has a . component";
        i = j + 1;
    }
    return "";
}

bool parse_u32(std::string_view s, uint32_t& out, int base = 10) {
    if (s.empty() || s.size() > 10 || (s.size() > 1 && s[0] == '0' && base == 10)) return false;
    uint64_t v = 0;
    for (char c : s) {
        int d = c - '0';
        if (d < 0 || d >= base) return false;
        v = v * base + d;
    }
    if (v > 0xffffffffu) return false;
    out = static_cast<uint32_t>(v);
    return true;
}

bool parse_u64(std::string_view s, uint64_t& out) {
    if (s.empty() || s.size() > 19 || (s.size() > 1 && s[0] == '0')) return false;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    out = v;
    return true;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    size_t i = 0;
    for (;;) {
        size_t j = s.find(sep, i);
        if (j == std::string_view::npos) {
            out.push_back(s.substr(i));
            return out;
        }
        out.push_back(s.substr(i, j - i));
        i = j + 1;
    }
}

std::string type_name(char t) {
    switch (t) {
        case 'd': return "directory";
        case 'f': return "regular file";
        case 'l': return "symlink";
        case 'c': return "character device";
        case 'b': return "block device";
        case 'p': return "fifo";
        case 's': return "socket";
    }
    return "?";
}

std::string printable(const std::string& raw) { return encode_field(raw); }

// Why a fresh entry differs from the signed one ("" when equal).
std::string entry_difference(const Entry& s, const Entry& a) {
    if (s.type != a.type) return type_name(a.type) + ", the manifest has a " + type_name(s.type);
    if (s.link != a.link) {
        if (s.link.empty()) return "hard link to " + printable(a.link) + ", the manifest has a separate file";
        if (a.link.empty()) return "separate file, the manifest has a hard link to " + printable(s.link);
        return "hard link to " + printable(a.link) + ", the manifest has a hard link to " + printable(s.link);
    }
    if (s.mode != a.mode) return "mode " + octal4(a.mode) + ", the manifest has " + octal4(s.mode);
    if (s.uid != a.uid || s.gid != a.gid)
        return "owner " + std::to_string(a.uid) + ":" + std::to_string(a.gid) + ", the manifest has " +
               std::to_string(s.uid) + ":" + std::to_string(s.gid);
    if (!s.link.empty()) return "";  // the rest belongs to the inode, compared at its first path
    if (s.type == 'f' && s.size != a.size)
        return "content changed (size " + std::to_string(a.size) + ", the manifest has " + std::to_string(s.size) + ")";
    if (s.type == 'f' && !s.fsverity.empty() && !a.fsverity.empty() && s.fsverity != a.fsverity)
        return "content changed (fs-verity digest differs from the manifest)";
    if (s.type == 'f' && s.sha256 != a.sha256) return "content changed (SHA-256 differs from the manifest)";
    if (s.type == 'l' && s.target != a.target)
        return "symlink target " + printable(a.target) + ", the manifest has " + printable(s.target);
    if (s.rdev_major != a.rdev_major || s.rdev_minor != a.rdev_minor)
        return "device " + std::to_string(a.rdev_major) + ":" + std::to_string(a.rdev_minor) + ", the manifest has " +
               std::to_string(s.rdev_major) + ":" + std::to_string(s.rdev_minor);
    if (s.xattrs != a.xattrs) {
        std::map<std::string, std::string> sm(s.xattrs.begin(), s.xattrs.end()), am(a.xattrs.begin(), a.xattrs.end());
        for (auto& [n, v] : am) {
            auto it = sm.find(n);
            if (it == sm.end()) return "xattr " + printable(n) + " is not in the manifest";
            if (it->second != v) return "xattr " + printable(n) + " differs from the manifest";
        }
        for (auto& [n, v] : sm)
            if (!am.count(n)) return "xattr " + printable(n) + " from the manifest is missing";
    }
    return "";
}

}  // namespace

std::string encode_field(std::string_view raw) {
    static const char d[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(raw.size());
    for (unsigned char c : raw) {
        if (c > ' ' && c < 0x7f && c != '%') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += d[c >> 4];
            out += d[c & 15];
        }
    }
    return out;
}

std::string render_xattrs(const Xattrs& x) {
    std::string out;
    for (const auto& [n, v] : x) out += " xattr." + encode_field(n) + "=" + hex_bytes(v);
    return out;
}

std::optional<Xattrs> parse_xattrs(std::string_view tokens) {
    Xattrs out;
    if (tokens.empty()) return out;
    if (tokens[0] != ' ') return std::nullopt;
    for (auto t : split(tokens.substr(1), ' ')) {
        auto eq = t.find('=');
        if (!t.starts_with("xattr.") || eq == std::string_view::npos) return std::nullopt;
        auto n = decode_field(t.substr(6, eq - 6));
        auto v = unhex_bytes(t.substr(eq + 1));
        if (!n || n->empty() || !v || (!out.empty() && !(out.back().first < *n))) return std::nullopt;
        out.emplace_back(std::move(*n), std::move(*v));
    }
    return out;
}

std::optional<std::vector<Entry>> walk_rootfs(int rootfs_fd, const WalkOptions& opt, WalkStats* stats) {
    if (stats) *stats = {};
    Walker w(opt, stats);
    return w.run(rootfs_fd);
}

std::string render_image(const Image& im) {
    return "image " + encode_field(im.file) + " size=" + std::to_string(im.size) + " sha256=" + im.sha256 +
           " fstype=" + im.fstype + " data_blocks=" + std::to_string(im.data_blocks) +
           " hash_offset=" + std::to_string(im.hash_offset) + " block=" + std::to_string(im.block) +
           " salt=" + im.salt + " root=" + im.root + "\n";
}

std::optional<Image> parse_image_line(std::string_view line, std::string* why) {
    auto no = [&](const std::string& w) -> std::optional<Image> {
        if (why) *why = w;
        return std::nullopt;
    };
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    auto f = split(line, ' ');
    if (f.size() != 10 || f[0] != "image")
        return no("expected image FILE size= sha256= fstype= data_blocks= hash_offset= block= salt= root=");
    Image im;
    auto file = decode_field(f[1]);
    if (!file || file->empty() || *file == "." || *file == ".." || file->find('/') != std::string::npos)
        return no("image: file must be a name in the bundle directory");
    im.file = *file;
    const char* keys[] = {"size", "sha256", "fstype", "data_blocks", "hash_offset", "block", "salt", "root"};
    std::string_view v[8];
    for (size_t k = 0; k < 8; ++k) {
        std::string_view kv = f[k + 2];
        const std::string_view key = keys[k];
        if (!kv.starts_with(key) || kv.size() == key.size() || kv[key.size()] != '=')
            return no("image: expected " + std::string(key) + "= as field " + std::to_string(k + 3));
        v[k] = kv.substr(key.size() + 1);
    }
    uint32_t block = 0;
    if (!parse_u64(v[0], im.size) || !parse_u64(v[3], im.data_blocks) || !parse_u64(v[4], im.hash_offset) ||
        !parse_u32(v[5], block))
        return no("image: malformed number");
    im.block = block;
    if (!is_hex(v[1], 64)) return no("image: malformed sha256");
    if (v[2] != "ext4" && v[2] != "erofs" && v[2] != "squashfs")
        return no("image: fstype must be ext4, erofs or squashfs");
    im.sha256 = v[1];
    im.fstype = v[2];
    // dm-verity's limits: a power of two between 512 bytes and the page size (4096 on x86_64).
    if (block < 512 || block > 4096 || (block & (block - 1))) return no("image: block must be 512, 1024, 2048 or 4096");
    if (im.data_blocks == 0 || im.data_blocks > (uint64_t{1} << 40) || im.hash_offset != im.data_blocks * block ||
        im.size <= im.hash_offset)
        return no("image: data_blocks, hash_offset and size do not describe data followed by a hash tree");
    if (v[6].size() > 512 || v[6].size() % 2 || (!v[6].empty() && !is_hex(v[6], v[6].size())))
        return no("image: malformed salt");
    if (!is_hex(v[7], 64)) return no("image: malformed root (a SHA-256 root hash)");
    im.salt = v[6];
    im.root = v[7];
    return im;
}

std::string render(const Manifest& m) {
    std::string out(kHeader);
    if (m.config_sha256) out += "config sha256=" + *m.config_sha256 + "\n";
    if (m.image) out += render_image(*m.image);
    for (const auto& e : m.entries) out += render_entry(e);
    out += "digest sha256=" + sha256_hex(out) + "\n";
    return out;
}

Manifest parse_manifest(std::string_view text, const std::string& name) {
    auto bad = [&](size_t line, const std::string& why) -> void {
        fail(name + " line " + std::to_string(line) + ": " + why);
    };
    if (text.empty()) fail(name + ": empty");
    if (text.back() != '\n') fail(name + ": truncated (no final newline)");
    if (!text.starts_with(kHeader)) bad(1, "not a trustme manifest (expected \"trustme-manifest v1\")");
    auto lines = split(text.substr(0, text.size() - 1), '\n');
    Manifest m;
    std::map<std::string, std::pair<char, bool>> seen;  // path -> (type, is a link), for parents and links
    size_t lineno = 1;
    size_t consumed = kHeader.size();
    bool digest_seen = false;
    for (size_t i = 1; i < lines.size(); ++i) {
        lineno = i + 1;
        std::string_view l = lines[i];
        if (digest_seen) bad(lineno, "text after the digest line");
        if (l.starts_with("digest ")) {
            if (!l.starts_with("digest sha256=") || !is_hex(l.substr(14), 64)) bad(lineno, "malformed digest line");
            if (sha256_hex(text.substr(0, consumed)) != l.substr(14))
                bad(lineno, "digest does not match the manifest's content");
            digest_seen = true;
            continue;
        }
        consumed += l.size() + 1;
        if (l.starts_with("config ")) {
            if (i != 1) bad(lineno, "config line must come right after the header");
            if (!l.starts_with("config sha256=") || !is_hex(l.substr(14), 64)) bad(lineno, "malformed config line");
            m.config_sha256 = std::string(l.substr(14));
            continue;
        }
        if (l.starts_with("image ")) {
            if (i != 2 || !m.config_sha256) bad(lineno, "image line must come right after the config line");
            std::string why;
            m.image = parse_image_line(l, &why);
            if (!m.image) bad(lineno, why);
            continue;
        }
        if (m.image) bad(lineno, "an image manifest lists no entries");
        auto f = split(l, ' ');
        if (f.size() < 5) bad(lineno, "expected PATH TYPE MODE UID GID ...");
        Entry e;
        auto path = decode_field(f[0]);
        if (!path) bad(lineno, "path " + std::string(f[0]) + ": bad encoding");
        e.path = *path;
        if (auto why = path_problem(e.path); !why.empty()) bad(lineno, "path " + std::string(f[0]) + ": " + why);
        if (f[1].size() != 1 || std::string_view("dflcbps").find(f[1][0]) == std::string_view::npos)
            bad(lineno, encode_field(e.path) + ": unknown type " + std::string(f[1]));
        e.type = f[1][0];
        if (f[2].size() != 4 || !parse_u32(f[2], e.mode, 8) || e.mode > 07777)
            bad(lineno, encode_field(e.path) + ": malformed mode " + std::string(f[2]));
        if (!parse_u32(f[3], e.uid) || !parse_u32(f[4], e.gid))
            bad(lineno, encode_field(e.path) + ": malformed uid/gid");
        if (m.entries.empty()) {
            if (e.path != "/" || e.type != 'd') bad(lineno, "the first entry must be the rootfs directory /");
        } else {
            if (!(m.entries.back().path < e.path))
                bad(lineno, encode_field(e.path) + ": out of canonical order or duplicate");
            std::string parent = e.path.substr(0, e.path.rfind('/'));
            if (parent.empty()) parent = "/";
            auto pit = seen.find(parent);
            if (pit == seen.end() || pit->second.first != 'd')
                bad(lineno, encode_field(e.path) + ": parent directory is not in the manifest");
        }
        bool have_size = false, have_sha = false, have_target = false, have_rdev = false;
        std::string last_xattr;
        for (size_t k = 5; k < f.size(); ++k) {
            auto eq = f[k].find('=');
            if (eq == std::string_view::npos)
                bad(lineno, encode_field(e.path) + ": malformed field " + std::string(f[k]));
            std::string_view key = f[k].substr(0, eq), val = f[k].substr(eq + 1);
            if (key == "link" && k == 5 && f.size() == 6 && e.type != 'd') {
                auto t = decode_field(val);
                if (!t || !path_problem(*t).empty()) bad(lineno, encode_field(e.path) + ": malformed link");
                auto it = seen.find(*t);
                if (it == seen.end() || it->second.first != e.type)
                    bad(lineno, encode_field(e.path) + ": link to " + std::string(val) +
                                    ", not an earlier entry of the same type");
                if (it->second.second) bad(lineno, encode_field(e.path) + ": link to a link");
                e.link = *t;
            } else if (key == "size" && e.type == 'f' && k == 5) {
                if (!parse_u64(val, e.size)) bad(lineno, encode_field(e.path) + ": malformed size");
                have_size = true;
            } else if (key == "sha256" && e.type == 'f' && k == 6) {
                if (!is_hex(val, 64)) bad(lineno, encode_field(e.path) + ": malformed sha256");
                e.sha256 = val;
                have_sha = true;
            } else if (key == "fsverity" && e.type == 'f' && k == 7) {
                if (!is_hex(val, 64)) bad(lineno, encode_field(e.path) + ": malformed fsverity");
                e.fsverity = val;
            } else if (key == "target" && e.type == 'l' && k == 5) {
                auto t = decode_field(val);
                if (!t || t->empty()) bad(lineno, encode_field(e.path) + ": malformed target");
                e.target = *t;
                have_target = true;
            } else if (key == "rdev" && (e.type == 'c' || e.type == 'b') && k == 5) {
                auto parts = split(val, ':');
                if (parts.size() != 2 || !parse_u32(parts[0], e.rdev_major) || !parse_u32(parts[1], e.rdev_minor))
                    bad(lineno, encode_field(e.path) + ": malformed rdev");
                have_rdev = true;
            } else if (key.starts_with("xattr.") && e.link.empty()) {
                auto n = decode_field(key.substr(6));
                auto v = unhex_bytes(val);
                if (!n || n->empty() || !v) bad(lineno, encode_field(e.path) + ": malformed xattr");
                if (!last_xattr.empty() && !(last_xattr < *n))
                    bad(lineno, encode_field(e.path) + ": xattrs out of canonical order");
                last_xattr = *n;
                e.xattrs.emplace_back(*n, *v);
            } else {
                bad(lineno, encode_field(e.path) + ": unexpected field " + std::string(key));
            }
        }
        if (e.link.empty()) {
            if (e.type == 'f' && !(have_size && have_sha))
                bad(lineno, encode_field(e.path) + ": size and sha256 required");
            if (e.type == 'l' && !have_target) bad(lineno, encode_field(e.path) + ": target required");
            if ((e.type == 'c' || e.type == 'b') && !have_rdev) bad(lineno, encode_field(e.path) + ": rdev required");
        }
        seen.emplace(e.path, std::make_pair(e.type, !e.link.empty()));
        m.entries.push_back(std::move(e));
    }
    if (!digest_seen) fail(name + ": truncated (no digest line)");
    if (m.entries.empty() && !m.image) fail(name + ": no entries");
    return m;
}

std::string compare_entries(const std::vector<Entry>& s, const std::vector<Entry>& a) {
    std::string first;
    size_t count = 0;
    auto note = [&](const std::string& path, const std::string& why) {
        if (first.empty()) first = encode_field(path) + ": " + why;
        ++count;
    };
    size_t i = 0, j = 0;
    while (i < s.size() || j < a.size()) {
        if (j == a.size() || (i < s.size() && s[i].path < a[j].path)) {
            note(s[i].path, "missing (removed since signing)");
            ++i;
        } else if (i == s.size() || a[j].path < s[i].path) {
            note(a[j].path, "not in the manifest (added since signing)");
            ++j;
        } else {
            if (auto d = entry_difference(s[i], a[j]); !d.empty()) note(a[j].path, d);
            ++i;
            ++j;
        }
    }
    if (count > 1) first += " (and " + std::to_string(count - 1) + " more difference" + (count > 2 ? "s" : "") + ")";
    return first;
}

std::string build_manifest(int bundle_fd, int rootfs_fd, bool with_config, bool fsverity) {
    Manifest m;
    if (with_config) m.config_sha256 = sha256_hex(read_file_at(bundle_fd, "config.json"));
    WalkOptions opt;
    opt.exclude_embedded = !with_config;
    opt.fsverity = fsverity;
    m.entries = *walk_rootfs(rootfs_fd, opt);  // no cache_only: always decided
    return render(m);
}

}  // namespace trustme::signing
