// Strict parsing of id lists from flags and files: non-negative 64-bit
// integers; anything else (signs, junk, overflow) is a UsageError naming it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sisa {

// "17,4711,59999" (spaces allowed around commas).
std::vector<int64_t> parse_id_list(const std::string& text, const std::string& origin);
// One or more ids per line, separated by commas or whitespace; '#' starts a comment.
std::vector<int64_t> read_id_file(const std::string& path);

}  // namespace sisa
