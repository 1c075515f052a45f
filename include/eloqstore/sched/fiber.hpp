// fiber_scheduler: stackful coroutines on Boost.Context for one shard thread.
//
// Tasks are Boost.Context fibers on pooled stacks of a fixed size. A round runs every ready
// task once, then low-priority tasks until the low-priority queue is empty or the round's
// time budget is spent, so long writes and background work (which yield to the
// low-priority queue between steps) cannot starve reads. Tasks suspend only at the calls
// below, each of which says so in its name: yield(), yield_low_priority(), park(), and the
// waiting_zone / fiber_mutex helpers built on park().
//
// Thread affinity: one scheduler per shard thread; every call comes from that thread. A
// task body must not throw (an exception cannot cross a context switch): it is the task's
// job to turn failures into error values.
//
// Bounds: live tasks are limited by `tasks_max` (spawn fails beyond it), the pool keeps at
// most `stacks_pooled` stacks.
//
// Stacks: each lies above a PROT_NONE guard page, so a task that overflows its stack faults
// at once (SIGSEGV) instead of overwriting the memory below it. Each stack is two memory
// mappings: a process has vm.max_map_count of them (65530 by default), so about 32 K live
// tasks in the process at once before spawn fails with std::bad_alloc.
// measure_stacks_everywhere() paints stacks when handed out and checks them when given back;
// stack_bytes_used_high_water() tells the deepest use seen (tests use it to size the minimum).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <boost/context/fiber.hpp>
#include <boost/context/stack_context.hpp>
#include <boost/intrusive/list.hpp>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <unordered_set>
#include <utility>
#include <vector>

#include <eloqstore/concepts.hpp>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define ELOQSTORE_FIBER_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define ELOQSTORE_FIBER_TSAN 1
#endif

namespace eloqstore {

class fiber_scheduler {
 public:
  struct config {
    std::size_t stack_bytes = 32 * 1024;  // per task; a multiple of the OS page size
    std::size_t stacks_pooled = 64;       // stacks kept for reuse
    std::size_t tasks_max = 65536;        // live tasks at once
    std::chrono::microseconds low_priority_budget{50};
  };

  // A suspended or runnable task. Opaque to users except as a handle for wake().
  class task : public boost::intrusive::list_base_hook<> {
   private:
    friend class fiber_scheduler;
    boost::context::stack_context stack;  // recorded for sanitizer annotations
    void* fake_stack = nullptr;
    [[maybe_unused]] void* tsan_fiber = nullptr;  // ThreadSanitizer's context of this task
    boost::context::fiber self;                   // the task's context while it is not running
    boost::context::fiber back;                   // the scheduler's context while the task runs
    std::function<void()> body;
    bool done = false;
    bool queued = false;
  };

  static constexpr bool can_suspend = true;

  fiber_scheduler() : fiber_scheduler(config{}) {}
  explicit fiber_scheduler(config c)
      : cfg_(c),
        stacks_(c.stack_bytes * stack_scale, c.stacks_pooled == 0 ? 1 : c.stacks_pooled,
                measure_everywhere().load(std::memory_order_relaxed)) {}

  // AddressSanitizer surrounds every local with redzones, so frames take several times the
  // stack they take otherwise: its builds give each task stack_scale times the configured
  // size (with 16 KiB stacks the engine tests overflow under ASan, not in other builds).
#ifdef ELOQSTORE_FIBER_ASAN
  static constexpr std::size_t stack_scale = 4;
#else
  static constexpr std::size_t stack_scale = 1;
#endif
  fiber_scheduler(const fiber_scheduler&) = delete;
  fiber_scheduler& operator=(const fiber_scheduler&) = delete;
  // Unfinished tasks are unwound: each is resumed once more and its suspension point throws
  // an internal exception that runs its destructors, so task bodies must not swallow it with
  // catch (...).
  ~fiber_scheduler() {
    ready_.clear();
    low_.clear();
    unwinding_ = true;
    while (!all_.empty()) {
      resume(**all_.begin());
    }
  }

  // Queues `f` as a new task; it first runs in the next round. False if tasks_max are live.
  template <typename F>
  bool spawn(F&& f) {
    if (live_ >= cfg_.tasks_max) {
      return false;
    }
    // Out of memory (std::bad_alloc from the task, its registration or its stack) leaves
    // nothing behind: the task is owned here until it is registered and has its fiber.
    auto owned = std::make_unique<task>();
    task* t = owned.get();
    t->body = std::forward<F>(f);
    all_.insert(t);
    try {
      make_fiber(t);
    } catch (...) {
      all_.erase(t);
      throw;
    }
    owned.release();
    ++live_;
    push_ready(*t);
    return true;
  }

 private:
  void make_fiber(task* t) {
#ifdef ELOQSTORE_FIBER_TSAN
    t->tsan_fiber = __tsan_create_fiber(0);
#endif
    t->self = boost::context::fiber(std::allocator_arg, recording_stack{&stacks_, &t->stack},
                                    [this, t](boost::context::fiber&& back) {
                                      t->back = std::move(back);
                                      arrived(nullptr);
                                      try {
                                        t->body();
                                      } catch (const unwind_signal&) {
                                        // the scheduler is being destroyed
                                      }
                                      t->done = true;
                                      tsan_to_scheduler();
                                      leaving(nullptr);  // this fiber ends
                                      return std::move(t->back);
                                    });
  }

 public:
  // Runs `f` as a task and every task until none is left (the `scheduler` concept's run).
  template <typename F>
  void run(F&& f) {
    spawn(std::forward<F>(f));
    while (run_round()) {
    }
  }

  // The running task, or nullptr outside tasks.
  [[nodiscard]] task* current() const noexcept {
    return current_;
  }
  [[nodiscard]] std::size_t live_tasks() const noexcept {
    return live_;
  }
  [[nodiscard]] bool idle() const noexcept {
    return ready_.empty() && low_.empty();
  }
  // Process-wide stack measurement, for tests and for sizing coroutine_stack_size: while on,
  // schedulers created afterwards paint their stacks and check them when given back, and
  // stack_bytes_used_high_water() is the deepest use of any of their tasks since the last
  // reset. Any thread.
  static void measure_stacks_everywhere(bool on) noexcept {
    measure_everywhere().store(on, std::memory_order_relaxed);
  }
  [[nodiscard]] static std::size_t stack_bytes_used_high_water() noexcept {
    return high_water().load(std::memory_order_relaxed);
  }
  static void reset_stack_high_water() noexcept {
    high_water().store(0, std::memory_order_relaxed);
  }

  // Suspends the running task to the end of the ready queue. REQUIRES: in a task.
  void yield() {
    stop_if_unwinding();
    push_ready(*current_);
    suspend();
  }
  // Suspends the running task to the low-priority queue. REQUIRES: in a task.
  void yield_low_priority() {
    stop_if_unwinding();
    task& t = *current_;
    t.queued = true;
    low_.push_back(t);
    suspend();
  }
  // Suspends the running task until someone calls wake() on it. REQUIRES: in a task.
  void park() {
    stop_if_unwinding();
    suspend();
  }
  // Makes a parked task runnable. Waking a queued or running task does nothing.
  void wake(task& t) {
    if (!t.queued && &t != current_) {
      push_ready(t);
    }
  }

  // One round: every task ready at its start runs once, then low-priority tasks until their
  // queue is empty or the budget is spent. Returns whether runnable tasks remain.
  bool run_round() {
    for (std::size_t n = ready_.size(); n > 0 && !ready_.empty(); --n) {
      task& t = ready_.front();
      ready_.pop_front();
      t.queued = false;
      resume(t);
    }
    const auto deadline = std::chrono::steady_clock::now() + cfg_.low_priority_budget;
    for (std::size_t n = low_.size(); n > 0 && !low_.empty(); --n) {
      task& t = low_.front();
      low_.pop_front();
      t.queued = false;
      resume(t);
      if (std::chrono::steady_clock::now() >= deadline) {
        break;
      }
    }
    return !idle();
  }

 private:
  void push_ready(task& t) {
    t.queued = true;
    ready_.push_back(t);
  }

  struct unwind_signal {};

  static std::atomic<bool>& measure_everywhere() noexcept {
    static std::atomic<bool> on{false};
    return on;
  }
  static std::atomic<std::size_t>& high_water() noexcept {
    static std::atomic<std::size_t> bytes{0};
    return bytes;
  }

  // Stacks of one size, each above a guard page, pooled for reuse. One shard thread uses
  // it: no locking. The free list is reserved up front, so giving a stack back never
  // allocates. allocate() throws std::bad_alloc when the kernel has no memory for a stack.
  class guarded_stacks {
   public:
    guarded_stacks(std::size_t bytes, std::size_t pooled, bool measure)
        : page_(static_cast<std::size_t>(::sysconf(_SC_PAGESIZE))),
          bytes_((bytes + page_ - 1) / page_ * page_),
          pooled_(pooled),
          measure_(measure) {
      free_.reserve(pooled_);
    }
    guarded_stacks(const guarded_stacks&) = delete;
    guarded_stacks& operator=(const guarded_stacks&) = delete;
    ~guarded_stacks() {
      for (char* base : free_) {
        ::munmap(base, page_ + bytes_);
      }
    }

    boost::context::stack_context allocate() {
      char* base = nullptr;
      if (!free_.empty()) {
        base = free_.back();
        free_.pop_back();
      } else {
        void* m = ::mmap(nullptr, page_ + bytes_, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
          throw std::bad_alloc();
        }
        base = static_cast<char*>(m);
        if (::mprotect(base, page_, PROT_NONE) != 0) {
          ::munmap(base, page_ + bytes_);
          throw std::bad_alloc();
        }
      }
      if (measure_) {
        std::memset(base + page_, paint_byte, bytes_);
      }
      boost::context::stack_context sc;
      sc.size = bytes_;
      sc.sp = base + page_ + bytes_;  // stacks grow down from here to the guard page
      return sc;
    }

    void deallocate(boost::context::stack_context& sc) noexcept {
      char* base = static_cast<char*>(sc.sp) - bytes_ - page_;
      // AddressSanitizer keeps the poison of the task's frames in its shadow of these
      // addresses; cleared first (the measurement reads them), or the next stack (or another
      // mapping at the same address) would report stale redzones.
#ifdef ELOQSTORE_FIBER_ASAN
      __asan_unpoison_memory_region(base + page_, bytes_);
#endif
      if (measure_) {
        const char* low = base + page_;
        const char* touched = std::find_if(
            low, low + bytes_, [](char c) { return c != static_cast<char>(paint_byte); });
        const auto used = static_cast<std::size_t>(low + bytes_ - touched);
        std::size_t seen = high_water().load(std::memory_order_relaxed);
        while (seen < used &&
               !high_water().compare_exchange_weak(seen, used, std::memory_order_relaxed)) {
        }
      }
      if (free_.size() < pooled_) {
        free_.push_back(base);
      } else {
        ::munmap(base, page_ + bytes_);
      }
    }

   private:
    static constexpr unsigned char paint_byte = 0xa5;
    std::size_t page_;
    std::size_t bytes_;
    std::size_t pooled_;
    bool measure_;
    std::vector<char*> free_;
  };

  // Hands Boost.Context a stack of the pool and remembers its bounds in the task.
  struct recording_stack {
    guarded_stacks* pool;
    boost::context::stack_context* record;
    boost::context::stack_context allocate() {
      *record = pool->allocate();
      return *record;
    }
    void deallocate(boost::context::stack_context& sc) noexcept { pool->deallocate(sc); }
  };

  // Sanitizer bookkeeping around every switch between a task and the scheduler (no-ops in
  // other builds): announce the stack being switched to, then confirm arrival on it.
  void leaving(void** fake_stack) noexcept {
#ifdef ELOQSTORE_FIBER_ASAN
    __sanitizer_start_switch_fiber(fake_stack, scheduler_stack_bottom_, scheduler_stack_bytes_);
#else
    (void)fake_stack;
#endif
  }
  void arrived(void* fake_stack) noexcept {
#ifdef ELOQSTORE_FIBER_ASAN
    __sanitizer_finish_switch_fiber(fake_stack, &scheduler_stack_bottom_, &scheduler_stack_bytes_);
#else
    (void)fake_stack;
#endif
  }

  // While the scheduler is being destroyed a task may not suspend again (nor enter a
  // queue): it unwinds instead.
  void stop_if_unwinding() {
    if (unwinding_) {
      throw unwind_signal{};
    }
  }

  void suspend() {
    assert(!no_suspend::active() && "a task suspended inside a no_suspend scope");
    task& t = *current_;
    tsan_to_scheduler();
    leaving(&t.fake_stack);
    t.back = std::move(t.back).resume();
    arrived(t.fake_stack);
    stop_if_unwinding();
  }

  // ThreadSanitizer: switching contexts must be announced, or it sees one thread's stack
  // change under it. The scheduler's context is the thread's own.
  void tsan_to_scheduler() noexcept {
#ifdef ELOQSTORE_FIBER_TSAN
    __tsan_switch_to_fiber(tsan_scheduler_, 0);
#endif
  }

  void resume(task& t) {
    current_ = &t;
#ifdef ELOQSTORE_FIBER_TSAN
    tsan_scheduler_ = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(t.tsan_fiber, 0);
#endif
#ifdef ELOQSTORE_FIBER_ASAN
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, static_cast<char*>(t.stack.sp) - t.stack.size,
                                   t.stack.size);
    t.self = std::move(t.self).resume();
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    t.self = std::move(t.self).resume();
#endif
    current_ = nullptr;
    if (t.done) {
#ifdef ELOQSTORE_FIBER_TSAN
      __tsan_destroy_fiber(t.tsan_fiber);
#endif
      --live_;
      all_.erase(&t);
      delete &t;  // its fiber has returned: the stack goes back to the pool
    }
  }

  using task_list = boost::intrusive::list<task>;

  config cfg_;
  guarded_stacks stacks_;
  task_list ready_;
  task_list low_;
  std::unordered_set<task*> all_;  // every live task, for the destructor
  // (The sanitizer hooks use these only in sanitizer builds.)
  [[maybe_unused]] const void* scheduler_stack_bottom_ = nullptr;
  [[maybe_unused]] std::size_t scheduler_stack_bytes_ = 0;
  bool unwinding_ = false;
  [[maybe_unused]] void* tsan_scheduler_ = nullptr;
  task* current_ = nullptr;
  std::size_t live_ = 0;
};

// A FIFO of parked tasks (the reference's WaitingZone).
class waiting_zone {
 public:
  // Parks the running task until woken. REQUIRES: in a task of `s`.
  void wait(fiber_scheduler& s) {
    waiters_.push_back(s.current());
    s.park();
  }
  void wake_one(fiber_scheduler& s) {
    if (head_ < waiters_.size()) {
      s.wake(*waiters_[head_++]);
      compact();
    }
  }
  void wake_all(fiber_scheduler& s) {
    while (head_ < waiters_.size()) {
      s.wake(*waiters_[head_++]);
    }
    compact();
  }
  [[nodiscard]] bool empty() const noexcept { return head_ == waiters_.size(); }

 private:
  void compact() {
    if (head_ == waiters_.size()) {
      waiters_.clear();
      head_ = 0;
    }
  }
  std::vector<fiber_scheduler::task*> waiters_;
  std::size_t head_ = 0;
};

// A mutex between tasks of one scheduler; lock() may suspend, FIFO hand-over.
class fiber_mutex {
 public:
  // May suspend. REQUIRES: in a task of `s`.
  void lock(fiber_scheduler& s) {
    if (!locked_) {
      locked_ = true;
      return;
    }
    waiters_.wait(s);  // ownership is handed over by unlock()
  }
  void unlock(fiber_scheduler& s) {
    if (waiters_.empty()) {
      locked_ = false;
      return;
    }
    waiters_.wake_one(s);  // stays locked: the woken task now owns it
  }
  [[nodiscard]] bool locked() const noexcept { return locked_; }

 private:
  bool locked_ = false;
  waiting_zone waiters_;
};

static_assert(task_scheduler<fiber_scheduler>);
static_assert(scheduler<fiber_scheduler>);

}  // namespace eloqstore
