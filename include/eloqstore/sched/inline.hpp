// The run-to-completion scheduler: each request runs on its shard's thread from start to end
// without suspending. I/O blocks the shard thread. It is the simplest `scheduler`; the fiber
// scheduler (Boost.Context) replaces it where requests must overlap their I/O.
#pragma once

#include <utility>

#include <eloqstore/concepts.hpp>

namespace eloqstore {

struct inline_scheduler {
  static constexpr bool can_suspend = false;
  template <typename F>
  void run(F&& f) {
    std::forward<F>(f)();
  }
};

static_assert(scheduler<inline_scheduler>);

}  // namespace eloqstore
