// The transport under ESAPI/SAPI: a TSS2_TCTI_CONTEXT for a TCTI string.
//
// "swtpm:path=SOCK" gets our own TCTI that keeps one connection to swtpm's server socket for its whole
// life. tpm2-tss's swtpm TCTI connects anew for every command (and once more at init for a "sanity"
// connect, plus the control channel to set the locality): 5 connections for the 4 commands of one
// measurement, each an accept/close in swtpm. Every other TCTI string ("device:/dev/tpmrm0", "mssim:...",
// "swtpm:host=...,port=...") goes through tss2-tctildr as before; the device TCTI opens its device once.
//
// One connection also means what tpm.hpp says of a Tpm: swtpm serves one client at a time, so while a
// Tpm is open every other process using that swtpm waits. The measure hook takes the log lock before it
// connects for that reason (docs/attestation.md, "Consistency of log and PCR").
#pragma once
#include <string>

#include <tss2/tss2_tcti.h>

namespace trustme::tpm {

class Tcti {
public:
    // Throws TpmError(NoTpm, "TPM (tcti): ...") when it cannot be loaded or reached.
    explicit Tcti(const std::string& tcti);
    ~Tcti();
    Tcti(const Tcti&) = delete;
    Tcti& operator=(const Tcti&) = delete;

    TSS2_TCTI_CONTEXT* get() const noexcept { return ctx_; }

private:
    TSS2_TCTI_CONTEXT* ctx_ = nullptr;
    bool own_ = false;  // our single-connection swtpm TCTI (else tctildr's)
};

}  // namespace trustme::tpm
