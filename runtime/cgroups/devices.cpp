// Device access rules: parsing, runc's default allowed devices, and the v1 semantics emulator used to
// build the v2 eBPF filter.
#include "base/error.hpp"
#include "runtime/cgroups/internal.hpp"

namespace trustme::cgroups {

// runc libcontainer/specconv/spec_linux.go `AllowedDevices`, appended after the config's own rules
// (so a config cannot take them away; runc's comment calls this questionable but keeps it for
// compatibility, and so do we):
//   c *:* m, b *:* m              mknod of any device node (use still needs r/w rules)
//   c 1:3 rwm   /dev/null         c 1:8 rwm   /dev/random      c 1:7 rwm   /dev/full
//   c 5:0 rwm   /dev/tty          c 1:5 rwm   /dev/zero        c 1:9 rwm   /dev/urandom
//   c 136:* rwm /dev/pts/*        c 5:2 rwm   /dev/ptmx
//   c 10:200 rwm /dev/net/tun     (removed in runc 1.2.0-rc1, restored: runc PR #3468)
// runc drops a default whose path is also in linux.devices; the rule is the same in practice.
const std::vector<DeviceRule>& default_allowed_devices() {
    static const std::vector<DeviceRule> rules = {
        {true, 'c', -1, -1, "m"},    {true, 'b', -1, -1, "m"}, {true, 'c', 1, 3, "rwm"},    {true, 'c', 1, 8, "rwm"},
        {true, 'c', 1, 7, "rwm"},    {true, 'c', 5, 0, "rwm"}, {true, 'c', 1, 5, "rwm"},    {true, 'c', 1, 9, "rwm"},
        {true, 'c', 136, -1, "rwm"}, {true, 'c', 5, 2, "rwm"}, {true, 'c', 10, 200, "rwm"},
    };
    return rules;
}

std::vector<DeviceRule> device_rules(const nlohmann::json& resources) {
    using namespace detail;
    std::vector<DeviceRule> out;
    // runc starts from "deny all" (its emulator's zero value); v1 gets an explicit "a" deny first.
    out.push_back({false, 'a', -1, -1, "rwm"});
    if (auto* devs = member(resources, "devices")) {
        if (!devs->is_array()) fail("linux.resources.devices: expected an array");
        for (size_t i = 0; i < devs->size(); ++i) {
            const auto& d = (*devs)[i];
            std::string path = "linux.resources.devices[" + std::to_string(i) + "]";
            if (!d.is_object()) fail(path + ": expected an object");
            DeviceRule r;
            auto allow = get_bool(d, "allow", path);
            if (!allow) fail(path + ".allow: required");
            r.allow = *allow;
            auto type = get_str(d, "type", path).value_or("a");
            if (type != "a" && type != "b" && type != "c")
                fail(path + ".type: invalid device type \"" + type + "\" (want a, b or c)");
            r.type = type[0];
            r.major = get_i64(d, "major", path).value_or(-1);
            r.minor = get_i64(d, "minor", path).value_or(-1);
            if (r.major < -1 || r.major > UINT32_MAX) fail(path + ".major: out of range");
            if (r.minor < -1 || r.minor > UINT32_MAX) fail(path + ".minor: out of range");
            // runc: "device access at %d field cannot be empty".
            auto access = get_str(d, "access", path);
            if (!access || access->empty()) fail(path + ".access: must not be empty");
            for (char c : *access)
                if (c != 'r' && c != 'w' && c != 'm')
                    fail(path + ".access: invalid access \"" + *access + "\" (want a subset of rwm)");
            r.access = *access;
            // runc spec's default starts with {allow:false, access:rwm}: the deny-all we already hold.
            if (!r.allow && r.type == 'a' && r.major == -1 && r.minor == -1 && r.access == "rwm" && out.size() == 1)
                continue;
            out.push_back(r);
        }
    }
    for (auto& r : default_allowed_devices()) out.push_back(r);
    return out;
}

namespace detail {

namespace {
std::string num(int64_t v) { return v < 0 ? "*" : std::to_string(v); }
unsigned access_bits(const std::string& a) {
    unsigned b = 0;
    for (char c : a) b |= c == 'r' ? 1u : c == 'w' ? 2u : c == 'm' ? 4u : 0u;
    return b;
}
std::string access_string(unsigned b) {
    std::string s;
    if (b & 1) s += 'r';
    if (b & 2) s += 'w';
    if (b & 4) s += 'm';
    return s;
}
}  // namespace

std::string v1_rule_string(const DeviceRule& r) {
    if (r.type == 'a') return "a";  // the kernel treats "a" as "a *:* rwm" whatever follows
    return std::string(1, r.type) + " " + num(r.major) + ":" + num(r.minor) + " " + r.access;
}

DeviceState emulate_devices(const std::vector<DeviceRule>& rules) {
    DeviceState st;
    for (const auto& r : rules) {
        if (r.type == 'a') {
            st.default_allow = r.allow;
            st.exceptions.clear();
            continue;
        }
        auto same = [&](const DeviceRule& e) { return e.type == r.type && e.major == r.major && e.minor == r.minor; };
        if (r.allow == st.default_allow) {
            // dev_exception_rm: clear these access bits from the identical exception.
            for (auto it = st.exceptions.begin(); it != st.exceptions.end(); ++it) {
                if (!same(*it)) continue;
                unsigned left = access_bits(it->access) & ~access_bits(r.access);
                if (left == 0) st.exceptions.erase(it);
                else it->access = access_string(left);
                break;
            }
        } else {
            // dev_exception_add: widen an identical exception or append.
            bool merged = false;
            for (auto& e : st.exceptions) {
                if (!same(e)) continue;
                e.access = access_string(access_bits(e.access) | access_bits(r.access));
                merged = true;
                break;
            }
            if (!merged) {
                DeviceRule e = r;
                e.access = access_string(access_bits(r.access));
                st.exceptions.push_back(e);
            }
        }
    }
    return st;
}

}  // namespace detail
}  // namespace trustme::cgroups
