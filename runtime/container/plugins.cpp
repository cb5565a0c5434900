#include "plugins.hpp"

#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include <cstdlib>

#include "runtime/base/error.hpp"
#include "runtime/base/log.hpp"
#include "signing/warm.hpp"

namespace trustme::plugins {

const std::string& exe_dir() {
    static const std::string dir = [] {
        // Set by the re-exec through a sealed read-only mount, where /proc/self/exe no longer names the file.
        if (const char* d = std::getenv("_TRUSTME_EXE_DIR"); d && *d == '/') return std::string(d);
        char buf[PATH_MAX];
        ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
        if (n <= 0) return std::string(".");
        std::string p(buf, static_cast<size_t>(n));
        return p.substr(0, p.find_last_of('/'));
    }();
    return dir;
}

void* symbol(const char* library, const char* sym) {
    std::string path = exe_dir() + "/../lib/trustme/" + library;
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) fail(std::string("load plugin ") + path + ": " + ::dlerror());
    void* s = ::dlsym(h, sym);
    if (!s) fail(std::string("plugin ") + path + ": missing symbol " + sym);
    return s;
}

trustme_verify_result verify_bundle(const policy::Policy& pol, const trustme_verify_request& req) {
    trustme_verify_result res{};
    if (signing::verify_warm(req, pol, res)) return res;
    auto fn = reinterpret_cast<int (*)(const trustme_verify_request*, trustme_verify_result*)>(
        symbol("libtrustme-verify.so", "trustme_verify_bundle"));
    if (fn(&req, &res) != 0) fail(res.error[0] ? res.error : "bundle verification failed");
    if (res.warning[0]) log::warn(res.warning);
    return res;
}

}  // namespace trustme::plugins
