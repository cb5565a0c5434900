// SHA-256 (FIPS 180-4) for cache keys and the warm verification path. Our own few lines rather than
// OpenSSL: the runtime's start path must not load libcrypto (docs/DEVELOPING.md, "the lean path"). Uses
// the x86 SHA extensions when the CPU has them (~10x fewer instructions than the portable rounds).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace trustme {

class Sha256 {
public:
    Sha256();
    void update(std::string_view data);
    std::array<uint8_t, 32> finish();
    static std::string hex(const std::array<uint8_t, 32>& d);

    // The compression function over `n` whole blocks, both implementations (tests compare them).
    static void blocks_portable(uint32_t h[8], const uint8_t* p, size_t n);
    static bool blocks_accelerated(uint32_t h[8], const uint8_t* p, size_t n);  // false: no SHA extensions

private:
    void blocks(const uint8_t* p, size_t n);
    uint32_t h_[8];
    uint8_t buf_[64];
    size_t used_ = 0;
    uint64_t total_ = 0;
};

}  // namespace trustme
