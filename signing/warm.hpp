// The warm path of bundle verification, run inside trustme-runtime without loading libcrypto or the
// verify plugin: the same verification as the plugin's (verify_core.hpp), but every answer must come
// from the caches (a cached CMS verdict reached by an unchanged libcrypto, cached file digests keyed by
// unchanged stamps). It only ever accepts: anything it cannot decide from the caches, and anything it
// would refuse, goes to the full verification in the plugin, which then gives the verdict and the error.
#pragma once
#include "signing/policy.hpp"
#include "signing/verify_plugin.h"

namespace trustme::signing {

// True: verified, `res` filled as trustme_verify_bundle would fill it. False: ask the plugin.
bool verify_warm(const trustme_verify_request& req, const trustme::signing::policy::Policy& pol,
                 trustme_verify_result& res) noexcept;

}  // namespace trustme::signing
