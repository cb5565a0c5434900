#include "attest/eventlog.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attest/tpm.hpp"
#include "security/sha256.hpp"
#include "runtime/base/error.hpp"

namespace trustme::attest {

nlohmann::json Event::to_json() const {
    return {{"recnum", recnum},
            {"pcr", pcr},
            {"digests", nlohmann::json::array({{{"hashAlg", "sha256"}, {"digest", tpm::to_hex(digest)}}})},
            {"content_type", content_type},
            {"content", content}};
}

Event Event::from_json(const nlohmann::json& j, const std::string& where) {
    auto bad = [&](const std::string& f, const std::string& why) { fail(where + ": " + f + ": " + why); };
    if (!j.is_object()) fail(where + ": not a JSON object");
    for (const char* k : {"recnum", "pcr", "digests", "content_type", "content"})
        if (!j.contains(k)) bad(k, "missing");
    Event e;
    if (!j["recnum"].is_number_unsigned()) bad("recnum", "must be a non-negative integer");
    e.recnum = j["recnum"].get<uint64_t>();
    if (!j["pcr"].is_number_unsigned() || j["pcr"].get<uint64_t>() > 23) bad("pcr", "must be 0..23");
    e.pcr = j["pcr"].get<uint32_t>();
    if (!j["content_type"].is_string()) bad("content_type", "must be a string");
    e.content_type = j["content_type"].get<std::string>();
    if (!j["content"].is_object()) bad("content", "must be an object");
    e.content = j["content"];
    const auto& ds = j["digests"];
    if (!ds.is_array() || ds.empty()) bad("digests", "must be a non-empty array");
    for (size_t i = 0; i < ds.size(); ++i) {
        const auto& d = ds[i];
        std::string f = "digests[" + std::to_string(i) + "]";
        if (!d.is_object() || !d.contains("hashAlg") || !d.contains("digest") || !d["hashAlg"].is_string() ||
            !d["digest"].is_string())
            bad(f, "needs string fields hashAlg and digest");
        if (d["hashAlg"] != "sha256") continue;  // other banks may be present; we replay sha256
        e.digest = tpm::from_hex(d["digest"].get<std::string>(), where + ": " + f + ".digest");
        if (e.digest.size() != 32) bad(f + ".digest", "a sha256 digest has 32 bytes");
    }
    if (e.digest.empty()) bad("digests", "no sha256 digest");
    return e;
}

int64_t Event::reset_count() const {
    auto it = content.find("tpm_reset_count");
    if (it == content.end() || !it->is_number_unsigned()) return -1;
    return static_cast<int64_t>(it->get<uint64_t>());
}

std::string canonical(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<uint8_t> content_digest(const nlohmann::json& content) {
    // Our own SHA-256, not OpenSSL's: the measure hook does not load libcrypto (attest/pcr.hpp).
    security::detail::Sha256 h;
    h.update(canonical(content));
    auto d = h.finish();
    return std::vector<uint8_t>(d.begin(), d.end());
}

std::string serialize_record(const Event& e) { return "\x1e" + canonical(e.to_json()) + "\n"; }

std::vector<Event> parse_log(const std::string& text, const std::string& name, size_t* good_len) {
    std::vector<Event> out;
    size_t pos = 0, good = 0;
    while (pos < text.size()) {
        if (text[pos] != '\x1e')
            fail(name + ": byte " + std::to_string(pos) + ": expected a record separator (0x1E, RFC 7464)");
        size_t next = text.find('\x1e', pos + 1);
        size_t end = next == std::string::npos ? text.size() : next;
        std::string body = text.substr(pos + 1, end - pos - 1);
        bool complete = !body.empty() && body.back() == '\n';
        if (!complete && next == std::string::npos) break;  // torn last record: a crash during write
        std::string where = name + ": record " + std::to_string(out.size());
        if (!complete) fail(where + ": not terminated by a newline");
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(body);
        } catch (const nlohmann::json::exception& ex) {
            fail(where + ": not JSON: " + ex.what());
        }
        out.push_back(Event::from_json(j, where));
        pos = end;
        good = end;
    }
    if (good_len) *good_len = good;
    return out;
}

std::vector<uint8_t> replay(const std::vector<Event>& events, uint32_t pcr, int64_t reset_count) {
    std::vector<uint8_t> v(32, 0);
    for (const auto& e : events) {
        if (e.pcr != pcr || e.reset_count() != reset_count) continue;
        security::detail::Sha256 h;
        h.update(std::string_view(reinterpret_cast<const char*>(v.data()), v.size()));
        h.update(std::string_view(reinterpret_cast<const char*>(e.digest.data()), e.digest.size()));
        auto d = h.finish();
        std::copy(d.begin(), d.end(), v.begin());
    }
    return v;
}

namespace {
void mkdir_parents(const std::string& path) {
    // Create missing parent directories of `path` (0700: the log says which containers ran).
    for (size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
        std::string dir = path.substr(0, slash);
        if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) fail_errno(errno, "event log: mkdir " + dir);
    }
}
}  // namespace

LogFile::LogFile(const std::string& path, Mode mode) : path_(path) {
    if (path.empty()) fail("event log: no path given");
    if (mode == Mode::Append) {
        auto open_append = [&] { return ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640); };
        fd_.reset(open_append());
        if (!fd_ && errno == ENOENT) {  // only the first run creates the directories
            mkdir_parents(path);
            fd_.reset(open_append());
        }
        if (!fd_) fail_errno(errno, "event log " + path);
    } else {
        fd_.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!fd_ && errno != ENOENT) fail_errno(errno, "event log " + path);
    }
}

void LogFile::lock(bool exclusive) {
    if (!fd_) return;
    while (::flock(fd_.get(), exclusive ? LOCK_EX : LOCK_SH) < 0) {
        if (errno != EINTR) fail_errno(errno, "event log " + path_ + ": flock");
    }
}

bool LogFile::try_lock(bool exclusive) {
    if (!fd_) return true;
    while (::flock(fd_.get(), (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) return false;
        if (errno != EINTR) fail_errno(errno, "event log " + path_ + ": flock");
    }
    return true;
}

std::string LogFile::read_all() {
    struct stat st {};
    check(::fstat(fd_.get(), &st), "event log " + path_ + ": fstat");
    std::string text;
    text.reserve(static_cast<size_t>(st.st_size));
    char buf[65536];
    for (off_t off = 0;;) {
        ssize_t n = ::pread(fd_.get(), buf, sizeof buf, off);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno(errno, "event log " + path_ + ": read");
        }
        if (n == 0) break;
        text.append(buf, static_cast<size_t>(n));
        off += n;
    }
    return text;
}

std::vector<Event> LogFile::read() {
    if (!fd_) return {};
    return parse_log(read_all(), "event log " + path_);
}

std::vector<Event> LogFile::read_dropping_torn_tail() {
    std::string text = read_all();
    size_t good = 0;
    std::vector<Event> events = parse_log(text, "event log " + path_, &good);
    if (good < text.size()) {
        // A record without its newline was never extended (append precedes extend): drop it.
        check(::ftruncate(fd_.get(), static_cast<off_t>(good)), "event log " + path_ + ": truncate torn record");
        check(::fdatasync(fd_.get()), "event log " + path_ + ": fdatasync");
    }
    return events;
}

void LogFile::append(const Event& e) {
    std::string rec = serialize_record(e);
    // One write with O_APPEND: the record lands contiguously at the end; a short write is reported and
    // its torn remainder removed by the next writer (read_dropping_torn_tail).
    ssize_t n;
    do n = ::write(fd_.get(), rec.data(), rec.size());
    while (n < 0 && errno == EINTR);
    if (n < 0) fail_errno(errno, "event log " + path_ + ": write");
    if (static_cast<size_t>(n) != rec.size()) fail("event log " + path_ + ": short write");
    check(::fdatasync(fd_.get()), "event log " + path_ + ": fdatasync");
}

}  // namespace trustme::attest
