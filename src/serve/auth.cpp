#include "serve/auth.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cctype>

#include "serve/api.h"
#include "sisa/errors.h"
#include "util/fs.h"

namespace sisa {
namespace {

// The bearer token: one line of at least 16 visible ASCII characters
// (whitespace around it is dropped). Anything else (a second line, spaces inside,
// binary bytes) is refused: no client could ever send it in a header. The
// token itself is never echoed.
std::string read_token(const std::string& path) {
  const auto bytes = read_input_file(path, {"--token-file", kMaxTokenFileBytes, ExitCode::kUsage});
  std::string token(bytes.begin(), bytes.end());
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.front()))) token.erase(0, 1);
  for (size_t i = 0; i < token.size(); ++i) {
    const auto ch = static_cast<unsigned char>(token[i]);
    if (ch < 0x21 || ch > 0x7e) {
      throw UsageError("--token-file '" + path + "': byte " + std::to_string(i) + " is " +
                       (ch == '\n' || ch == '\r' ? std::string("a line break inside the token")
                                                 : std::string("not a visible ASCII character")) +
                       "; the file must hold one token of visible ASCII characters on one line");
    }
  }
  if (token.size() < 16) {
    throw UsageError("--token-file '" + path + "' holds a token of " + std::to_string(token.size()) +
                     " characters; use at least 16 (e.g. openssl rand -hex 32)");
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077)) {
    spdlog::warn("--token-file '{}' is readable by group or others (chmod 600 it)", path);
  }
  return token;
}

// Compares in time independent of where the strings differ.
bool same_secret(const std::string& given, const std::string& secret) {
  unsigned char diff = given.size() == secret.size() ? 0 : 1;
  for (size_t i = 0; i < given.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i] ^ secret[i % secret.size()]);
  }
  return diff == 0;
}

}  // namespace

BearerToken::BearerToken(const std::string& token_file) {
  if (!token_file.empty()) token_ = read_token(token_file);
}

std::optional<HttpResponse> BearerToken::refuse(const HttpRequest& request, const std::string& what) const {
  HttpResponse r;
  if (token_.empty()) {
    r.status = 403;
    r.body = error_body("forbidden", what + " is disabled: start sisa serve with --token-file");
    return r;
  }
  if (same_secret(bearer_credentials(request.authorization), token_)) return std::nullopt;
  r.status = 401;
  r.body = error_body("unauthorized", what + " needs 'Authorization: Bearer <token>'");
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"sisa\"");
  return r;
}

// The credentials of "Authorization: Bearer <token>"; the scheme is
// case-insensitive (RFC 7235). Empty for any other scheme.
std::string bearer_credentials(const std::string& header) {
  const size_t start = header.find_first_not_of(' ');
  const size_t space = start == std::string::npos ? start : header.find(' ', start);
  if (space == std::string::npos) return {};
  std::string scheme = header.substr(start, space - start);
  for (char& ch : scheme) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const size_t t = header.find_first_not_of(' ', space);
  if (scheme != "bearer" || t == std::string::npos) return {};
  return header.substr(t, header.find_last_not_of(' ') + 1 - t);
}

}  // namespace sisa
