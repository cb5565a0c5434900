#include "attest/tls.hpp"

#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <set>

#include "tpm/tpm.hpp"
#include "base/error.hpp"

namespace trustme::attest::tls {

struct Context::Allow {
    std::set<std::string> cns, spkis;
    bool empty() const { return cns.empty() && spkis.empty(); }
};

namespace {

std::string openssl_reason() {
    unsigned long e = ERR_get_error();
    std::string why =
        e ? ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "error " + std::to_string(e) : "no reason given";
    ERR_clear_error();
    return why;
}

std::string common_name(X509* cert) {
    X509_NAME* n = X509_get_subject_name(cert);
    int i = n ? X509_NAME_get_index_by_NID(n, NID_commonName, -1) : -1;
    if (i < 0) return "";
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i)));
    if (len < 0) return "";
    std::string s(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
    OPENSSL_free(utf8);
    return s;
}

std::string spki_sha256(X509* cert) {
    unsigned char* der = nullptr;
    int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    if (len <= 0) return "";
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256(der, static_cast<size_t>(len), d);
    OPENSSL_free(der);
    return tpm::to_hex(d, sizeof d);
}

// The identity the allow-list refused during this thread's last handshake (set by verify_peer, read by
// Context::failure on the same thread right after the handshake failed).
thread_local std::string t_refused;
int g_allow_index = -1;

// OpenSSL's verification callback, after each certificate of the chain: chain errors are OpenSSL's own
// (expired, unknown issuer, wrong purpose...); for the peer's own certificate (depth 0), the allow-list.
int verify_peer(int ok, X509_STORE_CTX* sctx) {
    if (!ok || X509_STORE_CTX_get_error_depth(sctx) != 0) return ok;
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(sctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
    const auto* allow = static_cast<const Context::Allow*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), g_allow_index));
    X509* cert = X509_STORE_CTX_get_current_cert(sctx);
    if (!allow || allow->empty() || allow->cns.count(common_name(cert)) || allow->spkis.count(spki_sha256(cert)))
        return 1;
    t_refused = Context::identity(cert);
    X509_STORE_CTX_set_error(sctx, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

}  // namespace

std::string Context::identity(X509* cert) {
    std::string cn = common_name(cert);
    return "CN=" + (cn.empty() ? std::string("(none)") : cn) + ", spki:" + spki_sha256(cert);
}

Context::Context(const Options& o, bool server) : allow_(std::make_unique<Allow>()) {
    if (o.cert.empty() || o.key.empty() || o.ca.empty())
        fail("--tls-cert, --tls-key and --tls-ca are needed together for TLS");
    for (const auto& a : o.allow) {
        if (a.rfind("cn:", 0) == 0 && a.size() > 3) {
            allow_->cns.insert(a.substr(3));
        } else if (a.rfind("spki:", 0) == 0 && a.size() == 5 + 64) {
            std::string h = a.substr(5);
            std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return std::tolower(c); });
            tpm::from_hex(h, "--tls-allow " + a);
            allow_->spkis.insert(h);
        } else {
            fail("--tls-allow " + a + ": expected cn:NAME or spki:<64 hex digits of the SHA-256 of the public key>");
        }
    }
    if (server && allow_->empty())
        fail("--tls-allow: serve with TLS needs the verifiers it answers (cn:NAME or spki:HEX, repeatable)");
    ctx_ = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx_) fail("TLS: " + openssl_reason());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
    // Our protocol announces its lengths, so a peer that closes without close_notify cannot cut a reply
    // unnoticed (the reader counts the bytes).
    SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_num_tickets(ctx_, 0);
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx_, o.cert.c_str()) != 1)
        fail("--tls-cert " + o.cert + ": " + openssl_reason());
    if (SSL_CTX_use_PrivateKey_file(ctx_, o.key.c_str(), SSL_FILETYPE_PEM) != 1)
        fail("--tls-key " + o.key + ": " + openssl_reason());
    if (SSL_CTX_check_private_key(ctx_) != 1) fail("--tls-key " + o.key + ": does not match --tls-cert " + o.cert);
    if (SSL_CTX_load_verify_file(ctx_, o.ca.c_str()) != 1) fail("--tls-ca " + o.ca + ": " + openssl_reason());
    // The peer's certificate must be one for its role (RFC 5280 4.2.1.12: clientAuth / serverAuth), so a
    // code-signing certificate of the same PKI is no TLS identity. (OpenSSL's TLS code sets this purpose
    // by default too; said here so that it does not depend on that.)
    SSL_CTX_set_purpose(ctx_, server ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER);
    if (g_allow_index < 0) g_allow_index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    SSL_CTX_set_ex_data(ctx_, g_allow_index, allow_.get());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), verify_peer);
}

Context::~Context() { SSL_CTX_free(ctx_); }

Ssl Context::wrap(int fd) const {
    Ssl s(SSL_new(ctx_));
    if (!s || SSL_set_fd(s.get(), fd) != 1) fail("TLS: " + openssl_reason());
    return s;
}

std::string Context::failure(SSL* ssl, int ret) {
    std::string refused;
    refused.swap(t_refused);
    long v = SSL_get_verify_result(ssl);
    if (v == X509_V_ERR_APPLICATION_VERIFICATION && !refused.empty()) {
        ERR_clear_error();
        return "certificate " + refused + " is not on the allow-list";
    }
    if (v != X509_V_OK) {
        ERR_clear_error();
        return std::string("certificate: ") + X509_verify_cert_error_string(v);
    }
    int e = SSL_get_error(ssl, ret);
    if ((e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) && ERR_peek_error() == 0)
        return "connection closed during the TLS handshake";
    return openssl_reason();
}

}  // namespace trustme::attest::tls
