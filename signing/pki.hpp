// The integrated PKI of `trustme-sign pki` and the CMS signature over a manifest.
#pragma once
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "signing/cms_cache.hpp"
#include "signing/policy.hpp"

namespace trustme::signing {

struct KeySpec {
    std::string algo = "ec";  // "ec" (ECDSA P-256) or "rsa" (bits >= 3072)
    int rsa_bits = 3072;
};

// Parse "ec", "p256", "rsa", "rsa3072", "rsa4096"; throws on anything weaker than RSA-3072.
KeySpec parse_key_spec(const std::string& s);

struct Validity {
    std::optional<time_t> not_before, not_after;  // default: now - 5 min, now + days
    int days = 365;
};

// pki init: DIR/root-ca.{pem,key}, DIR/signing-ca.{pem,key}, DIR/crl.pem (empty, by the signing CA).
void pki_init(const std::string& dir, const KeySpec& k, int ca_days, const std::string& cn_prefix);

// pki issue: DIR/NAME.{pem,key} signed by the signing CA; DIR/NAME-chain.pem (signing CA). eku: OpenSSL
// short name ("codeSigning") or "none" (tests of the EKU check).
void pki_issue(const std::string& dir, const std::string& name, const KeySpec& k, const Validity& v,
               const std::string& eku = "codeSigning");

// pki revoke: add DIR/NAME.pem's serial to DIR/crl.pem and re-sign it.
void pki_revoke(const std::string& dir, const std::string& name);

// Detached CMS SignedData (DER) over `data` with the key and certificate in the named PEM files, carrying
// the signer certificate and the certificates of `chain_path` (may be empty).
std::string cms_sign(const std::string& data, const std::string& key_path, const std::string& cert_path,
                     const std::string& chain_path);

// The file of the libcrypto this process uses (dladdr), for the verdict cache (cms_cache.hpp); "" if unknown.
const std::string& libcrypto_path();

// Verify a detached CMS signature against the policy's anchors and CRLs (`trust`, read by
// read_trust_material): the signature over its signed attributes, the chain to an anchor, validity dates,
// revocation, the codeSigning EKU. The content itself is not needed: the verdict names the SHA-256 the
// signer signed (messageDigest), which the caller compares with the manifest it reads afterwards, so an
// unsigned manifest is refused before it is read. `sig_name` names the signature file in errors.
Verdict cms_verify(const std::string& sig, const std::string& sig_name, const trustme::signing::policy::Policy& policy,
                   const TrustMaterial& trust);

// For `inspect`: the signer certificates in a CMS blob, without verifying anything.
std::vector<Signer> cms_signers(const std::string& sig, const std::string& sig_name);

}  // namespace trustme::signing
