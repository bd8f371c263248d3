// `sisa serve` as users run it: the real binary on a loopback port, driven by
// a real HTTP client (cpp-httplib's). Predictions must match `sisa predict`,
// deletions through the API must end bit-identical to `sisa forget`, bad input
// must get a 4xx JSON answer and change nothing, and predictions running
// while a deletion is applied must all succeed and never mix generations.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "server_process.h"
#include "sisa/config.h"
#include "sisa/dataset.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace sisa;
using sisa::test::run_sisa;
using sisa::test::ServerProcess;
using sisa::test::TempDir;
using sisa::test::wait_applied;

namespace {

const char* kToken = "0123456789abcdef0123456789abcdef";

class Serve : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_csv(test::synthetic(1200, 6, 3, 31), dir_ / "train.csv");
    test::write_csv(test::synthetic(200, 6, 3, 32), dir_ / "test.csv");
    test::write_text(cfg_,
                     test::config_yaml(dir_ / "train.csv", dir_ / "test.csv", 6, 3, "  type: mlp\n  hidden: [16]\n",
                                       "  shards: 3\n  slices: 2\n", "  epochs: 6\n  batch_size: 16\n  lr: 0.01\n"));
    test::write_text(token_file_, std::string(kToken) + "\n");
    fs::permissions(token_file_, fs::perms::owner_read | fs::perms::owner_write);
    const auto r = run_sisa("train -q -c " + cfg_ + " -r " + run_);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  // The test inputs as the model sees them (scale 1, offset 0: also the raw values).
  Dataset test_inputs() const { return load_source(Config::load(cfg_, {}).data, Split::kTest); }
  static json inputs_json(const Dataset& d, size_t first, size_t n) {
    json rows = json::array();
    for (size_t i = first; i < first + n; ++i) {
      rows.push_back(std::vector<float>(d.row(i), d.row(i) + d.width));
    }
    return rows;
  }
  std::string serve_args(const std::string& extra = "") const {
    return "-q -r " + run_ + " --token-file " + token_file_ + " " + extra;
  }

  TempDir dir_;
  std::string cfg_ = dir_ / "config.yaml";
  std::string run_ = dir_ / "run";
  std::string token_file_ = dir_ / "forget.token";
};

httplib::Headers bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

TEST_F(Serve, PredictionsMatchTheCli) {
  const auto cli = run_sisa("predict -q -r " + run_ + " -o " + (dir_ / "pred.csv"));
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  std::vector<std::vector<double>> expected;
  std::vector<int64_t> expected_labels;
  {
    std::ifstream in(dir_ / "pred.csv");
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::stringstream ss(line);
      std::string cell;
      std::vector<double> row;
      while (std::getline(ss, cell, ',')) row.push_back(std::stod(cell));
      expected_labels.push_back(static_cast<int64_t>(row[2]));
      expected.emplace_back(row.begin() + 3, row.end());
    }
  }
  const Dataset test = test_inputs();
  ASSERT_EQ(expected.size(), test.size());

  ServerProcess server(serve_args());
  ASSERT_TRUE(server.running());
  auto c = server.client();
  // One batch of everything, and a few single-sample requests.
  const auto r = c.Post("/v1/predict", json{{"inputs", inputs_json(test, 0, test.size())}}.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json batch = json::parse(r->body);
  ASSERT_EQ(batch["labels"].size(), test.size());
  for (size_t i = 0; i < test.size(); ++i) {
    EXPECT_EQ(batch["labels"][i].get<int64_t>(), expected_labels[i]) << "input " << i;
    for (size_t k = 0; k < 3; ++k) {
      EXPECT_NEAR(batch["probabilities"][i][k].get<double>(), expected[i][k], 1e-5 + 1e-5 * expected[i][k]);
    }
  }
  for (size_t i : {0, 7, 199}) {
    const auto one = c.Post("/v1/predict", json{{"inputs", inputs_json(test, i, 1)}}.dump(), "application/json");
    ASSERT_TRUE(one && one->status == 200);
    const json j = json::parse(one->body);
    EXPECT_EQ(j["labels"][0].get<int64_t>(), expected_labels[i]);
    for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(j["probabilities"][0][k].get<double>(), expected[i][k], 2e-5);
  }
  // Vote with per-shard labels: one label per shard, votes summing to the shard count.
  const auto v = c.Post("/v1/predict",
                        json{{"inputs", inputs_json(test, 0, 4)}, {"aggregate", "vote"}, {"shard_votes", true}}.dump(),
                        "application/json");
  ASSERT_TRUE(v && v->status == 200) << (v ? v->body : "no answer");
  const json vj = json::parse(v->body);
  ASSERT_EQ(vj["shard_votes"].size(), 4u);
  EXPECT_EQ(vj["shard_votes"][0].size(), 3u);
  int64_t votes = 0;
  for (const auto& x : vj["votes"][0]) votes += x.get<int64_t>();
  EXPECT_EQ(votes, 3);
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(Serve, ForgetThroughTheApiEqualsTheCliBitForBit) {
  const std::string cli_run = dir_ / "cli-run";
  fs::copy(run_, cli_run, fs::copy_options::recursive);
  const auto cli = run_sisa("forget -q -r " + cli_run + " --ids 1007,1700,2001");
  ASSERT_EQ(cli.exit_code, 0) << cli.output;

  ServerProcess server(serve_args());
  ASSERT_TRUE(server.running());
  auto c = server.client();
  const auto r = c.Post("/v1/forget", bearer(kToken), R"({"ids": [1007, 1700, 2001]})", "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  const uint64_t id = json::parse(r->body)["id"];
  const json done = wait_applied(server, id);
  ASSERT_EQ(done["state"], "applied") << done.dump();
  EXPECT_EQ(done["receipt"]["deleted_count"], 3);
  // The served ensemble is the new one.
  const json st = json::parse(server.admin().Get("/v1/status")->body);
  const json cli_status = json::parse(run_sisa("status --json -r " + cli_run).output);
  for (size_t s = 0; s < 3; ++s) {
    EXPECT_EQ(st["shard_status"][s]["fingerprint"], cli_status["shard_status"][s]["fingerprint"]);
    EXPECT_EQ(st["shard_status"][s]["generation"], cli_status["shard_status"][s]["generation"]);
  }
  EXPECT_EQ(st["last_applied_request"], id);
  const std::string metrics = c.Get("/metrics")->body;
  EXPECT_NE(metrics.find("sisa_deletions_applied_total 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("sisa_http_request_duration_seconds_bucket{endpoint=\"/v1/forget\",le=\"+Inf\"} 1"),
            std::string::npos);
  EXPECT_EQ(server.stop(), 0);
  // Every checkpoint of every shard, stage by stage, as `sisa forget` left it.
  EXPECT_EQ(test::stage_digests(run_), test::stage_digests(cli_run));
  EXPECT_EQ(run_sisa("fsck -q -r " + run_).exit_code, 0);
}

TEST_F(Serve, BadInputGetsA4xxJsonErrorAndChangesNothing) {
  ServerProcess server(serve_args("--max-body-bytes 65536 --read-timeout 1"));
  ASSERT_TRUE(server.running());
  const auto before = test::snapshot(run_);
  auto c = server.client();
  const std::string good_row = inputs_json(test_inputs(), 0, 1).dump();
  struct Case {
    std::string path, body;
    httplib::Headers headers;
    int status;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"/v1/predict", "{\"inputs\": [[1, 2", {}, 400, "malformed_json"},
      {"/v1/predict", "[1, 2, 3]", {}, 400, "bad_request"},
      {"/v1/predict", "{\"inputs\": [[1, 2, 3]]}", {}, 422, "bad_width"},
      {"/v1/predict", "{\"inputs\": [[1, 2, 3, 4, 5, 6, 7]]}", {}, 422, "bad_width"},
      {"/v1/predict", "{\"inputs\": [[1, 2, 3, NaN, 5, 6]]}", {}, 400, "malformed_json"},
      {"/v1/predict", "{\"inputs\": [[1, 2, 3, 1e999, 5, 6]]}", {}, 400, "malformed_json"},  // overflow
      {"/v1/predict", "{\"inputs\": [[1, 2, 3, \"4\", 5, 6]]}", {}, 400, "bad_request"},
      {"/v1/predict", "{\"inputs\": []}", {}, 422, "empty"},
      {"/v1/predict", "{\"input\": []}", {}, 400, "unknown_field"},
      {"/v1/predict", "{\"inputs\": " + good_row + ", \"aggregate\": \"median\"}", {}, 422, "bad_aggregate"},
      {"/v1/predict", "{\"inputs\": [" + std::string(70000, ' ') + "]}", {}, 413, "body_too_large"},
      {"/v1/forget", R"({"ids": [1007]})", {}, 401, "unauthorized"},
      {"/v1/forget", R"({"ids": [1007]})", bearer("0123456789abcdef0123456789abcdeX"), 401, "unauthorized"},
      {"/v1/forget", R"({"ids": [1007]})", bearer(std::string(kToken) + "0"), 401, "unauthorized"},
      {"/v1/forget", R"({"ids": [1007, 5]})", bearer(kToken), 422, "unknown_ids"},
      {"/v1/forget", R"({"ids": []})", bearer(kToken), 422, "empty"},
      {"/v1/forget", R"({"ids": [1.5]})", bearer(kToken), 422, "bad_id"},
      {"/v1/forget", R"({"ids": "1007"})", bearer(kToken), 422, "empty"},
      {"/v1/forget", R"({"ids": [1007)", bearer(kToken), 400, "malformed_json"},
      {"/v1/nowhere", "{}", {}, 404, "not_found"},
  };
  for (const auto& k : cases) {
    const auto r = c.Post(k.path.c_str(), k.headers, k.body, "application/json");
    ASSERT_TRUE(r) << k.path << " " << k.body.substr(0, 60);
    EXPECT_EQ(r->status, k.status) << k.body.substr(0, 60) << " -> " << r->body;
    const json j = json::parse(r->body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r->body;
    EXPECT_EQ(j.value("error", ""), k.error) << k.body.substr(0, 60);
    EXPECT_FALSE(j.value("detail", "").empty());
  }
  EXPECT_EQ(server.admin().Get("/v1/forget/99")->status, 404);
  // Client bytes that are not UTF-8, echoed in an error, must not crash the server.
  const auto odd_path = c.Get("/%FF%FE");
  ASSERT_TRUE(odd_path);
  EXPECT_EQ(odd_path->status, 404);
  const auto odd_body = c.Post("/v1/predict", "{\"aggregate\": \"\xff\"}", "application/json");
  ASSERT_TRUE(odd_body);
  EXPECT_EQ(odd_body->status, 400) << odd_body->body;
  // A chunked body (no Content-Length) is held to the same limit.
  const auto chunked = c.Post(
      "/v1/predict",
      [](size_t offset, httplib::DataSink& sink) {
        if (offset >= 200000) {
          sink.done();
          return true;
        }
        const std::string piece(10000, ' ');
        return sink.write(piece.data(), piece.size());
      },
      "application/json");
  ASSERT_TRUE(chunked);
  EXPECT_EQ(chunked->status, 413) << chunked->body;
  // A client that sends half a request and stalls is answered 408 and cut
  // off once the whole request is overdue, without holding up anyone else.
  {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server.port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    const std::string partial = "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"inp";
    ASSERT_EQ(write(fd, partial.data(), partial.size()), static_cast<ssize_t>(partial.size()));
    EXPECT_EQ(c.Get("/healthz")->status, 200);  // others are served meanwhile
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const auto t0 = std::chrono::steady_clock::now();
    char buf[512];
    std::string answer;
    ssize_t n;
    while (answer.find("}\n") == std::string::npos && (n = read(fd, buf, sizeof buf)) > 0) {
      answer.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));  // --read-timeout 1
    EXPECT_NE(answer.find(" 408 "), std::string::npos) << answer;
    EXPECT_NE(answer.find("request_timeout"), std::string::npos) << answer;
  }
  EXPECT_EQ(c.Get("/healthz")->status, 200);
  EXPECT_EQ(server.stop(), 0);
  EXPECT_EQ(test::snapshot(run_), before);  // nothing written, nothing deleted
}

TEST_F(Serve, WithoutATokenFileDeletionIsDisabled) {
  ServerProcess server("-q -r " + run_);
  ASSERT_TRUE(server.running());
  auto c = server.client();
  const auto r = c.Post("/v1/forget", bearer(kToken), R"({"ids": [1007]})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(json::parse(r->body)["error"], "forbidden");
  // serve is a writer: it holds the run lock. verify writes nothing and runs beside it.
  EXPECT_EQ(run_sisa("forget -q -r " + run_ + " --ids 1007").exit_code, static_cast<int>(ExitCode::kLocked));
  EXPECT_EQ(run_sisa("verify -q -r " + run_).exit_code, 0);
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(Serve, PredictionsDuringALiveDeletionAllSucceedAndNeverMixGenerations) {
  ServerProcess server(serve_args());
  ASSERT_TRUE(server.running());
  const json inputs = inputs_json(test_inputs(), 0, 2);
  std::atomic<bool> stop{false}, applied_seen{false};
  std::atomic<int64_t> ok{0}, failed{0}, mixed{0}, stale_after_applied{0};
  // Two ids in every shard, so every shard retrains.
  std::vector<int64_t> ids;
  for (int64_t s = 0; s < 3; ++s) {
    int found = 0;
    for (int64_t i = 0; i < 1200 && found < 2; ++i) {
      if (shard_of(7, 1000 + 7 * i, 3) == s) {
        ids.push_back(1000 + 7 * i);
        ++found;
      }
    }
  }
  std::mutex mu;
  std::set<std::string> seen_generations;
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      auto c = server.client();
      const std::string body = json{{"inputs", inputs}}.dump();
      while (!stop) {
        const bool after = applied_seen;  // read before the request starts
        const auto r = c.Post("/v1/predict", body, "application/json");
        if (!r || r->status != 200) {
          ++failed;
          continue;
        }
        ++ok;
        const json j = json::parse(r->body);
        std::set<int64_t> gens;
        for (const auto& g : j["generations"]) gens.insert(g.get<int64_t>());
        if (gens.size() != 1) ++mixed;  // every shard retrains: all old or all new
        if (after && *gens.begin() == 0) ++stale_after_applied;
        std::lock_guard<std::mutex> hold(mu);
        seen_generations.insert(j["generations"].dump());
      }
    });
  }
  auto c = server.client();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto r = c.Post("/v1/forget", bearer(kToken), json{{"ids", ids}}.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  const json done = wait_applied(server, json::parse(r->body)["id"]);
  applied_seen = true;
  ASSERT_EQ(done["state"], "applied") << done.dump();
  ASSERT_EQ(done["receipt"]["shards"].size(), 3u);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(mixed, 0);
  EXPECT_EQ(stale_after_applied, 0);
  EXPECT_GT(ok, 20);
  EXPECT_EQ(seen_generations.size(), 2u);  // the old ensemble, then the new
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(Serve, AnAcceptedDeletionInterruptedByShutdownResumesAtTheNextStart) {
  const std::string cli_run = dir_ / "cli-run";
  fs::copy(run_, cli_run, fs::copy_options::recursive);
  ASSERT_EQ(run_sisa("forget -q -r " + cli_run + " --ids 1007,1014,1021").exit_code, 0);
  uint64_t id = 0;
  {
    ServerProcess server(serve_args());
    ASSERT_TRUE(server.running());
    auto c = server.client();
    const auto r = c.Post("/v1/forget", bearer(kToken), R"({"ids": [1007, 1014, 1021]})", "application/json");
    ASSERT_TRUE(r && r->status == 202);
    id = json::parse(r->body)["id"];
    EXPECT_EQ(server.stop(), 0);  // at once: the retrain is cut short (or just finished)
  }
  ServerProcess again(serve_args());
  ASSERT_TRUE(again.running());
  auto c = again.client();
  const json done = wait_applied(again, id);
  ASSERT_EQ(done["state"], "applied") << done.dump();
  EXPECT_EQ(again.stop(), 0);
  EXPECT_EQ(test::stage_digests(run_), test::stage_digests(cli_run));
  EXPECT_EQ(json::parse(run_sisa("status --json -r " + run_).output)["pending_requests"], 0);
}

}  // namespace

namespace {

// SIGTERM at any moment of start-up (loading, recovery, binding) ends the
// server; before its handler is installed that is the default action (143).
TEST_F(Serve, ASignalDuringStartUpStillStopsTheServer) {
  for (const int delay_ms : {200, 700, 1200, 2000}) {
    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const std::string cmd = std::string("exec ") + SISA_BINARY + " serve -q --port 0 -r " + run_ + " > /dev/null";
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    kill(pid, SIGTERM);
    int status = 0;
    pid_t done = 0;
    for (int i = 0; i < 400 && done == 0; ++i) {
      done = waitpid(pid, &status, WNOHANG);
      if (done == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (done == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << "still running 20 s after SIGTERM at " << delay_ms << " ms";
      continue;
    }
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    EXPECT_TRUE(code == 0 || code == 128 + SIGTERM) << "exit " << code << " after SIGTERM at " << delay_ms << " ms";
  }
}

}  // namespace

namespace {

// A deletion whose retrain cannot run (its checkpoints are damaged) fails
// visibly and pauses deletions; predictions go on from the published models,
// and the request stays accepted in the log for a restart, recover or repair.
TEST_F(Serve, AFailedDeletionPausesDeletionsWhilePredictionsGoOn) {
  for (const auto& e : fs::recursive_directory_iterator(run_ + "/ckpt")) {
    if (!e.is_regular_file() || e.path().filename().string().rfind("stage-02", 0) == 0) continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(e.path()) / 2));
    f.put('\x5a');
  }
  ServerProcess server(serve_args());
  ASSERT_TRUE(server.running());
  auto c = server.client();
  const auto r = c.Post("/v1/forget", bearer(kToken), R"({"ids": [1007]})", "application/json");
  ASSERT_TRUE(r && r->status == 202);
  const json done = wait_applied(server, json::parse(r->body)["id"]);
  ASSERT_EQ(done["state"], "failed") << done.dump();
  EXPECT_NE(done["error"].get<std::string>().find("ckpt/shard-"), std::string::npos) << done.dump();
  const auto p = c.Post("/v1/predict", json{{"inputs", inputs_json(test_inputs(), 0, 1)}}.dump(), "application/json");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->status, 200);
  EXPECT_EQ(json::parse(c.Get("/healthz")->body)["deletions"], "paused");
  const auto again = c.Post("/v1/forget", bearer(kToken), R"({"ids": [1014]})", "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 503) << again->body;
  EXPECT_EQ(server.stop(), 0);
  EXPECT_EQ(json::parse(run_sisa("status --json -r " + run_).output)["pending_requests"], 1);
}

}  // namespace

namespace {

// Data subjects: a group key forgets every row of that subject, through the
// API exactly as `sisa forget --groups`. Runs without groups refuse them.
TEST(ServeGroups, ForgettingADataSubjectThroughTheApiEqualsTheCli) {
  TempDir dir;
  test::write_csv(test::synthetic(600, 5, 3, 41, /*groups=*/40), dir / "train.csv");
  const std::string cfg = dir / "config.yaml", run = dir / "run", cli_run = dir / "cli-run";
  test::write_text(cfg, test::config_yaml(dir / "train.csv", dir / "train.csv", 5, 3, "  type: mlp\n  hidden: [8]\n",
                                          "  shards: 3\n  slices: 2\n", "  epochs: 4\n  batch_size: 16\n  lr: 0.01\n",
                                          /*grouped=*/true));
  test::write_text(dir / "token", std::string(kToken) + "\n");
  fs::permissions(dir / "token", fs::perms::owner_read | fs::perms::owner_write);
  ASSERT_EQ(run_sisa("train -q -c " + cfg + " -r " + run).exit_code, 0);
  fs::copy(run, cli_run, fs::copy_options::recursive);
  ASSERT_EQ(run_sisa("forget -q -r " + cli_run + " --groups 3,17").exit_code, 0);

  ServerProcess server("-q -r " + run + " --token-file " + (dir / "token"));
  ASSERT_TRUE(server.running());
  auto c = server.client();
  const auto bad = c.Post("/v1/forget", bearer(kToken), R"({"groups": [3, 999]})", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 422);
  EXPECT_EQ(json::parse(bad->body)["error"], "unknown_groups");
  const auto r = c.Post("/v1/forget", bearer(kToken), R"({"groups": [3, 17]})", "application/json");
  ASSERT_TRUE(r && r->status == 202) << (r ? r->body : "");
  const json done = wait_applied(server, json::parse(r->body)["id"]);
  ASSERT_EQ(done["state"], "applied") << done.dump();
  EXPECT_EQ(done["receipt"]["deleted_count"].get<int64_t>(), 30);  // 600 rows, 40 subjects: 15 rows each
  EXPECT_EQ(server.stop(), 0);
  EXPECT_EQ(test::stage_digests(run), test::stage_digests(cli_run));
}

TEST_F(Serve, GroupsInARunWithoutGroupsAreRefused) {
  ServerProcess server(serve_args());
  ASSERT_TRUE(server.running());
  auto c = server.client();
  const auto r = c.Post("/v1/forget", bearer(kToken), R"({"groups": [1]})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 422);
  EXPECT_EQ(json::parse(r->body)["error"], "no_groups");
  EXPECT_EQ(server.stop(), 0);
}

}  // namespace
