// state.json as the runtime reads it back from --root: a container's directory is writable by whoever
// owns the state root, so its bytes are input like any other. The file is written to a private
// directory under /dev/shm and read through ContainerDir, the code every command uses.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "runtime/state/state.hpp"

namespace {
std::string g_root;

void write_all(const std::string& path, const uint8_t* data, size_t size) {
    trustme::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) std::abort();
    while (size > 0) {
        ssize_t n = ::write(fd.get(), data, size);
        if (n <= 0) std::abort();
        data += n;
        size -= static_cast<size_t>(n);
    }
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    char tmpl[] = "/dev/shm/trustme-fuzz-state.XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    g_root = tmpl;
    if (::mkdir((g_root + "/c").c_str(), 0700) < 0) std::abort();
    std::atexit([] {
        ::unlink((g_root + "/c/state.json").c_str());
        ::rmdir((g_root + "/c").c_str());
        ::rmdir(g_root.c_str());
    });
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    write_all(g_root + "/c/state.json", data, size);
    auto dir = trustme::state::ContainerDir::open(g_root, "c", /*lock=*/false);
    // What list and delete --force use: a broken record is marked, never thrown (any exception is a bug).
    (void)dir.read_any();
    try {
        auto rec = dir.read();
        (void)trustme::oci::runc_state(rec.st);
        (void)trustme::oci::hook_state(rec.st);
    } catch (const trustme::Error&) {
    }
    return 0;
}
