// The one EINTR rule for blocking system calls: a call interrupted by a signal before it did
// anything is made again, at most eintr_retries_max times in a row (then the caller sees
// EINTR, which error_from_errno maps to error::try_again). io_uring completions that report
// -EINTR or -EAGAIN are resubmitted by uring_io itself, with its own bound.
#pragma once

#include <cerrno>

namespace eloqstore::detail {

inline constexpr int eintr_retries_max = 64;

// Calls f until it returns something other than -1 with errno EINTR, at most
// eintr_retries_max + 1 times; returns its last result (errno intact).
template <typename F>
auto retry_eintr(F&& f) -> decltype(f()) {
  auto rc = f();
  for (int attempt = 0; attempt < eintr_retries_max && rc == -1 && errno == EINTR; ++attempt) {
    rc = f();
  }
  return rc;
}

}  // namespace eloqstore::detail
