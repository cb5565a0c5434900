#include "base/pages.hpp"

#include <elf.h>
#include <fcntl.h>
#include <malloc.h>
#include <link.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/fd.hpp"
#include "base/procfs.hpp"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace trustme::pages {

bool load_bias(uintptr_t& bias) {
    const auto* ph = reinterpret_cast<const ElfW(Phdr)*>(::getauxval(AT_PHDR));
    const size_t n = ::getauxval(AT_PHNUM);
    if (!ph || !n) return false;
    for (size_t i = 0; i < n; ++i)
        if (ph[i].p_type == PT_PHDR) {
            bias = reinterpret_cast<uintptr_t>(ph) - ph[i].p_vaddr;
            return true;
        }
    // A static-pie has no PT_PHDR. Its program headers follow the ELF header, both in the first page, mapped
    // from file offset 0 at virtual address 0: the header's address is the bias.
    const auto* eh = reinterpret_cast<const ElfW(Ehdr)*>(reinterpret_cast<uintptr_t>(ph) - sizeof(ElfW(Ehdr)));
    if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_phoff != sizeof(ElfW(Ehdr))) return false;
    bias = reinterpret_cast<uintptr_t>(eh);
    return true;
}

Runs present_exe_pages() {
    Runs runs;
    const auto* ph = reinterpret_cast<const ElfW(Phdr)*>(::getauxval(AT_PHDR));
    const size_t n = ::getauxval(AT_PHNUM);
    const uintptr_t page = ::getauxval(AT_PAGESZ);
    uintptr_t bias = 0;
    if (!page || !load_bias(bias)) return runs;
    UniqueFd pm(procfs::open("self/pagemap", O_RDONLY));
    if (!pm) return runs;
    uint64_t entries[512];
    for (size_t i = 0; i < n; ++i) {
        if (ph[i].p_type != PT_LOAD || (ph[i].p_flags & PF_W)) continue;
        uintptr_t a = (bias + ph[i].p_vaddr) & ~(page - 1);
        const uintptr_t end = (bias + ph[i].p_vaddr + ph[i].p_filesz + page - 1) & ~(page - 1);
        while (a < end) {
            const size_t count = std::min<size_t>(512, (end - a) / page);
            const ssize_t got = ::pread(pm.get(), entries, count * 8, static_cast<off_t>(a / page * 8));
            if (got <= 0) return Runs();
            for (size_t k = 0; k < static_cast<size_t>(got) / 8; ++k, a += page) {
                if (!(entries[k] >> 63)) continue;  // bit 63: present
                if (!runs.empty() && runs.back().second == a) runs.back().second = a + page;
                else runs.emplace_back(a, a + page);
            }
        }
    }
    return runs;
}

void prefault_heap_and_stack() {
    constexpr uintptr_t kStartStack = 64 * 1024;
    const uintptr_t sp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0)) & ~uintptr_t(4095);
    ::madvise(reinterpret_cast<void*>(sp - kStartStack), kStartStack, MADV_POPULATE_WRITE);

    constexpr size_t kStartHeap = 288 * 1024;  // a default-spec `run` grows the heap to 264 KiB
    struct mallinfo2 mi = ::mallinfo2();
    if (mi.arena < kStartHeap) {
        ::mallopt(M_MMAP_THRESHOLD, 1 << 20);  // the request below must come from the heap
        ::mallopt(M_TRIM_THRESHOLD, 1 << 20);
        ::mallopt(M_TOP_PAD, static_cast<int>(kStartHeap - mi.arena));
        void* p = ::malloc(mi.keepcost + 64);    // more than the top chunk holds: the heap grows by the pad
        asm volatile("" : : "r"(p) : "memory");  // not elided with the free below
        ::free(p);
        mi = ::mallinfo2();
    }
    const uintptr_t end = reinterpret_cast<uintptr_t>(::sbrk(0));
    const uintptr_t begin = (end - mi.arena) & ~uintptr_t(4095);  // a static binary's TLS shares the first page
    ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
}

void populate(const Runs& runs) {
    for (auto& [b, e] : runs) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_POPULATE_READ);
}

}  // namespace trustme::pages
