// Splitting without iostreams: <sstream>/<iostream> in the statically linked runtime initialise the C++
// locale machinery (~0.9 MiB of touched pages, ~90k instructions) on every start.
#pragma once
#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace trustme {

// Like repeated std::getline(in, part, sep): "a//b" → a, "", b; a trailing separator adds no empty part.
inline std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start < s.size()) {
        size_t end = s.find(sep, start);
        if (end == std::string_view::npos) end = s.size();
        out.emplace_back(s.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

// Like repeated `in >> word`: the whitespace-separated words.
inline std::vector<std::string> words(std::string_view s) {
    std::vector<std::string> out;
    size_t i = 0;
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
    while (i < s.size()) {
        while (i < s.size() && space(s[i])) ++i;
        size_t j = i;
        while (j < s.size() && !space(s[j])) ++j;
        if (j > i) out.emplace_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

// The whole of `s` as a decimal number of type T: no sign, no spaces, no base prefix, no overflow.
// std::stoul accepts " -1" (as ULONG_MAX) and throws std::invalid_argument / std::out_of_range, which a
// caller that catches only trustme::Error does not expect; every number read from a file, a config, a
// peer or the command line goes through here instead.
template <typename T>
std::optional<T> parse_decimal(std::string_view s) {
    T v{};
    if (s.empty() || s[0] < '0' || s[0] > '9') return std::nullopt;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
}

}  // namespace trustme
