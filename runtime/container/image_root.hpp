// A rootfs that is a signed dm-verity image (`trustme-sign sign --image`, trustme-manifest(5) "image"):
// opened through the volume plugin (loop device + dm-verity with the signed root hash, recorded in the
// state directory with the volumes, so delete and every failure path undo it) and mounted read-only as a
// detached mount, under a writable overlay on a tmpfs unless root.readonly is set. The child attaches it
// as the container's root; the host's mount table never shows it.
#pragma once
#include <string>

#include "base/fd.hpp"
#include "signing/manifest.hpp"

namespace trustme::container {

struct ImageRoot {
    const signing::Image* image;
    int bundle_fd;
    std::string bundle, id, state_dir;
    bool readonly;
};

// The detached mount to use as the rootfs. Throws one line; what it opened is then recorded for
// close_volumes (the caller's cleanup) or already undone.
UniqueFd open_image_root(const ImageRoot& r);

}  // namespace trustme::container
