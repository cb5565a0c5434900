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

#include "base/owned.hpp"

namespace trustme::signing::ossl {

using Bio = Owned<BIO, BIO_free_all>;
using Pkey = Owned<EVP_PKEY, EVP_PKEY_free>;
using Cert = Owned<X509, X509_free>;
using Crl = Owned<X509_CRL, X509_CRL_free>;
using Store = Owned<X509_STORE, X509_STORE_free>;
using StoreCtx = Owned<X509_STORE_CTX, X509_STORE_CTX_free>;
using Cms = Owned<CMS_ContentInfo, CMS_ContentInfo_free>;
using Name = Owned<X509_NAME, X509_NAME_free>;
using Revoked = Owned<X509_REVOKED, X509_REVOKED_free>;
using Int = Owned<ASN1_INTEGER, ASN1_INTEGER_free>;
using Time = Owned<ASN1_TIME, ASN1_TIME_free>;
using Bn = Owned<BIGNUM, BN_free>;
using PkeyCtx = Owned<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using CipherCtx = Owned<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;

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
