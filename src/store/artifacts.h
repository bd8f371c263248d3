// Shared artifacts: files a run uses but does not train (a pretrained
// backbone, a tokenizer model), named by family keys declared `artifact`
// (src/model_spec.h). `train` copies each into the run under its content
// name; every command checks the copies before it trusts the run. Data
// inside an artifact is never unlearned: forgetting reaches only what the
// shards trained (docs/design.md, "What purging cannot reach").
#pragma once

#include <vector>

#include "format/manifest.h"
#include "sisa/config.h"
#include "store/run_dir.h"

namespace sisa {

// Copies every artifact `config` names into the run as
// artifacts/<sha256><ext>, points the config at the copies (paths relative
// to the run, as config.yaml stores them) and returns their references for
// the manifest. DataError naming the key if a file cannot be read.
std::vector<ArtifactRef> pin_artifacts(const RunDir& run, Config* config);

// CorruptionError naming the file unless every artifact the manifest names
// is present with its recorded SHA-256.
void verify_artifacts(const RunDir& run, const Manifest& m);

}  // namespace sisa
