// SHA-256 through OpenSSL with the algorithm fetched once per process. OpenSSL 3 resolves a legacy
// EVP_sha256() against the provider store on every EVP_DigestInit_ex/EVP_Digest (an implicit
// EVP_MD_fetch); on the warm start path that lookup cost more than hashing the strings themselves.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include <openssl/types.h>

namespace trustme::signing {

// The provider's SHA-256 (EVP_MD_fetch once, kept for the life of the process). Throws if unavailable.
const EVP_MD* sha256_md();

// One reusable digest context: update() any number of times, then hex() finishes and starts over.
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    void update(const void* data, size_t n);
    void update(std::string_view s) { update(s.data(), s.size()); }
    // Length-prefixed, so that a sequence of fields cannot be re-split into another sequence.
    void update_field(std::string_view s);
    std::string hex();

private:
    void restart();
    EVP_MD_CTX* ctx_;
};

std::string to_hex(const unsigned char* p, size_t n);

}  // namespace trustme::signing
