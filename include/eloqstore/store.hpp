// EloqStore<Traits>: the store. Partitions (table name + partition id) are copy-on-write
// B+trees; partition p belongs to shard p % num_threads, and each shard has one thread that
// owns its partitions' state, so shard state needs no locks.
//
// Lifecycle: construct with options (validated by start()), start(), submit requests with
// exec_sync / exec_async or the facade, stop(). start/stop may repeat. stop() drains the
// queued requests; requests submitted while stopped complete with error::not_running.
//
// Durability: a write completes only after its pages are written, the data files synced,
// the manifest appended (or replaced atomically) and synced. Then the new version is
// published; readers that pinned the old version keep it until they finish.
//
// Thread safety: all public functions may be called from any thread, except that a request
// object must not be submitted twice at once. Callbacks run on the shard thread.
#pragma once

#include <pthread.h>

#include <algorithm>
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
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <range/v3/view/facade.hpp>

#include <eloqstore/comparator.hpp>
#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/btree/reader.hpp>
#include <eloqstore/detail/btree/verify.hpp>
#include <eloqstore/detail/btree/writer.hpp>
#include <eloqstore/detail/io/file_names.hpp>
#include <eloqstore/detail/io/store_root.hpp>
#include <eloqstore/detail/manifest/replay.hpp>
#include <eloqstore/detail/commit/page_io.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/options.hpp>
#include <eloqstore/request.hpp>
#include <eloqstore/sched/hooks.hpp>
#include <eloqstore/table_ident.hpp>
#include <eloqstore/traits.hpp>
#include <eloqstore/types.hpp>

namespace eloqstore {

// A value or an error. `value()` REQUIRES ok().
template <typename T>
class result {
 public:
  result(T v) : value_(std::move(v)) {}  // NOLINT: implicit by design
  result(error e) : err_(e) {}           // NOLINT
  [[nodiscard]] bool ok() const noexcept { return err_ == error::ok; }
  [[nodiscard]] error status() const noexcept { return err_; }
  [[nodiscard]] const T& value() const& noexcept { return value_; }
  [[nodiscard]] T&& value() && noexcept { return std::move(value_); }
  [[nodiscard]] const T* operator->() const noexcept { return &value_; }

 private:
  T value_{};
  error err_ = error::ok;
};

template <typename Traits>
class EloqStore {
  static_assert(store_traits<Traits>, "Traits must satisfy eloqstore::store_traits");
  static_assert(traits_checks<Traits>::ok);

 public:
  using traits_type = Traits;
  using comparator_type = typename Traits::comparator;
  using io_type = typename Traits::io_type;

  // Owns an I/O backend made by Traits::make_io(opts).
  explicit EloqStore(options opts) : opts_(std::move(opts)) {}
  // Uses `io`, which must outlive the store (tests keep one backend across restarts).
  EloqStore(options opts, io_type& io) : opts_(std::move(opts)), io_(&io) {}
  EloqStore(const EloqStore&) = delete;
  EloqStore& operator=(const EloqStore&) = delete;
  ~EloqStore() { stop(); }

  [[nodiscard]] const options& opts() const noexcept { return opts_; }
  [[nodiscard]] bool running() const noexcept { return running_.load(std::memory_order_acquire); }
  [[nodiscard]] io_type& io() noexcept { return *io_; }
  [[nodiscard]] const comparator_type& comparator() const noexcept { return cmp_; }

  // Replaces the clock used for expiry (Unix milliseconds). Call while stopped.
  void set_clock(std::function<std::uint64_t()> now_ms) { clock_ = std::move(now_ms); }

  // Validates the options, opens the backend and starts the shard threads. No-op if running.
  [[nodiscard]] error start() {
    std::lock_guard lock(lifecycle_mu_);
    if (running()) {
      return error::ok;
    }
    if (const auto v = opts_.validate(); !v.ok()) {
      last_message_ = v.message;
      return v.code;
    }
    if (opts_.data_page_size != Traits::page_size) {
      last_message_ = "data_page_size must equal the traits' page_size";
      return error::invalid_args;
    }
    if (const error e = lock_store_paths(); e != error::ok) {
      return e;
    }
    if (io_ == nullptr) {
      owned_io_ = Traits::make_io(opts_);
      io_ = owned_io_.get();
    }
    if constexpr (requires(io_type & b) { b.set_read_only(true); }) {
      io_->set_read_only(opts_.read_only);
    }
    if (const error e = io_->open(); e != error::ok) {
      last_message_ =
          "the I/O backend failed to open the store paths: " + std::string(error_message(e));
      root_.release();
      return e;
    }
    // Anything below that throws (no memory, no thread) must not leave the paths locked.
    struct unlock_on_throw {
      detail::store_root& root;
      bool armed = true;
      ~unlock_on_throw() {
        if (armed) {
          root.release();
        }
      }
    } unlock{root_};
    std::vector<std::unique_ptr<shard>> shards;
    shards_count_ = opts_.num_threads;
    const std::size_t cache_pages = opts_.buffer_pool_size / Traits::page_size;
    for (std::size_t i = 0; i < opts_.num_threads; ++i) {
      shards.push_back(std::make_unique<shard>(*io_, opts_, cache_pages));
    }
    for (auto& s : shards) {
      s->thread = std::thread([this, sh = s.get()] { run_shard(*sh); });
    }
    std::unique_lock lock_shards(shards_mu_);
    shards_ = std::move(shards);
    running_.store(true, std::memory_order_release);
    unlock.armed = false;
    return error::ok;
  }

  // Drains queued requests, joins the shard threads and closes the backend. Called from a
  // shard thread (a callback), it does nothing: a shard cannot join itself.
  void stop() {
    if (on_shard_thread()) {
      return;
    }
    std::lock_guard lock(lifecycle_mu_);
    if (!running()) {
      return;
    }
    running_.store(false, std::memory_order_release);
    {
      std::shared_lock lock_shards(shards_mu_);
      for (auto& s : shards_) {
        std::lock_guard ql(s->mu);
        s->stopping = true;
        s->cv.notify_all();
        s->not_full.notify_all();
        if (s->notify != nullptr) {
          s->notify(s->notify_arg);
        }
      }
    }
    // Only start/stop change shards_, and both hold lifecycle_mu_: joining without
    // shards_mu_ lets callbacks on the shard threads still submit (and be refused).
    for (auto& s : shards_) {
      s->thread.join();
    }
    std::unique_lock lock_shards(shards_mu_);  // waits for submitters still inside
    shards_.clear();
    io_->close();
    root_.release();  // last: another store may open the paths now
  }

  // The identity this store records in (and checks against) its store paths.
  [[nodiscard]] detail::store_identity identity() const {
    detail::store_identity id;
    id.comparator = std::string(comparator_type::name());
    id.data_page_size = opts_.data_page_size;
    id.pages_per_file_shift = opts_.pages_per_file_shift;
    id.overflow_pointers = opts_.overflow_pointers;
    id.data_append_mode = opts_.data_append_mode;
    return id;
  }

  // The message of the last start() failure.
  [[nodiscard]] const std::string& last_message() const noexcept { return last_message_; }

  // Submits `req`; false (request untouched) if the store is stopped or `req` is still
  // pending from an earlier submission (a request runs once at a time). The callback, if any,
  // runs once the request is done: on the shard thread, or on the calling thread when the
  // request fails before reaching a shard (invalid table, store stopping) and for
  // drop_table, which runs on the calling thread. Do not call drop_table or exec_sync from a
  // callback (the shard would wait for itself).
  bool exec_async(request& req, std::uint64_t user_data = 0, request::callback_type cb = {}) {
    return submit(req, user_data, std::move(cb)) == submitted::yes;
  }

  // Runs `req` and waits for it; error::not_running if the store is stopped, error::busy
  // (request untouched) if `req` is still pending from an earlier submission.
  error exec_sync(request& req) {
    // The waiter lives here, not in the request: the completing thread touches it last
    // under the mutex, so `req` may be destroyed as soon as this returns.
    struct waiter {
      std::mutex mu;
      std::condition_variable cv;
      bool done = false;
    } w;
    const submitted how = submit(req, 0, [&w](request&) {
      std::lock_guard lock(w.mu);
      w.done = true;
      w.cv.notify_one();
    });
    if (how == submitted::pending) {
      return error::busy;  // its own submitter gets its result
    }
    if (how == submitted::stopped) {
      if (!req.prepare(0, {})) {
        return error::busy;  // submitted elsewhere meanwhile
      }
      req.set_done(error::not_running);
      return error::not_running;
    }
    std::unique_lock lock(w.mu);
    w.cv.wait(lock, [&] { return w.done; });
    return req.status();
  }

 private:
  enum class submitted { yes, stopped, pending };

  submitted submit(request& req, std::uint64_t user_data, request::callback_type cb) {
    if (opts_.read_only && !req.read_only()) {
      // A read-only store writes nothing: refused here, before any shard sees it.
      if (!running()) {
        return submitted::stopped;
      }
      if (!req.prepare(user_data, std::move(cb))) {
        return submitted::pending;
      }
      req.why_ = "the store was opened read-only";
      req.set_done(error::no_permission);
      return submitted::yes;
    }
    if (req.type() == request_type::drop_table) {
      if (!running()) {
        return submitted::stopped;
      }
      if (!req.prepare(user_data, std::move(cb))) {
        return submitted::pending;
      }
      error e = error::out_of_mem;
      try {
        e = drop_table(detail::request_cast<drop_table_request>(req).table_name_);
      } catch (const std::bad_alloc&) {
      }
      req.set_done(e);
      return submitted::yes;
    }
    error immediate = error::ok;
    {
      std::shared_lock lock_shards(shards_mu_);
      if (!running() || shards_.empty()) {
        return submitted::stopped;
      }
      if (!req.prepare(user_data, std::move(cb))) {
        return submitted::pending;
      }
      if (!req.table().valid()) {
        immediate = error::invalid_args;
      } else {
        shard& s = *shards_[req.table().shard_index(shards_.size())];
        std::unique_lock ql(s.mu);
        // Back-pressure: a full queue blocks the caller (never a shard thread, which could be
        // the one that has to drain it).
        const std::size_t capacity = std::max<std::uint32_t>(1, opts_.request_queue_capacity);
        if (!on_shard_thread()) {
          s.not_full.wait(ql, [&] { return s.stopping || s.queue.size() < capacity; });
        }
        if (s.stopping) {
          immediate = error::not_running;
        } else {
          try {
            s.queue.push_back(&req);
          } catch (const std::bad_alloc&) {
            immediate = error::out_of_mem;  // completed below: never left pending
          }
        }
        if (immediate == error::ok) {
          s.cv.notify_one();
          // The shard's own thread (a callback submitting again) drains its queue before it
          // next blocks: only other threads need to wake it.
          if (s.notify != nullptr && s.queue.size() == 1 && current_shard() != &s) {
            s.notify(s.notify_arg);
          }
        }
      }
    }
    if (immediate != error::ok) {
      req.set_done(immediate);  // outside the locks: the callback may submit again
    }
    return submitted::yes;
  }

 public:
  // ---- facade ------------------------------------------------------------------------------

  [[nodiscard]] result<kv_entry> get(const table_ident& t, std::string_view key) {
    read_request r;
    r.set_args(t, std::string(key));
    if (const error e = exec_sync(r); e != error::ok) {
      return e;
    }
    return std::move(r.entry_);
  }

  [[nodiscard]] result<kv_entry> floor(const table_ident& t, std::string_view key) {
    floor_request r;
    r.set_args(t, std::string(key));
    if (const error e = exec_sync(r); e != error::ok) {
      return e;
    }
    return std::move(r.entry_);
  }

  error write(const table_ident& t, std::vector<write_entry> batch) {
    batch_write_request r;
    r.set_args(t, std::move(batch));
    return exec_sync(r);
  }
  error put(const table_ident& t, std::string key, std::string value, std::uint64_t ts = 0,
            std::uint64_t expire_ts = 0) {
    std::vector<write_entry> b;
    b.push_back(write_entry{std::move(key), std::move(value), ts, write_op::upsert, expire_ts});
    return write(t, std::move(b));
  }
  error erase(const table_ident& t, std::string key, std::uint64_t ts = 0) {
    std::vector<write_entry> b;
    b.push_back(write_entry{std::move(key), {}, ts, write_op::erase, 0});
    return write(t, std::move(b));
  }
  error truncate(const table_ident& t, std::string from = {}) {
    truncate_request r;
    r.set_args(t, std::move(from));
    return exec_sync(r);
  }
  error delete_range(const table_ident& t, std::string begin, std::string end) {
    delete_range_request r;
    r.set_args(t, std::move(begin), std::move(end));
    return exec_sync(r);
  }
  error clean_expired(const table_ident& t) {
    clean_expired_request r;
    r.set_args(t);
    return exec_sync(r);
  }

  // Empties every partition of `table_name` found under the store paths.
  error drop_table(const std::string& table_name) {
    if (!table_ident::valid_name(table_name)) {
      return error::invalid_args;
    }
    std::vector<table_ident> parts;
    {
      std::shared_lock lock_shards(shards_mu_);
      if (!running()) {
        return error::not_running;
      }
      if (const error e = io_->list_partitions(parts); e != error::ok) {
        return e;
      }
    }
    error first = error::ok;
    for (const table_ident& t : parts) {
      if (t.name != table_name) {
        continue;
      }
      const error e = truncate(t);
      if (first == error::ok && e != error::ok && e != error::not_found) {
        first = e;
      }
    }
    return first;
  }

  // Checks the tree structure of a partition (see detail/btree/verify.hpp).
  error verify(const table_ident& t, std::string& problem) {
    verify_request r;
    r.set_args(t);
    const error e = exec_sync(r);
    problem = r.problem();
    return e;
  }

  // Statistics of the last write of a partition (for benchmarks).
  struct write_stats {
    std::size_t pages_written = 0;
    std::size_t mapping_chunks_copied = 0;
    bool manifest_snapshot = false;
  };

  class scan_range;
  // A lazy range over [begin, end) that fetches `page_entries` records at a time. Iterate it
  // once; afterwards status() tells whether it ended because of an error.
  [[nodiscard]] scan_range scan(const table_ident& t, std::string begin = {}, std::string end = {},
                                std::size_t page_entries = 256) {
    return scan_range(this, t, std::move(begin), std::move(end), false, page_entries);
  }
  // The same range in descending key order.
  [[nodiscard]] scan_range scan_reverse(const table_ident& t, std::string begin = {},
                                        std::string end = {}, std::size_t page_entries = 256) {
    return scan_range(this, t, std::move(begin), std::move(end), true, page_entries);
  }

  class scan_range : public ranges::view_facade<scan_range, ranges::finite> {
   public:
    scan_range() = default;
    [[nodiscard]] error status() const noexcept { return st_ ? st_->err : error::ok; }

   private:
    friend ranges::range_access;
    friend class EloqStore;
    struct state {
      EloqStore* store = nullptr;
      scan_request req;
      std::size_t pos = 0;
      bool reverse = false;
      std::string end;
      error err = error::ok;

      void fetch_next() {
        pos = 0;
        if (!req.entries_.empty()) {
          if (reverse) {
            req.end_ = req.entries_.back().key;
          } else {
            req.begin_ = req.entries_.back().key;
            req.begin_inclusive_ = false;
          }
        }
        req.entries_.clear();
        err = store->exec_sync(req);
        if (err == error::not_found) {
          err = error::ok;  // an unknown partition is an empty range
        }
        if (err != error::ok) {
          req.entries_.clear();
          req.has_remaining_ = false;
        }
      }
    };
    struct cursor {
      std::shared_ptr<state> st;
      [[nodiscard]] const kv_entry& read() const { return st->req.entries_[st->pos]; }
      [[nodiscard]] bool equal(ranges::default_sentinel_t) const {
        return st->pos >= st->req.entries_.size();
      }
      void next() {
        if (++st->pos == st->req.entries_.size() && st->req.has_remaining_) {
          st->fetch_next();
        }
      }
    };

    scan_range(EloqStore* store, const table_ident& t, std::string begin, std::string end,
               bool reverse, std::size_t page_entries)
        : st_(std::make_shared<state>()) {
      st_->store = store;
      st_->reverse = reverse;
      st_->req.set_args(t, std::move(begin), std::move(end), true);
      st_->req.set_reverse(reverse);
      st_->req.set_pagination(page_entries == 0 ? 256 : page_entries, 0);
      // A range is read through to its end: read ahead deeper than a one-off scan request
      // (measured: 32 leaves at a time scans about 7x faster than one at a time).
      st_->req.set_prefetch(range_prefetch);
    }
    static constexpr std::size_t range_prefetch = 32;
    cursor begin_cursor() {
      st_->fetch_next();
      return cursor{st_};
    }

    std::shared_ptr<state> st_;
  };

 private:
  using scheduler_type = typename Traits::scheduler_type;
  static constexpr bool fibers = scheduler_type::can_suspend;

  // Locks the store paths and checks their identity (backends with local files only: an
  // in-memory store has nothing to share or to misread).
  error lock_store_paths() {
    if constexpr (local_files_io<io_type>) {
      if (const error e = root_.acquire(opts_.store_path, identity(), opts_.read_only);
          e != error::ok) {
        last_message_ = root_.message();
        return e;
      }
    }
    return error::ok;
  }

  static scheduler_type make_scheduler(const options& o) {
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
        : pages(io, Traits::page_size, o.pages_per_file_shift, cache_pages,
                !o.skip_verify_checksum),
          sched(make_scheduler(o)) {}
    std::thread thread;
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
    std::unordered_map<table_ident, write_lane> lanes;  // partitions with a writer task
    std::deque<request*> backlog;  // dequeued requests waiting for a free task slot
    ring_ptr ring;                 // this shard thread's I/O ring, if the backend has rings
    std::chrono::steady_clock::time_point writer_yielded{};  // a writer last stepped aside
  };
  static constexpr std::size_t absent_max = 4096;
  // How long a writer building pages keeps the shard thread before it lets waiting reads run.
  static constexpr std::chrono::microseconds writer_slice{100};

  [[nodiscard]] std::uint64_t now_ms() const {
    if (clock_) {
      return clock_();
    }
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
  }

  // Group commit: moves from the queue the batch writes of group[0]'s partition that follow
  // it, stopping at any other request of that partition (a read must not see a write queued
  // after it; a truncate must keep its place). REQUIRES: s.mu held.
  void take_group(shard& s, std::vector<request*>& group) {
    const table_ident& t = group[0]->table();
    for (auto it = s.queue.begin(); it != s.queue.end() && group.size() < opts_.group_commit_max;) {
      if (!((*it)->table() == t)) {
        ++it;
        continue;
      }
      if ((*it)->type() != request_type::batch_write) {
        break;
      }
      group.push_back(*it);
      it = s.queue.erase(it);
    }
  }

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
      e = out_of_mem_guard([&] { return apply_group(s, *p, group, verdict); });
    }
    for (std::size_t i = 0; i < group.size(); ++i) {
      group[i]->set_done(verdict[i] != error::ok ? verdict[i] : e);
    }
    if (e == error::ok && p->next_expire_ts != 0 && p->next_expire_ts <= now_ms()) {
      (void)out_of_mem_guard([&] {
        purge_expired(s, *p);
        return error::ok;
      });
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
      verdict[i] = prepare_batch(b.entries_, b.why_);
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
    detail::tree_writer<io_type, comparator_type> w(s.pages, p, cmp_, writer_cfg(), now_ms());
    error e = merged.empty() ? error::ok : w.apply(merged);
    if (e == error::ok) {
      e = w.commit();
    }
    return e;
  }

  // The shard the calling thread runs, or nullptr for client threads.
  static const void*& current_shard() {
    static thread_local const void* current = nullptr;
    return current;
  }
  static bool on_shard_thread() { return current_shard() != nullptr; }

  void run_shard(shard& s) {
    current_shard() = &s;
    ::pthread_setname_np(::pthread_self(), "eloqstore-shard");  // for top, perf and gdb
    if constexpr (fibers) {
      run_fiber_shard(s);
    } else {
      run_inline_shard(s);
    }
    release_partitions(s);
  }

  // ---- fiber shards -------------------------------------------------------------------------
  //
  // Every request runs as a task of the shard's fiber scheduler. Reads start at once and
  // overlap their I/O; writes go to their partition's lane, where one writer task per
  // partition takes them in order, several at a time (group commit). Between rounds of the
  // scheduler the loop submits and reaps the I/O ring (when the backend has one) and blocks
  // on it, or on the queue's condition variable, when there is nothing to run.
  void run_fiber_shard(shard& s) {
    // Writers building many pages step aside (low priority) once they have held the thread
    // for a slice, so reads queued meanwhile run; yielding after every page cost a loop
    // round (queue lock, clock, ring poll) per page.
    s.pages.set_yield_hook(
        [](void* arg) {
          auto& sh = *static_cast<shard*>(arg);
          if (sh.sched.current() == nullptr) {
            return;
          }
          const auto now = std::chrono::steady_clock::now();
          if (now - sh.writer_yielded < writer_slice) {
            return;
          }
          sh.writer_yielded = now;  // another writer running meanwhile gets its own slice
          sh.sched.yield_low_priority();
          sh.writer_yielded = std::chrono::steady_clock::now();
          if constexpr (has_ring) {
            // Reads the tasks before us prepared and left to the round's end: the device
            // works on them during our slice instead of after it.
            if (sh.ring != nullptr && sh.ring->has_unsubmitted()) {
              sh.ring->submit();
            }
          }
        },
        &s);
    s.ring = attach_ring(s);
    auto* ring = s.ring.get();
    for (;;) {
      bool stopping = false;
      {
        std::unique_lock ql(s.mu);
        stopping = s.stopping;
        // Out of memory for the backlog, the rest waits in the queue for the next round.
        (void)out_of_mem_guard([&] {
          while (!s.queue.empty()) {
            s.backlog.push_back(s.queue.front());
            s.queue.pop_front();
          }
          return error::ok;
        });
      }
      s.not_full.notify_all();
      while (!s.backlog.empty() && dispatch(s, *s.backlog.front())) {
        s.backlog.pop_front();
      }
      s.sched.run_round();
      const bool runnable = !s.sched.idle();
      if (stopping && !runnable && s.sched.live_tasks() == 0 && s.backlog.empty()) {
        std::unique_lock ql(s.mu);
        if (s.queue.empty()) {
          break;  // stopping and drained
        }
        continue;
      }
      if constexpr (has_ring) {
        if (ring != nullptr) {
          // Block only with nothing runnable and nothing queued (a submitter notifies the
          // ring after it queues, so a request queued after this check still wakes us).
          bool block = !runnable;
          if (block) {
            std::unique_lock ql(s.mu);
            block = s.queue.empty() && !s.stopping;
          }
          ring->poll(block);
          continue;
        }
      }
      if (!runnable) {
        std::unique_lock ql(s.mu);
        s.cv.wait(ql, [&] { return s.stopping || !s.queue.empty(); });
      }
    }
    // The ring stays until release_partitions has done its final manifest rewrites (which
    // run outside tasks and poll it themselves).
  }

  ring_ptr attach_ring(shard& s) {
    if constexpr (has_ring) {
      auto ring = io_->attach(make_suspend_hooks(s.sched));
      if (ring != nullptr) {
        std::lock_guard ql(s.mu);
        s.notify_arg = ring.get();
        s.notify = [](void* r) { static_cast<typename io_type::shard_ring*>(r)->notify(); };
        if (!s.queue.empty() || s.stopping) {
          ring->notify();
        }
      }
      return ring;  // without a ring, I/O uses blocking system calls
    } else {
      (void)s;
      return nullptr;
    }
  }

  // Starts a request: a task for reads, the partition's lane for writes. False if no task
  // slot is free (the request stays in the backlog). Without the memory to start it, the
  // request completes with error::out_of_mem.
  bool dispatch(shard& s, request& req) {
    bool started = false;
    const error e = out_of_mem_guard([&] {
      started = start_request(s, req);
      return error::ok;
    });
    if (e != error::ok) {
      req.set_done(e);
      return true;
    }
    return started;
  }

  bool start_request(shard& s, request& req) {
    if (req.read_only()) {
      return s.sched.spawn([this, &s, &req] {
        handle(s, req);
        enforce_meta_budget(s);
      });
    }
    auto it = s.lanes.find(req.table());
    if (it != s.lanes.end()) {
      it->second.queue.push_back(&req);  // its writer takes it in order
      return true;
    }
    it = s.lanes.emplace(req.table(), write_lane{}).first;
    bool started = false;
    try {
      it->second.queue.push_back(&req);
      const table_ident t = req.table();
      started = s.sched.spawn([this, &s, t] { run_writer(s, t); });
    } catch (...) {
      s.lanes.erase(it);  // no writer task: the lane would never drain
      throw;
    }
    if (!started) {
      s.lanes.erase(it);
    }
    return started;
  }

  // The writer task of partition t: runs its lane's requests in order, consecutive batch
  // writes together, until the lane is empty.
  void run_writer(shard& s, const table_ident& t) {
    std::vector<request*> group;
    for (;;) {
      write_lane& lane = s.lanes.find(t)->second;  // references survive rehashing
      if (lane.queue.empty()) {
        s.lanes.erase(t);
        return;
      }
      group.clear();
      const std::size_t most =
          opts_.group_commit ? std::max<std::size_t>(1, opts_.group_commit_max) : 1;
      if (out_of_mem_guard([&] {
            group.reserve(most);  // the pushes below do not allocate
            return error::ok;
          }) != error::ok) {
        request* r = lane.queue.front();
        lane.queue.pop_front();
        r->set_done(error::out_of_mem);  // no room to run it; the next one may have
        continue;
      }
      group.push_back(lane.queue.front());
      lane.queue.pop_front();
      if (opts_.group_commit && group[0]->type() == request_type::batch_write) {
        while (!lane.queue.empty() && group.size() < most &&
               lane.queue.front()->type() == request_type::batch_write) {
          group.push_back(lane.queue.front());
          lane.queue.pop_front();
        }
      }
      note_group(group.size());
      if (group.size() == 1) {
        handle(s, *group[0]);
      } else {
        handle_group(s, group);
      }
      enforce_meta_budget(s);
      // Let the shard loop move newly queued requests (often resubmitted by the callbacks of
      // the group just completed) into the lane first, so the next group includes them.
      s.sched.yield();
    }
  }

  void note_group(std::size_t n) {
    groups_.fetch_add(1, std::memory_order_relaxed);
    grouped_writes_.fetch_add(n, std::memory_order_relaxed);
    std::size_t seen = largest_group_.load(std::memory_order_relaxed);
    while (n > seen && !largest_group_.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
    }
  }

  // ---- run-to-completion shards -------------------------------------------------------------

  void run_inline_shard(shard& s) {
    for (;;) {
      std::vector<request*>& group = s.group;
      group.clear();
      {
        std::unique_lock ql(s.mu);
        s.cv.wait(ql, [&] { return s.stopping || !s.queue.empty(); });
        if (s.queue.empty()) {
          break;  // stopping and drained
        }
        group.push_back(s.queue.front());
        s.queue.pop_front();
        if (opts_.group_commit && group[0]->type() == request_type::batch_write) {
          take_group(s, group);
        }
      }
      s.not_full.notify_all();
      note_group(group.size());
      if (group.size() == 1) {
        s.sched.run([&] { handle(s, *group[0]); });
      } else {
        s.sched.run([&] { handle_group(s, group); });
      }
      enforce_meta_budget(s);
    }
  }

  // At shard exit: rewrites manifests whose last write failed, then forgets every partition.
  void release_partitions(shard& s) {
    for (auto& [id, p] : s.partitions) {
      // A manifest write that failed may still reach the disk later (it sat in the page
      // cache): replace the manifest with the committed state so it cannot resurface.
      if (p->force_snapshot) {
        detail::tree_writer<io_type, comparator_type> w(s.pages, *p, cmp_, writer_cfg(), now_ms());
        (void)w.commit();
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
    auto it = s.partitions.find(t);
    if (it != s.partitions.end()) {
      out = it->second.get();
      s.lru.splice(s.lru.begin(), s.lru, out->lru_pos);
      s.touched = out;
      return error::ok;
    }
    if (!create && s.absent.contains(t)) {
      return error::not_found;
    }
    if (create) {
      s.absent.erase(t);  // its entry in absent_order goes when it comes up
    }
    auto p = std::make_unique<detail::partition_state>();
    p->id = t;
    std::string bytes;
    const error e = io_->read_file(t, detail::manifest_file_name(term_), bytes);
    if (e != error::ok && e != error::not_found) {
      return e;
    }
    if (e == error::not_found) {
      // Data files without a manifest: its manifest is gone, and reading the partition as
      // empty (or starting it over) would lose them.
      if (const error d = check_no_data_files(t); d != error::ok) {
        return d;
      }
    }
    if (e == error::not_found && !create) {
      remember_absent(s, t);
      return error::not_found;
    }
    if (e == error::ok) {
      detail::replay_result r;
      if (detail::replay_manifest(bytes, r) != error::ok) {
        return error::corrupted;
      }
      p->has_manifest = true;
      p->current->root = r.root;
      p->current->ttl_root = r.ttl_root;
      p->current->mapping = detail::mapping_table::from_values(r.mapping);
      p->fps = detail::file_page_allocator(p->current->mapping, r.max_fp_id);
      p->manifest_bytes = r.append_offset;
      p->manifest_file_bytes =
          std::max<std::uint64_t>(r.append_offset, bytes.size() / detail::manifest_alignment_bytes *
                                                       detail::manifest_alignment_bytes);
      p->terms = std::move(r.terms);
      p->dictionary = std::move(r.dictionary);
      p->next_expire_ts = r.ttl_root.is_none() ? 0 : 1;  // check expiry on the next write
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

  // error::corrupted if t's directory holds data files (a partition's manifest is written
  // before its first data file: tree_writer::ensure_manifest), ok if it has none or no
  // directory; a listing that fails fails the caller (the partition must not be taken for
  // a new one and its files written over).
  error check_no_data_files(const table_ident& t) {
    std::vector<std::string> names;
    if (const error e = io_->list(t, names); e != error::ok) {
      return e == error::not_found ? error::ok : e;
    }
    const bool data = std::any_of(names.begin(), names.end(), [](const std::string& n) {
      return detail::parse_file_name(n).kind == detail::file_kind::data;
    });
    return data ? error::corrupted : error::ok;
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
          detail::tree_writer<io_type, comparator_type> w(s.pages, p, cmp_, writer_cfg(), now_ms());
          return w.commit();
        });
        if (e != error::ok) {
          s.lru.splice(s.lru.begin(), s.lru, victim);  // keep it; try the next one
          continue;
        }
      }
      s.meta_bytes -= p.accounted_bytes;
      s.pages.invalidate_all(p);
      s.lru.erase(victim);
      s.partitions.erase(it);
      ++evictions_;
    }
  }

  [[nodiscard]] detail::writer_config writer_cfg() const {
    detail::writer_config c;
    c.page_size = Traits::page_size;
    c.data_restart_interval = opts_.data_page_restart_interval;
    c.index_restart_interval = opts_.index_page_restart_interval;
    c.overflow_pointers = opts_.overflow_pointers;
    c.manifest_limit = opts_.manifest_limit;
    c.term = term_;
    return c;
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

  void handle(shard& s, request& req) {
    detail::partition_state* p = nullptr;
    error e = out_of_mem_guard([&] { return partition(s, req.table(), !req.read_only(), p); });
    const pin_guard pin(e == error::ok ? p : nullptr);
    if (e == error::ok) {
      e = out_of_mem_guard(
          [&] { return req.read_only() ? handle_read(s, *p, req) : handle_write(s, *p, req); });
    }
    const bool wrote = !req.read_only() && e == error::ok;
    req.set_done(e);
    if (wrote && p->next_expire_ts != 0 && p->next_expire_ts <= now_ms()) {
      (void)out_of_mem_guard([&] {
        purge_expired(s, *p);  // retried after a later write
        return error::ok;
      });
    }
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
      default:
        return error::invalid_args;
    }
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
      if (w.key.size() > Traits::page_size / 2) {
        return reject(i, "key of " + std::to_string(w.key.size()) +
                             " bytes is longer than half a page (" +
                             std::to_string(Traits::page_size / 2) + " bytes)");
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
    detail::tree_writer<io_type, comparator_type> w(s.pages, p, cmp_, writer_cfg(), now_ms());
    error e = error::ok;
    switch (req.type()) {
      case request_type::batch_write: {
        auto& r = detail::request_cast<batch_write_request>(req);
        e = prepare_batch(r.entries_, r.why_);
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
      last_stats_ = write_stats{w.stats().pages_written, w.stats().chunks_copied,
                                w.stats().manifest_snapshot};
    }
    return e;
  }

  // Write-triggered expiry purge (after the request that triggered it has completed).
  void purge_expired(shard& s, detail::partition_state& p) {
    detail::tree_writer<io_type, comparator_type> w(s.pages, p, cmp_, writer_cfg(), now_ms());
    (void)(w.clean_expired() == error::ok && w.commit() == error::ok);  // retried next write
  }

 public:
  // Partitions evicted from the root-meta caches so far.
  [[nodiscard]] std::size_t meta_evictions() const noexcept {
    return evictions_.load(std::memory_order_relaxed);
  }
  // The index page caches of all shards, summed: capacity, frames allocated, frames pinned by
  // running tasks (0 when the store is idle), frames holding a page. Zero when not running.
  [[nodiscard]] detail::index_cache::stats index_cache_stats() const {
    detail::index_cache::stats sum;
    std::shared_lock lock(shards_mu_);
    for (const auto& s : shards_) {
      const auto one = s->pages.cache_stats();
      sum.capacity += one.capacity;
      sum.allocated += one.allocated;
      sum.pinned += one.pinned;
      sum.cached += one.cached;
      sum.swizzled_hits += one.swizzled_hits;
    }
    return sum;
  }
  // The most write requests committed together so far (group commit).
  [[nodiscard]] std::size_t largest_group() const noexcept {
    return largest_group_.load(std::memory_order_relaxed);
  }
  // Writer passes so far and the write requests they carried (their ratio is the average
  // group size of group commit).
  [[nodiscard]] std::pair<std::size_t, std::size_t> write_groups() const noexcept {
    return {groups_.load(std::memory_order_relaxed),
            grouped_writes_.load(std::memory_order_relaxed)};
  }
  [[nodiscard]] write_stats last_write_stats() const {
    std::lock_guard lock(stats_mu_);
    return last_stats_;
  }

 private:
  options opts_;
  std::unique_ptr<io_type> owned_io_;
  detail::store_root root_;  // the store paths' locks, held from start() to stop()
  io_type* io_ = nullptr;
  comparator_type cmp_{};
  std::function<std::uint64_t()> clock_;
  std::vector<std::unique_ptr<shard>> shards_;
  std::atomic<bool> running_{false};
  std::mutex lifecycle_mu_;
  mutable std::shared_mutex shards_mu_;  // guards shards_ against start/stop while submitting
  std::string last_message_;
  std::uint64_t term_ = 0;
  mutable std::mutex stats_mu_;
  std::atomic<std::size_t> largest_group_{0};
  std::atomic<std::size_t> groups_{0};
  std::atomic<std::size_t> grouped_writes_{0};
  std::atomic<std::size_t> evictions_{0};
  std::size_t shards_count_ = 1;
  write_stats last_stats_;
};

}  // namespace eloqstore
