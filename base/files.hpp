// Small file helpers with errors that name the file.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace trustme {

// Errors name the file; more than `max` bytes is an error too (nothing larger is read).
std::string read_file(const std::string& path, size_t max = SIZE_MAX);
// Read an open fd to its end (e.g. 0 for standard input); errors name `what`, as does more than `max` bytes.
// A regular file is read up to the size fstat gave plus one byte: one that grows meanwhile is an error,
// not followed.
std::string read_all(int fd, const std::string& what, size_t max = SIZE_MAX);
// Write to standard output (stdio; no iostreams in the runtime) and flush.
void print(std::string_view text);
// Read a regular file relative to a directory fd: opened O_NOFOLLOW|O_NONBLOCK|O_NOCTTY (a fifo or a device
// planted under the name neither blocks nor is read: one error line), at most `max` bytes. Errors name
// `what` (default: `name`).
std::string read_file_at(int dirfd, const std::string& name, const std::string& what = {}, size_t max = SIZE_MAX);
// Write via a temporary file + rename in the same directory: readers see the old or the new content.
void write_file_atomic(int dirfd, const std::string& name, std::string_view data, int mode = 0600);
// Plain write (for /proc and /sys files), error names the path and the value.
void write_file(const std::string& path, std::string_view data);
bool path_exists(const std::string& path);

}  // namespace trustme
