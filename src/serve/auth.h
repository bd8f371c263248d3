// The bearer token of `sisa serve` (--token-file): whoever holds it may
// delete, read receipts (they name who asked to be forgotten) and the
// status. Compared in constant time; never echoed.
#pragma once

#include <optional>
#include <string>

#include "serve/http_transport.h"

namespace sisa {

class BearerToken {
 public:
  // No path: the endpoints that need a token are off. UsageError if the
  // file is not one line of at least 16 visible ASCII characters.
  explicit BearerToken(const std::string& token_file);
  bool configured() const { return !token_.empty(); }
  // Nothing if `request` carries the token; else the answer: 403 without a
  // token file (`what` is disabled), 401 with WWW-Authenticate otherwise.
  std::optional<HttpResponse> refuse(const HttpRequest& request, const std::string& what) const;

 private:
  std::string token_;
};

// The credentials of "Authorization: Bearer <token>" (the scheme is
// case-insensitive, RFC 7235); empty for any other scheme.
std::string bearer_credentials(const std::string& header);

}  // namespace sisa
