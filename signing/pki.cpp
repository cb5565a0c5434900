#include "signing/pki.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/files.hpp"
#include "signing/ossl.hpp"
#include "signing/sha256.hpp"

namespace trustme::signing {
namespace {

using namespace ossl;

enum class Kind { Root, Intermediate, Leaf };

constexpr int kCrlDays = 365;  // pki revoke re-signs; with CRLs in the policy an expired CRL refuses everything

std::string join(const std::string& dir, const std::string& name) { return dir + "/" + name; }

Pkey generate_key(const KeySpec& k) {
    EVP_PKEY* p = k.algo == "rsa" ? EVP_RSA_gen(static_cast<unsigned>(k.rsa_bits)) : EVP_EC_gen("P-256");
    if (!p) fail("key generation: " + last_error());
    return Pkey(p);
}

// Keys are written 0600 and never overwritten: losing a CA key to a typo is not recoverable.
void write_new(const std::string& path, const std::string& data, mode_t mode) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!fd) fail_errno(path);
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail_errno("write " + path);
        off += static_cast<size_t>(n);
    }
}

void replace_file(const std::string& path, const std::string& data) {
    auto slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
    std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d) fail_errno(dir);
    write_file_atomic(d.get(), name, data, 0644);
}

std::string bio_string(BIO* b) {
    char* p = nullptr;
    long n = BIO_get_mem_data(b, &p);
    return std::string(p, static_cast<size_t>(n));
}

std::string key_pem(EVP_PKEY* k) {
    Bio b(BIO_new(BIO_s_mem()));
    if (!PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr))
        fail("write key: " + last_error());
    return bio_string(b.get());
}

std::string cert_pem(X509* c) {
    Bio b(BIO_new(BIO_s_mem()));
    if (!PEM_write_bio_X509(b.get(), c)) fail("write certificate: " + last_error());
    return bio_string(b.get());
}

Pkey load_key(const std::string& path) {
    std::string text = read_file(path);
    Bio b(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    EVP_PKEY* k = PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr);
    if (!k) fail(path + ": not a PEM private key (" + last_error() + ")");
    return Pkey(k);
}

// All certificates of a PEM file (or one DER certificate).
std::vector<Cert> load_certs_text(const std::string& text, const std::string& name) {
    std::vector<Cert> out;
    Bio b(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    while (X509* c = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
    ERR_clear_error();
    if (out.empty()) {
        const unsigned char* p = reinterpret_cast<const unsigned char*>(text.data());
        if (X509* c = d2i_X509(nullptr, &p, static_cast<long>(text.size()))) out.emplace_back(c);
        ERR_clear_error();
    }
    if (out.empty()) fail(name + ": no certificate (PEM or DER) found");
    return out;
}

std::vector<Cert> load_certs(const std::string& path) { return load_certs_text(read_file(path), path); }

Cert load_cert(const std::string& path) { return std::move(load_certs(path).front()); }

std::vector<Crl> load_crls_text(const std::string& text, const std::string& name) {
    std::vector<Crl> out;
    Bio b(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    while (X509_CRL* c = PEM_read_bio_X509_CRL(b.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
    ERR_clear_error();
    if (out.empty()) {
        const unsigned char* p = reinterpret_cast<const unsigned char*>(text.data());
        if (X509_CRL* c = d2i_X509_CRL(nullptr, &p, static_cast<long>(text.size()))) out.emplace_back(c);
        ERR_clear_error();
    }
    if (out.empty()) fail(name + ": no CRL (PEM or DER) found");
    return out;
}

std::vector<Crl> load_crls(const std::string& path) { return load_crls_text(read_file(path), path); }

// Seconds since the epoch, or nullopt (then the verdict is simply not cached: never a refusal).
std::optional<time_t> asn1_epoch(const ASN1_TIME* t) {
    struct tm tm {};
    if (!t || !ASN1_TIME_to_tm(t, &tm)) {
        ERR_clear_error();
        return std::nullopt;
    }
    return timegm(&tm);
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (!ext) fail(std::string("certificate extension ") + OBJ_nid2sn(nid) + "=" + value + ": " + last_error());
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

Int random_serial() {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) fail("random serial: " + last_error());
    b[0] &= 0x7f;  // RFC 5280 §4.1.2.2: positive, at most 20 octets
    b[0] |= 0x01;  // and never zero
    Bn bn(BN_bin2bn(b, sizeof b, nullptr));
    return Int(BN_to_ASN1_INTEGER(bn.get(), nullptr));
}

// A certificate to make: whose key and name, what it may do, for how long.
struct CertSpec {
    EVP_PKEY* key;
    std::string cn;
    Kind kind;
    const Validity& validity;
    std::string eku = "none";  // a leaf's extended key usage ("none": no extension)
};

// `spec` signed by `issuer` with `issuer_key`; no issuer: self-signed with issuer_key.
Cert make_cert(const CertSpec& spec, X509* issuer, EVP_PKEY* issuer_key) {
    const Validity& v = spec.validity;
    Cert c(X509_new());
    X509_set_version(c.get(), 2);  // v3
    Int serial = random_serial();
    X509_set_serialNumber(c.get(), serial.get());
    X509_NAME* name = X509_get_subject_name(c.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("trustme"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1,
                               -1, 0);
    X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
    time_t now = ::time(nullptr);
    time_t nb = v.not_before.value_or(now - 300);  // 5 minutes of slack for clocks that disagree a little
    time_t na = v.not_after.value_or(now + static_cast<time_t>(v.days) * 86400);
    if (na <= nb) fail("certificate validity: not-after must be later than not-before");
    if (!ASN1_TIME_set(X509_getm_notBefore(c.get()), nb) || !ASN1_TIME_set(X509_getm_notAfter(c.get()), na))
        fail("certificate validity: " + last_error());
    X509_set_pubkey(c.get(), spec.key);
    X509* iss = issuer ? issuer : c.get();
    add_ext(c.get(), iss, NID_subject_key_identifier, "hash");
    add_ext(c.get(), iss, NID_authority_key_identifier, "keyid:always");
    switch (spec.kind) {
        case Kind::Root:
            add_ext(c.get(), iss, NID_basic_constraints, "critical,CA:TRUE");
            add_ext(c.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign");
            break;
        case Kind::Intermediate:
            add_ext(c.get(), iss, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
            add_ext(c.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign");
            break;
        case Kind::Leaf:
            add_ext(c.get(), iss, NID_basic_constraints, "critical,CA:FALSE");
            add_ext(c.get(), iss, NID_key_usage, "critical,digitalSignature");
            if (spec.eku != "none") add_ext(c.get(), iss, NID_ext_key_usage, spec.eku.c_str());
            break;
    }
    if (!X509_sign(c.get(), issuer_key, EVP_sha256())) fail("sign certificate: " + last_error());
    return c;
}

struct RevokedEntry {
    Int serial;
    time_t when;
};

void write_crl(const std::string& dir, X509* ca, EVP_PKEY* ca_key, const std::vector<RevokedEntry>& revoked,
               long number) {
    Crl crl(X509_CRL_new());
    X509_CRL_set_version(crl.get(), 1);  // v2
    X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca));
    time_t now = ::time(nullptr);
    Time last(ASN1_TIME_set(nullptr, now)), next(ASN1_TIME_set(nullptr, now + kCrlDays * 86400L));
    X509_CRL_set1_lastUpdate(crl.get(), last.get());
    X509_CRL_set1_nextUpdate(crl.get(), next.get());
    for (const auto& r : revoked) {
        X509_REVOKED* x = X509_REVOKED_new();
        X509_REVOKED_set_serialNumber(x, r.serial.get());
        Time t(ASN1_TIME_set(nullptr, r.when));
        X509_REVOKED_set_revocationDate(x, t.get());
        X509_CRL_add0_revoked(crl.get(), x);
    }
    Int num(ASN1_INTEGER_new());
    ASN1_INTEGER_set(num.get(), number);
    X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, num.get(), 0, 0);
    X509_CRL_sort(crl.get());
    if (!X509_CRL_sign(crl.get(), ca_key, EVP_sha256())) fail("sign CRL: " + last_error());
    Bio b(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509_CRL(b.get(), crl.get());
    replace_file(join(dir, "crl.pem"), bio_string(b.get()));
}

std::string name_rfc2253(const X509_NAME* n) {
    Bio b(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(b.get(), n, 0, XN_FLAG_RFC2253);
    return bio_string(b.get());
}

std::string time_text(const ASN1_TIME* t) {
    Bio b(BIO_new(BIO_s_mem()));
    ASN1_TIME_print(b.get(), t);
    return bio_string(b.get());
}

std::string serial_hex(X509* c) {
    Bn bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), nullptr));
    char* h = BN_bn2hex(bn.get());
    std::string s = h ? h : "";
    OPENSSL_free(h);
    return s;
}

Signer describe(X509* c) {
    return Signer{name_rfc2253(X509_get_subject_name(c)), name_rfc2253(X509_get_issuer_name(c)), serial_hex(c),
                  time_text(X509_get0_notAfter(c))};
}

void check_name(const std::string& name) {
    if (name.empty() || name.size() > 64 || name.find('/') != std::string::npos || name[0] == '.' ||
        !std::all_of(name.begin(), name.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
        }))
        fail("--name " + name + ": use letters, digits, '-', '_', '.' (no '/', not starting with '.')");
}

Cms parse_cms(const std::string& sig, const std::string& sig_name) {
    if (sig.empty()) fail(sig_name + ": empty signature");
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    CMS_ContentInfo* cms = d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(sig.size()));
    if (!cms) {
        // Also accept PEM ("-----BEGIN CMS-----"), as `openssl cms -outform PEM` writes it.
        Bio b(BIO_new_mem_buf(sig.data(), static_cast<int>(sig.size())));
        cms = PEM_read_bio_CMS(b.get(), nullptr, nullptr, nullptr);
    } else if (p != reinterpret_cast<const unsigned char*>(sig.data()) + sig.size()) {
        CMS_ContentInfo_free(cms);
        ERR_clear_error();
        fail(sig_name + ": trailing bytes after the CMS signature");
    }
    if (!cms) {
        ERR_clear_error();
        fail(sig_name + ": not a CMS signature (truncated or garbage)");
    }
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        CMS_ContentInfo_free(cms);
        fail(sig_name + ": not a CMS SignedData");
    }
    return Cms(cms);
}

Store build_store(const trustme::signing::policy::Policy& pol, const TrustMaterial& trust) {
    const std::string origin = pol.path.empty() ? "policy" : pol.path;
    Store store(X509_STORE_new());
    for (const auto& f : trust.anchors) {
        std::vector<Cert> certs;
        try {
            certs = load_certs_text(f.bytes, f.path);
        } catch (const Error& e) {
            throw Error(origin + ": trust_anchors: " + e.what(), e.code());
        }
        for (auto& c : certs) X509_STORE_add_cert(store.get(), c.get());
    }
    for (const auto& f : trust.crls) {
        std::vector<Crl> crls;
        try {
            crls = load_crls_text(f.bytes, f.path);
        } catch (const Error& e) {
            throw Error(origin + ": crls: " + e.what(), e.code());
        }
        for (auto& c : crls) X509_STORE_add_crl(store.get(), c.get());
    }
    unsigned long flags = X509_V_FLAG_X509_STRICT;
    // An anchor may be an intermediate (the policy trusts exactly what it names).
    flags |= X509_V_FLAG_PARTIAL_CHAIN;
    // With CRLs configured, the signer's issuer must have one: a missing CRL is then an error, not a pass.
    if (!pol.crls.empty()) flags |= X509_V_FLAG_CRL_CHECK;
    X509_STORE_set_flags(store.get(), flags);
    // Security level 3 = 128-bit security: RSA >= 3072, ECDSA >= P-256, no SHA-1 (SSL_CTX_set_security_level(3)).
    X509_VERIFY_PARAM_set_auth_level(X509_STORE_get0_param(store.get()), 3);
    return store;
}

}  // namespace

const std::string& libcrypto_path() {
    static const std::string path = [] {
        Dl_info info{};
        if (::dladdr(reinterpret_cast<void*>(&OpenSSL_version), &info) == 0 || !info.dli_fname) return std::string();
        char real[PATH_MAX];
        return ::realpath(info.dli_fname, real) ? std::string(real) : std::string();
    }();
    return path;
}

KeySpec parse_key_spec(const std::string& s) {
    KeySpec k;
    if (s == "ec" || s == "p256" || s == "ecdsa" || s == "ecdsa-p256") return k;
    if (s == "rsa") {
        k.algo = "rsa";
        return k;
    }
    if (s.starts_with("rsa")) {
        int bits = std::atoi(s.c_str() + 3);
        if (bits < 3072 || bits > 16384) fail("--algo " + s + ": RSA needs 3072..16384 bits");
        k.algo = "rsa";
        k.rsa_bits = bits;
        return k;
    }
    fail("--algo " + s + ": use ec (ECDSA P-256) or rsa3072/rsa4096");
}

void pki_init(const std::string& dir, const KeySpec& k, int ca_days, const std::string& cn_prefix) {
    if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) fail_errno(dir);
    for (const char* f : {"root-ca.key", "signing-ca.key"})
        if (path_exists(join(dir, f))) fail(join(dir, f) + ": exists (refusing to replace a CA key)");
    Validity v;
    v.days = ca_days;
    Pkey root_key = generate_key(k), ca_key = generate_key(k);
    Cert root = make_cert({root_key.get(), cn_prefix + " root CA", Kind::Root, v}, nullptr, root_key.get());
    Cert ca = make_cert({ca_key.get(), cn_prefix + " signing CA", Kind::Intermediate, v}, root.get(), root_key.get());
    write_new(join(dir, "root-ca.key"), key_pem(root_key.get()), 0600);
    write_new(join(dir, "signing-ca.key"), key_pem(ca_key.get()), 0600);
    replace_file(join(dir, "root-ca.pem"), cert_pem(root.get()));
    replace_file(join(dir, "signing-ca.pem"), cert_pem(ca.get()));
    write_crl(dir, ca.get(), ca_key.get(), {}, 1);
}

void pki_issue(const std::string& dir, const std::string& name, const KeySpec& k, const Validity& v,
               const std::string& eku) {
    check_name(name);
    if (eku != "none" && OBJ_sn2nid(eku.c_str()) == NID_undef) fail("--eku " + eku + ": unknown extended key usage");
    Cert ca = load_cert(join(dir, "signing-ca.pem"));
    Pkey ca_key = load_key(join(dir, "signing-ca.key"));
    if (path_exists(join(dir, name + ".key"))) fail(join(dir, name + ".key") + ": exists (choose another --name)");
    Pkey key = generate_key(k);
    Cert c = make_cert({key.get(), name, Kind::Leaf, v, eku}, ca.get(), ca_key.get());
    write_new(join(dir, name + ".key"), key_pem(key.get()), 0600);
    replace_file(join(dir, name + ".pem"), cert_pem(c.get()));
    replace_file(join(dir, name + "-chain.pem"), cert_pem(ca.get()));
}

void pki_revoke(const std::string& dir, const std::string& name) {
    check_name(name);
    Cert ca = load_cert(join(dir, "signing-ca.pem"));
    Pkey ca_key = load_key(join(dir, "signing-ca.key"));
    Cert victim = load_cert(join(dir, name + ".pem"));
    std::vector<RevokedEntry> revoked;
    long number = 1;
    std::string crl_path = join(dir, "crl.pem");
    if (path_exists(crl_path)) {
        auto crls = load_crls(crl_path);
        X509_CRL* old = crls.front().get();
        if (STACK_OF(X509_REVOKED)* rs = X509_CRL_get_REVOKED(old)) {
            for (int i = 0; i < sk_X509_REVOKED_num(rs); ++i) {
                X509_REVOKED* r = sk_X509_REVOKED_value(rs, i);
                if (ASN1_INTEGER_cmp(X509_REVOKED_get0_serialNumber(r), X509_get0_serialNumber(victim.get())) == 0)
                    fail(join(dir, name + ".pem") + ": already revoked");
                time_t when = ::time(nullptr);
                struct tm tm {};
                if (ASN1_TIME_to_tm(X509_REVOKED_get0_revocationDate(r), &tm)) when = timegm(&tm);
                revoked.push_back({Int(ASN1_INTEGER_dup(X509_REVOKED_get0_serialNumber(r))), when});
            }
        }
        if (auto* n = static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(old, NID_crl_number, nullptr, nullptr))) {
            number = ASN1_INTEGER_get(n) + 1;
            ASN1_INTEGER_free(n);
        }
    }
    revoked.push_back({Int(ASN1_INTEGER_dup(X509_get0_serialNumber(victim.get()))), ::time(nullptr)});
    write_crl(dir, ca.get(), ca_key.get(), revoked, number);
}

std::string cms_sign(const std::string& data, const std::string& key_path, const std::string& cert_path,
                     const std::string& chain_path) {
    Pkey key = load_key(key_path);
    Cert cert = load_cert(cert_path);
    if (X509_check_private_key(cert.get(), key.get()) != 1) fail(key_path + ": does not match " + cert_path);
    CertStack chain(sk_X509_new_null());
    if (!chain_path.empty())
        for (auto& c : load_certs(chain_path)) sk_X509_push(chain.get(), c.release());
    Bio in(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
    // CMS_BINARY: sign the bytes as they are (no MIME newline canonicalisation); CMS_DETACHED: the manifest
    // travels next to the signature, not inside it.
    Cms cms(CMS_sign(cert.get(), key.get(), chain.get(), in.get(), CMS_DETACHED | CMS_BINARY | CMS_NOSMIMECAP));
    if (!cms) fail("CMS sign: " + last_error());
    Bio out(BIO_new(BIO_s_mem()));
    if (!i2d_CMS_bio(out.get(), cms.get())) fail("CMS encode: " + last_error());
    return bio_string(out.get());
}

Verdict cms_verify(const std::string& sig, const std::string& sig_name, const trustme::signing::policy::Policy& policy,
                   const TrustMaterial& trust) {
    Store store = build_store(policy, trust);
    Cms cms = parse_cms(sig, sig_name);
    if (!CMS_is_detached(cms.get())) fail(sig_name + ": not a detached signature");
    if (sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms.get())) != 1) fail(sig_name + ": expected exactly one signer");
    // Step 1: the signature over the signed attributes (the chain is judged below, with our own messages).
    // The content is not given (CMS_NO_CONTENT_VERIFY, an empty detached content): the messageDigest
    // attribute, which that signature covers, is what the caller compares with the manifest's SHA-256
    // (RFC 5652 §5.4: with signed attributes, the signature is over them and they carry the content's digest).
    CMS_SignerInfo* si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms.get()), 0);
    if (CMS_signed_get_attr_count(si) <= 0) fail(sig_name + ": no signed attributes (no message digest to check)");
    X509_ALGOR* digest_alg = nullptr;
    CMS_SignerInfo_get0_algs(si, nullptr, nullptr, &digest_alg, nullptr);
    if (!digest_alg || OBJ_obj2nid(digest_alg->algorithm) != NID_sha256)
        fail(sig_name + ": digest algorithm is not SHA-256");
    const auto* md = static_cast<const ASN1_OCTET_STRING*>(
        CMS_signed_get0_data_by_OBJ(si, OBJ_nid2obj(NID_pkcs9_messageDigest), -3, V_ASN1_OCTET_STRING));
    if (!md || ASN1_STRING_length(md) != 32) fail(sig_name + ": malformed message digest attribute");
    Bio none(BIO_new_mem_buf("", 0));
    if (CMS_verify(cms.get(), nullptr, store.get(), none.get(), nullptr,
                   CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY | CMS_NO_CONTENT_VERIFY) != 1)
        fail(sig_name + ": signature is invalid or malformed (" + last_error() + ")");
    std::string signed_sha256 = to_hex(ASN1_STRING_get0_data(md), 32);
    STACK_OF(X509)* signers = CMS_get0_signers(cms.get());
    if (!signers || sk_X509_num(signers) != 1) {
        if (signers) sk_X509_free(signers);
        fail(sig_name + ": signer certificate not included");
    }
    X509* signer = sk_X509_value(signers, 0);
    X509_up_ref(signer);
    sk_X509_free(signers);
    Cert signer_cert(signer);
    Signer who = describe(signer);

    // Step 2: the chain to a policy anchor, at the current time, with CRLs.
    CertStack untrusted(CMS_get1_certs(cms.get()));
    StoreCtx ctx(X509_STORE_CTX_new());
    if (!X509_STORE_CTX_init(ctx.get(), store.get(), signer, untrusted.get()))
        fail("X509_STORE_CTX_init: " + last_error());
    if (X509_verify_cert(ctx.get()) != 1) {
        int err = X509_STORE_CTX_get_error(ctx.get());
        X509* bad = X509_STORE_CTX_get_current_cert(ctx.get());
        std::string whom = bad ? name_rfc2253(X509_get_subject_name(bad)) : who.subject;
        std::string why = X509_verify_cert_error_string(err);
        if (err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
            err == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN || err == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT) {
            // Name the signer; say where its chain stopped.
            why = "not issued by a trust anchor of the policy (" + why + ": " + whom + ")";
            whom = who.subject;
        }
        ERR_clear_error();
        fail(sig_name + ": certificate " + whom + ": " + why);
    }
    // Step 3: what the signer may sign. OpenSSL 3.0 has no code-signing purpose (X509_PURPOSE_CODE_SIGN
    // arrived in 3.2), so the EKU is checked here: RFC 5280 §4.2.1.12 id-kp-codeSigning.
    uint32_t xf = X509_get_extension_flags(signer);
    if (!(xf & EXFLAG_XKUSAGE) || !(X509_get_extended_key_usage(signer) & XKU_CODE_SIGN))
        fail(sig_name + ": certificate " + who.subject + ": lacks the codeSigning extended key usage");
    if ((xf & EXFLAG_KUSAGE) && !(X509_get_key_usage(signer) & KU_DIGITAL_SIGNATURE))
        fail(sig_name + ": certificate " + who.subject + ": key usage does not allow digitalSignature");

    // How long this verdict holds: X509_verify_cert checked every certificate of the chain it built, and
    // (with CRL checking) the CRL of the signer's issuer, against the current time. Every CRL of the
    // policy bounds it, used or not: a cached verdict may end early, never late.
    Verdict v{std::move(who), 0, std::numeric_limits<time_t>::max(), std::move(signed_sha256)};
    bool bounded = true;
    auto from = [&](const ASN1_TIME* t) {
        auto e = asn1_epoch(t);
        if (e) v.valid_from = std::max(v.valid_from, *e);
        else bounded = false;
    };
    auto until = [&](const ASN1_TIME* t) {
        auto e = asn1_epoch(t);
        if (e) v.valid_until = std::min(v.valid_until, *e);
        else bounded = false;
    };
    STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
    for (int i = 0; chain && i < sk_X509_num(chain); ++i) {
        X509* c = sk_X509_value(chain, i);
        from(X509_get0_notBefore(c));
        until(X509_get0_notAfter(c));
    }
    STACK_OF(X509_OBJECT)* objs = X509_STORE_get0_objects(store.get());
    for (int i = 0; objs && i < sk_X509_OBJECT_num(objs); ++i) {
        X509_CRL* crl = X509_OBJECT_get0_X509_CRL(sk_X509_OBJECT_value(objs, i));
        if (!crl) continue;
        from(X509_CRL_get0_lastUpdate(crl));
        if (const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl)) until(next);
    }
    // Nothing to bound it by, or a time we could not read: valid for no time at all, so never cached.
    if (!bounded || !chain || sk_X509_num(chain) == 0) v.valid_until = v.valid_from;
    return v;
}

std::vector<Signer> cms_signers(const std::string& sig, const std::string& sig_name) {
    Cms cms = parse_cms(sig, sig_name);
    CertStack certs(CMS_get1_certs(cms.get()));
    std::vector<Signer> out;
    for (int i = 0; certs && i < sk_X509_num(certs.get()); ++i) out.push_back(describe(sk_X509_value(certs.get(), i)));
    return out;
}

}  // namespace trustme::signing
