#include "runtime/container/plugins.hpp"

#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "base/error.hpp"
#include "runtime/cgroups/cgroups.hpp"
#include "base/log.hpp"
#include "signing/warm.hpp"
#include "base/procfs.hpp"

namespace trustme::container::plugins {

const std::string& exe_dir() {
    static const std::string dir = [] {
        // Set by the re-exec through a sealed read-only mount, where /proc/self/exe no longer names the file.
        if (const char* d = std::getenv("_TRUSTME_EXE_DIR"); d && *d == '/') return std::string(d);
        char buf[PATH_MAX];
        ssize_t n = procfs::readlink("self/exe", buf, sizeof buf - 1);
        if (n <= 0) return std::string(".");
        std::string p(buf, static_cast<size_t>(n));
        return p.substr(0, p.find_last_of('/'));
    }();
    return dir;
}

namespace {
char** g_argv = nullptr;
}  // namespace

void set_argv(char** argv) { g_argv = argv; }

void require_loadable() {
    if (load_symbol || !g_argv) return;
    // glibc's dlopen() from a static program loads a second libc.so.6 for the plugin, and threads created
    // from that one crash (pthread_create in the verify plugin's hashing threads: SIGSEGV, seen here). So
    // trustme-runtime, which links no dlopen (static, or dynamic in a sanitizer build), hands the whole
    // command to its dynamically linked twin, the same code with dynload.cpp, which loads plugins
    // normally. Callers come here before their first side effect.
    const std::string twin = exe_dir() + "/../lib/trustme/trustme-runtime-full";
    ::setenv("_TRUSTME_EXE_DIR", exe_dir().c_str(), 1);  // the twin finds plugins and helpers from here
    ::execv(twin.c_str(), g_argv);
    fail_errno("run " + twin + " (the runtime that loads trust plugins)");
}

void* symbol(const char* library, const char* sym, bool required) {
    require_loadable();
    std::string path = exe_dir() + "/../lib/trustme/" + library;
    if (!load_symbol) fail("load plugin " + path + ": this binary cannot load plugins");
    return load_symbol(path, sym, required);
}

void* volume_symbol(const char* sym) {
    static const int abi = [] {
        const auto* v = static_cast<const int*>(symbol("libtrustme-volume.so", "trustme_volume_abi", false));
        return v ? *v : 1;  // ABI 1 had no trustme_volume_abi
    }();
    if (abi != TRUSTME_VOLUME_ABI)
        fail("libtrustme-volume.so: ABI " + std::to_string(TRUSTME_VOLUME_ABI) + " requested, " + std::to_string(abi) +
             " provided");
    return symbol("libtrustme-volume.so", sym);
}

void volume_check(int rc, const trustme_volume_error& err, const std::string& fallback) {
    if (rc != 0) throw Error(err.text[0] ? err.text : fallback, err.code);
}

void use_systemd() {
    require_loadable();
    cgroups::set_systemd_loader([]() -> cgroups::SystemdCall {
        static auto fn =
            reinterpret_cast<cgroups::SystemdCall>(symbol("libtrustme-systemd.so", "trustme_systemd_call"));
        return fn;
    });
}

trustme_verify_result verify_bundle(const signing::policy::Policy& pol, const trustme_verify_request& req) {
    trustme_verify_result res{};
    if (signing::verify_warm(req, pol, res)) return res;
    auto fn = reinterpret_cast<int (*)(const trustme_verify_request*, trustme_verify_result*)>(
        symbol("libtrustme-verify.so", "trustme_verify_bundle"));
    if (fn(&req, &res) != 0) throw Error(res.error[0] ? res.error : "bundle verification failed", res.error_code);
    if (res.warning[0]) log::warn(res.warning);
    return res;
}

}  // namespace trustme::container::plugins
