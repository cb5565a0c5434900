// TPM 2.0 access through tpm2-tss ESAPI: PCRs, sealing to a PCR policy, an attestation key and quotes.
//
// Every TPM object and session this layer creates is transient and flushed by RAII before the call
// returns, so no persistent handle is ever needed: the storage primary key (SRK) and the attestation key
// (AK) are primary keys, which a TPM re-derives bit for bit from its hierarchy seed and the template
// (TPM 2.0 Part 1, "Primary Keys"), so sealed blobs and the AK survive reboots without NV storage.
//
// The TPM is named by a TCTI string as Tss2_TctiLdr_Initialize takes it: "device:/dev/tpmrm0" (the
// default on a host), "swtpm:path=/run/x/sock" (swtpm on a unix socket; the control channel is
// "<path>.ctrl"), "mssim:host=...,port=...".
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace trustme::tpm {

// Why a TPM operation failed, for callers that react differently (a volume may ask for a recovery key
// on PcrMismatch, but not on NoTpm).
enum class Cause { NoTpm, PcrMismatch, BadAuth, Lockout, Other };

// Message: "TPM (<tcti>): <cause in words>".
class TpmError : public trustme::Error {
public:
    TpmError(Cause cause, const std::string& msg) : Error(msg), cause_(cause) {}
    Cause cause() const noexcept { return cause_; }

private:
    Cause cause_;
};

// Secret material: wiped (explicit_bzero) when destroyed. Move-only, so no stray copy survives.
struct SecretBytes {
    std::vector<uint8_t> bytes;
    SecretBytes() = default;
    explicit SecretBytes(std::vector<uint8_t> b) : bytes(std::move(b)) {}
    SecretBytes(SecretBytes&&) noexcept = default;
    SecretBytes& operator=(SecretBytes&& o) noexcept;
    SecretBytes(const SecretBytes&) = delete;
    SecretBytes& operator=(const SecretBytes&) = delete;
    ~SecretBytes();
};

// A sealed data object, as TPM2_Create returned it under the SRK, plus what unsealing needs to rebuild
// the policy session. Safe to store anywhere: only this TPM, with these PCR values (and the auth value if
// one was given), can unseal it.
struct SealedObject {
    std::vector<uint8_t> public_area;   // TPM2B_PUBLIC, marshalled (tss2-mu)
    std::vector<uint8_t> private_area;  // TPM2B_PRIVATE, marshalled
    std::vector<uint32_t> pcrs;         // sha256 bank, ascending
    bool has_auth = false;              // the policy includes PolicyAuthValue

    // {"version":1,"type":"trustme-tpm2-sealed","pcr_bank":"sha256","pcrs":[..],"auth":bool,
    //  "public":"<hex>","private":"<hex>"}. from_json errors name the field.
    std::string to_json() const;
    static SealedObject from_json(const std::string& text);
};

// The public part of the attestation key.
struct AkPublic {
    std::vector<uint8_t> public_area;  // TPM2B_PUBLIC, marshalled
    std::vector<uint8_t> name;         // TPM2B_NAME contents: nameAlg (2 bytes) || sha256(TPMT_PUBLIC)
    std::string pem;                   // SubjectPublicKeyInfo (EC P-256)
};

// The AK kept across connections: its saved context (TPM2_ContextSave) and the public area it had when it
// was created from the template. Loading it back (TPM2_ContextLoad) replaces re-deriving the key from the
// endorsement seed. Only the TPM that saved it can load it, and only until that TPM's next reset: the
// context encryption key changes on every TPM Reset (TPM 2.0 Part 1, "Context Management"), so a saved AK
// lasts one boot at most and is then re-created. Not secret (the TPM encrypts and MACs the context), but
// not trusted either: see Tpm::quote.
struct SavedAk {
    std::vector<uint8_t> context;      // TPMS_CONTEXT, marshalled
    std::vector<uint8_t> public_area;  // TPM2B_PUBLIC, marshalled

    bool empty() const { return context.empty(); }
    // {"version":1,"type":"trustme-ak-context","context":"<hex>","public":"<hex>"}; from_json errors name
    // `name` and the field.
    std::string to_json() const;
    static SavedAk from_json(const std::string& text, const std::string& name);
};

// A TPM2_Quote result.
struct Quote {
    std::vector<uint8_t> attest;                          // TPMS_ATTEST as the TPM marshalled it: the signed bytes
    std::vector<uint8_t> signature_der;                   // ECDSA-SHA256 signature, DER (as OpenSSL verifies it)
    std::vector<uint8_t> signature;                       // the same, TPMT_SIGNATURE as the TPM returned it, marshalled
    std::vector<uint8_t> ak_public;                       // TPM2B_PUBLIC of the key that signed, marshalled
    std::map<uint32_t, std::vector<uint8_t>> pcr_values;  // sha256 bank, read right after the quote
};

// Result of TPM2_MakeCredential-style activation (EK binding of the AK, see ak_activate_credential).
struct Credential {
    std::vector<uint8_t> credential_blob;   // TPM2B_ID_OBJECT contents
    std::vector<uint8_t> encrypted_secret;  // TPM2B_ENCRYPTED_SECRET contents
};

class Tcti;  // tpm/tcti.hpp

// One connection to the TPM, reused by every command (tpm/tcti.hpp). Not thread-safe. Keep it
// short-lived: swtpm serves one client connection at a time, so an open Tpm blocks every other user of
// that swtpm (e.g. the measure hook) until destroyed.
class Tpm {
public:
    // Connects and, for simulators (swtpm, mssim), sends TPM2_Startup(CLEAR) if nobody has.
    // Throws TpmError(NoTpm, "TPM (tcti): ...") when the TCTI cannot be loaded or reached.
    explicit Tpm(const std::string& tcti);
    ~Tpm();
    Tpm(const Tpm&) = delete;
    Tpm& operator=(const Tpm&) = delete;

    const std::string& tcti() const noexcept { return tcti_; }

    std::vector<uint8_t> pcr_read(uint32_t pcr);  // sha256 bank
    std::map<uint32_t, std::vector<uint8_t>> pcr_read(const std::vector<uint32_t>& pcrs);
    void pcr_extend(uint32_t pcr, const std::vector<uint8_t>& sha256_digest);

    std::vector<uint8_t> random(size_t n);  // TPM2_GetRandom, looped (the TPM returns at most 64 bytes a call)

    // TPMS_CLOCK_INFO.resetCount: increments on every TPM Reset (reboot), when PCRs return to their
    // initial values. The event log tags records with it to know which ones the current PCRs contain.
    uint32_t reset_count();

    // Seal `secret` (at most 128 bytes, the TPM's MAX_SYM_DATA) to PolicyPCR over the current values of
    // `pcrs` (sha256 bank), and PolicyAuthValue when `auth` is non-empty. Empty `pcrs`: auth only.
    SealedObject seal(const std::vector<uint8_t>& secret, const std::vector<uint32_t>& pcrs,
                      const std::string& auth = "");
    // Throws TpmError with Cause PcrMismatch, BadAuth or Lockout naming the reason.
    SecretBytes unseal(const SealedObject& obj, const std::string& auth = "");

    // The attestation key: a restricted ECDSA P-256 signing key, created as a primary key in the
    // endorsement hierarchy from a fixed template, hence the same key every time on the same TPM.
    AkPublic ak_public();
    // TPM2_Quote over `pcrs` (sha256 bank) with the AK; nonce: 1..64 bytes (TPM2B_DATA).
    // With `kept`: the AK is loaded from it when the TPM accepts the context and the loaded object is that
    // AK -- its public area, read back from the TPM (TPM2_ReadPublic), equals the saved one, and that is
    // a key of the AK template (restricted ECDSA-SHA256 P-256 signing key, fixedTPM, endorsement
    // hierarchy). Otherwise the AK is created from the template and *kept replaced by its context.
    Quote quote(const std::vector<uint8_t>& nonce, const std::vector<uint32_t>& pcrs, SavedAk* kept = nullptr);

    // The EK certificate (DER) from its TCG NV index (RSA 2048: 0x01c00002), empty when absent.
    std::vector<uint8_t> ek_certificate();
    // TPM2_ActivateCredential with the AK and the RSA EK (TCG EK profile template L-1): returns the
    // credential a verifier made for (EK public, AK name). Proves the AK lives in the TPM of that EK.
    SecretBytes ak_activate_credential(const Credential& cred);

    // ESAPI context (ESYS_CONTEXT*), for code in this library only.
    void* esys() const noexcept { return ctx_; }

private:
    [[noreturn]] void fail_rc(uint32_t rc, const std::string& what) const;

    std::string tcti_;
    std::unique_ptr<Tcti> transport_;
    void* ctx_ = nullptr;  // ESYS_CONTEXT*
};

// Hex helpers shared by the attestation code (lower case, no separators).
std::string to_hex(const uint8_t* p, size_t n);
inline std::string to_hex(const std::vector<uint8_t>& v) { return to_hex(v.data(), v.size()); }
// Throws Error("<what>: not a hex string") on odd length or non-hex characters.
std::vector<uint8_t> from_hex(const std::string& s, const std::string& what);

}  // namespace trustme::tpm
