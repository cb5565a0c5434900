#include "runtime/cli/args.hpp"

#include <cstring>

#include "base/error.hpp"

namespace trustme::cli {

int parse(const ParseSpec& spec, int argc, char** argv, int i, Args& out) {
    const auto& [flags, context, stop_at_positional, flags_until_positional] = spec;
    bool only_positional = false;
    for (; i < argc; ++i) {
        std::string a = argv[i];
        if (only_positional || a.size() < 2 || a[0] != '-') {
            if (stop_at_positional) return i;
            out.positional.push_back(a);
            if (flags_until_positional > 0 && static_cast<int>(out.positional.size()) >= flags_until_positional)
                only_positional = true;
            continue;
        }
        if (a == "--") {
            if (stop_at_positional) return i + 1;
            only_positional = true;
            continue;
        }
        std::string name = a.substr(a[1] == '-' ? 2 : 1);
        std::string value;
        bool has_value = false;
        if (auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            has_value = true;
        }
        const Flag* f = nullptr;
        for (auto& fl : flags) {
            if (name == fl.name || (name.size() == 1 && fl.short_name == name[0])) {
                f = &fl;
                break;
            }
        }
        if (!f) fail(context + ": unknown flag " + a);
        if (f->value) {
            if (!has_value) {
                if (i + 1 >= argc) fail(context + ": flag --" + std::string(f->name) + " needs a value");
                value = argv[++i];
            }
        } else if (has_value) {
            if (value != "true" && value != "false")
                fail(context + ": flag --" + std::string(f->name) + " takes no value");
            if (value == "false") continue;
        }
        out.values[f->name].push_back(value);
    }
    return i;
}

std::string format_flags(const std::vector<Flag>& flags) {
    std::string s;
    for (auto& f : flags) {
        std::string left = "   ";
        left += "--";
        left += f.name;
        if (f.short_name) {
            left += ", -";
            left += f.short_name;
        }
        if (f.value) {
            left += " ";
            left += f.value;
        }
        if (left.size() < 34) left.resize(34, ' ');
        else left += "  ";
        s += left + f.help + "\n";
    }
    return s;
}

}  // namespace trustme::cli
