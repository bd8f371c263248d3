#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>

#include "comm/communicator.h"
#include "sisa/errors.h"

namespace sisa {
namespace {

struct Mailbox {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<int, std::string>> messages;
};

class InMemoryCommunicator : public Communicator {
 public:
  InMemoryCommunicator(int rank, std::shared_ptr<std::vector<Mailbox>> boxes) : rank_(rank), boxes_(std::move(boxes)) {}
  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(boxes_->size()); }
  void send(int dest, const std::string& bytes) override {
    auto& box = boxes_->at(static_cast<size_t>(dest));
    {
      std::lock_guard<std::mutex> lock(box.mu);
      box.messages.emplace_back(rank_, bytes);
    }
    box.cv.notify_one();
  }
  std::string receive_any(int* source) override {
    auto& box = (*boxes_)[static_cast<size_t>(rank_)];
    std::unique_lock<std::mutex> lock(box.mu);
    box.cv.wait(lock, [&] { return !box.messages.empty(); });
    auto [from, bytes] = std::move(box.messages.front());
    box.messages.pop_front();
    *source = from;
    return bytes;
  }
  [[noreturn]] void abort(int exit_code) override {
    throw Error(ExitCode::kInternal, "in-memory communicator aborted with code " + std::to_string(exit_code));
  }

 private:
  int rank_;
  std::shared_ptr<std::vector<Mailbox>> boxes_;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> make_in_memory_communicators(int n) {
  auto boxes = std::make_shared<std::vector<Mailbox>>(static_cast<size_t>(n));
  std::vector<std::unique_ptr<Communicator>> out;
  for (int r = 0; r < n; ++r) out.push_back(std::make_unique<InMemoryCommunicator>(r, boxes));
  return out;
}

std::unique_ptr<Communicator> make_single_process_communicator() {
  return std::move(make_in_memory_communicators(1).front());
}

}  // namespace sisa
