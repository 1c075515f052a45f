// Waiting for work done by another thread (an object store's HTTP threads): the task that
// waits parks, and the thread that finishes the work wakes it through its shard.
//
// completion_port: one per shard thread, made by the shard loop and installed as the thread's
// current() port while the loop runs. A worker thread post()s a finished waiter's task to it;
// the port queues the task and notifies the shard (which may be blocked on its I/O ring or on
// its condition variable); the shard loop calls drain() between scheduler rounds, which wakes
// the queued tasks on the shard thread (schedulers are single-threaded).
//
// remote_completion: one wait. Made on the waiting thread BEFORE the work is handed over (it
// records the port and the running task), signal()ed once by the worker, wait()ed by the
// waiter. Inside a task of a thread with a port, wait() parks the task; anywhere else (a
// client thread, an inline scheduler, a shard's final rewrites outside tasks) it blocks the
// thread. signal() and wait() meet under one mutex, so the waiter may destroy the completion
// as soon as wait() returns: the worker no longer touches it.
//
// Thread affinity: post() from any thread; drain() and pending() from the port's shard thread
// (pending() from any). remote_completion: wait() on the thread that made it, signal() from any.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <utility>
#include <vector>

#include <eloqstore/sched/hooks.hpp>

namespace eloqstore {

class completion_port {
 public:
  // `notify(arg)` wakes the shard thread wherever it blocks; it is called from worker threads.
  // `index` is the shard's number (workers use it to spread shards over their threads).
  completion_port(suspend_hooks hooks, void (*notify)(void*), void* arg, std::size_t index)
      : hooks_(hooks), notify_(notify), notify_arg_(arg), index_(index) {}
  completion_port(const completion_port&) = delete;
  completion_port& operator=(const completion_port&) = delete;

  // The calling thread's port (nullptr on threads without one).
  [[nodiscard]] static completion_port*& current() noexcept {
    static thread_local completion_port* port = nullptr;
    return port;
  }

  // Installs `p` as the calling thread's port for the scope's lifetime.
  class scope {
   public:
    explicit scope(completion_port* p) noexcept : prev_(std::exchange(current(), p)) {}
    ~scope() { current() = prev_; }
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;

   private:
    completion_port* prev_;
  };

  [[nodiscard]] const suspend_hooks& hooks() const noexcept { return hooks_; }
  [[nodiscard]] std::size_t index() const noexcept { return index_; }

  void post(void* task) {
    {
      std::lock_guard lock(mu_);
      ready_.push_back(task);
    }
    if (notify_ != nullptr) {
      notify_(notify_arg_);
    }
  }

  [[nodiscard]] bool pending() const {
    std::lock_guard lock(mu_);
    return !ready_.empty();
  }

  // Wakes every task posted so far; returns whether there was any.
  bool drain() {
    {
      std::lock_guard lock(mu_);
      if (ready_.empty()) {
        return false;
      }
      waking_.swap(ready_);
    }
    for (void* t : waking_) {
      hooks_.wake(hooks_.sched, t);
    }
    waking_.clear();
    return true;
  }

 private:
  suspend_hooks hooks_;
  void (*notify_)(void*);
  void* notify_arg_;
  std::size_t index_;
  mutable std::mutex mu_;
  std::vector<void*> ready_;   // under mu_
  std::vector<void*> waking_;  // shard thread only
};

class remote_completion {
 public:
  remote_completion() noexcept
      : port_(completion_port::current()),
        task_(port_ == nullptr ? nullptr : port_->hooks().running_task()) {}
  remote_completion(const remote_completion&) = delete;
  remote_completion& operator=(const remote_completion&) = delete;

  // The port of the waiting shard (nullptr for other threads): who waits, for fairness.
  [[nodiscard]] completion_port* port() const noexcept { return port_; }

  // Any thread, once. The task is posted only if it parks (or is about to) for this wait: a
  // signal that comes before wait() must not wake the task later, when it has gone on to wait
  // for something else (or finished).
  void signal() {
    std::lock_guard lock(mu_);
    done_ = true;
    if (parked_) {
      port_->post(task_);
    } else if (task_ == nullptr) {
      cv_.notify_one();
    }
  }

  // The thread that made it. May suspend the running task.
  void wait() {
    std::unique_lock lock(mu_);
    if (task_ == nullptr) {
      cv_.wait(lock, [&] { return done_; });
      return;
    }
    while (!done_) {
      // A post after this cannot be drained before the park: drain() runs on this thread.
      parked_ = true;
      lock.unlock();
      port_->hooks().park(port_->hooks().sched);
      lock.lock();
      parked_ = false;
    }
  }

 private:
  completion_port* port_;
  void* task_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;    // under mu_
  bool parked_ = false;  // under mu_: the task parks for this wait
};

}  // namespace eloqstore
