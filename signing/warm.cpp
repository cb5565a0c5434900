#include "signing/warm.hpp"

#include <cstring>

#include "signing/verify_core.hpp"

namespace trustme::signing {

bool verify_warm(const trustme_verify_request& req, const trustme::signing::policy::Policy& pol,
                 trustme_verify_result& res) noexcept {
    if (pol.signature == trustme::signing::policy::SignatureMode::Off ||
        pol.verify_cache == trustme::signing::policy::VerifyCache::Off)
        return false;
    std::memset(&res, 0, sizeof res);
    try {
        VerifyCore core;  // no cms: cache only
        if (verify_run(req, res, pol, core, nullptr)) return true;
    } catch (...) {
        // A refusal: the full verification decides and words the error.
    }
    std::memset(&res, 0, sizeof res);
    return false;
}

}  // namespace trustme::signing
