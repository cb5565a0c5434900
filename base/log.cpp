#include "base/log.hpp"

#include <fcntl.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>

namespace trustme::log {
namespace {
int g_fd = -1;
Format g_fmt = Format::Text;
bool g_debug = false;

const char* name(Level l) {
    switch (l) {
        case Level::Debug: return "debug";
        case Level::Info: return "info";
        case Level::Warn: return "warning";
        case Level::Error: return "error";
    }
    return "error";
}

void json_escape(std::string& out, std::string_view s) {
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            case '\r': out += "\\r"; break;
            default:
                if (c < 0x20) {
                    char b[8];
                    std::snprintf(b, sizeof b, "\\u%04x", c);
                    out += b;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
}
}  // namespace

int setup(const std::string& path, Format fmt, bool debug) {
    g_fmt = fmt;
    g_debug = debug;
    if (!path.empty()) {
        int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) return errno;
        g_fd = fd;
    }
    return 0;
}

bool debug_enabled() { return g_debug; }
int fd() { return g_fd; }

void write(Level lvl, std::string_view msg) {
    // On stderr without --log-format json, a human reads it: print the bare message for errors.
    if (g_fd < 0 && g_fmt == Format::Text) {
        std::string line =
            lvl == Level::Error ? "trustme-runtime: " : std::string("trustme-runtime: ") + name(lvl) + ": ";
        line.append(msg);
        line += '\n';
        (void)!::write(2, line.data(), line.size());
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tbuf[64];
    std::snprintf(tbuf, sizeof tbuf, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
    std::string line;
    if (g_fmt == Format::Json) {
        line = "{\"level\":\"";
        line += name(lvl);
        line += "\",\"msg\":\"";
        json_escape(line, msg);
        line += "\",\"time\":\"";
        line += tbuf;
        line += "\"}\n";
    } else {
        line = "time=\"";
        line += tbuf;
        line += "\" level=";
        line += name(lvl);
        line += " msg=\"";
        json_escape(line, msg);
        line += "\"\n";
    }
    (void)!::write(g_fd >= 0 ? g_fd : 2, line.data(), line.size());
}

}  // namespace trustme::log
