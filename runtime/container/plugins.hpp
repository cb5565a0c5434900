// Heavy trust libraries (OpenSSL, libcryptsetup, tpm2-tss) live in plugins that are dlopen()ed only when a
// bundle needs them: the common start path never pays their load cost (docs/benchmark.md).
#pragma once
#include <string>

#include "signing/policy.hpp"
#include "runtime/volume/volume_plugin.h"
#include "signing/verify_plugin.h"

namespace trustme::container::plugins {

// Directory of the running binary (resolved before the CVE-2019-5736 seal, see cli/selfexe.cpp).
const std::string& exe_dir();
// The command line, for require_loadable (set by main).
void set_argv(char** argv);
// Plugins can be loaded in this process: a no-op in a dynamically linked runtime; the static trustme-runtime
// re-executes the command as its dynamically linked twin, lib/trustme/trustme-runtime-full (plugins.cpp
// says why). Call it before the command's first side effect.
void require_loadable();
// dlopen <exe_dir>/../lib/trustme/<name> and resolve `symbol` (require_loadable first); throws naming the
// file and dlerror(). A symbol that is not `required` comes back null when the library lacks it.
void* symbol(const char* library, const char* sym, bool required = true);
// dlopen and dlsym, defined only in the dynamically linked twin (runtime/container/dynload.cpp). The static
// trustme-runtime never loads a plugin (require_loadable hands the command to the twin first) and must not
// refer to dlopen at all: glibc warns at link time that a static dlopen needs the shared libc of the very
// version it was linked with. A weak declaration is null where no definition was linked.
[[gnu::weak]] void* load_symbol(const std::string& path, const char* sym, bool required);

// A function of libtrustme-volume.so (volume_plugin.h), once its trustme_volume_abi is ours: a plugin of
// another ABI is refused in one line before any of its functions is called.
void* volume_symbol(const char* sym);
// A volume call's result: throws the plugin's error (its text, or `fallback` when it gave none, and its
// errno) when rc is not 0.
void volume_check(int rc, const trustme_volume_error& err, const std::string& fallback);

// The systemd cgroup driver: its D-Bus client libtrustme-systemd.so (sd-bus) is loaded when a unit is
// started, changed or stopped. Calls require_loadable, so: before the command's first side effect.
void use_systemd();

// Verify a bundle against the policy (signature != off): first in this process from the caches alone
// (signing/warm.hpp: no libcrypto loaded), else through libtrustme-verify.so. Throws the one-line reason
// when refused; logs the warning of mode "warn".
trustme_verify_result verify_bundle(const signing::policy::Policy& pol, const trustme_verify_request& req);

}  // namespace trustme::container::plugins
