#include "signing/verify.hpp"

#include <cstring>

#include <openssl/crypto.h>

#include "signing/pki.hpp"
#include "signing/policy.hpp"
#include "base/error.hpp"
#include "signing/verify_core.hpp"

namespace trustme::signing {

int verify_bundle(const trustme_verify_request* req, trustme_verify_result* res, const VerifyOptions& opt,
                  WalkStats* stats) noexcept {
    if (!res) return 2;
    if (!req || req->abi != TRUSTME_VERIFY_ABI) {
        // The caller's result may be of another ABI: only the fields every ABI has (they come first).
        put(res->location, "none");
        put(res->error, "libtrustme-verify: ABI mismatch (runtime and plugin from different builds)");
        return 2;
    }
    std::memset(res, 0, sizeof *res);
    put(res->location, "none");
    // Before libcrypto initialises itself: no OPENSSL_cleanup at exit. The process is about to exec or
    // exit; freeing every table libcrypto built cost ~5% of a warm verification's instructions.
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
    trustme::signing::policy::Policy pol;
    try {
        pol = trustme::signing::policy::load(req->policy_path ? req->policy_path : "");
    } catch (const std::exception& e) {
        put(res->error, e.what());  // a malformed policy is an error in every mode
        res->error_code = error_code(e);
        return 1;
    }
    if (pol.signature == trustme::signing::policy::SignatureMode::Off) return 0;
    try {
        VerifyCore core;
        core.use_cache = opt.use_cache;
        core.cms = &cms_verify;
        core.library = &libcrypto_path();
        (void)verify_run(*req, *res, pol, core, stats);  // with cms: always decided
        return 0;
    } catch (const std::exception& e) {
        if (pol.signature == trustme::signing::policy::SignatureMode::Warn) {
            // Allowed to run, but nothing was verified: say so, so nobody measures it as signed.
            put(res->warning, e.what());
            put(res->location, "none");
            put(res->signer_subject, "");
            return 0;
        }
        put(res->error, e.what());
        res->error_code = error_code(e);
        return 1;
    } catch (...) {
        put(res->error, "libtrustme-verify: unexpected failure");
        return 1;
    }
}

}  // namespace trustme::signing
