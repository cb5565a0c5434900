// SELinux and AppArmor exec labels through procfs, without libselinux/libapparmor: the runtime's start-up
// must not pay for loading them (docs/DEVELOPING.md, "the lean path"), and the kernel interface is a
// single write.
#include <fcntl.h>
#include <unistd.h>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/log.hpp"
#include "base/procfs.hpp"
#include "runtime/security/security.hpp"

namespace trustme::security {

namespace {

bool file_exists(const char* path) { return access(path, F_OK) == 0; }

// Through the runtime's own procfs handle, never the container's /proc: a file mounted over
// attr/exec would take the label instead, and the process would run unconfined (CVE-2019-16884,
// CVE-2025-52881). procfs::write makes the one write(2) the LSM hooks parse.
void write_attr(const char* path, const std::string& value, const std::string& what) {
    try {
        procfs::write(path, value);
    } catch (const Error& e) {
        throw Error(what + ": " + e.what(), e.code());
    }
}

}  // namespace

bool selinux_enabled() {
    // go-selinux and libselinux decide the same way: selinuxfs is only registered when SELinux is the
    // active LSM, and it is mounted at /sys/fs/selinux. Cached: the answer cannot change under us.
    static const bool enabled = file_exists("/sys/fs/selinux/enforce");
    return enabled;
}

void set_exec_label(const std::string& label) {
    if (label.empty()) return;
    if (!selinux_enabled()) {
        log::debug("process.selinuxLabel: SELinux is not enabled, label " + label + " ignored");
        return;
    }
    // setexeccon(3) writes here: the label applies to the next execve of this thread. The kernel answers
    // EINVAL for a context the loaded policy does not know (security_context_to_sid).
    write_attr("thread-self/attr/exec", label, "process.selinuxLabel: setting exec label \"" + label + "\"");
}

std::string mount_label_option(const std::string& mount_label) {
    if (mount_label.empty() || !selinux_enabled()) return {};
    // Same quoting as go-selinux label.FormatMountLabel: contexts contain ':' and ',' (MLS ranges such
    // as s0:c1,c2), which the mount option parser only keeps together inside double quotes.
    return ",context=\"" + mount_label + "\"";
}

bool apparmor_enabled() {
    // runc's apparmor.IsEnabled: securityfs shows the apparmor directory and the module parameter says Y.
    static const bool enabled = [] {
        if (!file_exists("/sys/kernel/security/apparmor")) return false;
        UniqueFd fd(open("/sys/module/apparmor/parameters/enabled", O_RDONLY | O_CLOEXEC));
        char c = 0;
        return fd && read(fd.get(), &c, 1) == 1 && c == 'Y';
    }();
    return enabled;
}

void apply_apparmor(const std::string& profile) {
    if (profile.empty()) return;
    if (!apparmor_enabled()) {
        log::debug("process.apparmorProfile: AppArmor is not enabled, profile " + profile + " ignored");
        return;
    }
    // libapparmor's aa_change_onexec: "exec <profile>" to the AppArmor-specific attr directory (Linux
    // 5.1+, needed when several LSMs stack), else the shared attr/exec.
    const char* path =
        procfs::exists("thread-self/attr/apparmor/exec") ? "thread-self/attr/apparmor/exec" : "thread-self/attr/exec";
    write_attr(path, "exec " + profile, "process.apparmorProfile: changing to profile \"" + profile + "\" on exec");
}

}  // namespace trustme::security
