#include "files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "error.hpp"
#include "fd.hpp"

namespace trustme {

std::string read_all(int fd, const std::string& what, size_t max) {
    std::string out;
    auto too_big = [&] { fail(what + ": larger than " + std::to_string(max) + " bytes"); };
    // A regular file is read straight into the string, sized from fstat: no bounce buffer on the stack
    // (whose pages would each be a fault) and no reallocation. Files that report no size (procfs, pipes)
    // take the loop below.
    struct stat st;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        if (static_cast<uint64_t>(st.st_size) > max) too_big();
        out.resize(static_cast<size_t>(st.st_size) + 1);  // one more: EOF is seen without a second read
        size_t len = 0;
        for (;;) {
            ssize_t n = ::read(fd, out.data() + len, out.size() - len);
            if (n < 0) {
                if (errno == EINTR) continue;
                fail_errno(errno, "read " + what);
            }
            if (n == 0) break;
            len += static_cast<size_t>(n);
            if (len == out.size()) {  // grew since fstat
                if (out.size() > max) too_big();
                out.resize(out.size() * 2);
            }
        }
        out.resize(len);
        return out;
    }
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno(errno, "read " + what);
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

std::string read_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) fail_errno(errno, path);
    return read_all(fd.get(), path);
}

std::string read_file_at(int dirfd, const std::string& name) {
    UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) fail_errno(errno, name);
    return read_all(fd.get(), name);
}

void write_file_atomic(int dirfd, const std::string& name, std::string_view data, int mode) {
    std::string tmp = "." + name + ".tmp";
    UniqueFd fd(::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!fd) fail_errno(errno, "create " + tmp);
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ::unlinkat(dirfd, tmp.c_str(), 0);
            fail_errno(e, "write " + name);
        }
        off += static_cast<size_t>(n);
    }
    if (::renameat(dirfd, tmp.c_str(), dirfd, name.c_str()) < 0) {
        int e = errno;
        ::unlinkat(dirfd, tmp.c_str(), 0);
        fail_errno(e, "rename " + name);
    }
}

void write_file(const std::string& path, std::string_view data) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) fail_errno(errno, "open " + path);
    ssize_t n = ::write(fd.get(), data.data(), data.size());
    if (n < 0) fail_errno(errno, "write \"" + std::string(data) + "\" to " + path);
}

bool path_exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

}  // namespace trustme
