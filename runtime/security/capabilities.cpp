// process.capabilities: names resolved with libcap in the parent; applied in the child with prctl and the
// raw capset syscall, so the child neither allocates nor depends on libcap's process state.
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "base/log.hpp"
#include "runtime/security/json_util.hpp"
#include "runtime/security/security.hpp"

namespace trustme::security {
using nlohmann::json;
using namespace detail;

namespace {

// warn=false for validate_process_extras: the runtime validates and then parses the same config, and the
// spec's warning for an ungrantable name should be printed once.
std::vector<cap_value_t> parse_set(const json& caps, const char* name, const std::string& base, bool warn) {
    std::vector<cap_value_t> out;
    const json* set = field(caps, name);
    if (!set) return out;
    std::string path = key(base, name);
    expect_array(*set, path);
    const int kernel_caps = static_cast<int>(cap_max_bits());  // cap_last_cap + 1
    for (size_t i = 0; i < set->size(); ++i) {
        std::string p = idx(path, i);
        std::string cap = as_string((*set)[i], p);
        // runtime-spec 1.1 (config.md, capabilities): "Any value which cannot be mapped to a relevant kernel
        // interface, or cannot be granted otherwise MUST be logged as a warning by the runtime. Runtimes SHOULD
        // NOT fail if the container configuration requests capabilities that cannot be granted." runc and crun
        // warn too. An ungrantable name only ever means fewer privileges, so a warning naming the field is safe.
        // cap_from_name also takes numbers and "all"; the spec only has CAP_* names.
        std::string lower = cap;
        for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        cap_value_t v;
        if (cap.rfind("CAP_", 0) != 0 || cap_from_name(lower.c_str(), &v) != 0) {
            if (warn) log::warn(p + ": unknown capability " + cap + ", ignored");
            continue;
        }
        if (v >= kernel_caps) {
            // Known to libcap but newer than this kernel: runc ignores such names (with a warning).
            log::debug(p + ": capability " + cap + " not supported by this kernel, ignored");
            continue;
        }
        if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
    }
    return out;
}

// For error messages only (allocates): "CAP_KILL" for 5.
std::string cap_name(cap_value_t v) {
    char* n = cap_to_name(v);
    std::string s = n ? n : std::to_string(v);
    cap_free(n);
    for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

uint64_t mask_of(const std::vector<cap_value_t>& set) {
    uint64_t m = 0;
    for (cap_value_t v : set) m |= uint64_t{1} << v;
    return m;
}

}  // namespace

namespace detail {
Capabilities parse_capabilities(const json& caps, bool warn) {
    Capabilities c;
    if (caps.is_null()) return c;
    const std::string base = "process.capabilities";
    expect_object(caps, base);
    c.present = true;
    c.bounding = parse_set(caps, "bounding", base, warn);
    c.effective = parse_set(caps, "effective", base, warn);
    c.inheritable = parse_set(caps, "inheritable", base, warn);
    c.permitted = parse_set(caps, "permitted", base, warn);
    c.ambient = parse_set(caps, "ambient", base, warn);
    return c;
}
}  // namespace detail

Capabilities parse_capabilities(const json& caps) { return detail::parse_capabilities(caps, true); }

std::vector<std::string> known_capabilities() {
    std::vector<std::string> out;
    const int n = static_cast<int>(cap_max_bits());
    for (int v = 0; v < n; ++v) {
        std::string name = cap_name(v);
        if (name.rfind("CAP_", 0) == 0) out.push_back(name);  // libcap prints unnamed ones as numbers
    }
    return out;
}

void apply_bounding(const Capabilities& c) {
    if (!c.present) return;
    const uint64_t keep = mask_of(c.bounding);
    // PR_CAPBSET_DROP of a capability already out of the set succeeds, and EINVAL means one past the
    // kernel's last capability (they are numbered without gaps: prctl(2), cap_valid()), so one call per
    // capability and no PR_CAPBSET_READ probe.
    for (int v = 0; v <= 63; ++v) {
        if (keep & (uint64_t{1} << v)) continue;
        if (prctl(PR_CAPBSET_DROP, v, 0, 0, 0) == 0) continue;
        const int err = errno;
        if (err == EINVAL) break;
        if (err == EPERM && prctl(PR_CAPBSET_READ, v, 0, 0, 0) == 0) continue;  // without CAP_SETPCAP: already out
        fail(err, "process.capabilities.bounding: dropping " + cap_name(v));
    }
}

void apply_after_user_switch(const Capabilities& c) {
    if (!c.present) return;
    // capset(2) with _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set.
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    const uint64_t eff = mask_of(c.effective), prm = mask_of(c.permitted), inh = mask_of(c.inheritable);
    for (int w = 0; w < 2; ++w) {
        data[w].effective = static_cast<uint32_t>(eff >> (32 * w));
        data[w].permitted = static_cast<uint32_t>(prm >> (32 * w));
        data[w].inheritable = static_cast<uint32_t>(inh >> (32 * w));
    }
    if (syscall(SYS_capset, &hdr, data) < 0) {
        const int err = errno;
        // Name the culprits (capabilities(7), capset rules): permitted may only shrink, effective must be
        // within permitted, inheritable within the bounding set. A runtime started without a capability
        // (this project's test host lacks CAP_SYS_RESOURCE) cannot hand it to a container.
        __user_cap_data_struct cur[2]{};
        syscall(SYS_capget, &hdr, cur);
        const uint64_t cur_prm = cur[0].permitted | uint64_t{cur[1].permitted} << 32;
        const uint64_t cur_inh = cur[0].inheritable | uint64_t{cur[1].inheritable} << 32;
        std::string why;
        for (int v = 0; v <= 63; ++v) {
            const uint64_t b = uint64_t{1} << v;
            const char* reason = nullptr;
            if ((prm & b) && !(cur_prm & b)) reason = " (not held by the runtime)";
            else if ((eff & b) && !(prm & b)) reason = " (effective but not permitted)";
            else if ((inh & b) && !(cur_inh & b) && prctl(PR_CAPBSET_READ, v, 0, 0, 0) != 1)
                reason = " (inheritable outside the bounding set)";
            if (reason) why += (why.empty() ? ": " : ", ") + cap_name(v) + reason;
        }
        fail(err, "process.capabilities: setting effective/permitted/inheritable" + why);
    }
    // The ambient set only holds capabilities that are permitted and inheritable (capabilities(7)).
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        fail_errno("clearing the ambient capability set");
    for (cap_value_t v : c.ambient) {
        // runc and crun skip ambient capabilities that are not also inheritable and permitted (runc spec's
        // own default lists ambient caps without inheritable ones, and both run it with CapAmb 0).
        const uint64_t b = uint64_t{1} << v;
        if (!(inh & b) || !(prm & b)) {
            log::debug("process.capabilities.ambient: " + cap_name(v) + " is not inheritable and permitted, skipped");
            continue;
        }
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, v, 0, 0) < 0)
            fail_errno("process.capabilities.ambient: raising " + cap_name(v));
    }
}

}  // namespace trustme::security
