// Cache of CMS verdicts between starts (docs/signing.md, "The signature cache"). A warm start then does
// no ASN.1 or X.509 work: it reads the manifest, the signature, the anchors and the CRLs as bytes, hashes
// them into a key and finds the verdict reached for exactly those bytes, still within its validity, by
// a libcrypto that is still the same file.
// Any doubt (no entry, unreadable or malformed file, bad line checksum, outside the validity window, the
// library replaced) means a full verification; an entry can never refuse a bundle and never accept one
// that a full verification of the same bytes at the same time would refuse.
// Nothing here uses OpenSSL: the runtime's in-process warm path (warm.hpp) links it without libcrypto.
#pragma once
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "signing/policy.hpp"

namespace trustme::signing {

struct Signer {
    std::string subject;  // RFC 2253
    std::string issuer;
    std::string serial;
    std::string not_after;
};

// A successful verification and how long it stays true: the signer's chain and the CRLs are all within
// their validity at any time in [valid_from, valid_until).
struct Verdict {
    Signer signer;
    time_t valid_from = 0, valid_until = 0;
    std::string signed_sha256;  // hex: the content digest the signature covers (messageDigest)
};

// The policy's trust anchors and CRLs as bytes, read once: what cms_verify parses is exactly what the
// verdict cache's key covers. Anchor directories contribute their *.pem and *.crt files in name order.
// Errors name the policy file and the field.
struct TrustFile {
    std::string path, bytes;
};
struct TrustMaterial {
    std::vector<TrustFile> anchors, crls;
};
TrustMaterial read_trust_material(const trustme::signing::policy::Policy& policy);

// SHA-256 over everything the verdict depends on apart from the library: a version of the verification
// logic, the signature's bytes (which carry the signed digest of the manifest), and each trust anchor and
// CRL file (path and bytes, in policy order; their presence also decides X509_V_FLAG_CRL_CHECK). The
// manifest is not in the key: a start finds the verdict before it reads the manifest, then compares the
// manifest's SHA-256 with the verdict's signed_sha256.
std::string cms_verdict_key(std::string_view signature, const TrustMaterial& trust);

// The identity of the libcrypto file that reached a verdict: its path and what statx says of it (device,
// inode, size, mtime, ctime), or "" when it cannot be read. A library upgrade (a new file, or the same
// one rewritten) changes it, and with it every verdict lapses.
std::string library_identity(const std::string& path);

// The verdict cached under `key` in the store (cache.hpp open_cache_store), if one is there,
// `now` lies within its validity window and the libcrypto that reached it is unchanged. `library`: the
// path of the libcrypto this process uses (the full verification), or null to accept the library the
// entry names if that file is unchanged (the warm path, which loads none).
std::optional<Verdict> cached_verdict(int store_fd, const std::string& key, time_t now, const std::string* library);

// Remember a verdict reached with the libcrypto at `library` (most recent first, at most a few dozen
// entries). Failure to write is silent; so is a library whose identity cannot be read (nothing is kept).
void remember_verdict(int store_fd, const std::string& key, const Verdict& v, const std::string& library);

}  // namespace trustme::signing
