// The transport's listener and what all connections share (the body
// budget, the per-client counts), and the public face of http_transport.h.
#include <spdlog/spdlog.h>

#include "serve/http_transport_impl.h"

namespace sisa {

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
      const std::string body = error_body_("too_many_connections", from_peer >= limits_.max_connections_per_client
                                                                       ? "too many connections from " + peer
                                                                       : "too many connections");
      const std::string answer =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
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
