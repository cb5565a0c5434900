// Small file helpers with errors that name the file.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace trustme {

std::string read_file(const std::string& path);
// Read an open fd to its end (e.g. 0 for standard input); errors name `what`, as does more than `max` bytes.
std::string read_all(int fd, const std::string& what, size_t max = SIZE_MAX);
// Write to standard output (stdio; no iostreams in the runtime) and flush.
void print(std::string_view text);
// Read relative to a directory fd (O_NOFOLLOW on the last component).
std::string read_file_at(int dirfd, const std::string& name);
// Write via a temporary file + rename in the same directory: readers see the old or the new content.
void write_file_atomic(int dirfd, const std::string& name, std::string_view data, int mode = 0600);
// Plain write (for /proc and /sys files), error names the path and the value.
void write_file(const std::string& path, std::string_view data);
bool path_exists(const std::string& path);

}  // namespace trustme
