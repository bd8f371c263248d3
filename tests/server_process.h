// A real `sisa serve` process for the serve test suites, and what they
// share: the port it listens on, a real HTTP client (cpp-httplib's), and
// waiting for a deletion request to settle.
#pragma once

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

namespace sisa::test {

// `sisa serve ... --port 0 --json` in a child process; its first stdout line
// says the port. The destructor stops it with SIGTERM.
class ServerProcess {
 public:
  explicit ServerProcess(const std::string& args) {
    if (const auto at = args.find("--token-file "); at != std::string::npos) {
      const size_t from = at + 13, to = args.find(' ', from);
      std::ifstream in(args.substr(from, to == std::string::npos ? std::string::npos : to - from));
      std::getline(in, token_);
    }
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      // Should this test process die, the server goes too (instead of
      // holding ctest's output pipe open until ctest's timeout).
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      dup2(out[1], 1);
      close(out[0]);
      close(out[1]);
      const std::string cmd = std::string("exec ") + SISA_BINARY + " serve --json --port 0 " + args;
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(out[1]);
    std::string line;
    char c;
    while (read(out[0], &c, 1) == 1 && c != '\n') line += c;
    close(out[0]);
    if (line.empty()) {
      code_ = wait_exit();
      return;  // it failed to start; exit_code() says why
    }
    port_ = nlohmann::json::parse(line).at("port").get<int>();
  }
  ~ServerProcess() { stop(); }

  bool running() const { return port_ > 0 && code_ < 0; }
  int port() const { return port_; }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    return c;
  }
  // A client that sends the server's bearer token (from the --token-file
  // of its arguments) with every request: receipts and /v1/status need it.
  httplib::Client admin() const {
    httplib::Client c = client();
    c.set_default_headers({{"Authorization", "Bearer " + token_}});
    return c;
  }
  // SIGTERM, then the exit code.
  int stop() {
    if (code_ < 0 && pid_ > 0) {
      kill(pid_, SIGTERM);
      code_ = wait_exit();
    }
    return code_;
  }

  pid_t pid() const { return pid_; }

 private:
  int wait_exit() {
    int status = 0;
    waitpid(pid_, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  pid_t pid_ = -1;
  std::string token_;
  int port_ = -1;
  int code_ = -1;
};

// httplib 0.11 sends without MSG_NOSIGNAL: when the server answers early and
// closes (413 with the body still being sent), the client's next write raises
// SIGPIPE, whose default action ends this test process. Real clients ignore it.
inline const bool kSigpipeIgnored = [] {
  signal(SIGPIPE, SIG_IGN);
  return true;
}();

// Waits until GET /v1/forget/{id} answers `applied` or `failed`; returns the
// answer (null on timeout), asking with the server's token.
inline nlohmann::json wait_applied(const ServerProcess& server, uint64_t id) {
  auto c = server.admin();
  for (int i = 0; i < 600; ++i) {
    const auto r = c.Get(("/v1/forget/" + std::to_string(id)).c_str());
    if (r && r->status == 200) {
      const nlohmann::json j = nlohmann::json::parse(r->body);
      if (j["state"] == "applied" || j["state"] == "failed") return j;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return nullptr;
}

}  // namespace sisa::test
