#include "attest/verify.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <tss2/tss2_mu.h>

#include <memory>

#include "attest/tpm.hpp"
#include "runtime/base/error.hpp"

namespace trustme::attest {

using tpm::from_hex;
using tpm::to_hex;

nlohmann::json QuoteDoc::to_json() const {
    nlohmann::json p = nlohmann::json::object();
    for (const auto& [k, v] : pcrs) p[std::to_string(k)] = to_hex(v);
    nlohmann::json l = nlohmann::json::array();
    for (const auto& e : log) l.push_back(e.to_json());
    return {{"version", 1},
            {"type", "trustme-quote"},
            {"pcr_bank", "sha256"},
            {"attest", to_hex(attest)},
            {"signature", {{"alg", "ecdsa-sha256"}, {"der", to_hex(signature_der)}}},
            {"pcrs", p},
            {"event_log", l}};
}

QuoteDoc QuoteDoc::from_json(const nlohmann::json& j, const std::string& name) {
    auto bad = [&](const std::string& f, const std::string& why) { fail(name + ": " + f + ": " + why); };
    if (!j.is_object()) fail(name + ": not a JSON object");
    if (j.value("type", "") != "trustme-quote") bad("type", "not a trustme-quote");
    if (j.value("version", 0) != 1) bad("version", "unsupported");
    QuoteDoc q;
    if (!j.contains("attest") || !j["attest"].is_string()) bad("attest", "missing or not a string");
    q.attest = from_hex(j["attest"].get<std::string>(), name + ": attest");
    if (!j.contains("signature") || !j["signature"].is_object()) bad("signature", "missing or not an object");
    if (j["signature"].value("alg", "") != "ecdsa-sha256") bad("signature.alg", "only ecdsa-sha256 is supported");
    if (!j["signature"].contains("der") || !j["signature"]["der"].is_string()) bad("signature.der", "missing");
    q.signature_der = from_hex(j["signature"]["der"].get<std::string>(), name + ": signature.der");
    if (!j.contains("pcrs") || !j["pcrs"].is_object() || j["pcrs"].empty()) bad("pcrs", "missing or empty");
    for (const auto& [k, v] : j["pcrs"].items()) {
        unsigned long n = 0;
        try {
            size_t used = 0;
            n = std::stoul(k, &used);
            if (used != k.size() || n > 23) throw std::out_of_range(k);
        } catch (const std::exception&) {
            bad("pcrs." + k, "not a PCR number 0..23");
        }
        if (!v.is_string()) bad("pcrs." + k, "not a string");
        q.pcrs[static_cast<uint32_t>(n)] = from_hex(v.get<std::string>(), name + ": pcrs." + k);
        if (q.pcrs[static_cast<uint32_t>(n)].size() != 32) bad("pcrs." + k, "not a sha256 value");
    }
    if (!j.contains("event_log") || !j["event_log"].is_array()) bad("event_log", "missing or not an array");
    for (size_t i = 0; i < j["event_log"].size(); ++i)
        q.log.push_back(Event::from_json(j["event_log"][i], name + ": event_log[" + std::to_string(i) + "]"));
    return q;
}

AllowList AllowList::parse(const std::string& text, const std::string& name) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        fail(name + ": not JSON: " + e.what());
    }
    if (!j.is_object()) fail(name + ": not a JSON object");
    AllowList a;
    for (const auto& [k, v] : j.items()) {
        if (k != "manifests" && k != "signers") fail(name + ": " + k + ": unknown field (manifests, signers)");
        if (!v.is_array()) fail(name + ": " + k + ": must be an array of strings");
        for (size_t i = 0; i < v.size(); ++i) {
            if (!v[i].is_string() || v[i].get<std::string>().empty())
                fail(name + ": " + k + "[" + std::to_string(i) + "]: must be a non-empty string");
            (k == "manifests" ? a.manifests : a.signers).insert(v[i].get<std::string>());
        }
    }
    return a;
}

bool VerifyResult::ok() const {
    if (!refused.empty()) return false;
    for (const auto& e : events)
        if (e.state == EventVerdict::State::Denied) return false;
    return true;
}

namespace {

bool signature_ok(const std::string& ak_pem, const std::vector<uint8_t>& msg, const std::vector<uint8_t>& sig) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(ak_pem.data(), static_cast<int>(ak_pem.size())),
                                                  BIO_free);
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr),
                                                            EVP_PKEY_free);
    if (!key) fail("trusted AK: not a PEM public key");
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1)
        fail("trusted AK: unusable key for ECDSA-SHA256");
    return EVP_DigestVerify(ctx.get(), sig.data(), sig.size(), msg.data(), msg.size()) == 1;
}

}  // namespace

VerifyResult verify_quote(const std::string& ak_pem, const std::vector<uint8_t>& nonce, const AllowList& allow,
                          const QuoteDoc& q) {
    VerifyResult r;
    if (nonce.size() < kMinNonce) {
        r.refused = "nonce: at least " + std::to_string(kMinNonce) + " bytes are required";
        return r;
    }
    if (!signature_ok(ak_pem, q.attest, q.signature_der)) {
        r.refused = "quote signature does not verify with the trusted AK (signed by another key, or altered)";
        return r;
    }
    TPMS_ATTEST a{};
    size_t off = 0;
    if (Tss2_MU_TPMS_ATTEST_Unmarshal(q.attest.data(), q.attest.size(), &off, &a) != TSS2_RC_SUCCESS ||
        off != q.attest.size()) {
        r.refused = "attest: not a TPMS_ATTEST structure";
        return r;
    }
    // TPM 2.0 Part 2, TPMS_ATTEST: magic TPM_GENERATED_VALUE marks data the TPM itself produced, so a
    // restricted key cannot have signed an external digest that merely looks like a quote.
    if (a.magic != TPM2_GENERATED_VALUE || a.type != TPM2_ST_ATTEST_QUOTE) {
        r.refused = "attest: not a TPM-generated quote";
        return r;
    }
    if (std::vector<uint8_t>(a.extraData.buffer, a.extraData.buffer + a.extraData.size) != nonce) {
        r.refused = "nonce does not match (stale or replayed quote)";
        return r;
    }
    const auto& sel = a.attested.quote.pcrSelect;
    std::vector<uint32_t> selected;
    for (uint32_t i = 0; i < sel.count; ++i) {
        if (sel.pcrSelections[i].hash != TPM2_ALG_SHA256) {
            r.refused = "attest: PCR selection includes a bank other than sha256";
            return r;
        }
        for (uint32_t b = 0; b < sel.pcrSelections[i].sizeofSelect * 8u; ++b)
            if (sel.pcrSelections[i].pcrSelect[b / 8] & (1u << (b % 8))) selected.push_back(b);
    }
    std::vector<uint32_t> listed;
    std::vector<uint8_t> cat;
    for (const auto& [p, v] : q.pcrs) {
        listed.push_back(p);
        cat.insert(cat.end(), v.begin(), v.end());
    }
    if (selected != listed) {
        r.refused = "pcrs: the listed PCRs differ from those the quote covers";
        return r;
    }
    // TPM 2.0 Part 3, TPM2_Quote: pcrDigest is the hash (signing scheme's hash) of the selected PCR
    // values concatenated in selection order (ascending PCR index within the bank).
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256(cat.data(), cat.size(), d);
    if (a.attested.quote.pcrDigest.size != sizeof d || memcmp(a.attested.quote.pcrDigest.buffer, d, sizeof d) != 0) {
        r.refused = "pcrs: the listed values do not match the signed PCR digest";
        return r;
    }

    // The log itself.
    for (size_t i = 0; i < q.log.size(); ++i) {
        const Event& e = q.log[i];
        if (i > 0 && e.recnum != q.log[i - 1].recnum + 1) {
            r.refused = "event log: record " + std::to_string(i) + " has recnum " + std::to_string(e.recnum) +
                        ", expected " + std::to_string(q.log[i - 1].recnum + 1) + " (records removed or reordered)";
            return r;
        }
        if (e.content_type != kContentType) continue;  // not ours: still replayed, not judged
        if (e.digest != content_digest(e.content)) {
            r.refused = "event log: record " + std::to_string(e.recnum) + ": digest does not match its content (edited)";
            return r;
        }
    }
    int64_t epoch = a.clockInfo.resetCount;
    std::set<uint64_t> pending;
    for (const auto& [p, quoted] : q.pcrs) {
        if (replay(q.log, p, epoch) == quoted) continue;
        // The write-ahead rule: the last record of this PCR and epoch may be appended but not yet extended.
        bool explained = false;
        for (size_t i = q.log.size(); i-- > 0;) {
            if (q.log[i].pcr != p || q.log[i].reset_count() != epoch) continue;
            std::vector<Event> prefix(q.log.begin(), q.log.begin() + static_cast<std::ptrdiff_t>(i));
            if (replay(prefix, p, epoch) == quoted) {
                pending.insert(q.log[i].recnum);
                explained = true;
            }
            break;
        }
        if (!explained) {
            r.refused = "PCR " + std::to_string(p) + ": replaying the event log gives " + to_hex(replay(q.log, p, epoch)) +
                        ", the quote says " + to_hex(quoted) +
                        " (event removed, reordered or edited, or the PCR extended out of band)";
            return r;
        }
    }

    for (const auto& e : q.log) {
        EventVerdict v;
        v.recnum = e.recnum;
        v.container_id = e.content.value("container_id", "");
        v.manifest = e.content.value("manifest_sha256", "");
        v.signer = e.content.value("signer", "");
        if (!q.pcrs.count(e.pcr)) {
            v.reason = "PCR " + std::to_string(e.pcr) + " not quoted";
        } else if (e.reset_count() != epoch) {
            v.reason = "earlier TPM reset epoch (before the last reboot)";
        } else if (e.content_type != kContentType) {
            v.reason = "content type " + e.content_type + " not judged";
        } else {
            bool by_manifest = allow.manifests.count(v.manifest) > 0;
            bool by_signer = !v.signer.empty() && allow.signers.count(v.signer) > 0;
            if (by_manifest || by_signer) {
                v.state = EventVerdict::State::Allowed;
                v.reason = by_manifest ? "manifest on the allow-list" : "signer on the allow-list";
            } else {
                v.state = EventVerdict::State::Denied;
                v.reason = "neither manifest nor signer on the allow-list";
            }
            if (pending.count(e.recnum)) {
                // Not covered by the quote yet: reported, and still judged, since the container may be
                // about to start.
                if (v.state == EventVerdict::State::Allowed) v.state = EventVerdict::State::Pending;
                v.reason += "; pending: appended but not yet extended";
            }
        }
        r.events.push_back(std::move(v));
    }
    return r;
}

std::string render(const VerifyResult& r) {
    std::string out;
    for (const auto& e : r.events) {
        const char* s = e.state == EventVerdict::State::Allowed  ? "allowed"
                        : e.state == EventVerdict::State::Denied  ? "DENIED"
                        : e.state == EventVerdict::State::Pending ? "pending"
                                                                   : "not-covered";
        out += "event " + std::to_string(e.recnum) + " " + s + ": container=" + e.container_id +
               " manifest=" + e.manifest + " signer=" + (e.signer.empty() ? "-" : e.signer) + " (" + e.reason + ")\n";
    }
    if (!r.refused.empty())
        out += "REFUSED: " + r.refused + "\n";
    else if (!r.ok())
        out += "REFUSED: a measured bundle is not on the allow-list\n";
    else
        out += "VERIFIED\n";
    return out;
}

}  // namespace trustme::attest
