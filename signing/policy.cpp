// trustme-policy(5): strict parsing. A policy is a security decision, so every doubt is an error: unknown
// fields (a typo such as "signatur" must not silently mean "default"), wrong types, duplicate keys (JSON
// leaves their meaning open: RFC 8259 §4 "names within an object SHOULD be unique"), and a missing file
// that was named explicitly. Only the *default* file being absent means "no policy".
#include "signing/policy.hpp"

#include <cerrno>
#include <cstdlib>
#include <set>
#include <string_view>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "signing/constraints.hpp"
#include "base/error.hpp"
#include "base/files.hpp"
#include "base/procfs.hpp"

namespace trustme::signing::policy {
namespace {

constexpr const char* kSystemPath = "/etc/trustme/policy.json";
constexpr const char* kSystemCacheDir = "/var/lib/trustme/verify-cache";

// Whose defaults apply: the system's for root of the host; the user's own for anyone else, an unprivileged
// user or root of a user namespace (rootless podman runs us so). A user can run any runtime they like, so
// the system policy cannot bind them, and the system's cache is not theirs to write.
bool user_scope() { return ::geteuid() != 0 || !procfs::initial_user_ns(); }

// $VAR if it is absolute (the XDG Base Directory Specification ignores relative values), else
// $HOME/fallback; empty when neither is usable.
std::string xdg_dir(const char* var, const char* fallback) {
    if (const char* v = std::getenv(var); v && v[0] == '/') return v;
    if (const char* home = std::getenv("HOME"); home && home[0] == '/') return std::string(home) + "/" + fallback;
    return "";
}

std::string default_path() {
    if (!user_scope()) return kSystemPath;
    std::string base = xdg_dir("XDG_CONFIG_HOME", ".config");
    return base.empty() ? "" : base + "/trustme/policy.json";
}

std::string default_cache_dir() {
    if (!user_scope()) return kSystemCacheDir;
    std::string base = xdg_dir("XDG_CACHE_HOME", ".cache");
    return base.empty() ? kSystemCacheDir : base + "/trustme/verify-cache";
}

[[noreturn]] void bad(const std::string& origin, const std::string& field, const std::string& why) {
    fail(origin + ": " + field + ": " + why);
}

std::string type_name(const nlohmann::json& j) { return j.type_name(); }

// Relative file names are anchored at the policy's directory, so a policy and its PKI can move together.
std::string anchor(const std::string& origin, const std::string& p) {
    if (p.empty() || p[0] == '/') return p;
    auto slash = origin.rfind('/');
    if (slash == std::string::npos) return p;
    return origin.substr(0, slash + 1) + p;
}

std::vector<std::string> string_list(const std::string& origin, const nlohmann::json& j, const std::string& field) {
    if (!j.is_array()) bad(origin, field, "must be an array of strings, not " + type_name(j));
    std::vector<std::string> out;
    for (size_t i = 0; i < j.size(); ++i) {
        if (!j[i].is_string() || j[i].get_ref<const std::string&>().empty())
            bad(origin, field + "[" + std::to_string(i) + "]", "must be a non-empty string");
        out.push_back(j[i].get<std::string>());
    }
    return out;
}

// Parse rejecting duplicate keys at any depth (nlohmann keeps the last one silently). The keys of the
// open objects are kept so that an error found inside a value (a number beyond double's range: nlohmann
// throws out_of_range.406, not a parse_error) names its field.
nlohmann::json parse_strict(const std::string& text, const std::string& origin) {
    std::vector<std::set<std::string>> seen;
    std::vector<std::string> keys;  // the current key of each open object
    std::string dup;
    auto cb = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
        using E = nlohmann::json::parse_event_t;
        if (ev == E::object_start) {
            seen.emplace_back();
            keys.emplace_back();
        } else if (ev == E::object_end) {
            if (!seen.empty()) seen.pop_back();
            if (!keys.empty()) keys.pop_back();
        } else if (ev == E::key && !seen.empty()) {
            const auto& k = parsed.get_ref<const std::string&>();
            if (!seen.back().insert(k).second && dup.empty()) dup = k;
            keys.back() = k;
        }
        (void)depth;
        return true;
    };
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text, cb, /*allow_exceptions=*/true, /*ignore_comments=*/false);
    } catch (const nlohmann::json::exception& e) {
        // e.what() is "[json.exception.parse_error.101] parse error at line L, column C: ..."; keep the tail.
        std::string w = e.what();
        auto p = w.find("] ");
        std::string why = p == std::string::npos ? w : w.substr(p + 2);
        std::string field;
        for (const auto& k : keys)
            if (!k.empty()) field += (field.empty() ? "" : ".") + k;
        if (e.id == 406 && !field.empty()) bad(origin, field, why);  // out_of_range.406: number overflow
        fail(origin + ": invalid JSON: " + why);
    }
    if (!dup.empty()) bad(origin, dup, "duplicate key");
    return j;
}

}  // namespace

Policy parse(const std::string& text, const std::string& origin) {
    nlohmann::json j = parse_strict(text, origin);
    if (!j.is_object()) fail(origin + ": policy must be a JSON object, not " + type_name(j));

    Policy p;
    p.path = origin;
    p.verify_cache_dir = default_cache_dir();
    p.signature = SignatureMode::Required;  // a policy file exists: signatures are required unless it says otherwise

    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string& k = it.key();
        const nlohmann::json& v = it.value();
        if (k == "signature") {
            if (!v.is_string()) bad(origin, k, "must be \"required\", \"warn\" or \"off\"");
            const auto& s = v.get_ref<const std::string&>();
            if (s == "required") p.signature = SignatureMode::Required;
            else if (s == "warn") p.signature = SignatureMode::Warn;
            else if (s == "off") p.signature = SignatureMode::Off;
            else bad(origin, k, "\"" + s + "\" is not one of \"required\", \"warn\", \"off\"");
        } else if (k == "trust_anchors") {
            for (auto& s : string_list(origin, v, k)) p.trust_anchors.push_back(anchor(origin, s));
        } else if (k == "crls") {
            for (auto& s : string_list(origin, v, k)) p.crls.push_back(anchor(origin, s));
        } else if (k == "tcti") {
            if (!v.is_string() || v.get_ref<const std::string&>().empty())
                bad(origin, k, "must be a non-empty string such as \"device:/dev/tpmrm0\"");
            p.tcti = v.get<std::string>();
        } else if (k == "pcr") {
            // TPM 2.0 PC Client platforms have PCRs 0..23 (TCG PC Client Platform TPM Profile, §4.6).
            if (!v.is_number_unsigned() || v.get<uint64_t>() > 23) bad(origin, k, "must be an integer 0..23");
            p.pcr = v.get<uint32_t>();
        } else if (k == "attestation") {
            if (!v.is_boolean()) bad(origin, k, "must be true or false");
            p.attestation = v.get<bool>();
        } else if (k == "event_log") {
            if (!v.is_string() || v.get_ref<const std::string&>().empty()) bad(origin, k, "must be a non-empty path");
            p.event_log = anchor(origin, v.get<std::string>());
        } else if (k == "verify_cache") {
            // true and false: the policies written before the modes had names.
            constexpr const char* kWant = "must be \"stamps\", \"verity-only\", \"off\", true or false";
            if (v.is_boolean()) {
                p.verify_cache = v.get<bool>() ? VerifyCache::Stamps : VerifyCache::Off;
            } else if (!v.is_string()) {
                bad(origin, k, kWant);
            } else if (const std::string s = v.get<std::string>(); s == "stamps") {
                p.verify_cache = VerifyCache::Stamps;
            } else if (s == "verity-only") {
                p.verify_cache = VerifyCache::VerityOnly;
            } else if (s == "off") {
                p.verify_cache = VerifyCache::Off;
            } else {
                bad(origin, k, "\"" + s + "\" is not one of \"stamps\", \"verity-only\", \"off\"");
            }
        } else if (k == "verify_cache_dir") {
            if (!v.is_string() || v.get_ref<const std::string&>().empty() || v.get_ref<const std::string&>()[0] != '/')
                bad(origin, k, "must be an absolute path");
            p.verify_cache_dir = v.get<std::string>();
        } else if (k == "constraints") {
            if (!v.is_object()) bad(origin, k, "must be an object");
            validate_constraints(v, origin);
            p.constraints = v;
        } else if (k == "comment" || (!k.empty() && k[0] == '_')) {
            // free text for humans; never interpreted
        } else {
            bad(origin, k, "unknown field");
        }
    }
    if (p.signature == SignatureMode::Required && p.trust_anchors.empty())
        bad(origin, "trust_anchors", "required when signature is \"required\" (nothing could ever verify)");
    return p;
}

Policy load(const std::string& explicit_path) {
    std::string path = explicit_path;
    bool named = !path.empty();
    if (!named) {
        const char* env = std::getenv("TRUSTME_POLICY");
        if (env && *env) {
            path = env;
            named = true;
        }
    }
    if (!named) {
        path = default_path();
        if (path.empty()) return Policy{};  // a user without a home: no policy of theirs
        struct stat st;
        if (::stat(path.c_str(), &st) < 0) {
            if (errno == ENOENT) return Policy{};  // no policy: signature Off
            fail_errno(path);
        }
    }
    std::string text;
    try {
        text = read_file(path);
    } catch (const Error& e) {
        throw Error(std::string("policy ") + e.what(), e.code());
    }
    return parse(text, path);
}

}  // namespace trustme::signing::policy
