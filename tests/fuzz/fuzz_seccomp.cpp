// linux.seccomp: validation and compilation to BPF with libseccomp (in the runtime's parent, before
// clone). Rejections are trustme::Error naming the JSON path; nothing is loaded into the kernel here.
#include <cstdint>

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "runtime/security/security.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return 0;
    try {
        auto prog = trustme::security::compile_seccomp(j);
        (void)prog;
    } catch (const trustme::Error&) {
    }
    return 0;
}
