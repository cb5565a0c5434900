// Verifier side of binding the AK to the TPM's endorsement key (EK): check the EK certificate's chain,
// check the AK's public area is a restricted, TPM-resident signing key, and make a credential that only
// the TPM holding both the EK and the AK can activate (TPM2_MakeCredential done in software, so the
// verifier needs no TPM). The attester answers with Tpm::ak_activate_credential.
#pragma once
#include <string>
#include <vector>

#include "tpm/tpm.hpp"

namespace trustme::attest {

// Parse and check a marshalled TPM2B_PUBLIC as an AK: ECC P-256, ECDSA-SHA256, restricted|sign|fixedTPM|
// fixedParent|sensitiveDataOrigin. Computes its name and PEM from the structure itself.
tpm::AkPublic parse_ak_public(const std::vector<uint8_t>& public_area);

// Verify `ek_cert_der` against the CA certificate files (PEM; root and intermediates). One-line errors.
void verify_ek_certificate(const std::vector<uint8_t>& ek_cert_der, const std::vector<std::string>& ca_files);

// TPM 2.0 Part 1, 24 "Credential Protection": seed encrypted to the EK (RSA-OAEP-SHA256, label
// "IDENTITY"), symmetric key KDFa(seed, "STORAGE", AK name), HMAC key KDFa(seed, "INTEGRITY").
tpm::Credential make_credential(const std::vector<uint8_t>& ek_cert_der, const std::vector<uint8_t>& ak_name,
                                const std::vector<uint8_t>& secret);

}  // namespace trustme::attest
