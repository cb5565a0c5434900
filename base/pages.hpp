// Page faults are the start path's largest cost on the VM we measure on (12-13 us each, ~250 per `run`
// before these helpers; docs/benchmark.md "Page faults"); one madvise(MADV_POPULATE_*, Linux 5.14; an older
// kernel just faults as before) makes a whole range present for about the price of one fault.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace trustme::pages {

// create/run/exec, first thing: the heap the start path will grow into, grown to 288 KiB at once (glibc:
// M_TOP_PAD, and no trimming below it), and the top 64 KiB of the stack (the kernel maps 128 KiB of stack
// at exec, so that range is inside its mapping), made present with one MADV_POPULATE_WRITE each.
void prefault_heap_and_stack();

// Exactly the pages of our own executable that were present before something dropped them (the seal's
// remap; fork, which does not copy the page table entries of a file mapping) are mapped again, one call
// per run, so resident memory does not grow.
using Runs = std::vector<std::pair<uintptr_t, uintptr_t>>;  // [begin, end) page runs

// Where our executable is loaded (what its virtual addresses are offset by); false if that cannot be told.
bool load_bias(uintptr_t& bias);
// The present pages of this process's read-only and executable PT_LOAD segments (from /proc/self/pagemap;
// empty when it cannot be read).
Runs present_exe_pages();
// MADV_POPULATE_READ over each run (Linux 5.14; nothing happens on an older kernel).
void populate(const Runs& runs);

}  // namespace trustme::pages
