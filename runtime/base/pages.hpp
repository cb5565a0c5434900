// Page faults are the start path's largest cost on the VM we measure on (12-13 us each, docs/benchmark.md
// "Page faults"); one madvise(MADV_POPULATE_READ) maps a whole run of pages for about the price of one.
// These helpers map again, in one call per run, exactly the pages of our own executable that were present
// before something dropped them (the seal's remap; fork, which does not copy the page table entries of a
// file mapping), so resident memory does not grow.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace trustme::pages {

using Runs = std::vector<std::pair<uintptr_t, uintptr_t>>;  // [begin, end) page runs

// Where our executable is loaded (what its virtual addresses are offset by); false if that cannot be told.
bool load_bias(uintptr_t& bias);
// The present pages of this process's read-only and executable PT_LOAD segments (from /proc/self/pagemap;
// empty when it cannot be read).
Runs present_exe_pages();
// MADV_POPULATE_READ over each run (Linux 5.14; nothing happens on an older kernel).
void populate(const Runs& runs);

}  // namespace trustme::pages
