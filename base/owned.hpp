// Ownership of C resources: every handle a C library gives out is owned by one object that releases it
// exactly once, on every path (exceptions included). Pointers: Owned<T, release> below; file descriptors:
// UniqueFd (fd.hpp). Nothing calls close(2), closedir(3) or a library's free function by hand.
#pragma once
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <memory>

#include "base/fd.hpp"

namespace trustme {

// Calls `Release` on a non-null pointer (std::unique_ptr never calls its deleter with null).
template <auto Release>
struct ReleaseWith {
    template <class T>
    void operator()(T* p) const noexcept {
        Release(p);
    }
};

// A T* owned and released with `Release` (e.g. Owned<X509, X509_free>, Owned<crypt_device, crypt_free>).
template <class T, auto Release>
using Owned = std::unique_ptr<T, ReleaseWith<Release>>;

// A directory stream; closedir(3) also closes the fd under it.
using UniqueDir = Owned<DIR, ::closedir>;

// A stream over the directory `dirfd` names, on a duplicate of it (the caller keeps dirfd; the two share
// the file offset); null with errno set on failure.
inline UniqueDir open_dir(int dirfd) {
    const int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return nullptr;
    DIR* d = ::fdopendir(dup);
    if (!d) {
        const int e = errno;
        UniqueFd(dup).reset();  // fdopendir failed: the fd is still ours to close
        errno = e;
        return nullptr;
    }
    return UniqueDir(d);
}

// The process's umask set to `mask` for a scope, the previous one restored when it ends.
class ScopedUmask {
public:
    explicit ScopedUmask(mode_t mask) noexcept : old_(::umask(mask)) {}
    ~ScopedUmask() { ::umask(old_); }
    ScopedUmask(const ScopedUmask&) = delete;
    ScopedUmask& operator=(const ScopedUmask&) = delete;

private:
    mode_t old_;
};

}  // namespace trustme
