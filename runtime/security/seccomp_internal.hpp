// The parsed form of linux.seccomp, shared by compile_seccomp and validate_process_extras.
#pragma once
#include <seccomp.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace trustme::security::detail {

struct ParsedArg {
    unsigned index = 0;
    uint64_t value = 0, value_two = 0;
    scmp_compare op = SCMP_CMP_EQ;
};
struct ParsedRule {
    std::vector<std::string> names;
    uint32_t action = 0;
    std::vector<ParsedArg> args;
    std::string path;  // "linux.seccomp.syscalls[3]", for messages
};
struct ParsedSeccomp {
    uint32_t default_action = 0;
    std::vector<uint32_t> arches;  // libseccomp arch tokens
    unsigned int flags = 0;        // SECCOMP_FILTER_FLAG_* asked for
    std::vector<ParsedRule> rules;
    std::string listener_path, listener_metadata;
    bool uses_notify = false;
};

// Pure: validates and converts, names the JSON path in errors; no libseccomp state is created.
ParsedSeccomp parse_seccomp(const nlohmann::json& s, const std::string& path);

}  // namespace trustme::security::detail
