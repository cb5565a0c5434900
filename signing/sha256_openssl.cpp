// The OpenSSL back end of sha256.hpp.
#include <openssl/evp.h>

#include "base/error.hpp"
#include "signing/sha256.hpp"

namespace trustme::signing {
namespace {

const EVP_MD* sha256_md() {
    // Function-local static: initialised once, thread-safe; never freed (the plugin is never unloaded).
    static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (!md) fail("SHA-256 unavailable in libcrypto");
    return md;
}

EVP_MD_CTX* ctx(void* p) { return static_cast<EVP_MD_CTX*>(p); }

void restart(void* p) {
    if (EVP_DigestInit_ex2(ctx(p), sha256_md(), nullptr) != 1) fail("SHA-256 unavailable");
}

}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_) fail("SHA-256: out of memory");
    restart(ctx_);
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx(ctx_)); }

void Sha256::update(const void* data, size_t n) {
    if (EVP_DigestUpdate(ctx(ctx_), data, n) != 1) fail("SHA-256 failed");
}

void Sha256::finish(unsigned char (&out)[32]) {
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx(ctx_), out, &len) != 1 || len != 32) fail("SHA-256 failed");
    restart(ctx_);
}

}  // namespace trustme::signing
