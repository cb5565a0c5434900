#include "signing/cache.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <sstream>

#include "base/error.hpp"
#include "base/files.hpp"
#include "signing/manifest.hpp"

#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x00004000U  // Linux 6.8, include/uapi/linux/stat.h
#endif

namespace trustme::signing {
using Xattrs = std::vector<std::pair<std::string, std::string>>;
namespace {

// A digest cached at ctime T is trusted only while the ctime is still T. Timestamps come from the coarse
// clock (one tick, 1-10 ms), so a write in the same tick as our read could keep T: remember only files whose
// ctime is at least this many seconds older than the start of the walk.
constexpr int64_t kRacyMarginSec = 2;

constexpr const char* kCacheHeader = "trustme-verify-cache v2";

// Filesystems whose timestamps the local kernel maintains (statfs(2) f_type values, linux/magic.h).
constexpr long kExt4 = 0xEF53, kXfs = 0x58465342, kBtrfs = 0x9123683E, kTmpfs = 0x01021994,
               kOverlay = 0x794c7630, kF2fs = 0xF2F52010;

}  // namespace

bool HashCache::usable_fs(long t) {
    return t == kExt4 || t == kXfs || t == kBtrfs || t == kTmpfs || t == kOverlay || t == kF2fs;
}

std::string HashCache::key(const struct statx& st) {
    std::string k;
    k.reserve(96);
    k += std::to_string(st.stx_mnt_id) + ' ' + std::to_string(st.stx_dev_major) + ':' +
         std::to_string(st.stx_dev_minor) + ' ' + std::to_string(st.stx_ino) + ' ' +
         std::to_string(st.stx_ctime.tv_sec) + '.' + std::to_string(st.stx_ctime.tv_nsec) + ' ' +
         std::to_string(st.stx_mtime.tv_sec) + '.' + std::to_string(st.stx_mtime.tv_nsec) + ' ' +
         std::to_string(st.stx_size);
    return k;
}

std::unique_ptr<HashCache> HashCache::open(const std::string& dir, int rootfs_fd, std::string* why_not) {
    auto no = [&](const std::string& why) {
        if (why_not) *why_not = why;
        return std::unique_ptr<HashCache>();
    };
    struct statfs sf{};
    if (::fstatfs(rootfs_fd, &sf) < 0) return no(std::string("fstatfs rootfs: ") + strerror(errno));
    if (!usable_fs(static_cast<long>(sf.f_type))) return no("rootfs filesystem type not cacheable");
    struct statx root{};
    if (::statx(rootfs_fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_MNT_ID_UNIQUE, &root) < 0)
        return no(std::string("statx rootfs: ") + strerror(errno));
    if (!(root.stx_mask & STATX_MNT_ID_UNIQUE)) return no("kernel without unique mount ids (Linux < 6.8)");

    if (dir.empty() || dir[0] != '/') return no("cache directory must be absolute");
    // Create the store (parents 0755, the store itself 0700); then judge what we opened, not the path.
    for (size_t p = 1; p <= dir.size(); ++p) {
        if (p == dir.size() || dir[p] == '/') {
            std::string part = dir.substr(0, p);
            if (::mkdir(part.c_str(), p == dir.size() ? 0700 : 0755) < 0 && errno != EEXIST)
                return no("mkdir " + part + ": " + strerror(errno));
        }
    }
    UniqueFd store(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!store) return no(dir + ": " + strerror(errno));
    struct stat st{};
    if (::fstat(store.get(), &st) < 0) return no(dir + ": " + strerror(errno));
    if (st.st_uid != ::geteuid() || (st.st_mode & 022)) return no(dir + ": not owned by us or writable by others");

    std::unique_ptr<HashCache> c(new HashCache);
    c->store_ = std::move(store);
    c->file_ = sha256_hex(std::to_string(root.stx_mnt_id) + ' ' + std::to_string(root.stx_dev_major) + ':' +
                          std::to_string(root.stx_dev_minor) + ' ' + std::to_string(root.stx_ino)) + ".cache";
    struct timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    c->not_after_sec_ = now.tv_sec - kRacyMarginSec;

    UniqueFd f(::openat(c->store_.get(), c->file_.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (f) {
        struct stat fst{};
        if (::fstat(f.get(), &fst) == 0 && S_ISREG(fst.st_mode) && fst.st_uid == ::geteuid() && !(fst.st_mode & 022)) {
            std::string text;
            try {
                text = read_file_at(c->store_.get(), c->file_);
            } catch (const Error&) {
                text.clear();  // an unreadable cache is an empty cache
            }
            std::istringstream in(text);
            std::string line;
            // A file of another format version is ignored whole: an older line without xattrs must not
            // be read as "this file has none".
            if (std::getline(in, line) && line == kCacheHeader) {
                while (std::getline(in, line)) {
                    // KEY is 6 space-separated fields; the value is "SHA256[ xattr.NAME=HEX...]".
                    size_t p = 0;
                    for (int i = 0; i < 6 && p != std::string::npos; ++i) p = line.find(' ', p + (i ? 1 : 0));
                    if (p == std::string::npos) continue;
                    std::string value = line.substr(p + 1);
                    if (value.size() < 64 || (value.size() > 64 && value[64] != ' ')) continue;
                    c->old_.emplace(line.substr(0, p), std::move(value));
                }
            }
        }
    }
    c->mnt_id_ = root.stx_mnt_id;
    return c;
}

bool HashCache::lookup(const struct statx& st, std::string& hex, Xattrs& xattrs) {
    if (!(st.stx_mask & STATX_MNT_ID_UNIQUE) || st.stx_mnt_id != mnt_id_) return false;
    std::string k = key(st);
    std::lock_guard lk(mu_);
    auto it = old_.find(k);
    if (it == old_.end()) return false;
    auto x = parse_xattrs(std::string_view(it->second).substr(64));
    if (!x) return false;
    hex = it->second.substr(0, 64);
    xattrs = std::move(*x);
    next_.emplace(std::move(k), it->second);
    return true;
}

void HashCache::insert(const struct statx& st, const std::string& hex, const Xattrs& xattrs) {
    if (!(st.stx_mask & STATX_MNT_ID_UNIQUE) || st.stx_mnt_id != mnt_id_) return;
    if (st.stx_ctime.tv_sec >= not_after_sec_) return;  // racy: could change again within the same tick
    std::string value = hex + render_xattrs(xattrs);
    std::lock_guard lk(mu_);
    next_[key(st)] = std::move(value);
    dirty_ = true;
}

void HashCache::save() {
    std::lock_guard lk(mu_);
    if (!dirty_ && next_.size() == old_.size()) return;
    std::string out = std::string(kCacheHeader) + "\n";
    for (const auto& [k, v] : next_) out += k + ' ' + v + '\n';
    // A private temporary name per writer: two verifications at once must not interleave into one file.
    std::string tmp = "." + file_ + "." + std::to_string(::getpid()) + "." + std::to_string(::gettid());
    UniqueFd fd(::openat(store_.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return;  // the cache is an optimisation: failing to save it never fails a verification
    size_t off = 0;
    while (off < out.size()) {
        ssize_t n = ::write(fd.get(), out.data() + off, out.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ::unlinkat(store_.get(), tmp.c_str(), 0);
            return;
        }
        off += static_cast<size_t>(n);
    }
    if (::renameat(store_.get(), tmp.c_str(), store_.get(), file_.c_str()) < 0) ::unlinkat(store_.get(), tmp.c_str(), 0);
}

}  // namespace trustme::signing
