// The fs-verity file digest computed in user space (signing/fsverity.hpp) against Debian's
// `fsverity digest` (fsverity-utils), at the sizes where the Merkle tree changes shape.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <string>

#include "base/fd.hpp"
#include "signing/fsverity.hpp"

using namespace trustme;
using namespace trustme::signing;

namespace {

std::string run(const std::string& cmd) {
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return out;
    char buf[512];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
    return out;
}

std::string ours(const std::string& data, size_t chunk) {
    FsVerityDigest d(data.size());
    for (size_t i = 0; i < data.size(); i += chunk)
        d.update(reinterpret_cast<const unsigned char*>(data.data()) + i, std::min(chunk, data.size() - i));
    return d.hex();
}

}  // namespace

TEST(FsVerity, DigestMatchesFsverityUtils) {
    if (::access("/usr/bin/fsverity", X_OK) != 0) GTEST_SKIP() << "fsverity (fsverity-utils) not installed";
    char dir[] = "/tmp/trustme-fsverity.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    std::mt19937 rng(19);
    // Empty, one byte, one block, one block + 1, the last size with one tree level (128 blocks), the
    // first with two, and two levels with a partial top.
    for (size_t size : {size_t{0}, size_t{1}, size_t{4096}, size_t{4097}, size_t{128 * 4096}, size_t{128 * 4096 + 1},
                        size_t{3 * 128 * 4096 + 777}}) {
        std::string data(size, '\0');
        for (auto& c : data) c = static_cast<char>(rng());
        const std::string f = std::string(dir) + "/f" + std::to_string(size);
        {
            UniqueFd fd(::open(f.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
            ASSERT_TRUE(fd);
            ASSERT_EQ(::write(fd.get(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
        }
        // "sha256:HEX FILE"
        std::string ref = run("fsverity digest --hash-alg=sha256 --block-size=4096 " + f);
        ASSERT_EQ(ref.rfind("sha256:", 0), 0u) << ref;
        ref = ref.substr(7, 64);
        EXPECT_EQ(ours(data, 1 << 18), ref) << "size " << size;
        EXPECT_EQ(ours(data, 1000), ref) << "size " << size << ", unaligned updates";
    }
    run(std::string("rm -rf ") + dir);
}

// This host's filesystems may have no fs-verity: the ioctls then say so, and nothing is measured.
TEST(FsVerity, MeasureWithoutVerityIsNone) {
    char f[] = "/tmp/trustme-fsverity-m.XXXXXX";
    UniqueFd fd(::mkstemp(f));
    ASSERT_TRUE(fd);
    int err = 0;
    EXPECT_FALSE(measure_verity(fd.get(), &err).has_value());
    EXPECT_TRUE(err == ENODATA || err == EOPNOTSUPP || err == ENOTTY) << err;
    ::unlink(f);
}
