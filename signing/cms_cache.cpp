#include "signing/cms_cache.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/error.hpp"
#include "base/files.hpp"

#include "signing/cache.hpp"
#include "signing/manifest.hpp"
#include "signing/sha256.hpp"
#include "base/owned.hpp"

namespace trustme::signing {
namespace {

// Bump when anything cms_verify decides changes (flags, security level, EKU rules): old verdicts then miss.
constexpr std::string_view kLogicVersion = "trustme cms_verify v3";
constexpr const char* kFile = "cms-verdicts";
constexpr std::string_view kHeader = "trustme-cms-verdicts v3";
constexpr size_t kMaxEntries = 64;

// One line: KEY VALID_FROM VALID_UNTIL SUBJECT ISSUER SERIAL NOT_AFTER LIBRARY SIGNED_SHA256 CHECK, fields
// percent-encoded (encode_field), LIBRARY = library_identity() of the libcrypto that reached the verdict,
// CHECK = SHA-256 of everything before " CHECK". The checksum turns a damaged or hand-edited line into a
// miss; it is not a secret: whoever can write the store is root (the argument is in docs/signing.md).
std::string render_line(const std::string& key, const Verdict& v, const std::string& library_id) {
    std::string l = key + ' ' + std::to_string(v.valid_from) + ' ' + std::to_string(v.valid_until) + ' ' +
                    encode_field(v.signer.subject) + ' ' + encode_field(v.signer.issuer) + ' ' +
                    encode_field(v.signer.serial) + ' ' + encode_field(v.signer.not_after) + ' ' +
                    encode_field(library_id) + ' ' + v.signed_sha256;
    return l + ' ' + sha256_hex(l);
}

std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> out;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        out.push_back(text.substr(0, nl));
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    }
    return out;
}

std::optional<time_t> parse_time(std::string_view s) {
    if (s.empty() || s.size() > 19) return std::nullopt;
    long long v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return static_cast<time_t>(v);
}

// The lines of the store file that belong to the current format, or none.
std::vector<std::string_view> entries(const std::string& text) {
    auto lines = split_lines(text);
    if (lines.empty() || lines[0] != kHeader) return {};
    lines.erase(lines.begin());
    return lines;
}

}  // namespace

TrustMaterial read_trust_material(const trustme::signing::policy::Policy& pol) {
    const std::string origin = pol.path.empty() ? "policy" : pol.path;
    if (pol.trust_anchors.empty()) fail(origin + ": trust_anchors: no trust anchors configured");
    TrustMaterial m;
    for (const auto& a : pol.trust_anchors) {
        struct stat st {};
        if (::stat(a.c_str(), &st) < 0) fail_errno(origin + ": trust_anchors: " + a);
        std::vector<std::string> files;
        if (S_ISDIR(st.st_mode)) {
            UniqueDir d(::opendir(a.c_str()));
            if (!d) fail_errno(origin + ": trust_anchors: " + a);
            while (dirent* de = ::readdir(d.get())) {
                std::string n = de->d_name;
                if (n.ends_with(".pem") || n.ends_with(".crt")) files.push_back(a + "/" + n);
            }
            d.reset();
            std::sort(files.begin(), files.end());
            if (files.empty()) fail(origin + ": trust_anchors: " + a + ": no .pem or .crt files");
        } else {
            files.push_back(a);
        }
        for (auto& f : files) {
            try {
                m.anchors.push_back({f, read_file(f)});
            } catch (const Error& e) {
                throw Error(origin + ": trust_anchors: " + e.what(), e.code());
            }
        }
    }
    for (const auto& f : pol.crls) {
        try {
            m.crls.push_back({f, read_file(f)});
        } catch (const Error& e) {
            throw Error(origin + ": crls: " + e.what(), e.code());
        }
    }
    return m;
}

std::string library_identity(const std::string& path) {
    struct statx st {};
    if (path.empty() || path[0] != '/' ||
        ::statx(AT_FDCWD, path.c_str(), AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS, &st) < 0 || !S_ISREG(st.stx_mode))
        return "";
    return path + ' ' + std::to_string(st.stx_dev_major) + ':' + std::to_string(st.stx_dev_minor) + ' ' +
           std::to_string(st.stx_ino) + ' ' + std::to_string(st.stx_size) + ' ' + std::to_string(st.stx_mtime.tv_sec) +
           '.' + std::to_string(st.stx_mtime.tv_nsec) + ' ' + std::to_string(st.stx_ctime.tv_sec) + '.' +
           std::to_string(st.stx_ctime.tv_nsec);
}

std::string cms_verdict_key(std::string_view signature, const TrustMaterial& trust) {
    Sha256 h;
    h.update_field(kLogicVersion);
    h.update_field(signature);
    h.update_field("anchors " + std::to_string(trust.anchors.size()));
    for (const auto& f : trust.anchors) h.update_field(f.path), h.update_field(f.bytes);
    h.update_field("crls " + std::to_string(trust.crls.size()));
    for (const auto& f : trust.crls) h.update_field(f.path), h.update_field(f.bytes);
    return h.hex();
}

std::optional<Verdict> cached_verdict(int store_fd, const std::string& key, time_t now, const std::string* library) {
    auto text = read_store_file(store_fd, kFile);
    if (!text) return std::nullopt;
    for (std::string_view line : entries(*text)) {
        if (!line.starts_with(key) || line.size() <= key.size() || line[key.size()] != ' ') continue;
        size_t last = line.rfind(' ');
        if (sha256_hex(line.substr(0, last)) != line.substr(last + 1)) return std::nullopt;
        std::vector<std::string_view> f;
        for (size_t i = 0; i <= last;) {
            size_t j = line.find(' ', i);
            f.push_back(line.substr(i, j - i));
            i = j + 1;
        }
        if (f.size() != 9 || f[8].size() != 64) return std::nullopt;
        auto from = parse_time(f[1]), until = parse_time(f[2]);
        auto subject = decode_field(f[3]), issuer = decode_field(f[4]), serial = decode_field(f[5]),
             not_after = decode_field(f[6]), library_id = decode_field(f[7]);
        if (!from || !until || !subject || !issuer || !serial || !not_after || !library_id) return std::nullopt;
        // The library that reached the verdict: the one this process uses (if it says), unchanged on disk.
        std::string lib = library_id->substr(0, library_id->find(' '));
        if (library && lib != *library) return std::nullopt;
        if (library_id->empty() || library_identity(lib) != *library_id) return std::nullopt;
        // The same comparison OpenSSL makes: valid from notBefore/lastUpdate on, expired at notAfter/nextUpdate.
        if (now < *from || now >= *until) return std::nullopt;
        return Verdict{Signer{*subject, *issuer, *serial, *not_after}, *from, *until, std::string(f[8])};
    }
    return std::nullopt;
}

void remember_verdict(int store_fd, const std::string& key, const Verdict& v, const std::string& library) {
    if (v.valid_until <= v.valid_from || v.signed_sha256.size() != 64) return;
    const std::string library_id = library_identity(library);
    if (library_id.empty()) return;
    std::string out = std::string(kHeader) + '\n' + render_line(key, v, library_id) + '\n';
    size_t kept = 1;
    auto old = read_store_file(store_fd, kFile);
    if (old)
        for (std::string_view line : entries(*old)) {
            if (kept == kMaxEntries) break;
            if (line.starts_with(key)) continue;
            out.append(line).append("\n");
            ++kept;
        }
    write_store_file(store_fd, kFile, out);
}

}  // namespace trustme::signing
