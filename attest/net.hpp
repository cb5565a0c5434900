// The challenge/response transport of `serve` and `verify --remote`: one request line (JSON), one
// response line (JSON) -- for a quote followed by the requested log records -- then the connection closes. Addresses:
// "unix:/path" or "/path" for a unix socket, "HOST:PORT" for TCP (IPv4 or [IPv6]:PORT).
#pragma once
#include <string>
#include <string_view>
#include <utility>

#include "attest/tls.hpp"
#include "base/fd.hpp"

namespace trustme::attest::net {

UniqueFd listen_on(const std::string& addr);
// A TCP address on a loopback interface (127.0.0.0/8, ::1), or a unix socket.
bool is_local(const std::string& addr);
// Who is connected: "ip:<address>" for TCP, "uid:<n>" for a unix socket (SO_PEERCRED).
std::string peer_key(int fd);

// A client's connection to ADDR: plain, or TLS when `tls` is given (the handshake done when the
// constructor returns). Blocking, with 30 s send/receive timeouts; errors name the address.
class Channel {
public:
    Channel(const std::string& addr, const tls::Context* tls);
    size_t read(char* buf, size_t n);  // 0 at the end of the stream
    void write_all(std::string_view data);
    const std::string& addr() const { return addr_; }

private:
    [[noreturn]] void fail_io(const char* what, int ret);
    std::string addr_;
    UniqueFd fd_;
    tls::Ssl ssl_;
};

// Buffered reading of lines: each byte is looked at once, so a reply is read in time linear in its size.
class Reader {
public:
    Reader(Channel& ch, std::string what) : ch_(ch), what_(std::move(what)) {}
    // The next line without its '\n'; false at end of stream before any byte of it. Error for a line
    // longer than `max`, or a stream ending inside a line.
    bool line(std::string* out, size_t max);

private:
    Channel& ch_;
    std::string what_, buf_;
    size_t pos_ = 0;
};
UniqueFd connect_to(const std::string& addr);
// Bounded: at most `max` bytes.
std::string read_line(Channel& ch, size_t max, const std::string& what);
void set_timeouts(int fd, int seconds);

}  // namespace trustme::attest::net
