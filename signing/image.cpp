#include "signing/image.hpp"

#include <fcntl.h>
#include <libcryptsetup.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "signing/sha256.hpp"
#include "base/owned.hpp"

extern char** environ;

namespace trustme::signing {
namespace {

constexpr uint32_t kBlock = 4096;
constexpr uint32_t kSaltBytes = 32;

// Run argv (found in PATH, plus the sbin directories where Debian keeps mke2fs); its stderr becomes
// the reason of the one-line error.
void run_tool(const std::vector<std::string>& argv, const std::string& what) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) fail_errno("pipe");
    UniqueFd rd(p[0]), wr(p[1]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, wr.get(), 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::string path = argv[0];
    for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/"})
        if (::access((dir + argv[0]).c_str(), X_OK) == 0) {
            path = dir + argv[0];
            break;
        }
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, path.c_str(), &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    wr.reset();
    if (rc != 0) fail(rc, what + ": " + argv[0] + " (apt-get install e2fsprogs)");
    std::string err;
    char buf[4096];
    for (ssize_t n; (n = ::read(rd.get(), buf, sizeof buf)) != 0;) {
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (err.size() < 65536) err.append(buf, static_cast<size_t>(n));
    }
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    if (auto nl = err.rfind('\n'); nl != std::string::npos) err = err.substr(nl + 1);
    fail(what + ": " + argv[0] + " failed" + (err.empty() ? "" : ": " + err));
}

// Blocks of the hash tree over n data blocks: 128 SHA-256 digests per 4096-byte block, level by level.
uint64_t hash_blocks(uint64_t n) {
    uint64_t total = 0;
    do {
        n = (n + kBlock / 32 - 1) / (kBlock / 32);
        total += n;
    } while (n > 1);
    return total;
}

std::string hex(const char* p, size_t n) { return to_hex(reinterpret_cast<const unsigned char*>(p), n); }

std::string last_crypt_error;
void crypt_log(int level, const char* msg, void*) {
    if (level == CRYPT_LOG_ERROR && msg) {
        last_crypt_error = msg;
        while (!last_crypt_error.empty() && (last_crypt_error.back() == '\n' || last_crypt_error.back() == '.'))
            last_crypt_error.pop_back();
    }
}

}  // namespace

PendingImage::~PendingImage() {
    if (!tmp_.empty()) ::unlinkat(dir_, tmp_.c_str(), 0);
}

void PendingImage::commit(const std::string& display) {
    if (::renameat(dir_, tmp_.c_str(), dir_, im_.file.c_str()) < 0) fail_errno(display);
    tmp_.clear();
}

PendingImage build_image(int bundle_fd, const std::string& bundle_path, const std::string& rootfs_path,
                         const std::string& file) {
    const std::string display = bundle_path + "/" + file;
    // What mke2fs needs: the data, a block per directory and per long symlink, an inode each; then room.
    uint64_t bytes = 0, entries = 1;
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(rootfs_path, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        ++entries;
        auto st = it->symlink_status(ec);
        if (ec) break;
        if (st.type() == std::filesystem::file_type::regular) {
            auto sz = it->file_size(ec);
            if (ec) break;
            bytes += (sz + kBlock - 1) / kBlock * kBlock;
        } else if (st.type() != std::filesystem::file_type::symlink) {
            bytes += kBlock;
        } else {
            bytes += kBlock / 8;
        }
    }
    if (ec) fail(rootfs_path + ": " + ec.message());
    uint64_t fs_bytes = (bytes + entries * 256) / 10 * 12 + (uint64_t{16} << 20);
    fs_bytes = (fs_bytes + kBlock - 1) / kBlock * kBlock;

    std::random_device rd;
    const std::string tmp = "." + file + ".tmp" + std::to_string(rd());
    Image im;
    im.file = file;
    im.fstype = "ext4";
    im.block = kBlock;
    PendingImage pending(bundle_fd, tmp, im);
    const std::string tmp_path = bundle_path + "/" + tmp;
    {
        UniqueFd f(::openat(bundle_fd, tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
        if (!f) fail_errno(tmp_path);
    }
    // No journal (nothing ever writes it), no reserved blocks, no resize inode; -d copies owners, modes,
    // xattrs, hard links, devices and symlinks of the directory as they are.
    run_tool({"mke2fs", "-q", "-F", "-t", "ext4", "-b", std::to_string(kBlock), "-O", "^has_journal,^resize_inode",
              "-m", "0", "-N", std::to_string(entries + 64), "-E", "nodiscard", "-d", rootfs_path, tmp_path,
              std::to_string(fs_bytes / 1024) + "k"},
             display);
    im.data_blocks = fs_bytes / kBlock;
    im.hash_offset = fs_bytes;
    im.size = fs_bytes + hash_blocks(im.data_blocks) * kBlock;
    {
        UniqueFd f(::openat(bundle_fd, tmp.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
        if (!f || ::ftruncate(f.get(), static_cast<off_t>(im.size)) < 0) fail_errno(tmp_path);
    }

    // The hash tree, appended (hash_area_offset = the data's end), with a random salt; the "volume key"
    // of a verity device is its root hash.
    crypt_set_log_callback(nullptr, crypt_log, nullptr);
    last_crypt_error.clear();
    struct crypt_device* cd = nullptr;
    auto cause = [](int rc) { return last_crypt_error.empty() ? std::string(strerror(-rc)) : last_crypt_error; };
    if (int rc = crypt_init(&cd, tmp_path.c_str()); rc < 0) fail(display + ": dm-verity: " + cause(rc));
    Owned<struct crypt_device, crypt_free> owned(cd);
    struct crypt_params_verity p {};
    p.hash_name = "sha256";
    p.data_device = tmp_path.c_str();
    p.salt = nullptr;  // libcryptsetup draws salt_size random bytes
    p.salt_size = kSaltBytes;
    p.hash_type = 1;
    p.data_block_size = p.hash_block_size = kBlock;
    p.data_size = im.data_blocks;
    p.hash_area_offset = im.hash_offset;
    p.flags = CRYPT_VERITY_NO_HEADER | CRYPT_VERITY_CREATE_HASH;
    if (int rc = crypt_format(cd, CRYPT_VERITY, nullptr, nullptr, nullptr, nullptr, 0, &p); rc < 0)
        fail(display + ": dm-verity hash tree: " + cause(rc));
    char root[64];
    size_t root_len = sizeof root;
    if (int rc = crypt_volume_key_get(cd, CRYPT_ANY_SLOT, root, &root_len, nullptr, 0); rc < 0 || root_len != 32)
        fail(display + ": dm-verity root hash: " + cause(rc < 0 ? rc : -EINVAL));
    struct crypt_params_verity got {};
    if (int rc = crypt_get_verity_info(cd, &got); rc < 0 || got.salt_size != kSaltBytes)
        fail(display + ": dm-verity parameters: " + cause(rc < 0 ? rc : -EINVAL));
    im.root = hex(root, root_len);
    im.salt = hex(got.salt, got.salt_size);

    // The whole file's SHA-256: what the image is, for inventories and attestation (a start reads none of it).
    UniqueFd f(::openat(bundle_fd, tmp.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!f) fail_errno(tmp_path);
    struct stat st {};
    if (::fstat(f.get(), &st) < 0 || static_cast<uint64_t>(st.st_size) != im.size)
        fail(display + ": the hash tree did not end where expected");
    Sha256 h;
    std::vector<char> buf(1 << 20);
    for (ssize_t n; (n = ::read(f.get(), buf.data(), buf.size())) != 0;) {
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno(tmp_path);
        }
        h.update(buf.data(), static_cast<size_t>(n));
    }
    im.sha256 = h.hex();
    pending.set_image(im);
    return pending;
}

}  // namespace trustme::signing
