#include "base/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "base/error.hpp"
#include "base/fd.hpp"

namespace trustme {

namespace {

// A regular file of `size` bytes (fstat), read straight into the string: no bounce buffer on the stack
// (whose pages would each be a fault) and no reallocation. One byte more than `size` is asked for, so EOF
// is seen without a second read, and a file that grows meanwhile is an error, not followed.
std::string read_sized(int fd, size_t size, const std::string& what) {
    std::string out(size + 1, '\0');
    size_t len = 0;
    for (;;) {
        ssize_t n = ::read(fd, out.data() + len, out.size() - len);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno("read " + what);
        }
        if (n == 0) break;
        len += static_cast<size_t>(n);
        if (len == out.size()) fail(what + ": grew while being read");
    }
    out.resize(len);
    return out;
}

}  // namespace

std::string read_all(int fd, const std::string& what, size_t max) {
    std::string out;
    auto too_big = [&] { fail(what + ": larger than " + std::to_string(max) + " bytes"); };
    // Files that report no size (procfs, pipes) take the loop below.
    struct stat st;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        if (static_cast<uint64_t>(st.st_size) > max) too_big();
        return read_sized(fd, static_cast<size_t>(st.st_size), what);
    }
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno("read " + what);
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > max) too_big();
    }
    return out;
}

void print(std::string_view text) {
    // stdio, not iostreams (see strings.hpp); flushed so output is ordered with the runtime's other writes.
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
}

std::string read_file(const std::string& path, size_t max) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) fail_errno(path);
    return read_all(fd.get(), path, max);
}

std::string read_file_at(int dirfd, const std::string& name, const std::string& what, size_t max) {
    const std::string& w = what.empty() ? name : what;
    UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
    if (!fd) fail_errno(w);
    struct stat st;
    if (::fstat(fd.get(), &st) < 0) fail_errno(w);
    if (!S_ISREG(st.st_mode)) fail(w + ": not a regular file");
    if (static_cast<uint64_t>(st.st_size) > max) fail(w + ": larger than " + std::to_string(max) + " bytes");
    // Also a file that fstat says is empty: read_all would read it to its end (as procfs files need).
    return read_sized(fd.get(), static_cast<size_t>(st.st_size), w);
}

void write_file_atomic(int dirfd, const std::string& name, std::string_view data, int mode) {
    std::string tmp = "." + name + ".tmp";
    UniqueFd fd(::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!fd) fail_errno("create " + tmp);
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ::unlinkat(dirfd, tmp.c_str(), 0);
            fail(e, "write " + name);
        }
        off += static_cast<size_t>(n);
    }
    if (::renameat(dirfd, tmp.c_str(), dirfd, name.c_str()) < 0) {
        int e = errno;
        ::unlinkat(dirfd, tmp.c_str(), 0);
        fail(e, "rename " + name);
    }
}

void write_file(const std::string& path, std::string_view data) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) fail_errno("open " + path);
    ssize_t n = ::write(fd.get(), data.data(), data.size());
    if (n < 0) fail_errno("write \"" + std::string(data) + "\" to " + path);
}

bool path_exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

}  // namespace trustme
