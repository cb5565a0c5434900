// Running OCI hooks (config.md "POSIX-platform Hooks"): path + args + env, the container state on stdin,
// `timeout` seconds at most. Which failures abort and which only warn is the caller's choice (runtime.md).
#pragma once
#include <string>
#include <vector>

#include "oci/config.hpp"

namespace trustme::hooks {

// Runs one hook to completion. Throws Error("<kind> hook <path>: <reason>") on exec failure, non-zero exit,
// death by signal or timeout (the hook is killed with SIGKILL when its timeout passes).
// A hook without "env" gets `inherit` (nullptr: the runtime's own environment), as in runc.
void run(const oci::Hook& hook, const std::string& state_json, const char* kind, char* const* inherit = nullptr);

// Runs a list in order; the first failure throws (prestart, createRuntime, createContainer, startContainer).
void run_all(const std::vector<oci::Hook>& list, const std::string& state_json, const char* kind,
             char* const* inherit = nullptr);

// Runs every hook of the list; failures are logged as warnings (poststart, poststop: runtime.md says the
// runtime MUST log a warning and continue).
void run_all_warn(const std::vector<oci::Hook>& list, const std::string& state_json, const char* kind);

}  // namespace trustme::hooks
