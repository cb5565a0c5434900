// The attester's side of a quote: the TPM quote over the PCRs the verifier names, and the range of this
// boot's log from the record it asks for, taken together under the log's shared lock.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "attest/tpm.hpp"
#include "attest/verify.hpp"
#include "runtime/base/fd.hpp"

namespace trustme::attest {

// The AK kept across quotes, so that a quote loads it (TPM2_ContextLoad) instead of having the TPM derive
// it again: in memory for a long-running caller (serve) and in "<log>.ak-context" (next to the configured
// log path, mode 0600) for the next process. A cache only: whatever it holds is checked against the TPM
// (tpm::Tpm::quote), and anything the TPM refuses or that is not the AK is replaced by a new context.
class KeptAk {
public:
    explicit KeptAk(std::string log) : path_(log + ".ak-context") {}
    tpm::Quote quote(tpm::Tpm& t, const std::vector<uint8_t>& nonce, const std::vector<uint32_t>& pcrs);
    const std::string& path() const { return path_; }

private:
    std::string path_;
    tpm::SavedAk saved_;
    bool read_ = false;
};

struct QuoteRequest {
    std::string tcti, log;        // the configured log path; this boot's file is derived from it
    std::vector<uint8_t> nonce;   // 32..64 bytes
    uint64_t from = 0;            // first record to return
    std::vector<uint32_t> pcrs;   // sha256 bank, 0..23
    KeptAk* ak = nullptr;         // the AK to use; none: created from the template for this quote
};

// The header, and the log bytes [begin, end) of `log_fd` that hold records from..last: the log is
// append-only, so those bytes stay as they are after the lock is released, and a reply of any length can
// be streamed from them without holding the lock (and without blocking the measure hook).
struct QuoteReply {
    QuoteHeader header;
    UniqueFd log_fd;  // empty when this boot has no log yet
    uint64_t begin = 0, end = 0;
};

QuoteReply take_quote(const QuoteRequest& req);

// Records of a reply, parsed (for the one-document form of `quote`).
std::vector<Event> reply_records(const QuoteReply& r);

// Argument checks shared by `quote` and `serve`: Error naming `what` on a bad nonce or PCR.
std::vector<uint8_t> parse_nonce(const std::string& hex, const std::string& what);

}  // namespace trustme::attest
