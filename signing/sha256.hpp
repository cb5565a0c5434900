// SHA-256 for the signing code, with two interchangeable back ends chosen at link time:
//  - sha256_openssl.cpp (trustme_signing: trustme-sign, the verify plugin, trustme-attest): OpenSSL's
//    SHA-256 with the algorithm fetched once per process. OpenSSL 3 resolves a legacy EVP_sha256()
//    against the provider store on every EVP_DigestInit_ex/EVP_Digest (an implicit EVP_MD_fetch); on the
//    warm start path that lookup cost more than hashing the strings themselves.
//  - sha256_own.cpp (trustme_signing_lean, linked into trustme-runtime for the warm path, warm.hpp): our
//    own implementation (base/sha256.hpp), so that a warm start loads no libcrypto.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace trustme::signing {

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
    // The 32 bytes of the digest; starts over like hex().
    void finish(unsigned char (&out)[32]);

private:
    void* ctx_;  // the back end's context
};

std::string to_hex(const unsigned char* p, size_t n);

}  // namespace trustme::signing
