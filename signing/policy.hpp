// The trust policy (trustme-policy(5)). Parsed with nlohmann/json only, so the lean runtime binary can
// read it without loading OpenSSL; the heavy checks live in the verify plugin (verify_plugin.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace trustme::signing::policy {

enum class SignatureMode { Off, Warn, Required };
// What a verification may reuse between starts (docs/signing.md "The cache"). Stamps: cached verdicts,
// file digests and tree records keyed by statx stamps. VerityOnly: cached verdicts, but a file's content is
// trusted without reading it only when fs-verity vouches for it (FS_IOC_MEASURE_VERITY equals the
// manifest's fsverity digest), never because its stamps are unchanged. Off: nothing is cached.
enum class VerifyCache { Off, Stamps, VerityOnly };

struct Policy {
    std::string path;                              // file it was read from; empty: no policy file exists
    SignatureMode signature = SignatureMode::Off;  // default: Required when a file exists, Off when none
    std::vector<std::string> trust_anchors;   // CA files or directories, relative paths resolved from the policy's dir
    std::vector<std::string> crls;            // CRL files (PEM or DER)
    std::string tcti = "device:/dev/tpmrm0";  // TPM used by volumes and attestation
    uint32_t pcr = 11;                        // PCR that container measurements extend
    bool attestation = false;  // runtime inserts `trustme-attest hook measure` as first createRuntime hook
    std::string event_log = "/var/lib/trustme/measurements.cel.json";
    VerifyCache verify_cache = VerifyCache::Stamps;  // what may be reused between starts
    std::string verify_cache_dir =
        "/var/lib/trustme/verify-cache";  // the store of the cache, owned by its user (docs/signing.md)
    nlohmann::json constraints = nlohmann::json::object();  // judged against engine-generated configs
};

// Resolution: explicit path (--policy) if non-empty, else $TRUSTME_POLICY, else the default file:
// /etc/trustme/policy.json for root of the host, $XDG_CONFIG_HOME/trustme/policy.json (else
// ~/.config/trustme/policy.json) for anyone else, an unprivileged user or root of a user namespace.
// A file named by the flag or the environment that does not exist is an error; the default file missing
// means "no policy" (signature Off). A malformed file is an error naming the file and the JSON path.
// verify_cache_dir defaults the same way: /var/lib/trustme/verify-cache, or $XDG_CACHE_HOME/trustme/
// verify-cache (else ~/.cache/trustme/verify-cache).
Policy load(const std::string& explicit_path);

// Parse policy text (for tests); `origin` names the file in errors and anchors relative paths.
Policy parse(const std::string& text, const std::string& origin);

}  // namespace trustme::signing::policy
