// One connection of the transport (http_transport_impl.h): it reads a
// request within the deadline and the limits, hands it to the handler, and
// writes the answer back on its strand.
#include <spdlog/spdlog.h>

#include "serve/http_transport_impl.h"

namespace sisa {

HttpTransport::Impl::Session::Session(tcp::socket socket, Impl& t, std::string peer)
    : alive_(t.busy()), socket_(std::move(socket)), timer_(socket_.get_executor()), t_(t), peer_(std::move(peer)) {}

HttpTransport::Impl::Session::~Session() {
  t_.release(peer_, reserved_);
  t_.forget(this, peer_);
}

void HttpTransport::Impl::Session::start() {
  buffer_.reserve(kHeaderReadBytes);
  read_request();
}

void HttpTransport::Impl::Session::on_stop() {
  if (!answering_) close();
}

void HttpTransport::Impl::Session::arm(double secs) {
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

void HttpTransport::Impl::Session::read_request() {
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

void HttpTransport::Impl::Session::on_header(beast::error_code ec) {
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

void HttpTransport::Impl::Session::read_body() {
  http::async_read(socket_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code e, size_t) { self->on_read(e); });
}

void HttpTransport::Impl::Session::on_read(beast::error_code ec) {
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

void HttpTransport::Impl::Session::on_read_error(beast::error_code ec) {
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

void HttpTransport::Impl::Session::refuse(int status, const std::string& error, const std::string& detail) {
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

void HttpTransport::Impl::Session::write(HttpResponse r) {
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

void HttpTransport::Impl::Session::linger() {
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  if (t_.stopping()) return close();
  arm(kLingerSeconds);
  drain();
}

void HttpTransport::Impl::Session::drain() {
  socket_.async_read_some(net::buffer(drain_), [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->drained_ += n;
    if (ec || self->drained_ > kLingerBytes) return self->close();
    self->drain();
  });
}

void HttpTransport::Impl::Session::close() {
  timer_.cancel();
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

}  // namespace sisa
