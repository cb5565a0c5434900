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

#include "base/fd.hpp"

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

// The boot this log belongs to: the kernel's boot id (/proc/sys/kernel/random/boot_id, a random UUID per
// boot; proc(5)). Records carry it, and each boot has its own file, "<configured path>.<boot id>", so the
// log starts anew at every boot and its length is that of one boot's history.
std::string boot_id();
std::string boot_log_path(const std::string& base, const std::string& boot);
// Keep the files of at most `keep` earlier boots next to `base` (newest by mtime), removing older ones and
// their checkpoints. Only names "<base name>.<36-character boot id>[.ckpt]" are touched.
void prune_boot_logs(const std::string& base, const std::string& current_boot, size_t keep);
inline constexpr size_t kKeptBoots = 4;

// The hook's checkpoint, "<log>.ckpt": what the log up to `length` bytes replays to, so a start reads only
// what was appended after it (normally nothing) instead of the whole log. It is a cache: a missing,
// torn or inconsistent checkpoint is rebuilt from the log, and its value is checked against the TPM.
struct Checkpoint {
    int64_t reset_count = -1;  // TPM epoch of `value`
    uint32_t pcr = 0;
    std::vector<uint8_t> value;  // replay of the records of that epoch and PCR, 32 bytes
    uint64_t records = 0;        // next record number
    uint64_t length = 0;         // bytes of the log it covers (a record boundary)

    static std::string path_for(const std::string& log) { return log + ".ckpt"; }
    // False when absent, torn or malformed (its own SHA-256 does not match).
    static bool load(const std::string& path, Checkpoint* out);
    void store(const std::string& path) const;  // overwrite in place; no sync: the log is the truth
};

// The log file, opened O_APPEND; the lock serializes writers (LOCK_EX) against each other and against
// readers that must see log and PCR together (LOCK_SH, used by quote).
class LogFile {
public:
    enum class Mode { Read, Append };
    LogFile(const std::string& path, Mode mode);  // Append creates the file (and its directory, 0700)
    void lock(bool exclusive);                    // flock, blocking; released when destroyed
    bool try_lock(bool exclusive);                // flock, non-blocking: false when someone holds it
    std::vector<Event> read();                    // whole file
    // Append mode, locked: one read of the whole file; a torn last record is truncated away (durably).
    std::vector<Event> read_dropping_torn_tail();
    // Records from byte `offset` (a record boundary) to the end; *good_len as for parse_log, relative to
    // `offset`. Append mode: a torn tail is truncated away.
    std::vector<Event> read_tail(uint64_t offset, size_t* good_len);
    uint64_t size();
    // Append mode, locked: drop bytes after `length` (a torn record), durably.
    void truncate_to(uint64_t length);
    // Length of the well-formed prefix: the file size without a torn last record.
    uint64_t complete_length();
    // Offset of the first record whose recnum is >= `recnum` (or `end` when none), among the records in
    // [0, end): a binary search over the file (records are written in recnum order), a few reads.
    uint64_t offset_of(uint64_t recnum, uint64_t end);
    size_t append(const Event& e);  // one write(2), then fdatasync; returns its length
    int fd() const { return fd_.get(); }
    const std::string& path() const { return path_; }
    bool exists() const { return bool(fd_); }

private:
    std::string read_all();
    std::string path_;
    UniqueFd fd_;
};

}  // namespace trustme::attest
