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
// "-" reads standard input (a pipe too); a named file must be a regular file.
// Either holds at most 1 GiB. No ids, or anything else: UsageError.
std::vector<int64_t> read_id_file(const std::string& path);
// "3, 17, 4711" for messages: the first `limit`, then ", ... (N in all)".
std::string format_id_list(const std::vector<int64_t>& ids, size_t limit = 20);

}  // namespace sisa
