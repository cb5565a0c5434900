// What both SHA-256 back ends share (sha256.hpp).
#include "signing/manifest.hpp"
#include "signing/sha256.hpp"

namespace trustme::signing {

void Sha256::update_field(std::string_view s) {
    std::string len = std::to_string(s.size()) + ':';
    update(len);
    update(s);
}

std::string Sha256::hex() {
    unsigned char d[32];
    finish(d);
    return to_hex(d, sizeof d);
}

std::string to_hex(const unsigned char* p, size_t n) {
    static const char d[] = "0123456789abcdef";
    std::string s(n * 2, '0');
    for (size_t i = 0; i < n; ++i) {
        s[2 * i] = d[p[i] >> 4];
        s[2 * i + 1] = d[p[i] & 15];
    }
    return s;
}

std::string sha256_hex(std::string_view data) {
    Sha256 h;
    h.update(data);
    return h.hex();
}

}  // namespace trustme::signing
