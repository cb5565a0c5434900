// fs-verity (Linux 5.4+, Documentation/filesystems/fsverity.rst): a read-only file whose every read the
// kernel checks against a Merkle tree, identified by one digest. The manifest carries that digest per
// regular file (computed here in user space when signing); a verification that finds the kernel reporting
// the same digest (FS_IOC_MEASURE_VERITY) knows the content without reading it, and knows that it cannot
// change: no stamps involved. Parameters fixed to what `fsverity digest` and `fsverity enable` default to:
// SHA-256, 4096-byte blocks, no salt.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "signing/sha256.hpp"

namespace trustme::signing {

// The fs-verity file digest of `size` bytes fed through update(), in FS_IOC_MEASURE_VERITY's format: the
// SHA-256 of the fsverity_descriptor, whose root_hash is the root of the Merkle tree over 4096-byte blocks.
class FsVerityDigest {
public:
    explicit FsVerityDigest(uint64_t size);
    void update(const unsigned char* p, size_t n);
    // Hex; valid only when exactly `size` bytes were given.
    std::string hex();

private:
    static constexpr size_t kBlock = 4096, kHash = 32;
    void push(size_t level, const unsigned char* hash);

    uint64_t size_, fed_ = 0;
    Sha256 sha_;
    std::vector<unsigned char> block_;                // the data block being filled
    std::vector<std::vector<unsigned char>> levels_;  // per tree level, the hash block being filled
    size_t nlevels_ = 0;
    unsigned char root_[kHash] = {};
};

// What the kernel says of an open file: its fs-verity digest (hex), or nullopt with *err = the errno
// (ENODATA: verity not enabled on it; EOPNOTSUPP/ENOTTY: the filesystem or kernel has none).
std::optional<std::string> measure_verity(int fd, int* err);

// FS_IOC_ENABLE_VERITY with SHA-256, 4096-byte blocks, no salt (fd opened read-only, no writer may have
// the file open). Throws one line naming `what`; a file that already has fs-verity is left as it is.
void enable_verity(int fd, const std::string& what);

}  // namespace trustme::signing
