// Cache of file content digests between verifications (docs/signing.md, "The cache"). A digest is reused
// only when the file's identity and change stamps are all unchanged:
//   unique mount id (statx STATX_MNT_ID_UNIQUE, Linux 6.8), st_dev, st_ino, ctime, mtime, size.
// ctime cannot be set from user space (utimensat(2) sets atime/mtime; the kernel sets ctime to "now" on
// every content or inode change), so any change through the VFS changes the key. The store is a root-owned
// directory that nobody else may write. Filesystems whose metadata does not come from the local kernel
// (FUSE, NFS, CIFS, 9p, ...) are never cached.
#pragma once
#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/fd.hpp"

namespace trustme::signing {

class HashCache {
public:
    // Open (creating if needed, mode 0700) the store for the tree under rootfs_fd. Returns null and sets
    // *why_not when caching is not safe here (filesystem type, kernel without unique mount ids, store not
    // owned by us or writable by others).
    static std::unique_ptr<HashCache> open(const std::string& store_dir, int rootfs_fd, std::string* why_not);

    // Thread-safe. A hit gives the content digest and the xattrs (setxattr/removexattr move ctime too).
    bool lookup(const struct statx& st, std::string& hex, std::vector<std::pair<std::string, std::string>>& xattrs);
    // Remember a digest computed from content read between two statx calls that agreed (`st`). Entries
    // whose ctime is not older than the walk's start minus a margin are not remembered: timestamps have
    // coarse granularity, so a change in the same tick could keep the ctime ("racy clean", as in git).
    void insert(const struct statx& st, const std::string& hex,
                const std::vector<std::pair<std::string, std::string>>& xattrs);
    // Write the entries seen in this walk (lookups that hit and inserts) atomically; drop the rest.
    void save();

    static bool usable_fs(long f_type);

private:
    HashCache() = default;
    static std::string key(const struct statx& st);

    UniqueFd store_;
    std::string file_;
    uint64_t mnt_id_ = 0;        // unique mount id of the rootfs: entries elsewhere are never cached
    int64_t not_after_sec_ = 0;  // only ctimes strictly before this are remembered
    std::mutex mu_;
    std::unordered_map<std::string, std::string> old_, next_;
    bool dirty_ = false;
};

}  // namespace trustme::signing
