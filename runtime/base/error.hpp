// Errors are exceptions carrying one line of context; the CLI catches and prints them once.
#pragma once
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace trustme {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

[[noreturn]] inline void fail(const std::string& msg) { throw Error(msg); }

// "what: strerror(err)"
[[noreturn]] inline void fail_errno(int err, std::string_view what) {
    std::string m(what);
    m += ": ";
    m += std::strerror(err);
    throw Error(m);
}

// Check a syscall-style return (-1 + errno).
inline long check(long rc, std::string_view what) {
    if (rc < 0) fail_errno(errno, what);
    return rc;
}

}  // namespace trustme
