// The measurement log (trustme-eventlog(5)): TCG Canonical Event Log records in their JSON encoding
// (CEL-JSON), stored as a JSON text sequence (RFC 7464: each record is 0x1E, the JSON text, LF), the
// append-only layout systemd uses for its userspace measurement log (/run/log/systemd/tpm2-measure.log).
//
// Record:  {"recnum":N,"pcr":P,"digests":[{"hashAlg":"sha256","digest":"<hex>"}],
//           "content_type":"trustme","content":{...}}
// The digest extended into PCR P is SHA-256 over the content's canonical JSON (RFC 8785: sorted keys, no
// whitespace), so a verifier recomputes it from the content and replays the PCR from the digests.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/base/fd.hpp"

namespace trustme::attest {

inline constexpr const char* kContentType = "trustme";

struct Event {
    uint64_t recnum = 0;
    uint32_t pcr = 0;
    std::vector<uint8_t> digest;  // sha256
    std::string content_type = kContentType;
    nlohmann::json content = nlohmann::json::object();

    nlohmann::json to_json() const;
    // Strict: errors name `where` and the field ("event log record 3: digests: ...").
    static Event from_json(const nlohmann::json& j, const std::string& where);
    // TPM reset epoch the record belongs to (content.tpm_reset_count); -1 when absent.
    int64_t reset_count() const;
};

// RFC 8785-style canonical text: nlohmann's dump() sorts keys and, for the strings and non-negative
// integers our content holds, escapes exactly as JCS does. Invalid UTF-8 is replaced (U+FFFD).
std::string canonical(const nlohmann::json& j);
std::vector<uint8_t> content_digest(const nlohmann::json& content);

// Parse a JSON text sequence. A last record without its terminating LF (a torn write) is not returned;
// *good_len receives the length of the well-formed prefix. Any other defect is an error naming `name`.
std::vector<Event> parse_log(const std::string& text, const std::string& name, size_t* good_len = nullptr);
std::string serialize_record(const Event& e);  // "\x1e" + JSON + "\n"

// PCR value obtained by extending a zero PCR with the digests of `events` that target `pcr` and whose
// reset_count is `reset_count`, in order.
std::vector<uint8_t> replay(const std::vector<Event>& events, uint32_t pcr, int64_t reset_count);

// The log file, opened O_APPEND; the lock serializes writers (LOCK_EX) against each other and against
// readers that must see log and PCR together (LOCK_SH, used by quote).
class LogFile {
public:
    enum class Mode { Read, Append };
    LogFile(const std::string& path, Mode mode);  // Append creates the file (and its directory, 0700)
    void lock(bool exclusive);                     // flock, blocking; released when destroyed
    bool try_lock(bool exclusive);                 // flock, non-blocking: false when someone holds it
    std::vector<Event> read();                     // whole file
    // Append mode, locked: one read of the whole file; a torn last record is truncated away (durably).
    std::vector<Event> read_dropping_torn_tail();
    void append(const Event& e);                   // one write(2), then fdatasync
    const std::string& path() const { return path_; }
    bool exists() const { return bool(fd_); }

private:
    std::string read_all();
    std::string path_;
    UniqueFd fd_;
};

}  // namespace trustme::attest
