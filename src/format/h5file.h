// The one module that talks to HDF5. Files are built in memory (core driver)
// and handed out as bytes, so every write goes through fs.h (atomic, fault
// injectable) and HDF5 never leaves freed space holding deleted samples.
// Reads open an in-memory image of bytes the caller already hash-checked.
// Calls are serialized by one lock: serial HDF5 is not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sisa/model_state.h"
#include "util/fs.h"

namespace sisa {

class H5Builder {
 public:
  H5Builder();
  ~H5Builder();
  H5Builder(const H5Builder&) = delete;
  H5Builder& operator=(const H5Builder&) = delete;

  // `name` may contain '/' (groups are created). Shape {} is a scalar.
  void write(const std::string& name, DType dtype, const std::vector<int64_t>& shape, const void* data);
  void write_u8(const std::string& name, const std::vector<int64_t>& shape, const uint8_t* data);
  void write_i32(const std::string& name, const std::vector<int64_t>& shape, const int32_t* data);
  // A UTF-8 string attribute on the dataset `object` ("" = the file root).
  void set_attr(const std::string& object, const std::string& key, const std::string& value);
  // Flushes and returns the complete file image. The builder is spent.
  std::vector<uint8_t> finish();

 private:
  void ensure_groups(const std::string& name);
  void write_as(const std::string& name, int64_t file_type, int64_t memory_type, const std::vector<int64_t>& shape,
                const void* data);
  int64_t file_ = -1;
};

class H5Image {
 public:
  // `path` only names the file in error messages (CorruptionError). The image
  // reads `bytes` in place: they must outlive this object.
  H5Image(ByteView bytes, std::string path);
  ~H5Image();
  H5Image(const H5Image&) = delete;
  H5Image& operator=(const H5Image&) = delete;

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const;
  std::vector<int64_t> shape(const std::string& name) const;
  DType dtype(const std::string& name) const;
  // Reads a dataset, checking its dtype; returns its element count.
  void read(const std::string& name, DType dtype, void* out) const;
  std::vector<float> read_f32(const std::string& name) const;
  std::vector<int64_t> read_i64(const std::string& name) const;
  std::vector<uint8_t> read_u8(const std::string& name) const;
  // Any stored integer type that converts to int32 without loss is accepted (HDF5 converts; an
  // out-of-range value is an error naming the dataset).
  std::vector<int32_t> read_i32(const std::string& name) const;
  bool is_integer(const std::string& name) const;
  std::string attr(const std::string& object, const std::string& key) const;

 private:
  std::string path_;
  int64_t file_ = -1;
};

}  // namespace sisa
