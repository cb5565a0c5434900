#include "signing/fsverity.hpp"

#include <linux/fsverity.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "base/error.hpp"

namespace trustme::signing {

// The Merkle tree (fsverity.rst "Merkle tree"): level 0 holds the SHA-256 of each data block (the last one
// zero-padded), packed 128 to a 4096-byte block, the last one zero-padded; each level above hashes the
// blocks of the one below, until a level fits one block: its hash is the root. A file of one block has no
// tree (its root is that block's hash); an empty file's root is all zeros.
FsVerityDigest::FsVerityDigest(uint64_t size) : size_(size) {
    block_.reserve(kBlock);
    for (uint64_t blocks = (size + kBlock - 1) / kBlock; blocks > 1;
         blocks = (blocks + kBlock / kHash - 1) / (kBlock / kHash))
        ++nlevels_;
    levels_.resize(nlevels_);
    for (auto& l : levels_) l.reserve(kBlock);
}

void FsVerityDigest::push(size_t level, const unsigned char* hash) {
    if (level == nlevels_) {
        std::memcpy(root_, hash, kHash);
        return;
    }
    auto& l = levels_[level];
    l.insert(l.end(), hash, hash + kHash);
    if (l.size() == kBlock) {
        unsigned char h[kHash];
        sha_.update(l.data(), l.size());
        sha_.finish(h);
        l.clear();
        push(level + 1, h);
    }
}

void FsVerityDigest::update(const unsigned char* p, size_t n) {
    fed_ += n;
    unsigned char h[kHash];
    while (n > 0) {
        if (block_.empty() && n >= kBlock) {  // whole blocks straight from the caller's buffer
            sha_.update(p, kBlock);
            sha_.finish(h);
            push(0, h);
            p += kBlock;
            n -= kBlock;
            continue;
        }
        size_t take = std::min(n, kBlock - block_.size());
        block_.insert(block_.end(), p, p + take);
        p += take;
        n -= take;
        if (block_.size() == kBlock) {
            sha_.update(block_.data(), kBlock);
            sha_.finish(h);
            block_.clear();
            push(0, h);
        }
    }
}

std::string FsVerityDigest::hex() {
    unsigned char h[kHash];
    if (size_ > 0) {
        if (!block_.empty()) {
            block_.resize(kBlock, 0);
            sha_.update(block_.data(), kBlock);
            sha_.finish(h);
            block_.clear();
            push(0, h);
        }
        for (size_t level = 0; level < nlevels_; ++level) {
            auto& l = levels_[level];
            if (l.empty()) continue;
            l.resize(kBlock, 0);
            sha_.update(l.data(), kBlock);
            sha_.finish(h);
            l.clear();
            push(level + 1, h);
        }
    }
    // struct fsverity_descriptor (include/uapi/linux/fsverity.h), little-endian, 256 bytes.
    unsigned char d[256] = {};
    d[0] = 1;                                                                             // version
    d[1] = FS_VERITY_HASH_ALG_SHA256;                                                     // hash_algorithm
    d[2] = 12;                                                                            // log_blocksize: 4096
    d[3] = 0;                                                                             // salt_size
    for (int i = 0; i < 8; ++i) d[8 + i] = static_cast<unsigned char>(size_ >> (8 * i));  // data_size
    std::memcpy(d + 16, root_, kHash);                                                    // root_hash[64]
    sha_.update(d, sizeof d);
    sha_.finish(h);
    return to_hex(h, kHash);
}

std::optional<std::string> measure_verity(int fd, int* err) {
    // struct fsverity_digest, then room for the largest digest (SHA-512).
    alignas(struct fsverity_digest) unsigned char buf[sizeof(struct fsverity_digest) + 64] = {};
    auto* m = reinterpret_cast<struct fsverity_digest*>(buf);
    m->digest_size = 64;
    if (::ioctl(fd, FS_IOC_MEASURE_VERITY, m) < 0) {
        if (err) *err = errno;
        return std::nullopt;
    }
    // Another hash algorithm (SHA-512) is a digest the manifest cannot hold: as good as none.
    if (m->digest_algorithm != FS_VERITY_HASH_ALG_SHA256 || m->digest_size != 32) {
        if (err) *err = EINVAL;
        return std::nullopt;
    }
    return to_hex(m->digest, 32);
}

void enable_verity(int fd, const std::string& what) {
    struct fsverity_enable_arg a {};
    a.version = 1;
    a.hash_algorithm = FS_VERITY_HASH_ALG_SHA256;
    a.block_size = 4096;
    if (::ioctl(fd, FS_IOC_ENABLE_VERITY, &a) == 0 || errno == EEXIST) return;
    switch (errno) {
        case EOPNOTSUPP:
            fail(what +
                 ": fs-verity: not supported by this filesystem (ext4 needs the verity feature: "
                 "mkfs.ext4 -O verity, or tune2fs -O verity)");
        case ENOTTY:
            fail(what + ": fs-verity: not supported by this kernel or filesystem (FS_IOC_ENABLE_VERITY: ENOTTY)");
        case ETXTBSY: fail(what + ": fs-verity: the file is open for writing");
        default: fail_errno(what + ": fs-verity: FS_IOC_ENABLE_VERITY");
    }
}

}  // namespace trustme::signing
