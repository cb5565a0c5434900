#include "signing/cache.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

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

constexpr const char* kCacheHeader = "trustme-verify-cache v3";
// Symlink lines: "KEY l=TARGET" (encode_field); file lines: "KEY SHA256[ xattr.NAME=HEX...]".
constexpr std::string_view kLinkPrefix = "l=";

// Filesystems whose timestamps the local kernel maintains (statfs(2) f_type values, linux/magic.h).
constexpr long kExt4 = 0xEF53, kXfs = 0x58465342, kBtrfs = 0x9123683E, kTmpfs = 0x01021994, kOverlay = 0x794c7630,
               kF2fs = 0xF2F52010;

}  // namespace

bool HashCache::usable_fs(long t) {
    return t == kExt4 || t == kXfs || t == kBtrfs || t == kTmpfs || t == kOverlay || t == kF2fs;
}

HashCache::Key HashCache::key(const struct statx& st) {
    return Key{{st.stx_mnt_id, st.stx_dev_major, st.stx_dev_minor, st.stx_ino,
                static_cast<uint64_t>(st.stx_ctime.tv_sec), st.stx_ctime.tv_nsec,
                static_cast<uint64_t>(st.stx_mtime.tv_sec), st.stx_mtime.tv_nsec, st.stx_size}};
}

size_t HashCache::KeyHash::operator()(const Key& k) const noexcept {
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t v : k) h = (h ^ v) * 0x100000001b3ull;
    return static_cast<size_t>(h ^ (h >> 29));
}

namespace {

// Text form of a key: "MNT MAJ:MIN INO CTIME_S.NS MTIME_S.NS SIZE". The separators after each number.
constexpr char kKeySeparators[9] = {' ', ':', ' ', ' ', '.', ' ', '.', ' ', '\0'};

std::string render_key(const std::array<uint64_t, 9>& k) {
    std::string out;
    out.reserve(160);
    for (size_t i = 0; i < k.size(); ++i) {
        char b[24];
        out.append(b, std::to_chars(b, b + sizeof b, k[i]).ptr);
        if (kKeySeparators[i]) out += kKeySeparators[i];
    }
    return out;
}

// Parse a line's key; `rest` gets what follows it (after one space). nullopt: not a key.
std::optional<std::array<uint64_t, 9>> parse_key(std::string_view line, std::string_view& rest) {
    std::array<uint64_t, 9> k{};
    const char* p = line.data();
    const char* const end = line.data() + line.size();
    for (size_t i = 0; i < k.size(); ++i) {
        auto r = std::from_chars(p, end, k[i]);
        if (r.ec != std::errc() || r.ptr == p) return std::nullopt;
        p = r.ptr;
        char sep = kKeySeparators[i] ? kKeySeparators[i] : ' ';
        if (p == end || *p != sep) return std::nullopt;
        ++p;
    }
    rest = std::string_view(p, static_cast<size_t>(end - p));
    return k;
}

}  // namespace

UniqueFd open_cache_store(const std::string& dir, std::string* why_not) {
    auto no = [&](const std::string& why) {
        if (why_not) *why_not = why;
        return UniqueFd();
    };
    if (dir.empty() || dir[0] != '/') return no("cache directory must be absolute");
    constexpr int kFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    UniqueFd store(::open(dir.c_str(), kFlags));
    if (!store && errno == ENOENT) {
        // First use: create it (parents 0755, the store itself 0700); then judge what we opened, not the path.
        for (size_t p = 1; p <= dir.size(); ++p) {
            if (p == dir.size() || dir[p] == '/') {
                std::string part = dir.substr(0, p);
                if (::mkdir(part.c_str(), p == dir.size() ? 0700 : 0755) < 0 && errno != EEXIST)
                    return no("mkdir " + part + ": " + strerror(errno));
            }
        }
        store = UniqueFd(::open(dir.c_str(), kFlags));
    }
    if (!store) return no(dir + ": " + strerror(errno));
    struct stat st {};
    if (::fstat(store.get(), &st) < 0) return no(dir + ": " + strerror(errno));
    if (st.st_uid != ::geteuid() || (st.st_mode & 022)) return no(dir + ": not owned by us or writable by others");
    return store;
}

std::optional<std::string> read_store_file(int store_fd, const std::string& name) {
    UniqueFd f(::openat(store_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!f) return std::nullopt;
    struct stat st {};
    if (::fstat(f.get(), &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 022))
        return std::nullopt;
    try {
        return trustme::read_all(f.get(), name);
    } catch (const Error&) {
        return std::nullopt;  // an unreadable cache is an empty cache
    }
}

void write_store_file(int store_fd, const std::string& name, const std::string& data) {
    // A private temporary name per writer: two verifications at once must not interleave into one file.
    std::string tmp = "." + name + "." + std::to_string(::getpid()) + "." + std::to_string(::gettid());
    UniqueFd fd(::openat(store_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return;
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ::unlinkat(store_fd, tmp.c_str(), 0);
            return;
        }
        off += static_cast<size_t>(n);
    }
    if (::renameat(store_fd, tmp.c_str(), store_fd, name.c_str()) < 0) ::unlinkat(store_fd, tmp.c_str(), 0);
}

std::unique_ptr<HashCache> HashCache::open(int store_fd, int rootfs_fd, std::string* why_not) {
    auto no = [&](const std::string& why) {
        if (why_not) *why_not = why;
        return std::unique_ptr<HashCache>();
    };
    struct statfs sf {};
    if (::fstatfs(rootfs_fd, &sf) < 0) return no(std::string("fstatfs rootfs: ") + strerror(errno));
    if (!usable_fs(static_cast<long>(sf.f_type))) return no("rootfs filesystem type not cacheable");
    struct statx root {};
    if (::statx(rootfs_fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_MNT_ID_UNIQUE, &root) < 0)
        return no(std::string("statx rootfs: ") + strerror(errno));
    if (!(root.stx_mask & STATX_MNT_ID_UNIQUE)) return no("kernel without unique mount ids (Linux < 6.8)");

    std::unique_ptr<HashCache> c(new HashCache);
    c->store_ = store_fd;
    c->file_ = sha256_hex(std::to_string(root.stx_mnt_id) + ' ' + std::to_string(root.stx_dev_major) + ':' +
                          std::to_string(root.stx_dev_minor) + ' ' + std::to_string(root.stx_ino)) +
               ".cache";
    struct timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    c->not_after_sec_ = now.tv_sec - kRacyMarginSec;

    if (auto text = read_store_file(store_fd, c->file_)) {
        std::string_view rest(*text);
        auto next_line = [&](std::string_view& line) {
            if (rest.empty()) return false;
            size_t nl = rest.find('\n');
            line = rest.substr(0, nl);
            rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
            return true;
        };
        std::string_view line;
        // A file of another format version is ignored whole: an older line without xattrs must not
        // be read as "this file has none".
        if (next_line(line) && line == kCacheHeader) {
            while (next_line(line)) {
                // "KEY VALUE": the value is "SHA256[ xattr.NAME=HEX...]" or "l=TARGET".
                std::string_view value;
                auto k = parse_key(line, value);
                if (!k) continue;
                if (!value.starts_with(kLinkPrefix) && (value.size() < 64 || (value.size() > 64 && value[64] != ' ')))
                    continue;
                c->entries_.emplace(*k, Slot{std::string(value), false});
            }
        }
    }
    c->loaded_ = c->entries_.size();
    c->mnt_id_ = root.stx_mnt_id;
    return c;
}

namespace {

constexpr std::string_view kTreeHeader = "trustme-tree v1";

// The store file of a rootfs's tree record: one per rootfs (root's mount id, device, inode), replaced by
// the next record, so the store does not grow with every re-signed manifest.
std::optional<std::string> tree_file(int rootfs_fd, struct statx& root) {
    struct statfs sf {};
    if (::fstatfs(rootfs_fd, &sf) < 0 || !HashCache::usable_fs(static_cast<long>(sf.f_type))) return std::nullopt;
    if (::statx(rootfs_fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS | STATX_MNT_ID_UNIQUE, &root) <
            0 ||
        !(root.stx_mask & STATX_MNT_ID_UNIQUE))
        return std::nullopt;
    return sha256_hex("tree " + std::to_string(root.stx_mnt_id) + ' ' + std::to_string(root.stx_dev_major) + ':' +
                      std::to_string(root.stx_dev_minor) + ' ' + std::to_string(root.stx_ino)) +
           ".tree";
}

}  // namespace

bool tree_unchanged(int store_fd, int rootfs_fd, const std::string& key, bool need_verity) {
    struct statx root {};
    auto name = tree_file(rootfs_fd, root);
    if (!name) return false;
    auto text = read_store_file(store_fd, *name);
    if (!text) return false;
    // "trustme-tree v1\nKEY\n" then "STAMP PATH\n" per entry, then "CHECK\n" = SHA-256 of all before it.
    std::string_view t(*text);
    if (t.size() < 66 || t.back() != '\n') return false;
    const size_t body_end = t.rfind('\n', t.size() - 2) + 1;
    if (sha256_hex(t.substr(0, body_end)) != t.substr(body_end, t.size() - 1 - body_end)) return false;
    std::string_view body = t.substr(0, body_end);
    auto next_line = [&](std::string_view& line) {
        if (body.empty()) return false;
        size_t nl = body.find('\n');
        line = body.substr(0, nl);
        body = body.substr(nl + 1);
        return true;
    };
    std::string_view line;
    if (!next_line(line) || line != kTreeHeader || !next_line(line) || line != key) return false;

    // Walk order is pre-order, so the parent of every entry is on this stack of open directories.
    struct Dir {
        std::string path;
        UniqueFd fd;
    };
    std::vector<Dir> stack;
    char live[kStampMax];
    const unsigned mask = STATX_BASIC_STATS | STATX_MNT_ID_UNIQUE;
    auto same = [&](const struct statx& st, std::string_view recorded) {
        return std::string_view(live, render_stamp(stamp_of(st), live)) == recorded;
    };
    size_t n = 0;
    std::string decoded;
    while (next_line(line)) {
        // STAMP is 10 space-separated fields; PATH (encode_field) follows the 10th space. The 4th is the
        // mode, in octal.
        size_t p = 0, mode_at = 0;
        for (int i = 0; i < 10 && p != std::string_view::npos; ++i) {
            p = line.find(' ', p + 1);
            if (i == 2) mode_at = p + 1;
        }
        if (p == std::string_view::npos) return false;
        const std::string_view stamp = line.substr(0, p);
        std::string_view path = line.substr(p + 1);
        if (path.find('%') != std::string_view::npos) {  // encoded bytes: decode (else it is the path itself)
            auto d = decode_field(path);
            if (!d) return false;
            decoded = std::move(*d);
            path = decoded;
        }
        if (path.empty() || path[0] != '/') return false;
        struct statx st {};
        if (n++ == 0) {
            if (path != "/") return false;
            UniqueFd fd(::openat(rootfs_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
            if (!fd || !same(root, stamp)) return false;
            stack.push_back({"/", std::move(fd)});
            continue;
        }
        const size_t slash = path.rfind('/');
        const std::string_view parent = slash == 0 ? std::string_view("/") : path.substr(0, slash);
        const std::string base(path.substr(slash + 1));
        if (base.empty() || base == "." || base == "..") return false;
        while (!stack.empty() && stack.back().path != parent) stack.pop_back();
        if (stack.empty()) return false;
        unsigned recorded_mode = 0;
        if (std::from_chars(line.data() + mode_at, line.data() + p, recorded_mode, 8).ec != std::errc()) return false;
        const bool dir = S_ISDIR(recorded_mode);
        if (dir) {
            // Opened without following a symlink (a symlink or a file there now fails: O_DIRECTORY), and
            // the inode opened is the one compared.
            UniqueFd fd(::openat(stack.back().fd.get(), base.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            if (!fd || ::statx(fd.get(), "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, mask, &st) < 0 || !same(st, stamp))
                return false;
            stack.push_back({std::string(path), std::move(fd)});
        } else if (::statx(stack.back().fd.get(), base.c_str(), AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT, mask,
                           &st) < 0 ||
                   !same(st, stamp) || S_ISDIR(st.stx_mode)) {
            return false;
        } else if (need_verity && S_ISREG(st.stx_mode) &&
                   !(st.stx_attributes_mask & st.stx_attributes & STATX_ATTR_VERITY)) {
            // Without fs-verity, equal stamps do not mean equal content (a store into a dirty MAP_SHARED
            // page moves none); with it, no writable open of this inode exists any more.
            return false;
        }
    }
    return n > 0;
}

void remember_tree(int store_fd, int rootfs_fd, const std::string& key, const std::vector<Entry>& entries,
                   time_t walk_start, bool need_verity) {
    struct statx root {};
    auto name = tree_file(rootfs_fd, root);
    if (!name || entries.empty()) return;
    std::vector<const Entry*> order;
    order.reserve(entries.size());
    for (const auto& e : entries) {
        // A change in the same clock tick as our read could keep the ctime: no record at all then.
        if (!e.stamp.has_mnt_id || e.stamp.ctime_sec >= walk_start - kRacyMarginSec) return;
        if (need_verity && e.type == 'f' && e.fsverity.empty()) return;  // read and hashed, not measured
        order.push_back(&e);
    }
    std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) { return a->order < b->order; });
    if (order.front()->path != "/" || tree_stamp(order.front()->stamp) != tree_stamp(root)) return;
    std::string out = std::string(kTreeHeader) + '\n' + key + '\n';
    out.reserve(order.size() * 96);
    for (const Entry* e : order)
        out.append(tree_stamp(e->stamp)).append(" ").append(encode_field(e->path)).append("\n");
    out += sha256_hex(out) + '\n';
    // The same record again (every verification of an unchanged tree): nothing to write.
    if (auto old = read_store_file(store_fd, *name); old && *old == out) return;
    write_store_file(store_fd, *name, out);
}

std::optional<std::string> HashCache::take(const struct statx& st) {
    if (!(st.stx_mask & STATX_MNT_ID_UNIQUE) || st.stx_mnt_id != mnt_id_) return std::nullopt;
    std::lock_guard lk(mu_);
    auto it = entries_.find(key(st));
    if (it == entries_.end()) return std::nullopt;
    if (!it->second.seen) {
        it->second.seen = true;
        ++seen_loaded_;
    }
    return it->second.value;
}

void HashCache::put(const struct statx& st, std::string value) {
    if (!(st.stx_mask & STATX_MNT_ID_UNIQUE) || st.stx_mnt_id != mnt_id_) return;
    if (st.stx_ctime.tv_sec >= not_after_sec_) return;  // racy: could change again within the same tick
    std::lock_guard lk(mu_);
    Slot& slot = entries_[key(st)];
    slot.value = std::move(value);
    slot.seen = true;
    dirty_ = true;
}

bool HashCache::lookup(const struct statx& st, std::string& hex, Xattrs& xattrs) {
    auto v = take(st);
    if (!v || v->size() < 64 || v->starts_with(kLinkPrefix)) return false;
    auto x = parse_xattrs(std::string_view(*v).substr(64));
    if (!x) return false;
    hex = v->substr(0, 64);
    xattrs = std::move(*x);
    return true;
}

void HashCache::insert(const struct statx& st, const std::string& hex, const Xattrs& xattrs) {
    put(st, hex + render_xattrs(xattrs));
}

bool HashCache::lookup_link(const struct statx& st, std::string& target) {
    auto v = take(st);
    if (!v || !v->starts_with(kLinkPrefix)) return false;
    auto t = decode_field(std::string_view(*v).substr(kLinkPrefix.size()));
    // The length is in the key (a symlink's size is its target's length): a mismatch is a damaged line.
    if (!t || t->size() != st.stx_size) return false;
    target = std::move(*t);
    return true;
}

void HashCache::insert_link(const struct statx& st, const std::string& target) {
    put(st, std::string(kLinkPrefix) + encode_field(target));
}

void HashCache::save() {
    std::lock_guard lk(mu_);
    // Unchanged: nothing inserted and every loaded entry seen again.
    if (!dirty_ && seen_loaded_ == loaded_) return;
    std::string out = std::string(kCacheHeader) + "\n";
    for (const auto& [k, slot] : entries_)
        if (slot.seen) out += render_key(k) + ' ' + slot.value + '\n';
    write_store_file(store_, file_, out);
}

}  // namespace trustme::signing
