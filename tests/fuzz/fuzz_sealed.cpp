// A TPM-sealed object (the volume token's "sealed" member, tpm/tpm.hpp): read from a LUKS2 header
// that anyone with the disk can rewrite, and unmarshalled (tss2-mu) before the TPM sees it.
#include <cstdint>
#include <string>

#include "tpm/tpm.hpp"
#include "base/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    try {
        auto o = trustme::tpm::SealedObject::from_json(text);
        (void)trustme::tpm::SealedObject::from_json(o.to_json());  // what it writes, it reads back
    } catch (const trustme::Error&) {
    }
    return 0;
}
