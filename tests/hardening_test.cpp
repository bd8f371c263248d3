// A run directory is a closed world, and every run file's damage is caught:
// the real `sisa` binary against symbolic links that point out of the run
// (nothing outside is touched, nothing is purged halfway), a byte flipped in
// each kind of run file (detected and named), a damaged deletion log (a
// documented way back that loses no acknowledged request silently), and the
// small defects a hostile review found.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "format/deletion_log.h"
#include "format/manifest.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "test_util.h"
#include "util/fs.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace sisa;
using sisa::test::run_sisa;
using sisa::test::TempDir;

namespace {

int code(ExitCode c) { return static_cast<int>(c); }

void flip_byte(const std::string& path, std::streamoff at) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(at);
  const char c = static_cast<char>(f.peek());
  f.seekp(at);
  f.put(static_cast<char>(c ^ 0x04));
}
void flip_middle_byte(const std::string& path) {
  flip_byte(path, static_cast<std::streamoff>(fs::file_size(path) / 2));
}

// The JSON document that ends the output (stdout follows the log lines).
json last_json(const std::string& output) {
  const auto at = output.rfind("\n{");
  return json::parse(at == std::string::npos ? output : output.substr(at + 1));
}

class Hardening : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = test::synthetic(150, 5, 3, 21);
    test::write_csv(data_, dir_ / "train.csv");
    test::write_text(cfg_,
                     test::config_yaml(dir_ / "train.csv", dir_ / "train.csv", 5, 3, "  type: mlp\n  hidden: [8]\n",
                                       "  shards: 3\n  slices: 3\n", "  epochs: 3\n  batch_size: 8\n  lr: 0.01\n"));
    const auto r = run_sisa("train -q -c " + cfg_ + " -r " + run_);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    fs::create_directory(outside_);
    test::write_text(outside_ + "/precious.txt", "not sisa's\n");
  }
  // An id of `shard`.
  int64_t id_in(int64_t shard, size_t nth = 0) const {
    for (int64_t id : data_.ids) {
      if (shard_of(7, id, 3) == shard && nth-- == 0) return id;
    }
    return -1;
  }
  // Every command that opens the run refuses it (exit 4) naming `link`,
  // and neither the run nor anything outside it changes.
  void expect_refused(const std::string& link, const std::string& what) {
    const auto run_before = test::snapshot(run_);
    const auto outside_before = test::snapshot(outside_);
    for (const std::string cmd :
         {"forget -r " + run_ + " --ids " + std::to_string(id_in(1)), "recover -r " + run_, "status -r " + run_,
          "predict -r " + run_, "verify -r " + run_, "repair -r " + run_, "fsck -r " + run_}) {
      const auto r = run_sisa(cmd);
      EXPECT_EQ(r.exit_code, code(ExitCode::kCorruption)) << what << ": " << cmd << "\n" << r.output;
      EXPECT_NE(r.output.find(link), std::string::npos) << what << ": " << cmd << "\n" << r.output;
    }
    EXPECT_TRUE(test::snapshot(run_) == run_before) << what << ": the run changed";
    EXPECT_TRUE(test::snapshot(outside_) == outside_before) << what << ": files outside the run changed";
  }

  TempDir dir_;
  Dataset data_;
  std::string cfg_ = dir_ / "config.yaml";
  std::string run_ = dir_ / "run";
  std::string outside_ = dir_ / "outside";
};

TEST_F(Hardening, SymbolicLinksInTheRunAreRefusedAndNothingOutsideIsTouched) {
  // A stray link to a file outside (recover used to delete its target).
  fs::create_symlink(outside_ + "/precious.txt", run_ + "/notes");
  expect_refused("notes", "a linked stray file");
  fs::remove(run_ + "/notes");

  // The store itself, moved out and linked back.
  const Manifest m = load_manifest(run_);
  const std::string store = run_ + "/" + m.entries[1].store.path;
  fs::rename(store, outside_ + "/store.h5");
  fs::create_symlink(outside_ + "/store.h5", store);
  expect_refused(m.entries[1].store.path, "a linked store");
  fs::remove(store);
  fs::rename(outside_ + "/store.h5", store);

  // The deletion log (it exists after a first deletion).
  ASSERT_EQ(run_sisa("forget -q -r " + run_ + " --ids " + std::to_string(id_in(0))).exit_code, 0);
  fs::rename(run_ + "/deletions.log", outside_ + "/deletions.log");
  fs::create_symlink(outside_ + "/deletions.log", run_ + "/deletions.log");
  expect_refused("deletions.log", "a linked log");
  fs::remove(run_ + "/deletions.log");
  fs::rename(outside_ + "/deletions.log", run_ + "/deletions.log");

  // LOCK, pointing at a file the lock would have truncated.
  fs::remove(run_ + "/LOCK");
  fs::create_symlink(outside_ + "/precious.txt", run_ + "/LOCK");
  expect_refused("LOCK", "a linked lock file");
  fs::remove(run_ + "/LOCK");

  // data/ moved to another disk and linked back: a purge would have left
  // the superseded store, with the deleted rows, outside the run.
  fs::rename(run_ + "/data", outside_ + "/data");
  fs::create_symlink(outside_ + "/data", run_ + "/data");
  expect_refused("data (symbolic link", "a linked data directory");
  fs::remove(run_ + "/data");
  fs::rename(outside_ + "/data", run_ + "/data");

  // Restored, the run is whole again.
  EXPECT_EQ(run_sisa("fsck -q -r " + run_).exit_code, 0);
  EXPECT_EQ(run_sisa("forget -q -r " + run_ + " --ids " + std::to_string(id_in(1))).exit_code, 0);
  EXPECT_EQ(run_sisa("fsck -q -r " + run_).exit_code, 0);
  EXPECT_TRUE(fs::exists(outside_ + "/precious.txt"));
}

TEST_F(Hardening, TrainRefusesADirectoryThatHoldsSomethingElse) {
  const std::string home = dir_ / "home";
  fs::create_directories(home + "/photos");
  test::write_text(home + "/thesis.tex", "years of work\n");
  test::write_text(home + "/photos/a.jpg", "jpeg\n");
  const auto before = test::snapshot(home);
  const auto r = run_sisa("train -q -c " + cfg_ + " -r " + home);
  EXPECT_EQ(r.exit_code, code(ExitCode::kUsage)) << r.output;
  EXPECT_NE(r.output.find("thesis.tex"), std::string::npos) << r.output;
  EXPECT_TRUE(test::snapshot(home) == before);
  // A project directory whose names look like a run's (data/, config.yaml) is not one.
  const std::string project = dir_ / "project";
  fs::create_directories(project + "/data");
  test::write_text(project + "/config.yaml", read_text(cfg_));
  fs::copy_file(dir_ / "train.csv", project + "/data/train.csv");
  const auto project_before = test::snapshot(project);
  const auto p = run_sisa("train -q -c " + project + "/config.yaml -r " + project);
  EXPECT_EQ(p.exit_code, code(ExitCode::kUsage)) << p.output;
  EXPECT_NE(p.output.find("data/train.csv"), std::string::npos) << p.output;
  EXPECT_TRUE(test::snapshot(project) == project_before);
  // An empty directory is fine.
  fs::create_directory(dir_ / "empty");
  EXPECT_EQ(run_sisa("train -q -c " + cfg_ + " -r " + (dir_ / "empty")).exit_code, 0);
}

TEST_F(Hardening, AFlippedByteInEveryKindOfRunFileIsDetectedAndNamed) {
  ASSERT_EQ(run_sisa("forget -q -r " + run_ + " --ids " + std::to_string(id_in(2))).exit_code, 0);
  ASSERT_EQ(run_sisa("fsck -q -r " + run_).exit_code, 0);
  const Manifest m = load_manifest(run_);
  const std::string pristine = dir_ / "pristine";
  fs::copy(run_, pristine, fs::copy_options::recursive);
  const std::vector<std::string> files = {"MANIFEST.json",
                                          "config.yaml",
                                          "deletions.log",
                                          m.entries[0].store.path,
                                          m.entries[2].store.path,
                                          m.entries[1].checkpoints[0].file.path,
                                          m.entries[2].final_checkpoint().file.path,
                                          m.receipts.at(0).path};
  for (const auto& rel : files) {
    fs::remove_all(run_);
    fs::copy(pristine, run_, fs::copy_options::recursive);
    flip_middle_byte(run_ + "/" + rel);
    const auto r = run_sisa("fsck --json -r " + run_);
    EXPECT_EQ(r.exit_code, code(ExitCode::kCorruption)) << rel << "\n" << r.output;
    EXPECT_NE(r.output.find(rel), std::string::npos) << rel << "\n" << r.output;
  }
}

TEST_F(Hardening, EditsInsideTheManifestAreCaught) {
  const int64_t id = id_in(0);
  ASSERT_EQ(run_sisa("forget -q -r " + run_ + " --ids " + std::to_string(id)).exit_code, 0);
  const std::string path = run_ + "/MANIFEST.json";
  const json original = json::parse(read_text(path));
  const auto edit = [&](const std::function<void(json&)>& change, bool fix_checksum) {
    json j = original;
    change(j);
    if (fix_checksum) j["checksum"] = manifest_checksum(j);
    test::write_text(path, j.dump(1));
    return run_sisa("fsck -r " + run_);
  };
  // Plain edits break the checksum.
  for (const auto& change : std::vector<std::function<void(json&)>>{
           [](json& j) { j["deleted_ids"] = json::array(); }, [](json& j) { j["last_seq"] = 7; },
           [](json& j) { j["shard_entries"][0]["n_samples"] = 3; }}) {
    const auto r = edit(change, false);
    EXPECT_EQ(r.exit_code, code(ExitCode::kCorruption)) << r.output;
    EXPECT_NE(r.output.find("MANIFEST.json: checksum"), std::string::npos) << r.output;
  }
  // An edit that also recomputes the checksum still disagrees with the
  // receipts and the log.
  auto r = edit([](json& j) { j["deleted_ids"] = json::array(); }, true);
  EXPECT_EQ(r.exit_code, code(ExitCode::kCorruption)) << r.output;
  EXPECT_NE(r.output.find("deleted ids"), std::string::npos) << r.output;
  r = edit([](json& j) { j["last_seq"] = 5; }, true);
  EXPECT_EQ(r.exit_code, code(ExitCode::kCorruption)) << r.output;
  EXPECT_NE(r.output.find("last applied request is 5"), std::string::npos) << r.output;
  // A reference that leaves the run is refused before anything reads it.
  r = edit([](json& j) { j["shard_entries"][1]["store"]["path"] = "../outside/precious.txt"; }, true);
  EXPECT_EQ(r.exit_code, code(ExitCode::kCorruption)) << r.output;
  EXPECT_NE(r.output.find("inside the run directory"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(outside_ + "/precious.txt"));
}

TEST_F(Hardening, ADamagedLogHasAWayBackThatLosesNothingSilently) {
  const int64_t first = id_in(0), second = id_in(1);
  ASSERT_EQ(run_sisa("forget -q -r " + run_ + " --ids " + std::to_string(first)).exit_code, 0);
  const std::string log = run_ + "/deletions.log";
  // A second request accepted but not applied (as after a crash), then its
  // record damaged: nothing can say which ids it held.
  append_log(Env::posix(), log, {LogRecord::Type::kAccepted, 2, false, {second}});
  const auto size = fs::file_size(log);
  flip_byte(log, static_cast<std::streamoff>(size - 3));  // inside the last record's ids
  // Read-only commands still work and say so; writers refuse, naming the way back.
  auto r = run_sisa("status --json -r " + run_);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(last_json(r.output)["log_damaged"].get<std::string>().find("deletions.log"), std::string::npos);
  EXPECT_EQ(run_sisa("predict -q -r " + run_).exit_code, 0);
  const auto before = test::snapshot(run_);
  r = run_sisa("forget -r " + run_ + " --ids " + std::to_string(id_in(2)));
  EXPECT_EQ(r.exit_code, code(ExitCode::kCorruption)) << r.output;
  EXPECT_NE(r.output.find("--rebuild-log"), std::string::npos) << r.output;
  r = run_sisa("repair -r " + run_);
  EXPECT_EQ(r.exit_code, code(ExitCode::kCorruption)) << r.output;
  EXPECT_NE(r.output.find("Nothing was changed"), std::string::npos) << r.output;
  EXPECT_TRUE(test::snapshot(run_) == before);
  // The rebuild keeps request 1 and says request 2 must be submitted again.
  r = run_sisa("repair --json --rebuild-log -r " + run_);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json rebuilt = last_json(r.output)["log"];
  EXPECT_EQ(rebuilt["damaged_bytes"].size(), 1u) << rebuilt.dump();
  EXPECT_EQ(rebuilt["applied_through"], 1);
  EXPECT_NE(rebuilt["warning"].get<std::string>().find("after request 1"), std::string::npos);
  EXPECT_EQ(run_sisa("fsck -q -r " + run_).exit_code, 0);
  EXPECT_EQ(run_sisa("forget -q -r " + run_ + " --ids " + std::to_string(second)).exit_code, 0);

  // A damaged record of an applied request is restored from its receipt.
  flip_byte(log, 8 + 13 + 9);  // inside request 1's accepted record
  r = run_sisa("repair --json --rebuild-log -r " + run_);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(last_json(r.output)["log"]["restored_from_receipts"], json::array({1})) << r.output;
  const auto restored = read_log(log);
  EXPECT_EQ(restored.records.size(), 4u);  // accepted and applied, for requests 1 and 2 (the number reused)
  EXPECT_EQ(run_sisa("fsck -q -r " + run_).exit_code, 0);
}

TEST_F(Hardening, FsckWhileAWriterRunsAnswersBusy) {
  RunLock writer(run_);
  const auto r = run_sisa("fsck -r " + run_);
  EXPECT_EQ(r.exit_code, code(ExitCode::kLocked)) << r.output;
  EXPECT_NE(r.output.find("busy"), std::string::npos) << r.output;
}

TEST_F(Hardening, ANoOpForgetWritesNothingAndIdsComeFromPipes) {
  const int64_t id = id_in(1);
  // From a pipe (its size reads as 0): the ids are read to the end.
  auto r = run_sisa("forget -q --json -r " + run_ + " --ids-file -", "echo " + std::to_string(id) + " |");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(last_json(r.output)["deleted_count"], 1);
  const auto before = test::snapshot(run_);
  r = run_sisa("forget --json -r " + run_ + " --ids " + std::to_string(id));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(last_json(r.output)["noop"].get<bool>());
  EXPECT_TRUE(test::snapshot(run_) == before) << "a no-op forget wrote a log record or receipt";
  r = run_sisa("forget -r " + run_ + " --ids-file -", "printf '# nothing\\n' |");
  EXPECT_EQ(r.exit_code, code(ExitCode::kUsage)) << r.output;
  EXPECT_NE(r.output.find("holds no ids"), std::string::npos) << r.output;
}

TEST_F(Hardening, ForgettingEverySampleLeavesAConsistentRunWithNoModel) {
  std::string all;
  for (int64_t id : data_.ids) all += (all.empty() ? "" : ",") + std::to_string(id);
  const auto r = run_sisa("forget -q -r " + run_ + " --ids " + all);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(run_sisa("fsck -q -r " + run_).exit_code, 0);
  const auto p = run_sisa("predict -r " + run_);
  EXPECT_EQ(p.exit_code, code(ExitCode::kData)) << p.output;
  EXPECT_NE(p.output.find("every sample of the run has been deleted"), std::string::npos) << p.output;
  EXPECT_EQ(run_sisa("verify -q -r " + run_).exit_code, 0);
}

// Every file a user names must be a regular file of bounded size: /dev/zero,
// a FIFO, a directory or an endless pipe is refused by name (once: unbounded
// memory or a hang), with the exit code of what it was meant to be.
TEST_F(Hardening, InputFilesMustBeRegularFilesOfBoundedSize) {
  ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0);
  fs::create_directory(dir_ / "a-dir");
  const std::string forget = "timeout -s KILL 60 ";  // a hang fails the test instead of stalling it
  const auto refused = [&](const std::string& args, ExitCode want, const std::string& needle,
                           const std::string& env = "") {
    const auto before = test::snapshot(run_);
    const auto r = run_sisa(args, env + forget);
    EXPECT_EQ(r.exit_code, code(want)) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << args << "\n" << r.output;
    EXPECT_TRUE(test::snapshot(run_) == before) << args << ": the run changed";
  };
  for (const std::string& bad : std::vector<std::string>{"/dev/zero", dir_ / "fifo", dir_ / "a-dir"}) {
    refused("forget -r " + run_ + " --ids-file " + bad, ExitCode::kUsage, "'" + bad + "' is");
    refused("forget -r " + run_ + " --groups-file " + bad, ExitCode::kUsage, "'" + bad + "' is");
    refused("train -c " + bad + " -r " + dir_ / "never", ExitCode::kUsage, "config file: '" + bad + "' is");
    refused("serve -r " + run_ + " --port 0 --token-file " + bad, ExitCode::kUsage, "--token-file: '" + bad + "' is");
  }
  // Standard input is read to its end, but not past 1 GiB.
  refused("forget -r " + run_ + " --ids-file -", ExitCode::kUsage, "holds more than 1 GiB", "yes 1 | ");
  // Training data that is not a regular file: a data error.
  test::write_text(dir_ / "fifo.yaml",
                   test::config_yaml(dir_ / "fifo", dir_ / "train.csv", 5, 3, "  type: mlp\n  hidden: [8]\n",
                                     "  shards: 3\n  slices: 3\n", "  epochs: 3\n  batch_size: 8\n  lr: 0.01\n"));
  refused("train -c " + dir_ / "fifo.yaml" + " -r " + dir_ / "never", ExitCode::kData,
          "data file: '" + dir_ / "fifo" + "' is a FIFO");
  EXPECT_FALSE(fs::exists(dir_ / "never"));
}

// The bearer token is one line of visible ASCII: a second line or binary
// bytes would make a token no client can send, so the server refuses to start.
TEST_F(Hardening, ATokenFileWithTwoLinesOrBinaryBytesIsRefused) {
  for (const std::string& token :
       std::vector<std::string>{"first-line-of-the-token\nsecond-line-of-it\n",
                                std::string("binary\0bytes-in-the-token", 25), "a token with spaces inside\n"}) {
    test::write_text(dir_ / "token", token);
    const auto r = run_sisa("serve -r " + run_ + " --port 0 --token-file " + dir_ / "token", "timeout -s KILL 60");
    EXPECT_EQ(r.exit_code, code(ExitCode::kUsage)) << r.output;
    EXPECT_NE(r.output.find("one token of visible ASCII characters on one line"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("second-line"), std::string::npos) << "the token was echoed: " << r.output;
  }
}

// A manifest without its checksum (format version 1) cannot show an edit:
// fsck says so, and repair checks the run and writes it with its checksum.
TEST_F(Hardening, AManifestWithoutItsChecksumFailsFsckUntilRepairUpgradesIt) {
  const std::string path = manifest_path(run_);
  json j = json::parse(read_text(path));
  j["format_version"] = 1;
  j.erase("checksum");
  test::write_text(path, j.dump(1));
  auto r = run_sisa("fsck -r " + run_);
  EXPECT_EQ(r.exit_code, code(ExitCode::kCorruption)) << r.output;
  EXPECT_NE(r.output.find("format version 1 carries no checksum"), std::string::npos) << r.output;
  r = run_sisa("repair -q -r " + run_);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(run_sisa("fsck -q -r " + run_).exit_code, 0);
  EXPECT_EQ(json::parse(read_text(path))["format_version"], kManifestFormatVersion);
}

// A failed write (a full disk) leaves no temp file behind.
TEST(AtomicWrite, AFailedWriteLeavesNoTempFile) {
  TempDir dir;
  struct FullDisk : Env {
    void write_file(const std::string& path, const void* data, size_t n) override {
      Env::posix().write_file(path, data, n / 2);
      throw IOError("cannot write '" + path + "': No space left on device");
    }
    void sync_file(const std::string&) override {}
    void rename_file(const std::string& f, const std::string& t) override { Env::posix().rename_file(f, t); }
    void sync_dir(const std::string&) override {}
    void append_file(const std::string& p, const void* d, size_t n) override { Env::posix().append_file(p, d, n); }
    void remove_file(const std::string& p) override { Env::posix().remove_file(p); }
    void truncate_file(const std::string& p, uint64_t s) override { Env::posix().truncate_file(p, s); }
  } full;
  EXPECT_THROW(atomic_write(full, dir / "MANIFEST.json", std::string(1000, 'x')), IOError);
  EXPECT_FALSE(fs::exists(dir / "MANIFEST.json.tmp"));
  EXPECT_FALSE(fs::exists(dir / "MANIFEST.json"));
}

}  // namespace
