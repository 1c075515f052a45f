// metered_store: an object_store that forwards to another and counts what is asked of it,
// per shard (object_requests, object/object_store.hpp): how cloud_io reports the requests,
// bytes, retries and failures of each shard, which is what cloud users pay for. Retries are
// counted for stores that tell how many their last call on the calling thread made
// (Store::retries_of_last_call(), s3_store); others make none.
//
// Requests go through a view of one slot: cloud_io counts a partition's requests for the
// partition's shard (partition % shards, the store's), and those that concern no partition
// (listings of the whole bucket: partitions, prewarm) in one more slot, other().
//
// Thread safety: counts are relaxed atomics, added from any thread; reset() only while no
// request runs.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <eloqstore/object/object_store.hpp>

namespace eloqstore::detail {

template <object_store Store>
class metered_store {
  struct counters {
    std::atomic<std::uint64_t> gets{0}, puts{0}, removes{0}, lists{0};
    std::atomic<std::uint64_t> bytes_down{0}, bytes_up{0}, failures{0}, retries{0};
    [[nodiscard]] object_requests load() const {
      object_requests r;
      r.gets = gets.load(std::memory_order_relaxed);
      r.puts = puts.load(std::memory_order_relaxed);
      r.removes = removes.load(std::memory_order_relaxed);
      r.lists = lists.load(std::memory_order_relaxed);
      r.bytes_down = bytes_down.load(std::memory_order_relaxed);
      r.bytes_up = bytes_up.load(std::memory_order_relaxed);
      r.failures = failures.load(std::memory_order_relaxed);
      r.retries = retries.load(std::memory_order_relaxed);
      return r;
    }
  };

 public:
  explicit metered_store(Store& store) : store_(&store) { reset(1); }

  // Counters for `shards` shards and the other threads, all zero.
  void reset(std::size_t shards) {
    slots_ = shards == 0 ? 1 : shards;
    counts_ = std::make_unique<counters[]>(slots_ + 1);
  }

  [[nodiscard]] std::size_t shards() const noexcept { return slots_; }
  [[nodiscard]] object_requests of_shard(std::size_t i) const { return counts_[i].load(); }
  [[nodiscard]] object_requests other() const { return counts_[slots_].load(); }
  [[nodiscard]] object_requests total() const {
    object_requests sum;
    for (std::size_t i = 0; i <= slots_; ++i) {
      sum += counts_[i].load();
    }
    return sum;
  }

  // An object_store that forwards to the metered one and counts in slot `i`.
  class view {
   public:
    view(metered_store& m, std::size_t i) noexcept : m_(&m), c_(&m.counts_[i]) {}

    object_status get(std::string_view key, std::string& body, object_meta& meta) {
      const object_status s = m_->store_->get(key, body, meta);
      c_->gets.fetch_add(1, std::memory_order_relaxed);
      if (s == object_status::ok) {
        c_->bytes_down.fetch_add(body.size(), std::memory_order_relaxed);
      }
      return failure(s);
    }
    object_status put(std::string_view key, std::string_view body, const put_condition& cond,
                      object_meta& meta) {
      const object_status s = m_->store_->put(key, body, cond, meta);
      c_->puts.fetch_add(1, std::memory_order_relaxed);
      c_->bytes_up.fetch_add(body.size(), std::memory_order_relaxed);
      return failure(s);
    }
    object_status remove(std::string_view key) {
      const object_status s = m_->store_->remove(key);
      c_->removes.fetch_add(1, std::memory_order_relaxed);
      return failure(s);
    }
    object_status list(std::string_view prefix, std::string_view delimiter, std::string_view after,
                       std::size_t max_keys, list_page& page) {
      const object_status s = m_->store_->list(prefix, delimiter, after, max_keys, page);
      c_->lists.fetch_add(1, std::memory_order_relaxed);
      return failure(s);
    }

   private:
    // Counts the call's retries and failure. Runs right after the call returned, before
    // the calling task can suspend again: the store's note of its last call is this one's.
    object_status failure(object_status s) {
      if constexpr (requires { Store::retries_of_last_call(); }) {
        c_->retries.fetch_add(Store::retries_of_last_call(), std::memory_order_relaxed);
      }
      if (s != object_status::ok && s != object_status::not_found) {
        c_->failures.fetch_add(1, std::memory_order_relaxed);
      }
      return s;
    }
    metered_store* m_;
    counters* c_;
  };

  [[nodiscard]] view shard(std::size_t i) { return view(*this, i < slots_ ? i : slots_); }
  [[nodiscard]] view others() { return view(*this, slots_); }

 private:
  Store* store_;
  std::size_t slots_ = 1;
  std::unique_ptr<counters[]> counts_;  // slots_ shards, then the other threads
};

}  // namespace eloqstore::detail
