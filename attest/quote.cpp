#include "attest/quote.hpp"

#include <endian.h>
#include <fcntl.h>
#include <string.h>
#include <tss2/tss2_tpm2_types.h>
#include <unistd.h>

#include <iterator>

#include "attest/credential.hpp"
#include "tpm/pcr.hpp"
#include "tpm/tpm.hpp"
#include "base/error.hpp"
#include "base/files.hpp"

namespace trustme::attest {

std::vector<uint8_t> parse_nonce(const std::string& hex, const std::string& what) {
    auto n = tpm::from_hex(hex, what);
    if (n.size() < kMinNonce || n.size() > 64)
        fail(what + ": must be " + std::to_string(kMinNonce) + "..64 bytes (" + std::to_string(kMinNonce * 2) +
             "..128 hex digits)");
    return n;
}

tpm::Quote KeptAk::quote(tpm::Tpm& t, const std::vector<uint8_t>& nonce, const std::vector<uint32_t>& pcrs) {
    std::string dir = path_.substr(0, path_.rfind('/') + 1), name = path_.substr(dir.size());
    UniqueFd dfd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!read_ && dfd) {
        read_ = true;
        try {
            saved_ = tpm::SavedAk::from_json(read_file_at(dfd.get(), name, path_, 16384), path_);
        } catch (const std::exception&) {
            saved_ = {};  // absent or unreadable: made anew below
        }
    }
    auto before = saved_.context;
    auto q = t.quote(nonce, pcrs, &saved_);
    if (saved_.context != before && dfd) {
        try {
            write_file_atomic(dfd.get(), name, saved_.to_json() + "\n", 0600);
        } catch (const std::exception&) {
            // Not stored: the next process creates the AK once more, nothing worse.
        }
    }
    return q;
}

QuoteReply take_quote(const QuoteRequest& req) {
    if (req.pcrs.empty()) fail("pcrs: no PCR named");
    for (uint32_t p : req.pcrs)
        if (p > 23) fail("pcrs: " + std::to_string(p) + " is not a PCR number 0..23");
    QuoteReply out;
    out.header.boot_id = boot_id();
    out.header.from = req.from;
    std::string path = boot_log_path(req.log, out.header.boot_id);
    // Log range and quote under the log's shared lock, so no measurement lands between one and the other.
    LogFile log(path, LogFile::Mode::Read);
    log.lock(false);
    if (log.exists()) {
        out.end = log.complete_length();
        out.begin = log.offset_of(req.from, out.end);
        // A descriptor of its own (not a dup, which would share the lock and keep it while streaming).
        out.log_fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!out.log_fd) fail_errno("event log " + path);
    }
    tpm::Tpm t(req.tcti);
    auto q = req.ak ? req.ak->quote(t, req.nonce, req.pcrs) : t.quote(req.nonce, req.pcrs);
    out.header.attest = std::move(q.attest);
    out.header.signature_der = std::move(q.signature_der);
    out.header.pcrs = std::move(q.pcr_values);
    out.signature = std::move(q.signature);
    out.ak_public = std::move(q.ak_public);
    return out;
}

std::vector<Event> reply_records(const QuoteReply& r) {
    if (!r.log_fd || r.end == r.begin) return {};
    std::string text(static_cast<size_t>(r.end - r.begin), '\0');
    size_t got = 0;
    while (got < text.size()) {
        ssize_t n = ::pread(r.log_fd.get(), text.data() + got, text.size() - got, static_cast<off_t>(r.begin + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail(n < 0 ? errno : EIO, "event log: read");
        got += static_cast<size_t>(n);
    }
    return parse_log(text, "event log");
}

std::string tpm2_pcr_file(const std::map<uint32_t, std::vector<uint8_t>>& pcrs) {
    std::vector<uint32_t> numbers;
    for (const auto& [p, v] : pcrs) {
        if (v.size() != TPM2_SHA256_DIGEST_SIZE) fail("PCR " + std::to_string(p) + ": not a sha256 value");
        numbers.push_back(p);  // ascending: the map's order, the selection's bit order
    }
    if (numbers.empty()) fail("tpm2-tools PCR file: no PCR value");
    // The file holds the structures' bytes, padding included: zeroed first, then set field by field.
    const TPML_PCR_SELECTION chosen = tpm::pcr_selection(numbers);
    TPML_PCR_SELECTION sel;
    memset(&sel, 0, sizeof sel);
    sel.count = htole32(chosen.count);
    for (UINT32 i = 0; i < chosen.count; ++i) {
        sel.pcrSelections[i].hash = htole16(chosen.pcrSelections[i].hash);
        sel.pcrSelections[i].sizeofSelect = chosen.pcrSelections[i].sizeofSelect;
        memcpy(sel.pcrSelections[i].pcrSelect, chosen.pcrSelections[i].pcrSelect,
               sizeof sel.pcrSelections[i].pcrSelect);
    }
    std::string out(reinterpret_cast<const char*>(&sel), sizeof sel);

    std::vector<TPML_DIGEST> lists;
    for (const auto& [p, v] : pcrs) {
        if (lists.empty() || lists.back().count == std::size(lists.back().digests)) {
            lists.emplace_back();
            memset(&lists.back(), 0, sizeof(TPML_DIGEST));
        }
        TPM2B_DIGEST& d = lists.back().digests[lists.back().count++];
        d.size = htole16(static_cast<UINT16>(v.size()));
        memcpy(d.buffer, v.data(), v.size());
    }
    UINT32 n = htole32(static_cast<UINT32>(lists.size()));
    out.append(reinterpret_cast<const char*>(&n), sizeof n);
    for (auto& l : lists) {
        l.count = htole32(l.count);
        out.append(reinterpret_cast<const char*>(&l), sizeof l);
    }
    return out;
}

void write_tpm2_tools_files(const QuoteReply& r, int dir_fd) {
    auto bytes = [](const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); };
    // The AK's PEM from its public area, which must be of the AK's shape (credential.hpp).
    std::string pem = parse_ak_public(r.ak_public).pem;
    struct File {
        const char* name;
        std::string data;
    };
    for (const File& f : {File{"quote.msg", bytes(r.header.attest)}, File{"quote.sig", bytes(r.signature)},
                          File{"quote.pcrs", tpm2_pcr_file(r.header.pcrs)}, File{"ak.pem", pem}})
        write_file_atomic(dir_fd, f.name, f.data, 0644);
}

}  // namespace trustme::attest
