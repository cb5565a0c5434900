// The attester's side of a quote: the TPM quote over the PCRs the verifier names, and the range of this
// boot's log from the record it asks for, taken together under the log's shared lock.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tpm/tpm.hpp"
#include "attest/verify.hpp"
#include "base/fd.hpp"

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
    std::string tcti, log;       // the configured log path; this boot's file is derived from it
    std::vector<uint8_t> nonce;  // 32..64 bytes
    uint64_t from = 0;           // first record to return
    std::vector<uint32_t> pcrs;  // sha256 bank, 0..23
    KeptAk* ak = nullptr;        // the AK to use; none: created from the template for this quote
};

// The header, and the log bytes [begin, end) of `log_fd` that hold records from..last: the log is
// append-only, so those bytes stay as they are after the lock is released, and a reply of any length can
// be streamed from them without holding the lock (and without blocking the measure hook).
struct QuoteReply {
    QuoteHeader header;
    std::vector<uint8_t> signature;  // the header's signature as the TPM returned it: TPMT_SIGNATURE, marshalled
    std::vector<uint8_t> ak_public;  // TPM2B_PUBLIC of the AK that signed, marshalled
    UniqueFd log_fd;                 // empty when this boot has no log yet
    uint64_t begin = 0, end = 0;
};

QuoteReply take_quote(const QuoteRequest& req);

// Records of a reply, parsed (for the one-document form of `quote`).
std::vector<Event> reply_records(const QuoteReply& r);

// The quote in the files tpm2-tools (5.x) reads, written into the directory `dir_fd`, so that, with no
// conversion,
//     tpm2_checkquote -u ak.pem -m quote.msg -s quote.sig -f quote.pcrs -g sha256 -q <nonce hex>
// checks signature, nonce and PCR digest:
//   quote.msg   the TPMS_ATTEST as the TPM marshalled it (what `tpm2_quote -m` writes);
//   quote.sig   the TPMT_SIGNATURE, marshalled (`tpm2_quote -s`, its default format "tss");
//   quote.pcrs  the quoted PCR values (`tpm2_quote -o`, its default format "serialized": tpm2_pcr_file);
//   ak.pem      the public key of the AK that signed (SubjectPublicKeyInfo), as this host reports it.
// Each file is replaced atomically (mode 0644). Nothing in them is secret.
void write_tpm2_tools_files(const QuoteReply& r, int dir_fd);

// tpm2-tools' "serialized" PCR file (lib/pcr.c pcr_fwrite_serialized, read back by tpm2_checkquote -f):
// the C structures of tss2_tpm2_types.h copied byte for byte, integers little-endian, padding zero --
//   TPML_PCR_SELECTION  (sizeof: 132 bytes) the sha256 bank, the quoted PCRs;
//   UINT32              n, the number of TPML_DIGESTs that follow;
//   n x TPML_DIGEST     (sizeof: 532 bytes each) the values in ascending PCR order, at most 8 a list
//                       (as TPM2_PCR_Read returns them).
// `pcrs`: PCR number -> sha256 value (32 bytes, else Error).
std::string tpm2_pcr_file(const std::map<uint32_t, std::vector<uint8_t>>& pcrs);

// Argument checks shared by `quote` and `serve`: Error naming `what` on a bad nonce or PCR.
std::vector<uint8_t> parse_nonce(const std::string& hex, const std::string& what);

}  // namespace trustme::attest
