// Boost.Beast over Asio: a few threads run the event loop (every
// connection's reads, writes and deadline timers, each connection on its own
// strand) and the handlers of requests that have fully arrived. See
// http_transport.h.
#include "serve/http_transport.h"
#include "serve/thread_priority.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "sisa/errors.h"

namespace sisa {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// After an answer that closes the connection, the rest of what the client
// sends is read and dropped for a while before the socket is closed: closing
// with unread bytes makes the kernel send a reset, which can reach the client
// before the answer (a 413 to a client still sending its body is then lost).
constexpr double kLingerSeconds = 2.0;
constexpr size_t kLingerBytes = 16u << 20;
constexpr double kWriteTimeoutSeconds = 10.0;  // a client that does not read its answer
constexpr size_t kBodyReadBytes = 256u << 10;   // the largest read into a connection's buffer
constexpr size_t kHeaderReadBytes = 8u << 10;   // a connection's buffer to start with

}  // namespace

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
  Session(tcp::socket socket, Impl& t, std::string peer)
      : alive_(t.busy()), socket_(std::move(socket)), timer_(socket_.get_executor()), t_(t), peer_(std::move(peer)) {}
  ~Session() {
    t_.release(peer_, reserved_);
    t_.forget(this, peer_);
  }

  void start() {
    buffer_.reserve(kHeaderReadBytes);
    read_request();
  }
  tcp::socket::executor_type executor() { return socket_.get_executor(); }

  // The server is stopping: a connection waiting for or reading a request
  // closes now; one whose request is being answered closes after its answer.
  void on_stop() {
    if (!answering_) close();
  }

 private:
  void arm(double secs) {
    timed_out_ = false;
    timer_.expires_after(seconds(secs));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      // Cancelled (the operation finished in time), or stale: it expired as
      // the operation finished and the timer was armed again meanwhile.
      if (ec || self->timer_.expiry() > Clock::now()) return;
      self->timed_out_ = true;
      beast::error_code ignored;
      self->socket_.cancel(ignored);  // the pending read or write completes with an error
    });
  }

  void read_request() {
    if (t_.stopping()) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(t_.limits().max_header_bytes));
    parser_->body_limit(t_.limits().max_body_bytes);
    request_ = {};
    request_.peer = peer_;
    arm(t_.limits().request_timeout_seconds);
    http::async_read_header(socket_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    started_ = Clock::now();
    if (!socket_.is_open()) return;  // closed by a stop meanwhile
    if (ec) return on_read_error(ec);
    const auto& h = parser_->get();
    request_.method = std::string(h.method_string());
    const std::string target(h.target());
    const size_t q = target.find('?');
    request_.path = target.substr(0, q);
    if (q != std::string::npos) request_.query = target.substr(q + 1);
    if (std::distance(h.begin(), h.end()) > static_cast<std::ptrdiff_t>(t_.limits().max_header_fields)) {
      return refuse(431, "headers_too_large",
                    "more than " + std::to_string(t_.limits().max_header_fields) + " header fields");
    }
    // A chunked body may grow to the limit: reserve that much.
    const size_t want = parser_->content_length() ? static_cast<size_t>(*parser_->content_length())
                        : parser_->chunked()      ? t_.limits().max_body_bytes
                                                  : 0;
    if (!t_.reserve(peer_, want)) {
      return refuse(503, "busy", "the server is receiving too many request bodies; retry shortly");
    }
    reserved_ = want;
    if (parser_->is_done()) return on_read({});
    // Beast reads at most the buffer's free capacity at a time: without room
    // a 150 KB body took hundreds of small reads (half the server's CPU).
    buffer_.reserve(std::min<size_t>(want, kBodyReadBytes));
    if (beast::iequals(h[http::field::expect], "100-continue")) {
      // curl asks before sending a body over 1 KiB and waits a second for this.
      static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
      return net::async_write(socket_, net::buffer(kContinue, sizeof kContinue - 1),
                              [self = shared_from_this()](beast::error_code e, size_t) {
                                if (e) return self->close();
                                self->read_body();
                              });
    }
    read_body();
  }

  void read_body() {
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code e, size_t) { self->on_read(e); });
  }

  void on_read(beast::error_code ec) {
    timer_.cancel();
    if (!socket_.is_open()) return;  // closed by a stop meanwhile: handle nothing
    if (ec) return on_read_error(ec);
    answering_ = true;
    auto message = parser_->release();
    keep_alive_ = message.keep_alive();
    version_ = message.version();
    request_.content_type = std::string(message[http::field::content_type]);
    request_.authorization = std::string(message[http::field::authorization]);
    request_.body = std::move(message.body());
    // The handler starts here, on an I/O thread (a slow client never gets
    // here before its whole request is in, so it holds no thread); its
    // answer comes back to this connection's strand, at once or from the
    // thread that computed its batch.
    t_.handle(request_, [self = shared_from_this()](HttpResponse res) {
      net::dispatch(self->socket_.get_executor(), [self, res = std::move(res)]() mutable {
        self->t_.observe(self->request_, res.status, self->started_);
        self->t_.release(self->peer_, self->reserved_);
        self->reserved_ = 0;
        self->write(std::move(res));
      });
    });
  }

  void on_read_error(beast::error_code ec) {
    const bool got_some = parser_ && (parser_->got_some() || buffer_.size() > 0);
    if (timed_out_) {
      if (!got_some) return close();  // an idle kept-alive connection
      return refuse(408, "request_timeout",
                    "the request was not received within " + fmt::format("{:g}", t_.limits().request_timeout_seconds) +
                        " s (--read-timeout)");
    }
    if (ec == http::error::body_limit) {
      return refuse(413, "body_too_large", "the body exceeds the server's limit (--max-body-bytes)");
    }
    if (ec == http::error::header_limit) {
      return refuse(431, "headers_too_large",
                    "the request line and headers exceed " + std::to_string(t_.limits().max_header_bytes) + " bytes");
    }
    static const auto& http_errors = beast::error_code(http::error::end_of_stream).category();
    if (ec.category() == http_errors && ec != http::error::end_of_stream && ec != http::error::partial_message) {
      return refuse(400, "bad_request", "the request could not be parsed: " + ec.message());
    }
    close();  // the client closed or reset the connection
  }

  // An answer from the transport itself; the connection closes after it.
  void refuse(int status, const std::string& error, const std::string& detail) {
    timer_.cancel();
    answering_ = true;
    t_.release(peer_, reserved_);
    reserved_ = 0;
    HttpResponse r = t_.error(status, error, detail);
    r.close = true;
    if (status == 503) r.headers.emplace_back("Retry-After", "1");
    t_.observe(request_, status, started_ == Clock::time_point{} ? Clock::now() : started_);
    write(std::move(r));
  }

  void write(HttpResponse r) {
    response_ = {};
    response_.version(version_);
    response_.result(static_cast<unsigned>(r.status));
    response_.set(http::field::content_type, r.content_type);
    for (const auto& [k, v] : r.headers) response_.set(k, v);
    response_.body() = std::move(r.body);
    response_.keep_alive(keep_alive_ && !r.close && !t_.stopping());
    response_.prepare_payload();
    arm(kWriteTimeoutSeconds);
    http::async_write(socket_, response_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->timer_.cancel();
      self->answering_ = false;
      if (ec) return self->close();
      if (!self->response_.keep_alive()) return self->linger();
      // An idle connection keeps no large buffer or answer.
      self->response_.body().clear();
      self->response_.body().shrink_to_fit();
      if (self->buffer_.capacity() > kHeaderReadBytes && self->buffer_.size() == 0) self->buffer_.shrink_to_fit();
      self->read_request();
    });
  }

  void linger() {
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    if (t_.stopping()) return close();
    arm(kLingerSeconds);
    drain();
  }
  void drain() {
    socket_.async_read_some(net::buffer(drain_), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ > kLingerBytes) return self->close();
      self->drain();
    });
  }

  void close() {
    timer_.cancel();
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

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

void HttpTransport::Impl::accept() {
  acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
    if (stopping_) return;
    if (ec) {
      // Out of file descriptors (or a connection reset while queued): back
      // off briefly instead of spinning on the error.
      spdlog::warn("accepting a connection failed: {}", ec.message());
      accept_backoff_.expires_after(std::chrono::milliseconds(50));
      accept_backoff_.async_wait([this](beast::error_code e) {
        if (!e && !stopping_) accept();
      });
      return;
    }
    admit(std::move(socket));
    accept();
  });
}

void HttpTransport::Impl::admit(tcp::socket socket) {
  beast::error_code ec;
  const auto remote = socket.remote_endpoint(ec);
  if (ec) return;
  const std::string peer = remote.address().to_string();
  std::shared_ptr<Session> session;
  {
    std::lock_guard<std::mutex> hold(sessions_mu_);
    const size_t from_peer = per_client_.count(peer) ? per_client_[peer] : 0;
    if (connections_ >= limits_.max_connections || from_peer >= limits_.max_connections_per_client) {
      // Say why, if the socket takes it at once, and close: a refused client
      // costs neither a buffer nor a timer.
      const std::string body = error_body_("too_many_connections",
                                           from_peer >= limits_.max_connections_per_client
                                               ? "too many connections from " + peer
                                               : "too many connections");
      const std::string answer = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                 "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body;
      socket.non_blocking(true, ec);
      socket.write_some(net::buffer(answer), ec);
      socket.shutdown(tcp::socket::shutdown_send, ec);
      socket.close(ec);
      return;
    }
    ++connections_;
    ++per_client_[peer];
    socket.set_option(tcp::no_delay(true), ec);  // answers must not wait for the client's delayed ACK
    session = std::make_shared<Session>(std::move(socket), *this, peer);
    sessions_.insert(session.get());
  }
  session->start();
}

void HttpTransport::Impl::stop() {
  net::post(accept_strand_, [this] {
    if (stopping_.exchange(true)) return;
    beast::error_code ignored;
    acceptor_.close(ignored);
    accept_backoff_.cancel();
    std::lock_guard<std::mutex> hold(sessions_mu_);
    for (Session* raw : sessions_) {
      // Null for a session being destroyed (it waits for this lock to leave the set).
      if (auto s = raw->weak_from_this().lock()) net::post(s->executor(), [s] { s->on_stop(); });
    }
  });
}

HttpTransport::HttpTransport(const HttpLimits& limits, Handler handler, Observer observer, ErrorBody error_body)
    : impl_(std::make_unique<Impl>(limits, std::move(handler), std::move(observer), std::move(error_body))) {}
HttpTransport::~HttpTransport() = default;
int HttpTransport::bind(const std::string& host, int port) { return impl_->bind(host, port); }
void HttpTransport::run() { impl_->run(); }
void HttpTransport::stop() { impl_->stop(); }

}  // namespace sisa
