#include "store/artifacts.h"

#include <filesystem>
#include <regex>

#include "config/model_spec.h"
#include "sisa/errors.h"
#include "util/fs.h"
#include "util/sha256.h"

namespace fs = std::filesystem;

namespace sisa {
namespace {

// Copies `source` into the run under its content name; returns its reference.
ArtifactRef pin(const RunDir& run, const std::string& key, const std::string& source) {
  std::vector<uint8_t> bytes;
  try {
    bytes = read_input_file(source, {key, kMaxArtifactBytes, ExitCode::kData});
  } catch (const Error& e) {
    throw DataError(key + ": cannot read shared artifact '" + source + "': " + e.what());
  }
  // The content names the copy; a short plain extension is kept for people.
  std::string ext = fs::path(source).extension().string();
  if (!std::regex_match(ext, std::regex(R"(\.[A-Za-z0-9]{1,16})"))) ext.clear();
  const std::string rel = "artifacts/" + sha256_hex(bytes.data(), bytes.size()) + ext;
  return {key, write_run_file(run, rel, bytes)};
}

}  // namespace

std::vector<ArtifactRef> pin_artifacts(const RunDir& run, Config* config) {
  std::vector<ArtifactRef> refs;
  for (const auto& o : model_spec(config->model).options) {
    if (!o.artifact || config->model.get<std::string>(o.key).empty()) continue;
    refs.push_back(pin(run, "model." + o.key, config->model.get<std::string>(o.key)));
    config->model.options[o.key] = refs.back().file.path;
  }
  if (!config->data.tokenizer.empty()) {
    refs.push_back(pin(run, "data.tokenizer", config->data.tokenizer));
    config->data.tokenizer = refs.back().file.path;
  }
  return refs;
}

void verify_artifacts(const RunDir& run, const Manifest& m) {
  for (const auto& a : m.artifacts) {
    try {
      read_verified(run, a.file);
    } catch (const CorruptionError& e) {
      throw CorruptionError(std::string(e.what()) + " [shared artifact " + a.key +
                            "; the shards were trained with the original: restore it, e.g. from the file train read]");
    }
  }
}

}  // namespace sisa
