// The libcrypto-free back end of sha256.hpp (see there): base/sha256.hpp.
#include "base/sha256.hpp"
#include "signing/sha256.hpp"

#include <algorithm>

namespace trustme::signing {
namespace {
using Impl = trustme::Sha256;
Impl* impl(void* p) { return static_cast<Impl*>(p); }
}  // namespace

Sha256::Sha256() : ctx_(new Impl()) {}
Sha256::~Sha256() { delete impl(ctx_); }

void Sha256::update(const void* data, size_t n) {
    impl(ctx_)->update(std::string_view(static_cast<const char*>(data), n));
}

void Sha256::finish(unsigned char (&out)[32]) {
    auto d = impl(ctx_)->finish();
    *impl(ctx_) = Impl();
    std::copy(d.begin(), d.end(), out);
}

}  // namespace trustme::signing
