// suspend_hooks: how an I/O backend parks the running task of a suspending scheduler until
// its I/O completes, without depending on the scheduler's type.
//
// A backend that can suspend (uring_io) receives the hooks of its shard's scheduler when the
// shard attaches to it. `current(sched)` is the running task or nullptr outside tasks (then
// the backend waits for its I/O on the thread); `park(sched)` suspends the running task;
// `wake(sched, task)` makes a parked task runnable. All three are called on the shard thread.
//
// no_suspend: a scope in which the running task must not suspend (the rule in concepts.hpp).
// Scopes nest, per thread; a suspending scheduler asserts that none is open when a task parks.
#pragma once

namespace eloqstore {

class no_suspend {
 public:
  no_suspend() noexcept { ++depth(); }
  ~no_suspend() { --depth(); }
  no_suspend(const no_suspend&) = delete;
  no_suspend& operator=(const no_suspend&) = delete;

  [[nodiscard]] static bool active() noexcept { return depth() != 0; }

 private:
  static int& depth() noexcept {
    static thread_local int open = 0;
    return open;
  }
};

struct suspend_hooks {
  void* sched = nullptr;
  void* (*current)(void* sched) = nullptr;
  void (*park)(void* sched) = nullptr;
  void (*wake)(void* sched, void* task) = nullptr;

  [[nodiscard]] void* running_task() const { return current == nullptr ? nullptr : current(sched); }
};

// The hooks of a scheduler with current(), park() and wake(task&) (fiber_scheduler); for a
// scheduler that cannot suspend, hooks that never park.
template <typename S>
[[nodiscard]] suspend_hooks make_suspend_hooks(S& s) {
  if constexpr (S::can_suspend) {
    suspend_hooks h;
    h.sched = &s;
    h.current = [](void* p) -> void* { return static_cast<S*>(p)->current(); };
    h.park = [](void* p) { static_cast<S*>(p)->park(); };
    h.wake = [](void* p, void* t) { static_cast<S*>(p)->wake(*static_cast<typename S::task*>(t)); };
    return h;
  } else {
    (void)s;
    return suspend_hooks{};
  }
}

}  // namespace eloqstore
