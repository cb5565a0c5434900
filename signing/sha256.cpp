#include "signing/sha256.hpp"

#include <openssl/evp.h>

#include "base/error.hpp"
#include "signing/manifest.hpp"

namespace trustme::signing {

const EVP_MD* sha256_md() {
    // Function-local static: initialised once, thread-safe; never freed (the plugin is never unloaded).
    static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (!md) fail("SHA-256 unavailable in libcrypto");
    return md;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_) fail("SHA-256: out of memory");
    restart();
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::restart() {
    if (EVP_DigestInit_ex2(ctx_, sha256_md(), nullptr) != 1) fail("SHA-256 unavailable");
}

void Sha256::update(const void* data, size_t n) {
    if (EVP_DigestUpdate(ctx_, data, n) != 1) fail("SHA-256 failed");
}

void Sha256::update_field(std::string_view s) {
    std::string len = std::to_string(s.size()) + ':';
    update(len);
    update(s);
}

std::string Sha256::hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_, md, &len) != 1) fail("SHA-256 failed");
    restart();
    return to_hex(md, len);
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
