// SELinux labels where SELinux is the active LSM: the test VM (tests/vm, `--selinux`: the Debian policy
// loaded, permissive). Label vm-guest; skips itself elsewhere.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/xattr.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "tests/security/child.hpp"
#include "runtime/security/security.hpp"

using namespace trustme::security;
using namespace trustme::testing;

namespace {

bool in_guest_with_selinux() { return std::getenv("TRUSTME_VM_GUEST") && selinux_enabled(); }

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
    return s;
}

std::string xattr_label(const char* path) {
    char buf[512] = {};
    ssize_t n = getxattr(path, "security.selinux", buf, sizeof(buf) - 1);
    return n > 0 ? trim(std::string(buf, static_cast<size_t>(n))) : std::string();
}

}  // namespace

#define REQUIRE_SELINUX_GUEST() \
    if (!in_guest_with_selinux()) GTEST_SKIP() << "needs the test VM with SELinux (tests/vm/run-in-vm.sh --selinux)"

TEST(SelinuxGuest, Enabled) {
    REQUIRE_SELINUX_GUEST();
    EXPECT_TRUE(selinux_enabled());
}

// Runs set_exec_label(label) in a child that then execs cat /proc/self/attr/current; returns what cat saw,
// or "" when the child failed (exit code in *code).
static std::string context_after_exec(const std::string& label, int* code) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return {};
    trustme::UniqueFd rd(p[0]), wr(p[1]);
    pid_t pid = spawn([&] {
        rd.reset();
        set_exec_label(label);
        if (trim(read_file("/proc/thread-self/attr/exec")) != label) return 1;
        dup2(wr.get(), 1);
        execl("/bin/cat", "cat", "/proc/self/attr/current", nullptr);
        return 2;
    });
    wr.reset();
    std::string out;
    char buf[512];
    ssize_t n;
    while ((n = read(rd.get(), buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    auto r = wait_child(pid);
    *code = r.exited ? r.code : 128 + r.signal;
    return trim(out);
}

TEST(SelinuxGuest, ExecLabelIsWrittenAndAppliesAtExec) {
    REQUIRE_SELINUX_GUEST();
    // The current context is valid in any loaded policy.
    const std::string current = trim(read_file("/proc/self/attr/current"));
    ASSERT_FALSE(current.empty());
    int code = -1;
    EXPECT_EQ(context_after_exec(current, &code), current);
    EXPECT_EQ(code, 0);
    // A different domain of the reference policy (permissive: the transition is allowed and logged).
    int tried = 0;
    for (const char* other : {"system_u:system_r:initrc_t:s0", "unconfined_u:unconfined_r:unconfined_t:s0"}) {
        if (current == other) continue;
        std::string seen = context_after_exec(other, &code);
        if (code == 100) continue;  // not a valid context in this policy
        ++tried;
        EXPECT_EQ(code, 0) << other;
        EXPECT_EQ(seen, other);
    }
    if (tried == 0) std::printf("no second domain found in this policy; only the current context was checked\n");
}

TEST(SelinuxGuest, InvalidLabelIsAnError) {
    REQUIRE_SELINUX_GUEST();
    auto r = run_child([] {
        try {
            set_exec_label("no_such_u:no_such_r:no_such_t:s0");
        } catch (const trustme::Error& e) {
            std::string m = e.what();
            return m.find("process.selinuxLabel") != std::string::npos &&
                           m.find("Invalid argument") != std::string::npos
                       ? 0
                       : 1;
        }
        return 2;
    });
    EXPECT_EQ(r.code, 0);
}

TEST(SelinuxGuest, MountLabelOptionLabelsATmpfs) {
    REQUIRE_SELINUX_GUEST();
    // A context valid for files in this policy: whatever /tmp carries.
    const std::string ctx = xattr_label("/tmp");
    ASSERT_FALSE(ctx.empty());
    const std::string opt = mount_label_option(ctx);
    EXPECT_EQ(opt, ",context=\"" + ctx + "\"");
    char tmpl[] = "/tmp/trustme-mntlabel-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = tmpl;
    auto r = run_child([&] {
        if (unshare(CLONE_NEWNS) != 0) return 1;
        if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 2;
        // As the runtime builds it: existing options + the label option.
        std::string data = "mode=755,size=1m" + opt;
        if (mount("tmpfs", dir.c_str(), "tmpfs", 0, data.c_str()) != 0) return 3;
        if (xattr_label(dir.c_str()) != ctx) return 4;
        umount(dir.c_str());
        // Without other options the leading comma is harmless: the kernel skips empty options.
        if (mount("tmpfs", dir.c_str(), "tmpfs", 0, opt.c_str()) != 0) return 5;
        return xattr_label(dir.c_str()) == ctx ? 0 : 6;
    });
    std::filesystem::remove(dir);
    EXPECT_EQ(r.code, 0);
}
