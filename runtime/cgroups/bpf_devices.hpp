// The cgroup v2 device filter (eBPF, BPF_CGROUP_DEVICE).
#pragma once
#include <linux/bpf.h>

#include <string>
#include <vector>

#include "runtime/cgroups/internal.hpp"

namespace trustme::cgroups::detail {

std::vector<bpf_insn> build_device_program(const DeviceState& st);
// Load a program for `rules`, attach it to the cgroup directory with BPF_F_ALLOW_MULTI, then detach
// whatever device programs were attached there before.
void attach_device_filter(const std::string& cgroup_dir, const std::vector<DeviceRule>& rules);

}  // namespace trustme::cgroups::detail
