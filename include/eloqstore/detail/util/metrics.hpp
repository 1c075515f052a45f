// The live statistics of a shard (stats.hpp has their snapshot) and the logger of a store.
//
// A shard's counters are written by its thread only and read by any thread: each is an
// atomic updated with a relaxed load and store (one writer, so no read-modify-write) and read
// relaxed. The code that counts does not need to know its shard: the shard thread installs
// its metrics as the thread's current ones (metrics_scope), and metric_add() adds to them, or
// does nothing on a thread that is not a shard's (a client thread in a test, a background
// thread of the store).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include <eloqstore/error.hpp>
#include <eloqstore/request.hpp>
#include <eloqstore/stats.hpp>

namespace eloqstore::detail {

class shard_metrics {
 public:
  void add(counter c, std::uint64_t n = 1) noexcept { bump(counters_[index(c)], n); }
  void completed(request_type t, bool failed, std::uint64_t latency_us) noexcept {
    live_request& r = requests_[static_cast<std::size_t>(t)];
    bump(r.count, 1);
    bump(r.errors, failed ? 1 : 0);
    r.latency.record(latency_us);
  }
  void group(std::size_t requests) noexcept {
    add(counter::write_groups);
    groups_.record(requests);
  }

  [[nodiscard]] shard_stats snapshot() const noexcept {
    shard_stats s;
    for (std::size_t i = 0; i < counter_count; ++i) {
      s.counters[i] = counters_[i].load(std::memory_order_relaxed);
    }
    for (std::size_t t = 0; t < request_type_count; ++t) {
      s.requests[t].count = requests_[t].count.load(std::memory_order_relaxed);
      s.requests[t].errors = requests_[t].errors.load(std::memory_order_relaxed);
      s.requests[t].latency_us = requests_[t].latency.snapshot();
    }
    s.group_sizes = groups_.snapshot();
    return s;
  }

 private:
  using cell = std::atomic<std::uint64_t>;
  static void bump(cell& c, std::uint64_t n) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  static constexpr std::size_t index(counter c) noexcept { return static_cast<std::size_t>(c); }

  struct live_histogram {
    std::array<cell, histogram::bucket_count> buckets{};
    cell count{0};
    cell sum{0};
    cell max{0};
    void record(std::uint64_t v) noexcept {
      bump(buckets[histogram::bucket_of(v)], 1);
      bump(count, 1);
      bump(sum, v);
      if (v > max.load(std::memory_order_relaxed)) {
        max.store(v, std::memory_order_relaxed);
      }
    }
    [[nodiscard]] histogram snapshot() const noexcept {
      histogram h;
      for (std::size_t i = 0; i < histogram::bucket_count; ++i) {
        h.buckets[i] = buckets[i].load(std::memory_order_relaxed);
      }
      // (The count is the buckets' sum, not `count`: a snapshot taken between a bucket's bump
      // and count's must still have its +Inf bucket equal to the sum of the others.)
      for (const std::uint64_t b : h.buckets) {
        h.count += b;
      }
      h.sum = sum.load(std::memory_order_relaxed);
      h.max = max.load(std::memory_order_relaxed);
      return h;
    }
  };
  struct live_request {
    cell count{0};
    cell errors{0};
    live_histogram latency;
  };

  std::array<cell, counter_count> counters_{};
  std::array<live_request, request_type_count> requests_{};
  live_histogram groups_;
};

// The calling thread's shard metrics, or null.
[[nodiscard]] inline shard_metrics*& current_metrics() noexcept {
  static thread_local shard_metrics* m = nullptr;
  return m;
}

// Adds n to counter c of the calling shard thread (nothing on other threads).
inline void metric_add(counter c, std::uint64_t n = 1) noexcept {
  if (shard_metrics* m = current_metrics()) {
    m->add(c, n);
  }
}

// Makes m the calling thread's metrics while it lives.
class metrics_scope {
 public:
  explicit metrics_scope(shard_metrics* m) noexcept
      : previous_(std::exchange(current_metrics(), m)) {}
  metrics_scope(const metrics_scope&) = delete;
  metrics_scope& operator=(const metrics_scope&) = delete;
  ~metrics_scope() { current_metrics() = previous_; }

 private:
  shard_metrics* previous_;
};

// Completes a request on its shard thread: counts it (type, error, latency since submission,
// the bytes it read or wrote) and marks it done. The request may be gone once this returns.
inline void complete_request(request& req, error e) {
  if (shard_metrics* m = current_metrics()) {
    const auto waited = std::chrono::steady_clock::now() - request_access::submitted(req);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(waited).count();
    const request_type t = req.type();
    m->completed(t, e != error::ok && e != error::not_found,
                 static_cast<std::uint64_t>(us < 0 ? 0 : us));
    std::uint64_t bytes = 0;
    if (e == error::ok) {
      if (t == request_type::read) {
        const kv_entry& kv = request_cast<read_request>(req).entry();
        bytes = kv.key.size() + kv.value.size();
      } else if (t == request_type::floor) {
        const kv_entry& kv = request_cast<floor_request>(req).entry();
        bytes = kv.key.size() + kv.value.size();
      } else if (t == request_type::scan) {
        for (const kv_entry& kv : request_cast<scan_request>(req).entries()) {
          bytes += kv.key.size() + kv.value.size();
        }
      } else if (t == request_type::batch_write) {
        for (const write_entry& w : request_cast<batch_write_request>(req).entries()) {
          bytes += w.key.size() + w.value.size();
        }
      }
    }
    if (bytes != 0) {
      m->add(t == request_type::batch_write ? counter::bytes_written : counter::bytes_read, bytes);
    }
  }
  request_access::set_done(req, e);
}

// The store's logger: the user's callback and the least level it receives. Without a
// callback, warnings and errors go to stderr. The callback runs outside the logger's lock (a
// slow one delays only the thread that logs), on a copy that a concurrent set() cannot free.
// Logging never throws: a message that cannot be built or a callback that throws is dropped.
class logger {
 public:
  void set(log_level least, log_callback cb) {
    auto shared = cb ? std::make_shared<const log_callback>(std::move(cb)) : nullptr;
    std::lock_guard lock(mu_);
    least_ = least;
    cb_ = std::move(shared);
  }
  void log(log_level level, std::string_view message) const noexcept {
    std::shared_ptr<const log_callback> cb;
    {
      std::lock_guard lock(mu_);
      if (level < least_) {
        return;
      }
      cb = cb_;
    }
    if (!cb) {
      std::fprintf(stderr, "eloqstore %.*s: %.*s\n", static_cast<int>(log_level_name(level).size()),
                   log_level_name(level).data(), static_cast<int>(message.size()), message.data());
      return;
    }
    try {
      (*cb)(level, message);
    } catch (...) {  // (the callback's contract forbids throwing; a shard must not die of it)
    }
  }
  // A failure of background work: counted (counter::background_errors) on the calling shard
  // thread, if it is one, when at level warning or above, and logged.
  void background_error(log_level level, std::string_view message) const noexcept {
    if (level >= log_level::warning) {
      metric_add(counter::background_errors);
    }
    log(level, message);
  }

 private:
  mutable std::mutex mu_;
  log_level least_ = log_level::warning;
  std::shared_ptr<const log_callback> cb_;
};

}  // namespace eloqstore::detail
