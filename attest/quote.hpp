// The attester's side of a quote: the TPM quote over the PCRs the verifier names, and the range of this
// boot's log from the record it asks for, taken together under the log's shared lock.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "attest/verify.hpp"
#include "runtime/base/fd.hpp"

namespace trustme::attest {

struct QuoteRequest {
    std::string tcti, log;        // the configured log path; this boot's file is derived from it
    std::vector<uint8_t> nonce;   // 32..64 bytes
    uint64_t from = 0;            // first record to return
    std::vector<uint32_t> pcrs;   // sha256 bank, 0..23
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
