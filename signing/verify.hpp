// The verification the runtime runs before create: the body of trustme_verify_bundle (verify_plugin.h).
// `trustme-sign verify` calls this same function, so what the tool accepts is what the runtime accepts.
#pragma once
#include "signing/manifest.hpp"
#include "signing/verify_plugin.h"

namespace trustme::signing {

struct VerifyOptions {
    bool use_cache = true;  // false: `trustme-sign verify --no-cache` (cold measurements)
};

// Never throws: every failure becomes result->error (or result->warning in mode warn). 0: may run.
int verify_bundle(const trustme_verify_request* req, trustme_verify_result* result, const VerifyOptions& opt,
                  WalkStats* stats = nullptr) noexcept;

}  // namespace trustme::signing
