#include "lm/loo_student.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>

#include "format/checkpoint.h"
#include "format/shard_store.h"
#include "nn/lm_models.h"
#include "nn/loo_update.h"
#include "sisa/errors.h"
#include "store/run_files.h"
#include "util/progress.h"

namespace sisa {
namespace {

CheckpointRef write_student(const RunDir& run, const Manifest& m, int64_t generation, int64_t n_samples,
                            const std::string& ids_digest, const ModelState& state) {
  CheckpointRef ref;
  ref.stage = 1;
  ref.n_samples = n_samples;
  ref.fingerprint = state.fingerprint();
  ref.state_digest = state.state_digest();
  const CheckpointInfo info{m.shards, 1, n_samples, m.identity_hash, ids_digest, ref.fingerprint, ref.state_digest};
  ref.file = write_run_file(run, student_file(generation), encode_checkpoint(state, info));
  return ref;
}

}  // namespace

std::string student_file(int64_t generation) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "student/student.g%lld.h5", static_cast<long long>(generation));
  return buf;
}

StudentEntry train_student_entry(const RunDir& run, const Config& c, const Manifest& m, int64_t generation) {
  Dataset rows = load_all_rows(run, m);
  const auto n = static_cast<int64_t>(rows.size());
  const std::string digest = ids_hash(rows.ids);
  const int64_t epochs = c.loo.epochs > 0 ? c.loo.epochs : c.train.epochs;
  spdlog::info("[student] training on all {} rows for {} epochs (approximate under deletion; teachers stay exact)", n,
               epochs);
  Progress progress(epochs);
  const ModelState state = train_student(c, std::move(rows), [&](int64_t epoch, double loss) {
    progress.advance(1);
    spdlog::info("[student] epoch {}/{} loss {:.4f} {}% {}", epoch, epochs, loss, progress.percent(), progress.eta());
  });
  StudentEntry s;
  s.generation = generation;
  s.checkpoint = write_student(run, m, generation, n, digest, state);
  return s;
}

std::vector<std::pair<int64_t, std::shared_ptr<const ModelState>>> load_teachers(const RunDir& run, const Manifest& m) {
  std::vector<std::pair<int64_t, std::shared_ptr<const ModelState>>> out;
  for (const auto& e : m.entries) {
    if (e.n_samples == 0) continue;
    out.emplace_back(e.shard, std::make_shared<const ModelState>(load_checkpoint(run, e.final_checkpoint())));
  }
  return out;
}

ModelState load_student(const RunDir& run, const Manifest& m) {
  if (!m.student) throw UsageError("run '" + run.root + "' has no student (loo.student is off)");
  return load_checkpoint(run, m.student->checkpoint);
}

nlohmann::json update_student(const RunDir& run, const Config& c, Manifest& edit, uint64_t request,
                              const std::vector<DeletedRows>& deleted) {
  const auto t0 = std::chrono::steady_clock::now();
  StudentEntry& s = *edit.student;
  Dataset rows;
  LooInputs in;
  for (const auto& d : deleted) {
    rows.append(*d.rows);
    in.holder.insert(in.holder.end(), d.rows->size(), d.shard);
  }
  in.deleted = &rows;
  in.teachers = load_teachers(run, edit);
  in.request = request;
  Dataset retained;
  if (c.loo.retain_batch > 0) {
    retained = load_all_rows(run, edit);
    in.retained = &retained;
  }
  spdlog::info("[student] leave-one-out update on {} deleted row(s): {} steps at lr {}", rows.size(), c.loo.steps,
               c.loo.lr);
  const LooResult r = loo_update(c, load_student(run, edit), in);
  const int64_t generation = s.generation + 1;
  s.checkpoint =
      write_student(run, edit, generation, s.checkpoint.n_samples - static_cast<int64_t>(rows.size()), "", r.student);
  s.generation = generation;
  s.loo_updates.push_back(request);
  nlohmann::json used = nlohmann::json::array();
  for (size_t i = 0; i < rows.size(); ++i) {
    used.push_back({{"id", rows.ids[i]}, {"held_by", in.holder[i]}, {"teachers", r.teachers_used[i]}});
  }
  spdlog::info("[student] KL to the leave-one-out target {:.4f} -> {:.4f} ({:.2f}s)", r.kl_before, r.kl_after,
               since(t0));
  return {{"guarantee", kStudentGuarantee},
          {"method", "leave-one-out distillation (Liu & Kalinli, ICASSP 2024)"},
          {"steps", r.steps},
          {"lr", c.loo.lr},
          {"temperature", c.loo.temperature},
          {"retain_batch", c.loo.retain_batch},
          {"target_cached", r.target_cached},
          {"kl_before", r.kl_before},
          {"kl_after", r.kl_after},
          {"generation", generation},
          {"fingerprint", s.checkpoint.fingerprint},
          {"targets", used},
          {"seconds", since(t0)}};
}

}  // namespace sisa
