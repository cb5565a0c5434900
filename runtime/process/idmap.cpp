#include "runtime/process/idmap.hpp"

#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/process/rootfs.hpp"
#include "base/procfs.hpp"
#include "base/error.hpp"
#include "base/files.hpp"

namespace trustme::process::rootfs {

void write_id_map(pid_t pid, const char* file, const std::vector<oci::IdMapping>& maps) {
    std::string text;
    for (auto& m : maps)
        text += std::to_string(m.container_id) + " " + std::to_string(m.host_id) + " " + std::to_string(m.size) + "\n";
    procfs::write(std::to_string(pid) + "/" + file, text);
}

UniqueFd make_userns(const std::vector<oci::IdMapping>& uids, const std::vector<oci::IdMapping>& gids) {
    // A child that only waits in a new user namespace; its maps are written from here, where we hold
    // CAP_SETUID/CAP_SETGID over the parent namespace (so setgroups need not be denied), then its namespace
    // is kept by an fd and the child is gone.
    int hold[2];
    if (::pipe2(hold, O_CLOEXEC) < 0) fail_errno("idmapped mount: pipe");
    UniqueFd rd(hold[0]), wr(hold[1]);
    pid_t pid = static_cast<pid_t>(::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
    if (pid < 0) fail_errno("idmapped mount: new user namespace");
    if (pid == 0) {
        char c;
        wr.reset();                      // the child's copy: the parent's end alone keeps the pipe open
        (void)!::read(rd.get(), &c, 1);  // EOF when the parent is done (or gone)
        ::_exit(0);
    }
    rd.reset();
    struct Reap {
        pid_t pid;
        ~Reap() {
            ::kill(pid, SIGKILL);
            while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
            }
        }
    } reap{pid};
    const std::string proc = std::to_string(pid) + "/";
    write_id_map(pid, "uid_map", uids);
    write_id_map(pid, "gid_map", gids);
    UniqueFd ns(procfs::open_link(proc + "ns/user", O_RDONLY));
    if (!ns) fail_errno("idmapped mount: open /proc/" + proc + "ns/user");
    return ns;
}

void prepare_idmapped_mounts(oci::Config& cfg, const std::string& bundle, std::vector<UniqueFd>& held) {
    // One user namespace per distinct mapping (the usual case is one: the container's own).
    struct Ns {
        const oci::Mount* like;
        UniqueFd fd;
    };
    std::vector<Ns> made;
    for (size_t i = 0; i < cfg.mounts.size(); ++i) {
        oci::Mount& m = cfg.mounts[i];
        if (m.idmap == oci::Mount::Idmap::None) continue;
        const std::string what = "mounts[" + std::to_string(i) + "] " + m.destination;
        int userns = -1;
        for (auto& n : made)
            if (n.like->uid_mappings == m.uid_mappings && n.like->gid_mappings == m.gid_mappings) userns = n.fd.get();
        if (userns < 0) {
            made.push_back({&m, make_userns(m.uid_mappings, m.gid_mappings)});
            userns = made.back().fd.get();
        }
        std::string src = m.source;
        if (!src.empty() && src[0] != '/') src = bundle + "/" + src;
        const bool rec = (m.flags & MS_REC) != 0;
        UniqueFd tree(
            ::open_tree(AT_FDCWD, src.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (rec ? AT_RECURSIVE : 0)));
        if (!tree) fail_errno(what + ": bind " + src);
        // A clone made here of a shared mount would share its peer group with the host: private first.
        struct mount_attr priv {};
        priv.propagation = MS_PRIVATE;
        if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &priv, sizeof priv) < 0)
            fail_errno(what + ": make the clone private");
        // idmap maps the top mount only, ridmap every mount of an rbind (runtime-spec config.md, 1.2).
        struct mount_attr a {};
        a.attr_set = MOUNT_ATTR_IDMAP;
        a.userns_fd = static_cast<uint64_t>(userns);
        const bool all = rec && m.idmap == oci::Mount::Idmap::Recursive;
        if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH | (all ? AT_RECURSIVE : 0), &a, sizeof a) < 0) {
            if (errno == EINVAL)
                fail(what + ": source " + src +
                     ": cannot be idmapped (its filesystem does not support idmapped "
                     "mounts, or it is already idmapped)");
            fail_errno(what + ": idmap " + src);
        }
        set_mount_attrs(tree.get(), m, what);
        m.detached_fd = tree.get();
        held.push_back(std::move(tree));
    }
}

}  // namespace trustme::process::rootfs
