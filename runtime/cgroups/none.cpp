// No cgroup at all: a rootless container whose caller was not delegated a cgroup (runc's rootless
// cgroupfs manager ignores the same permission errors). Commands that need a cgroup say so in one line.
#include "base/error.hpp"
#include "runtime/cgroups/internal.hpp"

namespace trustme::cgroups {
namespace {

class NoCgroup final : public Manager {
public:
    Mode mode() const override { return Mode::Legacy; }
    nlohmann::json save() const override { return {{"mode", "none"}}; }
    void create_dirs() override {}
    void apply(const nlohmann::json&) override {}
    void add_process(pid_t) override {}
    void update(const nlohmann::json&) override { need("update"); }
    void freeze() override { need("pause"); }
    void thaw() override { need("resume"); }
    bool frozen() override { return false; }
    std::vector<pid_t> pids() override { return {}; }
    nlohmann::json stats() override { return nlohmann::json::object(); }
    void kill_all(int) override {}
    void destroy() override {}
    std::string path_for_namespace() const override { return "/"; }
    std::string dir(const std::string&) const override { return ""; }

private:
    [[noreturn]] static void need(const char* what) {
        fail(std::string(what) +
             ": this container has no cgroup (rootless, and no cgroup was delegated to the caller)");
    }
};

}  // namespace

std::unique_ptr<Manager> Manager::none() { return std::make_unique<NoCgroup>(); }

std::string first_setting(const nlohmann::json& resources) {
    if (!resources.is_object()) return "";
    for (auto& [key, v] : resources.items()) {
        // Device rules need no cgroup here: without one the container has only the nodes bound in for it.
        if (key == "devices" || v.is_null() || (v.is_array() && v.empty())) continue;
        if (!v.is_object()) return key;
        for (auto& [sub, w] : v.items())
            if (!w.is_null() && !(w.is_array() && w.empty())) return key + "." + sub;
    }
    return "";
}

}  // namespace trustme::cgroups
