#include "tpm/pcr.hpp"

#include <string.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_sys.h>

#include <cstdlib>

#include "tpm/tcti.hpp"
#include "tpm/tpm.hpp"

namespace trustme::tpm {
namespace {

TSS2_SYS_CONTEXT* S(const std::unique_ptr<uint8_t[]>& p) { return reinterpret_cast<TSS2_SYS_CONTEXT*>(p.get()); }

}  // namespace

bool is_simulator(const std::string& tcti) { return tcti.rfind("swtpm", 0) == 0 || tcti.rfind("mssim", 0) == 0; }

void throw_rc(const std::string& tcti, uint32_t rc, const std::string& what) {
    Cause cause = Cause::Other;
    std::string why;
    if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER) {
        uint32_t code = rc & 0xFFF;
        // Format-one codes carry the parameter/handle/session number in bits 8..11: strip it
        // (TPM 2.0 Part 2, "TPM_RC": RC_FMT1 = 0x080, error number in bits 0..5).
        if (code & TPM2_RC_FMT1) code = (code & 0x3F) | TPM2_RC_FMT1;
        switch (code) {
            case TPM2_RC_POLICY_FAIL:
                cause = Cause::PcrMismatch;
                why = "PCR values differ from those the object was sealed to (policy check failed)";
                break;
            case TPM2_RC_AUTH_FAIL:
            case TPM2_RC_BAD_AUTH:
                cause = Cause::BadAuth;
                why = "wrong auth value";
                break;
            case TPM2_RC_LOCKOUT:
                cause = Cause::Lockout;
                why = "the TPM is in dictionary-attack lockout (wait for recovery or reset the lockout)";
                break;
            case TPM2_RC_PCR_CHANGED:
                cause = Cause::PcrMismatch;
                why = "PCR values changed during the operation";
                break;
            case TPM2_RC_INITIALIZE:
                cause = Cause::NoTpm;
                why = "the TPM has not been started up (TPM2_Startup)";
                break;
            default: break;
        }
    } else if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TCTI_RC_LAYER) {
        cause = Cause::NoTpm;
    }
    if (why.empty()) why = Tss2_RC_Decode(rc);
    throw TpmError(cause, "TPM (" + tcti + "): " + what + ": " + why);
}

TPML_PCR_SELECTION pcr_selection(const std::vector<uint32_t>& pcrs) {
    TPML_PCR_SELECTION sel{};
    sel.count = 1;
    sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
    sel.pcrSelections[0].sizeofSelect = 3;  // PCR 0..23, the PC Client platform's set
    for (uint32_t p : pcrs) {
        if (p > 23) fail("PCR " + std::to_string(p) + ": out of range (0..23)");
        sel.pcrSelections[0].pcrSelect[p / 8] |= static_cast<uint8_t>(1u << (p % 8));
    }
    return sel;
}

TPML_DIGEST_VALUES sha256_extend_values(uint32_t pcr, const std::vector<uint8_t>& digest) {
    if (pcr > 23) fail("PCR " + std::to_string(pcr) + ": out of range (0..23)");
    if (digest.size() != TPM2_SHA256_DIGEST_SIZE) fail("PCR extend: the digest must be 32 bytes (sha256)");
    TPML_DIGEST_VALUES v{};
    v.count = 1;
    v.digests[0].hashAlg = TPM2_ALG_SHA256;
    memcpy(v.digests[0].digest.sha256, digest.data(), digest.size());
    return v;
}

PcrTpm::PcrTpm(const std::string& tcti) : tcti_(tcti) {
    setenv("TSS2_LOG", "all+none", 0);  // as Tpm: failures are reported once, as exceptions
    transport_ = std::make_unique<Tcti>(tcti);
    size_t size = Tss2_Sys_GetContextSize(0);
    sys_.reset(new uint8_t[size]());
    TSS2_ABI_VERSION abi = TSS2_ABI_VERSION_CURRENT;
    TSS2_RC rc = Tss2_Sys_Initialize(S(sys_), size, transport_->get(), &abi);
    if (rc != TSS2_RC_SUCCESS) {
        sys_.reset();
        throw TpmError(Cause::NoTpm, "TPM (" + tcti + "): cannot initialize SAPI: " + Tss2_RC_Decode(rc));
    }
    if (is_simulator(tcti)) {
        // A fresh simulator needs TPM2_Startup; a started one answers TPM_RC_INITIALIZE, which is fine.
        rc = Tss2_Sys_Startup(S(sys_), TPM2_SU_CLEAR);
        if (rc != TSS2_RC_SUCCESS && (rc & 0xFFF) != TPM2_RC_INITIALIZE)
            throw TpmError(Cause::NoTpm, "TPM (" + tcti + "): TPM2_Startup: " + Tss2_RC_Decode(rc));
    }
}

PcrTpm::~PcrTpm() {
    if (sys_) Tss2_Sys_Finalize(S(sys_));
}

std::vector<uint8_t> PcrTpm::pcr_read(uint32_t pcr) {
    TPML_PCR_SELECTION sel = pcr_selection({pcr}), sel_out{};
    UINT32 counter = 0;
    TPML_DIGEST values{};
    TSS2_RC rc = Tss2_Sys_PCR_Read(S(sys_), nullptr, &sel, &counter, &sel_out, &values, nullptr);
    if (rc != TSS2_RC_SUCCESS) throw_rc(tcti_, rc, "PCR_Read " + std::to_string(pcr));
    if (values.count != 1)
        throw TpmError(Cause::Other,
                       "TPM (" + tcti_ + "): PCR " + std::to_string(pcr) + ": the sha256 bank is not allocated");
    return std::vector<uint8_t>(values.digests[0].buffer, values.digests[0].buffer + values.digests[0].size);
}

void PcrTpm::pcr_extend(uint32_t pcr, const std::vector<uint8_t>& digest) {
    TPML_DIGEST_VALUES v = sha256_extend_values(pcr, digest);
    // The PCR's authValue is empty: a password session with an empty password.
    TSS2L_SYS_AUTH_COMMAND auths{};
    auths.count = 1;
    auths.auths[0].sessionHandle = TPM2_RH_PW;
    TSS2L_SYS_AUTH_RESPONSE rsp{};
    TSS2_RC rc = Tss2_Sys_PCR_Extend(S(sys_), TPM2_PCR_FIRST + pcr, &auths, &v, &rsp);
    if (rc != TSS2_RC_SUCCESS) throw_rc(tcti_, rc, "PCR_Extend " + std::to_string(pcr));
}

uint32_t PcrTpm::reset_count() {
    TPMS_TIME_INFO t{};
    TSS2_RC rc = Tss2_Sys_ReadClock(S(sys_), nullptr, &t, nullptr);
    if (rc != TSS2_RC_SUCCESS) throw_rc(tcti_, rc, "ReadClock");
    return t.clockInfo.resetCount;
}

}  // namespace trustme::tpm
