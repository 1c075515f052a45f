// The partitions of a shard: found or loaded on demand (commit/open.hpp), kept in an LRU
// within the shard's share of root_meta_cache_size, pinned while a task uses them, and
// remembered as absent (bounded) when reads find no manifest.
//
// Thread affinity: the shard's thread.
#pragma once

#include <cstddef>
#include <deque>
#include <iterator>
#include <list>
#include <memory>
#include <new>
#include <unordered_map>
#include <unordered_set>

#include <eloqstore/detail/btree/writer.hpp>
#include <eloqstore/detail/commit/open.hpp>
#include <eloqstore/detail/commit/partition.hpp>
#include <eloqstore/detail/shard/shard.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/sched/hooks.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore::detail {

template <typename Traits>
class partition_registry : public shard_context<Traits> {
 protected:
  using base = shard_context<Traits>;
  using base::absent_max;
  using base::cmp_;
  using base::fibers;
  using base::io_;
  using base::now_ms;
  using base::opts_;
  using base::out_of_mem_guard;
  using base::shards_count_;
  using base::term_;
  using base::writer_cfg;
  using typename base::comparator_type;
  using typename base::io_type;
  using typename base::shard;

  using base::base;

  // The tree writer of partition p, at the store's settings and clock: the one way writers
  // are made.
  [[nodiscard]] tree_writer<io_type, comparator_type> make_writer(shard& s, partition_state& p) {
    return tree_writer<io_type, comparator_type>(s.pages, p, cmp_, writer_cfg(), now_ms());
  }

  // Keeps a partition in the root-meta cache while a task uses it (tasks interleave at their
  // I/O; eviction skips pinned partitions).
  struct pin_guard {
    detail::partition_state* p;
    explicit pin_guard(detail::partition_state* q) : p(q) {
      if (p != nullptr) {
        ++p->pins;
      }
    }
    pin_guard(const pin_guard&) = delete;
    pin_guard& operator=(const pin_guard&) = delete;
    ~pin_guard() {
      if (p != nullptr) {
        --p->pins;
      }
    }
  };

  // Finds or loads a partition's state. A partition without a manifest is "absent" (loaded,
  // has_manifest false) and becomes real with its first write.
  // With `create` false, an absent partition gets no state (reads of unknown partitions must
  // not fill the root-meta cache), only an entry in the shard's bounded absent set:
  // error::not_found.
  error partition(shard& s, const table_ident& t, bool create, detail::partition_state*& out) {
    const auto cached = [&](detail::partition_state& state) {
      out = &state;
      s.lru.splice(s.lru.begin(), s.lru, state.lru_pos);
      s.touched = &state;
      return error::ok;
    };
    if (const auto it = s.partitions.find(t); it != s.partitions.end()) {
      return cached(*it->second);
    }
    if (!create && s.absent.contains(t)) {
      return error::not_found;
    }
    if (create) {
      s.absent.erase(t);  // its entry in absent_order goes when it comes up
    }
    auto p = std::make_unique<detail::partition_state>();
    p->id = t;
    const error e = detail::load_partition(*io_, t, term_, *p,
                                           {opts_.data_append_mode, opts_.pages_per_file_shift});
    // The load may have suspended (it reaches the backend): another task may have loaded t
    // meanwhile, and its state is the one every task must share.
    if (const auto it = s.partitions.find(t); it != s.partitions.end()) {
      return cached(*it->second);
    }
    if (e != error::ok && e != error::not_found) {
      return e;
    }
    if (e == error::not_found && !create) {
      remember_absent(s, t);
      return error::not_found;
    }
    p->loaded = true;
    // Listed in the LRU only once it is in the map (eviction looks it up from there); if
    // listing it fails, it leaves the map again.
    detail::partition_state* state = p.get();
    const auto slot = s.partitions.emplace(t, std::move(p)).first;
    try {
      s.lru.push_front(t);
    } catch (...) {
      s.partitions.erase(slot);
      throw;
    }
    state->lru_pos = s.lru.begin();
    s.touched = state;
    out = state;
    return error::ok;
  }

  // Adds t to the shard's absent set (bounded: the oldest entry goes). Only a saving: without
  // the memory for it, t is just not remembered.
  static void remember_absent(shard& s, const table_ident& t) {
    if (s.absent.contains(t)) {
      return;
    }
    try {
      s.absent_order.push_back(t);  // first: an order entry without a set entry is harmless
      s.absent.insert(t);
    } catch (const std::bad_alloc&) {
      return;
    }
    if (s.absent_order.size() > absent_max) {
      s.absent.erase(s.absent_order.front());
      s.absent_order.pop_front();
    }
  }

  // Counts the partition the last request used and evicts least recently used partitions
  // while the shard is over its share of root_meta_cache_size (never the last one). A
  // partition whose last manifest write failed first rewrites its manifest; if that fails
  // it stays.
  void enforce_meta_budget(shard& s) {
    if (s.touched != nullptr) {
      const std::size_t now_bytes = s.touched->meta_bytes();
      s.meta_bytes = s.meta_bytes - s.touched->accounted_bytes + now_bytes;
      s.touched->accounted_bytes = now_bytes;
      s.touched = nullptr;
    }
    const std::size_t budget = opts_.root_meta_cache_size / shards_count_;
    // The walk holds iterators into the shard's maps: on fiber shards it must not suspend
    // (so it skips partitions that need a manifest rewrite; inline shards never suspend).
    const no_suspend walk;
    for (std::size_t tries = 0; s.meta_bytes > budget && s.lru.size() > 1 && tries < s.lru.size();
         ++tries) {
      const auto victim = std::prev(s.lru.end());
      auto it = s.partitions.find(*victim);
      detail::partition_state& p = *it->second;
      // In use by a task, or (fiber shards, where the rewrite would suspend in the middle of
      // this walk) waiting for a manifest rewrite: keep it for now.
      if (p.pins > 0 || (fibers && p.force_snapshot)) {
        s.lru.splice(s.lru.begin(), s.lru, victim);
        continue;
      }
      if (p.force_snapshot) {
        const error e = out_of_mem_guard([&] {
          auto w = make_writer(s, p);
          return w.commit();
        });
        if (e != error::ok) {
          this->report(log_level::warning, p.id, "manifest rewrite before eviction", e);
          s.lru.splice(s.lru.begin(), s.lru, victim);  // keep it; try the next one
          continue;
        }
      }
      s.meta_bytes -= p.accounted_bytes;
      s.pages.invalidate_all(p);
      s.lru.erase(victim);
      s.partitions.erase(it);
      metric_add(counter::meta_evictions);
    }
  }

  // At shard exit: rewrites manifests whose last write failed, then forgets every partition.
  void release_partitions(shard& s) {
    for (auto& [id, p] : s.partitions) {
      // A manifest write that failed may still reach the disk later (it sat in the page
      // cache): replace the manifest with the committed state so it cannot resurface.
      if (p->force_snapshot) {
        auto w = make_writer(s, *p);
        // Failing, the failed write may resurface after a restart if it reached the disk
        // (unless a newer term owns the partition now: then it is no longer ours).
        const error e = w.commit();
        this->report(e == error::expired_term ? log_level::info : log_level::error, id,
                     "manifest rewrite at stop", e);
      }
      s.pages.invalidate_all(*p);
    }
    s.partitions.clear();
    s.lru.clear();
    s.meta_bytes = 0;
    {
      std::lock_guard ql(s.mu);
      s.notify = nullptr;
    }
    s.ring.reset();
  }
};

}  // namespace eloqstore::detail
