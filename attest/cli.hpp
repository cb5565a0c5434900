// trustme-attest's command line, shared by the lean binary (attest/main.cpp: `hook measure`) and the tool
// module it loads for every other command (attest/tool.cpp). No <iostream>: its static initialisers run
// on every hook start.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.hpp"

namespace trustme::attest::cli {

extern const char* const kUsage;

struct Args {
    std::vector<std::string> positional;
    std::map<std::string, std::vector<std::string>> opts;

    std::optional<std::string> get(const std::string& k) const;
    std::string need(const std::string& k) const;                              // UsageError when missing
    bool flag(const std::string& k) const;                                     // an option without a value was given
    uint64_t number(const std::string& k, uint64_t dflt, uint64_t max) const;  // UsageError when malformed
};

// --help and --version print and exit(0); other mistakes throw UsageError.
Args parse_args(int argc, char** argv);

struct Settings {
    std::string tcti;
    uint32_t pcr = 11;
    std::string log;
};
// The policy's values (--policy, $TRUSTME_POLICY, /etc/trustme/policy.json), overridden by the options.
Settings settings(const Args& a);

std::string read_stdin(size_t max);
nlohmann::json parse_json(const std::string& text, const std::string& name);

// Print "trustme-attest: <msg>" (and the --help hint for usage errors) on stderr; returns the exit status.
int report(const std::exception& e);

}  // namespace trustme::attest::cli
