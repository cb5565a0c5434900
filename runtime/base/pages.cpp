#include "pages.hpp"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "fd.hpp"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
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
    UniqueFd pm(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
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

void populate(const Runs& runs) {
    for (auto& [b, e] : runs) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_POPULATE_READ);
}

}  // namespace trustme::pages
