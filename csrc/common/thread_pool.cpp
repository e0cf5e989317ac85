#include "common/thread_pool.h"

#include <sched.h>

#include <chrono>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace qvl {

namespace {
// Workers spin this long for the next job before sleeping: decode issues a job every few tens of
// microseconds, and a condition-variable wake-up costs about as much as a small matrix-vector product.
constexpr auto kSpinBeforeSleep = std::chrono::microseconds(200);
constexpr int kSpinsPerClockCheck = 256;  // reading the clock on every spin took 9% of a decode profile

inline void cpu_relax() {
#if defined(__x86_64__) || defined(_M_X64)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { worker_loop(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
}

int ThreadPool::default_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
  unsigned hardware = std::thread::hardware_concurrency();
  return hardware ? static_cast<int>(hardware) : 1;
}

void ThreadPool::work_on_current_job(int thread) {
  for (;;) {
    int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= job_tasks_) return;
    try {
      (*job_)(task, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!first_error_) first_error_ = std::current_exception();
      next_task_.store(job_tasks_, std::memory_order_relaxed);  // skip what is left
    }
  }
}

void ThreadPool::worker_loop(int thread) {
  uint64_t seen = 0;
  for (;;) {
    auto spin_until = std::chrono::steady_clock::now() + kSpinBeforeSleep;
    for (int spins = 1; generation_.load(std::memory_order_acquire) == seen; ++spins) {
      cpu_relax();
      if (spins % kSpinsPerClockCheck == 0 && std::chrono::steady_clock::now() >= spin_until) break;
    }
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      seen = generation_.load(std::memory_order_acquire);
      if (stopping_) return;
      if (job_ == nullptr) continue;
      ++busy_workers_;
    }
    work_on_current_job(thread);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--busy_workers_ == 0) done_.notify_one();
    }
  }
}

void ThreadPool::run(int64_t n_tasks, const Task& fn) {
  if (n_tasks <= 0) return;
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  if (n_threads_ == 1 || n_tasks == 1) {
    for (int64_t task = 0; task < n_tasks; ++task) fn(task, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    job_tasks_ = n_tasks;
    first_error_ = nullptr;
    next_task_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  work_on_current_job(0);
  // The workers' last tasks usually end within microseconds of the caller's: sleeping on done_ would
  // add a futex wake-up (tens of microseconds on a VM) to each of decode's hundreds of jobs per token.
  auto spin_until = std::chrono::steady_clock::now() + kSpinBeforeSleep;
  for (int spins = 1; busy_workers_.load(std::memory_order_acquire) != 0; ++spins) {
    cpu_relax();
    if (spins % kSpinsPerClockCheck == 0 && std::chrono::steady_clock::now() >= spin_until) break;
  }
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    // Workers that have not yet picked this job up find no task left and finish at once.
    done_.wait(lock, [&] { return busy_workers_ == 0; });
    job_ = nullptr;
    error = first_error_;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace qvl
