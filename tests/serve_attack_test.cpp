// `sisa serve` against hostile and careless clients, on loopback: slowloris
// clients and a header flood while a healthy client is served, limits on
// headers and connections, JSON that is deep, duplicated or overflows, and
// answers that stay defined when the run has no model left or a receipt is
// damaged. Attackers connect from other loopback addresses (127.0.0.2, ...)
// so per-client limits apply to them and not to the healthy client.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>

#include "format/manifest.h"
#include "server_process.h"
#include "sisa/errors.h"
#include "test_util.h"
#include "util/fs.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace sisa;
using sisa::test::run_sisa;
using sisa::test::ServerProcess;
using sisa::test::TempDir;
using sisa::test::wait_applied;
using Clock = std::chrono::steady_clock;

namespace {

const char* kToken = "0123456789abcdef0123456789abcdef";

// A TCP connection to the server from `source` (a loopback address); -1 if refused.
int connect_from(const char* source, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in src{}, dst{};
  src.sin_family = dst.sin_family = AF_INET;
  inet_pton(AF_INET, source, &src.sin_addr);
  inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  dst.sin_port = htons(static_cast<uint16_t>(port));
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
      connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Everything the server sends until it closes (or 10 s pass).
std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

// One raw request on a fresh connection; the whole answer.
std::string raw_request(const char* source, int port, const std::string& request) {
  const int fd = connect_from(source, port);
  if (fd < 0) return "";
  send_all(fd, request);
  shutdown(fd, SHUT_WR);
  std::string answer = read_all(fd);
  close(fd);
  return answer;
}

int64_t rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

class ServeAttack : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = test::synthetic(600, 6, 3, 31);
    test::write_csv(data_, dir_ / "train.csv");
    test::write_text(cfg_,
                     test::config_yaml(dir_ / "train.csv", dir_ / "train.csv", 6, 3, "  type: mlp\n  hidden: [16]\n",
                                       "  shards: 3\n  slices: 2\n", "  epochs: 4\n  batch_size: 16\n  lr: 0.01\n"));
    test::write_text(token_file_, std::string(kToken) + "\n");
    fs::permissions(token_file_, fs::perms::owner_read | fs::perms::owner_write);
    const auto r = run_sisa("train -q -c " + cfg_ + " -r " + run_);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  std::string serve_args(const std::string& extra = "") const {
    return "-q -r " + run_ + " --token-file " + token_file_ + " " + extra;
  }
  std::string one_input() const {
    return json{{"inputs", {std::vector<float>(data_.row(0), data_.row(0) + data_.width)}}}.dump();
  }

  TempDir dir_;
  Dataset data_;
  std::string cfg_ = dir_ / "config.yaml";
  std::string run_ = dir_ / "run";
  std::string token_file_ = dir_ / "forget.token";
};

httplib::Headers bearer(const std::string& scheme = "Bearer") { return {{"Authorization", scheme + " " + kToken}}; }

TEST_F(ServeAttack, SlowlorisAndAHeaderFloodNeitherCrashNorBloatNorStarveTheServer) {
  ServerProcess server(serve_args("--read-timeout 2"));
  ASSERT_TRUE(server.running());
  const int port = server.port();
  auto healthy = server.client();
  for (int i = 0; i < 50; ++i) ASSERT_EQ(healthy.Post("/v1/predict", one_input(), "application/json")->status, 200);
  const int64_t rss_before = rss_kib(server.pid());

  std::atomic<bool> stop{false};
  // 64 slowloris clients: a request started, then one header byte every 300 ms.
  std::atomic<int> slow_cut{0}, slow_408{0}, slow_overdue{0};
  std::vector<std::thread> attackers;
  for (int i = 0; i < 64; ++i) {
    attackers.emplace_back([&] {
      const int fd = connect_from("127.0.0.2", port);
      if (fd < 0) return;
      const auto t0 = Clock::now();
      send_all(fd, "POST /v1/predict HTTP/1.1\r\nHost: x\r\nX-Slow: ");
      timeval tv{0, 300000};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      std::string answer;
      char buf[512];
      while (!stop && Clock::now() - t0 < std::chrono::seconds(8)) {
        if (!send_all(fd, "a")) break;
        const ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0) break;
        if (n > 0) answer.append(buf, static_cast<size_t>(n));
      }
      if (Clock::now() - t0 > std::chrono::seconds(5)) ++slow_overdue;  // --read-timeout 2, plus slack
      ++slow_cut;
      if (answer.find(" 408 ") != std::string::npos) ++slow_408;
      close(fd);
    });
  }
  // A header flood: endless short header fields, again and again.
  std::atomic<int> flood_connections{0}, flood_431{0};
  attackers.emplace_back([&] {
    const std::string fields = [] {
      std::string f;
      for (int i = 0; i < 8000; ++i) f += "X-a: b\r\n";
      return f;
    }();
    while (!stop) {
      const int fd = connect_from("127.0.0.3", port);
      if (fd < 0) continue;
      ++flood_connections;
      send_all(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
      // Up to 3.2 million fields, until the server's answer arrives. The
      // answer is read as soon as it is there (poll), not between blocking
      // sends: the server drains a closing connection for a while only, and
      // a reset after that discards an answer still unread.
      std::string answer;
      char buf[512];
      size_t sent = 0;
      while (sent < 400 * fields.size() && answer.find("\r\n\r\n") == std::string::npos) {
        pollfd p{fd, POLLIN | POLLOUT, 0};
        if (poll(&p, 1, 1000) <= 0 || (p.revents & (POLLERR | POLLHUP))) break;
        if (p.revents & POLLIN) {
          const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
          if (n <= 0) break;
          answer.append(buf, static_cast<size_t>(n));
        } else if (p.revents & POLLOUT) {
          const size_t at = sent % fields.size();
          const ssize_t n = send(fd, fields.data() + at, fields.size() - at, MSG_DONTWAIT | MSG_NOSIGNAL);
          if (n < 0 && errno != EAGAIN) break;
          if (n > 0) sent += static_cast<size_t>(n);
        }
      }
      shutdown(fd, SHUT_WR);
      answer += read_all(fd);
      if (answer.find(" 431 ") != std::string::npos) ++flood_431;
      close(fd);
    }
  });

  // Meanwhile the healthy client keeps being answered.
  std::vector<double> latencies;
  int failures = 0;
  const auto until = Clock::now() + std::chrono::seconds(4);
  while (Clock::now() < until) {
    const auto t0 = Clock::now();
    const auto r = healthy.Post("/v1/predict", one_input(), "application/json");
    latencies.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    if (!r || r->status != 200) ++failures;
  }
  const int64_t rss_during = rss_kib(server.pid());
  stop = true;
  for (auto& t : attackers) t.join();
  std::sort(latencies.begin(), latencies.end());
  const double p99 = latencies[latencies.size() * 99 / 100];
  std::printf(
      "healthy client under attack: %zu requests, p50 %.2f ms, p99 %.2f ms, max %.2f ms; "
      "RSS %lld -> %lld KiB; flood connections %d (431: %d); slowloris cut %d (408: %d)\n",
      latencies.size(), latencies[latencies.size() / 2] * 1e3, p99 * 1e3, latencies.back() * 1e3,
      static_cast<long long>(rss_before), static_cast<long long>(rss_during), flood_connections.load(),
      flood_431.load(), slow_cut.load(), slow_408.load());
  EXPECT_EQ(failures, 0);
  EXPECT_GT(latencies.size(), 50u);
  EXPECT_LT(latencies.back(), 2.0) << "a healthy request waited behind the attackers";
#if !defined(__SANITIZE_ADDRESS__)  // ASan's quarantine keeps up to 256 MB of freed memory resident
  EXPECT_LT(rss_during - rss_before, 50 * 1024) << "KiB of RSS growth under attack";
#endif
  EXPECT_EQ(slow_cut, 64);
  EXPECT_EQ(slow_overdue, 0) << "slow clients held their connections past the request deadline";
  EXPECT_GT(slow_408, 0);
  EXPECT_GT(flood_connections, 0);
  EXPECT_EQ(flood_431, flood_connections) << "every flood connection is answered 431 and closed";
  EXPECT_EQ(healthy.Get("/healthz")->status, 200);
  EXPECT_EQ(server.stop(), 0);  // it never crashed
}

TEST_F(ServeAttack, HeaderAndConnectionLimitsAnswerAndClose) {
  ServerProcess server(serve_args("--max-connections-per-client 4"));
  ASSERT_TRUE(server.running());
  const int port = server.port();
  std::string many = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 101; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_NE(raw_request("127.0.0.5", port, many + "\r\n").find(" 431 "), std::string::npos);
  const std::string big = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'b') + "\r\n\r\n";
  const std::string a431 = raw_request("127.0.0.5", port, big);
  EXPECT_NE(a431.find(" 431 "), std::string::npos) << a431;
  EXPECT_NE(a431.find("headers_too_large"), std::string::npos) << a431;
  // A body larger than the limit, announced or chunked: 413, delivered (the
  // server reads and drops the rest before it closes).
  const std::string huge = std::string(9u << 20, ' ');
  const std::string a413 = raw_request(
      "127.0.0.5", port,
      "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(huge.size()) + "\r\n\r\n" + huge);
  EXPECT_NE(a413.find(" 413 "), std::string::npos) << a413.substr(0, 200);
  // A client that asks before sending its body (curl does for large ones) is told to go on.
  {
    const std::string body = one_input();
    const int fd = connect_from("127.0.0.5", port);
    ASSERT_GE(fd, 0);
    send_all(fd, "POST /v1/predict HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n");
    char buf[256];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(buf, static_cast<size_t>(n)).rfind("HTTP/1.1 100 Continue\r\n\r\n", 0), 0u);
    send_all(fd, body);
    shutdown(fd, SHUT_WR);
    EXPECT_NE(read_all(fd).find(" 200 "), std::string::npos);
    close(fd);
  }
  // Per client: the fifth connection from one address is refused, others are not.
  std::vector<int> held;
  for (int i = 0; i < 4; ++i) held.push_back(connect_from("127.0.0.4", port));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::string refused = raw_request("127.0.0.4", port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(refused.find(" 503 "), std::string::npos) << refused;
  EXPECT_NE(refused.find("too_many_connections"), std::string::npos) << refused;
  EXPECT_NE(raw_request("127.0.0.6", port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").find(" 200 "),
            std::string::npos);
  for (int fd : held) close(fd);
  EXPECT_EQ(server.stop(), 0);
}

// Bodies announced and never sent: one address holds at most a quarter of
// the in-flight body budget (128 MiB by default), so others still post.
TEST_F(ServeAttack, AnnouncedBodiesFromOneClientCannotHoldTheWholeBudget) {
  ServerProcess server(serve_args());
  ASSERT_TRUE(server.running());
  const int port = server.port();
  std::vector<int> announcers;
  for (int i = 0; i < 4; ++i) {
    announcers.push_back(connect_from("127.0.0.7", port));
    send_all(announcers.back(), "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n{");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::string busy =
      raw_request("127.0.0.7", port, "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n{");
  EXPECT_NE(busy.find(" 503 "), std::string::npos) << busy;
  EXPECT_NE(busy.find("\"busy\""), std::string::npos) << busy;
  const std::string body = one_input();
  const std::string other = raw_request(
      "127.0.0.8", port,
      "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_NE(other.find(" 200 "), std::string::npos) << other;
  for (int fd : announcers) close(fd);
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(ServeAttack, DeepDuplicatedAndOverflowingJsonIsAnsweredNeverCrashes) {
  ServerProcess server(serve_args());
  ASSERT_TRUE(server.running());
  auto c = server.client();
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string deep_ids = "{\"ids\": " + deep + "}";
  const std::string deep_inputs = "{\"inputs\": " + deep + "}";
  struct Case {
    std::string path, body;
    httplib::Headers headers;
    int status;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"/v1/forget", deep_ids, bearer(), 400, "too_deep"},
      {"/v1/forget", deep, bearer(), 400, "too_deep"},
      {"/v1/predict", deep_inputs, {}, 400, "bad_request"},
      {"/v1/predict", deep, {}, 400, "bad_request"},
      {"/v1/forget", R"({"ids": [1000], "ids": [1007]})", bearer(), 400, "duplicate_field"},
      {"/v1/predict", "{\"inputs\": [[1,2,3,4,5,6]], \"inputs\": [[1,2,3,4,5,6]]}", {}, 400, "duplicate_field"},
      {"/v1/predict", R"({"inputs": [[3e38, 3e38, 3e38, 3e38, 3e38, 3e38]]})", {}, 422, "not_finite_output"},
      {"/v1/status", deep, {}, 405, "method_not_allowed"},
      {"/healthz", deep, {}, 405, "method_not_allowed"},
  };
  for (const auto& k : cases) {
    const auto r = c.Post(k.path.c_str(), k.headers, k.body, "application/json");
    ASSERT_TRUE(r) << k.path << " " << k.body.substr(0, 40);
    EXPECT_EQ(r->status, k.status) << k.path << " " << k.body.substr(0, 40) << " -> " << r->body;
    EXPECT_EQ(json::parse(r->body).value("error", ""), k.error) << r->body;
  }
  // The scheme of the bearer token is case-insensitive; the token is not.
  const auto lower = c.Post("/v1/forget", bearer("bearer"), R"({"ids": [1007]})", "application/json");
  ASSERT_TRUE(lower);
  EXPECT_EQ(lower->status, 202) << lower->body;
  EXPECT_EQ(json::parse(c.Get("/healthz")->body)["status"], "ok");
  EXPECT_EQ(server.stop(), 0);
}

// Deletions must not starve under load: the threads that answer requests run
// at nice 10 (--serving-nice), the one that retrains at 0, so a retrain keeps
// about a core (bench/bench_serve_deletion.py measures the effect).
TEST_F(ServeAttack, RequestThreadsRunBelowTheDeletionWorker) {
  const auto nice_of_threads = [](pid_t pid) {
    std::map<std::string, std::vector<int>> by_name;  // thread name -> nice values
    for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
      std::ifstream stat(task.path() / "stat");
      const std::string line((std::istreambuf_iterator<char>(stat)), {});
      // comm is in parentheses and may hold spaces; the fields after it are space-separated.
      std::istringstream rest(line.substr(line.rfind(')') + 2));
      std::vector<std::string> f((std::istream_iterator<std::string>(rest)), {});
      std::ifstream comm(task.path() / "comm");
      std::string name;
      std::getline(comm, name);
      by_name[name].push_back(std::stoi(f.at(16)));  // field 19 of stat: nice
    }
    return by_name;
  };
  std::map<int, int> count;  // nice -> threads
  {
    ServerProcess server(serve_args());
    ASSERT_TRUE(server.running());
    // Each thread sets its nice as it starts, and the event-loop threads
    // start just after the server says it listens: wait for them.
    for (int attempt = 0; attempt < 100 && !(count[10] >= 3 && count[0] >= 1); ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      count.clear();
      for (const auto& [name, nices] : nice_of_threads(server.pid())) {
        for (int n : nices) ++count[n];
      }
    }
  }
  // 2 event-loop threads and one compute thread per core at 10; the main
  // thread runs the event loop too. The deletion worker (and the signal
  // waiter) stay at 0.
  EXPECT_GE(count[10], 3);
  EXPECT_GE(count[0], 1);
  ServerProcess equal(serve_args() + " --serving-nice 0");
  ASSERT_TRUE(equal.running());
  for (const auto& [name, nices] : nice_of_threads(equal.pid())) {
    for (int n : nices) EXPECT_EQ(n, 0) << name;
  }
}

TEST_F(ServeAttack, AnswersStayDefinedWithNoModelANoOpOrADamagedReceipt) {
  // Flags out of range are refused before anything starts.
  for (const char* flag : {"--port 70000", "--read-timeout 0", "--read-timeout -1", "--read-timeout nan",
                           "--http-threads 0", "--max-connections 0", "--serving-nice 20", "--serving-nice -1"}) {
    const auto r = run_sisa("serve -r " + run_ + " " + flag);
    EXPECT_EQ(r.exit_code, static_cast<int>(ExitCode::kUsage)) << flag << "\n" << r.output;
  }
  std::vector<int64_t> ids = data_.ids;
  {
    ServerProcess server(serve_args());
    ASSERT_TRUE(server.running());
    auto c = server.client();
    // Deleting every sample: applied, and predictions say there is no model.
    const auto r = c.Post("/v1/forget", bearer(), json{{"ids", ids}}.dump(), "application/json");
    ASSERT_TRUE(r && r->status == 202) << (r ? r->body : "");
    const json done = wait_applied(server, json::parse(r->body)["id"]);
    ASSERT_EQ(done["state"], "applied") << done.dump();
    const auto p = c.Post("/v1/predict", one_input(), "application/json");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->status, 409) << p->body;
    EXPECT_EQ(json::parse(p->body)["error"], "no_model");
    const auto h = c.Get("/healthz");
    EXPECT_EQ(h->status, 200);
    EXPECT_EQ(json::parse(h->body)["models"], "none");
    // Deleting them again is a no-op: answered at once, nothing logged.
    const auto log_before = read_file(run_ + "/deletions.log");
    const auto again = c.Post("/v1/forget", bearer(), R"({"ids": [1000, 1007]})", "application/json");
    ASSERT_TRUE(again);
    EXPECT_EQ(again->status, 200) << again->body;
    EXPECT_EQ(json::parse(again->body)["state"], "noop");
    EXPECT_EQ(read_file(run_ + "/deletions.log"), log_before);
    EXPECT_EQ(server.stop(), 0);
  }
  EXPECT_EQ(run_sisa("predict -q -r " + run_).exit_code, static_cast<int>(ExitCode::kData));
  // A damaged receipt: the server starts, and says so instead of failing.
  const Manifest m = load_manifest(run_);
  test::write_text(run_ + "/" + m.receipts.at(0).path, "{\"torn");
  ServerProcess server(serve_args());
  ASSERT_TRUE(server.running());
  auto c = server.admin();
  const auto r = c.Get("/v1/forget/1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  EXPECT_EQ(j["state"], "applied");
  EXPECT_NE(j["receipt_error"].get<std::string>().find(m.receipts.at(0).path), std::string::npos) << r->body;
  EXPECT_EQ(json::parse(c.Get("/v1/status")->body)["damaged_receipts"].size(), 1u);
  EXPECT_EQ(server.stop(), 0);
}

}  // namespace
