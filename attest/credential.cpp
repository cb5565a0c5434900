#include "attest/credential.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <string.h>
#include <tss2/tss2_mu.h>

#include <memory>

#include "base/error.hpp"
#include "signing/ossl.hpp"

namespace trustme::attest {
namespace {

namespace ossl = signing::ossl;

ossl::Cert parse_der(const std::vector<uint8_t>& der) {
    const unsigned char* p = der.data();
    ossl::Cert c(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (!c) fail("EK certificate: not a DER X.509 certificate");
    return c;
}

std::vector<uint8_t> hmac256(const std::vector<uint8_t>& key, const std::vector<uint8_t>& data) {
    std::vector<uint8_t> out(SHA256_DIGEST_LENGTH);
    unsigned int n = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), out.data(), &n);
    return out;
}

void be32(std::vector<uint8_t>& v, uint32_t x) {
    for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}

// TPM 2.0 Part 1, 11.4.10.2 KDFa (SP 800-108 counter mode with HMAC); the label includes its NUL.
std::vector<uint8_t> kdfa(const std::vector<uint8_t>& key, const std::string& label, const std::vector<uint8_t>& u,
                          const std::vector<uint8_t>& v, uint32_t bits) {
    std::vector<uint8_t> out;
    for (uint32_t i = 1; out.size() * 8 < bits; ++i) {
        std::vector<uint8_t> m;
        be32(m, i);
        m.insert(m.end(), label.begin(), label.end());
        m.push_back(0);
        m.insert(m.end(), u.begin(), u.end());
        m.insert(m.end(), v.begin(), v.end());
        be32(m, bits);
        auto h = hmac256(key, m);
        out.insert(out.end(), h.begin(), h.end());
    }
    out.resize(bits / 8);
    return out;
}

}  // namespace

tpm::AkPublic parse_ak_public(const std::vector<uint8_t>& public_area) {
    TPM2B_PUBLIC pub{};
    size_t off = 0;
    if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(public_area.data(), public_area.size(), &off, &pub) != TSS2_RC_SUCCESS ||
        off != public_area.size())
        fail("AK public area: not a marshalled TPM2B_PUBLIC");
    const auto& p = pub.publicArea;
    const TPMA_OBJECT need = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                             TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
    if (p.type != TPM2_ALG_ECC || p.nameAlg != TPM2_ALG_SHA256 || (p.objectAttributes & need) != need ||
        (p.objectAttributes & TPMA_OBJECT_DECRYPT) || p.parameters.eccDetail.curveID != TPM2_ECC_NIST_P256 ||
        p.parameters.eccDetail.scheme.scheme != TPM2_ALG_ECDSA ||
        p.parameters.eccDetail.scheme.details.ecdsa.hashAlg != TPM2_ALG_SHA256)
        fail("AK public area: not a restricted, TPM-resident ECDSA-SHA256 P-256 signing key");
    // Name = nameAlg || H(TPMT_PUBLIC) (TPM 2.0 Part 1, 16 "Names").
    std::vector<uint8_t> tp(sizeof(TPMT_PUBLIC));
    off = 0;
    if (Tss2_MU_TPMT_PUBLIC_Marshal(&p, tp.data(), tp.size(), &off) != TSS2_RC_SUCCESS) fail("AK public area: marshal");
    tpm::AkPublic out;
    out.public_area = public_area;
    out.name = {0x00, 0x0b};
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256(tp.data(), off, d);
    out.name.insert(out.name.end(), d, d + sizeof d);
    // PEM of the point.
    std::vector<uint8_t> point{0x04};
    for (const TPM2B_ECC_PARAMETER* c : {&p.unique.ecc.x, &p.unique.ecc.y}) {
        if (c->size > 32) fail("AK public area: bad point");
        point.insert(point.end(), 32 - c->size, 0);
        point.insert(point.end(), c->buffer, c->buffer + c->size);
    }
    ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("group", const_cast<char*>("prime256v1"), 0),
                           OSSL_PARAM_construct_octet_string("pub", point.data(), point.size()),
                           OSSL_PARAM_construct_end()};
    EVP_PKEY* raw = nullptr;
    if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1)
        fail("AK public area: the point is not on P-256");
    ossl::Pkey key(raw);
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_PUBKEY(bio.get(), key.get());
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    out.pem.assign(data, static_cast<size_t>(n));
    return out;
}

void verify_ek_certificate(const std::vector<uint8_t>& der, const std::vector<std::string>& ca_files) {
    if (ca_files.empty()) fail("EK certificate: no CA certificate given (--ek-ca)");
    ossl::Cert cert = parse_der(der);
    ossl::Store store(X509_STORE_new());
    for (const auto& f : ca_files)
        if (X509_STORE_load_file(store.get(), f.c_str()) != 1) fail(f + ": cannot load CA certificate(s)");
    ossl::StoreCtx ctx(X509_STORE_CTX_new());
    X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr);
    if (X509_verify_cert(ctx.get()) != 1)
        fail(std::string("EK certificate: ") + X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));
}

tpm::Credential make_credential(const std::vector<uint8_t>& ek_cert_der, const std::vector<uint8_t>& ak_name,
                                const std::vector<uint8_t>& secret) {
    if (secret.empty() || secret.size() > 32) fail("credential: secret must be 1..32 bytes");
    ossl::Cert cert = parse_der(ek_cert_der);
    EVP_PKEY* ek = X509_get0_pubkey(cert.get());
    if (!ek || EVP_PKEY_get_base_id(ek) != EVP_PKEY_RSA) fail("EK certificate: not an RSA key (RSA 2048 EK expected)");

    std::vector<uint8_t> seed(32);
    if (RAND_bytes(seed.data(), 32) != 1) fail("credential: RAND_bytes failed");
    // Seed to the EK: RSA-OAEP, SHA-256 (the EK's nameAlg), label "IDENTITY" with its NUL
    // (TPM 2.0 Part 1, B.10.4 "RSA Encryption of Salt").
    ossl::PkeyCtx pctx(EVP_PKEY_CTX_new(ek, nullptr));
    char* label = static_cast<char*>(OPENSSL_malloc(9));
    memcpy(label, "IDENTITY", 9);
    size_t enc_len = 0;
    if (!pctx || EVP_PKEY_encrypt_init(pctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(pctx.get(), EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx.get(), EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set0_rsa_oaep_label(pctx.get(), label, 9) != 1) {
        OPENSSL_free(label);
        fail("credential: RSA-OAEP setup failed");
    }
    if (EVP_PKEY_encrypt(pctx.get(), nullptr, &enc_len, seed.data(), seed.size()) != 1)
        fail("credential: RSA-OAEP failed");
    tpm::Credential out;
    out.encrypted_secret.resize(enc_len);
    if (EVP_PKEY_encrypt(pctx.get(), out.encrypted_secret.data(), &enc_len, seed.data(), seed.size()) != 1)
        fail("credential: RSA-OAEP failed");
    out.encrypted_secret.resize(enc_len);

    // encIdentity = AES-128-CFB(KDFa(seed, "STORAGE", name), IV 0) over TPM2B_DIGEST(secret).
    auto sym = kdfa(seed, "STORAGE", ak_name, {}, 128);
    std::vector<uint8_t> plain{static_cast<uint8_t>(secret.size() >> 8), static_cast<uint8_t>(secret.size())};
    plain.insert(plain.end(), secret.begin(), secret.end());
    std::vector<uint8_t> enc(plain.size());
    ossl::CipherCtx c(EVP_CIPHER_CTX_new());
    uint8_t iv[16] = {};
    int n1 = 0, n2 = 0;
    if (EVP_EncryptInit_ex(c.get(), EVP_aes_128_cfb128(), nullptr, sym.data(), iv) != 1 ||
        EVP_EncryptUpdate(c.get(), enc.data(), &n1, plain.data(), static_cast<int>(plain.size())) != 1 ||
        EVP_EncryptFinal_ex(c.get(), enc.data() + n1, &n2) != 1)
        fail("credential: AES-CFB failed");
    // outerHMAC = HMAC(KDFa(seed, "INTEGRITY"), encIdentity || name).
    auto hkey = kdfa(seed, "INTEGRITY", {}, {}, 256);
    std::vector<uint8_t> m = enc;
    m.insert(m.end(), ak_name.begin(), ak_name.end());
    auto mac = hmac256(hkey, m);
    out.credential_blob = {0x00, static_cast<uint8_t>(mac.size())};
    out.credential_blob.insert(out.credential_blob.end(), mac.begin(), mac.end());
    out.credential_blob.insert(out.credential_blob.end(), enc.begin(), enc.end());
    OPENSSL_cleanse(seed.data(), seed.size());
    return out;
}

}  // namespace trustme::attest
