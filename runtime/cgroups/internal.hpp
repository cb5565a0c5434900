// Helpers shared by the v1 and v2 managers (not part of the public interface).
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/cgroups/cgroups.hpp"

namespace trustme::cgroups::detail {

inline constexpr const char* kCgroupRoot = "/sys/fs/cgroup";

// runc's utils.CleanPath: lexical clean; a relative path is cleaned as if rooted at "/" first, so it
// can never climb out with "..".
std::string clean_path(const std::string& path);
std::string path_join(const std::string& a, const std::string& b);  // a + "/" + b without doubled '/'
std::string dirname(const std::string& path);

// One cgroup filesystem mount from /proc/self/mountinfo.
struct CgroupMount {
    std::string root;        // the hierarchy path mounted (field 4), "/" normally
    std::string mountpoint;  // field 5, octal escapes decoded
    bool v2 = false;
    std::vector<std::string> controllers;  // v1: from super options ("cpu", "name=systemd", ...)
};
// All cgroup and cgroup2 mounts; first mount of each hierarchy wins (bind mounts come later).
std::vector<CgroupMount> cgroup_mounts();
// /proc/self/cgroup: v1 controller (each of a comma list, and "name=x") → path; v2 under key "".
std::map<std::string, std::string> own_cgroups();

// File access with errors that name the full path and the value.
void write_value(const std::string& dir, std::string_view file, const std::string& value);
std::string read_value(const std::string& dir, std::string_view file);  // trailing newline stripped
std::optional<std::string> try_read(const std::string& dir, std::string_view file);
bool exists(const std::string& dir, std::string_view file);
uint64_t parse_u64(const std::string& s);  // "max" → UINT64_MAX; garbage → 0
// "key value" lines (memory.stat, cpu.stat, ...).
std::map<std::string, uint64_t> read_keyed(const std::string& dir, std::string_view file);

std::vector<pid_t> read_procs(const std::string& dir);
// Write a pid to dir/cgroup.procs, retrying EINVAL a few times (a task still in TASK_NEW; as runc).
void write_pid(const std::string& dir, pid_t pid);

// errno-returning write (0 when written), for the places where runc retries another way.
int try_write(const std::string& dir, std::string_view file, const std::string& value);
// The child cgroups (subdirectories) of dir, appended to `out` as paths; false (errno set) when dir cannot
// be read.
bool child_cgroups(const std::string& dir, std::vector<std::string>& out);
// The pids of dir and of the cgroups below it (at most 32 levels down), appended to `out`.
void collect_pids(const std::string& dir, std::vector<pid_t>& out, int depth = 0);

// mkdir -p; appends each directory it created to `made` (outermost first).
void mkdir_p(const std::string& dir, std::vector<std::string>& made);
// Remove dir and any child cgroups (depth first), retrying EBUSY a bounded number of times.
// A missing dir is fine (idempotent). Throws only if a dir remains.
void remove_cgroup_dir(const std::string& dir);

// JSON accessors for linux.resources, with the JSON path in errors.
const nlohmann::json* member(const nlohmann::json& obj, const char* key);
std::optional<int64_t> get_i64(const nlohmann::json& obj, const char* key, const std::string& path);
std::optional<uint64_t> get_u64(const nlohmann::json& obj, const char* key, const std::string& path);
std::optional<std::string> get_str(const nlohmann::json& obj, const char* key, const std::string& path);
std::optional<bool> get_bool(const nlohmann::json& obj, const char* key, const std::string& path);

// linux.resources.cpu as both managers read it (errors name the JSON path `path`).
struct CpuResources {
    std::optional<uint64_t> shares, period, burst, rt_period;
    std::optional<int64_t> quota, rt_runtime, idle;
};
CpuResources read_cpu(const nlohmann::json& cpu, const std::string& path);

// cgroup v1 "c 1:3 rwm" form of a rule ("a" for the type-a reset rules).
std::string v1_rule_string(const DeviceRule& r);
// The effective exception list after applying rules in order with the kernel's v1 semantics
// (security/device_cgroup.c devcgroup_update_access): a type-'a' rule resets the default and clears the
// list; a rule whose action equals the default removes its access bits from an exception with the same
// type/major/minor; any other rule adds (or widens) an exception.
struct DeviceState {
    bool default_allow = false;
    std::vector<DeviceRule> exceptions;  // each with allow = !default_allow
};
DeviceState emulate_devices(const std::vector<DeviceRule>& rules);

// Conversions from OCI (v1-shaped) values to cgroup v2 files; sources cited in convert.cpp.
uint64_t shares_to_weight(uint64_t shares);
uint64_t blkio_weight_to_io_weight(uint64_t weight);
// Returns the memory.swap.max value: -1 = "max", 0 = leave unset; throws on an inconsistent pair.
int64_t swap_to_v2(int64_t swap, int64_t limit);
// "2MB" → "2MB" (validated), used in hugetlb.<size>.* file names.
bool valid_hugepage_size(const std::string& s);

// linux.resources.rdma → rdma.max lines "<device> hca_handle=N hca_object=M" (runc fscommon/rdma.go;
// v1 and v2 share the file format).
std::vector<std::string> rdma_lines(const nlohmann::json& rdma);

// runc's Stats with every top-level key present and empty.
nlohmann::json empty_stats();
// runc CPUSet stats: "cpus"/"mems" as expanded lists, plus the v1 flag files where they exist.
nlohmann::json cpuset_stats(const std::string& dir, const char* cpus_file, const char* mems_file);

std::unique_ptr<Manager> make_legacy(const std::string& inner, bool absolute);
std::unique_ptr<Manager> make_unified(const std::string& inner, bool absolute);
std::unique_ptr<Manager> load_legacy(const nlohmann::json& saved);
std::unique_ptr<Manager> load_unified(const nlohmann::json& saved);
std::unique_ptr<Manager> make_systemd(const std::string& cgroups_path, const std::string& id,
                                      const std::map<std::string, std::string>* annotations, bool user);
std::unique_ptr<Manager> load_systemd(const nlohmann::json& saved);

}  // namespace trustme::cgroups::detail
