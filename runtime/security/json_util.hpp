// Small typed accessors over nlohmann::json that fail with the JSON path of the offending value, so a bad
// config gives one line such as "linux.seccomp.syscalls[3].args[0].index: expected an unsigned integer".
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "base/error.hpp"

namespace trustme::security::detail {

inline std::string idx(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }
inline std::string key(const std::string& path, const char* k) { return path + "." + k; }

// Absent and null both mean "not set" (engines write either).
inline const nlohmann::json* field(const nlohmann::json& obj, const char* k) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(k);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

inline void expect_object(const nlohmann::json& j, const std::string& path) {
    if (!j.is_object()) fail(path + ": expected an object");
}
inline const nlohmann::json& expect_array(const nlohmann::json& j, const std::string& path) {
    if (!j.is_array()) fail(path + ": expected an array");
    return j;
}
inline std::string as_string(const nlohmann::json& j, const std::string& path) {
    if (!j.is_string()) fail(path + ": expected a string");
    return j.get<std::string>();
}
inline uint64_t as_u64(const nlohmann::json& j, const std::string& path) {
    if (j.is_number_unsigned()) return j.get<uint64_t>();
    if (j.is_number_integer() && j.get<int64_t>() >= 0) return static_cast<uint64_t>(j.get<int64_t>());
    fail(path + ": expected an unsigned integer");
}
inline int64_t as_i64(const nlohmann::json& j, const std::string& path) {
    if (j.is_number_integer() && !j.is_number_unsigned()) return j.get<int64_t>();
    if (j.is_number_unsigned() && j.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX))
        return static_cast<int64_t>(j.get<uint64_t>());
    fail(path + ": expected an integer");
}

}  // namespace trustme::security::detail
