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
//
// Layout: this file holds the lifecycle, submission with back-pressure, the facade and the
// scan ranges; the shards' runtime is detail/shard/ (loops, request handlers, partition
// registry), the commit protocol detail/commit/, the tree algorithms detail/btree/.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <range/v3/view/facade.hpp>

#include <eloqstore/comparator.hpp>
#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/io/store_root.hpp>
#include <eloqstore/detail/shard/loop.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/options.hpp>
#include <eloqstore/request.hpp>
#include <eloqstore/stats.hpp>
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

// The store is implemented in terms of its shards' runtime (detail/shard/): this file holds
// the lifecycle, submission with back-pressure, the facade and the scan ranges.
template <typename Traits>
class EloqStore : private detail::shard_runtime<Traits> {
  static_assert(store_traits<Traits>, "Traits must satisfy eloqstore::store_traits");
  static_assert(traits_checks<Traits>::ok);
  using runtime = detail::shard_runtime<Traits>;
  using runtime::clock_;
  using runtime::cmp_;
  using runtime::current_shard;
  using runtime::io_;
  using runtime::last_stats_;
  using runtime::log_;
  using runtime::metrics_;
  using runtime::metrics_mu_;
  using runtime::now_us;
  using runtime::on_shard_thread;
  using runtime::opts_;
  using runtime::run_shard;
  using runtime::shards_count_;
  using runtime::stats_mu_;
  using runtime::term_;
  using typename runtime::shard;

 public:
  using traits_type = Traits;
  using comparator_type = typename Traits::comparator;
  using io_type = typename Traits::io_type;
  using write_stats = detail::writer_stats;

  // Owns an I/O backend made by Traits::make_io(opts). The options are kept normalized
  // (options::normalized(): cloud mode forces append mode and fixes its limits); they are
  // never written again, as client threads read them.
  explicit EloqStore(options opts) : runtime(opts.normalized()) {}
  // Uses `io`, which must outlive the store (tests keep one backend across restarts).
  EloqStore(options opts, io_type& io) : runtime(opts.normalized()) { io_ = &io; }
  EloqStore(const EloqStore&) = delete;
  EloqStore& operator=(const EloqStore&) = delete;
  ~EloqStore() { stop(); }

  [[nodiscard]] const options& opts() const noexcept { return opts_; }
  [[nodiscard]] std::uint64_t term() const noexcept { return term_; }
  [[nodiscard]] bool running() const noexcept { return running_.load(std::memory_order_acquire); }
  [[nodiscard]] io_type& io() noexcept { return *io_; }
  [[nodiscard]] const comparator_type& comparator() const noexcept { return cmp_; }

  // Replaces the clock used for expiry (Unix milliseconds). Call while stopped.
  void set_clock(std::function<std::uint64_t()> now_ms) { clock_ = std::move(now_ms); }

  // Validates the options, opens the backend and starts the shard threads, as process term
  // `term` (cloud mode: the term that claims the partitions this process opens; a partition
  // a newer term owns fails with error::expired_term). No-op if running.
  [[nodiscard]] error start(std::uint64_t term = 0) {
    std::lock_guard lock(lifecycle_mu_);
    if (running()) {
      return error::ok;
    }
    if (const auto v = opts_.validate(); !v.ok()) {
      last_message_ = v.message;
      return v.code;
    }
    if (const auto v = missing_feature(opts_); !v.ok()) {
      last_message_ = v.message;
      return v.code;
    }
    term_ = term;
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
    if constexpr (requires(io_type & b) { b.configure_cache(opts_); }) {
      io_->configure_cache(opts_);  // cloud mode's cache budget
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
    {
      std::lock_guard lock_metrics(metrics_mu_);
      while (metrics_.size() < opts_.num_threads) {
        metrics_.push_back(std::make_unique<detail::shard_metrics>());
      }
    }
    for (std::size_t i = 0; i < opts_.num_threads; ++i) {
      shards.push_back(std::make_unique<shard>(*io_, opts_, cache_pages));
      shards.back()->index = i;
      shards.back()->metrics = metrics_[i].get();
    }
    for (auto& s : shards) {
      s->thread = std::thread([this, sh = s.get()] { run_shard(*sh); });
    }
    {
      std::unique_lock lock_shards(shards_mu_);
      shards_ = std::move(shards);
      running_.store(true, std::memory_order_release);
    }
    unlock.armed = false;
    start_archive_cron();
    start_prewarm();
    start_upload_retry();
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
    stop_archive_cron();  // first: its archive requests complete while the shards run
    stop_upload_retry();  // (the same)
    stop_prewarm();
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
    {
      std::lock_guard prewarm_lock(this->prewarm_mu_);  // a list the shards dropped ends here
      if (this->prewarm_.started && !this->prewarm_.done) {
        this->prewarm_.done = true;
        this->prewarm_.reason =
            this->prewarm_.reason == error::ok ? error::not_running : this->prewarm_.reason;
      }
    }
    std::unique_lock lock_shards(shards_mu_);  // waits for submitters still inside
    shards_.clear();
    io_->close();
    root_.release();  // last: another store may open the paths now
  }

  // What the prewarm of the cloud cache has done so far (options::prewarm_cloud_cache).
  [[nodiscard]] prewarm_progress prewarm_status() const {
    std::lock_guard lock(this->prewarm_mu_);
    return this->prewarm_;
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

 public:
  // Every partition the store holds (a directory under the store paths; in cloud mode the
  // bucket's), in no particular order. error::not_running while stopped.
  error list_partitions(std::vector<table_ident>& parts) { return partitions_on_disk(parts); }

 private:
  // Every partition directory under the store paths (drop_table, global_archive).
  error partitions_on_disk(std::vector<table_ident>& parts) {
    std::shared_lock lock_shards(shards_mu_);
    if (!running()) {
      return error::not_running;
    }
    return io_->list_partitions(parts);
  }

  // The archive cron (spec 9): with append mode, num_retained_archives > 0 and
  // archive_interval_secs > 0, a thread runs global_archive() every interval (the first
  // after one whole interval) until stop().
  void start_archive_cron() {
    if (!opts_.data_append_mode || opts_.num_retained_archives == 0 ||
        opts_.archive_interval_secs == 0) {
      return;
    }
    cron_stop_ = false;
    cron_ = std::thread([this] {
      const std::chrono::seconds interval(opts_.archive_interval_secs);
      std::unique_lock lock(cron_mu_);
      while (!cron_cv_.wait_for(lock, interval, [&] { return cron_stop_; })) {
        lock.unlock();
        if (const error e = global_archive(); e != error::ok) {
          // (Each partition's archive request is counted in stats() as a request; the cron
          // thread is no shard, so background_errors does not count this.)
          try {
            log_.log(log_level::warning, "archive cron failed: " + std::string(error_message(e)));
          } catch (const std::bad_alloc&) {  // (no memory for the message: nothing to say it with)
          }
        }
        lock.lock();
      }
    });
  }
  // Cloud prewarm (spec 8.4): a thread lists the bucket once (io's prewarm_plan) and hands
  // each shard its files; the shards fetch them when they have nothing else to do
  // (detail/shard/loop.hpp). stop() ends the listing and the shards drop what is left.
  void start_prewarm() {
    if constexpr (object_tier_io<io_type>) {
      if (!opts_.prewarm_cloud_cache) {
        return;
      }
      {
        std::lock_guard lock(this->prewarm_mu_);
        this->prewarm_ = prewarm_progress{};
        this->prewarm_.started = true;
        this->prewarm_shards_ = shards_.size();
      }
      prewarm_stop_.store(false);
      prewarm_thread_ = std::thread([this] {
        std::vector<std::vector<typename io_type::prewarm_file>> plan;
        const error e = io_->prewarm_plan(term_, opts_.partition_filter, prewarm_stop_, plan);
        std::shared_lock lock_shards(shards_mu_);
        for (std::size_t i = 0; i < shards_.size(); ++i) {
          if (e != error::ok || i >= plan.size() || plan[i].empty()) {
            this->prewarm_shard_done(e);
            continue;
          }
          {
            std::lock_guard lock(this->prewarm_mu_);
            this->prewarm_.listed += plan[i].size();
          }
          shard& s = *shards_[i];
          {
            std::lock_guard ql(s.mu);
            for (auto& f : plan[i]) {
              s.prewarm.emplace_back(std::move(f.table), std::move(f.name));
            }
            s.prewarm_active = true;
          }
          this->notify_shard(&s);
        }
      });
    }
  }
  void stop_prewarm() {
    if (prewarm_thread_.joinable()) {
      prewarm_stop_.store(true);
      prewarm_thread_.join();
    }
  }

  // Cloud mode: background uploads that failed (durability::local commits, acknowledged and
  // waiting for the bucket) are tried again by a thread, not only by the partition's next
  // write: every upload_retry_first it asks cloud_io for the partitions whose last upload
  // failed and starts the background upload of each (upload_start_request: beside the
  // partition's writes, never in their lane), at once the first time, then waiting twice as
  // long after each try, up to upload_retry_most; a partition that caught up starts over.
  static constexpr std::chrono::milliseconds upload_retry_first{500};
  static constexpr std::chrono::milliseconds upload_retry_most{30000};

  void start_upload_retry() {
    if constexpr (object_tier_io<io_type>) {
      retry_stop_ = false;
      retry_ = std::thread([this] { run_upload_retry(); });
    }
  }

  void run_upload_retry() {
    if constexpr (object_tier_io<io_type>) {
      using clock = std::chrono::steady_clock;
      struct attempt {
        upload_start_request req;
        // Set by the request's callback, its last touch of anything here: the request may
        // be reused or freed only once this is false again.
        std::shared_ptr<std::atomic<bool>> busy = std::make_shared<std::atomic<bool>>(false);
        clock::time_point next = clock::now();
        std::chrono::milliseconds delay = upload_retry_first;
      };
      std::unordered_map<table_ident, std::unique_ptr<attempt>> attempts;
      std::vector<table_ident> failed;
      std::unique_lock lock(retry_mu_);
      while (!retry_cv_.wait_for(lock, upload_retry_first, [&] { return retry_stop_; })) {
        lock.unlock();
        io_->failed_uploads(failed);
        std::erase_if(attempts, [&](const auto& a) {  // caught up: starts over next time
          return !a.second->busy->load() &&
                 std::find(failed.begin(), failed.end(), a.first) == failed.end();
        });
        const auto now = clock::now();
        for (const table_ident& t : failed) {
          std::unique_ptr<attempt>& slot = attempts[t];
          if (slot == nullptr) {
            slot = std::make_unique<attempt>();
          }
          attempt& a = *slot;
          if (a.busy->load() || now < a.next) {
            continue;
          }
          a.next = now + a.delay;
          a.delay = std::min(a.delay * 2, upload_retry_most);
          a.req.set_args(t);
          a.busy->store(true);
          if (!exec_async(a.req, 0, [busy = a.busy](request&) { busy->store(false); })) {
            a.busy->store(false);
          }
        }
        lock.lock();
      }
      lock.unlock();
      for (const auto& [t, a] : attempts) {  // the shards still run: these complete at once
        while (a->busy->load()) {
          std::this_thread::yield();
        }
      }
    }
  }

  void stop_upload_retry() { stop_thread(retry_, retry_mu_, retry_cv_, retry_stop_); }
  void stop_archive_cron() { stop_thread(cron_, cron_mu_, cron_cv_, cron_stop_); }

  // Ends a background thread that waits on `cv` until `stop` is set, and joins it.
  static void stop_thread(std::thread& t, std::mutex& mu, std::condition_variable& cv, bool& stop) {
    if (!t.joinable()) {
      return;
    }
    {
      std::lock_guard lock(mu);
      stop = true;
    }
    cv.notify_all();
    t.join();
  }

  // Options the traits cannot honour are refused, never ignored: a store asked for the
  // object-store tier that silently kept everything local would lose what its user counted
  // on. So are archives without append mode.
  [[nodiscard]] static validation_result missing_feature(const options& o) {
    if (o.cloud_mode() != object_tier_io<io_type>) {
      return {error::invalid_args,
              o.cloud_mode()
                  ? "cloud_store_path needs traits whose io_type keeps files in an object store "
                    "(cloud_io, eloqstore/cloud.hpp)"
                  : "this io_type keeps files in an object store: set cloud_store_path"};
    }
    if (o.num_retained_archives > 0 && !o.data_append_mode) {
      return {error::invalid_args,
              "num_retained_archives needs data_append_mode: archives name pages that "
              "in-place writes would reuse"};
    }
    return {};
  }

  enum class submitted { yes, stopped, pending };

  submitted submit(request& req, std::uint64_t user_data, request::callback_type cb) {
    // Completed on the caller's thread: a write to a read-only store (refused before any
    // shard sees it), and a drop (which submits requests of its own).
    const bool refused = opts_.read_only && !req.read_only();
    if (refused || req.type() == request_type::drop_table) {
      if (!running()) {
        return submitted::stopped;
      }
      if (!req.prepare(user_data, std::move(cb))) {
        return submitted::pending;
      }
      error e = error::no_permission;
      if (refused) {
        req.why_ = "the store was opened read-only";
      } else {
        e = error::out_of_mem;
        try {
          e = drop_table(detail::request_cast<drop_table_request>(req).table_name_);
        } catch (const std::bad_alloc&) {
        }
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
      immediate = req.table().valid()
                      ? enqueue(*shards_[req.table().shard_index(shards_.size())], req)
                      : error::invalid_args;
    }
    if (immediate != error::ok) {
      req.set_done(immediate);  // outside the locks: the callback may submit again
    }
    return submitted::yes;
  }

  // Queues `req` on shard s. Back-pressure: a full queue blocks the caller (never a shard
  // thread, which could be the one that has to drain it). REQUIRES: shards_mu_ held shared.
  error enqueue(shard& s, request& req) {
    std::unique_lock ql(s.mu);
    const std::size_t capacity = std::max<std::uint32_t>(1, opts_.request_queue_capacity);
    if (!on_shard_thread()) {
      s.not_full.wait(ql, [&] { return s.stopping || s.queue.size() < capacity; });
    }
    if (s.stopping) {
      return error::not_running;
    }
    try {
      s.queue.push_back(&req);
    } catch (const std::bad_alloc&) {
      return error::out_of_mem;  // completed by the caller: never left pending
    }
    s.cv.notify_one();
    // The shard's own thread (a callback submitting again) drains its queue before it next
    // blocks: only other threads need to wake it.
    if (s.notify != nullptr && s.queue.size() == 1 && current_shard() != &s) {
      s.notify(s.notify_arg);
    }
    return error::ok;
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

  error write(const table_ident& t, std::vector<write_entry> batch,
              durability d = durability::uploaded) {
    batch_write_request r;
    r.set_args(t, std::move(batch));
    r.set_durability(d);
    return exec_sync(r);
  }
  // Cloud mode: waits until every write of t acknowledged before the call is in the bucket
  // (upload_wait_request). ok at once in local mode.
  error wait_uploaded(const table_ident& t) {
    upload_wait_request r;
    r.set_args(t);
    return exec_sync(r);
  }
  // Cloud mode: how far the uploads of t's commits have got (all zero in local mode, or for
  // a partition not opened since start()). Any thread.
  [[nodiscard]] upload_progress upload_status(const table_ident& t) {
    if constexpr (object_tier_io<io_type>) {
      if (io_ != nullptr) {
        const auto m = io_->uploads_of(t);
        return upload_progress{m.committed, m.uploaded, m.last};
      }
    }
    return {};
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
    if (const error e = partitions_on_disk(parts); e != error::ok) {
      return e;
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

  // ---- archives (append mode: archive_request, restore_request) -----------------------------

  // Archives partition t at `timestamp` (microseconds; 0: now); *taken gets the timestamp.
  error archive(const table_ident& t, std::uint64_t timestamp = 0, std::uint64_t* taken = nullptr) {
    archive_request r;
    r.set_args(t, timestamp);
    const error e = exec_sync(r);
    if (taken != nullptr) {
      *taken = r.timestamp();
    }
    return e;
  }
  // Makes archive `timestamp` partition t's state; *saved gets the archive of the state it
  // replaced (restore that to roll forward again).
  error restore(const table_ident& t, std::uint64_t timestamp, std::uint64_t* saved = nullptr) {
    restore_request r;
    r.set_args(t, timestamp);
    const error e = exec_sync(r);
    if (saved != nullptr) {
      *saved = r.saved_timestamp();
    }
    return e;
  }
  // The archive timestamps of partition t, oldest first.
  error list_archives(const table_ident& t, std::vector<std::uint64_t>& out) {
    list_archives_request r;
    r.set_args(t);
    const error e = exec_sync(r);
    out = r.timestamps();
    return e;
  }

  // Archives every partition under the store paths that options::partition_filter accepts,
  // all at one timestamp (microseconds; 0: now), at most max_archive_tasks at a time.
  // Partitions with nothing to archive are skipped (in the reference they fail the whole
  // request). Returns the first other error; *taken gets the timestamp.
  error global_archive(std::uint64_t timestamp = 0, std::uint64_t* taken = nullptr) {
    std::vector<table_ident> parts;
    if (const error e = partitions_on_disk(parts); e != error::ok) {
      return e;
    }
    if (opts_.partition_filter) {
      std::erase_if(parts, [&](const table_ident& t) { return !opts_.partition_filter(t); });
    }
    const std::uint64_t ts = timestamp != 0 ? timestamp : this->now_us();
    if (taken != nullptr) {
      *taken = ts;
    }
    // The waiter outlives every callback: the last one touches it under its mutex, and this
    // returns only after seeing the count reach zero under the same mutex.
    struct waiter {
      std::mutex mu;
      std::condition_variable cv;
      std::size_t in_flight = 0;
      error first = error::ok;
    } w;
    std::vector<std::unique_ptr<archive_request>> reqs;
    const std::size_t most = std::max<std::size_t>(1, opts_.max_archive_tasks);
    const auto note = [&w](error e) {
      if (e != error::ok && e != error::not_found && w.first == error::ok) {
        w.first = e;
      }
    };
    for (const table_ident& t : parts) {
      {
        std::unique_lock lock(w.mu);
        w.cv.wait(lock, [&] { return w.in_flight < most; });
        ++w.in_flight;
      }
      auto& r = *reqs.emplace_back(std::make_unique<archive_request>());
      r.set_args(t, ts);
      const bool sent = exec_async(r, 0, [&w, note](request& done) {
        std::lock_guard lock(w.mu);
        note(done.status());
        --w.in_flight;
        w.cv.notify_all();
      });
      if (!sent) {
        std::lock_guard lock(w.mu);
        note(error::not_running);
        --w.in_flight;
      }
    }
    std::unique_lock lock(w.mu);
    w.cv.wait(lock, [&] { return w.in_flight == 0; });
    return w.first;
  }

  // Checks the tree structure of a partition (see detail/btree/verify.hpp).
  error verify(const table_ident& t, std::string& problem) {
    verify_request r;
    r.set_args(t);
    const error e = exec_sync(r);
    problem = r.problem();
    return e;
  }

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

 public:
  // Every shard's statistics so far (stats.hpp): counters, requests by type with their
  // latencies, write group sizes. They survive stop() and start(); a shard the store has not
  // started yet is absent. Safe from any thread, also while stopped.
  [[nodiscard]] store_stats stats() const {
    store_stats st;
    std::lock_guard lock(metrics_mu_);
    st.shards.reserve(metrics_.size());
    for (const auto& m : metrics_) {
      st.shards.push_back(m->snapshot());
    }
    return st;
  }

  // Sends the store's log messages of level `least` and above to `cb` (stats.hpp: it must be
  // thread-safe and must not call into the store); an empty callback restores the default
  // (warnings and errors to stderr). Background work (file GC, cache eviction, uploads,
  // archives, compaction, manifest rewrites) reports its failures here.
  void set_log_callback(log_callback cb, log_level least = log_level::info) {
    log_.set(cb ? least : log_level::warning, std::move(cb));
  }

  // Partitions evicted from the root-meta caches so far.
  [[nodiscard]] std::size_t meta_evictions() const {
    return stats().total()[counter::meta_evictions];
  }
  // Compaction rounds run so far (append mode): each moved pages and committed, or found
  // nothing to move.
  [[nodiscard]] std::size_t compaction_rounds() const {
    return stats().total()[counter::compaction_rounds];
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
  // The data page caches of all shards, summed (pages): capacity, page buffers allocated,
  // pages held, pages in the protected segment. Zero when not running or without a cache.
  [[nodiscard]] detail::data_cache::stats data_cache_stats() const {
    detail::data_cache::stats sum;
    std::shared_lock lock(shards_mu_);
    for (const auto& s : shards_) {
      const auto one = s->pages.data_cache_stats();
      sum.capacity += one.capacity;
      sum.allocated += one.allocated;
      sum.cached += one.cached;
      sum.protected_pages += one.protected_pages;
    }
    return sum;
  }
  // The most write requests committed together so far (group commit).
  [[nodiscard]] std::size_t largest_group() const { return stats().total().group_sizes.max; }
  // Writer passes so far and the write requests they carried (their ratio is the average
  // group size of group commit).
  [[nodiscard]] std::pair<std::size_t, std::size_t> write_groups() const {
    const histogram groups = stats().total().group_sizes;
    return {groups.count, groups.sum};
  }
  [[nodiscard]] write_stats last_write_stats() const {
    std::lock_guard lock(stats_mu_);
    return last_stats_;
  }

 private:
  std::unique_ptr<io_type> owned_io_;
  detail::store_root root_;  // the store paths' locks, held from start() to stop()
  std::vector<std::unique_ptr<shard>> shards_;
  std::atomic<bool> running_{false};
  std::mutex lifecycle_mu_;
  mutable std::shared_mutex shards_mu_;  // guards shards_ against start/stop while submitting
  std::string last_message_;
  // The archive cron's thread, and how stop() ends its wait.
  std::thread cron_;
  std::thread prewarm_thread_;
  std::atomic<bool> prewarm_stop_{false};
  std::mutex cron_mu_;
  std::condition_variable cron_cv_;
  bool cron_stop_ = false;
  // Cloud mode's thread that tries failed background uploads again (start_upload_retry).
  std::thread retry_;
  std::mutex retry_mu_;
  std::condition_variable retry_cv_;
  bool retry_stop_ = false;
};

}  // namespace eloqstore
