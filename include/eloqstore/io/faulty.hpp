// faulty_io<Inner>: an io_backend that wraps another and injects seeded faults, for tests.
//
// Faults are set with set_faults() and drawn from one std::mt19937_64 seeded at construction.
// The draws are computed from its raw output (not from the library's distributions), so one
// seed and one sequence of calls give the same faults with every standard library:
// * read_error: read, read_file and read_pages fail with error::io_fail, reading nothing;
// * write_error: write, write_file_atomic, write_pages and begin_write_pages fail with
//   write_error_code, writing nothing;
// * sync_error: sync and sync_dir fail with error::io_fail, syncing nothing;
// * short_write: write writes a random proper prefix of its data, then returns try_again;
// * torn_write: write writes a random proper prefix of its data, then returns io_fail.
// A batch of page writes (write_pages, begin_write_pages) takes short and torn writes by
// whole pages: a random proper prefix of the batch is written. begin_write_pages reports
// them, as a device reports a failed write, only when the batch is finished
// (finish_write_pages); its write_error is reported at once, with nothing started.
// A roll with a probability of 0 or 1 draws nothing (a short or torn write still draws its
// prefix). Faults are tried in the order listed.
//
// Optional parts of Inner are forwarded when it has them: batched page writes and reads
// (batched_io, batched_reads), asynchronous page writes (async_page_writes), and a shard
// thread's I/O ring (attach(), uring_io), so faults reach the default traits' I/O paths too.
//
// Crashes: a mutation is a call of write, write_pages, begin_write_pages, sync, sync_dir,
// write_file_atomic or remove. The first crash_after_mutations mutations go ahead (faults
// aside); the next one crashes the backend: it and every later call (reads, lists and open
// too) fail with error::io_fail without reaching Inner, until recover(); only close() still
// reaches Inner, and finish_write_pages(), which waits for the writes of its batch (their
// buffers must outlive them) and then fails. recover() calls
// inner().crash() when Inner has one (memory_io then drops what was not durable), zeroes the
// mutation count and clears the crash. Without crash() (files on a real disk) what reached
// the files stays, as after a process crash. The fault settings stay as they are;
// set_faults({}) turns them off. REQUIRES for recover(): no call in flight.
//
// Thread safety: one mutex serialises the fault decisions (the draws, the mutation count and
// the crash), so faults are reproducible for a reproducible order of calls. Inner is called
// outside it, because a call on a ring may suspend the calling task while other tasks of
// the thread go on: a call admitted before the crash may reach Inner after it, as a write
// already issued reaches the device after the crashing one was refused. inner() bypasses
// the faults.
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
#include <eloqstore/sched/hooks.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore {

namespace detail {

// The types faulty_io takes from Inner's optional parts: a shard ring, and a write ticket
// that also carries the fault injected into its batch.
template <typename Inner>
struct faulty_ring_types {};
template <ring_io Inner>
struct faulty_ring_types<Inner> {
  using shard_ring = typename Inner::shard_ring;
};

template <typename Inner>
struct faulty_ticket_types {};
template <async_page_writes Inner>
struct faulty_ticket_types<Inner> {
  struct write_ticket {
    typename Inner::write_ticket inner;
    error injected = error::ok;  // reported by finish_write_pages after the writes end
  };
};

}  // namespace detail

template <io_backend Inner>
class faulty_io : public detail::faulty_ring_types<Inner>,
                  public detail::faulty_ticket_types<Inner> {
 public:
  static constexpr bool uses_store_paths = local_files_io<Inner>;  // as Inner's files
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
  // Batches begun with a short or torn write, reported when finished (begin_write_pages).
  [[nodiscard]] std::uint64_t deferred_faults() const {
    const std::lock_guard lock(mutex_);
    return deferred_faults_;
  }
  [[nodiscard]] Inner& inner() noexcept { return inner_; }

  // ---- io_backend --------------------------------------------------------------------------

  // Forwards to Inner's read-only mode where it has one.
  void set_read_only(bool on) noexcept requires requires(Inner& i) { i.set_read_only(true); }
  { inner_.set_read_only(on); }

  [[nodiscard]] error open() {
    if (crashed()) {
      return error::io_fail;
    }
    return inner_.open();
  }
  // Always reaches Inner, so descriptors are released even after a crash.
  void close() { inner_.close(); }

  [[nodiscard]] error read(const table_ident& t, std::string_view name, std::uint64_t offset,
                           std::span<char> buf) {
    if (read_fault()) {
      return error::io_fail;
    }
    return inner_.read(t, name, offset, buf);
  }

  [[nodiscard]] error write(const table_ident& t, std::string_view name, std::uint64_t offset,
                            std::span<const char> data) {
    return write_planned(data.size(), [&](std::size_t prefix) {
      return inner_.write(t, name, offset, data.first(prefix));
    });
  }

  [[nodiscard]] error sync(const table_ident& t, std::string_view name) {
    if (const error e = sync_fault(); e != error::ok) {
      return e;
    }
    return inner_.sync(t, name);
  }

  [[nodiscard]] error sync_dir(const table_ident& t) {
    if (const error e = sync_fault(); e != error::ok) {
      return e;
    }
    return inner_.sync_dir(t);
  }

  [[nodiscard]] error read_file(const table_ident& t, std::string_view name, std::string& out) {
    if (read_fault()) {
      return error::io_fail;
    }
    return inner_.read_file(t, name, out);
  }

  [[nodiscard]] error write_file_atomic(const table_ident& t, std::string_view name,
                                        std::span<const char> data) {
    {
      const std::lock_guard lock(mutex_);
      if (const error e = write_fault(); e != error::ok) {
        return e;
      }
    }
    return inner_.write_file_atomic(t, name, data);
  }

  [[nodiscard]] error remove(const table_ident& t, std::string_view name) {
    {
      const std::lock_guard lock(mutex_);
      if (!admit_mutation()) {
        return error::io_fail;
      }
    }
    return inner_.remove(t, name);
  }

  [[nodiscard]] error list(const table_ident& t, std::vector<std::string>& names) {
    if (crashed()) {
      return error::io_fail;
    }
    return inner_.list(t, names);
  }

  [[nodiscard]] error list_partitions(std::vector<table_ident>& tables) {
    if (crashed()) {
      return error::io_fail;
    }
    return inner_.list_partitions(tables);
  }

  // ---- Inner's optional parts --------------------------------------------------------------

  // The calling shard thread's ring (see uring_io::attach); its I/O still passes the faults.
  [[nodiscard]] auto attach(suspend_hooks hooks) requires ring_io<Inner> {
    return inner_.attach(hooks);
  }

  [[nodiscard]] error read_pages(const table_ident& t,
                                 std::span<const page_read> reads) requires batched_reads<Inner> {
    if (read_fault()) {
      return error::io_fail;
    }
    return inner_.read_pages(t, reads);
  }

  // A short or torn batch writes a proper prefix of its pages.
  [[nodiscard]] error write_pages(const table_ident& t,
                                  std::span<const page_write> writes) requires batched_io<Inner> {
    return write_planned(writes.size(), [&](std::size_t prefix) {
      return inner_.write_pages(t, writes.first(prefix));
    });
  }

  // write_error refuses the batch at once; a short or torn batch starts a proper prefix of
  // its pages and reports the fault from finish_write_pages.
  template <typename Ticket>
  [[nodiscard]] error begin_write_pages(const table_ident& t, std::span<const page_write> writes,
                                        Ticket& out) requires async_page_writes<Inner> {
    const write_plan plan = plan_write(writes.size());
    if (plan.refused != error::ok) {
      return plan.refused;
    }
    if (const error e = inner_.begin_write_pages(t, writes.first(plan.prefix), out.inner);
        e != error::ok) {
      return e;  // nothing started: nothing to report later
    }
    out.injected = plan.injected;
    if (plan.injected != error::ok) {
      const std::lock_guard lock(mutex_);
      ++deferred_faults_;
    }
    return error::ok;
  }

  template <typename Ticket>
  [[nodiscard]] error finish_write_pages(Ticket& ticket) requires async_page_writes<Inner> {
    const error injected = std::exchange(ticket.injected, error::ok);
    if (const error e = inner_.finish_write_pages(ticket.inner); e != error::ok) {
      return e;
    }
    return crashed() ? error::io_fail : injected;
  }

 private:
  // What a write-type call does: refuse (crashed, or write_error), or write the first
  // `prefix` units (bytes or pages) and then report `injected` (a short or torn write).
  struct write_plan {
    error refused = error::ok;
    std::size_t prefix = 0;
    error injected = error::ok;
  };
  // Carries out a write-type call: `write_prefix(n)` writes the first n units.
  template <typename WritePrefix>
  [[nodiscard]] error write_planned(std::size_t units, WritePrefix&& write_prefix) {
    const write_plan plan = plan_write(units);
    if (plan.refused != error::ok) {
      return plan.refused;
    }
    const error e = write_prefix(plan.prefix);
    return e != error::ok ? e : plan.injected;
  }
  [[nodiscard]] write_plan plan_write(std::size_t units) {
    const std::lock_guard lock(mutex_);
    write_plan plan;
    plan.refused = write_fault();
    if (plan.refused != error::ok) {
      return plan;
    }
    plan.prefix = units;
    if (roll(faults_.short_write)) {
      plan.injected = error::try_again;
    } else if (roll(faults_.torn_write)) {
      plan.injected = error::io_fail;
    }
    if (plan.injected != error::ok) {
      plan.prefix = units == 0 ? 0 : rng_() % units;  // a random proper prefix
    }
    return plan;
  }

  // A read-type call fails: the backend crashed, or read_error was drawn.
  [[nodiscard]] bool read_fault() {
    const std::lock_guard lock(mutex_);
    return crashed_ || roll(faults_.read_error);
  }

  [[nodiscard]] error sync_fault() {
    const std::lock_guard lock(mutex_);
    if (!admit_mutation()) {
      return error::io_fail;
    }
    return roll(faults_.sync_error) ? error::io_fail : error::ok;
  }

  // A write-type call: counts as a mutation (may crash) and may fail with the configured
  // write error. REQUIRES: mutex_ held.
  [[nodiscard]] error write_fault() {
    if (!admit_mutation()) {
      return error::io_fail;
    }
    return roll(faults_.write_error) ? faults_.write_error_code : error::ok;
  }

  // Counts a mutation, or crashes when crash_after_mutations have gone ahead already; false
  // when the backend is (now) crashed. REQUIRES: mutex_ held.
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

  Inner inner_;
  mutable std::mutex mutex_;  // guards everything below
  std::mt19937_64 rng_;
  faults faults_;
  std::uint64_t mutations_ = 0;
  std::uint64_t deferred_faults_ = 0;
  bool crashed_ = false;
};

static_assert(io_backend<faulty_io<memory_io>>);

}  // namespace eloqstore
