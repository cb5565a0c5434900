// A cache of compiled seccomp programs, keyed on what determines the output of compile_seccomp.
//
// Why it is safe: the entry is named by a SHA-256 over the exact JSON (nlohmann's dump orders keys, so
// the same profile gives the same bytes), the libseccomp version (its syscall tables and code generator),
// the kernel release (compile_seccomp probes kernel flag support) and our format version; the full key is
// stored in the entry and compared on read. Only a directory and files owned by us and not writable by
// anybody else are trusted, so another user cannot plant a weaker filter. Entries are written to a
// temporary name and renamed, so a concurrent reader sees a whole entry or none.
#include <dirent.h>
#include <fcntl.h>
#include <seccomp.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/log.hpp"
#include "runtime/security/json_util.hpp"
#include "base/sha256.hpp"
#include "runtime/security/security.hpp"
#include "base/owned.hpp"

namespace trustme::security {
using nlohmann::json;
using namespace detail;

namespace {

constexpr char kMagic[8] = {'T', 'M', 'S', 'C', 'M', 'P', '0', '1'};

struct EntryHeader {
    char magic[8];
    uint8_t key[32];
    uint32_t flags;
    uint32_t uses_notify;
    uint32_t count;  // sock_filter entries that follow
};

bool trusted(const struct stat& st, bool dir) {
    if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) return false;
    return st.st_uid == geteuid() && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

UniqueFd open_cache_dir(const std::string& dir) {
    UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd && errno == ENOENT && mkdir(dir.c_str(), 0700) == 0)
        fd.reset(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
        log::debug("seccomp cache " + dir + " unusable: " + std::strerror(errno));
        return {};
    }
    struct stat st {};
    if (fstat(fd.get(), &st) != 0 || !trusted(st, true)) {
        log::debug("seccomp cache " + dir + " not trusted (owner or mode), not used");
        return {};
    }
    return fd;
}

std::array<uint8_t, 32> cache_key(const json& seccomp) {
    Sha256 h;
    h.update("trustme-seccomp-cache-v1\n");
    const scmp_version* v = seccomp_version();
    h.update(std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->micro) + "\n");
    utsname u{};
    uname(&u);
    h.update(std::string(u.release) + " " + u.machine + "\n");
    h.update(seccomp.dump());
    return h.finish();
}

bool read_all(int fd, void* buf, size_t n) {
    auto* p = static_cast<char*>(buf);
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r, n -= static_cast<size_t>(r);
    }
    return true;
}

bool write_all(int fd, const void* buf, size_t n) {
    const auto* p = static_cast<const char*>(buf);
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r, n -= static_cast<size_t>(r);
    }
    return true;
}

bool load_entry(int dirfd, const std::string& name, const std::array<uint8_t, 32>& key, SeccompProgram& prog) {
    UniqueFd fd(openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return false;
    struct stat st {};
    if (fstat(fd.get(), &st) != 0 || !trusted(st, false)) return false;
    EntryHeader h{};
    if (!read_all(fd.get(), &h, sizeof(h))) return false;
    if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0 || std::memcmp(h.key, key.data(), key.size()) != 0)
        return false;
    if (h.count == 0 || h.count > BPF_MAXINSNS) return false;
    if (static_cast<uint64_t>(st.st_size) != sizeof(h) + uint64_t{h.count} * sizeof(sock_filter)) return false;
    prog.bpf.resize(h.count);
    if (!read_all(fd.get(), prog.bpf.data(), h.count * sizeof(sock_filter))) return false;
    prog.flags = h.flags;
    prog.uses_notify = h.uses_notify != 0;
    return true;
}

// Bound the cache without bookkeeping: engines reuse a handful of profiles, so when more than kMaxEntries
// distinct ones have piled up (a profile per container, say) we start over. Only a miss pays for this.
constexpr size_t kMaxEntries = 256;

void trim_cache(int dirfd) {
    UniqueDir d = open_dir(dirfd);
    if (!d) return;
    std::vector<std::string> names;
    while (dirent* e = readdir(d.get()))
        if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    d.reset();
    if (names.size() < kMaxEntries) return;
    log::debug("seccomp cache: " + std::to_string(names.size()) + " entries, starting over");
    for (const auto& n : names) unlinkat(dirfd, n.c_str(), 0);
}

void store_entry(int dirfd, const std::string& name, const std::array<uint8_t, 32>& key, const SeccompProgram& prog) {
    trim_cache(dirfd);
    std::string tmp = name + ".tmp." + std::to_string(getpid());
    UniqueFd fd(openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) {
        log::debug("seccomp cache: cannot create an entry: " + std::string(std::strerror(errno)));
        return;
    }
    EntryHeader h{};
    std::memcpy(h.magic, kMagic, sizeof(kMagic));
    std::memcpy(h.key, key.data(), key.size());
    h.flags = prog.flags;
    h.uses_notify = prog.uses_notify;
    h.count = static_cast<uint32_t>(prog.bpf.size());
    bool ok = write_all(fd.get(), &h, sizeof(h)) &&
              write_all(fd.get(), prog.bpf.data(), prog.bpf.size() * sizeof(sock_filter));
    fd.reset();
    if (!ok || renameat(dirfd, tmp.c_str(), dirfd, name.c_str()) != 0) {
        log::debug("seccomp cache: cannot write an entry: " + std::string(std::strerror(errno)));
        unlinkat(dirfd, tmp.c_str(), 0);
    }
}

}  // namespace

SeccompProgram compile_seccomp_cached(const json& seccomp, const std::string& cache_dir) {
    if (seccomp.is_null() || cache_dir.empty()) return compile_seccomp(seccomp);
    UniqueFd dir = open_cache_dir(cache_dir);
    if (!dir) return compile_seccomp(seccomp);
    const auto key = cache_key(seccomp);
    const std::string name = Sha256::hex(key);
    SeccompProgram prog;
    if (load_entry(dir.get(), name, key, prog)) {
        // Listener details are not part of the program; read them from the (already validated) JSON.
        if (const json* l = field(seccomp, "listenerPath")) prog.listener_path = l->get<std::string>();
        if (const json* m = field(seccomp, "listenerMetadata")) prog.listener_metadata = m->get<std::string>();
        log::debug("seccomp program from cache " + cache_dir + "/" + name);
        return prog;
    }
    prog = compile_seccomp(seccomp);
    store_entry(dir.get(), name, key, prog);
    return prog;
}

}  // namespace trustme::security
