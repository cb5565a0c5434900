// Cache of CMS verdicts between starts (docs/signing.md, "The signature cache"). A warm start then does
// no ASN.1 or X.509 work: it reads the manifest, the signature, the anchors and the CRLs as bytes, hashes
// them into a key and finds the verdict reached for exactly those bytes, still within its validity.
// Any doubt (no entry, unreadable or malformed file, bad line checksum, outside the validity window) means
// a full verification; an entry can never refuse a bundle and never accept one that a full verification
// of the same bytes at the same time would refuse.
#pragma once
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include "signing/pki.hpp"

namespace trustme::signing {

// SHA-256 over everything the verdict depends on: a version of the verification logic, the libcrypto
// version, the manifest's digest, the signature's bytes, and each trust anchor and CRL file (path and
// bytes, in policy order; their presence also decides X509_V_FLAG_CRL_CHECK).
std::string cms_verdict_key(std::string_view manifest_sha256, std::string_view signature, const TrustMaterial& trust);

// The signer of a verdict cached under `key` in the store (cache.hpp open_cache_store), if one is there
// and `now` lies within its validity window.
std::optional<Signer> cached_verdict(int store_fd, const std::string& key, time_t now);

// Remember a verdict (most recent first, at most a few dozen entries). Failure to write is silent.
void remember_verdict(int store_fd, const std::string& key, const Verdict& v);

}  // namespace trustme::signing
