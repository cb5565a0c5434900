#include "runtime/cli/selfexe.hpp"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <linux/prctl.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/pages.hpp"
#include "base/log.hpp"
#include "runtime/container/plugins.hpp"
#include "base/procfs.hpp"

extern char** environ;

namespace trustme::cli {

namespace {

// Our own program as the kernel and ld.so loaded it: its program headers (from the auxiliary vector), the
// page size, the load bias and its PT_GNU_RELRO range (0, 0 when it has none).
struct Image {
    const ElfW(Phdr) * ph = nullptr;
    size_t n = 0;
    uintptr_t page = 0, bias = 0, relro_begin = 0, relro_end = 0;
    uintptr_t down(uintptr_t a) const { return a & ~(page - 1); }
    uintptr_t up(uintptr_t a) const { return (a + page - 1) & ~(page - 1); }
};

bool read_image(Image& img) {
    img.ph = reinterpret_cast<const ElfW(Phdr)*>(::getauxval(AT_PHDR));
    img.n = ::getauxval(AT_PHNUM);
    img.page = ::getauxval(AT_PAGESZ);
    if (!img.ph || !img.n || !img.page) return false;
    if (!pages::load_bias(img.bias)) return false;
    for (size_t i = 0; i < img.n; ++i) {
        if (img.ph[i].p_type == PT_GNU_RELRO) {
            img.relro_begin = img.ph[i].p_vaddr;
            img.relro_end = img.ph[i].p_vaddr + img.ph[i].p_memsz;
        }
    }
    return true;
}

// The file must be the program that is mapped (not, say, ld.so run as `ld.so trustme-runtime`, where
// /proc/self/exe is ld.so): its program headers, read from the file, must be the ones in memory.
bool file_is_image(int fd, const Image& img) {
    ElfW(Ehdr) eh;
    if (::pread(fd, &eh, sizeof eh, 0) != static_cast<ssize_t>(sizeof eh) || eh.e_phnum != img.n ||
        eh.e_phentsize != sizeof(ElfW(Phdr)))
        return false;
    std::vector<ElfW(Phdr)> file_ph(img.n);
    const ssize_t want = static_cast<ssize_t>(img.n * sizeof(ElfW(Phdr)));
    return ::pread(fd, file_ph.data(), static_cast<size_t>(want), static_cast<off_t>(eh.e_phoff)) == want &&
           std::memcmp(file_ph.data(), img.ph, static_cast<size_t>(want)) == 0;
}

// Segments that share a page cannot be remapped one by one.
bool segments_share_a_page(const Image& img) {
    uintptr_t last_end = 0;
    for (size_t i = 0; i < img.n; ++i) {
        if (img.ph[i].p_type != PT_LOAD) continue;
        if (img.down(img.ph[i].p_vaddr) < last_end) return true;
        last_end = img.up(img.ph[i].p_vaddr + img.ph[i].p_memsz);
    }
    return false;
}

// The writable PT_LOAD: copied into anonymous memory that one mremap puts in its place, then the RELRO
// pages read-only again. Returns 0 or an errno.
int replace_writable(const Image& img, const ElfW(Phdr) & seg) {
    const uintptr_t begin = img.bias + img.down(seg.p_vaddr);
    const uintptr_t end = img.bias + img.up(seg.p_vaddr + seg.p_memsz);
    const size_t len = end - begin;
    void* copy = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (copy == MAP_FAILED) return errno;
    std::memcpy(copy, reinterpret_cast<void*>(begin), len);
    if (::mremap(copy, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, reinterpret_cast<void*>(begin)) !=
        reinterpret_cast<void*>(begin)) {
        int e = errno;
        ::munmap(copy, len);
        return e;
    }
    // ld.so's _dl_protect_relro rounds both ends of PT_GNU_RELRO down to a page.
    const uintptr_t rb = img.bias + img.down(img.relro_begin), re = img.bias + img.down(img.relro_end);
    if (img.relro_end && rb >= begin && re <= end && re > rb &&
        ::mprotect(reinterpret_cast<void*>(rb), re - rb, PROT_READ) < 0)
        return errno;
    return 0;
}

// A read-only or executable PT_LOAD: mapped again, MAP_FIXED, from fd at the same offset. Returns 0 or an errno.
int remap_from_file(const Image& img, const ElfW(Phdr) & seg, int fd) {
    const uintptr_t begin = img.bias + img.down(seg.p_vaddr);
    const uintptr_t end = img.bias + img.up(seg.p_vaddr + seg.p_filesz);
    const int prot = ((seg.p_flags & PF_R) ? PROT_READ : 0) | ((seg.p_flags & PF_X) ? PROT_EXEC : 0);
    if (::mmap(reinterpret_cast<void*>(begin), end - begin, prot, MAP_PRIVATE | MAP_FIXED, fd,
               static_cast<off_t>(img.down(seg.p_offset))) != reinterpret_cast<void*>(begin))
        return errno;
    return 0;
}

// The fields of PR_SET_MM_MAP other than exe_fd and brk, as they are now: /proc/self/stat fields 26-28
// and 45-51 (proc(5)). Returns 0 or an errno.
int current_mm_map(prctl_mm_map& m) {
    // proc(5) stat fields 3.. follow the last ')' (the command name may contain spaces and parentheses).
    char stat[1024];
    UniqueFd sf(procfs::open("self/stat", O_RDONLY));
    if (!sf) return errno;
    ssize_t k = ::read(sf.get(), stat, sizeof stat - 1);
    if (k <= 0) return k < 0 ? errno : EIO;
    stat[k] = '\0';
    char* p = std::strrchr(stat, ')');
    if (!p) return EIO;
    unsigned long long f[53] = {};
    ++p;
    for (int field = 3; field < 53 && *p; ++field) {
        while (*p == ' ') ++p;
        char* e = nullptr;
        f[field] = std::strtoull(p, &e, 10);  // field 3 (state) is a letter: 0
        while (*e && *e != ' ') ++e;
        p = e;
    }
    m.start_code = f[26];
    m.end_code = f[27];
    m.start_stack = f[28];
    m.start_data = f[45];
    m.end_data = f[46];
    m.start_brk = f[47];
    m.arg_start = f[48];
    m.arg_end = f[49];
    m.env_start = f[50];
    m.env_end = f[51];
    m.auxv = nullptr;  // auxv_size 0: the saved auxv is left as it is
    m.auxv_size = 0;
    return 0;
}

// Move every mapping of our own executable onto `fd` (the same inode, opened through the sealed mount), then
// point mm->exe_file at it. Returns 0 or an errno.
//
// Why this works: prctl(PR_SET_MM_EXE_FILE) refuses while the old exe is still mapped (kernel/fork.c
// replace_mm_exe_file compares each VMA's f_path with the old exe's, so the same inode reached through
// another mount does not count). So first, from the program headers:
//  - read-only and executable PT_LOADs are mapped again, MAP_FIXED, from `fd` at the same offsets: the same
//    page-cache pages, so no memory is copied and the running text does not change under us;
//  - the writable PT_LOAD (.data, the RELRO part already relocated by ld.so, .bss) holds private changes:
//    it is copied into anonymous memory, which one mremap(MREMAP_FIXED) puts in its place atomically (there
//    is no moment at which the GOT is missing), and the RELRO pages are made read-only again.
// Then PR_SET_MM_MAP with exe_fd sets the exe link. (PR_SET_MM_EXE_FILE alone needs CAP_SYS_RESOURCE, which
// some container hosts drop; PR_SET_MM_MAP needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN. Its other fields
// are given the values they have, read from /proc/self/stat (proc(5), fields 26-28 and 45-51) and brk(0).)
// Single-threaded, before anything else runs; any failure leaves the process as correct as before (the
// remapped pages are identical), and the caller falls back to re-executing through the sealed mount.
int reseat_exe(int fd) {
#if defined(__SANITIZE_ADDRESS__)
    // AddressSanitizer builds (docs/security.md): copying the writable segment reads the redzones between
    // globals, which ASan reports; those builds take the re-exec below instead.
    return ENOEXEC;
#endif
    Image img;
    if (!read_image(img) || !file_is_image(fd, img)) return ENOEXEC;
    // The remap drops the page table entries of our text: map again, after it, the pages that were present.
    const pages::Runs present = pages::present_exe_pages();
    if (segments_share_a_page(img)) return ENOEXEC;  // left to the re-exec
    for (size_t i = 0; i < img.n; ++i) {
        if (img.ph[i].p_type != PT_LOAD) continue;
        const int e =
            (img.ph[i].p_flags & PF_W) ? replace_writable(img, img.ph[i]) : remap_from_file(img, img.ph[i], fd);
        if (e) return e;
    }
    pages::populate(present);
    struct prctl_mm_map m {};
    if (int e = current_mm_map(m)) return e;
    m.exe_fd = static_cast<__u32>(fd);
    m.brk = static_cast<__u64>(::syscall(SYS_brk, 0));  // last, with no allocation after it
    if (::prctl(PR_SET_MM, PR_SET_MM_MAP, &m, sizeof m, 0) < 0) return errno;
    return 0;
}

}  // namespace

namespace {

constexpr unsigned kSeals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// In place or by re-executing through the read-only mount; returns only on failure, with the reason.
std::string seal_through_mount(int self, char** argv, const std::string& dir) {
    UniqueFd tree(::open_tree(self, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
    if (!tree) return errno_text("open_tree");
    struct mount_attr a {};
    a.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH, &a, sizeof a) < 0) return errno_text("mount_setattr");
    // Cheapest: stay in this process and move our exe onto the sealed mount (no exec, ~0.1 ms).
    char path[32];
    std::snprintf(path, sizeof path, "self/fd/%d", tree.get());
    UniqueFd file(procfs::open_link(path, O_RDONLY));
    int why = file ? reseat_exe(file.get()) : errno;
    if (why == 0) return {};
    log::debug(std::string("sealing the runtime binary in place failed (") + std::strerror(why) +
               "), re-executing through the sealed mount");
    // Re-execute through the sealed mount; the new process finds its exe read-only and stops there.
    ::setenv("_TRUSTME_EXE_DIR", dir.c_str(), 1);
    ::syscall(SYS_execveat, tree.get(), "", argv, environ, AT_EMPTY_PATH);
    return errno_text("execveat through the sealed mount");
}

// The fallback where no mount can be made (no CAP_SYS_ADMIN over our mount namespace: an unprivileged
// user namespace, a seccomp profile without the mount API): a copy of the binary in a memfd, sealed
// against every change (memfd_create(2), fcntl(2) F_ADD_SEALS; runc's libcontainer/dmz does the same), and
// re-executed from it. Needs no privilege. Returns only on failure, with the reason.
std::string exec_sealed_copy(char** argv, const std::string& dir) {
    UniqueFd self(procfs::open_link("self/exe", O_RDONLY));
    if (!self) return errno_text("open /proc/self/exe");
    struct stat st;
    if (::fstat(self.get(), &st) < 0) return errno_text("fstat /proc/self/exe");
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
    // MFD_EXEC: kernels with vm.memfd_noexec (6.3+) may refuse to execute a memfd made without it; older
    // kernels do not know the flag (EINVAL).
    UniqueFd mem(::memfd_create("trustme-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC));
    if (!mem && errno == EINVAL) mem.reset(::memfd_create("trustme-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!mem) return errno_text("memfd_create");
    off_t off = 0;
    while (off < st.st_size) {
        ssize_t n = ::sendfile(mem.get(), self.get(), &off, static_cast<size_t>(st.st_size - off));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? errno_text("copy into memfd") : "copy into memfd: short read";
    }
    if (::fcntl(mem.get(), F_ADD_SEALS, kSeals) < 0) return errno_text("seal memfd");
    ::setenv("_TRUSTME_EXE_DIR", dir.c_str(), 1);
    ::setenv("_TRUSTME_SEALED_COPY", "1", 1);
    ::syscall(SYS_execveat, mem.get(), "", argv, environ, AT_EMPTY_PATH);
    return errno_text("execveat of the sealed copy");
}

}  // namespace

void seal_self_exe(char** argv) {
    const std::string prefix = "cannot seal the runtime binary (CVE-2019-5736), not starting: ";
    if (std::getenv("_TRUSTME_SEALED_COPY")) {
        // We were re-executed from the sealed copy: check that this is so (the variable is only a hint,
        // anyone can set it), and fail rather than loop or run unsealed.
        ::unsetenv("_TRUSTME_SEALED_COPY");  // a twin we exec later seals itself anew
        UniqueFd self(procfs::open_link("self/exe", O_RDONLY));
        const int seals = self ? ::fcntl(self.get(), F_GET_SEALS) : -1;
        if (seals >= 0 && (static_cast<unsigned>(seals) & kSeals) == kSeals) {
            log::debug("running from a sealed copy of the runtime binary");
            return;
        }
        fail(prefix + "the re-executed program is not the sealed copy");
    }
    UniqueFd self(procfs::open_link("self/exe", O_PATH));
    if (!self) fail(prefix + errno_text("open /proc/self/exe"));
    struct statvfs sv;
    if (::fstatvfs(self.get(), &sv) == 0 && (sv.f_flag & ST_RDONLY)) return;  // already sealed
    // Plugins and helper binaries are found next to the original path, which the sealed exe no longer shows:
    // resolve it now (exe_dir() caches it).
    const std::string& dir = container::plugins::exe_dir();
    std::string why = seal_through_mount(self.get(), argv, dir);
    if (why.empty()) return;
    log::debug("sealing the runtime binary through a read-only mount failed (" + why +
               "), re-executing from a sealed copy");
    std::string why_copy = exec_sealed_copy(argv, dir);
    fail(prefix + why + "; sealed copy: " + why_copy);
}

}  // namespace trustme::cli
