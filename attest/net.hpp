// The challenge/response transport of `serve` and `verify --remote`: one request line (JSON), one
// response line (JSON), then the connection closes. Addresses: "unix:/path" or "/path" for a unix socket,
// "HOST:PORT" for TCP (IPv4 or [IPv6]:PORT).
#pragma once
#include <string>
#include <string_view>

#include "runtime/base/fd.hpp"

namespace trustme::attest::net {

UniqueFd listen_on(const std::string& addr);
UniqueFd connect_to(const std::string& addr);
// Bounded: at most `max` bytes, and every socket gets 30 s send/receive timeouts.
std::string read_line(int fd, size_t max, const std::string& what);
void write_all(int fd, std::string_view data, const std::string& what);
void set_timeouts(int fd, int seconds);

}  // namespace trustme::attest::net
