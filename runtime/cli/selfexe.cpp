#include "selfexe.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "runtime/base/fd.hpp"
#include "runtime/base/log.hpp"
#include "runtime/container/plugins.hpp"

extern char** environ;

namespace trustme::cli {

void seal_self_exe(char** argv) {
    UniqueFd self(::open("/proc/self/exe", O_PATH | O_CLOEXEC));
    if (!self) return;
    struct statvfs sv;
    if (::fstatvfs(self.get(), &sv) == 0 && (sv.f_flag & ST_RDONLY)) return;  // already sealed
    UniqueFd tree(::open_tree(self.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
    if (!tree) {
        log::warn(std::string("cannot seal the runtime binary (CVE-2019-5736 protection): open_tree: ") + std::strerror(errno));
        return;
    }
    struct mount_attr a {};
    a.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH, &a, sizeof a) < 0) {
        log::warn(std::string("cannot seal the runtime binary: mount_setattr: ") + std::strerror(errno));
        return;
    }
    // Plugins and helper binaries are found next to the original path, which the sealed exe no longer shows.
    ::setenv("_TRUSTME_EXE_DIR", plugins::exe_dir().c_str(), 1);
    ::syscall(SYS_execveat, tree.get(), "", argv, environ, AT_EMPTY_PATH);
    log::warn(std::string("cannot seal the runtime binary: execveat: ") + std::strerror(errno));
}

}  // namespace trustme::cli
