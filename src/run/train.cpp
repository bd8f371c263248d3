// `sisa train`: ingest the source data into per-shard stores, then train
// every shard stage by stage, then publish the manifest.
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <set>

#include "config/environment.h"
#include "config/model_spec.h"
#include "format/shard_store.h"
#include "lm/loo_student.h"
#include "run/deletion_cost.h"
#include "run/seams.h"
#include "run/shard_jobs.h"
#include "run/stages.h"
#include "sisa/errors.h"
#include "sisa/id_list.h"
#include "sisa/placement.h"
#include "sisa/run.h"
#include "sisa/shard_trainer.h"
#include "store/artifacts.h"
#include "store/closed_world.h"
#include "store/journal.h"
#include "store/run_dir.h"
#include "store/run_files.h"
#include "util/fs.h"
#include "util/progress.h"

namespace fs = std::filesystem;

namespace sisa {
namespace {

// Rows of `all` minus the excluded ids, split by shard (each sorted by id).
std::vector<ShardData> place(const Dataset& all, const Config& c, const std::vector<int64_t>& exclude) {
  std::set<int64_t> excluded(exclude.begin(), exclude.end());
  std::set<int64_t> present;
  const Placement placement = c.placement();
  std::vector<std::vector<size_t>> rows(static_cast<size_t>(c.sisa.shards));
  for (size_t i = 0; i < all.size(); ++i) {
    if (excluded.count(all.ids[i])) {
      present.insert(all.ids[i]);
      continue;
    }
    rows[placement.shard(all.key(i), all.weight(i))].push_back(i);
  }
  std::vector<int64_t> unknown;
  for (int64_t id : excluded) {
    if (!present.count(id)) unknown.push_back(id);
  }
  if (!unknown.empty()) {
    throw DataError("--exclude-ids names " + std::to_string(unknown.size()) +
                    " id(s) not in the training data: " + format_id_list(unknown));
  }
  std::vector<ShardData> shards;
  for (const auto& r : rows) shards.push_back(make_shard_data(all.select(r), c));
  return shards;
}

// What a train that died before publishing left, from its progress
// journals: per shard, the intact store and checkpoints that still check out
// (same identity, same samples), so only unfinished work is trained again.
struct Resumed {
  std::vector<std::vector<CheckpointRef>> checkpoints;
  std::vector<FileRef> stores;
  std::set<std::string> files;  // everything to keep, config.yaml included
};

Resumed resume_from_journals(const RunDir& dir, const Config& c, const std::string& identity,
                             const std::vector<ShardData>& shards) {
  Resumed r;
  r.checkpoints.resize(static_cast<size_t>(c.sisa.shards));
  r.stores.resize(static_cast<size_t>(c.sisa.shards));
  r.files = {kConfigFile};
  for (int64_t s = 0; s < c.sisa.shards; ++s) {
    const auto j = read_journal(dir, s);
    if (!j || j->identity_hash != identity || j->ids_hash != ids_hash(shards[s].rows.ids)) continue;
    try {
      read_verified(dir, j->store);
    } catch (const Error& e) {
      continue;  // no intact store: the shard starts over
    }
    for (const auto& ck : j->checkpoints) {
      try {
        read_verified(dir, ck.file);
      } catch (const Error& e) {
        spdlog::warn("[shard {}] {}: resuming from the last intact checkpoint", s, e.what());
        break;
      }
      r.checkpoints[s].push_back(ck);
    }
    r.stores[s] = j->store;
    r.files.insert({j->store.path, journal_file(s)});
    for (const auto& ck : r.checkpoints[s]) r.files.insert(ck.file.path);
  }
  return r;
}

struct TrainJobs {
  std::vector<ShardJob> jobs;
  nlohmann::json sizes = nlohmann::json::array();  // samples per shard
  int64_t samples = 0, work = 0;                   // work: sample-epochs still to train
};

// Adds every shard's entry to `m` and returns a job for each unfinished one.
TrainJobs make_train_jobs(const RunDir& dir, const Config& c, Manifest& m, std::vector<ShardData>& shards,
                          const Resumed& resumed) {
  // Every unfinished shard as a job: trained here or, under mpirun, on worker
  // ranks; rank 0 writes each store just before its job is handed out.
  TrainJobs out;
  const auto& kept = resumed.checkpoints;
  for (int64_t s = 0; s < c.sisa.shards; ++s) {
    ShardData& data = shards[s];
    ShardEntry e;
    e.shard = s;
    e.n_samples = static_cast<int64_t>(data.rows.size());
    e.ids_hash = ids_hash(data.rows.ids);
    e.store = resumed.stores[s];
    e.checkpoints = kept[s];
    const auto done = static_cast<int64_t>(kept[s].size());
    if (done > 0) spdlog::info("[shard {}] resuming after stage {} (progress journal)", s, done - 1);
    if (done <= c.sisa.slices) {
      const int64_t first = std::max<int64_t>(done, 1);
      ShardJob job{s,
                   0,
                   e.store,
                   done == 0,
                   done > 0 ? kept[s].back() : CheckpointRef{},
                   first,
                   stage_work(c, data, first),
                   /*journal=*/true,
                   kept[s],
                   {},
                   nullptr};
      if (e.store.path.empty()) {
        // Written just before the job is handed out; the rows are freed then.
        auto rows = std::make_shared<Dataset>(std::move(data.rows));
        job.prepare = [&dir, &c, &m, rows, s](ShardJob& j) {
          j.store = write_run_file(dir, store_file(s, 0), encode_store(*rows, s, c.data));
          m.entries[s].store = j.store;
          write_journal(dir, s, {m.identity_hash, m.entries[s].ids_hash, j.store, {}});
          *rows = {};
        };
      }
      out.work += job.work;
      out.jobs.push_back(std::move(job));
    }
    data = {};
    m.entries.push_back(e);
    out.sizes.push_back(e.n_samples);
    out.samples += e.n_samples;
  }
  return out;
}

// The training data, checked and placed: what train needs before it
// touches the run directory.
struct Ingested {
  std::vector<ShardData> shards;
  nlohmann::json cost;  // the expected cost of a deletion (deletion_cost.h)
  int64_t samples = 0, truncated = 0;
};

Ingested ingest(const Config& c, const TrainRequest& req) {
  Dataset all = load_source(c.data, Split::kTrain);
  if (all.has_groups() != c.data.grouped()) {
    throw DataError("group column/dataset mismatch in '" + c.data.train + "'");
  }
  check_model_inputs(all, c, c.data.train);
  Ingested in;
  in.truncated = all.truncated;
  if (in.truncated > 0) {
    spdlog::warn("{} text(s) longer than data.max_tokens={} were truncated", in.truncated, c.data.max_tokens);
  }
  if (caches_features(c)) {
    // sisa-fc: the frozen backbone's features, once per row, kept beside the tokens.
    set_compute_threads(c.train.threads);
    Progress progress(static_cast<int64_t>(all.size()));
    int64_t last = 0;
    add_cached_features(c, &all, [&](int64_t done) {
      progress.advance(done - last);
      last = done;
      if (done % (1 << 14) < 256 || done == static_cast<int64_t>(all.size())) {
        spdlog::info("backbone features: {}/{} rows ({}%, {})", done, all.size(), progress.percent(), progress.eta());
      }
    });
  }
  in.shards = place(all, c, req.exclude_ids);
  in.cost = expected_deletion_cost(in.shards, c);
  in.samples = static_cast<int64_t>(all.size());
  return in;  // the shards hold copies: rank 0 does not keep the corpus while it coordinates
}

Manifest new_manifest(const Config& c, const nlohmann::json& cost) {
  Manifest m;
  m.environment = current_environment(c.train.threads);
  m.identity_hash = identity_hash(c, m.environment);
  m.config_hash = c.training_hash();
  m.shards = c.sisa.shards;
  m.slices = c.sisa.slices;
  if (c.placement().weighted()) m.deletion_cost = cost;
  return m;
}

// Copies the shared artifacts in and writes config.yaml, which names the
// copies; returns its YAML.
std::string store_config(const RunDir& dir, const Config& c, Manifest& m) {
  Config stored = c;
  m.artifacts = pin_artifacts(dir, &stored);
  const std::string yaml = stored.to_yaml();
  if (!m.artifacts.empty() && Config::parse(yaml, dir.path(kConfigFile), dir.root).training_hash() != m.config_hash) {
    throw DataError("a shared artifact (" + m.artifacts.front().key +
                    ", ...) changed while train read it; run train again");
  }
  m.config = write_run_file(dir, kConfigFile, std::vector<uint8_t>(yaml.begin(), yaml.end()));
  return yaml;
}

// What the shard jobs measured.
struct Trained {
  double train_seconds = 0.0, loop_seconds = 0.0, coordinator_cpu = 0.0, prepare_cpu = 0.0;
};

Trained run_jobs(const RunDir& dir, const std::string& yaml, Manifest& m, TrainJobs& plan, const RunSeams& seams) {
  const auto t_train = std::chrono::steady_clock::now();
  const double cpu_before = process_cpu_seconds();
  auto& jobs = plan.jobs;
  const JobContext context{dir.root, yaml, m.identity_hash, m.environment, {}, static_cast<int>(spdlog::get_level())};
  const auto local = make_local_runner(dir.env);
  const auto results = (seams.runner ? *seams.runner : *local).run(context, jobs);
  Trained t;
  for (size_t i = 0; i < results.size(); ++i) {
    t.prepare_cpu += results[i].prepare_cpu_seconds;
    auto& cks = m.entries[jobs[i].shard].checkpoints;
    cks.insert(cks.end(), results[i].checkpoints.begin(), results[i].checkpoints.end());
    t.loop_seconds += results[i].loop_seconds;
  }
  t.train_seconds = since(t_train);
  t.coordinator_cpu = process_cpu_seconds() - cpu_before;
  return t;
}

}  // namespace

nlohmann::json train(const TrainRequest& req) { return train(req, seams_of(req.cluster)); }

nlohmann::json train(const TrainRequest& req, const RunSeams& seams) {
  const auto t_start = std::chrono::steady_clock::now();
  const Config c = Config::load(req.config_path, req.overrides);
  if (req.run_dir.empty()) throw UsageError("--run-dir is required");
  if (has_manifest(req.run_dir)) {
    throw UsageError("'" + req.run_dir + "' already holds a trained run; use a new --run-dir (or sisa forget)");
  }
  require_run_or_empty(req.run_dir);
  // Check the data before the run directory is touched.
  Ingested in = ingest(c, req);
  const double ingest_seconds = since(t_start);

  make_dirs(req.run_dir);
  const RunDir dir(req.run_dir, seams.env);
  RunLock lock(dir.root);
  set_compute_threads(c.train.threads);
  Manifest m = new_manifest(c, in.cost);
  const std::set<int64_t> excluded(req.exclude_ids.begin(), req.exclude_ids.end());
  m.excluded_ids.assign(excluded.begin(), excluded.end());
  // A train that died before publishing: keep what its journals name.
  const Resumed resumed = resume_from_journals(dir, c, m.identity_hash, in.shards);
  const auto stale = remove_files_except(dir, resumed.files);
  if (!stale.empty()) spdlog::info("removed {} file(s) left by an interrupted train", stale.size());
  const std::string yaml = store_config(dir, c, m);

  spdlog::info("training {} shards x {} slices on {} samples ({} epochs, {} threads)", c.sisa.shards, c.sisa.slices,
               in.samples, c.train.epochs, c.train.threads);
  TrainJobs plan = make_train_jobs(dir, c, m, in.shards, resumed);
  const Trained t = run_jobs(dir, yaml, m, plan, seams);
  // The LOO student learns from every row once the teachers are done (rank 0).
  double student_seconds = 0.0;
  if (c.loo.student) {
    const auto t_student = std::chrono::steady_clock::now();
    m.student = train_student_entry(dir, c, m);
    student_seconds = since(t_student);
  }
  save_manifest(*dir.env, dir.root, m);
  remove_unreferenced(dir, m);  // the journals
  const double total = since(t_start);
  const double rate = static_cast<double>(plan.work) / std::max(t.loop_seconds, 1e-9);
  spdlog::info("trained {} shards in {} (training loop {:.1f}s, {:.0f} samples/s)", c.sisa.shards,
               format_duration(total), t.loop_seconds, rate);
  nlohmann::json out = {{"run_dir", req.run_dir},
                        {"shards", c.sisa.shards},
                        {"slices", c.sisa.slices},
                        {"samples", plan.samples},
                        {"shard_sizes", plan.sizes},
                        {"ingest_seconds", ingest_seconds},
                        {"train_seconds", t.train_seconds},
                        {"loop_seconds", t.loop_seconds},
                        {"coordinator_cpu_seconds", t.coordinator_cpu},
                        {"coordinator_wait_cpu_seconds", t.coordinator_cpu - t.prepare_cpu},  // excluding store writes
                        {"total_seconds", total},
                        {"sample_epochs", plan.work},
                        {"samples_per_second", rate},
                        {"identity_hash", m.identity_hash},
                        {"expected_deletion_cost", in.cost},
                        {"texts_truncated", in.truncated}};
  if (m.student) {
    out["student"] = {{"seconds", student_seconds},
                      {"fingerprint", m.student->checkpoint.fingerprint},
                      {"guarantee", kStudentGuarantee}};
  }
  return out;
}

}  // namespace sisa
