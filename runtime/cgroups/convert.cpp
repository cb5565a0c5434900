// OCI linux.resources is shaped after cgroup v1; these convert its values for cgroup v2 files.
#include <cstdint>

#include "base/error.hpp"
#include "runtime/cgroups/internal.hpp"

namespace trustme::cgroups::detail {

namespace {
// log2 and 10^x in long double with nothing but + - * /: the runtime binary then needs no libm.so (one
// shared object fewer for ld.so to map at every start, ~340 KiB of resident pages). Rounded to double they
// give libm's results: tests/cgroups checks ceil(10^e) against std::pow/std::log2 for every shares value.
constexpr long double kLn2 = 0.693147180559945309417232121458176568L;
constexpr long double kLn10 = 2.302585092994045684017991454684364208L;

long double log2_ld(long double x) {  // x > 0
    int k = 0;
    while (x > 1.41421356237309504880L) x /= 2, ++k;
    while (x < 0.70710678118654752440L) x *= 2, --k;
    // ln(m) = 2 atanh(z), z = (m-1)/(m+1), |z| <= 0.172: the series converges fast.
    long double z = (x - 1) / (x + 1), z2 = z * z, power = z, sum = 0;
    for (int n = 1; n < 60; n += 2, power *= z2) sum += power / n;
    return k + 2 * sum / kLn2;
}

long double exp10_ld(long double e) {  // 0 <= e < 64
    long double r = 1;
    int n = static_cast<int>(e);
    for (int i = 0; i < n; ++i) r *= 10;
    long double y = (e - n) * kLn10 / 16;  // exp(f ln10) = exp(y)^16, y < 0.144
    long double term = 1, sum = 1;
    for (int i = 1; i < 30; ++i) sum += term *= y / i;
    for (int i = 0; i < 4; ++i) sum *= sum;
    return r * sum;
}

uint64_t ceil_positive(double v) {
    auto t = static_cast<uint64_t>(v);
    return static_cast<double>(t) < v ? t + 1 : t;
}
}  // namespace

// cpu.shares [2, 262144] (default 1024) → cpu.weight [1, 10000] (default 100).
// opencontainers/cgroups ConvertCPUSharesToCgroupV2Value since runc 1.3.x / 1.4 (runc PR #4785, crun
// issue #1721, kubernetes issue #131216): a quadratic in log2(shares) through (2,1), (1024,100) and
// (262144,10000), so that the v1 default maps to the v2 default:
//   weight = ceil(10^((l^2 + 125 l)/612 - 7/34)), l = log2(shares)
// (Older runc/crun used the linear 1 + (shares-2)*9999/262142, which maps 1024 to 39.)
uint64_t shares_to_weight(uint64_t shares) {
    if (shares == 0) return 0;  // unset
    if (shares <= 2) return 1;
    if (shares >= 262144) return 10000;
    double l = static_cast<double>(log2_ld(static_cast<long double>(shares)));
    double exponent = (l * l + 125 * l) / 612.0 - 7.0 / 34.0;
    return ceil_positive(static_cast<double>(exp10_ld(exponent)));
}

// blkio.weight [10, 1000] → io.weight [1, 10000], linear (runc ConvertBlkIOToIOWeightValue):
//   y = 1 + (x - 10) * 9999 / 990
uint64_t blkio_weight_to_io_weight(uint64_t weight) {
    if (weight == 0) return 0;
    if (weight < 10) weight = 10;
    return 1 + (weight - 10) * 9999 / 990;
}

// OCI memory.swap is memory+swap (v1 memsw); v2 memory.swap.max is swap alone.
// runc ConvertMemorySwapToCgroupV2Value (libcontainer/cgroups/utils.go).
int64_t swap_to_v2(int64_t swap, int64_t limit) {
    if (limit == -1 && swap == 0) return -1;   // unlimited memory, swap unset → both unlimited
    if (swap == -1 || swap == 0) return swap;  // "max" / unset, as is
    if (limit == -1) return swap;              // unlimited memory: swap as is
    if (limit == 0) fail("linux.resources.memory.swap: unable to set swap limit without memory limit");
    if (limit < 0) fail("linux.resources.memory.limit: invalid memory value " + std::to_string(limit));
    if (swap < limit)
        fail("linux.resources.memory.swap: memory+swap limit " + std::to_string(swap) + " should be >= memory limit " +
             std::to_string(limit));
    return swap - limit;
}

bool valid_hugepage_size(const std::string& s) {
    // "<number><unit>" with unit KB, MB, GB (kernel hugetlb_cgroup file names: "2MB", "1GB", "64KB").
    size_t i = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == 0) return false;
    std::string unit = s.substr(i);
    return unit == "KB" || unit == "MB" || unit == "GB" || unit == "TB" || unit == "PB";
}

}  // namespace trustme::cgroups::detail
