// The seams behind the public commands (sisa/run.h): the file system and
// where shards train. The public functions use the real file system and
// their request's Cluster; tests call these overloads to inject faults
// (tests/durability_test.cpp) or an in-memory cluster (distributed_test).
#pragma once

#include <nlohmann/json.hpp>

#include "sisa/run.h"
#include "sisa/shard_trainer.h"

namespace sisa {

class Env;
class ShardRunner;

struct RunSeams {
  Env* env = nullptr;             // null: the real file system
  ShardRunner* runner = nullptr;  // null: every shard trains in this process
  // How forget's retrains run: tests drop the optimizer state to prove that
  // verify notices (a negative control); never set by a command.
  TrainerOptions trainer;
};

// A cluster's runner (null without one, or with a single rank).
RunSeams seams_of(Cluster* cluster);

nlohmann::json train(const TrainRequest& request, const RunSeams& seams);
nlohmann::json forget(const ForgetRequest& request, const RunSeams& seams);
nlohmann::json recover(const RecoverRequest& request, const RunSeams& seams);
nlohmann::json repair(const RepairRequest& request, const RunSeams& seams);
nlohmann::json verify(const VerifyRequest& request, const RunSeams& seams);

}  // namespace sisa
