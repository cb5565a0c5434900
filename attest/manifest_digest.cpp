// The computed manifest digest with signing/'s manifest builder linked in: for the tool module
// and the tests. The lean hook binary reaches it through the module (attest/hook_main.cpp).
#include "attest/measure.hpp"
#include "base/sha256.hpp"
#include "signing/manifest.hpp"

namespace trustme::attest {

std::string computed_manifest_sha256(int bundle_fd, int root_fd, bool bundle_form) {
    Sha256 h;
    h.update(signing::build_manifest(bundle_fd, root_fd, bundle_form));
    return Sha256::hex(h.finish());
}

BundleMeasurement measure_bundle(const nlohmann::json& state, bool trust_annotations) {
    return measure_bundle(state, trust_annotations, computed_manifest_sha256);
}

}  // namespace trustme::attest
