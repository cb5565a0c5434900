// The quote document and its verifier. Needs no TPM: OpenSSL for the signature, tss2-mu to parse the
// signed TPMS_ATTEST.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attest/eventlog.hpp"

namespace trustme::attest {

// What `quote` prints (and `serve` answers):
// {"version":1,"type":"trustme-quote","pcr_bank":"sha256","attest":"<hex TPMS_ATTEST>",
//  "signature":{"alg":"ecdsa-sha256","der":"<hex>"},"pcrs":{"11":"<hex>"},"event_log":[<CEL-JSON records>]}
struct QuoteDoc {
    std::vector<uint8_t> attest, signature_der;
    std::map<uint32_t, std::vector<uint8_t>> pcrs;
    std::vector<Event> log;

    nlohmann::json to_json() const;
    static QuoteDoc from_json(const nlohmann::json& j, const std::string& name);  // errors name `name` and the field
};

// {"manifests":["<hex sha256 of a manifest>",...],"signers":["<certificate subject>",...]}
struct AllowList {
    std::set<std::string> manifests, signers;
    static AllowList parse(const std::string& text, const std::string& name);
};

struct EventVerdict {
    uint64_t recnum = 0;
    std::string container_id, manifest, signer;
    enum class State { Allowed, Denied, Pending, NotCovered } state = State::NotCovered;
    std::string reason;
};

struct VerifyResult {
    std::string refused;  // empty: quote, nonce and log are sound
    std::vector<EventVerdict> events;
    bool ok() const;      // sound, and no event denied
};

// Minimum nonce length: 32 bytes, the security strength of the SHA-256/P-256 quote (issue 7).
inline constexpr size_t kMinNonce = 32;

// Checks, in order: the signature over `attest` with the trusted AK (PEM SubjectPublicKeyInfo; never a key
// from the quote); TPMS_ATTEST magic and type; extraData == nonce; the PCR selection and pcrDigest against
// the listed PCR values; the log (recnums consecutive, each digest recomputed from its content); the log
// replayed per quoted PCR for the quote's reset epoch equals the quoted value (at most the last record of
// a PCR may be pending: appended, not yet extended); then every covered event against the allow-list.
VerifyResult verify_quote(const std::string& ak_pem, const std::vector<uint8_t>& nonce, const AllowList& allow,
                          const QuoteDoc& q);

// Human-readable report, one line per event and a final verdict line.
std::string render(const VerifyResult& r);

}  // namespace trustme::attest
