#include "runtime/volume/volumes.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/files.hpp"
#include "runtime/volume/loop.hpp"
#include "runtime/volume/luks.hpp"
#include "runtime/volume/token.hpp"

namespace trustme::volume {
namespace {

// The "volume" part of a dm-verity rootfs mapping's name (open_verity_root). '.' is not allowed in volume
// names (valid_name): no volume's mapping can end in it.
constexpr const char* kVerityRoot = "rootfs.verity";

bool valid_name(const std::string& n) {
    if (n.empty() || n.size() > 32) return false;
    return std::all_of(n.begin(), n.end(),
                       [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; });
}

std::string normalise_destination(const std::string& where, const std::string& d) {
    if (d.empty() || d[0] != '/') fail(where + ": must be an absolute path inside the container");
    std::string out;
    size_t pos = 0;
    while (pos < d.size()) {
        size_t slash = d.find('/', pos);
        std::string part = d.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
        pos = slash == std::string::npos ? d.size() : slash + 1;
        if (part.empty()) continue;
        // ".." could climb out of the rootfs; the runtime resolves the rest inside it (RESOLVE_IN_ROOT).
        if (part == "..") fail(where + ": \"" + d + "\" leaves the container's rootfs (\"..\")");
        if (part == ".") continue;
        out += "/" + part;
    }
    if (out.empty()) fail(where + ": cannot mount a volume over the container's root");
    return out;
}

struct Record {
    std::string name, source, dm, loop;
    FileId id;
    bool block = false;
};

nlohmann::json to_json(const std::string& container_id, const std::vector<Record>& recs) {
    nlohmann::json vols = nlohmann::json::array();
    for (auto& r : recs)
        vols.push_back({{"name", r.name},
                        {"source", r.source},
                        {"dev", static_cast<uint64_t>(r.id.dev)},
                        {"ino", static_cast<uint64_t>(r.id.ino)},
                        {"block", r.block},
                        {"loop", r.loop},
                        {"dm", r.dm}});
    return {{"container_id", container_id}, {"volumes", vols}};
}

void save(int dirfd, const std::string& container_id, const std::vector<Record>& recs) {
    write_file_atomic(dirfd, kStateFile, to_json(container_id, recs).dump() + "\n");
}

// An exclusive lock on the source for the duration of an open or close, so two runtimes do not attach
// the same image at once. An OFD lock (fcntl F_OFD_SETLK), not flock(2): libcryptsetup takes flock()s on
// the device itself for its metadata locking and would wait on ours. Its own open file description:
// the loop device keeps a reference to the backing fd's file, and a lock on that would outlive us.
// `readonly`: a source that is only ever read (a signed dm-verity image) is never opened for writing,
// not even to lock it: on overlayfs a writable open copies the whole file up into the upper layer (and
// fails with ENOSPC when it does not fit), and an immutable or fs-verity file refuses it (EPERM).
UniqueFd lock_source(const std::string& source, bool must_exist, bool readonly = false) {
    UniqueFd fd(readonly ? -1 : ::open(source.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY));
    short type = F_WRLCK;
    if (!fd && (readonly || errno == EROFS || errno == EACCES)) {
        // A source on read-only media: a write lock needs a writable fd; a read lock still keeps out a
        // closer that would detach our loop device, and the in-use check catches the rest.
        fd.reset(::open(source.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
        type = F_RDLCK;
    }
    if (!fd) {
        if (!must_exist && errno == ENOENT) return fd;
        fail_errno(source);
    }
    struct flock fl {};
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    // Bounded: another runtime holds it only while it opens or closes this volume.
    for (int i = 0; i < 300; ++i) {
        if (::fcntl(fd.get(), F_OFD_SETLK, &fl) == 0) return fd;
        if (errno != EAGAIN && errno != EACCES) fail_errno("lock " + source);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    fail(source + ": locked by another runtime for more than 30 s");
}

std::string container_of(const std::string& dm_name) {
    // trustme-<id>-<volume>: the id is what lies between the prefix and the last '-'.
    if (dm_name.rfind("trustme-", 0) != 0) return "";
    size_t last = dm_name.rfind('-');
    if (last <= 8) return "";
    return dm_name.substr(8, last - 8);
}

// Refuse a source that some device is already stacked on or attached to.
void check_not_in_use(const VolumeSpec& v, const FileId& id, bool block, dev_t rdev) {
    std::vector<std::string> users;
    if (block) {
        std::error_code ec;
        std::string dir =
            "/sys/dev/block/" + std::to_string(major(rdev)) + ":" + std::to_string(minor(rdev)) + "/holders";
        std::vector<std::string> holders;
        for (auto& e : std::filesystem::directory_iterator(dir, ec)) holders.push_back(e.path().filename().string());
        users = holder_dm_names(holders);
    } else {
        for (auto& l : loops_backed_by(id)) {
            auto names = holder_dm_names(l.holders);
            if (names.empty()) users.push_back(l.path);
            users.insert(users.end(), names.begin(), names.end());
        }
    }
    if (users.empty()) return;
    std::string who = container_of(users.front());
    fail("volume " + v.name + ": " + v.source + " is already in use" +
         (who.empty() ? " (by " + users.front() + ")" : " by container " + who));
}

void undo(const Record& r) {
    deactivate(r.dm);
    if (r.block) return;
    if (!r.loop.empty()) detach_if_backed_by(r.loop, r.id);
    // A crash between attaching and recording the loop device: with autoclear the kernel detached it when
    // our fd was closed, but make sure no unheld loop device on our image remains.
    UniqueFd lock = lock_source(r.source, false, r.dm.ends_with(std::string("-") + kVerityRoot));
    for (auto& l : loops_backed_by(r.id))
        if (l.holders.empty()) detach_if_backed_by(l.path, r.id);
}

}  // namespace

std::vector<VolumeSpec> parse_volume_annotations(const nlohmann::json& annotations) {
    std::map<std::string, VolumeSpec> specs;
    std::map<std::string, std::map<std::string, bool>> seen;
    if (!annotations.is_object()) return {};
    const std::string prefix = kAnnotationPrefix;
    for (auto& [key, value] : annotations.items()) {
        if (key.rfind(prefix, 0) != 0) continue;
        std::string where = "annotations." + key;
        std::string rest = key.substr(prefix.size());
        size_t dot = rest.rfind('.');
        if (dot == std::string::npos) fail(where + ": expected " + prefix + "<name>.source|destination|options");
        std::string name = rest.substr(0, dot), field = rest.substr(dot + 1);
        if (!valid_name(name)) fail(where + ": volume name \"" + name + "\" must be 1-32 of [A-Za-z0-9_-]");
        if (!value.is_string()) fail(where + ": not a string");
        std::string v = value.get<std::string>();
        VolumeSpec& s = specs[name];
        s.name = name;
        if (field == "source") {
            if (v.empty() || v[0] != '/') fail(where + ": must be an absolute path to a LUKS2 image or block device");
            s.source = v;
        } else if (field == "destination") {
            s.destination = normalise_destination(where, v);
        } else if (field == "options") {
            size_t pos = 0;
            while (pos <= v.size()) {
                size_t comma = v.find(',', pos);
                std::string opt = v.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
                if (opt == "ro") s.readonly = true;
                else if (opt == "rw") s.readonly = false;
                else if (opt.rfind("fstype=", 0) == 0 && opt.size() > 7 && opt.size() < 32) s.fstype = opt.substr(7);
                else if (!opt.empty()) fail(where + ": unknown option \"" + opt + "\" (ro, rw, fstype=TYPE)");
                if (comma == std::string::npos) break;
                pos = comma + 1;
            }
        } else {
            fail(where + ": unknown key \"" + field + "\" (source, destination, options)");
        }
        seen[name][field] = true;
    }
    std::vector<VolumeSpec> out;
    std::map<std::string, std::string> dests;
    for (auto& [name, s] : specs) {
        std::string where = "annotations." + prefix + name;
        if (s.source.empty()) fail(where + ".source: missing");
        if (s.destination.empty()) fail(where + ".destination: missing");
        if (dests.count(s.destination))
            fail(where + ".destination: " + s.destination + " is also the destination of volume " +
                 dests[s.destination]);
        dests[s.destination] = name;
        out.push_back(s);
    }
    return out;
}

std::string mapping_name(const std::string& container_id, const std::string& volume) {
    std::string n = "trustme-" + container_id + "-" + volume;
    if (n.size() <= 120) return n;
    // FNV-1a: only needs to make long ids distinct, not to resist anyone.
    uint64_t h = 1469598103934665603ULL;
    for (unsigned char c : container_id) h = (h ^ c) * 1099511628211ULL;
    char buf[17];
    snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return "trustme-" + container_id.substr(0, 48) + "~" + buf + "-" + volume;
}

std::vector<OpenedVolume> open_volumes(const std::string& container_id, const std::vector<VolumeSpec>& specs,
                                       const std::string& tcti, const std::string& state_dir) {
    if (specs.empty()) return {};
    require_dm();
    UniqueFd dirfd(::open(state_dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (!dirfd) fail_errno("state directory " + state_dir);

    std::vector<Record> recs;
    // Volumes already recorded (a previous attempt of this container) are closed first.
    close_volumes(container_id, state_dir);
    std::vector<OpenedVolume> out;
    try {
        for (auto& v : specs) {
            std::string where = "volume " + v.name + ": ";
            UniqueFd lock = lock_source(v.source, true);
            struct stat st {};
            if (::fstat(lock.get(), &st) != 0) fail_errno(v.source);
            bool block = S_ISBLK(st.st_mode);
            if (!block && !S_ISREG(st.st_mode)) fail(where + v.source + ": neither a file nor a block device");
            FileId id{st.st_dev, st.st_ino};
            check_not_in_use(v, id, block, st.st_rdev);

            Record r;
            r.name = v.name;
            r.source = v.source;
            r.id = id;
            r.block = block;
            r.dm = mapping_name(container_id, v.name);
            if (mapping_exists(r.dm))
                fail(where + "/dev/mapper/" + r.dm + " already exists (delete the old container first)");

            std::string token_fstype;
            // Unseal before anything is attached: the likely failures (PCRs changed, no TPM) leave nothing.
            SecretBytes key = [&] {
                CryptDevice hdr = CryptDevice::load(v.source);
                return unseal_volume_key(hdr, tcti, &token_fstype);
            }();

            recs.push_back(r);  // step 1: about to attach a loop device for this source
            save(dirfd.get(), container_id, recs);
            std::string device = v.source;
            std::optional<LoopDevice> loop;
            if (!block) {
                UniqueFd backing(::open(v.source.c_str(), (v.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC));
                if (!backing) fail_errno(v.source);
                loop.emplace(LoopDevice::attach(backing.get(), v.source, v.readonly));
                device = loop->path();
                recs.back().loop = device;  // step 2: attached, now activating
                save(dirfd.get(), container_id, recs);
            }
            CryptDevice cd = CryptDevice::load(device);
            activate(cd, r.dm, key, v.readonly);
            if (loop) loop->release();  // dm-crypt holds it now; autoclear detaches it when the mapping goes

            std::string fstype = !v.fstype.empty() ? v.fstype : !token_fstype.empty() ? token_fstype : "ext4";
            out.push_back({v.name, "/dev/mapper/" + r.dm, fstype, v.destination, v.readonly});
        }
    } catch (...) {
        try {
            close_volumes(container_id, state_dir);
        } catch (...) {
        }
        throw;
    }
    return out;
}

namespace {
// What state_dir/volumes.json records; empty when there is no such file.
std::vector<Record> load_records(int dirfd, const std::string& state_dir) {
    std::string text;
    {
        UniqueFd f(::openat(dirfd, kStateFile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!f) {
            if (errno == ENOENT) return {};
            fail_errno(state_dir + "/" + kStateFile);
        }
        text = read_file_at(dirfd, kStateFile);
    }
    std::vector<Record> recs;
    try {
        auto j = nlohmann::json::parse(text);
        for (auto& v : j.at("volumes")) {
            Record r;
            r.name = v.at("name").get<std::string>();
            r.source = v.at("source").get<std::string>();
            r.id.dev = static_cast<dev_t>(v.at("dev").get<uint64_t>());
            r.id.ino = static_cast<ino_t>(v.at("ino").get<uint64_t>());
            r.block = v.at("block").get<bool>();
            r.loop = v.at("loop").get<std::string>();
            r.dm = v.at("dm").get<std::string>();
            recs.push_back(r);
        }
    } catch (const nlohmann::json::exception& e) {
        fail(state_dir + "/" + kStateFile + ": corrupt: " + e.what());
    }
    return recs;
}
}  // namespace

std::string open_verity_root(const std::string& container_id, const std::string& state_dir, int image_fd,
                             const std::string& image_path, const VerityParams& p) {
    const std::string where = "rootfs image " + image_path + ": ";
    if (!dm_available()) fail(where + "dm-verity needs device-mapper, which this kernel does not have");
    UniqueFd dirfd(::open(state_dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (!dirfd) fail_errno("state directory " + state_dir);
    struct stat st {};
    if (::fstat(image_fd, &st) != 0) fail_errno(image_path);
    if (!S_ISREG(st.st_mode)) fail(where + "not a regular file");
    std::vector<Record> recs = load_records(dirfd.get(), state_dir);
    Record r;
    r.name = "rootfs";
    r.source = image_path;
    r.id = FileId{st.st_dev, st.st_ino};
    r.dm = mapping_name(container_id, kVerityRoot);
    if (mapping_exists(r.dm)) fail(where + "/dev/mapper/" + r.dm + " already exists (delete the old container first)");
    recs.push_back(r);  // about to attach
    save(dirfd.get(), container_id, recs);
    try {
        LoopDevice loop = LoopDevice::attach(image_fd, image_path, true);
        recs.back().loop = loop.path();
        save(dirfd.get(), container_id, recs);
        activate_verity(loop.path(), r.dm, p);
        loop.release();  // dm-verity holds it; autoclear detaches it when the mapping goes
        // The first data block, through the mapping: the kernel checks the path from the signed root hash
        // down to it, so a hash tree (or root hash) that does not match fails here instead of in the mount.
        const std::string dev = "/dev/mapper/" + r.dm;
        UniqueFd d(::open(dev.c_str(), O_RDONLY | O_CLOEXEC));
        if (!d) fail_errno(dev);
        std::vector<char> block(p.block);
        if (::pread(d.get(), block.data(), block.size(), 0) != static_cast<ssize_t>(block.size()))
            fail(where + "does not match the signed dm-verity root hash (" +
                 std::string(errno == EIO ? "the first block fails verification" : strerror(errno)) + ")");
        return dev;
    } catch (...) {
        try {
            undo(recs.back());
            recs.pop_back();
            save(dirfd.get(), container_id, recs);
        } catch (...) {
        }
        throw;
    }
}

void close_volumes(const std::string& container_id, const std::string& state_dir) {
    UniqueFd dirfd(::open(state_dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (!dirfd) {
        if (errno == ENOENT) return;
        fail_errno("state directory " + state_dir);
    }
    std::vector<Record> recs = load_records(dirfd.get(), state_dir);
    if (recs.empty() && ::faccessat(dirfd.get(), kStateFile, F_OK, AT_SYMLINK_NOFOLLOW) != 0) return;
    std::string first_error;
    for (auto it = recs.rbegin(); it != recs.rend(); ++it) {
        try {
            undo(*it);
        } catch (const Error& e) {
            if (first_error.empty()) first_error = "volume " + it->name + ": " + e.what();
        }
    }
    if (!first_error.empty()) fail(first_error);
    if (::unlinkat(dirfd.get(), kStateFile, 0) != 0 && errno != ENOENT) fail_errno(state_dir + "/" + kStateFile);
}

}  // namespace trustme::volume
