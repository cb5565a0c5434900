// The compiled-program cache: same output as compiling, entries reused, untrusted entries ignored.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>

#include "runtime/security/security.hpp"
#include "base/sha256.hpp"

using nlohmann::json;
using namespace trustme::security;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/trustme-seccache-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
};

json sample() {
    return {{"defaultAction", "SCMP_ACT_ERRNO"},
            {"architectures", {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86"}},
            {"syscalls", {{{"names", {"read", "write", "exit_group"}}, {"action", "SCMP_ACT_ALLOW"}}}}};
}

bool same(const SeccompProgram& a, const SeccompProgram& b) {
    return a.flags == b.flags && a.uses_notify == b.uses_notify && a.bpf.size() == b.bpf.size() &&
           std::memcmp(a.bpf.data(), b.bpf.data(), a.bpf.size() * sizeof(sock_filter)) == 0;
}

std::vector<fs::path> entries(const fs::path& dir) {
    std::vector<fs::path> out;
    for (auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
    return out;
}

}  // namespace

TEST(Sha256, KnownVectors) {
    using trustme::Sha256;
    Sha256 a;
    a.update("abc");
    EXPECT_EQ(Sha256::hex(a.finish()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    Sha256 e;
    EXPECT_EQ(Sha256::hex(e.finish()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    Sha256 l;
    l.update("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
    EXPECT_EQ(Sha256::hex(l.finish()), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, MillionAsAndSplitUpdates) {
    using trustme::Sha256;
    // FIPS 180-4 example: one million 'a'; fed in uneven pieces so that partial and whole blocks mix.
    std::string a(1000000, 'a');
    Sha256 h;
    for (size_t i = 0, step = 1; i < a.size(); i += step, step = step * 7 % 1031 + 1)
        h.update(std::string_view(a).substr(i, step));
    EXPECT_EQ(Sha256::hex(h.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, ShaExtensionsMatchThePortableRounds) {
    using trustme::Sha256;
    uint8_t probe[64] = {};
    uint32_t hp[8] = {};
    if (!Sha256::blocks_accelerated(hp, probe, 1)) GTEST_SKIP() << "this CPU has no SHA extensions";
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    std::vector<uint8_t> data(64 * 40);
    for (auto& b : data) x ^= x << 13, x ^= x >> 7, x ^= x << 17, b = static_cast<uint8_t>(x);
    for (size_t n = 1; n <= 40; ++n) {
        uint32_t a[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                         0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
        uint32_t b[8];
        std::memcpy(b, a, sizeof a);
        ASSERT_TRUE(Sha256::blocks_accelerated(a, data.data(), n));
        Sha256::blocks_portable(b, data.data(), n);
        ASSERT_EQ(std::memcmp(a, b, sizeof a), 0) << n << " blocks";
    }
}

TEST(SeccompCache, HitReturnsTheSameProgram) {
    TempDir t;
    fs::path dir = t.path / "cache";
    auto compiled = compile_seccomp(sample());
    auto first = compile_seccomp_cached(sample(), dir.string());
    EXPECT_TRUE(same(compiled, first));
    ASSERT_EQ(entries(dir).size(), 1u);
    EXPECT_EQ(fs::status(dir).permissions() & fs::perms::all, fs::perms::owner_all);
    auto second = compile_seccomp_cached(sample(), dir.string());
    EXPECT_TRUE(same(compiled, second));
    EXPECT_EQ(entries(dir).size(), 1u);

    json other = sample();
    other["defaultErrnoRet"] = 12;
    auto third = compile_seccomp_cached(other, dir.string());
    EXPECT_TRUE(same(compile_seccomp(other), third));
    EXPECT_EQ(entries(dir).size(), 2u);
}

TEST(SeccompCache, ListenerDetailsComeFromTheJson) {
    TempDir t;
    json p = {{"defaultAction", "SCMP_ACT_ALLOW"},
              {"listenerPath", "/run/agent.sock"},
              {"listenerMetadata", "m1"},
              {"syscalls", {{{"names", {"getppid"}}, {"action", "SCMP_ACT_NOTIFY"}}}}};
    compile_seccomp_cached(p, t.path.string());
    auto hit = compile_seccomp_cached(p, t.path.string());
    EXPECT_TRUE(hit.uses_notify);
    EXPECT_EQ(hit.listener_path, "/run/agent.sock");
    EXPECT_EQ(hit.listener_metadata, "m1");
}

TEST(SeccompCache, UntrustedEntryIsIgnored) {
    TempDir t;
    json allow_all = {{"defaultAction", "SCMP_ACT_ALLOW"}};
    compile_seccomp_cached(sample(), t.path.string());
    compile_seccomp_cached(allow_all, t.path.string());
    // Plant the allow-all program under the strict profile's name, writable by others: not used.
    fs::path strict, lax;
    auto strict_prog = compile_seccomp(sample());
    for (auto& e : entries(t.path)) {
        auto size = fs::file_size(e);
        (size > 200 ? strict : lax) = e;
    }
    ASSERT_FALSE(strict.empty());
    ASSERT_FALSE(lax.empty());
    fs::copy_file(lax, strict, fs::copy_options::overwrite_existing);
    chmod(strict.c_str(), 0666);
    EXPECT_TRUE(same(compile_seccomp_cached(sample(), t.path.string()), strict_prog));
    // Same with the right mode: the key stored inside does not match the name, so it is not used either.
    fs::copy_file(lax, strict, fs::copy_options::overwrite_existing);
    chmod(strict.c_str(), 0600);
    EXPECT_TRUE(same(compile_seccomp_cached(sample(), t.path.string()), strict_prog));
}

TEST(SeccompCache, UntrustedDirectoryIsNotUsed) {
    TempDir t;
    chmod(t.path.c_str(), 0777);
    auto prog = compile_seccomp_cached(sample(), t.path.string());
    EXPECT_TRUE(same(prog, compile_seccomp(sample())));
    EXPECT_TRUE(entries(t.path).empty());
}

TEST(SeccompCache, EmptyDirDisablesCaching) {
    EXPECT_TRUE(same(compile_seccomp_cached(sample(), ""), compile_seccomp(sample())));
    EXPECT_TRUE(compile_seccomp_cached(json(), "/nonexistent").empty());
}

TEST(SeccompCache, StaysBounded) {
    TempDir t;
    for (int i = 0; i < 300; ++i) {
        json p = {{"defaultAction", "SCMP_ACT_ALLOW"},
                  {"syscalls", {{{"names", {"getppid"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", i + 1}}}}};
        compile_seccomp_cached(p, t.path.string());
    }
    EXPECT_LE(entries(t.path).size(), 256u);
    EXPECT_GE(entries(t.path).size(), 1u);
}
