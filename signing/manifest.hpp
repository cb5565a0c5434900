// The bundle manifest (trustme-manifest(5)): a canonical text listing of config.json's digest and every
// rootfs entry, which the CMS signature covers. Built by one walk of a directory fd (openat, O_NOFOLLOW:
// no path is resolved twice), hashing regular files in parallel (sha256.hpp).
#pragma once
#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trustme::signing {

class HashCache;

// Name of the embedded manifest and signature inside the rootfs, and of the detached pair in the bundle.
inline constexpr const char* kEmbeddedDir = ".trustme";
inline constexpr const char* kEmbeddedManifest = "manifest";
inline constexpr const char* kBundleManifest = "trustme.manifest";
inline constexpr const char* kSignatureSuffix = ".p7s";
inline constexpr const char* kRootfsImage = "rootfs.img";  // what `sign --image` writes into the bundle

struct Entry {
    std::string path;   // raw bytes, absolute within the rootfs: "/", "/bin", "/bin/sh"
    char type = 0;      // d f l c b p s
    uint32_t mode = 0;  // permission bits incl. setuid/setgid/sticky (st_mode & 07777)
    uint32_t uid = 0, gid = 0;
    uint64_t size = 0;                        // regular files
    std::string sha256;                       // regular files: hex
    std::string fsverity;                     // regular files, optional: fs-verity file digest, hex (fsverity.hpp)
    std::string target;                       // symlinks: raw bytes
    uint32_t rdev_major = 0, rdev_minor = 0;  // c, b
    std::string link;                         // non-directories: earlier path of the same inode (hard link)
    std::vector<std::pair<std::string, std::string>> xattrs;  // name, raw value; sorted by name
    // walk-only identity, not rendered
    uint64_t dev = 0, ino = 0, nlink = 0;
    struct statx_stamp {  // what tree_stamp() renders, kept as numbers (the tree record, cache.hpp)
        uint64_t mnt_id = 0, ino = 0, size = 0;
        uint32_t dev_major = 0, dev_minor = 0, mode = 0, uid = 0, gid = 0, nlink = 0;
        int64_t mtime_sec = 0, ctime_sec = 0;
        uint32_t mtime_nsec = 0, ctime_nsec = 0;
        bool has_mnt_id = false;
    } stamp;
    uint32_t order = 0;  // position in the walk (pre-order: a directory, then everything below it)
};

// Everything statx says of an entry that a change to it, its content, its xattrs or (for a directory) its
// list of names moves: unique mount id, device, inode, mode, owner, link count, size, mtime, ctime.
// "" when the kernel gave no unique mount id.
Entry::statx_stamp stamp_of(const struct statx& st);
std::string tree_stamp(const Entry::statx_stamp& s);
// The same into a buffer, without allocating; returns the length.
inline constexpr size_t kStampMax = 256;
size_t render_stamp(const Entry::statx_stamp& s, char (&buf)[kStampMax]);
inline std::string tree_stamp(const struct statx& st) { return tree_stamp(stamp_of(st)); }

// A rootfs that is an image file with a dm-verity hash tree (`trustme-sign sign --image`): the kernel
// checks every block read against `root`, so the manifest lists no entries and a start walks nothing.
// The hash tree is the image's own tail (from hash_offset), in dm-verity format 1 with SHA-256, no
// superblock: every parameter comes from here, i.e. from the signed manifest.
struct Image {
    std::string file;          // a name in the bundle directory (no '/')
    uint64_t size = 0;         // of the whole file: data, then the hash tree
    std::string sha256;        // of the whole file (identifies it; a start does not read it)
    std::string fstype;        // ext4, erofs or squashfs
    uint64_t data_blocks = 0;  // of `block` bytes; the filesystem
    uint64_t hash_offset = 0;  // where the hash tree starts (data_blocks * block)
    uint32_t block = 4096;     // data and hash block size
    std::string salt, root;    // hex
};
// "image FILE size=N sha256=HEX fstype=T data_blocks=N hash_offset=N block=N salt=HEX root=HEX\n"
std::string render_image(const Image& im);
// Its strict inverse: nullopt and *why for anything render_image would not have produced.
std::optional<Image> parse_image_line(std::string_view line, std::string* why);

struct Manifest {
    std::optional<std::string> config_sha256;  // hex; present when the bundle's config.json is signed
    std::optional<Image> image;                // the rootfs is this image (then there are no entries)
    std::vector<Entry> entries;                // canonical order: bytewise by path
};

struct WalkStats {
    uint64_t entries = 0, files = 0, bytes_hashed = 0, cache_hits = 0, links = 0, link_cache_hits = 0;
    uint64_t verity_files = 0;      // regular files whose content fs-verity vouched for (not read)
    bool signature_cached = false;  // verify_bundle: the CMS verdict came from the cache (cms_cache.hpp)
    bool tree_cached = false;       // the warm path: the tree record stood (cache.hpp), nothing was walked
};

struct WalkOptions {
    bool exclude_embedded = false;  // leave out /.trustme/manifest and /.trustme/manifest.p7s
    HashCache* cache = nullptr;     // may be null
    unsigned threads = 0;           // hashing threads; 0: one per online CPU
    bool cache_only = false;        // a file not in the cache ends the walk (nullopt) instead of being hashed
    bool fsverity = false;          // also compute each regular file's fs-verity digest (signing with --verity)
    // Verification: a regular file whose signed entry (canonical order) carries an fs-verity digest and
    // which has fs-verity enabled is measured (FS_IOC_MEASURE_VERITY) instead of read: equal digests mean
    // the signed content, which the kernel then checks on every read. Not consulted for anything else.
    const std::vector<Entry>* signed_entries = nullptr;
};

// Walk a rootfs once; entries come back in canonical order with hard links resolved. nullopt only with
// cache_only, when a file's digest is neither cached nor vouched for by fs-verity (the warm path, warm.hpp,
// then hands over to a full verification).
std::optional<std::vector<Entry>> walk_rootfs(int rootfs_fd, const WalkOptions& opt, WalkStats* stats = nullptr);

// Canonical text, ending with "digest sha256=<hex of everything before that line>\n".
std::string render(const Manifest& m);

// Strict parser: canonical order, valid paths (no "..", ".", "//"), consistent links and digest.
// Errors: "NAME line N: reason".
Manifest parse_manifest(std::string_view text, const std::string& name);

// First difference between a signed manifest and a fresh walk, as "PATH: reason" ("" when equal);
// with "(and N more differences)" appended when there are several. Config is not compared here.
std::string compare_entries(const std::vector<Entry>& signed_entries, const std::vector<Entry>& actual);

// The manifest `trustme-sign sign` writes (bytes identical). with_config: the bundle location, covering
// bundle_fd's config.json; otherwise the embedded location (rootfs only, the embedded pair excluded).
// fsverity: each regular file also carries its fs-verity digest (`sign --verity`).
std::string build_manifest(int bundle_fd, int rootfs_fd, bool with_config, bool fsverity = false);

std::string sha256_hex(std::string_view data);

// Percent-encoding used for paths and link targets in the manifest (bytes outside '!'..'~', and '%').
std::string encode_field(std::string_view raw);
// Its inverse; nullopt for anything encode_field would not have produced.
std::optional<std::string> decode_field(std::string_view encoded);

using Xattrs = std::vector<std::pair<std::string, std::string>>;
// Xattrs as the manifest writes them (" xattr.NAME=HEX" each), for the digest cache; the parser returns
// nullopt for anything render_xattrs would not have produced.
std::string render_xattrs(const Xattrs& x);
std::optional<Xattrs> parse_xattrs(std::string_view tokens);

}  // namespace trustme::signing
