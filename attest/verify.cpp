#include "attest/verify.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <tss2/tss2_mu.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "tpm/tpm.hpp"
#include "base/error.hpp"
#include "base/strings.hpp"
#include "base/owned.hpp"

namespace trustme::attest {

using tpm::from_hex;
using tpm::to_hex;

nlohmann::json QuoteHeader::to_json() const {
    nlohmann::json p = nlohmann::json::object();
    for (const auto& [k, v] : pcrs) p[std::to_string(k)] = to_hex(v);
    return {{"version", 2},
            {"type", "trustme-quote"},
            {"pcr_bank", "sha256"},
            {"attest", to_hex(attest)},
            {"signature", {{"alg", "ecdsa-sha256"}, {"der", to_hex(signature_der)}}},
            {"pcrs", p},
            {"boot_id", boot_id},
            {"from", from}};
}

QuoteHeader QuoteHeader::from_json(const nlohmann::json& j, const std::string& name) {
    auto bad = [&](const std::string& f, const std::string& why) { fail(name + ": " + f + ": " + why); };
    if (!j.is_object()) fail(name + ": not a JSON object");
    if (j.value("type", "") != "trustme-quote") bad("type", "not a trustme-quote");
    if (j.value("version", 0) != 2) bad("version", "unsupported (2 expected)");
    if (j.value("pcr_bank", "") != "sha256") bad("pcr_bank", "only sha256 is supported");
    QuoteHeader q;
    if (!j.contains("attest") || !j["attest"].is_string()) bad("attest", "missing or not a string");
    q.attest = from_hex(j["attest"].get<std::string>(), name + ": attest");
    if (!j.contains("signature") || !j["signature"].is_object()) bad("signature", "missing or not an object");
    if (j["signature"].value("alg", "") != "ecdsa-sha256") bad("signature.alg", "only ecdsa-sha256 is supported");
    if (!j["signature"].contains("der") || !j["signature"]["der"].is_string()) bad("signature.der", "missing");
    q.signature_der = from_hex(j["signature"]["der"].get<std::string>(), name + ": signature.der");
    if (!j.contains("pcrs") || !j["pcrs"].is_object() || j["pcrs"].empty()) bad("pcrs", "missing or empty");
    for (const auto& [k, v] : j["pcrs"].items()) {
        auto pcr = parse_decimal<uint32_t>(k);
        if (!pcr || *pcr > 23) bad("pcrs." + k, "not a PCR number 0..23");
        const uint32_t n = *pcr;
        if (!v.is_string()) bad("pcrs." + k, "not a string");
        q.pcrs[static_cast<uint32_t>(n)] = from_hex(v.get<std::string>(), name + ": pcrs." + k);
        if (q.pcrs[static_cast<uint32_t>(n)].size() != 32) bad("pcrs." + k, "not a sha256 value");
    }
    if (!j.contains("boot_id") || !j["boot_id"].is_string()) bad("boot_id", "missing or not a string");
    q.boot_id = j["boot_id"].get<std::string>();
    if (!j.contains("from") || !j["from"].is_number_unsigned()) bad("from", "missing or not a record number");
    q.from = j["from"].get<uint64_t>();
    return q;
}

nlohmann::json QuoteDoc::to_json() const {
    nlohmann::json j = QuoteHeader::to_json();
    nlohmann::json l = nlohmann::json::array();
    for (const auto& e : log) l.push_back(e.to_json());
    j["event_log"] = std::move(l);
    return j;
}

QuoteDoc QuoteDoc::from_json(const nlohmann::json& j, const std::string& name) {
    QuoteDoc q;
    static_cast<QuoteHeader&>(q) = QuoteHeader::from_json(j, name);
    if (!j.contains("event_log") || !j["event_log"].is_array()) fail(name + ": event_log: missing or not an array");
    for (size_t i = 0; i < j["event_log"].size(); ++i)
        q.log.push_back(Event::from_json(j["event_log"][i], name + ": event_log[" + std::to_string(i) + "]"));
    return q;
}

nlohmann::json HostState::to_json() const {
    nlohmann::json p = nlohmann::json::object();
    for (const auto& [k, v] : pcrs) p[std::to_string(k)] = to_hex(v);
    nlohmann::json d = nlohmann::json::array();
    for (const auto& v : denied)
        d.push_back(
            {{"recnum", v.recnum}, {"container_id", v.container_id}, {"manifest", v.manifest}, {"signer", v.signer}});
    return {{"version", 1},
            {"type", "trustme-verifier-state"},
            {"ak_sha256", ak_sha256},
            {"allow_sha256", allow_sha256},
            {"boot_id", boot_id},
            {"tpm_reset_count", reset_count},
            {"next", next},
            {"pcrs", p},
            {"denied", d}};
}

HostState HostState::from_json(const nlohmann::json& j, const std::string& name) {
    try {
        if (!j.is_object() || j.value("type", "") != "trustme-verifier-state" || j.value("version", 0) != 1)
            fail(name + ": not a trustme-verifier-state (version 1)");
        HostState h;
        h.ak_sha256 = j.at("ak_sha256").get<std::string>();
        h.allow_sha256 = j.at("allow_sha256").get<std::string>();
        h.boot_id = j.at("boot_id").get<std::string>();
        h.reset_count = j.at("tpm_reset_count").get<int64_t>();
        h.next = j.at("next").get<uint64_t>();
        for (const auto& [k, v] : j.at("pcrs").items()) {
            auto val = from_hex(v.get<std::string>(), name + ": pcrs." + k);
            if (val.size() != 32) fail(name + ": pcrs." + k + ": not a sha256 value");
            auto pcr = parse_decimal<uint32_t>(k);
            if (!pcr || *pcr > 23) fail(name + ": pcrs." + k + ": not a PCR number 0..23");
            h.pcrs[*pcr] = val;
        }
        for (const auto& d : j.at("denied")) {
            EventVerdict v;
            v.recnum = d.at("recnum").get<uint64_t>();
            v.container_id = d.at("container_id").get<std::string>();
            v.manifest = d.at("manifest").get<std::string>();
            v.signer = d.at("signer").get<std::string>();
            v.state = EventVerdict::State::Denied;
            h.denied.push_back(std::move(v));
        }
        return h;
    } catch (const nlohmann::json::exception& e) {
        fail(name + ": " + e.what());
    } catch (const std::logic_error& e) {
        fail(name + ": " + e.what());
    }
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
    if (!refused.empty() || !earlier_denied.empty()) return false;
    for (const auto& e : events)
        if (e.state == EventVerdict::State::Denied) return false;
    return true;
}

namespace {

bool signature_ok(const std::string& ak_pem, const std::vector<uint8_t>& msg, const std::vector<uint8_t>& sig) {
    Owned<BIO, BIO_free> bio(BIO_new_mem_buf(ak_pem.data(), static_cast<int>(ak_pem.size())));
    Owned<EVP_PKEY, EVP_PKEY_free> key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    if (!key) fail("trusted AK: not a PEM public key");
    Owned<EVP_MD_CTX, EVP_MD_CTX_free> ctx(EVP_MD_CTX_new());
    if (EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1)
        fail("trusted AK: unusable key for ECDSA-SHA256");
    return EVP_DigestVerify(ctx.get(), sig.data(), sig.size(), msg.data(), msg.size()) == 1;
}

std::vector<uint8_t> extend(const std::vector<uint8_t>& v, const std::vector<uint8_t>& d) {
    std::vector<uint8_t> cat(v);
    cat.insert(cat.end(), d.begin(), d.end());
    std::vector<uint8_t> out(SHA256_DIGEST_LENGTH);
    SHA256(cat.data(), cat.size(), out.data());
    return out;
}

std::string pcr_list(const std::vector<uint32_t>& pcrs) {
    std::string s;
    for (uint32_t p : pcrs) s += (s.empty() ? "" : ",") + std::to_string(p);
    return s.empty() ? "none" : s;
}

}  // namespace

int64_t quote_epoch(const std::vector<uint8_t>& attest) {
    TPMS_ATTEST a{};
    size_t off = 0;
    if (Tss2_MU_TPMS_ATTEST_Unmarshal(attest.data(), attest.size(), &off, &a) != TSS2_RC_SUCCESS) return -1;
    return a.clockInfo.resetCount;
}

Verification::Verification(std::string ak_pem, std::vector<uint8_t> nonce, const AllowList& allow, Expectation expect,
                           const HostState* start)
    : ak_pem_(std::move(ak_pem)), nonce_(std::move(nonce)), allow_(allow), expect_(std::move(expect)), start_(start) {}

bool Verification::refuse(std::string why) {
    if (r_.refused.empty()) r_.refused = std::move(why);
    return false;
}

bool Verification::begin(const QuoteHeader& q) {
    q_ = q;
    if (nonce_.size() < kMinNonce)
        return refuse("nonce: at least " + std::to_string(kMinNonce) + " bytes are required");
    if (!signature_ok(ak_pem_, q.attest, q.signature_der))
        return refuse("quote signature does not verify with the trusted AK (signed by another key, or altered)");
    TPMS_ATTEST a{};
    size_t off = 0;
    if (Tss2_MU_TPMS_ATTEST_Unmarshal(q.attest.data(), q.attest.size(), &off, &a) != TSS2_RC_SUCCESS ||
        off != q.attest.size())
        return refuse("attest: not a TPMS_ATTEST structure");
    // TPM 2.0 Part 2, TPMS_ATTEST: magic TPM_GENERATED_VALUE marks data the TPM itself produced, so a
    // restricted key cannot have signed an external digest that merely looks like a quote.
    if (a.magic != TPM2_GENERATED_VALUE || a.type != TPM2_ST_ATTEST_QUOTE)
        return refuse("attest: not a TPM-generated quote");
    if (std::vector<uint8_t>(a.extraData.buffer, a.extraData.buffer + a.extraData.size) != nonce_)
        return refuse("nonce does not match (stale or replayed quote)");
    const auto& sel = a.attested.quote.pcrSelect;
    std::vector<uint32_t> selected;
    for (uint32_t i = 0; i < sel.count; ++i) {
        if (sel.pcrSelections[i].hash != TPM2_ALG_SHA256)
            return refuse("attest: PCR selection includes a bank other than sha256");
        for (uint32_t b = 0; b < sel.pcrSelections[i].sizeofSelect * 8u; ++b)
            if (sel.pcrSelections[i].pcrSelect[b / 8] & (1u << (b % 8))) selected.push_back(b);
    }
    // The verifier decides what must be quoted: a quote over other PCRs proves nothing about ours.
    std::vector<uint32_t> missing;
    for (uint32_t p : expect_.pcrs)
        if (std::find(selected.begin(), selected.end(), p) == selected.end()) missing.push_back(p);
    if (!missing.empty())
        return refuse("the quote covers PCR " + pcr_list(selected) + " (sha256), not the required PCR " +
                      pcr_list(missing));
    std::vector<uint32_t> listed;
    std::vector<uint8_t> cat;
    for (const auto& [p, v] : q.pcrs) {
        listed.push_back(p);
        cat.insert(cat.end(), v.begin(), v.end());
    }
    if (selected != listed) return refuse("pcrs: the listed PCRs differ from those the quote covers");
    // TPM 2.0 Part 3, TPM2_Quote: pcrDigest is the hash (signing scheme's hash) of the selected PCR
    // values concatenated in selection order (ascending PCR index within the bank).
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256(cat.data(), cat.size(), d);
    if (a.attested.quote.pcrDigest.size != sizeof d || memcmp(a.attested.quote.pcrDigest.buffer, d, sizeof d) != 0)
        return refuse("pcrs: the listed values do not match the signed PCR digest");
    epoch_ = a.clockInfo.resetCount;
    for (uint32_t p : listed) run_[p].value.assign(32, 0);
    if (start_) {
        if (start_->boot_id != q.boot_id || start_->reset_count != epoch_ || start_->next != q.from)
            return refuse("verifier state: it is for boot " + start_->boot_id + ", TPM reset count " +
                          std::to_string(start_->reset_count) + ", record " + std::to_string(start_->next) +
                          "; the quote is for boot " + q.boot_id + ", reset count " + std::to_string(epoch_) +
                          ", record " + std::to_string(q.from));
        for (auto& [p, run] : run_) {
            auto it = start_->pcrs.find(p);
            if (it != start_->pcrs.end()) run.value = it->second;
        }
        r_.earlier_denied = start_->denied;
    } else if (q.from != 0) {
        return refuse("from: record " + std::to_string(q.from) + " without a verifier state for this host");
    }
    return true;
}

bool Verification::add(const Event& e) {
    if (!r_.refused.empty()) return false;
    uint64_t expected = last_recnum_ ? *last_recnum_ + 1 : q_.from;
    if (e.recnum != expected)
        return refuse("event log: record " + std::to_string(r_.events.size()) + " has recnum " +
                      std::to_string(e.recnum) + ", expected " + std::to_string(expected) +
                      " (records removed or reordered)");
    last_recnum_ = e.recnum;
    if (e.content_type == kContentType && e.digest != content_digest(e.content))
        return refuse("event log: record " + std::to_string(e.recnum) + ": digest does not match its content (edited)");
    EventVerdict v;
    v.recnum = e.recnum;
    v.container_id = e.content.value("container_id", "");
    v.manifest = e.content.value("manifest_sha256", "");
    v.signer = e.content.value("signer", "");
    if (e.reset_count() != epoch_) {
        ++other_epoch_;
        other_epoch_seen_ = e.reset_count();
        v.reason = "earlier TPM reset epoch (before the last reboot)";
        r_.events.push_back(std::move(v));
        return true;
    }
    ++this_epoch_;
    auto it = run_.find(e.pcr);
    // A record of this boot on a PCR the quote does not cover could hide anything.
    if (it == run_.end())
        return refuse("event log: record " + std::to_string(e.recnum) + " of this boot is on PCR " +
                      std::to_string(e.pcr) + ", which the quote does not cover");
    auto b = e.content.find("boot_id");
    if (b != e.content.end() && (!b->is_string() || b->get<std::string>() != q_.boot_id))
        return refuse("event log: record " + std::to_string(e.recnum) + " is from another boot than " + q_.boot_id);
    it->second.before_last = it->second.value;
    it->second.value = extend(it->second.value, e.digest);
    it->second.last = r_.events.size();
    if (e.content_type != kContentType) {
        v.reason = "content type " + e.content_type + " not judged";
    } else {
        bool by_manifest = allow_.manifests.count(v.manifest) > 0;
        bool by_signer = !v.signer.empty() && allow_.signers.count(v.signer) > 0;
        if (by_manifest || by_signer) {
            v.state = EventVerdict::State::Allowed;
            v.reason = by_manifest ? "manifest on the allow-list" : "signer on the allow-list";
        } else {
            v.state = EventVerdict::State::Denied;
            v.reason = "neither manifest nor signer on the allow-list";
        }
    }
    r_.events.push_back(std::move(v));
    return true;
}

VerifyResult Verification::finish(HostState* next) {
    std::optional<size_t> pending;
    if (r_.refused.empty()) {
        for (auto& [p, run] : run_) {
            const auto& quoted = q_.pcrs.at(p);
            if (run.value == quoted) continue;
            // The write-ahead rule: the last record of this PCR and epoch may be appended but not yet extended.
            if (run.last && run.before_last == quoted && !pending) {
                pending = run.last;
                run.value = run.before_last;
                auto& v = r_.events[*run.last];
                // Not covered by the quote yet: reported, and still judged, since the container may be
                // about to start.
                if (v.state == EventVerdict::State::Allowed) v.state = EventVerdict::State::Pending;
                v.reason += "; pending: appended but not yet extended";
                continue;
            }
            if (this_epoch_ == 0 && other_epoch_ > 0) {
                refuse("event log: its records are from another boot (TPM reset count " +
                       std::to_string(other_epoch_seen_) + "), the quote from reset count " + std::to_string(epoch_));
                break;
            }
            refuse("PCR " + std::to_string(p) + ": replaying the event log gives " + to_hex(run.value) +
                   ", the quote says " + to_hex(quoted) +
                   " (event removed, reordered or edited, log truncated or missing, or the PCR extended out of band)");
            break;
        }
    }
    if (next && r_.refused.empty()) {
        HostState h;
        if (start_) h = *start_;
        h.boot_id = q_.boot_id;
        h.reset_count = epoch_;
        // The state advances over covered records only: a pending record is asked for again next time.
        bool advance = !pending || *pending + 1 == r_.events.size();
        if (advance) {
            h.next = pending ? r_.events[*pending].recnum : (last_recnum_ ? *last_recnum_ + 1 : q_.from);
            h.pcrs.clear();
            for (const auto& [p, run] : run_) h.pcrs[p] = run.value;
            for (size_t i = 0; i < r_.events.size(); ++i)
                if (r_.events[i].state == EventVerdict::State::Denied && (!pending || i != *pending))
                    h.denied.push_back(r_.events[i]);
        }
        *next = std::move(h);
    }
    return r_;
}

VerifyResult verify_quote(const std::string& ak_pem, const std::vector<uint8_t>& nonce, const AllowList& allow,
                          const QuoteDoc& q, const Expectation& expect) {
    Verification v(ak_pem, nonce, allow, expect);
    if (v.begin(q))
        for (const auto& e : q.log)
            if (!v.add(e)) break;
    return v.finish(nullptr);
}

std::string render(const VerifyResult& r) {
    std::string out;
    for (const auto& e : r.earlier_denied)
        out += "event " + std::to_string(e.recnum) + " DENIED earlier: container=" + e.container_id +
               " manifest=" + e.manifest + " signer=" + (e.signer.empty() ? "-" : e.signer) + "\n";
    for (const auto& e : r.events) {
        const char* s = e.state == EventVerdict::State::Allowed   ? "allowed"
                        : e.state == EventVerdict::State::Denied  ? "DENIED"
                        : e.state == EventVerdict::State::Pending ? "pending"
                                                                  : "not-covered";
        out += "event " + std::to_string(e.recnum) + " " + s + ": container=" + e.container_id +
               " manifest=" + e.manifest + " signer=" + (e.signer.empty() ? "-" : e.signer) + " (" + e.reason + ")\n";
    }
    if (!r.refused.empty()) out += "REFUSED: " + r.refused + "\n";
    else if (!r.ok()) out += "REFUSED: a measured bundle is not on the allow-list\n";
    else out += "VERIFIED\n";
    return out;
}

}  // namespace trustme::attest
