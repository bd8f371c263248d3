#include "lm/loo_student.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "config/model_spec.h"
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

// The first loo.heldout_rows rows of data.test (by id), kept in the run as
// a store: the rows no model of the run saw, which calibrate the update's
// stopping rule. The same test data gives the same file.
FileRef write_heldout(const RunDir& run, const Config& c, const Manifest& m) {
  Dataset test = load_source(c.data, Split::kTest);
  check_model_inputs(test, c, c.data.test);
  test.sort_by_id();
  if (static_cast<int64_t>(test.size()) > c.loo.heldout_rows) {
    std::vector<size_t> first(static_cast<size_t>(c.loo.heldout_rows));
    for (size_t i = 0; i < first.size(); ++i) first[i] = i;
    test = test.select(first);
  }
  if (test.size() < 2) {
    throw DataError("'" + c.data.test + "': the update's stopping rule needs held-out rows; it holds " +
                    std::to_string(test.size()));
  }
  return write_run_file(run, "student/heldout.h5", encode_store(test, m.shards, c.data));
}

nlohmann::json checks_json(const std::vector<LooCheck>& checks) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& k : checks) {
    nlohmann::json j = {{"step", k.step},
                        {"max_z", k.max_z},
                        {"mean_z", k.mean_z},
                        {"heldout_perplexity", k.heldout_perplexity},
                        {"lr", k.lr}};
    if (k.rolled_back) j["rolled_back"] = true;
    out.push_back(j);
  }
  return out;
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
  if (c.loo.stop == "criterion") s.heldout = write_heldout(run, c, m);
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
  Dataset retained, heldout;
  if (c.loo.retain_batch > 0) {
    retained = load_all_rows(run, edit);
    in.retained = &retained;
  }
  // The stopping rule needs the held-out rows; a run trained before it has
  // none and keeps the fixed step count.
  const bool criterion = c.loo.stop == "criterion" && s.heldout;
  if (criterion) {
    heldout = decode_store(read_verified(run, *s.heldout), run.path(s.heldout->path));
    in.heldout = &heldout;
    spdlog::info("[student] leave-one-out update on {} deleted row(s): until they look unseen (at most {} steps)",
                 rows.size(), c.loo.max_steps);
  } else {
    spdlog::info("[student] leave-one-out update on {} deleted row(s): {} steps at lr {}", rows.size(), c.loo.steps,
                 c.loo.lr);
  }
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
  nlohmann::json out = {{"guarantee", kStudentGuarantee},
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
  if (criterion) {
    out["stop"] = "criterion";
    out["criterion"] = {
        {"statistic",
         "z of each deleted group's excess log-likelihood (student over teachers) "
         "against held-out rows; the largest and the mean must fall to their levels "
         "(docs/loo.md, \"When the update stops\")"},
        {"max_z", {{"before", r.max_z_before}, {"after", r.max_z_after}, {"level", r.max_z_threshold}}},
        {"mean_z", {{"before", r.mean_z_before}, {"after", r.mean_z_after}, {"level", r.mean_z_threshold}}},
        {"reached", r.criterion_reached},
        {"groups", r.criterion_groups},
        {"heldout_rows", heldout.size()},
        {"max_steps", c.loo.max_steps},
        {"heldout_perplexity_before", std::exp(-r.heldout_before)},
        {"heldout_perplexity_after", std::exp(-r.heldout_after)},
        {"checks", checks_json(r.checks)}};
    out["final_lr"] = r.final_lr;
    spdlog::info(
        "[student] criterion {} after {} steps: largest z {:.2f} -> {:.2f} (level {:.2f}), mean z {:.2f} -> "
        "{:.2f} (level {:.2f}), final lr {}",
        r.criterion_reached ? "reached" : "NOT reached", r.steps, r.max_z_before, r.max_z_after, r.max_z_threshold,
        r.mean_z_before, r.mean_z_after, r.mean_z_threshold, r.final_lr);
    if (!r.criterion_reached) {
      out["warning"] = "the update reached loo.max_steps=" + std::to_string(c.loo.max_steps) +
                       " before the deleted rows looked unseen (largest z " + std::to_string(r.max_z_after) +
                       ", level " + std::to_string(r.max_z_threshold) + "; mean z " + std::to_string(r.mean_z_after) +
                       ", level " + std::to_string(r.mean_z_threshold) +
                       "): the student may still remember them; `sisa audit` measures it";
      spdlog::warn("[student] {}", out["warning"].get<std::string>());
    }
  } else {
    out["stop"] = "steps";
  }
  return out;
}

}  // namespace sisa
