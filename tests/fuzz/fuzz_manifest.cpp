// Fuzz the manifest parser: it reads bytes from the bundle before anything else has judged them (only the
// signature has). Invariant: whatever parses renders back to the same bytes (one tree, one manifest).
// A manifest ends with the SHA-256 of everything before it, which random mutation almost never gets
// right; so each input is also tried with that line recomputed, to reach the entry checks behind it.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "base/error.hpp"
#include "signing/manifest.hpp"

namespace {
void check(const std::string& text) {
    try {
        auto m = trustme::signing::parse_manifest(text, "fuzz");
        if (trustme::signing::render(m) != text) std::abort();
        (void)trustme::signing::compare_entries(m.entries, m.entries);
    } catch (const trustme::Error&) {
    }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    check(text);
    std::string body = text;
    if (auto at = body.rfind("\ndigest "); at != std::string::npos) body.resize(at + 1);
    if (!body.empty() && body.back() != '\n') body += '\n';
    check(body + "digest sha256=" + trustme::signing::sha256_hex(body) + "\n");
    return 0;
}
