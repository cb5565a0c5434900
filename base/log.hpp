// Logging in runc's formats, because engines parse them: containerd's shim and conmon read the
// --log file and, with --log-format json, take "msg" of the last "error" line as the failure reason.
#pragma once
#include <string>
#include <string_view>

namespace trustme::log {

enum class Level { Debug, Info, Warn, Error };
enum class Format { Text, Json };

// Configure once from the global flags. path empty: stderr.
// Returns 0, or the errno of opening `path` (log lines then go to stderr).
int setup(const std::string& path, Format fmt, bool debug);
bool debug_enabled();
void write(Level lvl, std::string_view msg);

inline void debug(std::string_view m) {
    if (debug_enabled()) write(Level::Debug, m);
}
inline void info(std::string_view m) { write(Level::Info, m); }
inline void warn(std::string_view m) { write(Level::Warn, m); }
inline void error(std::string_view m) { write(Level::Error, m); }

// The fd log lines go to (so a child may keep it across setup); -1 when stderr.
int fd();

}  // namespace trustme::log
