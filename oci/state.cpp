#include "oci/state.hpp"

#include "oci/config.hpp"

namespace trustme::oci {

nlohmann::json hook_state(const State& s) {
    nlohmann::json j = {{"ociVersion", kOciVersion}, {"id", s.id}, {"status", s.status}, {"bundle", s.bundle}};
    // runtime.md: pid is REQUIRED when status is created or running on Linux.
    if (s.pid > 0 && s.status != "stopped") j["pid"] = s.pid;
    if (!s.annotations.empty()) j["annotations"] = s.annotations;
    return j;
}

nlohmann::json runc_state(const State& s) {
    nlohmann::json j = {{"ociVersion", kOciVersion}, {"id", s.id},         {"pid", s.status == "stopped" ? 0 : s.pid},
                        {"status", s.status},        {"bundle", s.bundle}, {"rootfs", s.rootfs},
                        {"created", s.created},      {"owner", s.owner}};
    if (!s.annotations.empty()) j["annotations"] = s.annotations;
    return j;
}

}  // namespace trustme::oci
