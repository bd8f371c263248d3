#include "serve/deletion_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "forget_ops.h"
#include "fs.h"
#include "shard_store.h"
#include "sisa/errors.h"

namespace sisa {

DeletionService::DeletionService(const std::string& run_dir, bool force_environment)
    : run_(run_dir, nullptr), writer_(run_, force_environment) {
  Manifest& m = writer_.manifest;
  const auto pending = prepare_recovery(run_, m, nullptr);
  ensemble_ = Ensemble::load(run_, m, writer_.config);
  // An id the run ever held is a valid request (already deleted ones are
  // reported as such in the receipt); anything else is rejected up front.
  known_ids_ = m.deleted_ids;
  for (const auto& e : m.entries) {
    const auto bytes = read_verified(run_, e.store);
    std::vector<int64_t> ids, groups;
    decode_store_keys(bytes, run_.path(e.store.path), &ids, &groups);
    known_ids_.insert(known_ids_.end(), ids.begin(), ids.end());
  }
  std::sort(known_ids_.begin(), known_ids_.end());
  known_ids_.erase(std::unique(known_ids_.begin(), known_ids_.end()), known_ids_.end());
  for (const auto& r : m.receipts) receipt_paths_.insert(r.path);
  next_seq_ = next_request_seq(m, read_log(run_.path(kLogFile)));
  for (const auto& rec : pending) {
    spdlog::info("deletion request {} was accepted before the last stop; it will be applied", rec.seq);
    states_[rec.seq] = {"pending", nullptr, {}};
    queue_.push_back(rec);
  }
}

DeletionService::~DeletionService() { stop(); }

void DeletionService::start() { worker_ = std::thread([this] { work(); }); }

void DeletionService::stop() {
  {
    std::lock_guard<std::mutex> hold(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

std::shared_ptr<const Ensemble> DeletionService::ensemble() const {
  std::lock_guard<std::mutex> hold(ensemble_mu_);
  return ensemble_;
}

uint64_t DeletionService::submit(const std::vector<int64_t>& ids) {
  std::vector<int64_t> unknown;
  for (int64_t id : ids) {
    if (!std::binary_search(known_ids_.begin(), known_ids_.end(), id)) unknown.push_back(id);
  }
  if (!unknown.empty()) {
    std::string list;
    for (size_t i = 0; i < unknown.size() && i < 20; ++i) list += (i ? ", " : "") + std::to_string(unknown[i]);
    if (unknown.size() > 20) list += ", ... (" + std::to_string(unknown.size()) + " in all)";
    throw DataError("unknown id(s) in run '" + run_.root + "': " + list +
                    "; the request was rejected, nothing deleted");
  }
  std::lock_guard<std::mutex> hold(mu_);
  if (!paused_.empty()) throw UnavailableError("deletions are paused: " + paused_);
  if (stop_) throw UnavailableError("the server is shutting down");
  const std::set<int64_t> unique(ids.begin(), ids.end());
  LogRecord rec{LogRecord::Type::kAccepted, next_seq_, false, {unique.begin(), unique.end()}};
  append_log(*run_.env, run_.path(kLogFile), rec);  // durable before we answer
  ++next_seq_;
  states_[rec.seq] = {"pending", nullptr, {}};
  queue_.push_back(rec);
  wake_.notify_all();
  spdlog::info("deletion request {} accepted ({} id(s))", rec.seq, rec.keys.size());
  return rec.seq;
}

void DeletionService::set_state(uint64_t seq, const std::string& state, nlohmann::json receipt,
                                std::string error) {
  std::lock_guard<std::mutex> hold(mu_);
  states_[seq] = {state, std::move(receipt), std::move(error)};
  if (state == "applied") ++applied_;
  if (state == "failed") ++failed_;
}

void DeletionService::finish(const LogRecord& rec) {
  Manifest& m = writer_.manifest;
  TrainerOptions trainer;
  trainer.stop = &stop_;
  nlohmann::json receipt = finish_request(run_, m, writer_.config, rec, trainer, nullptr);
  if (receipt.is_null()) {  // published before the last stop
    receipt = nlohmann::json::parse(read_file(run_.path(receipt_file(rec.seq))));
  }
  // Swap first, report second: a client told `applied` must never be
  // answered by the old models afterwards.
  auto next = Ensemble::load(run_, m, writer_.config, ensemble().get());
  {
    std::lock_guard<std::mutex> hold(ensemble_mu_);
    ensemble_ = std::move(next);
  }
  set_state(rec.seq, "applied", std::move(receipt));
  spdlog::info("deletion request {} applied; serving the new models", rec.seq);
}

void DeletionService::work() {
  for (;;) {
    LogRecord rec;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      rec = queue_.front();
      states_[rec.seq].state = "running";
    }
    try {
      finish(rec);
    } catch (const InterruptedError&) {
      spdlog::warn("deletion request {} interrupted by shutdown; it resumes at the next start", rec.seq);
      set_state(rec.seq, "pending");
      return;
    } catch (const std::exception& e) {
      // The manifest in memory may be half-updated: take no more requests.
      // The request stays accepted in the log; a restart (or sisa recover,
      // or sisa repair) carries it out.
      spdlog::error("deletion request {} failed: {}; deletions paused", rec.seq, e.what());
      set_state(rec.seq, "failed", nullptr, e.what());
      std::lock_guard<std::mutex> hold(mu_);
      paused_ = "request " + std::to_string(rec.seq) + " failed (" + e.what() +
                "); restart sisa serve or run sisa recover to retry it";
      return;
    }
    std::lock_guard<std::mutex> hold(mu_);
    queue_.pop_front();
  }
}

nlohmann::json DeletionService::request(uint64_t seq) const {
  {
    std::lock_guard<std::mutex> hold(mu_);
    const auto it = states_.find(seq);
    if (it != states_.end()) {
      nlohmann::json out = {{"id", seq}, {"state", it->second.state}};
      if (!it->second.receipt.is_null()) out["receipt"] = it->second.receipt;
      if (!it->second.error.empty()) out["error"] = it->second.error;
      return out;
    }
  }
  const std::string rel = receipt_file(seq);
  if (!receipt_paths_.count(rel)) return nullptr;
  return {{"id", seq}, {"state", "applied"}, {"receipt", nlohmann::json::parse(read_file(run_.path(rel)))}};
}

DeletionService::Counts DeletionService::counts() const {
  std::lock_guard<std::mutex> hold(mu_);
  Counts c;
  c.pending = queue_.size();
  c.applied = applied_;
  c.failed = failed_;
  return c;
}

std::vector<uint64_t> DeletionService::pending_ids() const {
  std::lock_guard<std::mutex> hold(mu_);
  std::vector<uint64_t> out;
  for (const auto& r : queue_) out.push_back(r.seq);
  return out;
}

std::string DeletionService::paused_reason() const {
  std::lock_guard<std::mutex> hold(mu_);
  return paused_;
}

}  // namespace sisa
