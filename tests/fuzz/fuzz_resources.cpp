// linux.resources (also `update --resources`): validation, the device rules and their emulation of the
// kernel's v1 exception list, the rdma lines. Pure logic, no cgroup is touched.
#include <cstdint>

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "runtime/cgroups/cgroups.hpp"
#include "runtime/cgroups/internal.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return 0;
    try {
        trustme::cgroups::validate(j);
        auto rules = trustme::cgroups::device_rules(j);
        (void)trustme::cgroups::detail::emulate_devices(rules);
        if (j.is_object() && j.contains("rdma")) (void)trustme::cgroups::detail::rdma_lines(j["rdma"]);
    } catch (const trustme::Error&) {
    }
    return 0;
}
