#include "run/stages.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "format/checkpoint.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "store/run_files.h"

namespace sisa {

ShardData make_shard_data(Dataset rows, const Config& c) {
  // Stores are written sorted; sorting again would copy every row.
  if (!std::is_sorted(rows.ids.begin(), rows.ids.end())) rows.sort_by_id();
  ShardData d;
  d.slice.resize(rows.size());
  const Placement placement = c.placement();
  for (size_t i = 0; i < rows.size(); ++i) {
    d.slice[i] = static_cast<int32_t>(placement.slice(rows.key(i), rows.weight(i)));
  }
  d.rows = std::move(rows);
  return d;
}

int64_t stage_work(const Config& c, const ShardData& data, int64_t first_stage) {
  const auto epochs = stage_epochs(c.train.epochs, c.sisa.slices);
  int64_t work = 0;
  for (int64_t r = first_stage; r <= c.sisa.slices; ++r) {
    int64_t n = 0;
    for (int32_t s : data.slice) n += s <= r;
    work += n * epochs[r];
  }
  return work;
}

std::vector<CheckpointRef> train_stages(const StageRun& run, int64_t shard, int64_t generation, const ShardData& data,
                                        const ModelState& start, int64_t first_stage, std::vector<ModelState>* states) {
  const Config& c = *run.config;
  ShardTrainer trainer(c, shard, run.trainer);
  std::vector<CheckpointRef> refs;
  ModelState state = start;
  for (int64_t r = first_stage; r <= c.sisa.slices; ++r) {
    state = trainer.train_stage(state, r, data, [&](const EpochReport& e) {
      if (run.trainer.stop && run.trainer.stop->load()) {
        throw InterruptedError("[shard " + std::to_string(shard) + "] training interrupted in stage " +
                               std::to_string(r));
      }
      if (run.progress) run.progress->advance(e.samples);
      if (run.loop_seconds) *run.loop_seconds += e.seconds;
      spdlog::info("[shard {}][stage {}] epoch {}/{} loss {:.4f} {:.0f} samples/s{}", e.shard, e.stage, e.epoch,
                   e.epochs, e.mean_loss, static_cast<double>(e.samples) / std::max(e.seconds, 1e-9),
                   run.progress ? fmt::format(" {}% {}", run.progress->percent(), run.progress->eta()) : std::string());
    });
    refs.push_back(checkpoint_ref(run.dir, run.identity_hash, shard, r, generation, data, state));
    if (run.on_checkpoint) run.on_checkpoint(refs.back());
    if (states) states->push_back(state);
  }
  return refs;
}

CheckpointRef checkpoint_ref(const RunDir* dir, const std::string& identity, int64_t shard, int64_t stage,
                             int64_t generation, const ShardData& data, const ModelState& state) {
  std::vector<int64_t> ids;
  for (size_t i = 0; i < data.slice.size(); ++i) {
    if (data.slice[i] <= stage) ids.push_back(data.rows.ids[i]);
  }
  CheckpointRef ref;
  ref.stage = stage;
  ref.n_samples = static_cast<int64_t>(ids.size());
  ref.fingerprint = state.fingerprint();
  ref.state_digest = state.state_digest();
  if (dir) {
    const CheckpointInfo info{shard, stage, ref.n_samples, identity, ids_hash(ids), ref.fingerprint, ref.state_digest};
    ref.file = write_run_file(*dir, checkpoint_file(shard, stage, generation), encode_checkpoint(state, info));
  }
  return ref;
}

}  // namespace sisa
