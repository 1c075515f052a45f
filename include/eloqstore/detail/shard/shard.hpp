// A shard of the store: one thread that owns its partitions' state, and what that thread
// works with. shard<Traits> is the shard's data (request queue, writer lanes, partition
// registry, page I/O, scheduler, I/O ring); shard_context<Traits> is what every shard shares
// (options, backend, comparator, clock, term, counters). The layers built on them:
// registry.hpp (partitions: load, LRU, absent set, meta budget), handlers.hpp (requests),
// loop.hpp (the fiber and inline loops).
//
// Thread affinity: a shard's fields are touched by its own thread only, except the queue and
// its condition variables and notify hook (under `mu`, by submitters).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/commit/page_io.hpp>
#include <eloqstore/detail/commit/partition.hpp>
#include <eloqstore/detail/commit/version_builder.hpp>
#include <eloqstore/detail/util/metrics.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/options.hpp>
#include <eloqstore/request.hpp>
#include <eloqstore/table_ident.hpp>
#include <eloqstore/types.hpp>

namespace eloqstore::detail {

template <typename Traits>
class shard_context {
 public:
  using io_type = typename Traits::io_type;
  using comparator_type = typename Traits::comparator;
  using scheduler_type = typename Traits::scheduler_type;
  static constexpr bool fibers = scheduler_type::can_suspend;

  [[nodiscard]] static scheduler_type make_scheduler(const options& o) {
    if constexpr (requires { scheduler_type(Traits::scheduler_config(o)); }) {
      return scheduler_type(Traits::scheduler_config(o));
    } else {
      return scheduler_type();
    }
  }

  static constexpr bool has_ring = ring_io<io_type>;
  using ring_ptr = decltype([] {
    if constexpr (has_ring) {
      return std::unique_ptr<typename io_type::shard_ring>{};
    } else {
      return std::unique_ptr<int>{};
    }
  }());

  // The write requests of one partition waiting for its writer task (fiber shards).
  struct write_lane {
    std::deque<request*> queue;
  };

  struct shard {
    shard(io_type& io, const options& o, std::size_t cache_pages)
        : pages(io, Traits::page_size, o.pages_per_file_shift, cache_pages, !o.skip_verify_checksum,
                detail::shard_file_handles(o.fd_limit, o.num_threads),
                data_cache_enabled<Traits>() ? o.data_page_cache_size / Traits::page_size : 0),
          sched(make_scheduler(o)) {}
    std::thread thread;
    std::size_t index = 0;             // its place among the store's shards
    shard_metrics* metrics = nullptr;  // its statistics (shard_context::metrics_)
    std::mutex mu;
    std::condition_variable cv;
    std::condition_variable not_full;
    std::deque<request*> queue;
    std::vector<request*> group;  // the requests being executed (reused; inline shards)
    bool stopping = false;
    detail::page_access<io_type> pages;
    std::unordered_map<table_ident, std::unique_ptr<detail::partition_state>> partitions;
    std::list<table_ident> lru;  // most recently used first
    // Partitions reads found without a manifest, so that reads of them do not open the file
    // system each time: at most absent_max, the oldest forgotten first. Only this shard
    // creates them (a write goes through partition(), which forgets the entry).
    std::unordered_set<table_ident> absent;
    std::deque<table_ident> absent_order;
    std::size_t meta_bytes = 0;                  // root-meta bytes of the cached partitions
    detail::partition_state* touched = nullptr;  // the partition of the current request
    scheduler_type sched;
    // Fiber shards: wakes the shard thread blocked on its I/O ring (set under mu).
    void (*notify)(void*) = nullptr;
    void* notify_arg = nullptr;
    bool woken = false;                                 // a completion port posted (under mu)
    std::unordered_map<table_ident, write_lane> lanes;  // partitions with a writer task
    // Cloud mode, fiber shards: partitions with a background upload task (shard thread).
    std::unordered_set<table_ident> uploading;
    std::deque<request*> backlog;  // dequeued requests waiting for a free task slot
    ring_ptr ring;                 // this shard thread's I/O ring, if the backend has rings
    std::chrono::steady_clock::time_point writer_yielded{};  // a writer last stepped aside
    // Cloud prewarm: the files this shard still brings into the cache (under mu), whether
    // its list is being worked on (under mu), its prewarm tasks running (shard thread), and
    // what ended it early (shard thread).
    std::deque<std::pair<table_ident, std::string>> prewarm;
    bool prewarm_active = false;
    std::size_t prewarm_tasks = 0;
    error prewarm_reason = error::ok;
  };
  static constexpr std::size_t absent_max = 4096;
  // How long a writer building pages keeps the shard thread before it lets waiting reads run.
  static constexpr std::chrono::microseconds writer_slice{100};

  explicit shard_context(options opts) : opts_(std::move(opts)) {}

  [[nodiscard]] std::uint64_t now_ms() const {
    if (clock_) {
      return clock_();
    }
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
  }

  // Archive timestamps: the wall clock in microseconds (the store's clock, when set, in
  // milliseconds times 1000).
  [[nodiscard]] std::uint64_t now_us() const {
    if (clock_) {
      return clock_() * 1000;
    }
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
  }

  [[nodiscard]] detail::writer_config writer_cfg() const {
    detail::writer_config c;
    c.page_size = Traits::page_size;
    c.data_restart_interval = opts_.data_page_restart_interval;
    c.index_restart_interval = opts_.index_page_restart_interval;
    c.overflow_pointers = opts_.overflow_pointers;
    c.manifest_limit = opts_.manifest_limit;
    c.term = term_;
    c.compress = opts_.enable_compression;
    return c;
  }

  // Reports a failure of background work on partition t (`what` failed with e) through the
  // log callback, and counts it (counter::background_errors) on the calling shard.
  // Never throws: without the memory for the message, the failure is counted and not logged.
  void report(log_level level, const table_ident& t, std::string_view what,
              error e) const noexcept {
    if (e == error::ok) {
      return;
    }
    try {
      std::string line = t.to_string();
      line.append(": ").append(what).append(": ").append(error_message(e));
      log_.background_error(level, line);
    } catch (const std::bad_alloc&) {
      metric_add(counter::background_errors);
    }
  }

  // Running out of memory fails the request that ran out (error::out_of_mem), not the
  // store: a writer that unwinds gives back what it took, and nothing of it was published.
  // (After its manifest record is durable a writer allocates nothing it cannot do without.)
  template <typename F>
  static error out_of_mem_guard(F&& f) {
    try {
      return f();
    } catch (const std::bad_alloc&) {
      return error::out_of_mem;
    }
  }

  options opts_;
  io_type* io_ = nullptr;
  comparator_type cmp_{};
  std::function<std::uint64_t()> clock_;
  std::uint64_t term_ = 0;
  std::size_t shards_count_ = 1;
  mutable std::mutex stats_mu_;
  writer_stats last_stats_;  // the last write's, under stats_mu_
  // Every shard's statistics (metrics.hpp), kept across stop() and start(): grown by start()
  // under metrics_mu_, never shrunk; a shard points at its own.
  mutable std::mutex metrics_mu_;
  std::vector<std::unique_ptr<shard_metrics>> metrics_;
  logger log_;  // the user's log callback

  // Cloud prewarm, shared by the lister thread (store.hpp) and the shards (loop.hpp).
  mutable std::mutex prewarm_mu_;
  prewarm_progress prewarm_;        // under prewarm_mu_
  std::size_t prewarm_shards_ = 0;  // shards whose list is not finished, under prewarm_mu_

  // Counts one prewarmed file: e is prewarm()'s answer for it.
  void prewarm_counted(error e) {
    std::lock_guard lock(prewarm_mu_);
    if (e == error::ok) {
      ++prewarm_.pulled;
    } else if (e == error::not_found) {
      ++prewarm_.skipped;
    }
  }
  // A shard finished its list (`why`: ok, or what ended it early).
  void prewarm_shard_done(error why) {
    std::lock_guard lock(prewarm_mu_);
    if (why != error::ok && prewarm_.reason == error::ok) {
      prewarm_.reason = why;
    }
    if (prewarm_shards_ > 0 && --prewarm_shards_ == 0) {
      prewarm_.done = true;
    }
  }
};

}  // namespace eloqstore::detail
