#include "runtime/volume/token.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/error.hpp"

namespace trustme::volume {

std::string token_json(const tpm::SealedObject& sealed, size_t key_bytes, const std::string& fstype) {
    nlohmann::json j;
    j["type"] = kTokenType;
    j["keyslots"] = nlohmann::json::array();
    j["trustme_version"] = 1;
    j["key_bits"] = key_bytes * 8;
    if (!fstype.empty()) j["fstype"] = fstype;
    j["sealed"] = nlohmann::json::parse(sealed.to_json());
    return j.dump();
}

TpmToken parse_token(const std::string& path, int id, const std::string& json) {
    std::string where = path + ": token " + std::to_string(id);
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(json);
    } catch (const nlohmann::json::exception&) {
        fail(where + ": not JSON");
    }
    TpmToken t;
    t.id = id;
    if (!j.contains("sealed") || !j["sealed"].is_object()) fail(where + ": sealed: missing or not an object");
    try {
        t.sealed = tpm::SealedObject::from_json(j["sealed"].dump());
    } catch (const Error& e) {
        throw Error(where + ": sealed: " + e.what(), e.code());
    }
    if (j.contains("key_bits")) {
        if (!j["key_bits"].is_number_unsigned()) fail(where + ": key_bits: not a number");
        t.key_bits = j["key_bits"].get<int>();
    }
    if (j.contains("fstype")) {
        if (!j["fstype"].is_string()) fail(where + ": fstype: not a string");
        t.fstype = j["fstype"].get<std::string>();
    }
    return t;
}

std::vector<TpmToken> tpm_tokens(CryptDevice& cd) {
    std::vector<TpmToken> out;
    for (auto& tok : tokens(cd))
        if (tok.type == kTokenType) out.push_back(parse_token(cd.path(), tok.id, tok.json));
    return out;
}

SecretBytes unseal_volume_key(CryptDevice& cd, const std::string& tcti, std::string* fstype) {
    auto toks = tpm_tokens(cd);
    if (toks.empty())
        fail(cd.path() + ": no " + std::string(kTokenType) + " token (add one with `trustme-runtime volume enroll`)");
    std::optional<tpm::Tpm> t;
    try {
        t.emplace(tcti);
    } catch (const Error& e) {
        throw Error(cd.path() + ": " + e.what(), e.code());
    }
    std::string first_error;
    for (auto& tok : toks) {
        try {
            SecretBytes key = t->unseal(tok.sealed);
            if (!key_matches(cd, key)) {
                if (first_error.empty())
                    first_error = cd.path() + ": the key sealed in token " + std::to_string(tok.id) +
                                  " does not open this volume";
                continue;
            }
            if (fstype) *fstype = tok.fstype;
            return key;
        } catch (const tpm::TpmError& e) {
            // No TPM at all: the other tokens cannot do better.
            if (e.cause() == tpm::Cause::NoTpm) fail(cd.path() + ": " + e.what());
            if (first_error.empty()) first_error = cd.path() + ": token " + std::to_string(tok.id) + ": " + e.what();
        }
    }
    fail(first_error);
}

std::vector<uint32_t> parse_pcrs(const std::string& text, const std::string& what) {
    std::vector<uint32_t> out;
    if (text.empty()) return out;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t comma = text.find(',', pos);
        std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        if (item.empty() || item.size() > 2 || !std::all_of(item.begin(), item.end(), ::isdigit))
            fail(what + ": not a PCR index: \"" + item + "\" (expected e.g. 7,11)");
        unsigned v = static_cast<unsigned>(std::stoul(item));
        if (v > 23) fail(what + ": PCR " + item + " out of range 0..23");
        if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace trustme::volume
