// libtrustme-verify.so: the only exported symbol is trustme_verify_bundle (built with -fvisibility=hidden).
#include "signing/verify.hpp"

extern "C" __attribute__((visibility("default"))) int trustme_verify_bundle(const struct trustme_verify_request* req,
                                                                            struct trustme_verify_result* result) {
    return trustme::signing::verify_bundle(req, result, trustme::signing::VerifyOptions{});
}
