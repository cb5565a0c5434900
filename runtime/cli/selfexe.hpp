#pragma once
namespace trustme::cli {
// CVE-2019-5736: a container process must never be able to write the runtime binary through
// /proc/<pid>/exe. Before create/run/exec, unless the binary already sits on a read-only mount, make a
// detached, read-only bind mount of the binary (open_tree + mount_setattr) and move this process's exe
// onto it in place (remap our segments from it, then PR_SET_MM_MAP exe_fd), or, where the kernel refuses
// that, re-exec through it. The container-facing /proc/self/exe then names a file on a read-only mount
// (writes fail with EROFS) and nothing is copied (runc 1.1 and crun copy the whole binary into a memfd per
// start). Where no mount can be made, it re-executes from a sealed memfd copy. It fails closed: if neither
// works it throws, and the command does not run.
void seal_self_exe(char** argv);
}  // namespace trustme::cli
