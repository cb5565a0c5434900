// The TPM commands of a measurement -- Startup (simulators), ReadClock, PCR_Read, PCR_Extend -- through
// SAPI (tss2-sys). The measure hook runs on every container start; ESAPI would load libcrypto (and
// libtss2-esys) for sessions and key handling these commands never use. A PcrTpm is one connection
// (tpm/tcti.hpp), like a Tpm, and the same rule holds: keep it short-lived.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <tss2/tss2_tpm2_types.h>

namespace trustme::tpm {

class Tcti;

class PcrTpm {
public:
    // Connects and, for simulators, sends TPM2_Startup(CLEAR) if nobody has. TpmError(NoTpm) when the
    // TPM cannot be reached.
    explicit PcrTpm(const std::string& tcti);
    ~PcrTpm();
    PcrTpm(const PcrTpm&) = delete;
    PcrTpm& operator=(const PcrTpm&) = delete;

    std::vector<uint8_t> pcr_read(uint32_t pcr);  // sha256 bank
    void pcr_extend(uint32_t pcr, const std::vector<uint8_t>& sha256_digest);
    uint32_t reset_count();  // TPMS_CLOCK_INFO.resetCount, as Tpm::reset_count

private:
    std::string tcti_;
    std::unique_ptr<Tcti> transport_;
    std::unique_ptr<uint8_t[]> sys_;  // TSS2_SYS_CONTEXT
};

// Selection of `pcrs` in the sha256 bank (PCR 0..23, the PC Client set); Error for a PCR above 23.
TPML_PCR_SELECTION pcr_selection(const std::vector<uint32_t>& pcrs);
// The sha256 extend argument for `digest` (32 bytes, else Error).
TPML_DIGEST_VALUES sha256_extend_values(uint32_t pcr, const std::vector<uint8_t>& digest);

// swtpm and mssim need TPM2_Startup from their client; a device has had it from the firmware.
bool is_simulator(const std::string& tcti);
// TpmError for a tss2 return code: "TPM (<tcti>): <what>: <cause in words>", Cause from the TPM's code.
[[noreturn]] void throw_rc(const std::string& tcti, uint32_t rc, const std::string& what);

}  // namespace trustme::tpm
