// The runtime-spec state (runtime.md "State") and runc's `state` output, which adds rootfs/created/owner.
#pragma once
#include <sys/types.h>

#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace trustme::oci {

struct State {
    std::string id;
    std::string status;  // creating | created | running | stopped (| paused in runc's output)
    pid_t pid = 0;
    std::string bundle;
    std::string rootfs;
    std::string created;  // RFC 3339 with nanoseconds
    std::string owner;
    std::map<std::string, std::string> annotations;
};

// The spec's state, as given to hooks on stdin (ociVersion, id, status, pid, bundle, annotations).
nlohmann::json hook_state(const State& s);
// runc's `state` command output.
nlohmann::json runc_state(const State& s);

}  // namespace trustme::oci
