// The worker pool behind cairn::parallel_for. Workers take a loop from a queue and claim indices
// from its shared counter; the caller claims indices too, then withdraws the loop from the queue
// and waits only for workers already inside it.
#include "cairn/parallel.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

namespace cairn {

namespace {

struct Loop {
  const std::function<void(std::size_t, unsigned)>* task;
  std::size_t n;
  std::atomic<std::size_t> next{0};
  std::atomic<unsigned> joined{0};  // helpers that entered; each takes the next worker index
  unsigned active = 0;              // workers inside the loop; guarded by Pool::mutex_
  std::mutex error_mutex;
  std::exception_ptr error;

  void drain(unsigned worker) {
    try {
      for (std::size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) (*task)(i, worker);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next.store(n);  // the others stop at their next claim
    }
  }
};

class Pool {
 public:
  void start(unsigned workers) {
    for (unsigned i = 0; i < workers; ++i) std::thread([this] { work(); }).detach();
    size_.store(workers);
  }

  unsigned size() const { return size_.load(); }

  void run(Loop& loop, unsigned helpers) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (unsigned i = 0; i < helpers; ++i) queue_.push_back(&loop);
    }
    if (helpers == 1) {
      wake_.notify_one();
    } else {
      wake_.notify_all();
    }
    loop.drain(0);
    std::unique_lock<std::mutex> lock(mutex_);
    queue_.erase(std::remove(queue_.begin(), queue_.end(), &loop), queue_.end());
    done_.wait(lock, [&] { return loop.active == 0; });
  }

 private:
  void work() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return !queue_.empty(); });
      Loop* loop = queue_.front();
      queue_.pop_front();
      ++loop->active;
      lock.unlock();
      loop->drain(loop->joined.fetch_add(1) + 1);
      lock.lock();
      if (--loop->active == 0) done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::deque<Loop*> queue_;
  std::atomic<unsigned> size_{0};
};

// The pool is never destroyed: detached workers may outlive static destruction at interpreter
// exit. A child process made by fork() has none of the parent's threads (and maybe a copy of a
// locked mutex), so it forgets the parent's pool and starts its own on first use.
std::atomic<Pool*> g_pool{nullptr};

void forget_pool_in_child() { g_pool.store(nullptr); }

Pool& pool() {
  static const bool registered = ::pthread_atfork(nullptr, nullptr, forget_pool_in_child) == 0;
  (void)registered;
  Pool* current = g_pool.load();
  if (current != nullptr) return *current;
  auto* fresh = new Pool();
  if (g_pool.compare_exchange_strong(current, fresh)) {
    fresh->start(configured_threads() - 1);
    return *fresh;
  }
  delete fresh;  // another thread installed one first; ours has no threads yet
  return *current;
}

unsigned threads_from_environment() {
  const char* env = std::getenv("CAIRN_THREADS");
  if (env == nullptr) return hardware_threads();
  char* end = nullptr;
  const long value = std::strtol(env, &end, 10);
  // Garbage or a non-positive count means "not set": a typo must not serialise every call.
  if (end == env || *end != '\0' || value < 1) return hardware_threads();
  return static_cast<unsigned>(std::min<long>(value, 4096));
}

}  // namespace

unsigned hardware_threads() {
  static const unsigned n = std::max(1u, std::thread::hardware_concurrency());
  return n;
}

unsigned configured_threads() {
  static const unsigned n = threads_from_environment();
  return n;
}

unsigned resolve_threads(int threads) {
  return threads > 0 ? static_cast<unsigned>(threads) : configured_threads();
}

void parallel_for(std::size_t n, unsigned threads,
                  const std::function<void(std::size_t, unsigned)>& task) {
  if (threads == 0) threads = configured_threads();
  const auto helpers = static_cast<unsigned>(
      std::min<std::size_t>({threads - 1, n > 0 ? n - 1 : 0, pool().size()}));
  if (helpers == 0) {
    for (std::size_t i = 0; i < n; ++i) task(i, 0);
    return;
  }
  Loop loop;
  loop.task = &task;
  loop.n = n;
  pool().run(loop, helpers);
  if (loop.error) std::rethrow_exception(loop.error);
}

void parallel_for(std::size_t n, unsigned threads, const std::function<void(std::size_t)>& task) {
  const std::function<void(std::size_t, unsigned)> indexed = [&task](std::size_t i, unsigned) {
    task(i);
  };
  parallel_for(n, threads, indexed);
}

}  // namespace cairn
