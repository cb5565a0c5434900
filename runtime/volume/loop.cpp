#include "runtime/volume/loop.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "base/error.hpp"
#include "base/files.hpp"

namespace trustme::volume {

LoopDevice LoopDevice::attach(int backing_fd, const std::string& backing_path, bool readonly) {
    UniqueFd ctl(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
    if (!ctl) fail_errno("/dev/loop-control");
    // Another process may configure the device between GET_FREE and CONFIGURE (EBUSY): take the next one.
    for (int attempt = 0; attempt < 64; ++attempt) {
        int n = ::ioctl(ctl.get(), LOOP_CTL_GET_FREE);
        if (n < 0) fail_errno("/dev/loop-control: LOOP_CTL_GET_FREE");
        std::string path = "/dev/loop" + std::to_string(n);
        UniqueFd dev(::open(path.c_str(), (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC));
        if (!dev) fail_errno(path);
        loop_config cfg{};
        cfg.fd = static_cast<uint32_t>(backing_fd);
        cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | (readonly ? LO_FLAGS_READ_ONLY : 0);
        std::strncpy(reinterpret_cast<char*>(cfg.info.lo_file_name), backing_path.c_str(), LO_NAME_SIZE - 1);
        if (::ioctl(dev.get(), LOOP_CONFIGURE, &cfg) == 0) return LoopDevice(path, std::move(dev));
        if (errno != EBUSY) fail_errno(path + ": LOOP_CONFIGURE " + backing_path);
    }
    fail("cannot attach a loop device to " + backing_path + ": every free device was taken concurrently");
}

void LoopDevice::release() noexcept {
    fd_.reset();
    path_.clear();
}

LoopDevice::~LoopDevice() {
    if (path_.empty() || !fd_) return;
    // LOOP_CLR_FD with autoclear set only marks the device; our close() below then detaches it.
    ::ioctl(fd_.get(), LOOP_CLR_FD, 0);
    fd_.reset();
}

namespace {

bool backed_by(int fd, const FileId& id) {
    loop_info64 info{};
    if (::ioctl(fd, LOOP_GET_STATUS64, &info) != 0) return false;  // ENXIO: not bound
    return info.lo_device == id.dev && info.lo_inode == id.ino;
}

std::vector<std::string> holders_of(const std::string& sysname) {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator("/sys/block/" + sysname + "/holders", ec))
        out.push_back(e.path().filename().string());
    return out;
}

}  // namespace

std::vector<LoopInfo> loops_backed_by(const FileId& id) {
    std::vector<LoopInfo> out;
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator("/sys/block", ec)) {
        std::string name = e.path().filename().string();
        if (name.rfind("loop", 0) != 0) continue;
        // Only bound devices have a backing_file: skip the rest without opening them.
        if (!path_exists("/sys/block/" + name + "/loop/backing_file")) continue;
        std::string dev = "/dev/" + name;
        UniqueFd fd(::open(dev.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd || !backed_by(fd.get(), id)) continue;
        out.push_back({dev, holders_of(name)});
    }
    return out;
}

std::vector<std::string> holder_dm_names(const std::vector<std::string>& holders) {
    std::vector<std::string> out;
    for (auto& h : holders) {
        try {
            std::string n = read_file("/sys/block/" + h + "/dm/name");
            while (!n.empty() && n.back() == '\n') n.pop_back();
            out.push_back(n);
        } catch (const Error&) {
            out.push_back(h);
        }
    }
    return out;
}

void detach_if_backed_by(const std::string& loop_path, const FileId& id) {
    UniqueFd fd(::open(loop_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd || !backed_by(fd.get(), id)) return;
    std::string sysname = loop_path.substr(loop_path.rfind('/') + 1);
    if (!holders_of(sysname).empty()) fail(loop_path + " is still in use by " + holders_of(sysname).front());
    if (::ioctl(fd.get(), LOOP_CLR_FD, 0) != 0 && errno != ENXIO) fail_errno(loop_path + ": LOOP_CLR_FD");
}

}  // namespace trustme::volume
