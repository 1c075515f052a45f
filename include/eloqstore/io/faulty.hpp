// faulty_io<Inner>: an io_backend that wraps another and injects seeded faults, for tests.
//
// Faults are set with set_faults() and drawn from one std::mt19937_64 seeded at construction.
// The draws are computed from its raw output (not from the library's distributions), so one
// seed and one sequence of calls give the same faults with every standard library:
// * read_error: read and read_file fail with error::io_fail, reading nothing;
// * write_error: write and write_file_atomic fail with write_error_code, writing nothing;
// * sync_error: sync and sync_dir fail with error::io_fail, syncing nothing;
// * short_write: write writes a random proper prefix of its data, then returns try_again;
// * torn_write: write writes a random proper prefix of its data, then returns io_fail.
// A probability of 0 or 1 draws nothing. Faults are tried in the order listed.
//
// Crashes: a mutation is a call of write, sync, sync_dir, write_file_atomic or remove. The
// first crash_after_mutations mutations go ahead (faults aside); the next one crashes the
// backend: it and every later call (reads, lists and open too) fail with error::io_fail
// without reaching Inner, until recover(). recover() calls inner().crash() when Inner has one
// (memory_io then drops what was not durable), zeroes the mutation count and clears the
// crash. The fault settings stay as they are; set_faults({}) turns them off.
//
// Thread safety: one mutex serialises every call, Inner's included, so that "every later call
// fails" holds across threads; faults are reproducible for a reproducible order of calls.
// inner() bypasses both the faults and the mutex.
// Invariant: mutations() <= faults.crash_after_mutations; crashed() implies equality.
#pragma once

#include <cstdint>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <eloqstore/concepts.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/io/memory.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore {

template <io_backend Inner>
class faulty_io {
 public:
  // Probabilities are per call, in [0, 1].
  struct faults {
    double read_error = 0;
    double write_error = 0;
    double sync_error = 0;
    error write_error_code = error::io_fail;
    double short_write = 0;
    double torn_write = 0;
    std::uint64_t crash_after_mutations = UINT64_MAX;
  };

  // Seeds the fault generator and constructs Inner from args.
  template <typename... A>
  explicit faulty_io(std::uint64_t seed, A&&... args)
      : inner_(std::forward<A>(args)...), rng_(seed) {}
  faulty_io(const faulty_io&) = delete;
  faulty_io& operator=(const faulty_io&) = delete;

  void set_faults(const faults& f) {
    const std::lock_guard lock(mutex_);
    faults_ = f;
  }

  // Undoes a crash (see the header comment); harmless when not crashed.
  void recover() {
    const std::lock_guard lock(mutex_);
    if constexpr (requires(Inner & i) { i.crash(); }) {
      inner_.crash();
    }
    mutations_ = 0;
    crashed_ = false;
  }

  [[nodiscard]] std::uint64_t mutations() const {
    const std::lock_guard lock(mutex_);
    return mutations_;
  }
  [[nodiscard]] bool crashed() const {
    const std::lock_guard lock(mutex_);
    return crashed_;
  }
  [[nodiscard]] Inner& inner() noexcept { return inner_; }

  // ---- io_backend --------------------------------------------------------------------------

  [[nodiscard]] error open() {
    const std::lock_guard lock(mutex_);
    return crashed_ ? error::io_fail : inner_.open();
  }
  // Always reaches Inner, so descriptors are released even after a crash.
  void close() {
    const std::lock_guard lock(mutex_);
    inner_.close();
  }

  [[nodiscard]] error read(const table_ident& t, std::string_view name, std::uint64_t offset,
                           std::span<char> buf) {
    const std::lock_guard lock(mutex_);
    if (crashed_ || roll(faults_.read_error)) {
      return error::io_fail;
    }
    return inner_.read(t, name, offset, buf);
  }

  [[nodiscard]] error write(const table_ident& t, std::string_view name, std::uint64_t offset,
                            std::span<const char> data) {
    const std::lock_guard lock(mutex_);
    if (const error e = write_fault(); e != error::ok) {
      return e;
    }
    if (roll(faults_.short_write)) {
      return write_prefix(t, name, offset, data, error::try_again);
    }
    if (roll(faults_.torn_write)) {
      return write_prefix(t, name, offset, data, error::io_fail);
    }
    return inner_.write(t, name, offset, data);
  }

  [[nodiscard]] error sync(const table_ident& t, std::string_view name) {
    const std::lock_guard lock(mutex_);
    if (!admit_mutation()) {
      return error::io_fail;
    }
    return roll(faults_.sync_error) ? error::io_fail : inner_.sync(t, name);
  }

  [[nodiscard]] error sync_dir(const table_ident& t) {
    const std::lock_guard lock(mutex_);
    if (!admit_mutation()) {
      return error::io_fail;
    }
    return roll(faults_.sync_error) ? error::io_fail : inner_.sync_dir(t);
  }

  [[nodiscard]] error read_file(const table_ident& t, std::string_view name, std::string& out) {
    const std::lock_guard lock(mutex_);
    if (crashed_ || roll(faults_.read_error)) {
      return error::io_fail;
    }
    return inner_.read_file(t, name, out);
  }

  [[nodiscard]] error write_file_atomic(const table_ident& t, std::string_view name,
                                        std::span<const char> data) {
    const std::lock_guard lock(mutex_);
    if (const error e = write_fault(); e != error::ok) {
      return e;
    }
    return inner_.write_file_atomic(t, name, data);
  }

  [[nodiscard]] error remove(const table_ident& t, std::string_view name) {
    const std::lock_guard lock(mutex_);
    if (!admit_mutation()) {
      return error::io_fail;
    }
    return inner_.remove(t, name);
  }

  [[nodiscard]] error list(const table_ident& t, std::vector<std::string>& names) {
    const std::lock_guard lock(mutex_);
    return crashed_ ? error::io_fail : inner_.list(t, names);
  }

  [[nodiscard]] error list_partitions(std::vector<table_ident>& tables) {
    const std::lock_guard lock(mutex_);
    return crashed_ ? error::io_fail : inner_.list_partitions(tables);
  }

 private:
  // Counts a mutation, or crashes when crash_after_mutations have gone ahead already; false
  // when the backend is (now) crashed. REQUIRES: mutex_ held.
  // A write-type call: counts as a mutation (may crash) and may fail with the configured
  // write error. REQUIRES: mutex_ held.
  [[nodiscard]] error write_fault() {
    if (!admit_mutation()) {
      return error::io_fail;
    }
    return roll(faults_.write_error) ? faults_.write_error_code : error::ok;
  }

  [[nodiscard]] bool admit_mutation() {
    if (!crashed_ && mutations_ >= faults_.crash_after_mutations) {
      crashed_ = true;
    }
    if (crashed_) {
      return false;
    }
    ++mutations_;
    return true;
  }

  // True with probability p. REQUIRES: mutex_ held.
  [[nodiscard]] bool roll(double p) {
    if (p <= 0) {
      return false;
    }
    if (p >= 1) {
      return true;
    }
    // The top 53 bits of one draw, as a double uniform in [0, 1).
    return static_cast<double>(rng_() >> 11) * 0x1.0p-53 < p;
  }

  // Writes a random proper prefix of data (empty when data is), then reports `injected`
  // unless the inner write itself failed. REQUIRES: mutex_ held.
  [[nodiscard]] error write_prefix(const table_ident& t, std::string_view name,
                                   std::uint64_t offset, std::span<const char> data,
                                   error injected) {
    const std::uint64_t prefix_size = data.empty() ? 0 : rng_() % data.size();
    const error e = inner_.write(t, name, offset, data.first(prefix_size));
    return e != error::ok ? e : injected;
  }

  Inner inner_;
  mutable std::mutex mutex_;  // guards everything below, and serialises calls into inner_
  std::mt19937_64 rng_;
  faults faults_;
  std::uint64_t mutations_ = 0;
  bool crashed_ = false;
};

static_assert(io_backend<faulty_io<memory_io>>);

}  // namespace eloqstore
