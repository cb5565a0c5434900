// The quote document and its verifier. Needs no TPM: OpenSSL for the signature, tss2-mu to parse the
// signed TPMS_ATTEST.
//
// The verifier decides what must be quoted (Expectation), never the host; it can check a whole log or,
// with the state it kept from the last check of that host (HostState), only the records appended since:
// the incremental protocol of docs/attestation.md.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attest/eventlog.hpp"

namespace trustme::attest {

// The signed part of a quote and what the host says about its log:
// {"version":2,"type":"trustme-quote","pcr_bank":"sha256","attest":"<hex TPMS_ATTEST>",
//  "signature":{"alg":"ecdsa-sha256","der":"<hex>"},"pcrs":{"11":"<hex>"},"boot_id":"<uuid>","from":N}
struct QuoteHeader {
    std::vector<uint8_t> attest, signature_der;
    std::map<uint32_t, std::vector<uint8_t>> pcrs;
    std::string boot_id;
    uint64_t from = 0;  // recnum of the first record that follows

    nlohmann::json to_json() const;
    static QuoteHeader from_json(const nlohmann::json& j, const std::string& name);  // errors name the field
};

// A whole quote in one document (`quote` prints it): the header plus "event_log":[<CEL-JSON records>].
struct QuoteDoc : QuoteHeader {
    std::vector<Event> log;

    nlohmann::json to_json() const;
    static QuoteDoc from_json(const nlohmann::json& j, const std::string& name);
};

// {"manifests":["<hex sha256 of a manifest>",...],"signers":["<certificate subject>",...]}
struct AllowList {
    std::set<std::string> manifests, signers;
    static AllowList parse(const std::string& text, const std::string& name);
};

// What the verifier demands of every quote.
struct Expectation {
    std::vector<uint32_t> pcrs{11};  // must all be covered, sha256 bank
};

struct EventVerdict {
    uint64_t recnum = 0;
    std::string container_id, manifest, signer;
    enum class State { Allowed, Denied, Pending, NotCovered } state = State::NotCovered;
    std::string reason;
};

// What a verifier keeps per host between challenges: where it stopped and what the records up to there
// replay to, for the boot and TPM epoch it checked. Valid only with the same AK and allow-list.
struct HostState {
    std::string ak_sha256, allow_sha256, boot_id;
    int64_t reset_count = -1;
    uint64_t next = 0;                              // first record not yet checked
    std::map<uint32_t, std::vector<uint8_t>> pcrs;  // replay of records < next of that epoch
    std::vector<EventVerdict> denied;               // denied records of that epoch: the host stays refused

    nlohmann::json to_json() const;
    static HostState from_json(const nlohmann::json& j, const std::string& name);
};

struct VerifyResult {
    std::string refused;  // empty: quote, nonce and log are sound
    std::vector<EventVerdict> events;
    std::vector<EventVerdict> earlier_denied;  // from the host state
    bool ok() const;                           // sound, and no event denied
};

// Minimum nonce length: 32 bytes, the security strength of the SHA-256/P-256 quote.
inline constexpr size_t kMinNonce = 32;

// The TPM epoch (clockInfo.resetCount) of a quote's attest bytes, unverified: only for choosing whether a
// kept HostState applies. -1 when the bytes are not a TPMS_ATTEST.
int64_t quote_epoch(const std::vector<uint8_t>& attest);

// One verification, records fed one at a time (a log of any length in constant memory per record).
// Checks, in order: nonce length; the signature over `attest` with the trusted AK (PEM SubjectPublicKeyInfo;
// never a key from the quote); TPMS_ATTEST magic and type; extraData == nonce; the selection is the
// sha256 bank and covers every expected PCR; pcrDigest against the listed values; with a start state,
// that it is for this boot, epoch and starting record. Then per record: recnums consecutive from `from`,
// digest recomputed from the content, a record of the quote's epoch only on a quoted PCR. At the end the
// replay per quoted PCR (from the start state's values) equals the quoted value (at most the last record
// of a PCR may be pending: appended, not yet extended), and every covered event is judged.
class Verification {
public:
    Verification(std::string ak_pem, std::vector<uint8_t> nonce, const AllowList& allow, Expectation expect,
                 const HostState* start = nullptr);
    bool begin(const QuoteHeader& q);  // false: refused (result().refused says why)
    bool add(const Event& e);          // false: refused
    // The result; `next` (may be null) receives the state to keep when the result is sound.
    VerifyResult finish(HostState* next);
    const VerifyResult& result() const { return r_; }

private:
    bool refuse(std::string why);

    std::string ak_pem_;
    std::vector<uint8_t> nonce_;
    const AllowList& allow_;
    Expectation expect_;
    const HostState* start_;
    VerifyResult r_;
    QuoteHeader q_;
    int64_t epoch_ = -1;
    std::optional<uint64_t> last_recnum_;
    struct Pcr {
        std::vector<uint8_t> value, before_last;
        std::optional<size_t> last;  // index in r_.events of its last record
    };
    std::map<uint32_t, Pcr> run_;
    size_t this_epoch_ = 0, other_epoch_ = 0;
    int64_t other_epoch_seen_ = -1;
};

// The whole-document form.
VerifyResult verify_quote(const std::string& ak_pem, const std::vector<uint8_t>& nonce, const AllowList& allow,
                          const QuoteDoc& q, const Expectation& expect = {});

// Human-readable report, one line per event and a final verdict line.
std::string render(const VerifyResult& r);

}  // namespace trustme::attest
