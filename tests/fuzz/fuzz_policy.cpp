// Fuzz policy parsing and the constraints judge (the judge reads engine-generated, unsigned configs).
#include <cstdint>
#include <string>

#include "base/error.hpp"
#include "signing/constraints.hpp"
#include "signing/policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    try {
        auto p = trustme::signing::policy::parse(text, "/etc/trustme/policy.json");
        (void)p;
    } catch (const trustme::Error&) {
    }
    auto cfg = nlohmann::json::parse(text, nullptr, false);
    if (!cfg.is_discarded()) {
        try {
            trustme::signing::policy::judge_config(nlohmann::json::object(), cfg, "config.json");
        } catch (const trustme::Error&) {
        } catch (const nlohmann::json::exception&) {
            // a type error in the judge would be a bug: report it
            __builtin_trap();
        }
    }
    return 0;
}
