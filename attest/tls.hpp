// Optional mutual TLS between `serve` and its verifiers, with certificates of our PKI (`trustme-sign pki
// issue --purpose client|server`). Both ends present a certificate that must chain to the CA the other
// end names (--tls-ca), carry the extended key usage of its role (clientAuth for a verifier, serverAuth
// for the attester; RFC 5280, 4.2.1.12) and, when an allow-list is given, be on it (--tls-allow). The
// server requires the allow-list: a verifier whose certificate is not on it is refused during the
// handshake and never gets to send a request.
//
// TLS 1.3 only (both ends are ours), no session tickets, no renegotiation (TLS 1.3 has none).
#pragma once
#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "base/owned.hpp"

namespace trustme::attest::tls {

struct Options {
    std::string cert;                // PEM: the certificate, optionally followed by its issuing CAs
    std::string key;                 // PEM: its private key
    std::string ca;                  // PEM: the CA certificate(s) the peer's certificate must chain to
    std::vector<std::string> allow;  // peer identities: "cn:<subject common name>" or "spki:<hex SHA-256 of
                                     // the DER SubjectPublicKeyInfo>"; empty: any certificate of the CA
    bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty() || !allow.empty(); }
};

using Ssl = Owned<SSL, SSL_free>;

class Context {
public:
    // Loads and checks the files and the allow-list. Errors name the option and the file.
    // `server`: the attester's side (expects clientAuth peers and requires an allow-list).
    Context(const Options& o, bool server);
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    // A TLS connection over `fd` (not owned): the caller drives the handshake (SSL_accept/SSL_connect).
    Ssl wrap(int fd) const;

    // Why the handshake on `ssl` failed, in one line: the verification error or allow-list refusal when
    // there was one, else OpenSSL's reason (consumes the thread's OpenSSL error queue).
    static std::string failure(SSL* ssl, int ret);

    // "CN=<name>, spki:<hex>" of a certificate, for messages.
    static std::string identity(X509* cert);

    struct Allow;  // the parsed allow-list (tls.cpp)

private:
    SSL_CTX* ctx_ = nullptr;
    std::unique_ptr<Allow> allow_;
};

}  // namespace trustme::attest::tls
