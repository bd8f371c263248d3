#include "serve/deletion_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "format/shard_store.h"
#include "run/deletion_tx.h"
#include "sisa/errors.h"
#include "store/run_files.h"
#include "util/fs.h"

namespace sisa {

DeletionService::DeletionService(const std::string& run_dir, bool force_environment)
    : run_(run_dir, nullptr), writer_(run_, force_environment) {
  Manifest& m = writer_.manifest;
  const auto pending = prepare_recovery(run_, m, nullptr);
  ensemble_ = Ensemble::load(run_, m, writer_.config);
  // An id the run ever held is a valid request (already deleted ones are
  // reported as such in the receipt); anything else is rejected up front.
  RunKeys keys = known_keys(run_, m);
  known_ids_ = std::move(keys.ids);
  known_groups_ = std::move(keys.groups);
  // Receipts are checked now, so that answering about one never fails.
  for (const auto& r : m.receipts) {
    try {
      read_verified(run_, r);
      receipts_[r.path] = "";
    } catch (const Error& e) {
      spdlog::warn("{} (sisa fsck lists every damaged file)", e.what());
      receipts_[r.path] = e.what();
    }
  }
  deleted_ids_.insert(m.deleted_ids.begin(), m.deleted_ids.end());
  deleted_groups_.insert(m.deleted_groups.begin(), m.deleted_groups.end());
  next_seq_ = next_request_seq(m, read_log(run_.path(kLogFile)));
  for (const auto& rec : pending) {
    spdlog::info("deletion request {} was accepted before the last stop; it will be applied", rec.seq);
    states_[rec.seq] = {"pending", nullptr, {}};
    queue_.push_back(rec);
  }
}

DeletionService::~DeletionService() { stop(); }

void DeletionService::start() {
  worker_ = std::thread([this] { work(); });
}

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

std::string DeletionService::stale_reason() const {
  std::lock_guard<std::mutex> hold(ensemble_mu_);
  return stale_;
}

DeletionService::Submitted DeletionService::submit(const std::vector<int64_t>& keys, bool by_group) {
  // The ids the run ever held stand in for forget's plan (planning here
  // would read stores the worker may be replacing; docs/design.md).
  const auto& known = by_group ? known_groups_ : known_ids_;
  std::lock_guard<std::mutex> hold(mu_);
  const auto& deleted = by_group ? deleted_groups_ : deleted_ids_;
  const CheckedRequest checked = check_request(
      run_.root, writer_.config, keys, by_group,
      [&known](int64_t k) { return std::binary_search(known.begin(), known.end(), k); },
      [&deleted](int64_t k) { return deleted.count(k) > 0; });
  if (checked.noop) return {0, checked.keys};
  if (!paused_.empty()) throw UnavailableError("deletions are paused: " + paused_);
  if (stop_) throw UnavailableError("the server is shutting down");
  // The number is used up even if the append fails: a record may have
  // reached the log although its sync failed, and no two may share it.
  const LogRecord rec = accept_request(run_, next_seq_++, checked);  // durable before we answer
  states_[rec.seq] = {"pending", nullptr, {}};
  queue_.push_back(rec);
  wake_.notify_all();
  return {rec.seq, {}};
}

void DeletionService::settle(uint64_t seq, const std::string& state, nlohmann::json receipt, std::string error) {
  std::lock_guard<std::mutex> hold(mu_);
  states_[seq] = {state, std::move(receipt), std::move(error)};
  if (state == "applied") {
    ++applied_;
    const Manifest& m = writer_.manifest;  // the worker's, published (it calls settle)
    deleted_ids_.insert(m.deleted_ids.begin(), m.deleted_ids.end());
    deleted_groups_.insert(m.deleted_groups.begin(), m.deleted_groups.end());
  }
  if (state == "failed") ++failed_;
  if (!queue_.empty() && queue_.front().seq == seq) queue_.pop_front();
}

void DeletionService::pause(const std::string& why) {
  std::lock_guard<std::mutex> hold(mu_);
  paused_ = why;
}

void DeletionService::swap_in(std::shared_ptr<const Ensemble> next) {
  std::lock_guard<std::mutex> hold(ensemble_mu_);
  ensemble_ = std::move(next);
  stale_.clear();
}

nlohmann::json DeletionService::receipt_of(uint64_t seq) const {
  try {
    return nlohmann::json::parse(read_file(run_.path(receipt_file(seq))));
  } catch (const std::exception& e) {
    return {{"unreadable", e.what()}};
  }
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
    Manifest& m = writer_.manifest;
    try {
      TrainerOptions trainer;
      trainer.stop = &stop_;
      nlohmann::json receipt = finish_request(run_, m, writer_.config, rec, trainer, nullptr);
      if (receipt.is_null()) receipt = receipt_of(rec.seq);  // published before the last stop
      // Swap first, report second: a client told `applied` must never be
      // answered by the old models afterwards.
      swap_in(Ensemble::load(run_, m, writer_.config, ensemble().get()));
      settle(rec.seq, "applied", std::move(receipt));
      spdlog::info("deletion request {} applied; serving the new models", rec.seq);
      continue;
    } catch (const InterruptedError&) {
      spdlog::warn("deletion request {} interrupted by shutdown; it resumes at the next start", rec.seq);
      std::lock_guard<std::mutex> hold(mu_);
      states_[rec.seq].state = "pending";
      return;
    } catch (const std::exception& e) {
      spdlog::error("deletion request {} failed: {}", rec.seq, e.what());
      recover_from_failure(rec, e.what());
      return;  // deletions stay paused until a restart
    }
  }
}

// After a failure the published manifest is whole (the edit was built on a
// copy), but the failed attempt may have left files and a log record that
// the recovery of the next writer sorts out, so take no more requests. What the clients are told depends on what
// reached the disk: if the new manifest was published, the deleted samples must not be served any longer, whatever
// failed after (purge, `applied` record, model loading).
void DeletionService::recover_from_failure(const LogRecord& rec, const std::string& what) {
  pause("request " + std::to_string(rec.seq) + " failed (" + what +
        "); restart sisa serve, or run sisa recover (or sisa repair), to finish it");
  bool published = false;
  try {
    const Manifest disk = load_manifest(run_.root);
    published = disk.last_seq >= rec.seq;
    if (published) {
      swap_in(Ensemble::load(run_, disk, writer_.config, ensemble().get()));
      settle(rec.seq, "applied", receipt_of(rec.seq));
      spdlog::warn(
          "deletion request {} was published before the failure: serving the new models; "
          "a restart finishes its cleanup",
          rec.seq);
      return;
    }
  } catch (const std::exception& e) {
    spdlog::error("reloading the run after request {} failed: {}", rec.seq, e.what());
  }
  if (published) {
    std::lock_guard<std::mutex> hold(ensemble_mu_);
    stale_ = "request " + std::to_string(rec.seq) +
             " was published but its models cannot be loaded; "
             "restart sisa serve (or run sisa repair)";
  }
  settle(rec.seq, "failed", nullptr, what);
}

namespace {
// A receipt's warning (the LOO update stopped at its cap) lifted to the top
// of the answer, so a client that reads only the state sees it.
nlohmann::json with_warning(nlohmann::json out) {
  const auto& r = out.contains("receipt") ? out["receipt"] : nlohmann::json();
  if (r.is_object() && r.contains("student") && r["student"].contains("warning")) {
    out["warning"] = "student: " + r["student"]["warning"].get<std::string>();
  }
  return out;
}
}  // namespace

nlohmann::json DeletionService::request(uint64_t seq) const {
  {
    std::lock_guard<std::mutex> hold(mu_);
    const auto it = states_.find(seq);
    if (it != states_.end()) {
      nlohmann::json out = {{"id", seq}, {"state", it->second.state}};
      if (!it->second.receipt.is_null()) out["receipt"] = it->second.receipt;
      if (!it->second.error.empty()) out["error"] = it->second.error;
      return with_warning(std::move(out));
    }
  }
  const auto it = receipts_.find(receipt_file(seq));
  if (it == receipts_.end()) return nullptr;
  nlohmann::json out = {{"id", seq}, {"state", "applied"}};
  if (it->second.empty()) {
    out["receipt"] = receipt_of(seq);
  } else {
    out["receipt"] = nullptr;
    out["receipt_error"] = "damaged: " + it->second + "; the deletion itself is applied (sisa fsck, sisa status)";
  }
  return with_warning(std::move(out));
}

std::vector<std::string> DeletionService::damaged_receipts() const {
  std::vector<std::string> out;
  for (const auto& [path, damage] : receipts_) {
    if (!damage.empty()) out.push_back(damage);
  }
  return out;
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
