// RAII for OpenSSL objects, and error text from OpenSSL's error queue.
#pragma once
#include <memory>
#include <string>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace trustme::signing::ossl {

template <auto Fn>
struct Deleter {
    template <class T>
    void operator()(T* p) const noexcept { Fn(p); }
};

using Bio = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using Pkey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509_free>>;
using Crl = std::unique_ptr<X509_CRL, Deleter<X509_CRL_free>>;
using Store = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using StoreCtx = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using Cms = std::unique_ptr<CMS_ContentInfo, Deleter<CMS_ContentInfo_free>>;
using Name = std::unique_ptr<X509_NAME, Deleter<X509_NAME_free>>;
using Revoked = std::unique_ptr<X509_REVOKED, Deleter<X509_REVOKED_free>>;
using Int = std::unique_ptr<ASN1_INTEGER, Deleter<ASN1_INTEGER_free>>;
using Time = std::unique_ptr<ASN1_TIME, Deleter<ASN1_TIME_free>>;
using Bn = std::unique_ptr<BIGNUM, Deleter<BN_free>>;

struct CertStackFree {
    void operator()(STACK_OF(X509) * s) const noexcept { sk_X509_pop_free(s, X509_free); }
};
using CertStack = std::unique_ptr<STACK_OF(X509), CertStackFree>;

// The last OpenSSL error as text (and clear the queue), or `fallback`.
inline std::string last_error(const std::string& fallback = "OpenSSL error") {
    unsigned long e = ERR_peek_last_error();
    std::string out = fallback;
    if (e) {
        const char* r = ERR_reason_error_string(e);
        out = r ? r : ERR_error_string(e, nullptr);
    }
    ERR_clear_error();
    return out;
}

}  // namespace trustme::signing::ossl
