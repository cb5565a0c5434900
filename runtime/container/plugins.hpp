// Heavy trust libraries (OpenSSL, libcryptsetup, tpm2-tss) live in plugins that are dlopen()ed only when a
// bundle needs them: the common start path never pays their load cost (DESIGN.md §5).
#pragma once
#include <string>

namespace trustme::plugins {

// Directory of the running binary (before the CVE-2019-5736 re-exec, see cli/selfexe.cpp).
const std::string& exe_dir();
// dlopen <exe_dir>/../lib/trustme/<name> and resolve `symbol`; throws naming the file and dlerror().
void* symbol(const char* library, const char* sym);

}  // namespace trustme::plugins
