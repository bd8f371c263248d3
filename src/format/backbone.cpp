#include "format/backbone.h"

#include "format/checkpoint.h"
#include "sisa/errors.h"

namespace sisa {

nlohmann::json to_json(const BackboneShape& s) {
  return {{"vocab_size", s.vocab_size}, {"dim", s.dim}, {"layers", s.layers},
          {"heads", s.heads},           {"ff", s.ff},   {"max_len", s.max_len}};
}

std::vector<std::string> shape_problems(const BackboneShape& s) {
  std::vector<std::string> e;
  if (s.vocab_size < 2) e.push_back("vocab_size: must be >= 2");
  if (s.dim < 1) e.push_back("dim: must be > 0");
  if (s.layers < 1) e.push_back("layers: must be > 0");
  if (s.heads < 1 || (s.dim > 0 && s.dim % s.heads != 0)) e.push_back("heads: must be > 0 and divide dim");
  if (s.ff < 1) e.push_back("ff: must be > 0");
  if (s.max_len < 1) e.push_back("max_len: must be > 0");
  return e;
}

std::vector<uint8_t> encode_backbone(const Backbone& b) {
  nlohmann::json meta = {{"format", "sisa-backbone"},
                         {"format_version", kBackboneFormatVersion},
                         {"shape", to_json(b.shape)},
                         {"tokenizer_sha256", b.tokenizer_sha256},
                         {"pretrain", b.pretrain}};
  if (b.architecture != "post-ln") meta["architecture"] = b.architecture;  // older files stay byte for byte
  return encode_state_file(b.weights, meta);
}

Backbone read_backbone(const std::string& path) {
  const auto bytes = read_input_file(path, {"backbone", kMaxArtifactBytes, ExitCode::kData});
  nlohmann::json meta;
  Backbone b;
  b.weights = decode_state_file(ByteView(bytes), path, "sisa-backbone", kBackboneFormatVersion, &meta);
  try {
    const auto& s = meta.at("shape");
    b.shape.vocab_size = s.at("vocab_size").get<int64_t>();
    b.shape.dim = s.at("dim").get<int64_t>();
    b.shape.layers = s.at("layers").get<int64_t>();
    b.shape.heads = s.at("heads").get<int64_t>();
    b.shape.ff = s.at("ff").get<int64_t>();
    b.shape.max_len = s.at("max_len").get<int64_t>();
    b.tokenizer_sha256 = meta.at("tokenizer_sha256").get<std::string>();
    b.pretrain = meta.value("pretrain", nlohmann::json::object());
    b.architecture = meta.value("architecture", std::string("post-ln"));
  } catch (const nlohmann::json::exception& e) {
    throw CorruptionError(path + ": bad backbone metadata: " + e.what());
  }
  if (b.architecture != "post-ln" && b.architecture != "use-lite") {
    throw CorruptionError(path + ": unknown backbone architecture '" + b.architecture + "'");
  }
  const auto bad = shape_problems(b.shape);
  if (!bad.empty()) throw CorruptionError(path + ": backbone shape " + bad.front());
  return b;
}

bool is_native_backbone(const std::string& path) {
  auto ends = [&](const std::string& s) {
    return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".h5") || ends(".hdf5");
}

}  // namespace sisa
