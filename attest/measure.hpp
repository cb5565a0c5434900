// `trustme-attest hook measure`: measure a bundle into a PCR and the event log, as an OCI createRuntime
// hook (the OCI state on stdin). See docs/attestation.md for the consistency argument.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "attest/eventlog.hpp"

namespace trustme::attest {

// Annotations trustme-runtime puts into the state after verifying a bundle.
inline constexpr const char* kAnnManifest = "org.trustme.verified.manifest";  // hex sha256 of the manifest file
inline constexpr const char* kAnnConfig = "org.trustme.verified.config";      // hex sha256 of config.json
inline constexpr const char* kAnnSigner = "org.trustme.verified.signer";      // signer certificate subject

struct BundleMeasurement {
    std::string manifest_sha256, config_sha256, signer;
    // "runtime-verified": digests and signer from trustme-runtime's annotations;
    // "computed": the hook walked the bundle itself (no signature check: signer is empty).
    std::string source;
};

// Hex SHA-256 of the manifest signing::build_manifest makes for the bundle (directory fds; bundle_form:
// the form covering config.json, else the embedded rootfs-only form). It needs OpenSSL, so the lean hook
// binary borrows it from the tool module (attest/hook_main.cpp) and never loads it under trustme-runtime.
using ManifestDigestFn = std::function<std::string(int bundle_fd, int root_fd, bool bundle_form)>;

// trust_annotations: only when the hook's parent is trustme-runtime. Under runc or crun the annotations
// come straight from config.json, which the bundle's author controls, so they are ignored there and the
// manifest digest is computed with `manifest_digest`.
BundleMeasurement measure_bundle(const nlohmann::json& state, bool trust_annotations,
                                 const ManifestDigestFn& manifest_digest);
// The same with signing::build_manifest linked in (library trustme_attest, attest/manifest_digest.cpp).
BundleMeasurement measure_bundle(const nlohmann::json& state, bool trust_annotations);
std::string computed_manifest_sha256(int bundle_fd, int root_fd, bool bundle_form);

// Is our parent process the trustme-runtime binary installed next to this one (or its dynamically linked
// twin, lib/trustme/trustme-runtime-full)?
bool parent_is_trustme_runtime();

struct MeasureOptions {
    std::string tcti;
    uint32_t pcr = 11;
    std::string log;
};

struct MeasureResult {
    Event event;
    bool recovered = false;  // a record left pending by a crash was extended first
};

// Append the event for `state` to the log and extend the PCR, under the log's exclusive lock.
MeasureResult measure(const MeasureOptions& opt, const nlohmann::json& state, const BundleMeasurement& m);

}  // namespace trustme::attest
