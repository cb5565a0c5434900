// Cache of file content digests between verifications (docs/signing.md, "The cache"). A digest is reused
// only when the file's identity and change stamps are all unchanged:
//   unique mount id (statx STATX_MNT_ID_UNIQUE, Linux 6.8), st_dev, st_ino, ctime, mtime, size.
// ctime cannot be set from user space (utimensat(2) sets atime/mtime; the kernel sets ctime to "now" on
// every content or inode change), so any change through the VFS changes the key. The store is a root-owned
// directory that nobody else may write. Filesystems whose metadata does not come from the local kernel
// (FUSE, NFS, CIFS, 9p, ...) are never cached.
#pragma once
#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/fd.hpp"
#include "signing/manifest.hpp"

namespace trustme::signing {

// The store (policy verify_cache_dir): opened, creating it if needed (mode 0700), and judged on the fd:
// a directory owned by us that nobody else may write. An empty fd (and *why_not) when it is not so.
UniqueFd open_cache_store(const std::string& dir, std::string* why_not);
// A file of the store, only if it is a regular file owned by us that nobody else may write; else nullopt.
std::optional<std::string> read_store_file(int store_fd, const std::string& name);
// Replace a file of the store atomically (private temporary + rename). Failure is silent: a cache that
// cannot be written is a cache that misses next time.
void write_store_file(int store_fd, const std::string& name, const std::string& data);

// The tree record (docs/signing.md, "The tree record"): after a verification accepted a rootfs, the
// tree_stamp() of every entry in walk order, under a key naming what was accepted (the verdict, the
// manifest, the config, the location). The warm path (warm.hpp) then accepts the same tree again with one
// statx per entry and one open per directory: no getdents, no manifest parsing, no digest lookups. A
// directory's ctime moves with every name added, removed or renamed in it, a file's with every change of
// content, xattrs, mode or owner, and the unique mount id with anything mounted over an entry; so equal
// stamps for every recorded entry mean the very tree that was accepted. Any difference, or any doubt, is a
// miss. Same store, same rules as the digest cache (filesystem types, unique mount ids, the racy margin).
// need_verity (mode "verity-only", where stamps may not stand for content): every regular file must also
// have fs-verity enabled now (statx STATX_ATTR_VERITY), i.e. its content can no longer change.
bool tree_unchanged(int store_fd, int rootfs_fd, const std::string& key, bool need_verity = false);
// Remember the tree of `entries` (a walk of rootfs_fd, any order; Entry::order gives the walk's) under
// `key`, unless an entry changed less than the racy margin before `walk_start`. need_verity: only if
// fs-verity vouched for every regular file in that walk (Entry::fsverity measured). Failure is silent.
void remember_tree(int store_fd, int rootfs_fd, const std::string& key, const std::vector<Entry>& entries,
                   time_t walk_start, bool need_verity = false);

class HashCache {
public:
    // The digest cache of the tree under rootfs_fd, in the opened store (open_cache_store). Returns null
    // and sets *why_not when caching is not safe here (filesystem type, kernel without unique mount ids).
    static std::unique_ptr<HashCache> open(int store_fd, int rootfs_fd, std::string* why_not);

    // Thread-safe. A hit gives the content digest and the xattrs (setxattr/removexattr move ctime too).
    bool lookup(const struct statx& st, std::string& hex, std::vector<std::pair<std::string, std::string>>& xattrs);
    // Remember a digest computed from content read between two statx calls that agreed (`st`). Entries
    // whose ctime is not older than the walk's start minus a margin are not remembered: timestamps have
    // coarse granularity, so a change in the same tick could keep the ctime ("racy clean", as in git).
    void insert(const struct statx& st, const std::string& hex,
                const std::vector<std::pair<std::string, std::string>>& xattrs);
    // Symlinks: the target, keyed like a file. No system call changes a symlink's target in place (a new
    // target is a new inode), and the key's ctime rules out a reused inode number as for files.
    bool lookup_link(const struct statx& st, std::string& target);
    void insert_link(const struct statx& st, const std::string& target);
    // Write the entries seen in this walk (lookups that hit and inserts) atomically; drop the rest.
    void save();

    static bool usable_fs(long f_type);

private:
    HashCache() = default;
    // mount id, dev major, dev minor, inode, ctime s, ns, mtime s, ns, size
    using Key = std::array<uint64_t, 9>;
    struct KeyHash {
        size_t operator()(const Key& k) const noexcept;
    };
    struct Slot {
        std::string value;
        bool seen = false;  // looked up or inserted in this walk: kept by save()
    };
    static Key key(const struct statx& st);
    std::optional<std::string> take(const struct statx& st);  // a hit is kept for the next save
    void put(const struct statx& st, std::string value);

    int store_ = -1;  // borrowed from the caller
    std::string file_;
    uint64_t mnt_id_ = 0;        // unique mount id of the rootfs: entries elsewhere are never cached
    int64_t not_after_sec_ = 0;  // only ctimes strictly before this are remembered
    std::mutex mu_;
    std::unordered_map<Key, Slot, KeyHash> entries_;
    size_t loaded_ = 0, seen_loaded_ = 0;
    bool dirty_ = false;
};

}  // namespace trustme::signing
