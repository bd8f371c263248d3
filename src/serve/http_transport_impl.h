// The transport's inside, shared by http_transport.cpp (the listener, the
// limits shared by all connections) and http_session.cpp (one connection):
// Boost.Beast over Asio, included nowhere else. A few threads run the event
// loop (every connection's reads, writes and deadline timers, each
// connection on its own strand) and the handlers of requests that have
// fully arrived. See http_transport.h.
#pragma once

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "serve/http_transport.h"
#include "serve/thread_priority.h"
#include "sisa/errors.h"

namespace sisa {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

inline Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// After an answer that closes the connection, the rest of what the client
// sends is read and dropped for a while before the socket is closed: closing
// with unread bytes makes the kernel send a reset, which can reach the client
// before the answer (a 413 to a client still sending its body is then lost).
constexpr double kLingerSeconds = 2.0;
constexpr size_t kLingerBytes = 16u << 20;
constexpr double kWriteTimeoutSeconds = 10.0;  // a client that does not read its answer
constexpr size_t kBodyReadBytes = 256u << 10;  // the largest read into a connection's buffer
constexpr size_t kHeaderReadBytes = 8u << 10;  // a connection's buffer to start with

class HttpTransport::Impl {
 public:
  class Session;

  Impl(const HttpLimits& limits, Handler handler, Observer observer, ErrorBody error_body)
      : limits_(limits),
        handler_(std::move(handler)),
        observer_(std::move(observer)),
        error_body_(std::move(error_body)),
        ioc_(std::max(1, limits.threads)) {}

  int bind(const std::string& host, int port) {
    beast::error_code ec;
    const auto address = net::ip::make_address(host, ec);
    if (ec) throw UsageError("--host '" + host + "' is not an IP address");
    const tcp::endpoint ep(address, static_cast<unsigned short>(port));
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      throw IOError("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
    }
    return acceptor_.local_endpoint().port();
  }

  void run() {
    accept();
    // Each thread runs the event loop; run() returns once stop() closed the
    // acceptor and every connection.
    std::vector<std::thread> others;
    for (int i = 1; i < limits_.threads; ++i) {
      others.emplace_back([this] {
        set_this_thread_nice(limits_.nice);
        ioc_.run();
      });
    }
    set_this_thread_nice(limits_.nice);
    ioc_.run();
    for (auto& t : others) t.join();
  }

  void stop();

  bool stopping() const { return stopping_; }
  const HttpLimits& limits() const { return limits_; }

  // A share of the in-flight body budget; false if it is spent, or if this
  // client already holds a quarter of it (one address cannot starve others
  // by announcing large bodies and sending nothing).
  bool reserve(const std::string& peer, size_t bytes) {
    if (bytes == 0) return true;
    std::lock_guard<std::mutex> hold(sessions_mu_);
    size_t& mine = body_bytes_by_client_[peer];
    if (body_bytes_ + bytes > limits_.max_body_bytes_in_flight ||
        mine + bytes > std::max(limits_.max_body_bytes, limits_.max_body_bytes_in_flight / 4)) {
      if (mine == 0) body_bytes_by_client_.erase(peer);
      return false;
    }
    body_bytes_ += bytes;
    mine += bytes;
    return true;
  }
  void release(const std::string& peer, size_t bytes) {
    if (bytes == 0) return;
    std::lock_guard<std::mutex> hold(sessions_mu_);
    body_bytes_ -= bytes;
    if ((body_bytes_by_client_[peer] -= bytes) == 0) body_bytes_by_client_.erase(peer);
  }

  // Runs the handler; a handler that throws before replying gets a 500.
  void handle(HttpRequest& request, const Reply& reply) {
    auto replied = std::make_shared<std::atomic<bool>>(false);
    const Reply once = [replied, reply](HttpResponse r) {
      if (!replied->exchange(true)) reply(std::move(r));
    };
    try {
      handler_(request, once);
    } catch (const std::exception& e) {
      spdlog::error("{} {}: {}", request.method, request.path, e.what());
      once(error(500, "internal", e.what()));
    }
  }
  // Keeps run() from returning while a session lives.
  net::executor_work_guard<net::io_context::executor_type> busy() { return net::make_work_guard(ioc_); }
  void observe(const HttpRequest& request, int status, Clock::time_point t0) {
    if (observer_) observer_(request, status, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  HttpResponse error(int status, const std::string& error, const std::string& detail) const {
    HttpResponse r;
    r.status = status;
    r.body = error_body_(error, detail);
    return r;
  }

  void forget(Session* s, const std::string& peer) {
    --connections_;
    std::lock_guard<std::mutex> hold(sessions_mu_);
    if (--per_client_[peer] == 0) per_client_.erase(peer);
    sessions_.erase(s);
  }

 private:
  void accept();
  void admit(tcp::socket socket);

  const HttpLimits limits_;
  const Handler handler_;
  const Observer observer_;
  const ErrorBody error_body_;
  std::atomic<bool> stopping_{false};
  size_t body_bytes_ = 0;  // under sessions_mu_, as the per-client shares
  std::map<std::string, size_t> body_bytes_by_client_;
  std::atomic<size_t> connections_{0};
  std::mutex sessions_mu_;  // per_client_, sessions_, the body budget
  std::map<std::string, size_t> per_client_;
  std::set<Session*> sessions_;
  // Declared last, destroyed first: destroying the context destroys pending
  // handlers, and with them sessions, which unregister above.
  net::io_context ioc_;
  // The acceptor and its back-off timer live on one strand, as stop() does.
  net::strand<net::io_context::executor_type> accept_strand_{net::make_strand(ioc_)};
  tcp::acceptor acceptor_{accept_strand_};
  net::steady_timer accept_backoff_{accept_strand_};
};

// One connection. Everything runs on its strand: reads, the deadline timer,
// and the handler of each request.
class HttpTransport::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Impl& t, std::string peer);
  ~Session();  // gives back its body budget and its place among the connections

  void start();
  tcp::socket::executor_type executor() { return socket_.get_executor(); }

  // The server is stopping: a connection waiting for or reading a request
  // closes now; one whose request is being answered closes after its answer.
  void on_stop();

 private:
  void arm(double secs);

  void read_request();

  void on_header(beast::error_code ec);

  void read_body();

  void on_read(beast::error_code ec);

  void on_read_error(beast::error_code ec);

  // An answer from the transport itself; the connection closes after it.
  void refuse(int status, const std::string& error, const std::string& detail);

  void write(HttpResponse r);

  void linger();
  void drain();

  void close();

  // First member, destroyed last: run() cannot return (and the transport
  // cannot be destroyed) while a session, held by a pending answer, lives.
  net::executor_work_guard<net::io_context::executor_type> alive_;
  tcp::socket socket_;
  net::steady_timer timer_;
  Impl& t_;
  const std::string peer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  HttpRequest request_;
  Clock::time_point started_{};
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool timed_out_ = false;
  bool answering_ = false;  // from a whole request read until its answer is written
  size_t reserved_ = 0;
  size_t drained_ = 0;
  char drain_[4096];
};

}  // namespace sisa
