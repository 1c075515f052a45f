// The request handlers of a shard: reads (get, floor, scan, verify) over a pinned version,
// writes (batch, truncate, delete range, expiry purge) through a tree writer and its commit,
// and group commit (several batch writes of one partition in one pass and one commit).
// Dispatch is on request_type; each request is cast to its own class (request_cast).
//
// Thread affinity: the shard's thread, inside a task of its scheduler.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/btree/reader.hpp>
#include <eloqstore/detail/btree/verify.hpp>
#include <eloqstore/detail/btree/writer.hpp>
#include <eloqstore/detail/commit/archive.hpp>
#include <eloqstore/detail/commit/compaction.hpp>
#include <eloqstore/detail/shard/registry.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/request.hpp>
#include <eloqstore/types.hpp>

namespace eloqstore::detail {

template <typename Traits>
class request_handlers : public partition_registry<Traits> {
 protected:
  using base = partition_registry<Traits>;
  using base::cmp_;
  using base::fibers;
  using base::io_;
  using base::last_stats_;
  using base::make_writer;
  using base::now_ms;
  using base::now_us;
  using base::opts_;
  using base::out_of_mem_guard;
  using base::partition;
  using base::shards_count_;
  using base::stats_mu_;
  using base::term_;
  using base::writer_cfg;
  using typename base::comparator_type;
  using typename base::io_type;
  using typename base::pin_guard;
  using typename base::shard;

  using base::base;

  // Applies a group of batch writes to one partition in one pass and one commit. A batch
  // with bad input fails alone; any other error fails the whole group and changes nothing.
  void handle_group(shard& s, std::vector<request*>& group) {
    detail::partition_state* p = nullptr;
    error e = out_of_mem_guard([&] { return partition(s, group[0]->table(), true, p); });
    // Each request's own verdict (bad input), completed in submission order after the
    // commit; an untouched slot takes the group's result.
    std::vector<error> verdict(group.size(), error::ok);
    const pin_guard pin(e == error::ok ? p : nullptr);
    if (e == error::ok) {
      e = with_room(p->id, [&] {
        return out_of_mem_guard([&] { return apply_group(s, *p, group, verdict); });
      });
    }
    for (std::size_t i = 0; i < group.size(); ++i) {
      complete_request(*group[i], verdict[i] != error::ok ? verdict[i] : e);
    }
    if (e == error::ok && p->next_expire_ts != 0 && p->next_expire_ts <= now_ms()) {
      (void)out_of_mem_guard([&] {
        purge_expired(s, *p);
        return error::ok;
      });
    }
    if (e == error::ok) {
      reclaim_space(s, *p);
    }
  }

  // Applies the group's valid batches in one pass and one commit (handle_group); a batch
  // with bad input gets its own verdict.
  error apply_group(shard& s, detail::partition_state& p, std::vector<request*>& group,
                    std::vector<error>& verdict) {
    // The valid requests' entries become one batch sorted by key, equal keys in submission
    // order (the writer applies those one after another, as separate requests would be),
    // applied in one pass; afterwards every entry goes back to its request.
    std::vector<std::pair<std::uint32_t, std::uint32_t>> origin;  // request, entry
    for (std::size_t i = 0; i < group.size(); ++i) {
      auto& b = detail::request_cast<batch_write_request>(*group[i]);
      verdict[i] = prepare_batch(b.entries_, request_access::why(b));
      if (verdict[i] == error::ok) {
        for (std::size_t k = 0; k < b.entries_.size(); ++k) {
          origin.emplace_back(static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(k));
        }
      }
    }
    const auto entry = [&](const std::pair<std::uint32_t, std::uint32_t>& o) -> write_entry& {
      return detail::request_cast<batch_write_request>(*group[o.first]).entries_[o.second];
    };
    std::stable_sort(origin.begin(), origin.end(), [&](const auto& a, const auto& b) {
      return cmp_.compare(entry(a).key, entry(b).key) < 0;
    });
    std::vector<write_entry> merged;
    merged.reserve(origin.size());
    for (const auto& o : origin) {
      merged.push_back(std::move(entry(o)));
    }
    // Every entry returns to its request on every path, exceptions included.
    struct give_back {
      std::vector<std::pair<std::uint32_t, std::uint32_t>>& origin;
      std::vector<write_entry>& merged;
      decltype(entry)& at;
      ~give_back() {
        for (std::size_t k = 0; k < merged.size(); ++k) {
          at(origin[k]) = std::move(merged[k]);
        }
      }
    } restore{origin, merged, entry};
    // Cloud mode: the commit's upload goes to the background only if every batch asked so.
    bool local = true;
    for (request* r : group) {
      local = local &&
              detail::request_cast<batch_write_request>(*r).durability_of() == durability::local;
    }
    const upload_deferral deferral(*io_, p.id, local);
    auto w = make_writer(s, p);
    error e = merged.empty() ? error::ok : w.apply(merged);
    if (e == error::ok) {
      e = w.commit();
    }
    return e;
  }

  // Runs `op`; in cloud mode, when it failed with out_of_space while files of the shard wait
  // for their upload (background uploads fill the cache with files it may not evict), uploads
  // them and runs it once more. (A failed write changed nothing.)
  template <typename Op>
  error with_room(const table_ident& t, Op op) {
    error e = op();
    if constexpr (object_tier_io<io_type>) {
      if (e == error::out_of_space && io_->upload_for_room(t)) {
        e = op();
      }
    }
    return e;
  }

  // Cloud mode: whether the commits made while it lives leave their upload to the background
  // (cloud_io::defer_uploads); nothing elsewhere.
  class upload_deferral {
   public:
    upload_deferral(io_type& io, const table_ident& t, bool defer) : io_(io), t_(t) {
      if constexpr (object_tier_io<io_type>) {
        io_.defer_uploads(t_, defer);
      } else {
        (void)defer;
      }
    }
    ~upload_deferral() {
      if constexpr (object_tier_io<io_type>) {
        io_.defer_uploads(t_, false);
      }
    }
    upload_deferral(const upload_deferral&) = delete;
    upload_deferral& operator=(const upload_deferral&) = delete;

   private:
    io_type& io_;
    const table_ident& t_;
  };

  // Cloud mode: commits of t wait for their upload. Background work of a partition
  // (compaction, expiry purges) defers its uploads then, so it never makes a foreground
  // upload of what writes acknowledged locally left to the background.
  [[nodiscard]] bool uploads_pending(const table_ident& t) {
    if constexpr (object_tier_io<io_type>) {
      return io_->upload_pending(t);
    } else {
      (void)t;
      return false;
    }
  }

  void handle(shard& s, request& req) {
    if (req.type() == request_type::upload_start) {
      // Nothing to do here: the loop starts the upload (loop.hpp, schedule_upload), and the
      // partition need not be open for it (cloud_io knows what it has to upload).
      complete_request(req, error::ok);
      return;
    }
    detail::partition_state* p = nullptr;
    error e = out_of_mem_guard([&] { return partition(s, req.table(), !req.read_only(), p); });
    const pin_guard pin(e == error::ok ? p : nullptr);
    if (e == error::ok) {
      const auto run = [&] {
        return out_of_mem_guard(
            [&] { return req.read_only() ? handle_read(s, *p, req) : handle_write(s, *p, req); });
      };
      // (An archive or restore may have archived before it failed: run once.)
      const bool again = req.type() != request_type::archive && req.type() != request_type::restore;
      e = again ? with_room(p->id, run) : run();
    }
    const bool wrote = !req.read_only() && e == error::ok;
    complete_request(req, e);
    if (wrote && p->next_expire_ts != 0 && p->next_expire_ts <= now_ms()) {
      (void)out_of_mem_guard([&] {
        purge_expired(s, *p);  // retried after a later write
        return error::ok;
      });
    }
    if (wrote) {
      reclaim_space(s, *p);
    }
  }

  // Append mode, after a write completed: deletes the files no readable version needs any
  // more, and when compaction is due marks it pending. Inline shards compact at once; on
  // fiber shards the partition's writer task compacts when its lane is empty (loop.hpp), in
  // rounds that let queued writes go first.
  void reclaim_space(shard& s, detail::partition_state& p) {
    if (!p.fps.append_mode()) {
      return;
    }
    this->report(log_level::warning, p.id, "file GC after a write",
                 out_of_mem_guard([&] { return detail::collect_files(s.pages, p, term_); }));
    const detail::append_allocator& a = p.fps.append();
    if (a.max_fp() >= p.compaction_retry_fp &&
        a.compaction_due(p.current->mapping.live_count(), opts_.file_amplify_factor)) {
      p.compaction_pending = true;
    }
    if constexpr (!fibers) {
      compact(s, p);
    }
  }

  // Runs compaction rounds of p while it is pending, each as a low-priority step (fiber
  // shards: reads and other partitions' work go first), stopping early when writes of p
  // wait in its lane. A failed round ends the pass; the next write re-checks the trigger
  // once the tail has moved on.
  void compact(shard& s, detail::partition_state& p) {
    while (p.compaction_pending) {
      const upload_deferral deferral(*io_, p.id, uploads_pending(p.id));
      if constexpr (fibers) {
        s.sched.yield_low_priority();
        if (writes_waiting(s, p.id)) {
          return;  // still pending: the writer comes back when its lane is empty
        }
      }
      bool done = true;
      const error e = out_of_mem_guard([&] {
        return detail::compact_round(s.pages, p, writer_cfg(), opts_.file_amplify_factor,
                                     detail::compaction_round_pages, done);
      });
      metric_add(counter::compaction_rounds);
      if (e != error::ok) {
        p.compaction_retry_fp = p.fps.max_fp() + p.fps.append().pages_per_file();
        this->report(log_level::warning, p.id, "compaction", e);
      }
      this->report(log_level::warning, p.id, "file GC after compaction",
                   out_of_mem_guard([&] { return detail::collect_files(s.pages, p, term_); }));
      if (e != error::ok || done) {
        p.compaction_pending = false;
      }
    }
  }

  // Whether writes of partition t wait for its writer task (fiber shards).
  [[nodiscard]] static bool writes_waiting(shard& s, const table_ident& t) {
    const auto it = s.lanes.find(t);
    return it != s.lanes.end() && !it->second.queue.empty();
  }

  error handle_read(shard& s, detail::partition_state& p, request& req) {
    if (!p.has_manifest) {
      return error::not_found;
    }
    if (req.type() == request_type::verify) {
      // The version is held: other tasks may publish newer ones meanwhile.
      const std::shared_ptr<detail::partition_version> version = p.current;
      detail::tree_verifier<io_type, comparator_type> v(s.pages, p, *version, cmp_);
      return v.run(detail::request_cast<verify_request>(req).problem_);
    }
    detail::tree_reader<io_type, comparator_type> reader(s.pages, p, p.current, cmp_, now_ms());
    switch (req.type()) {
      case request_type::read: {
        auto& r = detail::request_cast<read_request>(req);
        return reader.get(r.key_, r.entry_);
      }
      case request_type::floor: {
        auto& r = detail::request_cast<floor_request>(req);
        return reader.floor(r.key_, r.entry_);
      }
      case request_type::scan: {
        auto& r = detail::request_cast<scan_request>(req);
        r.entries_.clear();
        const detail::scan_limits limits{r.max_entries_, r.max_bytes_, r.prefetch_};
        return r.reverse_
                   ? reader.scan_reverse(r.begin_, r.end_, limits, r.entries_, r.has_remaining_)
                   : reader.scan(r.begin_, r.end_, r.begin_inclusive_, limits, r.entries_,
                                 r.has_remaining_);
      }
      case request_type::list_archives: {
        auto& r = detail::request_cast<list_archives_request>(req);
        std::vector<std::pair<std::uint64_t, std::string>> found;
        const error e = detail::list_archives(*io_, p.id, found);
        r.timestamps_.clear();
        for (const auto& a : found) {
          r.timestamps_.push_back(a.first);
        }
        return e;
      }
      default:
        return error::invalid_args;
    }
  }

  // ---- archives (detail/commit/archive.hpp) -------------------------------------------------

  // Refuses archive requests outside append mode (why names the reason).
  [[nodiscard]] error archive_mode_check(detail::partition_state& p, request& req) const {
    if (!p.fps.append_mode()) {
      request_access::why(req) = "archives need data_append_mode (in place, pages are reused)";
      return error::invalid_args;
    }
    return error::ok;
  }

  // Writes an archive of p, then prunes beyond num_retained_archives and collects files.
  error archive(shard& s, detail::partition_state& p, archive_request& r) {
    if (const error e = archive_mode_check(p, r); e != error::ok) {
      return e;
    }
    std::vector<std::pair<std::uint64_t, std::string>> existing;
    if (const error e = detail::list_archives(*io_, p.id, existing); e != error::ok) {
      return e;
    }
    if (r.timestamp_ == 0) {
      r.timestamp_ = now_us();
    }
    for (const auto& a : existing) {
      if (a.first == r.timestamp_) {
        request_access::why(r) = "the partition has an archive of that timestamp already";
        return error::invalid_args;
      }
    }
    const error e = detail::write_archive(*io_, p, term_, r.timestamp_);
    after_archive(s, p);
    return e;
  }

  // Restores archive r.timestamp_ of p (detail::restore_archive), then prunes and collects.
  error restore(shard& s, detail::partition_state& p, restore_request& r) {
    if (const error e = archive_mode_check(p, r); e != error::ok) {
      return e;
    }
    const error e =
        detail::restore_archive(s.pages, p, writer_cfg(), r.timestamp_, now_us(), r.saved_);
    after_archive(s, p);
    return e;
  }

  // Prunes archives beyond num_retained_archives (when set) and deletes the files only they
  // held. Failures leave more on disk, never less; the next archive retries.
  void after_archive(shard& s, detail::partition_state& p) {
    this->report(log_level::warning, p.id, "pruning archives", out_of_mem_guard([&] {
                   return detail::prune_archives(*io_, p, opts_.num_retained_archives);
                 }));
    this->report(log_level::warning, p.id, "file GC after an archive",
                 out_of_mem_guard([&] { return detail::collect_files(s.pages, p, term_); }));
  }

  // Checks a batch in release builds: keys non-empty and at most half a page, values below
  // the overflow limit, known operations, no key twice; on failure `why` names the entry (by
  // its index in the batch as submitted) and the rule, and the batch is unchanged. On success
  // the batch is sorted by the comparator and its timestamps are as stored: a page keeps at
  // most INT64_MAX (spec 3.3), and last-writer-wins compares what is kept, so a write ordered
  // by a larger timestamp is not decided differently by whether it was grouped.
  error prepare_batch(std::vector<write_entry>& batch, std::string& why) const {
    const auto reject = [&](std::size_t i, std::string rule) {
      why = "entry " + std::to_string(i) + ": " + std::move(rule);
      return error::invalid_args;
    };
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const write_entry& w = batch[i];
      if (w.key.empty()) {
        return reject(i, "empty key");
      }
      if (constexpr std::size_t most = tree_limits<Traits::page_size>::key_bytes_max;
          w.key.size() > most) {
        return reject(i, "key of " + std::to_string(w.key.size()) +
                             " bytes is longer than half a page (" + std::to_string(most) +
                             " bytes)");
      }
      if (w.value.size() >= detail::overflow_value_bytes_max) {
        return reject(i, "value of " + std::to_string(w.value.size()) +
                             " bytes is not below the 4 GiB limit");
      }
      if (w.op != write_op::upsert && w.op != write_op::erase) {
        return reject(i, "unknown write operation " + std::to_string(static_cast<int>(w.op)));
      }
    }
    // One pass for the common case of a batch already in order. A duplicate key fails the
    // batch (which one wins would be a guess).
    bool sorted = true;
    for (std::size_t i = 1; i < batch.size() && sorted; ++i) {
      const auto c = cmp_.compare(batch[i - 1].key, batch[i].key);
      if (c == 0) {
        return reject(i, "duplicate key (also entry " + std::to_string(i - 1) + ")");
      }
      sorted = c < 0;
    }
    if (!sorted) {
      std::vector<std::size_t> order(batch.size());
      for (std::size_t i = 0; i < order.size(); ++i) {
        order[i] = i;
      }
      std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return cmp_.compare(batch[a].key, batch[b].key) < 0;
      });
      for (std::size_t j = 1; j < order.size(); ++j) {
        if (cmp_.compare(batch[order[j - 1]].key, batch[order[j]].key) == 0) {
          const auto [first, second] = std::minmax(order[j - 1], order[j]);
          return reject(second, "duplicate key (also entry " + std::to_string(first) + ")");
        }
      }
      std::vector<write_entry> in_order;
      in_order.reserve(batch.size());
      for (const std::size_t i : order) {
        in_order.push_back(std::move(batch[i]));
      }
      batch = std::move(in_order);
    }
    for (write_entry& w : batch) {
      w.timestamp = std::min(w.timestamp, detail::timestamp_max);
    }
    return error::ok;
  }

  error handle_write(shard& s, detail::partition_state& p, request& req) {
    if (req.type() == request_type::upload_wait) {
      if constexpr (object_tier_io<io_type>) {
        return io_->flush(p.id);
      } else {
        return error::ok;  // local mode: acknowledged writes are on the disk already
      }
    }
    if (req.type() == request_type::archive) {
      return archive(s, p, detail::request_cast<archive_request>(req));
    }
    if (req.type() == request_type::restore) {
      return restore(s, p, detail::request_cast<restore_request>(req));
    }
    const bool local =
        req.type() == request_type::batch_write &&
        detail::request_cast<batch_write_request>(req).durability_of() == durability::local;
    const upload_deferral deferral(*io_, p.id, local);
    auto w = make_writer(s, p);
    error e = error::ok;
    switch (req.type()) {
      case request_type::batch_write: {
        auto& r = detail::request_cast<batch_write_request>(req);
        e = prepare_batch(r.entries_, request_access::why(r));
        if (e == error::ok && !r.entries_.empty()) {
          e = w.apply(r.entries_);
        }
        break;
      }
      case request_type::truncate: {
        auto& r = detail::request_cast<truncate_request>(req);
        if (!p.has_manifest) {
          return error::ok;
        }
        if (r.position_.empty()) {
          w.truncate_all();
        } else {
          e = w.delete_range(r.position_, {});
        }
        break;
      }
      case request_type::delete_range: {
        auto& r = detail::request_cast<delete_range_request>(req);
        if (!p.has_manifest) {
          return error::ok;
        }
        e = w.delete_range(r.begin_, r.end_);
        break;
      }
      case request_type::clean_expired:
        e = p.has_manifest ? w.clean_expired() : error::ok;
        break;
      default:
        return error::invalid_args;
    }
    if (e != error::ok) {
      return e;
    }
    e = w.commit();
    if (e == error::ok) {
      std::lock_guard lock(stats_mu_);
      last_stats_ = w.stats();
    }
    return e;
  }

  // Write-triggered expiry purge (after the request that triggered it has completed).
  void purge_expired(shard& s, detail::partition_state& p) {
    const upload_deferral deferral(*io_, p.id, uploads_pending(p.id));
    auto w = make_writer(s, p);
    error e = w.clean_expired();
    if (e == error::ok) {
      e = w.commit();
    }
    // (Retried after the next write.)
    this->report(log_level::warning, p.id, "purging expired keys", e);
  }
};

}  // namespace eloqstore::detail
