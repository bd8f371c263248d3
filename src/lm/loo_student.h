// The LOO student of a run (issue #11, docs/loo.md): trained by `train` after
// the teachers (the shards), fine-tuned by every deletion toward the teachers
// that never held the deleted rows, and published in the deletion's manifest
// switch. The teachers stay exact; the student is approximate, and every
// answer that carries it says so.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "format/manifest.h"
#include "sisa/config.h"
#include "sisa/dataset.h"
#include "sisa/model_state.h"
#include "store/run_dir.h"

namespace sisa {

// What every receipt, status and API answer says about the two kinds of model.
inline constexpr const char* kStudentGuarantee =
    "approximate (leave-one-out fine-tune; measured by `sisa audit`, docs/loo.md)";
inline constexpr const char* kTeachersGuarantee = "exact (bit-identical to retraining without the deleted rows)";

std::string student_file(int64_t generation);

// Trains the student on every row of `m`'s shards and writes its checkpoint
// as `generation` (train: 0; repair of a damaged student: the next one).
StudentEntry train_student_entry(const RunDir& run, const Config& c, const Manifest& m, int64_t generation = 0);

// The deleted rows of one shard, for the student's update.
struct DeletedRows {
  int64_t shard = 0;
  const Dataset* rows = nullptr;
};
// The derived-model step of a deletion: fine-tunes the published student
// on `deleted` toward the teachers of `edit` (retrained already), writes it
// as the next generation and records it in `edit`. Returns the receipt's
// "student" part. A throw leaves the deletion unpublished (it stays accepted).
nlohmann::json update_student(const RunDir& run, const Config& c, Manifest& edit, uint64_t request,
                              const std::vector<DeletedRows>& deleted);

// The final checkpoints of the shards that hold data, with their shard numbers.
std::vector<std::pair<int64_t, std::shared_ptr<const ModelState>>> load_teachers(const RunDir& run, const Manifest& m);
ModelState load_student(const RunDir& run, const Manifest& m);

}  // namespace sisa
