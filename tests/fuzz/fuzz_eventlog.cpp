// The measurement log (trustme-eventlog(5)): a file on the host that the verifier replays; a torn or
// forged log must give an error naming the record, never a crash. A parsed log re-serialises to a log
// that parses to the same events.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "attest/eventlog.hpp"
#include "base/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    try {
        size_t good = 0;
        auto events = trustme::attest::parse_log(text, "fuzz.log", &good);
        if (good > text.size()) std::abort();
        std::string again;
        for (const auto& e : events) again += trustme::attest::serialize_record(e);
        if (trustme::attest::parse_log(again, "again.log").size() != events.size()) std::abort();
        for (uint32_t pcr : {11u, 23u}) (void)trustme::attest::replay(events, pcr, -1);
    } catch (const trustme::Error&) {
    }
    return 0;
}
