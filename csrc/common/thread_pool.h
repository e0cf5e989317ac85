// A persistent pool of worker threads. The calling thread takes part in every job, so a pool of
// n threads starts n - 1 workers once and never creates threads per call.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qvl {

class ThreadPool {
 public:
  using Task = std::function<void(int64_t task, int thread)>;

  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Calls fn(task, thread) for every task in [0, n_tasks), handing tasks out dynamically, and returns
  // when all are done. thread is in [0, size()). The first exception thrown by a task is rethrown here.
  void run(int64_t n_tasks, const Task& fn);

  // Threads to use when the caller does not say: the cores this process may run on.
  static int default_threads();

 private:
  void worker_loop(int thread);
  void work_on_current_job(int thread);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const Task* job_ = nullptr;
  int64_t job_tasks_ = 0;
  std::atomic<int64_t> next_task_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> busy_workers_{0};  // changed under mutex_; read without it by run()'s spin
  bool stopping_ = false;
  std::exception_ptr first_error_;
  std::mutex run_mutex_;  // one job at a time, whoever calls
};

}  // namespace qvl
