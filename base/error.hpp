// Errors are exceptions carrying one line of context and, when a system call failed, its errno; the CLI
// catches and prints them once. Callers decide on code(), never on the text: the text is for people
// (tests compare it), the code is for programs.
#pragma once
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace trustme {

class Error : public std::runtime_error {
public:
    // `what` is the whole line as printed; `code` the errno behind it, 0 when none.
    explicit Error(const std::string& what, int code = 0) : std::runtime_error(what), code_(code) {}
    int code() const noexcept { return code_; }

private:
    int code_ = 0;
};

// A command line the program cannot act on: the CLIs print it with a pointer to --help and exit 2.
struct UsageError : Error {
    using Error::Error;
};

// The errno an exception carries: Error::code(), 0 for any other exception.
inline int error_code(const std::exception& e) noexcept {
    const auto* err = dynamic_cast<const Error*>(&e);
    return err ? err->code() : 0;
}

[[noreturn]] inline void fail(const std::string& msg) { throw Error(msg); }

// "what: strerror(code)", carrying code.
[[noreturn]] inline void fail(int code, std::string_view what) {
    std::string m(what);
    m += ": ";
    m += std::strerror(code);
    throw Error(m, code);
}

// fail(errno, what): right after the call that set errno.
[[noreturn]] inline void fail_errno(std::string_view what) { fail(errno, what); }

// Check a syscall-style return (-1 + errno).
inline long check(long rc, std::string_view what) {
    if (rc < 0) fail_errno(what);
    return rc;
}

}  // namespace trustme
