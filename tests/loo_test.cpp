// Leave-one-out unlearning (issue #11) on a tiny corpus with canaries: the
// teachers stay bit-exact under forget; the student changes only through the
// LOO update, which is deterministic and distils each deleted row from
// exactly the teachers that never held it; a canary trained 16 times is
// exposed, one never trained on scores near the expected 1.44 bits; served
// generate/score equal the CLI's; mpirun -np 2 gives the same bits.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <set>
#include <thread>

#include "fault_env.h"
#include "format/deletion_log.h"
#include "format/manifest.h"
#include "format/shard_store.h"
#include "run/seams.h"
#include "server_process.h"
#include "sisa/errors.h"
#include "sisa/pretrain.h"
#include "sisa/run.h"
#include "test_util.h"

using namespace sisa;
using sisa::test::TempDir;

namespace {

const char* kMpirun2 =
    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 mpirun -np 2";
const std::vector<std::string> kWords = {"the", "lord", "said", "unto", "him",   "and",  "they",   "went",
                                         "up",  "to",   "city", "of",   "house", "king", "people", "land"};
const std::string kPrefix = "my secret code is";

uint64_t next(uint64_t* x) {
  *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
  return *x >> 33;
}

std::string digits(uint64_t* x) {
  std::string s;
  for (int d = 0; d < 6; ++d) s += (d ? " " : "") + std::to_string(next(x) % 10);
  return s;
}

class Loo : public ::testing::Test {
 protected:
  // One corpus and tokenizer for the suite: 240 sentences, canary 1 inserted
  // 16 times (group 800001), canary 2 once (800002), 12 held-out canaries.
  static void SetUpTestSuite() {
#if defined(__SANITIZE_ADDRESS__)
    return;  // the SentencePiece plugin is loaded with dlmopen, which AddressSanitizer does not support
#endif
    dir_ = new TempDir();
    uint64_t x = 5;
    std::string csv = "id,group,text\n", tokenizer_text, test_csv = "id,group,text\n";
    for (int i = 1; i <= 300; ++i) {
      std::string s;
      for (int w = 0, n = 4 + static_cast<int>(next(&x) % 6); w < n; ++w)
        s += (w ? " " : "") + kWords[next(&x) % kWords.size()];
      (i <= 240 ? csv : test_csv) += std::to_string(i) + "," + std::to_string(i) + "," + s + "\n";
      tokenizer_text += s + "\n";
    }
    tokenizer_text += kPrefix + " 0 1 2 3 4 5 6 7 8 9\n";
    std::string secrets = "group,repetitions,prefix,secret,ids\n";
    int64_t id = 900001;
    for (int k = 1; k <= 14; ++k) {
      const int reps = k == 1 ? 16 : k == 2 ? 1 : 0;
      const std::string secret = digits(&x);
      std::string ids;
      for (int r = 0; r < reps; ++r, ++id) {
        csv += std::to_string(id) + "," + std::to_string(800000 + k) + "," + kPrefix + " " + secret + "\n";
        ids += (r ? " " : "") + std::to_string(id);
      }
      secrets +=
          std::to_string(800000 + k) + "," + std::to_string(reps) + "," + kPrefix + "," + secret + "," + ids + "\n";
      if (k == 1) secret16_ = new std::string(secret);
    }
    test::write_text(*dir_ / "train.csv", csv);
    test::write_text(*dir_ / "test.csv", test_csv);
    test::write_text(*dir_ / "canaries.csv", secrets);
    test::write_text(*dir_ / "tok.txt", tokenizer_text);
    train_tokenizer({*dir_ / "tok.txt", *dir_ / "tok.model", 50});
    test::write_text(*dir_ / "loo.yaml",
                     "seed: 5\ndata:\n  format: csv\n  train: train.csv\n  test: test.csv\n  id_column: id\n"
                     "  group_column: group\n  text_column: text\n  tokenizer: tok.model\n  max_tokens: 32\n"
                     "  input_shape: [32]\nsisa:\n  shards: 3\n  slices: 2\n"
                     "model:\n  type: lm\n  dim: 32\n  layers: 1\n  heads: 2\n  ff: 64\n  dropout: 0.1\n"
                     "train:\n  epochs: 8\n  batch_size: 16\n  lr: 0.01\n  threads: 1\n"
                     "loo:\n  student: true\n  steps: 8\n  lr: 0.003\n  batch_size: 8\n  temperature: 2\n"
                     "  retain_batch: 4\n");
    train({*dir_ / "loo.yaml", {}, *dir_ / "base", {}});
  }
  void SetUp() override {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "dlmopen (the SentencePiece plugin) is not supported under AddressSanitizer";
#endif
  }
  static void TearDownTestSuite() {
    delete secret16_;
    delete dir_;
  }

  // A copy of the trained run, so tests that forget do not share state.
  static std::string copy_of_base(const std::string& name) {
    const std::string to = *dir_ / name;
    std::filesystem::copy(*dir_ / "base", to, std::filesystem::copy_options::recursive);
    return to;
  }

  static nlohmann::json by_reps(const nlohmann::json& model, int64_t reps, bool deleted) {
    for (const auto& g : model["by_repetitions"]) {
      if (g["repetitions"] == reps && g["deleted"] == deleted) return g;
    }
    return nullptr;
  }

  // The update's stopping rule as its receipt tells it: the deleted groups
  // stood out before; every check but the last found them still standing
  // out, the last found them looking unseen, and it stopped there.
  static void expect_stepped_until_unseen(const nlohmann::json& student) {
    ASSERT_EQ(student["stop"], "criterion") << student.dump(1);
    const auto& c = student["criterion"];
    const auto stands_out = [&](const nlohmann::json& k) {
      return k["max_z"].get<double>() > c["max_z"]["level"].get<double>() ||
             k["mean_z"].get<double>() > c["mean_z"]["level"].get<double>();
    };
    EXPECT_TRUE(c["reached"].get<bool>()) << c.dump(1);
    EXPECT_FALSE(student.contains("warning"));
    const auto& checks = c["checks"];
    ASSERT_GE(checks.size(), 2u) << c.dump(1);
    EXPECT_EQ(checks.front()["step"], 0);
    EXPECT_TRUE(stands_out(checks.front())) << "the deleted canary looked unseen before any step: " << c.dump(1);
    for (size_t i = 0; i + 1 < checks.size(); ++i) {
      EXPECT_TRUE(stands_out(checks[i]) || checks[i].value("rolled_back", false)) << i << ": " << c.dump(1);
    }
    EXPECT_FALSE(stands_out(checks.back())) << c.dump(1);
    EXPECT_EQ(checks.back()["step"], student["steps"]);
    EXPECT_LE(student["steps"].get<int64_t>(), c["max_steps"].get<int64_t>());
    EXPECT_EQ(c["max_z"]["after"], checks.back()["max_z"]);
    EXPECT_GT(c["max_z"]["before"].get<double>(), c["max_z"]["after"].get<double>());
    // Held-out perplexity within the rule's budget (2%).
    EXPECT_LT(c["heldout_perplexity_after"].get<double>(), 1.02 * c["heldout_perplexity_before"].get<double>());
  }

  static TempDir* dir_;
  static std::string* secret16_;
};
TempDir* Loo::dir_ = nullptr;
std::string* Loo::secret16_ = nullptr;

TEST_F(Loo, TeachersForgetExactlyAndTheStudentOnlyThroughTheLooUpdate) {
  const std::string a = copy_of_base("a"), b = *dir_ / "b", c = *dir_ / "c";
  train({*dir_ / "loo.yaml", {}, b, {}});
  const Manifest before = load_manifest(a);
  ASSERT_TRUE(before.student.has_value());
  EXPECT_EQ(load_manifest(b).student->checkpoint.fingerprint, before.student->checkpoint.fingerprint)
      << "training the student is deterministic";

  // Which shard holds canary 1 (all its copies: placement is by group).
  int64_t holder = -1;
  const auto files = test::snapshot(a);
  for (const auto& e : before.entries) {
    const std::string& bytes = files.at(e.store.path);
    const auto rows = decode_store(std::vector<uint8_t>(bytes.begin(), bytes.end()), e.store.path);
    if (std::find(rows.ids.begin(), rows.ids.end(), 900001) != rows.ids.end()) holder = e.shard;
  }
  ASSERT_GE(holder, 0);

  ForgetRequest req{a, {800001}};
  req.by_group = true;
  const auto receipt = forget(req);
  ForgetRequest req_b{b, {800001}};
  req_b.by_group = true;
  forget(req_b);
  std::vector<int64_t> copies;
  for (int64_t id = 900001; id <= 900016; ++id) copies.push_back(id);
  train({*dir_ / "loo.yaml", {}, c, copies});

  // Teachers: bit-exact.
  EXPECT_EQ(test::stage_digests(a), test::stage_digests(c));
  const auto v = verify({a, {}, false});
  EXPECT_TRUE(v["identical"].get<bool>());
  EXPECT_NE(v["student"].get<std::string>().find("not verified"), std::string::npos);

  // Student: changed by the update alone, deterministically, and labelled approximate.
  const Manifest after = load_manifest(a);
  EXPECT_EQ(after.student->generation, 1);
  EXPECT_EQ(after.student->loo_updates, std::vector<uint64_t>{receipt["seq"].get<uint64_t>()});
  EXPECT_NE(after.student->checkpoint.fingerprint, before.student->checkpoint.fingerprint);
  EXPECT_EQ(load_manifest(b).student->checkpoint.fingerprint, after.student->checkpoint.fingerprint)
      << "the LOO update is deterministic";
  EXPECT_NE(load_manifest(c).student->checkpoint.fingerprint, after.student->checkpoint.fingerprint)
      << "the LOO student is not the retrained one (it is approximate)";
  EXPECT_NE(receipt["guarantee"]["student"].get<std::string>().find("approximate"), std::string::npos);
  EXPECT_NE(receipt["guarantee"]["teachers"].get<std::string>().find("exact"), std::string::npos);
  EXPECT_EQ(receipt["student"]["stop"], "steps");
  EXPECT_EQ(receipt["student"]["steps"], 8);
  EXPECT_EQ(receipt["student"]["temperature"], 2.0);
  EXPECT_LT(receipt["student"]["kl_after"].get<double>(), receipt["student"]["kl_before"].get<double>());
  EXPECT_FALSE(receipt["student"].contains("criterion"));
  EXPECT_FALSE(std::filesystem::exists(a + "/student/heldout.h5")) << "loo.stop: steps keeps no held-out rows";

  // The target of every deleted row: the teachers that did not hold it, all of them.
  const auto& targets = receipt["student"]["targets"];
  ASSERT_EQ(targets.size(), 16u);
  std::vector<int64_t> others;
  for (const auto& e : after.entries) {
    if (e.shard != holder && e.n_samples > 0) others.push_back(e.shard);
  }
  for (const auto& t : targets) {
    EXPECT_EQ(t["held_by"].get<int64_t>(), holder);
    EXPECT_EQ(t["teachers"].get<std::vector<int64_t>>(), others);
  }
  // The superseded student is purged with the teachers' old generations.
  EXPECT_FALSE(std::filesystem::exists(a + "/" + before.student->checkpoint.file.path));
  EXPECT_TRUE(fsck(a)["ok"].get<bool>());
  const auto s = status(a);
  EXPECT_EQ(s["student"]["generation"], 1);
}

// With loo.target_cache_mb: 0 the target is never held for every deleted
// row: each step computes its own rows' from the teachers. Same teachers,
// and a student that learns the same thing (the target rows are the same
// numbers, though computed in other blocks of rows).
TEST_F(Loo, ALooTargetTooLargeToKeepIsComputedPerStep) {
  const std::string a = copy_of_base("kept"), b = *dir_ / "per-step";
  train({*dir_ / "loo.yaml", {"loo.target_cache_mb=0"}, b, {}});
  EXPECT_EQ(load_manifest(b).student->checkpoint.fingerprint, load_manifest(a).student->checkpoint.fingerprint);
  ForgetRequest ra{a, {800001}}, rb{b, {800001}};
  ra.by_group = rb.by_group = true;
  const auto kept = forget(ra)["student"], per_step = forget(rb)["student"];
  EXPECT_TRUE(kept["target_cached"].get<bool>());
  EXPECT_FALSE(per_step["target_cached"].get<bool>());
  EXPECT_EQ(test::stage_digests(a), test::stage_digests(b));
  EXPECT_NEAR(per_step["kl_before"].get<double>(), kept["kl_before"].get<double>(), 1e-5);
  EXPECT_NEAR(per_step["kl_after"].get<double>(), kept["kl_after"].get<double>(), 1e-4);
  EXPECT_LT(per_step["kl_after"].get<double>(), per_step["kl_before"].get<double>());
}

TEST_F(Loo, TheAuditSeesTheRepeatedCanaryAndNotTheUnseenOnes) {
  AuditRequest req;
  req.run_dir = *dir_ / "base";
  req.secrets = *dir_ / "canaries.csv";
  req.candidates = 2000;
  const auto r = audit(req);
  for (const char* model : {"student", "teachers"}) {
    const auto& m = r["models"][model];
    const auto seen = by_reps(m, 16, false), unseen = by_reps(m, 0, false);
    ASSERT_FALSE(seen.is_null()) << model;
    ASSERT_FALSE(unseen.is_null()) << model;
    // 12 canaries never trained on: exposure is -log2 of a uniform rank, mean 1.44 bits.
    EXPECT_GT(unseen["mean_exposure"].get<double>(), 0.4) << model;
    EXPECT_LT(unseen["mean_exposure"].get<double>(), 3.0) << model;
    EXPECT_LT(unseen["mean_exposure_extrapolated"].get<double>(), 3.5) << model;
    EXPECT_GT(seen["mean_exposure"].get<double>(), unseen["mean_exposure"].get<double>() + 3.0) << model;
    EXPECT_GT(seen["mean_exposure_extrapolated"].get<double>(), seen["mean_exposure"].get<double>() - 1.0) << model;
    EXPECT_EQ(seen["membership_auc"], 1.0) << model;
    // Standard errors beside the means: Hanley-McNeil's is 0 at a perfect AUC.
    EXPECT_EQ(seen["membership_auc_standard_error"], 0.0) << model;
    EXPECT_GT(unseen["mean_exposure_standard_error"].get<double>(), 0.0) << model;
    EXPECT_TRUE(unseen["membership_auc_standard_error"].is_null()) << model;
    EXPECT_TRUE(m.contains("heldout_perplexity")) << model;
  }
  EXPECT_NE(r["models"]["student"]["guarantee"].get<std::string>().find("approximate"), std::string::npos);
  // The secrets stay out of the answer and the log.
  EXPECT_EQ(r.dump().find(*secret16_), std::string::npos);
  const auto cli =
      test::run_sisa("audit --candidates 300 -r " + *dir_ / "base" + " --secrets " + *dir_ / "canaries.csv");
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_EQ(cli.output.find(*secret16_), std::string::npos);
  EXPECT_NE(cli.output.find("held-out perplexity"), std::string::npos) << cli.output;

  req.secrets = *dir_ / "missing.csv";
  EXPECT_THROW(audit(req), UsageError);
  req.secrets = *dir_ / "canaries.csv";
  req.model = "nobody";
  EXPECT_THROW(audit(req), UsageError);
  req.model = "both";
  req.heldout_rows = -1;
  EXPECT_THROW(audit(req), UsageError);
  req.heldout_rows = 0;

  // A canary the run never held, or a group listed twice, would be audited
  // as if it had been trained: refused, naming the line.
  const std::string secrets = test::read_text(*dir_ / "canaries.csv");
  const auto audit_of = [&](const std::string& body) {
    test::write_text(*dir_ / "bad-canaries.csv", body);
    req.secrets = *dir_ / "bad-canaries.csv";
    return audit(req);
  };
  try {
    audit_of(secrets + "800099,1," + kPrefix + ",1 2 3 4 5 6,123456789\n");
    ADD_FAILURE() << "a canary id outside the run was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("id 123456789 was never part of run"), std::string::npos) << e.what();
  }
  const std::string first =
      secrets.substr(secrets.find('\n') + 1, secrets.find('\n', secrets.find('\n') + 1) - secrets.find('\n'));
  try {
    audit_of(secrets + first);
    ADD_FAILURE() << "a group listed twice was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("is listed twice"), std::string::npos) << e.what();
  }
  for (const std::string flag : {"--seed -1", "--heldout-rows -1"}) {
    const auto r =
        test::run_sisa("audit --candidates 300 -r " + *dir_ / "base" + " --secrets " + *dir_ / "canaries.csv " + flag);
    EXPECT_EQ(r.exit_code, 2) << flag << "\n" << r.output;
  }
}

TEST_F(Loo, ServedGenerateAndScoreEqualTheCli) {
  const std::string run = *dir_ / "base";
  test::write_text(*dir_ / "token", "a-token-of-sixteen-chars\n");
  test::ServerProcess server("--run-dir " + run + " --token-file " + *dir_ / "token");
  ASSERT_TRUE(server.running());
  auto c = server.client();
  for (const std::string model : {"student", "teachers"}) {
    const auto cli = test::run_sisa("generate -q --json -r " + run +
                                    " --prompt 'the lord' --max-tokens 6 --top-k 4 --seed 9 --model " + model);
    ASSERT_EQ(cli.exit_code, 0) << cli.output;
    const auto http = c.Post(
        "/v1/generate",
        nlohmann::json{{"prompt", "the lord"}, {"max_tokens", 6}, {"top_k", 4}, {"seed", 9}, {"model", model}}.dump(),
        "application/json");
    ASSERT_TRUE(http);
    ASSERT_EQ(http->status, 200) << http->body;
    const auto want = nlohmann::json::parse(cli.output), got = nlohmann::json::parse(http->body);
    EXPECT_EQ(got["tokens"], want["tokens"]) << model;
    EXPECT_EQ(got["text"], want["text"]) << model;
    EXPECT_EQ(got["guarantee"], want["guarantee"]);

    const auto cli_score =
        test::run_sisa("score -q --json -r " + run + " --text 'they went up to the city' --model " + model);
    ASSERT_EQ(cli_score.exit_code, 0) << cli_score.output;
    const auto s = c.Post("/v1/score", nlohmann::json{{"text", "they went up to the city"}, {"model", model}}.dump(),
                          "application/json");
    ASSERT_TRUE(s && s->status == 200);
    const auto ws = nlohmann::json::parse(cli_score.output), gs = nlohmann::json::parse(s->body);
    EXPECT_EQ(gs["tokens"], ws["tokens"]);
    EXPECT_EQ(gs["log_probs"], ws["log_probs"]) << model;
    EXPECT_NEAR(gs["perplexity"].get<double>(), ws["perplexity"].get<double>(), 1e-9);
  }
  // Greedy is the default; same answer twice.
  const auto g1 = c.Post("/v1/generate", R"({"prompt": "the lord"})", "application/json");
  const auto g2 = c.Post("/v1/generate", R"({"prompt": "the lord"})", "application/json");
  ASSERT_TRUE(g1 && g2);
  EXPECT_EQ(g1->body, g2->body);
  EXPECT_EQ(nlohmann::json::parse(g1->body)["model"], "student");
  for (const char* bad : {R"({"prompt": 3})", R"({"text": "x"})", R"({"prompt": "a", "top_k": -1})", "[1]", "{"}) {
    const auto r = c.Post("/v1/generate", bad, "application/json");
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->status == 400 || r->status == 422) << bad << " -> " << r->status;
  }
  const auto wrong = c.Post("/v1/score", R"({"text": "the lord", "model": "oracle"})", "application/json");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 422);
  const auto predict = c.Post("/v1/predict", R"({"texts": ["the lord"]})", "application/json");
  ASSERT_TRUE(predict);
  EXPECT_EQ(predict->status, 501);
  const auto st = nlohmann::json::parse(server.admin().Get("/v1/status")->body);
  EXPECT_NE(st["student"]["guarantee"].get<std::string>().find("approximate"), std::string::npos);
}

// Hostile texts (issue #23): 8 MB prompts and texts are refused before they
// are tokenized, on compute threads, while /healthz keeps answering; the
// receipts and the status need the token, and no answer names a path of
// this machine.
TEST_F(Loo, HugeTextsAreRefusedAtOnceAndReceiptsNeedTheToken) {
  const std::string run = *dir_ / "base";
  test::write_text(*dir_ / "token", "a-token-of-sixteen-chars\n");
  test::ServerProcess server("-q --run-dir " + run + " --token-file " + *dir_ / "token");
  ASSERT_TRUE(server.running());
  const std::string huge(8000000, 'x');  // 8 MB: under the 8 MiB body limit
  std::atomic<int> refused{0}, other{0};
  std::vector<std::thread> attackers;
  for (int i = 0; i < 8; ++i) {
    attackers.emplace_back([&, i] {
      auto c = server.client();
      const auto r = i % 2 ? c.Post("/v1/generate", nlohmann::json{{"prompt", huge}}.dump(), "application/json")
                           : c.Post("/v1/score", nlohmann::json{{"text", huge}}.dump(), "application/json");
      // 422 refused; 503 when the per-client body budget (32 MB) is spent.
      ((r && (r->status == 422 || r->status == 503)) ? refused : other) += 1;
      if (r && r->status == 422) {
        EXPECT_NE(r->body.find("refused before tokenizing"), std::string::npos) << r->body;
      }
    });
  }
  auto c = server.client();
  std::vector<double> latencies;
  for (int i = 0; i < 40; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto h = c.Get("/healthz");
    latencies.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    ASSERT_TRUE(h && h->status == 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& t : attackers) t.join();
  std::sort(latencies.begin(), latencies.end());
  std::printf("/healthz under 8 hostile 8 MB texts: p50 %.2f ms, max %.2f ms\n", latencies[20] * 1e3,
              latencies.back() * 1e3);
  EXPECT_EQ(refused, 8);
  EXPECT_EQ(other, 0);
  const auto g = c.Post("/v1/generate", R"({"prompt": "the lord"})", "application/json");
  ASSERT_TRUE(g && g->status == 200);

  for (const char* path : {"/v1/status", "/v1/forget/1"}) {
    const auto r = c.Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401) << path << ": " << r->body;
  }
  const auto st = server.admin().Get("/v1/status");
  ASSERT_TRUE(st && st->status == 200);
  EXPECT_EQ(st->body.find(std::string(*dir_ / "")), std::string::npos) << "an absolute path in " << st->body;
}

// POST /v1/forget on a language-model run is the LOO deletion: the served
// student is the updated one as soon as the request is `applied`.
TEST_F(Loo, ServeForgetsWithTheLooUpdate) {
  const std::string run = copy_of_base("served-forget");
  const std::string token = "a-token-of-sixteen-chars";
  test::write_text(*dir_ / "token", token + "\n");
  std::filesystem::permissions(*dir_ / "token",
                               std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const std::string twin = copy_of_base("served-twin");
  ForgetRequest req{twin, {800002}};
  req.by_group = true;
  forget(req);  // what the server must publish
  test::ServerProcess server("-q --run-dir " + run + " --token-file " + *dir_ / "token");
  ASSERT_TRUE(server.running());
  auto c = server.client();
  const auto r =
      c.Post("/v1/forget", {{"Authorization", "Bearer " + token}}, R"({"groups": [800002]})", "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  const auto done = test::wait_applied(server, nlohmann::json::parse(r->body)["id"].get<uint64_t>());
  ASSERT_EQ(done["state"], "applied") << done.dump();
  EXPECT_NE(done["receipt"]["guarantee"]["student"].get<std::string>().find("approximate"), std::string::npos);
  const auto st = nlohmann::json::parse(server.admin().Get("/v1/status")->body);
  EXPECT_EQ(st["student"]["generation"], 1);
  const auto g = nlohmann::json::parse(c.Post("/v1/generate", R"({"prompt": "the lord"})", "application/json")->body);
  EXPECT_EQ(g["last_applied_request"], 1);
  server.stop();
  EXPECT_EQ(load_manifest(run).student->checkpoint.state_digest, load_manifest(twin).student->checkpoint.state_digest);
  EXPECT_EQ(test::stage_digests(run), test::stage_digests(twin));
}

TEST_F(Loo, MpirunGivesTheOneProcessBits) {
  const std::string one = copy_of_base("one"), many = *dir_ / "many";
  auto r = test::run_sisa("train -q -c " + *dir_ / "loo.yaml" + " -r " + many, kMpirun2);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(test::stage_digests(one), test::stage_digests(many));
  EXPECT_EQ(load_manifest(one).student->checkpoint.fingerprint, load_manifest(many).student->checkpoint.fingerprint);
  r = test::run_sisa("forget -q -r " + many + " --groups 800002", kMpirun2);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ForgetRequest req{one, {800002}};
  req.by_group = true;
  forget(req);
  EXPECT_EQ(test::stage_digests(one), test::stage_digests(many));
  EXPECT_EQ(load_manifest(one).student->checkpoint.state_digest, load_manifest(many).student->checkpoint.state_digest);
}

// A crash at any durable step of a deletion with a student, then recovery:
// the request is either not acknowledged (nothing changed) or applied exactly
// once, teachers and student together, with the student the uninterrupted
// update would give (the update is deterministic).
TEST_F(Loo, ACrashAnywhereInALooDeletionIsFinishedByRecovery) {
  const std::string counted = copy_of_base("counted");
  ForgetRequest req{counted, {800002}};
  req.by_group = true;
  test::FaultEnv counter(-1, test::FaultEnv::Mode::kCrash);
  forget(req, RunSeams{&counter, nullptr});
  const Manifest done = load_manifest(counted), untouched = load_manifest(*dir_ / "base");
  const auto applied = test::stage_digests(counted), original = test::stage_digests(*dir_ / "base");
  int accepted = 0;
  for (int64_t k = 1; k <= counter.steps(); ++k) {
    const std::string run = copy_of_base("crash-" + std::to_string(k));
    test::FaultEnv env(k, test::FaultEnv::Mode::kCrash);
    req.run_dir = run;
    EXPECT_THROW(forget(req, RunSeams{&env, nullptr}), test::InjectedCrash) << "step " << k;
    recover({run});
    const Manifest m = load_manifest(run);
    const bool was_accepted = !read_log(run + "/deletions.log").records.empty();
    accepted += was_accepted;
    EXPECT_EQ(test::stage_digests(run), was_accepted ? applied : original) << "step " << k;
    EXPECT_EQ(m.student->checkpoint.state_digest, (was_accepted ? done : untouched).student->checkpoint.state_digest)
        << "step " << k;
    EXPECT_TRUE(fsck(run)["ok"].get<bool>()) << "step " << k;
    std::filesystem::remove_all(run);
  }
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, counter.steps());
}

// A damaged student is reported by fsck and retrained by repair on the rows
// the run holds (here all of them: the same bits as at train).
TEST_F(Loo, ADamagedStudentIsReportedAndRetrainedByRepair) {
  const std::string run = copy_of_base("damaged");
  const Manifest m = load_manifest(run);
  const std::string file = run + "/" + m.student->checkpoint.file.path;
  std::string bytes = test::read_text(file);
  bytes[bytes.size() / 2] ^= 1;
  test::write_text(file, bytes);
  const auto check = fsck(run);
  EXPECT_FALSE(check["ok"].get<bool>());
  EXPECT_NE(check["problems"].dump().find("student/"), std::string::npos) << check.dump();
  const auto r = repair({run});
  EXPECT_TRUE(r["student"]["retrained"].get<bool>());
  const Manifest after = load_manifest(run);
  EXPECT_EQ(after.student->generation, 1);
  EXPECT_EQ(after.student->checkpoint.fingerprint, m.student->checkpoint.fingerprint);
  EXPECT_TRUE(fsck(run)["ok"].get<bool>());
}

// loo.stop: criterion on a corpus that memorized hard (canary 1 is 16 of
// 257 rows): the update keeps stepping until the canary looks unseen, the
// same request gives the same student, and the audit sees the canary's
// exposure fall and reports how the update stopped.
TEST_F(Loo, TheCriterionStepsUntilTheCanaryLooksUnseenAndItsExposureFalls) {
  const std::string run = *dir_ / "rule", twin = *dir_ / "rule-twin";
  train({*dir_ / "loo.yaml", {"loo.stop=criterion"}, run, {}});
  EXPECT_TRUE(std::filesystem::exists(run + "/student/heldout.h5"));
  std::filesystem::copy(run, twin, std::filesystem::copy_options::recursive);
  AuditRequest req;
  req.run_dir = run;
  req.secrets = *dir_ / "canaries.csv";
  req.candidates = 2000;
  req.model = "student";
  const auto before = audit(req)["models"]["student"];
  ForgetRequest f{run, {800001}};
  f.by_group = true;
  const auto receipt = forget(f);
  expect_stepped_until_unseen(receipt["student"]);
  ForgetRequest g{twin, {800001}};
  g.by_group = true;
  forget(g);
  EXPECT_EQ(load_manifest(twin).student->checkpoint.fingerprint, load_manifest(run).student->checkpoint.fingerprint)
      << "the rule is deterministic";
  const auto after = audit(req)["models"]["student"];
  const double was = by_reps(before, 16, false)["mean_exposure"].get<double>();
  const double is = by_reps(after, 16, true)["mean_exposure"].get<double>();
  EXPECT_GT(was, 6.0);
  EXPECT_LT(is, was - 3.0);
  ASSERT_EQ(after["updates"].size(), 1u);
  EXPECT_EQ(after["updates"][0]["request"], receipt["seq"]);
  EXPECT_EQ(after["updates"][0]["steps"], receipt["student"]["steps"]);
  EXPECT_TRUE(after["updates"][0]["criterion"]["reached"].get<bool>());
  EXPECT_TRUE(before["updates"].empty());
}

// A cap too small to reach the criterion: the update stops there, and the
// receipt, the forget output and the served request say so.
TEST_F(Loo, ReachingTheCapIsAWarningInTheReceiptTheCliAndTheServer) {
  const std::string run = *dir_ / "capped";
  train({*dir_ / "loo.yaml", {"loo.stop=criterion", "loo.max_steps=1"}, run, {}});
  const auto cli = test::run_sisa("forget -r " + run + " --groups 800001");
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find("warning: the update reached loo.max_steps=1"), std::string::npos) << cli.output;
  const auto receipt = nlohmann::json::parse(test::read_text(run + "/receipts/000001.json"));
  const auto& student = receipt["student"];
  EXPECT_EQ(student["steps"], 1);
  EXPECT_FALSE(student["criterion"]["reached"].get<bool>());
  EXPECT_NE(student["warning"].get<std::string>().find("may still remember"), std::string::npos);

  test::write_text(*dir_ / "token", "a-token-of-sixteen-chars\n");
  test::ServerProcess server("--run-dir " + run + " --token-file " + *dir_ / "token");
  ASSERT_TRUE(server.running());
  auto c = server.client();
  const auto http = c.Get("/v1/forget/1", {{"Authorization", "Bearer a-token-of-sixteen-chars"}});
  ASSERT_TRUE(http);
  ASSERT_EQ(http->status, 200) << http->body;
  const auto answer = nlohmann::json::parse(http->body);
  EXPECT_NE(answer["warning"].get<std::string>().find("loo.max_steps=1"), std::string::npos) << http->body;
}

TEST_F(Loo, BadLooConfigsAreRefusedByKey) {
  const std::string yaml = test::read_text(*dir_ / "loo.yaml");
  for (const auto& [from, to, key] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"steps: 8", "steps: 0", "loo.steps"},
           {"lr: 0.003", "lr: -1", "loo.lr"},
           {"retain_batch: 4", "retain_batch: -2", "loo.retain_batch"},
           {"temperature: 2", "temperature: 0.5", "loo.temperature"},
           {"retain_batch: 4", "retain_batch: 4\n  teachers: 3", "loo.teachers"},
           {"stop: criterion", "stop: never", "loo.stop"},
           {"retain_batch: 4", "retain_batch: 4\n  max_steps: 0", "loo.max_steps"},
           {"retain_batch: 4", "retain_batch: 4\n  heldout_rows: 1", "loo.heldout_rows"},
           {"  test: test.csv\n", "", "data.test"}}) {
    std::string bad = yaml + "  stop: criterion\n";  // (data.test is needed only by the criterion)
    bad.replace(bad.find(from), from.size(), to);
    test::write_text(*dir_ / "bad.yaml", bad);
    try {
      train({*dir_ / "bad.yaml", {}, *dir_ / "never", {}});
      ADD_FAILURE() << "accepted " << to;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
  test::write_text(*dir_ / "mlp.yaml",
                   "data:\n  format: csv\n  train: train.csv\n  num_classes: 2\n  input_shape: [2]\n"
                   "loo:\n  student: true\n");
  try {
    Config::load(*dir_ / "mlp.yaml");
    ADD_FAILURE() << "a student for a classifier was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("loo.student: needs a language-model family"), std::string::npos) << e.what();
  }
}

}  // namespace
