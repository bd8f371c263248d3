#include "run/shard_jobs.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <numeric>

#include "comm/communicator.h"
#include "config/environment.h"
#include "format/shard_store.h"
#include "run/stages.h"
#include "sisa/errors.h"
#include "store/journal.h"
#include "store/run_dir.h"
#include "store/run_files.h"
#include "util/fs.h"

namespace sisa {
namespace {

nlohmann::json refs_json(const std::vector<CheckpointRef>& refs) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : refs) out.push_back(ref_json(r));
  return out;
}

nlohmann::json to_json(const ShardJob& j) {
  return {{"shard", j.shard},         {"generation", j.generation}, {"store", ref_json(j.store)},
          {"from_seed", j.from_seed}, {"start", ref_json(j.start)}, {"first_stage", j.first_stage},
          {"work", j.work},           {"journal", j.journal},       {"write", j.write},
          {"done", refs_json(j.done)}};
}

ShardJob job_from(const nlohmann::json& j) {
  ShardJob job;
  job.shard = j.at("shard");
  job.generation = j.at("generation");
  job.store = ref_from(j.at("store"));
  job.from_seed = j.at("from_seed");
  job.start = checkpoint_from(j.at("start"));
  job.first_stage = j.at("first_stage");
  job.work = j.at("work");
  job.journal = j.at("journal");
  job.write = j.at("write");
  for (const auto& r : j.at("done")) job.done.push_back(checkpoint_from(r));
  return job;
}

nlohmann::json to_json(const JobContext& c) {
  return {{"run_dir", c.run_dir},
          {"config", c.config_yaml},
          {"identity_hash", c.identity_hash},
          {"environment", c.environment},
          {"restore_optimizer_state", c.trainer.restore_optimizer_state},
          {"log_level", c.log_level}};
}

JobContext context_from(const nlohmann::json& j) {
  JobContext c;
  c.run_dir = j.at("run_dir");
  c.config_yaml = j.at("config");
  c.identity_hash = j.at("identity_hash");
  c.environment = j.at("environment");
  c.trainer.restore_optimizer_state = j.at("restore_optimizer_state");
  c.log_level = j.at("log_level");
  return c;
}

// Runs the job's `prepare` (rank 0's share of the work); returns its CPU time.
double prepare(ShardJob& job) {
  if (!job.prepare) return 0.0;
  const double before = process_cpu_seconds();
  job.prepare(job);
  return process_cpu_seconds() - before;
}

// Hands freed heap memory back to the OS. The coordinator wakes ~50 times a
// second to poll for results, and on the virtual machines measured here each
// wakeup costs CPU in proportion to the process's resident memory (~0.6 us per
// MB: 0.2% of a core at 0 MB, 2.9% at 1 GB); the CLI keeps freed memory on
// the heap (mallopt in cli/main.cpp), so the stores written in `prepare`
// would otherwise stay resident for the whole wait.
void release_free_memory() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

// Largest first: the queue then drains evenly across workers.
std::vector<size_t> schedule(const std::vector<ShardJob>& jobs) {
  std::vector<size_t> order(jobs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return jobs[a].work > jobs[b].work; });
  return order;
}

class LocalRunner : public ShardRunner {
 public:
  explicit LocalRunner(Env* env) : env_(env) {}
  std::vector<ShardJobResult> run(const JobContext& context, std::vector<ShardJob>& jobs) override {
    const Config c = Config::parse(context.config_yaml, context.run_dir + "/config.yaml", context.run_dir);
    int64_t work = 0;
    for (const auto& job : jobs) work += job.work;
    Progress progress(work);
    std::vector<ShardJobResult> results;
    for (auto& job : jobs) {
      const double prepare_cpu = prepare(job);
      results.push_back(run_shard_job(context, c, job, env_, &progress));
      results.back().prepare_cpu_seconds = prepare_cpu;
    }
    return results;
  }

 private:
  Env* env_;
};

class CoordinatorRunner : public ShardRunner {
 public:
  explicit CoordinatorRunner(Communicator& comm) : comm_(comm) {}
  std::vector<ShardJobResult> run(const JobContext& context, std::vector<ShardJob>& jobs) override {
    if (comm_.size() <= 1) return LocalRunner(nullptr).run(context, jobs);
    std::deque<size_t> queue;
    for (size_t i : schedule(jobs)) queue.push_back(i);
    std::vector<int> idle;
    for (int r = comm_.size() - 1; r >= 1; --r) idle.push_back(r);
    std::vector<ShardJobResult> results(jobs.size());
    std::vector<double> prepare_cpu(jobs.size(), 0.0);
    std::vector<int64_t> index_of_rank(static_cast<size_t>(comm_.size()), -1);
    size_t outstanding = 0;
    double wait_cpu = 0.0;
    const nlohmann::json ctx = to_json(context);
    while (!queue.empty() || outstanding > 0) {
      bool prepared = false;
      while (!queue.empty() && !idle.empty()) {
        const size_t i = queue.front();
        queue.pop_front();
        const int worker = idle.back();
        idle.pop_back();
        prepare_cpu[i] = prepare(jobs[i]);
        prepared = prepared || jobs[i].prepare;
        index_of_rank[worker] = static_cast<int64_t>(i);
        comm_.send(worker, nlohmann::json{{"type", "job"}, {"context", ctx}, {"job", to_json(jobs[i])}}.dump());
        ++outstanding;
        spdlog::debug("[shard {}] handed to rank {}", jobs[i].shard, worker);
      }
      if (prepared) release_free_memory();
      int source = -1;
      const double cpu_before_wait = process_cpu_seconds();
      const auto msg = nlohmann::json::parse(comm_.receive_any(&source));
      wait_cpu += process_cpu_seconds() - cpu_before_wait;
      spdlog::debug("coordinator: message from rank {} after {:.3f} s CPU in this wait", source,
                    process_cpu_seconds() - cpu_before_wait);
      const auto i = static_cast<size_t>(index_of_rank.at(source));
      --outstanding;
      if (msg.at("type") == "failed") {
        throw_error(static_cast<ExitCode>(msg.value("code", 1)),
                    "rank " + std::to_string(source) + " failed on shard " + std::to_string(jobs[i].shard) + ": " +
                        msg.value("error", std::string("?")));
      }
      ShardJobResult r;
      r.shard = msg.at("shard");
      r.loop_seconds = msg.at("loop_seconds");
      r.rank = source;
      for (const auto& c : msg.at("checkpoints")) r.checkpoints.push_back(checkpoint_from(c));
      r.prepare_cpu_seconds = prepare_cpu[i];
      results[i] = std::move(r);
      idle.push_back(source);
      spdlog::info("[shard {}] done on rank {} ({} left)", jobs[i].shard, source, queue.size() + outstanding);
    }
    spdlog::debug("coordinator: {:.3f} s CPU while waiting for workers", wait_cpu);
    return results;
  }

 private:
  Communicator& comm_;
};

}  // namespace

std::unique_ptr<ShardRunner> make_local_runner(Env* env) { return std::make_unique<LocalRunner>(env); }

std::unique_ptr<ShardRunner> make_coordinator_runner(Communicator& comm) {
  return std::make_unique<CoordinatorRunner>(comm);
}

ShardJobResult run_shard_job(const JobContext& context, const Config& c, const ShardJob& job, Env* env,
                             Progress* progress) {
  const RunDir dir(context.run_dir, env);
  ShardData loaded;
  if (!job.data) {
    loaded = make_shard_data(decode_store(read_verified(dir, job.store), dir.path(job.store.path)), c);
  }
  const ShardData& data = job.data ? *job.data : loaded;
  ShardJobResult result;
  result.shard = job.shard;
  // The journal lists every checkpoint of the shard written so far.
  ShardJournal journal{context.identity_hash, ids_hash(data.rows.ids), job.store, job.done};
  auto record = [&](const CheckpointRef& ref) {
    if (!job.journal) return;
    journal.checkpoints.push_back(ref);
    write_journal(dir, job.shard, journal);
  };
  const RunDir* out = job.write ? &dir : nullptr;  // null: checkpoints stay in memory
  ModelState start;
  if (job.from_seed) {
    ShardTrainer init(c, job.shard, context.trainer);
    start = init.initial_state();
    result.checkpoints.push_back(checkpoint_ref(out, context.identity_hash, job.shard, 0, job.generation, data, start));
    record(result.checkpoints.back());
  } else {
    start = load_checkpoint(dir, job.start);
  }
  Progress own(job.work);
  StageRun run{&c,    out, context.identity_hash, context.trainer, progress ? progress : &own, &result.loop_seconds,
               record};
  for (auto& r : train_stages(run, job.shard, job.generation, data, start, job.first_stage, nullptr)) {
    result.checkpoints.push_back(std::move(r));
  }
  return result;
}

void serve_jobs(Communicator& comm) {
  for (;;) {
    int source = -1;
    const auto msg = nlohmann::json::parse(comm.receive_any(&source));
    if (msg.at("type") == "stop") return;
    const JobContext context = context_from(msg.at("context"));
    const ShardJob job = job_from(msg.at("job"));
    spdlog::set_level(static_cast<spdlog::level::level_enum>(context.log_level));
    nlohmann::json reply;
    try {
      const Config c = Config::parse(context.config_yaml, context.run_dir + "/config.yaml", context.run_dir);
      // A node whose numeric environment differs would not reproduce the run.
      const auto diffs = environment_diff(context.environment, current_environment(c.train.threads));
      if (!diffs.empty()) {
        std::string why = "this node's numeric environment differs from the run's:";
        for (const auto& d : diffs) why += " " + d + ";";
        throw EnvironmentError(why);
      }
      set_compute_threads(c.train.threads);
      const auto r = run_shard_job(context, c, job, nullptr);
      nlohmann::json cks = nlohmann::json::array();
      for (const auto& ck : r.checkpoints) cks.push_back(ref_json(ck));
      reply = {{"type", "done"}, {"shard", r.shard}, {"loop_seconds", r.loop_seconds}, {"checkpoints", cks}};
    } catch (const Error& e) {
      spdlog::error("[shard {}] {}", job.shard, e.what());
      reply = {{"type", "failed"}, {"error", e.what()}, {"code", static_cast<int>(e.code())}};
    } catch (const std::exception& e) {
      spdlog::error("[shard {}] {}", job.shard, e.what());
      reply = {{"type", "failed"}, {"error", e.what()}, {"code", 1}};
    }
    comm.send(source, reply.dump());
  }
}

void stop_workers(Communicator& comm) {
  for (int r = 1; r < comm.size(); ++r) comm.send(r, nlohmann::json{{"type", "stop"}}.dump());
}

}  // namespace sisa
