#include "test_util.h"

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "format/h5file.h"
#include "format/manifest.h"
#include "sisa/placement.h"
#include "util/fs.h"

namespace fs = std::filesystem;

namespace sisa::test {

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "sisa-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

Dataset synthetic(int64_t n, int64_t width, int64_t classes, uint64_t seed, int64_t groups) {
  SplitMix64 rng(seed);
  auto uniform = [&rng] { return static_cast<float>((rng.next() >> 11) * 0x1.0p-53) * 2.0f - 1.0f; };
  std::vector<float> w(static_cast<size_t>(width * classes));
  for (auto& v : w) v = uniform();
  Dataset d;
  d.width = width;
  for (int64_t i = 0; i < n; ++i) {
    d.ids.push_back(1000 + 7 * i);
    if (groups > 0) d.groups.push_back(i % groups);
    std::vector<float> x(static_cast<size_t>(width));
    for (auto& v : x) v = uniform();
    int64_t best = 0;
    float best_score = -1e30f;
    for (int64_t c = 0; c < classes; ++c) {
      float s = 0.3f * uniform();
      for (int64_t j = 0; j < width; ++j) s += w[c * width + j] * x[j];
      if (s > best_score) best_score = s, best = c;
    }
    d.labels.push_back(best);
    d.inputs.insert(d.inputs.end(), x.begin(), x.end());
  }
  return d;
}

Dataset synthetic_tokens(int64_t n, int64_t max_len, int64_t vocab, uint64_t seed, int64_t groups) {
  SplitMix64 rng(seed);
  Dataset d;
  d.input = InputKind::kTokens;
  d.width = max_len;
  for (int64_t i = 0; i < n; ++i) {
    d.ids.push_back(1000 + 7 * i);
    if (groups > 0) d.groups.push_back(i % groups);
    const auto len = static_cast<int32_t>(1 + rng.next() % static_cast<uint64_t>(max_len));
    int64_t count[3] = {0, 0, 0};
    for (int64_t j = 0; j < max_len; ++j) {
      int32_t t = 0;
      if (j < len) {
        t = static_cast<int32_t>(1 + rng.next() % static_cast<uint64_t>(vocab - 1));
        ++count[std::min<int64_t>(2, 3 * (t - 1) / (vocab - 1))];
      }
      d.tokens.push_back(t);
    }
    d.lengths.push_back(len);
    d.labels.push_back(std::max_element(count, count + 3) - count);
  }
  return d;
}

void write_csv(const Dataset& d, const std::string& path) {
  std::ofstream out(path);
  out << "id";
  if (d.has_groups()) out << ",subject";
  for (int64_t j = 0; j < d.width; ++j) out << ",f" << j;
  out << ",label\n";
  char buf[32];
  for (size_t i = 0; i < d.size(); ++i) {
    out << d.ids[i];
    if (d.has_groups()) out << "," << d.groups[i];
    for (int64_t j = 0; j < d.width; ++j) {
      std::snprintf(buf, sizeof buf, ",%.9g", d.row(i)[j]);  // round-trips float32 exactly
      out << buf;
    }
    out << "," << d.labels[i] << "\n";
  }
}

void write_hdf5(const Dataset& d, const std::string& path) {
  H5Builder b;
  const auto n = static_cast<int64_t>(d.size());
  if (d.has_tokens()) {
    b.write_i32("x", {n, d.width}, d.tokens.data());
    b.write_i32("lengths", {n}, d.lengths.data());
  } else {
    b.write("x", DType::kFloat32, {n, d.width}, d.inputs.data());
  }
  b.write("y", DType::kInt64, {n}, d.labels.data());
  b.write("id", DType::kInt64, {n}, d.ids.data());
  if (d.has_groups()) b.write("subject", DType::kInt64, {n}, d.groups.data());
  atomic_write(Env::posix(), path, b.finish());
}

std::string config_yaml(const std::string& train_path, const std::string& test_path, int64_t width, int64_t classes,
                        const std::string& model_yaml, const std::string& sisa_yaml, const std::string& train_yaml,
                        bool grouped, const std::string& input_shape) {
  const bool h5 = train_path.size() > 3 && train_path.substr(train_path.size() - 3) == ".h5";
  std::ostringstream y;
  y << "seed: 7\n"
    << "data:\n"
    << "  format: " << (h5 ? "hdf5" : "csv") << "\n"
    << "  train: " << train_path << "\n"
    << "  test: " << test_path << "\n"
    << "  num_classes: " << classes << "\n"
    << "  input_shape: " << (input_shape.empty() ? "[" + std::to_string(width) + "]" : input_shape) << "\n";
  if (h5) {
    y << "  inputs_dataset: x\n  labels_dataset: y\n  ids_dataset: id\n";
    if (grouped) y << "  groups_dataset: subject\n";
  } else {
    y << "  id_column: id\n  label_column: label\n";
    if (grouped) y << "  group_column: subject\n";
  }
  y << "sisa:\n" << sisa_yaml << "model:\n" << model_yaml << "train:\n" << train_yaml;
  return y.str();
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

CommandResult run_sisa(const std::string& args, const std::string& env) {
  const std::string cmd = env + " " + std::string(SISA_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen failed");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  if (!fs::exists(dir)) return files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = fs::relative(e.path(), dir).string();
    if (rel == "LOCK") continue;
    std::ifstream in(e.path(), std::ios::binary);
    files[rel] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return files;
}

std::vector<std::string> files_containing(const std::string& dir, const std::string& needle) {
  std::vector<std::string> hits;
  for (const auto& [rel, bytes] : snapshot(dir)) {
    if (bytes.find(needle) != std::string::npos) hits.push_back(rel);
  }
  return hits;
}

std::vector<std::string> checkpoints_containing(const std::string& run_dir, const std::string& needle) {
  std::vector<std::string> out;
  for (const auto& f : files_containing(run_dir, needle)) {
    if (f.rfind("ckpt/", 0) == 0) out.push_back(f);
  }
  return out;
}

std::vector<int64_t> ids_in_shard(const Dataset& d, int64_t shard, int64_t shards, size_t count, uint64_t seed) {
  std::vector<int64_t> out;
  for (size_t i = 0; i < d.size() && out.size() < count; ++i) {
    if (shard_of(seed, d.ids[i], shards) == shard) out.push_back(d.ids[i]);
  }
  return out;
}

std::vector<std::string> stage_digests(const std::string& run_dir) {
  std::vector<std::string> out;
  for (const auto& e : load_manifest(run_dir).entries) {
    for (const auto& c : e.checkpoints) out.push_back(c.state_digest + "/" + c.fingerprint);
  }
  return out;
}

std::string row_bytes(const Dataset& d, int64_t id) {
  for (size_t i = 0; i < d.size(); ++i) {
    if (d.ids[i] != id) continue;
    if (d.has_tokens()) {
      return std::string(reinterpret_cast<const char*>(d.tokens.data() + i * d.width), d.width * sizeof(int32_t));
    }
    return std::string(reinterpret_cast<const char*>(d.row(i)), d.width * sizeof(float));
  }
  return {};
}

}  // namespace sisa::test
