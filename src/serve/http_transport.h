// The HTTP/1.1 transport of `sisa serve`: event-driven (Boost.Beast over
// Asio, included only by http_transport_impl.h), so a
// connection costs a socket and a small buffer, never a thread. Slow or idle
// clients cannot hold the threads that answer others, and every resource a
// client can make the server hold is capped: header bytes and fields, body
// bytes (per request and in flight over all requests), connections (in total
// and per client address), and the time to send one whole request. A
// handler runs only once its request has fully arrived.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sisa {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target without its query
  std::string query;   // after '?', raw
  std::string content_type;
  std::string authorization;  // the Authorization header, raw
  std::string body;
  std::string peer;  // the client's address
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra fields (Location, ...)
  bool close = false;                                        // close the connection after this answer
};

struct HttpLimits {
  size_t max_body_bytes = 8u << 20;              // a larger body gets 413
  size_t max_header_bytes = 16u << 10;           // request line and header fields together; more gets 431
  size_t max_header_fields = 100;                // more gets 431
  double request_timeout_seconds = 10;           // to send one whole request (or to start the next
                                                 // one on a kept-alive connection); then 408 and close
  size_t max_connections = 1000;                 // more are answered 503 and closed
  size_t max_connections_per_client = 128;       // per client address; more are answered 503 and closed
  size_t max_body_bytes_in_flight = 128u << 20;  // bodies being received or handled, all clients
  int threads = 2;                               // threads that run the event loop and the handlers
  int nice = 0;                                  // their scheduling niceness (thread_priority.h)
};

class HttpTransport {
 public:
  // Answers a request by calling `reply` once, at once or later from any
  // thread (an answer computed in a batch). The request is valid only
  // during the call; the handler may move its body out (to parse it on
  // another thread without a copy).
  using Reply = std::function<void(HttpResponse)>;
  using Handler = std::function<void(HttpRequest& request, Reply reply)>;
  // Called once per answered request, handled or refused by the transport
  // itself (then `request` holds what was read: maybe nothing).
  using Observer = std::function<void(const HttpRequest& request, int status, double seconds)>;
  // Renders the body of an error the transport answers by itself (413, 431, ...).
  using ErrorBody = std::function<std::string(const std::string& error, const std::string& detail)>;

  HttpTransport(const HttpLimits& limits, Handler handler, Observer observer, ErrorBody error_body);
  ~HttpTransport();
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // Listens on host:port (0: any free port) and returns the port. IOError if it cannot.
  int bind(const std::string& host, int port);
  // Serves until stop(): then stops accepting, lets requests being handled
  // finish and be answered, closes every connection and returns.
  void run();
  // From any thread (not from a signal handler).
  void stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sisa
