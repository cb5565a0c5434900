// Hex helpers of tpm.hpp, in the lean library: the event log uses them in the measure hook too.
#include <string>
#include <vector>

#include "tpm/tpm.hpp"

namespace trustme::tpm {

std::string to_hex(const uint8_t* p, size_t n) {
    static const char* d = "0123456789abcdef";
    std::string s(n * 2, '0');
    for (size_t i = 0; i < n; ++i) {
        s[2 * i] = d[p[i] >> 4];
        s[2 * i + 1] = d[p[i] & 15];
    }
    return s;
}

std::vector<uint8_t> from_hex(const std::string& s, const std::string& what) {
    auto nib = [&](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        fail(what + ": not a hex string");
    };
    if (s.size() % 2) fail(what + ": not a hex string (odd length)");
    std::vector<uint8_t> out(s.size() / 2);
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(nib(s[2 * i]) << 4 | nib(s[2 * i + 1]));
    return out;
}

}  // namespace trustme::tpm
