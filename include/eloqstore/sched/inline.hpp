// The run-to-completion scheduler: each request runs on its shard's thread from start to end
// without suspending. I/O blocks the shard thread. It is the simplest `scheduler`; the fiber
// scheduler (Boost.Context) replaces it where requests must overlap their I/O.
#pragma once

#include <concepts>
#include <utility>

namespace eloqstore {

// scheduler: runs a shard's tasks. Contract: run(f) executes f on the calling (shard) thread;
// `can_suspend` tells whether tasks may park on I/O (then a task may interleave with others
// of the same shard at its suspension points, and must re-check invariants after each).
template <typename S>
concept scheduler = requires(S& s) {
  { S::can_suspend } -> std::convertible_to<bool>;
  s.run([] {});
};

struct inline_scheduler {
  static constexpr bool can_suspend = false;
  template <typename F>
  void run(F&& f) {
    std::forward<F>(f)();
  }
};

static_assert(scheduler<inline_scheduler>);

}  // namespace eloqstore
