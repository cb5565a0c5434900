// trustme-attest(8). This binary is the createRuntime hook on every measured container start, so it is
// lean: `hook measure` runs here with tss2-sys and our own TCTI (tpm/pcr.hpp, tpm/tcti.hpp) and
// our own SHA-256, libstdc++ linked statically. Every other command, and the manifest computation the
// hook needs only under runc or crun, live in the tool module (attest/tool.cpp), loaded when asked for.
#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "attest/cli.hpp"
#include "attest/measure.hpp"
#include "attest/tool_module.h"
#include "base/error.hpp"

using namespace trustme;
using namespace trustme::attest;
using namespace trustme::attest::cli;

namespace {

constexpr const char* kToolModule = "libtrustme-attest-tool.so";

// <dir of this binary>/../lib/trustme/<module>: the same layout in the build and the install tree.
void* tool_symbol(const char* sym) {
    static void* handle = nullptr;
    if (!handle) {
        char buf[PATH_MAX];
        ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
        if (n <= 0) fail_errno("readlink /proc/self/exe");
        std::string self(buf, static_cast<size_t>(n));
        std::string path = self.substr(0, self.rfind('/')) + "/../lib/trustme/" + kToolModule;
        void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!h) fail(std::string("load ") + path + ": " + ::dlerror());
        const auto* abi = static_cast<const int*>(::dlsym(h, "trustme_attest_tool_abi"));
        const int have = abi ? *abi : 1;  // ABI 1 had no trustme_attest_tool_abi
        if (have != TRUSTME_ATTEST_TOOL_ABI)
            fail(std::string(kToolModule) + ": ABI " + std::to_string(TRUSTME_ATTEST_TOOL_ABI) + " requested, " +
                 std::to_string(have) + " provided");
        handle = h;
    }
    void* s = ::dlsym(handle, sym);
    if (!s) fail(std::string(kToolModule) + ": missing symbol " + sym);
    return s;
}

std::string module_manifest_sha256(int bundle_fd, int root_fd, bool bundle_form) {
    auto fn =
        reinterpret_cast<decltype(&trustme_attest_manifest_sha256)>(tool_symbol("trustme_attest_manifest_sha256"));
    char hex[65] = {};
    trustme_attest_error err{};
    if (fn(bundle_fd, root_fd, bundle_form ? 1 : 0, hex, &err) != 0) throw Error(err.text, err.code);
    return hex;
}

int cmd_hook(const Args& a) {
    if (a.positional.size() != 2 || a.positional[1] != "measure") throw UsageError("usage: hook measure");
    Settings s = settings(a);
    nlohmann::json state = parse_json(read_stdin(1 << 20), "OCI state (stdin)");
    auto m = measure_bundle(state, parent_is_trustme_runtime(), module_manifest_sha256);
    measure({s.tcti, s.pcr, s.log}, state, m);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        Args a = parse_args(argc, argv);
        if (a.positional.empty()) throw UsageError("no command given");
        if (a.positional[0] == "hook") return cmd_hook(a);
        return reinterpret_cast<decltype(&trustme_attest_tool_main)>(tool_symbol("trustme_attest_tool_main"))(argc,
                                                                                                              argv);
    } catch (const std::exception& e) {
        return report(e);
    }
}
