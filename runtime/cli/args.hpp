// runc-style argument parsing: global flags before the command, command flags after it; "--flag value",
// "--flag=value", "-f value" and the single-dash long form "-flag" that runc's CLI library accepts.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace trustme::cli {

struct Flag {
    const char* name;   // long name without dashes
    char short_name;    // 0 if none
    const char* value;  // value placeholder ("FILE"), nullptr for booleans
    const char* help;
};

struct Args {
    std::map<std::string, std::vector<std::string>> values;
    std::vector<std::string> positional;
    bool has(const std::string& n) const { return values.count(n) != 0; }
    std::string get(const std::string& n, const std::string& def = "") const {
        auto it = values.find(n);
        return it == values.end() || it->second.empty() ? def : it->second.back();
    }
    std::vector<std::string> all(const std::string& n) const {
        auto it = values.find(n);
        return it == values.end() ? std::vector<std::string>{} : it->second;
    }
};

// What one parse call accepts: the flags, the prefix of its error messages ("trustme-runtime exec"), and
// where flags stop. With stop_at_positional (global flags) parsing ends at the first positional; otherwise
// all of argv is read. With flags_until_positional = N > 0, everything after the N-th positional is
// positional too (`exec ID sh -c ...`: the command's own options are not ours, as in runc).
struct ParseSpec {
    const std::vector<Flag>& flags;
    std::string context;
    bool stop_at_positional = false;
    int flags_until_positional = 0;
};

// Parses argv[from..] as spec says. Returns the index after the last consumed argument. Throws on an
// unknown flag or a missing value.
int parse(const ParseSpec& spec, int argc, char** argv, int from, Args& out);

std::string format_flags(const std::vector<Flag>& flags);

}  // namespace trustme::cli
