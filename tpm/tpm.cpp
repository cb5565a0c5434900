// TPM 2.0 through tpm2-tss ESAPI. See tpm.hpp for the model (transient primaries, no persistent handles).
#include "tpm/tpm.hpp"

#include "tpm/pcr.hpp"
#include "tpm/tcti.hpp"
#include "base/owned.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <string.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>

namespace trustme::tpm {
namespace {

ESYS_CONTEXT* E(void* p) { return static_cast<ESYS_CONTEXT*>(p); }

template <class T>
using EsysPtr = Owned<T, Esys_Free>;

// A transient object or session, flushed when it goes out of scope.
class Transient {
public:
    explicit Transient(ESYS_CONTEXT* ctx) : ctx_(ctx) {}
    Transient(const Transient&) = delete;
    Transient& operator=(const Transient&) = delete;
    ~Transient() {
        if (h_ != ESYS_TR_NONE) Esys_FlushContext(ctx_, h_);
    }
    ESYS_TR* out() { return &h_; }
    ESYS_TR get() const { return h_; }

private:
    ESYS_CONTEXT* ctx_;
    ESYS_TR h_ = ESYS_TR_NONE;
};

// An ESYS_TR for a TPM-resident entity we did not create (an NV index): closed, not flushed.
class ResourceTr {
public:
    explicit ResourceTr(ESYS_CONTEXT* ctx) : ctx_(ctx) {}
    ResourceTr(const ResourceTr&) = delete;
    ResourceTr& operator=(const ResourceTr&) = delete;
    ~ResourceTr() {
        if (h_ != ESYS_TR_NONE) Esys_TR_Close(ctx_, &h_);
    }
    ESYS_TR* out() { return &h_; }
    ESYS_TR get() const { return h_; }

private:
    ESYS_CONTEXT* ctx_;
    ESYS_TR h_ = ESYS_TR_NONE;
};

std::vector<uint32_t> sorted_unique(std::vector<uint32_t> v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
}

std::vector<uint8_t> sha256(const uint8_t* p, size_t n) {
    std::vector<uint8_t> out(SHA256_DIGEST_LENGTH);
    SHA256(p, n, out.data());
    return out;
}

// The auth value the TPM stores for a passphrase: SHA-256 of it (fixed length, any passphrase length),
// with trailing zero bytes removed, because the TPM drops them from authValues (TPM 2.0 Part 1,
// "Authorization Values": trailing zeros are removed before use in HMACs), so both sides agree.
TPM2B_AUTH auth_value(const std::string& auth) {
    TPM2B_AUTH a{};
    if (auth.empty()) return a;
    SHA256(reinterpret_cast<const uint8_t*>(auth.data()), auth.size(), a.buffer);
    a.size = SHA256_DIGEST_LENGTH;
    while (a.size > 0 && a.buffer[a.size - 1] == 0) --a.size;
    return a;
}

template <class T, class F>
std::vector<uint8_t> marshal(const T& v, F fn) {
    std::vector<uint8_t> buf(sizeof(T) + 16);
    size_t off = 0;
    if (fn(&v, buf.data(), buf.size(), &off) != TSS2_RC_SUCCESS) fail("TPM: cannot marshal a structure");
    buf.resize(off);
    return buf;
}

template <class T, class F>
T unmarshal(const std::vector<uint8_t>& buf, F fn, const std::string& what) {
    T v{};
    size_t off = 0;
    if (fn(buf.data(), buf.size(), &off, &v) != TSS2_RC_SUCCESS || off != buf.size())
        fail(what + ": not a valid marshalled TPM structure");
    return v;
}

const TPMT_SYM_DEF kAes128Cfb = {.algorithm = TPM2_ALG_AES, .keyBits = {.aes = 128}, .mode = {.aes = TPM2_ALG_CFB}};
const TPMT_SYM_DEF kSymNull = {.algorithm = TPM2_ALG_NULL, .keyBits = {.aes = 0}, .mode = {.aes = 0}};

// Storage Root Key template, ECC P-256: TCG "TPM 2.0 Provisioning Guidance" 1.0, 7.5.1 (restricted
// decryption key, AES-128-CFB, noDA, unique left empty).
TPM2B_PUBLIC srk_template() {
    TPM2B_PUBLIC t{};
    auto& p = t.publicArea;
    p.type = TPM2_ALG_ECC;
    p.nameAlg = TPM2_ALG_SHA256;
    p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                         TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
    p.parameters.eccDetail.symmetric.keyBits.aes = 128;
    p.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
    p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    return t;
}

// Attestation key: restricted ECDSA-SHA256 P-256 signing key. The fixed template makes the endorsement
// hierarchy derive the same key on every call.
TPM2B_PUBLIC ak_template() {
    TPM2B_PUBLIC t{};
    auto& p = t.publicArea;
    p.type = TPM2_ALG_ECC;
    p.nameAlg = TPM2_ALG_SHA256;
    p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                         TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED |
                         TPMA_OBJECT_SIGN_ENCRYPT;
    p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    // A non-empty unique field distinguishes our AK from other keys made from the same base template.
    const char tag[] = "trustme-ak";
    p.unique.ecc.x.size = sizeof(tag) - 1;
    memcpy(p.unique.ecc.x.buffer, tag, sizeof(tag) - 1);
    return t;
}

// RSA 2048 EK: TCG EK Credential Profile 2.0, template L-1. authPolicy is PolicySecret(TPM_RH_ENDORSEMENT),
// the digest given in that profile; unique is 256 zero bytes. swtpm_setup --create-ek-cert certifies this key.
TPM2B_PUBLIC ek_rsa_template() {
    static const uint8_t policy[32] = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
                                       0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
                                       0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};
    TPM2B_PUBLIC t{};
    auto& p = t.publicArea;
    p.type = TPM2_ALG_RSA;
    p.nameAlg = TPM2_ALG_SHA256;
    p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                         TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    p.authPolicy.size = sizeof(policy);
    memcpy(p.authPolicy.buffer, policy, sizeof(policy));
    p.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
    p.parameters.rsaDetail.symmetric.keyBits.aes = 128;
    p.parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    p.parameters.rsaDetail.keyBits = 2048;
    p.parameters.rsaDetail.exponent = 0;
    p.unique.rsa.size = 256;
    return t;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------

SecretBytes& SecretBytes::operator=(SecretBytes&& o) noexcept {
    if (this != &o) {
        explicit_bzero(bytes.data(), bytes.size());
        bytes = std::move(o.bytes);
    }
    return *this;
}

SecretBytes::~SecretBytes() { explicit_bzero(bytes.data(), bytes.size()); }

std::string SealedObject::to_json() const {
    nlohmann::json j = {
        {"version", 1},     {"type", "trustme-tpm2-sealed"}, {"pcr_bank", "sha256"},           {"pcrs", pcrs},
        {"auth", has_auth}, {"public", to_hex(public_area)}, {"private", to_hex(private_area)}};
    return j.dump();
}

SealedObject SealedObject::from_json(const std::string& text) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        fail(std::string("sealed object: not JSON: ") + e.what());
    }
    auto field = [&](const char* k, nlohmann::json::value_t t) -> const nlohmann::json& {
        if (!j.is_object() || !j.contains(k)) fail(std::string("sealed object: ") + k + ": missing");
        const auto& v = j.at(k);
        bool ok = v.type() == t || (t == nlohmann::json::value_t::number_unsigned && v.is_number_integer());
        if (!ok) fail(std::string("sealed object: ") + k + ": wrong type");
        return v;
    };
    using vt = nlohmann::json::value_t;
    if (field("version", vt::number_unsigned).get<int64_t>() != 1) fail("sealed object: version: unsupported");
    if (field("type", vt::string).get<std::string>() != "trustme-tpm2-sealed")
        fail("sealed object: type: not trustme-tpm2-sealed");
    if (j.contains("pcr_bank") && j["pcr_bank"] != "sha256") fail("sealed object: pcr_bank: only sha256 is supported");
    SealedObject o;
    for (const auto& p : field("pcrs", vt::array)) {
        if (!p.is_number_unsigned() || p.get<uint64_t>() > 23) fail("sealed object: pcrs: entries must be 0..23");
        o.pcrs.push_back(p.get<uint32_t>());
    }
    o.has_auth = field("auth", vt::boolean).get<bool>();
    o.public_area = from_hex(field("public", vt::string).get<std::string>(), "sealed object: public");
    o.private_area = from_hex(field("private", vt::string).get<std::string>(), "sealed object: private");
    // Reject garbage now rather than with an opaque TPM error later.
    unmarshal<TPM2B_PUBLIC>(o.public_area, Tss2_MU_TPM2B_PUBLIC_Unmarshal, "sealed object: public");
    unmarshal<TPM2B_PRIVATE>(o.private_area, Tss2_MU_TPM2B_PRIVATE_Unmarshal, "sealed object: private");
    return o;
}

// ---------------------------------------------------------------------------------------------------

void Tpm::fail_rc(uint32_t rc, const std::string& what) const { throw_rc(tcti_, rc, what); }

Tpm::Tpm(const std::string& tcti) : tcti_(tcti) {
    // tpm2-tss logs its own errors to stderr; we report each failure once, as an exception.
    setenv("TSS2_LOG", "all+none", 0);
    transport_ = std::make_unique<Tcti>(tcti);
    ESYS_CONTEXT* ctx = nullptr;
    TSS2_RC rc = Esys_Initialize(&ctx, transport_->get(), nullptr);
    if (rc != TSS2_RC_SUCCESS)
        throw TpmError(Cause::NoTpm, "TPM (" + tcti + "): cannot initialize ESAPI: " + Tss2_RC_Decode(rc));
    ctx_ = ctx;
    if (is_simulator(tcti)) {
        // A fresh simulator needs TPM2_Startup; a started one answers TPM_RC_INITIALIZE, which is fine.
        rc = Esys_Startup(ctx, TPM2_SU_CLEAR);
        if (rc != TSS2_RC_SUCCESS && (rc & 0xFFF) != TPM2_RC_INITIALIZE) {
            Esys_Finalize(&ctx);
            ctx_ = nullptr;
            throw TpmError(Cause::NoTpm, "TPM (" + tcti + "): TPM2_Startup: " + Tss2_RC_Decode(rc));
        }
    }
}

Tpm::~Tpm() {
    ESYS_CONTEXT* ctx = E(ctx_);
    if (ctx) Esys_Finalize(&ctx);  // before the transport it uses goes away
}

std::map<uint32_t, std::vector<uint8_t>> Tpm::pcr_read(const std::vector<uint32_t>& pcrs) {
    std::map<uint32_t, std::vector<uint8_t>> out;
    // One PCR per call: TPM2_PCR_Read returns at most 8 digests, and per-PCR reads keep this simple.
    for (uint32_t p : sorted_unique(pcrs)) {
        TPML_PCR_SELECTION sel = pcr_selection({p});
        UINT32 counter = 0;
        TPML_PCR_SELECTION* sel_out_raw = nullptr;
        TPML_DIGEST* values_raw = nullptr;
        TSS2_RC rc =
            Esys_PCR_Read(E(ctx_), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, &counter, &sel_out_raw, &values_raw);
        EsysPtr<TPML_PCR_SELECTION> sel_out(sel_out_raw);
        EsysPtr<TPML_DIGEST> values(values_raw);
        if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "PCR_Read " + std::to_string(p));
        if (values->count != 1)
            throw TpmError(Cause::Other,
                           "TPM (" + tcti_ + "): PCR " + std::to_string(p) + ": the sha256 bank is not allocated");
        out[p] = std::vector<uint8_t>(values->digests[0].buffer, values->digests[0].buffer + values->digests[0].size);
    }
    return out;
}

std::vector<uint8_t> Tpm::pcr_read(uint32_t pcr) { return pcr_read(std::vector<uint32_t>{pcr})[pcr]; }

void Tpm::pcr_extend(uint32_t pcr, const std::vector<uint8_t>& digest) {
    TPML_DIGEST_VALUES v = sha256_extend_values(pcr, digest);
    TSS2_RC rc = Esys_PCR_Extend(E(ctx_), ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &v);
    if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "PCR_Extend " + std::to_string(pcr));
}

std::vector<uint8_t> Tpm::random(size_t n) {
    std::vector<uint8_t> out;
    for (int guard = 0; out.size() < n && guard < 1000; ++guard) {
        TPM2B_DIGEST* r_raw = nullptr;
        UINT16 want = static_cast<UINT16>(std::min<size_t>(n - out.size(), 32));
        TSS2_RC rc = Esys_GetRandom(E(ctx_), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, want, &r_raw);
        EsysPtr<TPM2B_DIGEST> r(r_raw);
        if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "GetRandom");
        out.insert(out.end(), r->buffer, r->buffer + r->size);
    }
    if (out.size() < n) throw TpmError(Cause::Other, "TPM (" + tcti_ + "): GetRandom returned too few bytes");
    return out;
}

uint32_t Tpm::reset_count() {
    TPMS_TIME_INFO* t_raw = nullptr;
    TSS2_RC rc = Esys_ReadClock(E(ctx_), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &t_raw);
    EsysPtr<TPMS_TIME_INFO> t(t_raw);
    if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "ReadClock");
    return t->clockInfo.resetCount;
}

namespace {

// Create the SRK (transient) into `h`.
void create_srk(ESYS_CONTEXT* ctx, Transient& h, const std::function<void(TSS2_RC, const std::string&)>& onerr) {
    TPM2B_SENSITIVE_CREATE sens{};
    TPM2B_PUBLIC tmpl = srk_template();
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION creation_pcr{};
    TSS2_RC rc = Esys_CreatePrimary(ctx, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl,
                                    &outside, &creation_pcr, h.out(), nullptr, nullptr, nullptr, nullptr);
    if (rc != TSS2_RC_SUCCESS) onerr(rc, "CreatePrimary (storage root key)");
}

// An HMAC or policy session salted with the SRK, so that the secret travels encrypted between us and the
// TPM (parameter encryption, AES-128-CFB).
void start_session(ESYS_CONTEXT* ctx, ESYS_TR salt_key, TPM2_SE type, Transient& s,
                   const std::function<void(TSS2_RC, const std::string&)>& onerr) {
    const TPMT_SYM_DEF& sym = type == TPM2_SE_TRIAL ? kSymNull : kAes128Cfb;
    TSS2_RC rc = Esys_StartAuthSession(ctx, type == TPM2_SE_TRIAL ? ESYS_TR_NONE : salt_key, ESYS_TR_NONE, ESYS_TR_NONE,
                                       ESYS_TR_NONE, ESYS_TR_NONE, nullptr, type, &sym, TPM2_ALG_SHA256, s.out());
    if (rc != TSS2_RC_SUCCESS) onerr(rc, "StartAuthSession");
}

}  // namespace

SealedObject Tpm::seal(const std::vector<uint8_t>& secret, const std::vector<uint32_t>& pcrs_in,
                       const std::string& auth) {
    if (secret.empty() || secret.size() > 128) fail("TPM seal: the secret must be 1..128 bytes (TPM MAX_SYM_DATA)");
    std::vector<uint32_t> pcrs = sorted_unique(pcrs_in);
    if (pcrs.empty() && auth.empty())
        fail("TPM seal: neither PCRs nor an auth value given: nothing would protect the secret");
    ESYS_CONTEXT* ctx = E(ctx_);
    auto onerr = [this](TSS2_RC rc, const std::string& w) { fail_rc(rc, w); };

    // Policy digest from a trial session. The PCR digest is computed here from values just read and
    // passed explicitly, so the policy is bound to exactly these values (an empty pcrDigest in a trial
    // session is not evaluated against the PCRs: TPM 2.0 Part 3, TPM2_PolicyPCR).
    TPM2B_DIGEST policy{};
    {
        Transient trial(ctx);
        start_session(ctx, ESYS_TR_NONE, TPM2_SE_TRIAL, trial, onerr);
        if (!pcrs.empty()) {
            auto values = pcr_read(pcrs);
            std::vector<uint8_t> cat;
            for (auto& [p, v] : values) cat.insert(cat.end(), v.begin(), v.end());
            auto d = sha256(cat.data(), cat.size());
            TPM2B_DIGEST pcr_digest{};
            pcr_digest.size = static_cast<UINT16>(d.size());
            memcpy(pcr_digest.buffer, d.data(), d.size());
            TPML_PCR_SELECTION sel = pcr_selection(pcrs);
            TSS2_RC rc = Esys_PolicyPCR(ctx, trial.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pcr_digest, &sel);
            if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "PolicyPCR (trial)");
        }
        if (!auth.empty()) {
            TSS2_RC rc = Esys_PolicyAuthValue(ctx, trial.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE);
            if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "PolicyAuthValue (trial)");
        }
        TPM2B_DIGEST* d_raw = nullptr;
        TSS2_RC rc = Esys_PolicyGetDigest(ctx, trial.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &d_raw);
        EsysPtr<TPM2B_DIGEST> d(d_raw);
        if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "PolicyGetDigest");
        policy = *d;
    }

    Transient srk(ctx);
    create_srk(ctx, srk, onerr);
    Transient hmac(ctx);
    start_session(ctx, srk.get(), TPM2_SE_HMAC, hmac, onerr);
    TSS2_RC rc = Esys_TRSess_SetAttributes(ctx, hmac.get(), TPMA_SESSION_DECRYPT | TPMA_SESSION_CONTINUESESSION, 0xff);
    if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "TRSess_SetAttributes");

    TPM2B_SENSITIVE_CREATE sens{};
    sens.sensitive.userAuth = auth_value(auth);
    sens.sensitive.data.size = static_cast<UINT16>(secret.size());
    memcpy(sens.sensitive.data.buffer, secret.data(), secret.size());
    TPM2B_PUBLIC tmpl{};
    auto& p = tmpl.publicArea;
    p.type = TPM2_ALG_KEYEDHASH;
    p.nameAlg = TPM2_ALG_SHA256;
    // No userWithAuth: only the policy can authorize Unseal. Dictionary-attack protection stays on when
    // there is an auth value to guess; without one, a failed policy is no guess and noDA avoids lockouts.
    p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | (auth.empty() ? TPMA_OBJECT_NODA : 0);
    p.authPolicy = policy;
    p.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION creation_pcr{};
    TPM2B_PRIVATE* priv_raw = nullptr;
    TPM2B_PUBLIC* pub_raw = nullptr;
    rc = Esys_Create(ctx, srk.get(), hmac.get(), ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl, &outside, &creation_pcr,
                     &priv_raw, &pub_raw, nullptr, nullptr, nullptr);
    explicit_bzero(&sens, sizeof(sens));
    EsysPtr<TPM2B_PRIVATE> priv(priv_raw);
    EsysPtr<TPM2B_PUBLIC> pub(pub_raw);
    if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "Create (sealed object)");
    SealedObject o;
    o.public_area = marshal(*pub, Tss2_MU_TPM2B_PUBLIC_Marshal);
    o.private_area = marshal(*priv, Tss2_MU_TPM2B_PRIVATE_Marshal);
    o.pcrs = pcrs;
    o.has_auth = !auth.empty();
    return o;
}

SecretBytes Tpm::unseal(const SealedObject& obj, const std::string& auth) {
    if (obj.has_auth && auth.empty())
        throw TpmError(Cause::BadAuth,
                       "TPM (" + tcti_ + "): unseal: the object was sealed with an auth value and none was given");
    if (!obj.has_auth && !auth.empty())
        throw TpmError(Cause::BadAuth,
                       "TPM (" + tcti_ + "): unseal: the object was sealed without an auth value, but one was given");
    ESYS_CONTEXT* ctx = E(ctx_);
    auto onerr = [this](TSS2_RC rc, const std::string& w) { fail_rc(rc, w); };
    auto pub = unmarshal<TPM2B_PUBLIC>(obj.public_area, Tss2_MU_TPM2B_PUBLIC_Unmarshal, "sealed object: public");
    auto priv = unmarshal<TPM2B_PRIVATE>(obj.private_area, Tss2_MU_TPM2B_PRIVATE_Unmarshal, "sealed object: private");

    Transient srk(ctx);
    create_srk(ctx, srk, onerr);
    Transient item(ctx);
    TSS2_RC rc = Esys_Load(ctx, srk.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, item.out());
    if (rc != TSS2_RC_SUCCESS)
        fail_rc(rc, "Load (sealed object; made by another TPM, or the storage hierarchy was cleared)");

    Transient session(ctx);
    start_session(ctx, srk.get(), TPM2_SE_POLICY, session, onerr);
    if (!obj.pcrs.empty()) {
        // Empty pcrDigest: the TPM folds in the PCRs' current values; Unseal then fails with
        // TPM_RC_POLICY_FAIL when they differ from those sealed to.
        TPM2B_DIGEST empty{};
        TPML_PCR_SELECTION sel = pcr_selection(obj.pcrs);
        rc = Esys_PolicyPCR(ctx, session.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &empty, &sel);
        if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "PolicyPCR");
    }
    if (obj.has_auth) {
        rc = Esys_PolicyAuthValue(ctx, session.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE);
        if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "PolicyAuthValue");
        TPM2B_AUTH a = auth_value(auth);
        rc = Esys_TR_SetAuth(ctx, item.get(), &a);
        explicit_bzero(&a, sizeof(a));
        if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "TR_SetAuth");
    }
    // Response encryption: the secret comes back encrypted with the salted session's key.
    rc = Esys_TRSess_SetAttributes(ctx, session.get(), TPMA_SESSION_ENCRYPT | TPMA_SESSION_CONTINUESESSION, 0xff);
    if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "TRSess_SetAttributes");
    TPM2B_SENSITIVE_DATA* out_raw = nullptr;
    rc = Esys_Unseal(ctx, item.get(), session.get(), ESYS_TR_NONE, ESYS_TR_NONE, &out_raw);
    EsysPtr<TPM2B_SENSITIVE_DATA> out(out_raw);
    if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "Unseal");
    SecretBytes s(std::vector<uint8_t>(out->buffer, out->buffer + out->size));
    explicit_bzero(out->buffer, out->size);
    return s;
}

// ---------------------------------------------------------------------------------------------------

namespace {

std::string ec_public_pem(const TPMS_ECC_POINT& pt) {
    std::vector<uint8_t> point{0x04};
    auto pad = [&](const TPM2B_ECC_PARAMETER& c) {
        point.insert(point.end(), 32 - std::min<size_t>(c.size, 32), 0);
        point.insert(point.end(), c.buffer, c.buffer + c.size);
    };
    pad(pt.x);
    pad(pt.y);
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
    OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX* pctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
    EVP_PKEY* pkey = nullptr;
    bool ok =
        pctx && EVP_PKEY_fromdata_init(pctx) == 1 && EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1;
    std::string pem;
    if (ok) {
        BIO* bio = BIO_new(BIO_s_mem());
        if (PEM_write_bio_PUBKEY(bio, pkey) == 1) {
            char* data = nullptr;
            long n = BIO_get_mem_data(bio, &data);
            pem.assign(data, static_cast<size_t>(n));
        }
        BIO_free(bio);
    }
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    if (pem.empty()) fail("AK: cannot encode the public key as PEM");
    return pem;
}

std::vector<uint8_t> ecdsa_der(const TPMS_SIGNATURE_ECDSA& s) {
    ECDSA_SIG* sig = ECDSA_SIG_new();
    BIGNUM* r = BN_bin2bn(s.signatureR.buffer, s.signatureR.size, nullptr);
    BIGNUM* ss = BN_bin2bn(s.signatureS.buffer, s.signatureS.size, nullptr);
    ECDSA_SIG_set0(sig, r, ss);
    unsigned char* der = nullptr;
    int n = i2d_ECDSA_SIG(sig, &der);
    std::vector<uint8_t> out;
    if (n > 0) out.assign(der, der + n);
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    if (out.empty()) fail("quote: cannot encode the signature");
    return out;
}

}  // namespace

namespace {
void create_ak(ESYS_CONTEXT* ctx, Transient& h, TPM2B_PUBLIC** pub,
               const std::function<void(TSS2_RC, const std::string&)>& onerr) {
    TPM2B_SENSITIVE_CREATE sens{};
    TPM2B_PUBLIC tmpl = ak_template();
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION creation_pcr{};
    TSS2_RC rc = Esys_CreatePrimary(ctx, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
                                    &tmpl, &outside, &creation_pcr, h.out(), pub, nullptr, nullptr, nullptr);
    if (rc != TSS2_RC_SUCCESS) onerr(rc, "CreatePrimary (attestation key, endorsement hierarchy)");
}

// A public area made from the AK template: every field but the key itself (unique) as the template has it.
bool of_ak_template(const TPMT_PUBLIC& pub) {
    TPM2B_PUBLIC tmpl = ak_template();
    TPMT_PUBLIC shape = pub;
    shape.unique = tmpl.publicArea.unique;
    return marshal(shape, Tss2_MU_TPMT_PUBLIC_Marshal) == marshal(tmpl.publicArea, Tss2_MU_TPMT_PUBLIC_Marshal);
}

// Load a saved AK into `h`; false (and nothing loaded) when the TPM refuses the context (another TPM, or
// reset since) or the object it holds is not that AK.
bool load_saved_ak(ESYS_CONTEXT* ctx, const SavedAk& kept, Transient& h) {
    TPMS_CONTEXT c{};
    size_t off = 0;
    if (Tss2_MU_TPMS_CONTEXT_Unmarshal(kept.context.data(), kept.context.size(), &off, &c) != TSS2_RC_SUCCESS ||
        off != kept.context.size() || c.hierarchy != TPM2_RH_ENDORSEMENT)
        return false;
    Transient loaded(ctx);
    if (Esys_ContextLoad(ctx, &c, loaded.out()) != TSS2_RC_SUCCESS) return false;
    // What the TPM says the loaded object is, not what the saved blob's metadata says.
    TPM2B_PUBLIC* pub_raw = nullptr;
    TSS2_RC rc =
        Esys_ReadPublic(ctx, loaded.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub_raw, nullptr, nullptr);
    EsysPtr<TPM2B_PUBLIC> pub(pub_raw);
    if (rc != TSS2_RC_SUCCESS || marshal(*pub, Tss2_MU_TPM2B_PUBLIC_Marshal) != kept.public_area ||
        !of_ak_template(pub->publicArea))
        return false;
    std::swap(*h.out(), *loaded.out());
    return true;
}
}  // namespace

std::string SavedAk::to_json() const {
    return nlohmann::json{
        {"version", 1}, {"type", "trustme-ak-context"}, {"context", to_hex(context)}, {"public", to_hex(public_area)}}
        .dump();
}

SavedAk SavedAk::from_json(const std::string& text, const std::string& name) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception&) {
        fail(name + ": not JSON");
    }
    if (!j.is_object() || j.value("type", "") != "trustme-ak-context" || j.value("version", 0) != 1)
        fail(name + ": not a trustme-ak-context (version 1)");
    for (const char* k : {"context", "public"})
        if (!j.contains(k) || !j[k].is_string()) fail(name + ": " + k + ": missing or not a string");
    SavedAk s;
    s.context = from_hex(j["context"].get<std::string>(), name + ": context");
    s.public_area = from_hex(j["public"].get<std::string>(), name + ": public");
    return s;
}

AkPublic Tpm::ak_public() {
    ESYS_CONTEXT* ctx = E(ctx_);
    Transient ak(ctx);
    TPM2B_PUBLIC* pub_raw = nullptr;
    create_ak(ctx, ak, &pub_raw, [this](TSS2_RC rc, const std::string& w) { fail_rc(rc, w); });
    EsysPtr<TPM2B_PUBLIC> pub(pub_raw);
    TPM2B_NAME* name_raw = nullptr;
    TSS2_RC rc = Esys_TR_GetName(ctx, ak.get(), &name_raw);
    EsysPtr<TPM2B_NAME> name(name_raw);
    if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "TR_GetName (AK)");
    AkPublic out;
    out.public_area = marshal(*pub, Tss2_MU_TPM2B_PUBLIC_Marshal);
    out.name.assign(name->name, name->name + name->size);
    out.pem = ec_public_pem(pub->publicArea.unique.ecc);
    return out;
}

Quote Tpm::quote(const std::vector<uint8_t>& nonce, const std::vector<uint32_t>& pcrs_in, SavedAk* kept) {
    if (nonce.empty() || nonce.size() > 64) fail("quote: the nonce must be 1..64 bytes (TPM2B_DATA)");
    std::vector<uint32_t> pcrs = sorted_unique(pcrs_in);
    if (pcrs.empty()) fail("quote: no PCRs selected");
    ESYS_CONTEXT* ctx = E(ctx_);
    Transient ak(ctx);
    Quote out;
    if (kept && !kept->empty() && load_saved_ak(ctx, *kept, ak)) {
        out.ak_public = kept->public_area;  // what the TPM read back for the loaded object (load_saved_ak)
    } else {
        TPM2B_PUBLIC* pub_raw = nullptr;
        create_ak(ctx, ak, &pub_raw, [this](TSS2_RC rc, const std::string& w) { fail_rc(rc, w); });
        EsysPtr<TPM2B_PUBLIC> pub(pub_raw);
        out.ak_public = marshal(*pub, Tss2_MU_TPM2B_PUBLIC_Marshal);
        if (kept) {
            TPMS_CONTEXT* c_raw = nullptr;
            TSS2_RC rc = Esys_ContextSave(ctx, ak.get(), &c_raw);
            EsysPtr<TPMS_CONTEXT> c(c_raw);
            if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "ContextSave (attestation key)");
            kept->context = marshal(*c, Tss2_MU_TPMS_CONTEXT_Marshal);
            kept->public_area = out.ak_public;
        }
    }
    TPM2B_DATA q{};
    q.size = static_cast<UINT16>(nonce.size());
    memcpy(q.buffer, nonce.data(), nonce.size());
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_NULL;  // the key's own scheme, ECDSA-SHA256
    TPML_PCR_SELECTION sel = pcr_selection(pcrs);
    TPM2B_ATTEST* att_raw = nullptr;
    TPMT_SIGNATURE* sig_raw = nullptr;
    TSS2_RC rc =
        Esys_Quote(ctx, ak.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &q, &scheme, &sel, &att_raw, &sig_raw);
    EsysPtr<TPM2B_ATTEST> att(att_raw);
    EsysPtr<TPMT_SIGNATURE> sig(sig_raw);
    if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "Quote");
    out.attest.assign(att->attestationData, att->attestationData + att->size);
    out.signature_der = ecdsa_der(sig->signature.ecdsa);
    out.signature = marshal(*sig, Tss2_MU_TPMT_SIGNATURE_Marshal);
    // Read after quoting: the verifier checks these against the signed pcrDigest, so a PCR that moved in
    // between shows up as a mismatch rather than as a false value.
    out.pcr_values = pcr_read(pcrs);
    return out;
}

std::vector<uint8_t> Tpm::ek_certificate() {
    ESYS_CONTEXT* ctx = E(ctx_);
    ResourceTr nv(ctx);
    // TCG EK Credential Profile 2.0, 2.2.1.4: RSA 2048 EK certificate NV index.
    TSS2_RC rc = Esys_TR_FromTPMPublic(ctx, 0x01c00002, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, nv.out());
    if (rc != TSS2_RC_SUCCESS) return {};
    TPM2B_NV_PUBLIC* pub_raw = nullptr;
    rc = Esys_NV_ReadPublic(ctx, nv.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub_raw, nullptr);
    EsysPtr<TPM2B_NV_PUBLIC> pub(pub_raw);
    if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "NV_ReadPublic (EK certificate)");
    uint16_t size = pub->nvPublic.dataSize;
    std::vector<uint8_t> out;
    while (out.size() < size) {
        // 512 bytes a read: below every TPM's MAX_NV_BUFFER_SIZE (swtpm: 1024).
        UINT16 chunk = static_cast<UINT16>(std::min<size_t>(512, size - out.size()));
        TPM2B_MAX_NV_BUFFER* d_raw = nullptr;
        rc = Esys_NV_Read(ctx, ESYS_TR_RH_OWNER, nv.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, chunk,
                          static_cast<UINT16>(out.size()), &d_raw);
        EsysPtr<TPM2B_MAX_NV_BUFFER> d(d_raw);
        if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "NV_Read (EK certificate)");
        if (d->size == 0) break;
        out.insert(out.end(), d->buffer, d->buffer + d->size);
    }
    return out;
}

SecretBytes Tpm::ak_activate_credential(const Credential& cred) {
    ESYS_CONTEXT* ctx = E(ctx_);
    auto onerr = [this](TSS2_RC rc, const std::string& w) { fail_rc(rc, w); };
    if (cred.credential_blob.size() > sizeof(TPM2B_ID_OBJECT::credential) ||
        cred.encrypted_secret.size() > sizeof(TPM2B_ENCRYPTED_SECRET::secret))
        fail("credential: blob too large");
    Transient ak(ctx);
    create_ak(ctx, ak, nullptr, onerr);
    Transient ek(ctx);
    {
        TPM2B_SENSITIVE_CREATE sens{};
        TPM2B_PUBLIC tmpl = ek_rsa_template();
        TPM2B_DATA outside{};
        TPML_PCR_SELECTION creation_pcr{};
        TSS2_RC rc =
            Esys_CreatePrimary(ctx, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl,
                               &outside, &creation_pcr, ek.out(), nullptr, nullptr, nullptr, nullptr);
        if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "CreatePrimary (EK)");
    }
    // The EK is usable only through its policy, PolicySecret(TPM_RH_ENDORSEMENT).
    Transient session(ctx);
    start_session(ctx, ESYS_TR_NONE, TPM2_SE_POLICY, session, onerr);
    TSS2_RC rc = Esys_PolicySecret(ctx, ESYS_TR_RH_ENDORSEMENT, session.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                   ESYS_TR_NONE, nullptr, nullptr, nullptr, 0, nullptr, nullptr);
    if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "PolicySecret (endorsement)");
    TPM2B_ID_OBJECT blob{};
    blob.size = static_cast<UINT16>(cred.credential_blob.size());
    memcpy(blob.credential, cred.credential_blob.data(), blob.size);
    TPM2B_ENCRYPTED_SECRET secret{};
    secret.size = static_cast<UINT16>(cred.encrypted_secret.size());
    memcpy(secret.secret, cred.encrypted_secret.data(), secret.size);
    TPM2B_DIGEST* out_raw = nullptr;
    rc = Esys_ActivateCredential(ctx, ak.get(), ek.get(), ESYS_TR_PASSWORD, session.get(), ESYS_TR_NONE, &blob, &secret,
                                 &out_raw);
    EsysPtr<TPM2B_DIGEST> out(out_raw);
    if (rc != TSS2_RC_SUCCESS) fail_rc(rc, "ActivateCredential (AK not in the TPM of this EK?)");
    SecretBytes s(std::vector<uint8_t>(out->buffer, out->buffer + out->size));
    explicit_bzero(out->buffer, out->size);
    return s;
}

}  // namespace trustme::tpm
