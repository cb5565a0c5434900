// config.json: parse and validate (oci/config.cpp), then the subtrees other parts judge before clone:
// resources, seccomp, process extras. Every rejection must be a trustme::Error (one line naming the
// field); anything else escaping (a json type_error, out_of_range, a crash) is a bug.
#include <cstdint>
#include <string_view>

#include "base/error.hpp"
#include "runtime/cgroups/cgroups.hpp"
#include "oci/config.hpp"
#include "runtime/security/security.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        auto cfg = trustme::oci::parse_config(text, "config.json");
        trustme::cgroups::validate(cfg.linux_.resources);
        (void)trustme::cgroups::device_rules(cfg.linux_.resources);
        const auto& raw = cfg.raw;
        if (raw.contains("process") && raw.contains("linux"))
            trustme::security::validate_process_extras(raw["process"], raw["linux"]);
    } catch (const trustme::Error&) {
    }
    return 0;
}
