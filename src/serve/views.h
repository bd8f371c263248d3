// What `sisa serve` says about itself: /v1/status, /healthz, /metrics and
// the model description in the status, rendered from the deletion service
// and the served snapshot (no HTTP here).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "serve/deletion_service.h"
#include "serve/metrics.h"

namespace sisa {

// The family and what it is built on. Every shard of every family is exact
// under forget; what a pretrained backbone learned is never unlearned.
nlohmann::json model_json(const Config& c);

struct StatusFacts {
  bool deletions_enabled = false;  // a token file was given
  bool text = false;               // texts are tokenized by the server
  nlohmann::json model;            // model_json(), computed once
};
nlohmann::json status_json(const DeletionService& service, const StatusFacts& facts);
// {"status", "deletions", "models"}; `ok` is false while the served models
// are out of date (a published deletion could not be loaded).
nlohmann::json health_json(const DeletionService& service, bool* ok);
// The deletion and generation gauges, then the request metrics.
std::string metrics_text(const DeletionService& service, const Metrics& metrics);

}  // namespace sisa
