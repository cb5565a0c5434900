// The body of a bundle verification (verify_core.cpp), shared by the full verification (verify.hpp) and
// the runtime's warm path (warm.hpp). Uses no OpenSSL itself: the CMS check comes in as a function.
#pragma once
#include <string>

#include "signing/cms_cache.hpp"
#include "signing/manifest.hpp"
#include "signing/policy.hpp"
#include "signing/verify_plugin.h"

namespace trustme::signing {

struct VerifyCore {
    bool use_cache = true;
    // The CMS verification (pki.hpp cms_verify) and the file of the libcrypto it runs in. Null: warm only,
    // as good as the caches: a verdict or a file digest that is not cached leaves the bundle undecided.
    Verdict (*cms)(const std::string& sig, const std::string& sig_name, const trustme::signing::policy::Policy& policy,
                   const TrustMaterial& trust) = nullptr;
    const std::string* library = nullptr;
};

// True when verified; false (warm only) when the caches cannot decide; throws Error (the one-line reason)
// when the bundle is refused. Fills res's location and digests as it goes, and signer_subject when verified.
[[nodiscard]] bool verify_run(const trustme_verify_request& req, trustme_verify_result& res,
                              const trustme::signing::policy::Policy& pol, const VerifyCore& opt, WalkStats* stats);

// Copy into a fixed C buffer as one line (the ABI promises one line; truncation keeps the NUL).
template <size_t N>
void put(char (&dst)[N], const std::string& s) {
    size_t n = std::min(s.size(), N - 1);
    for (size_t i = 0; i < n; ++i) dst[i] = (s[i] == '\n' || s[i] == '\r') ? ' ' : s[i];
    dst[n] = '\0';
}

}  // namespace trustme::signing
