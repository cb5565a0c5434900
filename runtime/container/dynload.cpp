// Loading a trust plugin: linked into trustme-runtime-full only (runtime/container/plugins.cpp).
#include <dlfcn.h>

#include <string>

#include "base/error.hpp"
#include "runtime/container/plugins.hpp"

namespace trustme::container::plugins {

void* load_symbol(const std::string& path, const char* sym, bool required) {
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) fail("load plugin " + path + ": " + ::dlerror());
    void* s = ::dlsym(h, sym);
    if (!s && required) fail("plugin " + path + ": missing symbol " + sym);
    return s;
}

}  // namespace trustme::container::plugins
