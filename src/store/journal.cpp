#include "store/journal.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>

namespace fs = std::filesystem;

namespace sisa {

std::string journal_file(int64_t shard) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "journal/shard-%03lld.json", static_cast<long long>(shard));
  return buf;
}

void write_journal(const RunDir& run, int64_t shard, const ShardJournal& j) {
  nlohmann::json cks = nlohmann::json::array();
  for (const auto& c : j.checkpoints) cks.push_back(ref_json(c));
  const std::string text = nlohmann::json{{"format", "sisa-journal"}, {"format_version", 1},
                                          {"shard", shard},           {"identity_hash", j.identity_hash},
                                          {"ids_hash", j.ids_hash},   {"store", ref_json(j.store)},
                                          {"checkpoints", cks}}
                               .dump(1);
  write_run_file(run, journal_file(shard), std::vector<uint8_t>(text.begin(), text.end()));
}

std::unique_ptr<ShardJournal> read_journal(const RunDir& run, int64_t shard) {
  const std::string path = run.path(journal_file(shard));
  if (!fs::exists(path)) return nullptr;
  try {
    const auto j = nlohmann::json::parse(read_text(path));
    if (j.at("format") != "sisa-journal" || j.at("format_version") != 1) return nullptr;
    auto out = std::make_unique<ShardJournal>();
    out->identity_hash = j.at("identity_hash");
    out->ids_hash = j.at("ids_hash");
    out->store = ref_from(j.at("store"));
    for (const auto& c : j.at("checkpoints")) out->checkpoints.push_back(checkpoint_from(c));
    check_inside_run(out->store.path);
    for (const auto& c : out->checkpoints) check_inside_run(c.file.path);
    return out;
  } catch (const std::exception& e) {
    spdlog::warn("{}: unreadable progress journal ({}); the shard starts over", path, e.what());
    return nullptr;
  }
}

}  // namespace sisa
