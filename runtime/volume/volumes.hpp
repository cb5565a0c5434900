// Opening and closing a container's volumes (the C++ side of trustme_volumes_open/close).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/volume/luks.hpp"

namespace trustme::volume {

inline constexpr const char* kAnnotationPrefix = "org.trustme.volume.";
inline constexpr const char* kStateFile = "volumes.json";

// One org.trustme.volume.<name>.{source,destination,options} group.
struct VolumeSpec {
    std::string name;         // [A-Za-z0-9_-]{1,32}
    std::string source;       // absolute path of a LUKS2 image file or block device
    std::string destination;  // absolute, normalised, no "." or ".." components, not "/"
    bool readonly = false;    // options: ro | rw
    std::string fstype;       // options: fstype=<type>; "" = from the token, else ext4
};

// Parse and validate the annotations object; errors name the annotation:
// "annotations.org.trustme.volume.data.destination: ...". Sorted by name.
std::vector<VolumeSpec> parse_volume_annotations(const nlohmann::json& annotations);

struct OpenedVolume {
    std::string name, device, fstype, destination;
    bool readonly = false;
};

// The dm-crypt mapping name for a container's volume: "trustme-<id>-<name>" (hashed id when too long
// for device-mapper's 127 characters).
std::string mapping_name(const std::string& container_id, const std::string& volume);

// Unseal, attach, activate every volume; each step is recorded in state_dir/volumes.json before it is
// taken, so close_volumes() can undo a crash at any step. On error everything opened is closed again.
std::vector<OpenedVolume> open_volumes(const std::string& container_id, const std::vector<VolumeSpec>& specs,
                                       const std::string& tcti, const std::string& state_dir);

// The container's rootfs image (a dm-verity image, `trustme-sign sign --image`): attach `image_fd` read-only
// to a loop device and open the verity mapping "trustme-<id>-rootfs.verity" on it with the signed
// parameters; recorded in state_dir/volumes.json next to the volumes (after them: open_volumes first), so
// close_volumes() undoes it. Then reads its first block: an image whose hash tree does not lead to the
// signed root hash fails there, with one line, and nothing stays behind. Returns /dev/mapper/NAME.
std::string open_verity_root(const std::string& container_id, const std::string& state_dir, int image_fd,
                             const std::string& image_path, const VerityParams& p);

// Deactivate and detach what state_dir/volumes.json records, then remove it. Idempotent.
void close_volumes(const std::string& container_id, const std::string& state_dir);

}  // namespace trustme::volume
