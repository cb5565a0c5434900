// Loop devices: attach an image file, find the loop devices backed by a file, detach.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "base/fd.hpp"

namespace trustme::volume {

// The identity of a backing file, as the kernel's loop driver records it (lo_device, lo_inode).
struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    bool operator==(const FileId&) const = default;
};

// A loop device attached to a file. Attached with LO_FLAGS_AUTOCLEAR: the kernel detaches it on the
// last close, so a crash while only we hold it leaves nothing, and once dm-crypt holds it, removing the
// mapping detaches it. detach() (or the destructor, unless released) clears it explicitly.
class LoopDevice {
public:
    // LOOP_CTL_GET_FREE + LOOP_CONFIGURE (Linux 5.8+), retried when another process takes the free
    // device first. `backing` must stay open only for the call.
    static LoopDevice attach(int backing_fd, const std::string& backing_path, bool readonly);

    LoopDevice(LoopDevice&& o) noexcept : path_(std::move(o.path_)), fd_(std::move(o.fd_)) { o.path_.clear(); }
    LoopDevice& operator=(LoopDevice&&) = delete;
    ~LoopDevice();

    const std::string& path() const noexcept { return path_; }
    // Close our fd without detaching: whoever holds the device now (dm-crypt) keeps it alive.
    void release() noexcept;

private:
    LoopDevice(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
    std::string path_;
    UniqueFd fd_;
};

struct LoopInfo {
    std::string path;                  // /dev/loopN
    std::vector<std::string> holders;  // names of the devices stacked on it (dm-3, ...)
};

// Every loop device currently backed by `id`.
std::vector<LoopInfo> loops_backed_by(const FileId& id);
// The dm names (dm/name) of the holders of a block device given by its sysfs name (loop3, dm-0, ...).
std::vector<std::string> holder_dm_names(const std::vector<std::string>& holders);
// Detach /dev/loopN if it is still backed by `id` (and nothing is stacked on it). No-op otherwise.
void detach_if_backed_by(const std::string& loop_path, const FileId& id);

}  // namespace trustme::volume
