// `trustme-sign sign --image`: a read-only ext4 image of a rootfs with its dm-verity hash tree appended
// (libcryptsetup, CRYPT_VERITY, format 1, SHA-256, 4096-byte blocks, no superblock), described by a
// manifest Image (manifest.hpp) that the signature then covers. Linked into trustme-sign only.
#pragma once
#include <string>

#include "signing/manifest.hpp"

namespace trustme::signing {

// A finished image under a temporary name in the bundle directory, removed again unless committed.
class PendingImage {
public:
    PendingImage(int bundle_fd, std::string tmp_name, Image im)
        : dir_(bundle_fd), tmp_(std::move(tmp_name)), im_(std::move(im)) {}
    PendingImage(PendingImage&& o) noexcept : dir_(o.dir_), tmp_(std::move(o.tmp_)), im_(std::move(o.im_)) {
        o.tmp_.clear();
    }
    PendingImage& operator=(PendingImage&&) = delete;
    ~PendingImage();
    const Image& image() const noexcept { return im_; }
    void set_image(Image im) { im_ = std::move(im); }
    // Rename it to image().file in the bundle directory (replacing an older image).
    void commit(const std::string& display);

private:
    int dir_;
    std::string tmp_;
    Image im_;
};

// Build BUNDLE/<file> from the rootfs directory `rootfs_path` with mke2fs -d (owners, modes, xattrs and
// hard links as they are), append the hash tree and describe it. Throws one line on any failure and
// leaves nothing behind.
PendingImage build_image(int bundle_fd, const std::string& bundle_path, const std::string& rootfs_path,
                         const std::string& file);

}  // namespace trustme::signing
