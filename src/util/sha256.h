// SHA-256 through OpenSSL's libcrypto, incremental and one-shot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace sisa {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  void update_u64(uint64_t v);  // little-endian
  std::string hex();            // finalizes

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string sha256_hex(const void* data, size_t n);
inline std::string sha256_hex(std::string_view s) { return sha256_hex(s.data(), s.size()); }
// The SHA-256 of a file's contents, streamed; IOError naming the path.
std::string sha256_file(const std::string& path);

}  // namespace sisa
