// The systemd cgroup driver (`--systemd-cgroup`): names, paths and unit properties, mapped as runc's
// libcontainer/cgroups/systemd driver maps them. Pure functions here (unit tested on any host); the
// D-Bus calls go through the plugin libtrustme-systemd.so (systemd_plugin.h), which the caller loads.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/cgroups/cgroups.hpp"

namespace trustme::cgroups::systemd {

// Where a container goes. cgroupsPath is "slice:prefix:name" (runc libcontainer/specconv
// createCgroupConfigSystemd); empty means ":runc:<id>" (ScopePrefix "runc", Name = the id) and an empty
// slice means "system.slice" (systemd/v1.go, v2.go Apply). The unit is "<prefix>-<name>.scope", or
// <name> itself when it ends in ".slice" (systemd/common.go getUnitName).
struct Unit {
    std::string slice;  // "system.slice"
    std::string name;   // "runc-<id>.scope"
    std::string path;   // below a hierarchy's root: expand_slice(slice) + "/" + name
    bool is_slice() const;
};
Unit unit_for(const std::string& cgroups_path, const std::string& container_id);

// systemd's slice nesting: "a-b-c.slice" → "/a.slice/a-b.slice/a-b-c.slice", "-.slice" → "/"
// (runc systemd/common.go ExpandSlice). Throws on a malformed name.
std::string expand_slice(const std::string& slice);

// A D-Bus property as the plugin takes it: [name, signature, value] (value shaped by the signature:
// numbers, strings, booleans, arrays as JSON arrays, structs as JSON arrays of their members).
using Properties = nlohmann::json;  // array of [name, sig, value]

// The properties StartTransientUnit gets besides the resources: Description, Slice (or Wants for a
// slice unit), PIDs, Delegate, accounting, DefaultDependencies=no (runc systemd/v2.go, v1.go Apply).
Properties unit_properties(const Unit& u, pid_t pid, Mode mode);
// linux.resources → unit properties (runc genV2ResourcesProperties / genV1ResourcesProperties, with the
// device rules of devices/systemd.go systemdProperties when `devices`). The cgroup files are written
// afterwards anyway: the properties keep systemd from undoing them.
Properties resource_properties(const nlohmann::json& resources, Mode mode, bool devices);
// The device rules as DevicePolicy/DeviceAllow (runc devices/systemd.go).
Properties device_properties(const nlohmann::json& resources);
// org.systemd.property.<Name> annotations (runc specconv initSystemdProps): the name is letters only,
// at least 3; the value is a GVariant text (parse_variant); a number for a "…Sec" name becomes
// "…USec" in microseconds.
Properties annotation_properties(const std::map<std::string, std::string>& annotations);
// The GVariant text forms engines put in those annotations: true/false, numbers (bare: int32 or double;
// or typed: "uint64 5", "int32 -1", "double 1.5", "byte 3", ...), quoted strings, and arrays of those
// ("['a', 'b']"). Returns [signature, value]; throws on anything else.
nlohmann::json parse_variant(const std::string& text);
// "0-3,8" → bit mask bytes, CPU 0 in bit 0 of byte 0 (runc systemd/cpuset.go RangeToBits).
std::vector<uint8_t> range_to_bits(const std::string& list);

}  // namespace trustme::cgroups::systemd
