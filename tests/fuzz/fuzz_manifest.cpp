// Fuzz the manifest parser: it reads bytes from the bundle before anything else has judged them (only the
// signature has). Invariant: whatever parses renders back to the same bytes (one tree, one manifest).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "base/error.hpp"
#include "signing/manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    try {
        auto m = trustme::signing::parse_manifest(text, "fuzz");
        if (trustme::signing::render(m) != text) std::abort();
        (void)trustme::signing::compare_entries(m.entries, m.entries);
    } catch (const trustme::Error&) {
    }
    return 0;
}
