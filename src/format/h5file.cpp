#include "format/h5file.h"

#include <hdf5.h>
#include <hdf5_hl.h>

#include <atomic>
#include <mutex>
#include <stdexcept>

#include "sisa/errors.h"

namespace sisa {
namespace {

// HDF5 prints its error stack to stderr by default; sisa reports its own.
void silence_hdf5() {
  static const bool once = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)once;
}

// Debian's serial HDF5 is not thread-safe; every call into it holds this.
std::recursive_mutex& hdf5_mutex() {
  static std::recursive_mutex mu;
  return mu;
}

hid_t native_type(DType t) { return t == DType::kFloat32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT64; }

// Closes an HDF5 handle at scope exit.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  ~Handle() {
    if (id >= 0) close(id);
  }
};

std::string unique_name(const char* kind) {
  static std::atomic<uint64_t> counter{0};
  return std::string("sisa-") + kind + "-" + std::to_string(counter++) + ".h5";
}

}  // namespace

H5Builder::H5Builder() {
  const std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  silence_hdf5();
  Handle fapl{H5Pcreate(H5P_FILE_ACCESS), H5Pclose};
  if (H5Pset_fapl_core(fapl.id, 1 << 20, /*backing_store=*/0) < 0) {
    throw IOError("HDF5: cannot set the core driver");
  }
  file_ = H5Fcreate(unique_name("w").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id);
  if (file_ < 0) throw IOError("HDF5: cannot create an in-memory file");
}

H5Builder::~H5Builder() {
  const std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  if (file_ >= 0) H5Fclose(file_);
}

void H5Builder::ensure_groups(const std::string& name) {
  size_t pos = 0;
  while ((pos = name.find('/', pos + 1)) != std::string::npos) {
    const std::string group = name.substr(0, pos);
    if (H5Lexists(file_, group.c_str(), H5P_DEFAULT) > 0) continue;
    Handle gcpl{H5Pcreate(H5P_GROUP_CREATE), H5Pclose};
    H5Pset_obj_track_times(gcpl.id, 0);
    Handle g{H5Gcreate2(file_, group.c_str(), H5P_DEFAULT, gcpl.id, H5P_DEFAULT), H5Gclose};
    if (g.id < 0) throw IOError("HDF5: cannot create group '" + group + "'");
  }
}

void H5Builder::write(const std::string& name, DType dtype, const std::vector<int64_t>& shape, const void* data) {
  // Stored little-endian whatever the host, as the format promises.
  write_as(name, dtype == DType::kFloat32 ? H5T_IEEE_F32LE : H5T_STD_I64LE, native_type(dtype), shape, data);
}

void H5Builder::write_i32(const std::string& name, const std::vector<int64_t>& shape, const int32_t* data) {
  write_as(name, H5T_STD_I32LE, H5T_NATIVE_INT32, shape, data);
}

void H5Builder::write_u8(const std::string& name, const std::vector<int64_t>& shape, const uint8_t* data) {
  write_as(name, H5T_STD_U8LE, H5T_NATIVE_UINT8, shape, data);
}

void H5Builder::write_as(const std::string& name, int64_t file_type, int64_t memory_type,
                         const std::vector<int64_t>& shape, const void* data) {
  const std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  ensure_groups(name);
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space{
      shape.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
      H5Sclose};
  // No timestamps: the same content gives the same bytes.
  Handle dcpl{H5Pcreate(H5P_DATASET_CREATE), H5Pclose};
  H5Pset_obj_track_times(dcpl.id, 0);
  Handle ds{H5Dcreate2(file_, name.c_str(), file_type, space.id, H5P_DEFAULT, dcpl.id, H5P_DEFAULT), H5Dclose};
  if (ds.id < 0) throw IOError("HDF5: cannot create dataset '" + name + "'");
  int64_t n = 1;
  for (auto d : shape) n *= d;
  if (n > 0 && H5Dwrite(ds.id, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    throw IOError("HDF5: cannot write dataset '" + name + "'");
  }
}

void H5Builder::set_attr(const std::string& object, const std::string& key, const std::string& value) {
  const std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  Handle type{H5Tcopy(H5T_C_S1), H5Tclose};
  H5Tset_size(type.id, value.empty() ? 1 : value.size());
  H5Tset_cset(type.id, H5T_CSET_UTF8);
  Handle space{H5Screate(H5S_SCALAR), H5Sclose};
  Handle obj{H5Oopen(file_, object.empty() ? "/" : object.c_str(), H5P_DEFAULT), H5Oclose};
  Handle attr{H5Acreate2(obj.id, key.c_str(), type.id, space.id, H5P_DEFAULT, H5P_DEFAULT), H5Aclose};
  const std::string padded = value.empty() ? std::string(1, '\0') : value;
  if (attr.id < 0 || H5Awrite(attr.id, type.id, padded.data()) < 0) {
    throw IOError("HDF5: cannot write attribute '" + key + "'");
  }
}

std::vector<uint8_t> H5Builder::finish() {
  const std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  if (H5Fflush(file_, H5F_SCOPE_GLOBAL) < 0) throw IOError("HDF5: flush failed");
  const ssize_t size = H5Fget_file_image(file_, nullptr, 0);
  if (size < 0) throw IOError("HDF5: cannot size the file image");
  std::vector<uint8_t> image(static_cast<size_t>(size));
  if (H5Fget_file_image(file_, image.data(), image.size()) != size) {
    throw IOError("HDF5: cannot copy the file image");
  }
  H5Fclose(file_);
  file_ = -1;
  return image;
}

H5Image::H5Image(ByteView bytes, std::string path) : path_(std::move(path)) {
  const std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  silence_hdf5();
  if (bytes.size < 8) throw CorruptionError(path_ + ": not an HDF5 file (truncated)");
  // Read in place: no copy of (possibly large) stores; `bytes` outlives us.
  file_ = H5LTopen_file_image(const_cast<uint8_t*>(bytes.data), bytes.size,
                              H5LT_FILE_IMAGE_DONT_COPY | H5LT_FILE_IMAGE_DONT_RELEASE);
  if (file_ < 0) throw CorruptionError(path_ + ": not a readable HDF5 file (truncated or damaged)");
}

H5Image::~H5Image() {
  const std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  if (file_ >= 0) H5Fclose(file_);
}

bool H5Image::has(const std::string& name) const {
  const std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  // H5Lexists needs every intermediate group to exist.
  size_t pos = 0;
  while ((pos = name.find('/', pos + 1)) != std::string::npos) {
    if (H5Lexists(file_, name.substr(0, pos).c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return H5Lexists(file_, name.c_str(), H5P_DEFAULT) > 0;
}

std::vector<int64_t> H5Image::shape(const std::string& name) const {
  const std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  Handle ds{H5Dopen2(file_, name.c_str(), H5P_DEFAULT), H5Dclose};
  if (ds.id < 0) throw CorruptionError(path_ + ": missing dataset '" + name + "'");
  Handle space{H5Dget_space(ds.id), H5Sclose};
  const int rank = H5Sget_simple_extent_ndims(space.id);
  if (rank < 0) throw CorruptionError(path_ + ": bad dataspace for '" + name + "'");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

DType H5Image::dtype(const std::string& name) const {
  const std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  Handle ds{H5Dopen2(file_, name.c_str(), H5P_DEFAULT), H5Dclose};
  if (ds.id < 0) throw CorruptionError(path_ + ": missing dataset '" + name + "'");
  Handle type{H5Dget_type(ds.id), H5Tclose};
  const H5T_class_t cls = H5Tget_class(type.id);
  const size_t size = H5Tget_size(type.id);
  if (cls == H5T_FLOAT && size == 4) return DType::kFloat32;
  if (cls == H5T_INTEGER && size == 8) return DType::kInt64;
  throw CorruptionError(path_ + ": dataset '" + name + "' has an unsupported type");
}

void H5Image::read(const std::string& name, DType dtype, void* out) const {
  const std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  if (this->dtype(name) != dtype) {
    throw CorruptionError(path_ + ": dataset '" + name + "' should be " + dtype_name(dtype));
  }
  Handle ds{H5Dopen2(file_, name.c_str(), H5P_DEFAULT), H5Dclose};
  int64_t n = 1;
  for (auto d : shape(name)) n *= d;
  if (n == 0) return;
  if (H5Dread(ds.id, native_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
    throw CorruptionError(path_ + ": cannot read dataset '" + name + "'");
  }
}

std::vector<float> H5Image::read_f32(const std::string& name) const {
  int64_t n = 1;
  for (auto d : shape(name)) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  read(name, DType::kFloat32, v.data());
  return v;
}

std::vector<uint8_t> H5Image::read_u8(const std::string& name) const {
  const std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  Handle ds{H5Dopen2(file_, name.c_str(), H5P_DEFAULT), H5Dclose};
  if (ds.id < 0) throw CorruptionError(path_ + ": missing dataset '" + name + "'");
  Handle type{H5Dget_type(ds.id), H5Tclose};
  if (H5Tget_class(type.id) != H5T_INTEGER || H5Tget_size(type.id) != 1 || H5Tget_sign(type.id) != H5T_SGN_NONE) {
    throw CorruptionError(path_ + ": dataset '" + name + "' should be uint8");
  }
  int64_t n = 1;
  for (auto d : shape(name)) n *= d;
  std::vector<uint8_t> v(static_cast<size_t>(n));
  if (n > 0 && H5Dread(ds.id, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0) {
    throw CorruptionError(path_ + ": cannot read dataset '" + name + "'");
  }
  return v;
}

bool H5Image::is_integer(const std::string& name) const {
  const std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  Handle ds{H5Dopen2(file_, name.c_str(), H5P_DEFAULT), H5Dclose};
  if (ds.id < 0) throw CorruptionError(path_ + ": missing dataset '" + name + "'");
  Handle type{H5Dget_type(ds.id), H5Tclose};
  return H5Tget_class(type.id) == H5T_INTEGER;
}

std::vector<int32_t> H5Image::read_i32(const std::string& name) const {
  const std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  if (!is_integer(name)) throw CorruptionError(path_ + ": dataset '" + name + "' should hold integers");
  Handle ds{H5Dopen2(file_, name.c_str(), H5P_DEFAULT), H5Dclose};
  int64_t n = 1;
  for (auto d : shape(name)) n *= d;
  std::vector<int32_t> v(static_cast<size_t>(n));
  // Range checks: HDF5 clips out-of-range integers unless told to fail.
  Handle xfer{H5Pcreate(H5P_DATASET_XFER), H5Pclose};
  H5Pset_type_conv_cb(
      xfer.id, [](H5T_conv_except_t, hid_t, hid_t, void*, void*, void*) { return H5T_CONV_ABORT; }, nullptr);
  if (n > 0 && H5Dread(ds.id, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, xfer.id, v.data()) < 0) {
    throw CorruptionError(path_ + ": cannot read dataset '" + name + "' as int32 (a value out of range?)");
  }
  return v;
}

std::vector<int64_t> H5Image::read_i64(const std::string& name) const {
  int64_t n = 1;
  for (auto d : shape(name)) n *= d;
  std::vector<int64_t> v(static_cast<size_t>(n));
  read(name, DType::kInt64, v.data());
  return v;
}

std::string H5Image::attr(const std::string& object, const std::string& key) const {
  const std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  const char* obj = object.empty() ? "/" : object.c_str();
  if (H5Aexists_by_name(file_, obj, key.c_str(), H5P_DEFAULT) <= 0) {
    throw CorruptionError(path_ + ": missing attribute '" + key + "' on '" + obj + "'");
  }
  Handle attr{H5Aopen_by_name(file_, obj, key.c_str(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose};
  Handle type{H5Aget_type(attr.id), H5Tclose};
  if (H5Tget_class(type.id) != H5T_STRING || H5Tis_variable_str(type.id) > 0) {
    throw CorruptionError(path_ + ": attribute '" + key + "' is not a fixed-length string");
  }
  std::string value(H5Tget_size(type.id), '\0');
  if (H5Aread(attr.id, type.id, value.data()) < 0) {
    throw CorruptionError(path_ + ": cannot read attribute '" + key + "'");
  }
  while (!value.empty() && value.back() == '\0') value.pop_back();
  return value;
}

}  // namespace sisa
