// cloud_io<Local, Store>: cloud mode as an io backend (spec section 8). The object store
// (Store, an object_store) holds the truth; the local backend (Local) holds a cache of it.
// Every partition file the engine names lives at `[<prefix>/]<table>.<partition>/<name>` in
// the bucket (detail/cloud/term.hpp), and cloud_io moves files between the two as the commit
// protocol reaches its steps, so the engine's layers stay as they are in local mode:
//
// * Upload at commit. A commit is durable locally when its manifest is (sync of the manifest
//   after a log append, or write_file_atomic of a snapshot); then flush(t) PUTs every data
//   file written since its last upload, whole, and after them the manifest, so the bucket
//   never holds a manifest whose files it lacks. A failed upload fails the call, so the
//   request fails (the reference aborts the process). An archive is PUT after a flush. With
//   uploads deferred (durability::local, "background uploads" below) the commit returns after
//   the local fdatasync and the engine flushes later.
// * Fencing. The first read of `manifest_<T>` for a partition claims it for term T
//   (CURRENT_TERM compare-and-swap), then takes the manifest from the bucket: manifest_<T>,
//   or the newest older one, which is promoted (written as manifest_<T>, locally and in the
//   bucket). After every manifest upload CURRENT_TERM is read again: if a newer term has
//   claimed the partition, the call fails with expired_term and the partition stays expired
//   in this process (every later write fails the same way). A newer term reads the bucket only
//   after its claim, so whatever was acknowledged here before the claim is in what it reads.
//   A term never uploads or deletes objects of another term's names, and its GC
//   (remove) runs only while CURRENT_TERM is still its own.
// * Download on open. A read of a data file or manifest missing from the cache GETs it and
//   writes it to the cache (atomically), then reads it.
// * A bounded cache (spec 8.3; bookkeeping in detail/cloud/local_cache.hpp). Each shard has
//   local_space_limit / num_threads of it (the shard of partition p is p % num_threads, the
//   store's). A file is charged its nominal size (data_file_size, or manifest_limit for a
//   manifest or archive; more if it is larger). A file that does not fit evicts the least
//   recently used files that are clean (uploaded), unpinned and idle, down to the low mark
//   (limit - limit / reserve_space_ratio); out_of_space only when nothing evictable makes
//   room. Every operation on a file pins it for its duration, so a reader never loses its
//   file to eviction; a task that needs a file being downloaded or evicted parks until that
//   is done (one download per file, however many readers). Files are read by name, never
//   through long-lived handles (cloud_io offers no file_handles): an open descriptor would
//   keep an evicted file's blocks on disk.
// * Reuse at start (allow_reuse_local_caches): open() registers the data files, manifests
//   and archives the cache directories hold (interrupted downloads, `.tmp`, are removed) and
//   trims them to the budget. Without it, a non-empty cache fails open() (invalid_args).
// * list(t) is the bucket's files of the partition (of this term and older terms: a newer
//   term's files are not ours to see or collect) together with the cache's;
//   list_partitions() the bucket's partitions together with the cache's.
//
// Costs: per flush one PUT per data file written since the last and one for the manifest,
// one GET of CURRENT_TERM; one GET per cache miss (a data file written from its start is new:
// never looked for in the bucket).
// Every request is counted for the shard of its partition (detail/cloud/metered_store.hpp):
// requests_of_shard(i), requests_of_no_shard() (listings of the whole bucket), requests(),
// each with its cost() at S3 prices.
//
// Prewarm (spec 8.4): prewarm_plan() lists the bucket once and orders each shard's data
// files newest first; prewarm(t, name) downloads one if it fits without evicting anything.
// The store runs them (store.hpp, detail/shard/loop.hpp).
//
// Thread safety: as the local backend (calls for one partition come from one thread, its
// shard's); the partition table is shared under a mutex, each shard's cache has its own, the
// object store is thread-safe.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/cloud/local_cache.hpp>
#include <eloqstore/detail/cloud/metered_store.hpp>
#include <eloqstore/detail/cloud/term.hpp>
#include <eloqstore/detail/io/file_names.hpp>
#include <eloqstore/detail/io/page_ops.hpp>
#include <eloqstore/detail/util/parse.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/object/object_store.hpp>
#include <eloqstore/options.hpp>
#include <eloqstore/sched/remote.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore {

template <io_backend Local, object_store Store>
class cloud_io : public Local {
 public:
  using local_type = Local;
  using store_type = Store;

  // `prefix`: the key prefix inside the bucket (the part of cloud_store_path after the
  // bucket, may be empty). The local backend is built from `local_args`.
  template <typename... A>
  cloud_io(std::shared_ptr<Store> store, std::string prefix, A&&... local_args)
      : Local(std::forward<A>(local_args)...),
        store_(std::move(store)),
        meter_(*store_),
        prefix_(std::move(prefix)) {
    while (!prefix_.empty() && prefix_.back() == '/') {
      prefix_.pop_back();
    }
  }

  static constexpr bool object_tier = true;

  // The cache's budget and geometry. The store calls configure_cache(options) before open();
  // without a call the cache is unbounded, one shard, and a non-empty cache is refused.
  struct cache_settings {
    std::uint64_t limit = std::numeric_limits<std::uint64_t>::max();  // all shards together
    std::size_t shards = 1;
    std::uint64_t data_file_bytes = 0;  // the charge of a data file
    std::uint64_t manifest_bytes = 0;   // the charge of a manifest or archive
    std::uint16_t reserve_space_ratio = 100;
    bool reuse = false;              // allow_reuse_local_caches
    std::uint32_t upload_batch = 5;  // max_upload_batch: file uploads of a shard at once
  };
  // Call while closed.
  void configure_cache(const cache_settings& c) { settings_ = c; }
  void configure_cache(const options& opts) {
    const options o = opts.normalized();
    cache_settings c;
    c.limit = o.local_space_limit;
    c.shards = o.num_threads == 0 ? 1 : o.num_threads;
    c.data_file_bytes = o.data_file_size();
    c.manifest_bytes = o.manifest_limit;
    c.reserve_space_ratio = o.reserve_space_ratio == 0 ? 1 : o.reserve_space_ratio;
    c.reuse = o.allow_reuse_local_caches;
    c.upload_batch = o.max_upload_batch == 0 ? 1 : o.max_upload_batch;
    configure_cache(c);
  }

  // What the cache holds, over all shards.
  struct cache_usage {
    std::uint64_t used = 0;   // bytes charged
    std::uint64_t limit = 0;  // bytes, all shards
    std::size_t files = 0;
    std::uint64_t evictions = 0;
  };
  [[nodiscard]] cache_usage cache_used() {
    cache_usage u;
    for (const auto& slot : slots_) {
      std::lock_guard lock(slot->mu);
      u.used += slot->files.used();
      u.limit += slot->files.limit();
      u.files += slot->files.files();
      u.evictions += slot->files.evictions();
    }
    return u;
  }

  // What this cache asked of the object store since open(): per shard (the partitions'
  // requests), for no shard (listings of the whole bucket), and in all.
  [[nodiscard]] std::size_t request_shards() const noexcept { return meter_.shards(); }
  [[nodiscard]] object_requests requests_of_shard(std::size_t i) const {
    return meter_.of_shard(i);
  }
  [[nodiscard]] object_requests requests_of_no_shard() const { return meter_.other(); }
  [[nodiscard]] object_requests requests() const { return meter_.total(); }

  // Opens the cache (registering what it holds, see the header comment), then starts the
  // object store (when it has a start(): s3_store creates its bucket and threads).
  [[nodiscard]] error open() {
    if (const error e = Local::open(); e != error::ok) {
      return e;
    }
    if (const error e = adopt_cache(); e != error::ok) {
      Local::close();
      return e;
    }
    if constexpr (requires(Store & s) {
                    { s.start() } -> std::same_as<error>;
                  }) {
      if (const error e = store_->start(); e != error::ok) {
        Local::close();
        return e;
      }
    }
    return error::ok;
  }

  [[nodiscard]] Store& object_store() noexcept { return *store_; }
  [[nodiscard]] Local& local() noexcept { return *this; }
  [[nodiscard]] const std::string& prefix() const noexcept { return prefix_; }

  // ---- reads: the cache, filled from the bucket on a miss ------------------------------------

  error read(const table_ident& t, std::string_view name, std::uint64_t offset,
             std::span<char> buf) {
    return cached(t, name, [&] { return Local::read(t, name, offset, buf); });
  }

  error read_file(const table_ident& t, std::string_view name, std::string& out) {
    const detail::parsed_file_name f = detail::parse_file_name(name);
    if (f.kind == detail::file_kind::manifest) {
      if (const error e = open_manifest(t, f.term); e != error::ok) {
        return e;
      }
    }
    // (A claimed partition's manifest missing from the cache comes back from the bucket too.)
    return cached(t, name, [&] { return Local::read_file(t, name, out); });
  }

  // No file handles: a descriptor held open would keep an evicted file on disk, and reads
  // through it would not count as uses of the file.
  template <typename Ref>
  error open_file(const table_ident&, std::string_view, Ref&) = delete;

  template <typename Reads>
  requires batched_reads<Local> error read_pages(const table_ident& t, const Reads& reads) {
    std::vector<std::string_view> names;
    for (const page_read& r : reads) {
      if (fetchable(r.name) && std::find(names.begin(), names.end(), r.name) == names.end()) {
        names.push_back(r.name);
      }
    }
    return in_groups(t, names, std::vector<access>(names.size(), access::read),
                     [&](std::span<const std::string_view> group, bool whole) {
                       if (whole) {
                         return Local::read_pages(t, reads);
                       }
                       const auto part = part_of(reads, group, group.data() == names.data());
                       return Local::read_pages(t, std::span<const page_read>(part));
                     });
  }

  // ---- writes: into whole files, uploaded when they become durable ---------------------------
  //
  // A write into a file the cache does not hold (the tail data file after a restart with an
  // empty cache) first brings the file from the bucket: the upload at its sync sends the whole
  // file, which must not be the new pages alone.

  error write(const table_ident& t, std::string_view name, std::uint64_t offset,
              std::span<const char> data) {
    if (!fetchable(name)) {
      return Local::write(t, name, offset, data);
    }
    const bool starts =
        offset == 0 && detail::parse_file_name(name).kind == detail::file_kind::data;
    if (const error e =
            acquire(t, name, starts ? access::create : access::write, offset + data.size());
        e != error::ok) {
      return e;
    }
    const error e = Local::write(t, name, offset, data);
    note_write_outcome(t, name, e == error::ok);
    if (detail::parse_file_name(name).kind == detail::file_kind::manifest) {
      std::lock_guard lock(mu_);
      uploads_[t].written_len = offset + data.size();  // a log record: what a sync commits
    }
    release(t, name, bucket_copy::written);  // (a failed write may have written part of it)
    return e;
  }

  template <typename Writes>
  requires batched_io<Local> error write_pages(const table_ident& t, const Writes& writes) {
    std::vector<access> hows;
    const std::vector<std::string_view> names = written_files(writes, hows);
    return in_groups(t, names, hows, [&](std::span<const std::string_view> group, bool whole) {
      if (whole) {
        return Local::write_pages(t, writes);
      }
      const auto part = part_of(writes, group, group.data() == names.data());
      return Local::write_pages(t, std::span<const page_write>(part));
    });
  }

  // Streamed page writes: the local backend's ticket, and pins that keep the files in the
  // cache until the writes finish. They are released as written when the writes are done
  // (finish_write_pages, or the ticket's end: its local ticket goes first and waits), so a
  // flush that read a file before the writes landed does not take it for uploaded, and
  // eviction cannot unlink it under them.
  class write_ticket {
   public:
    write_ticket() = default;
    write_ticket(write_ticket&&) noexcept = default;
    write_ticket& operator=(write_ticket&& o) noexcept {
      inner_ = std::move(o.inner_);
      pins_ = std::move(o.pins_);
      return *this;
    }

   private:
    friend class cloud_io;
    struct pins {
      cloud_io* io = nullptr;
      table_ident table;
      std::vector<std::string> names;
      pins() = default;
      pins(pins&& o) noexcept
          : io(std::exchange(o.io, nullptr)),
            table(std::move(o.table)),
            names(std::move(o.names)) {}
      pins& operator=(pins&& o) noexcept {
        if (this != &o) {
          drop();
          io = std::exchange(o.io, nullptr);
          table = std::move(o.table);
          names = std::move(o.names);
        }
        return *this;
      }
      ~pins() { drop(); }
      void drop() noexcept {
        if (io != nullptr) {
          {
            std::lock_guard lock(io->mu_);
            auto& streaming = io->uploads_[table].streaming;
            for (const std::string& n : names) {
              if (const auto it = streaming.find(n); it != streaming.end() && --it->second == 0) {
                streaming.erase(it);
              }
            }
          }
          for (const std::string& n : names) {
            io->release(table, n, bucket_copy::written);
          }
          io = nullptr;
          names.clear();
        }
      }
    };
    pins pins_;  // (declared first: destroyed after inner_, once the writes are done)
    typename detail::write_ticket_of<Local>::type inner_;
  };

  // (A batch over more files than the cache has room for at once is written group by group
  // before this returns, its ticket left done.)
  template <typename Writes>
  requires async_page_writes<Local> error begin_write_pages(const table_ident& t,
                                                            const Writes& writes,
                                                            write_ticket& ticket) {
    std::vector<access> hows;
    const std::vector<std::string_view> names = written_files(writes, hows);
    return in_groups(t, names, hows, [&](std::span<const std::string_view> group, bool whole) {
      if (whole) {
        // Pinned again for the ticket (held files: no room needed, nothing parks).
        typename write_ticket::pins pins;
        pins.io = this;
        pins.table = t;
        for (const std::string_view n : names) {
          if (acquire(t, n, access::write, 0, false) == error::ok) {
            pins.names.emplace_back(n);
          }
        }
        {
          std::lock_guard lock(mu_);
          auto& streaming = uploads_[t].streaming;
          for (const std::string& n : pins.names) {
            ++streaming[n];
          }
        }
        const error e = Local::begin_write_pages(t, writes, ticket.inner_);
        ticket.pins_ = std::move(pins);
        return e;
      }
      const auto part = part_of(writes, group, group.data() == names.data());
      return Local::write_pages(t, std::span<const page_write>(part));
    });
  }

  template <typename Ticket = write_ticket>
  requires async_page_writes<Local> error finish_write_pages(Ticket& ticket) {
    const error e = Local::finish_write_pages(ticket.inner_);
    ticket.pins_.drop();
    return e;
  }

  // A data file is synced locally and stays dirty: the flush that uploads the manifest
  // referencing it uploads it first. A synced manifest is a commit (committed()).
  error sync(const table_ident& t, std::string_view name) {
    if (const error e = writable(t); e != error::ok) {
      return e;
    }
    const detail::parsed_file_name f = detail::parse_file_name(name);
    if (f.kind == detail::file_kind::data) {
      // A background flush may have uploaded the file since its writes and the cache evicted
      // it: the bucket holds it whole, which is as durable as a sync.
      const error e = Local::sync(t, name);
      return e == error::not_found && !cached_now(t, name) ? error::ok : e;
    }
    if (f.kind != detail::file_kind::manifest) {
      return Local::sync(t, name);
    }
    // (Pinned meanwhile: a flush running while the sync is parked must not see it evicted.)
    if (const error e = acquire(t, name, access::read); e != error::ok) {
      return e;
    }
    error e = Local::sync(t, name);
    if (e == error::ok) {
      e = committed(t, name, false);
    }
    release(t, name);
    return e;
  }

  // A manifest replaced whole (a snapshot) is a commit (committed()); an archive is uploaded
  // after everything it may reference.
  error write_file_atomic(const table_ident& t, std::string_view name, std::span<const char> data) {
    if (const error e = writable(t); e != error::ok) {
      return e;
    }
    if (!fetchable(name)) {
      return Local::write_file_atomic(t, name, data);
    }
    if (const error e = acquire(t, name, access::replace, data.size()); e != error::ok) {
      return e;
    }
    const error e = Local::write_file_atomic(t, name, data);
    const detail::parsed_file_name f = detail::parse_file_name(name);
    if (f.kind == detail::file_kind::manifest) {
      std::lock_guard lock(mu_);
      upload_state& u = uploads_[t];
      u.written_len = data.size();
      ++u.manifest_gen;  // (renamed over: a flush reading the old one reads again)
      if (e != error::ok) {
        // The rename may have happened: the local manifest is a snapshot no commit counted.
        // Nothing uploads it before the engine's next manifest write (its next snapshot).
        u.suspended = true;
      }
    }
    release(t, name, bucket_copy::written);
    if (e != error::ok) {
      return e;
    }
    if (f.kind == detail::file_kind::manifest) {
      return committed(t, name, true);
    }
    if (const error fe = flush(t); fe != error::ok) {
      return fe;
    }
    return upload_cached(t, name, f);
  }

  // A file of the partition leaves the bucket, then the cache. Only while this process's term
  // still owns the partition, and never a file of a newer term. While uploads of the
  // partition are pending (background uploads, or a flush running), the bucket's manifest
  // may still name the file: it goes after the next flush instead, the cache keeping it.
  error remove(const table_ident& t, std::string_view name) {
    const detail::parsed_file_name f = detail::parse_file_name(name);
    if (f.kind == detail::file_kind::current_term) {
      return error::invalid_args;
    }
    if (f.kind == detail::file_kind::data || f.kind == detail::file_kind::manifest ||
        f.kind == detail::file_kind::archive) {
      std::uint64_t term = 0;
      if (const error e = owner_term(t, term); e != error::ok) {
        return e;
      }
      if (f.term > term) {
        return error::invalid_args;  // a newer term's file
      }
      if (defer_removal(t, name)) {
        return error::ok;
      }
      if (const error e = still_owner(t, term); e != error::ok) {
        return e;
      }
    }
    return remove_now(t, name, f);
  }

  // ---- background uploads ---------------------------------------------------------------------
  //
  // Every commit is a local manifest write (committed()). With uploads deferred for the
  // partition (defer_uploads, set by the engine around the commit of a batch acknowledged
  // after the local fdatasync), that is all: the commit is on the local disk, a marker file
  // (upload_marker) on disk says the cache holds commits the bucket lacks, and the engine
  // runs flush() in the background. Otherwise the commit flushes before it returns (the
  // reference's only mode).
  //
  // flush(t): one at a time per partition (a second parks until the first is done). It reads
  // the local manifest, then uploads every data file written since its last upload (append
  // mode: a file read later holds at least what the manifest read names), then the manifest,
  // then checks that the term still owns the partition; only then do the removals queued
  // before it start leave the bucket. The bucket so holds a consistent committed state at
  // every instant, and a flush that fails leaves it at the last one (retried by the next).
  //
  // After a restart on the same cache (allow_reuse_local_caches), a partition whose marker
  // is on disk opens from its local manifest when the bucket holds nothing newer of another
  // term, and uploads it (every local data file of it) before the open returns.

  struct upload_marks {
    std::uint64_t committed = 0;  // commits since open
    std::uint64_t uploaded = 0;   // of which in the bucket
    error last = error::ok;       // the last flush's outcome
  };

  // Whether the commits of t that follow defer their uploads to flush().
  void defer_uploads(const table_ident& t, bool on) {
    std::lock_guard lock(mu_);
    if (on || uploads_.contains(t)) {
      uploads_[t].defer = on;
    }
  }

  // Commits of t are waiting for their upload (or one is running).
  [[nodiscard]] bool upload_pending(const table_ident& t) {
    std::lock_guard lock(mu_);
    const auto it = uploads_.find(t);
    return it != uploads_.end() && it->second.pending();
  }

  // The partitions whose last upload failed and that have commits still waiting for it,
  // also while an upload of theirs runs (a partition a newer term took over, or one
  // suspended until its next manifest write, is not among them: a retry could not upload it).
  void failed_uploads(std::vector<table_ident>& out) {
    out.clear();
    std::lock_guard lock(mu_);
    for (auto it = failed_.begin(); it != failed_.end();) {
      const upload_state& st = uploads_[*it];
      const auto claim = claims_.find(*it);
      const bool expired =
          st.last == error::expired_term || (claim != claims_.end() && claim->second.expired);
      if (expired || st.last == error::ok || !st.pending()) {
        it = failed_.erase(it);  // (for good when the partition is a newer term's)
        continue;
      }
      if (!st.suspended) {
        out.push_back(*it);
      }
      ++it;
    }
  }

  // Flushes every partition of t's cache shard with uploads pending, so that their files
  // become evictable: for a write refused with out_of_space while files not yet uploaded
  // fill the cache. True if any flush uploaded something and none failed.
  bool upload_for_room(const table_ident& t) {
    std::vector<table_ident> pending;
    {
      std::lock_guard lock(mu_);
      for (const auto& [p, st] : uploads_) {
        if (&slot_of(p) == &slot_of(t) && st.pending() && !st.suspended) {
          pending.push_back(p);
        }
      }
    }
    bool uploaded = false;
    for (const table_ident& p : pending) {
      if (flush(p) != error::ok) {
        return false;
      }
      uploaded = true;
    }
    return uploaded;
  }

  // Whether t's cache shard has no room for one more file without evicting: an upload task
  // stops waiting for more commits then (dirty files are evicted only once uploaded).
  [[nodiscard]] bool cache_pressed(const table_ident& t) {
    cache_slot& s = slot_of(t);
    std::lock_guard lock(s.mu);
    return s.files.used() + std::max(settings_.data_file_bytes, settings_.manifest_bytes) >
           s.files.limit();
  }

  [[nodiscard]] upload_marks uploads_of(const table_ident& t) {
    std::lock_guard lock(mu_);
    const auto it = uploads_.find(t);
    if (it == uploads_.end()) {
      return {};
    }
    return upload_marks{it->second.committed, it->second.uploaded, it->second.last};
  }

  // Uploads what t has committed locally (see above); ok at once when nothing is pending.
  error flush(const table_ident& t) {
    std::uint64_t term = 0;
    if (const error e = owner_term(t, term); e != error::ok) {
      return e == error::invalid_args ? error::ok : e;  // never opened: nothing to upload
    }
    std::unique_lock lock(mu_);
    upload_state* st = &uploads_[t];
    while (st->flushing) {
      if (!park_on(st->waiters, lock)) {
        return error::busy;  // (outside tasks, which run alone, no flush is in flight)
      }
      st = &uploads_[t];
    }
    if (st->uploaded == st->committed && st->dirty.empty() && st->removals.empty()) {
      return error::ok;
    }
    if (st->suspended) {
      return st->last;
    }
    st->flushing = true;
    std::vector<std::string> removals = std::move(st->removals);
    st->removals.clear();
    // What this flush uploads: the commits up to `target`, the manifest's first `length`
    // bytes (a record written but not yet synced, or its failure's markers, lie beyond), and
    // the data files written so far. Taken again when the manifest was renamed over while
    // it was read (its first bytes are another file's then).
    std::uint64_t target = 0;
    std::uint64_t length = 0;
    std::uint64_t gen = 0;
    std::uint64_t manifest_writes = 0;
    std::map<std::string, std::uint64_t, std::less<>> dirty;
    bool with_manifest = false;  // commits the bucket lacks (else data files or removals only)
    const auto capture = [&] {
      target = st->committed;
      with_manifest = target > st->uploaded;
      length = st->committed_len;
      gen = st->manifest_gen;
      manifest_writes = st->manifest_writes;
      dirty = st->dirty;
    };
    capture();
    lock.unlock();

    error e = error::ok;
    std::string manifest;
    const std::string manifest_name = detail::manifest_file_name(term);
    while (with_manifest) {
      e = cached(t, manifest_name, [&] { return Local::read_file(t, manifest_name, manifest); });
      lock.lock();
      st = &uploads_[t];
      if (e != error::ok || st->manifest_gen == gen) {
        lock.unlock();
        break;
      }
      capture();
      lock.unlock();
    }
    if (e == error::ok && with_manifest) {
      if (manifest.size() < length) {
        e = error::corrupted;  // (never: the commit wrote that much)
      }
      manifest.resize(std::min<std::size_t>(manifest.size(), length));
    }
    if (e == error::ok && !with_manifest && !removals.empty()) {
      e = still_owner(t, term);  // (a manifest upload checks after itself)
    }
    for (auto it = dirty.begin(); e == error::ok && it != dirty.end(); ++it) {
      if (std::find(removals.begin(), removals.end(), it->first) != removals.end()) {
        continue;  // removed before the manifest read: it names the file no more
      }
      const detail::parsed_file_name f = detail::parse_file_name(it->first);
      e = upload_cached(t, it->first, f);
      if (e == error::not_found && f.kind == detail::file_kind::data &&
          last_write_failed(t, it->first)) {
        drop_unwritten(t, it->first, it->second);  // (nothing to upload)
        e = error::ok;
        continue;
      }
      if (e == error::ok) {
        bool clean = false;
        {
          std::lock_guard l(mu_);
          upload_state& u = uploads_[t];
          auto& now = u.dirty;
          if (const auto d = now.find(it->first);
              d != now.end() && d->second == it->second && !u.streaming.contains(it->first)) {
            now.erase(d);
            clean = true;
          }
        }
        if (clean) {
          mark_clean(t, it->first);  // (no write since: the bucket has what the cache has)
        }
      }
    }
    if (e == error::ok && with_manifest) {
      e = upload(t, manifest_name, detail::parse_file_name(manifest_name), manifest);
    }
    for (auto it = removals.begin(); e == error::ok && it != removals.end(); ++it) {
      e = remove_now(t, *it, detail::parse_file_name(*it));
    }

    lock.lock();
    st = &uploads_[t];
    st->flushing = false;
    st->last = e;
    if (e == error::ok) {
      failed_.erase(t);
    } else {
      failed_.insert(t);
    }
    if (e == error::ok) {
      st->uploaded = std::max(st->uploaded, target);
      for (const std::string& n : removals) {
        st->dirty.erase(n);
      }
    } else {
      st->removals.insert(st->removals.end(), removals.begin(), removals.end());
    }
    // (Clean only if nothing was written to it since: a record may be on its way to a sync.)
    const bool manifest_clean =
        e == error::ok && st->uploaded == st->committed && st->manifest_writes == manifest_writes;
    const bool done = !st->pending() && st->marked;
    wake(std::exchange(st->waiters, {}));
    lock.unlock();
    if (manifest_clean) {
      mark_clean(t, manifest_name);
    }
    if (done) {
      // Nothing waits for an upload any more: the marker goes (a crash before that costs
      // one needless upload at the next start).
      const error r = Local::remove(t, upload_marker);
      std::lock_guard l(mu_);
      upload_state& u = uploads_[t];
      if ((r == error::ok || r == error::not_found) && !u.pending()) {
        u.marked = false;
      }
    }
    return e;
  }

  // ---- prewarm (spec 8.4) ---------------------------------------------------------------------
  //
  // Data files only: a partition's manifest is read from the bucket when the partition is
  // first opened anyway (it is how a term learns what the newest term wrote), so a prewarmed
  // manifest would never be used.

  struct prewarm_file {
    table_ident table;
    std::string name;
  };

  // The data files a prewarm for process term `term` brings into the cache, one list per
  // shard of the cache, in the order to fetch them: the most recently modified first (then
  // the higher file id). Partitions `accept` rejects, files of newer terms, manifests,
  // archives and temporary files are left out. A set `stop` ends the listing early
  // (not_running).
  error prewarm_plan(std::uint64_t term, const std::function<bool(const table_ident&)>& accept,
                     const std::atomic<bool>& stop, std::vector<std::vector<prewarm_file>>& out) {
    struct candidate {
      std::uint64_t modified_ms;
      std::uint64_t id;
      prewarm_file file;
    };
    std::vector<std::vector<candidate>> found(slots_.size());
    const std::string root = prefix_.empty() ? std::string() : prefix_ + "/";
    std::string after;
    list_page page;
    for (;;) {
      if (stop.load(std::memory_order_relaxed)) {
        return error::not_running;
      }
      const object_status st = meter_.others().list(root, "", after, list_page_max, page);
      if (st != object_status::ok) {
        return detail_error(st);
      }
      for (const object_meta& m : page.objects) {
        const std::string_view rel = std::string_view(m.key).substr(root.size());
        const std::size_t slash = rel.find('/');
        if (slash == std::string_view::npos) {
          continue;
        }
        const auto t = table_ident::parse(rel.substr(0, slash));
        const std::string_view name = rel.substr(slash + 1);
        const detail::parsed_file_name f = detail::parse_file_name(name);
        if (!t || f.kind != detail::file_kind::data || f.term > term || (accept && !accept(*t))) {
          continue;
        }
        found[t->partition % slots_.size()].push_back(
            candidate{m.modified_ms, f.id.value(), prewarm_file{*t, std::string(name)}});
      }
      if (page.next.empty()) {
        break;
      }
      after = page.next;
    }
    out.assign(found.size(), {});
    for (std::size_t i = 0; i < found.size(); ++i) {
      std::sort(found[i].begin(), found[i].end(), [](const candidate& a, const candidate& b) {
        return a.modified_ms != b.modified_ms ? a.modified_ms > b.modified_ms : a.id > b.id;
      });
      for (candidate& c : found[i]) {
        out[i].push_back(std::move(c.file));
      }
    }
    return error::ok;
  }

  // Brings one file into the cache if it fits without evicting anything: ok (downloaded, or
  // cached already), out_of_space (the cache is full: prewarm is done), not_found (gone from
  // the bucket meanwhile), or the download's error.
  error prewarm(const table_ident& t, std::string_view name) {
    cache_slot& s = slot_of(t);
    {
      std::lock_guard lock(s.mu);
      if (s.files.find(t, name) != nullptr) {
        return error::ok;
      }
      const std::uint64_t charge = charge_of(name);
      if (s.files.used() + charge > s.files.limit()) {
        return error::out_of_space;
      }
      std::vector<cache_shard::victim> none;
      if (const error e = s.files.admit(t, name, charge, cache_state::fetching, none);
          e != error::ok) {
        return e;
      }
    }
    const error e = download(s, t, name);
    std::lock_guard lock(s.mu);
    if (e != error::ok) {
      wake(s.files.erase(t, name));
    } else if (cache_file* f = s.files.find(t, name); f != nullptr) {
      wake(s.files.settle(*f, cache_state::ready));
    }
    room_changed(s);
    return e;
  }

  // ---- listings: the bucket and the cache together -------------------------------------------

  error list(const table_ident& t, std::vector<std::string>& names) {
    std::vector<std::string> local;
    const error le = Local::list(t, local);
    if (le != error::ok && le != error::not_found) {
      return le;
    }
    std::set<std::string> all(local.begin(), local.end());
    const std::string dir = detail::object_dir(prefix_, t);
    std::string after;
    list_page page;
    for (;;) {
      const object_status s = bucket(t).list(dir, "", after, list_page_max, page);
      if (s != object_status::ok) {
        return detail_error(s);
      }
      for (const object_meta& m : page.objects) {
        all.insert(m.key.substr(dir.size()));
      }
      if (page.next.empty()) {
        break;
      }
      after = page.next;
    }
    if (all.empty()) {
      return error::not_found;
    }
    // A newer term's files are not this process's to see (nor to collect).
    std::uint64_t term = 0;
    const bool known = known_term(t, term);
    names.clear();
    for (const std::string& n : all) {
      const detail::parsed_file_name f = detail::parse_file_name(n);
      if (known &&
          (f.kind == detail::file_kind::data || f.kind == detail::file_kind::manifest ||
           f.kind == detail::file_kind::archive) &&
          f.term > term) {
        continue;
      }
      if (f.kind == detail::file_kind::current_term || n == upload_marker) {
        continue;  // the bucket's and the cache's bookkeeping, not partition files
      }
      names.push_back(n);
    }
    return error::ok;
  }

  error list_partitions(std::vector<table_ident>& out) {
    std::vector<table_ident> local;
    if (const error e = Local::list_partitions(local); e != error::ok && e != error::not_found) {
      return e;
    }
    std::set<std::string> seen;
    out.clear();
    for (const table_ident& t : local) {
      if (seen.insert(t.to_string()).second) {
        out.push_back(t);
      }
    }
    const std::string root = prefix_.empty() ? std::string() : prefix_ + "/";
    std::string after;
    list_page page;
    for (;;) {
      const object_status s = meter_.others().list(root, "/", after, list_page_max, page);
      if (s != object_status::ok) {
        return detail_error(s);
      }
      for (const std::string& p : page.prefixes) {
        std::string_view dir = std::string_view(p).substr(root.size());
        if (!dir.empty() && dir.back() == '/') {
          dir.remove_suffix(1);
        }
        if (const auto t = table_ident::parse(dir); t && seen.insert(t->to_string()).second) {
          out.push_back(*t);
        }
      }
      if (page.next.empty()) {
        break;
      }
      after = page.next;
    }
    return error::ok;
  }

 private:
  struct partition_claim {
    std::uint64_t term = 0;
    bool expired = false;
  };

  [[nodiscard]] static bool is_data(std::string_view name) {
    return detail::parse_file_name(name).kind == detail::file_kind::data;
  }

  [[nodiscard]] static bool fetchable(std::string_view name) {
    const detail::file_kind k = detail::parse_file_name(name).kind;
    return k == detail::file_kind::data || k == detail::file_kind::manifest ||
           k == detail::file_kind::archive;
  }

  // The object store, counting for t's shard.
  [[nodiscard]] auto bucket(const table_ident& t) {
    return meter_.shard(t.partition % meter_.shards());
  }

  [[nodiscard]] std::string key(const table_ident& t, std::string_view name) const {
    return detail::object_key(prefix_, t, name);
  }

  // A request's final status as the engine's error (a lost conditional put is a cloud error).
  [[nodiscard]] static error detail_error(object_status s) { return to_error(s); }

  [[nodiscard]] bool known_term(const table_ident& t, std::uint64_t& term) {
    std::lock_guard lock(mu_);
    const auto it = claims_.find(t);
    if (it == claims_.end()) {
      return false;
    }
    term = it->second.term;
    return true;
  }

  // The term this process claimed t with; error::expired_term once a newer one took it.
  [[nodiscard]] error owner_term(const table_ident& t, std::uint64_t& term) {
    std::lock_guard lock(mu_);
    const auto it = claims_.find(t);
    if (it == claims_.end()) {
      return error::invalid_args;  // the engine opens a partition before it writes it
    }
    term = it->second.term;
    return it->second.expired ? error::expired_term : error::ok;
  }

  [[nodiscard]] error writable(const table_ident& t) {
    std::lock_guard lock(mu_);
    const auto it = claims_.find(t);
    return it != claims_.end() && it->second.expired ? error::expired_term : error::ok;
  }

  void mark_expired(const table_ident& t) {
    std::lock_guard lock(mu_);
    claims_[t].expired = true;
  }

  // Whether CURRENT_TERM still names `term` (expired_term, remembered, when a newer term
  // holds it).
  [[nodiscard]] error still_owner(const table_ident& t, std::uint64_t term) {
    std::string body;
    object_meta meta;
    const object_status s = bucket(t).get(key(t, detail::current_term_file_name), body, meta);
    if (s != object_status::ok) {
      // Deleted under us (a dropped bucket): not ours any more either.
      return s == object_status::not_found ? error::expired_term : detail_error(s);
    }
    const auto held = detail::parse_decimal<std::uint64_t>(body);
    if (!held) {
      return error::corrupted;
    }
    if (*held != term) {
      mark_expired(t);
      return error::expired_term;
    }
    return error::ok;
  }

  error upload(const table_ident& t, std::string_view name, const detail::parsed_file_name& f,
               std::string_view bytes) {
    object_meta meta;
    const object_status s = bucket(t).put(key(t, name), bytes, put_condition::always(), meta);
    if (s != object_status::ok) {
      return detail_error(s);
    }
    if (f.kind != detail::file_kind::manifest) {
      return error::ok;
    }
    // Acknowledged only while still the owner: a newer term claims before it reads the bucket,
    // so a check that passes after the upload means the newer term reads this manifest.
    return still_owner(t, f.term);
  }

  // Uploads the cached t/name whole (pinned, downloaded if the cache lost it).
  // At most max_upload_batch of a shard's files go up at once (spec 8.2): a task waits for
  // its turn before it reads the file, so the turns also bound the memory uploads hold.
  error upload_cached(const table_ident& t, std::string_view name,
                      const detail::parsed_file_name& f) {
    cache_slot& s = slot_of(t);
    {
      std::unique_lock lock(s.mu);
      // (Outside tasks, which run alone, nothing waits: the turn is taken over the limit.)
      while (s.uploading >= settings_.upload_batch && park_on(s.upload_waiters, lock)) {
      }
      ++s.uploading;
    }
    const struct turn {
      cache_slot& s;
      ~turn() {
        std::vector<cache_shard::waiter> next;
        {
          std::lock_guard lock(s.mu);
          --s.uploading;
          next = std::exchange(s.upload_waiters, {});
        }
        wake(next);
      }
    } turn_end{s};
    std::string bytes;
    if (const error e = cached(t, name, [&] { return read_whole(t, name, bytes); });
        e != error::ok) {
      return e;
    }
    return upload(t, name, f, bytes);
  }

  // A commit of t is on the local disk: uploaded now, or left to flush() (with the marker
  // on disk before the commit is acknowledged).
  error committed(const table_ident& t, std::string_view manifest, bool snapshot) {
    bool defer = false;
    bool marked = false;
    {
      std::lock_guard lock(mu_);
      upload_state& st = uploads_[t];
      ++st.committed;
      st.committed_len = st.written_len;
      st.suspended = false;
      // Not uploaded: a flush that read the manifest before this commit counted must not
      // take it for clean (it may have run while this commit's sync was parked).
      ++st.manifest_writes;
      defer = st.defer;
      marked = st.marked;
    }
    mark_dirty(t, manifest);
    if (!defer) {
      const error e = flush(t);
      if (e != error::ok && snapshot) {
        // The request fails, and the local manifest is the failed commit's snapshot: nothing
        // uploads it before the engine's next manifest write (its next commit is a snapshot).
        // (A failed log record is overwritten with markers at once by the engine.)
        std::lock_guard lock(mu_);
        uploads_[t].suspended = true;
      }
      return e;
    }
    if (!marked) {
      if (const error e = Local::write_file_atomic(t, upload_marker, std::span<const char>());
          e != error::ok) {
        return e;
      }
      std::lock_guard lock(mu_);
      uploads_[t].marked = true;
    }
    return error::ok;
  }

  // Queues the removal of t/name for the next flush when the bucket's manifest may still
  // name it (uploads pending or running); false when it may go now.
  [[nodiscard]] bool defer_removal(const table_ident& t, std::string_view name) {
    std::lock_guard lock(mu_);
    const auto it = uploads_.find(t);
    if (it == uploads_.end() || !it->second.pending()) {
      return false;
    }
    auto& queued = it->second.removals;
    if (std::find(queued.begin(), queued.end(), name) == queued.end()) {
      queued.emplace_back(name);
    }
    return true;
  }

  // The removal itself: the bucket's object (for partition files), then the cache's.
  error remove_now(const table_ident& t, std::string_view name, const detail::parsed_file_name& f) {
    if (f.kind == detail::file_kind::data || f.kind == detail::file_kind::manifest ||
        f.kind == detail::file_kind::archive) {
      const object_status s = bucket(t).remove(key(t, name));
      if (s != object_status::ok) {
        return detail_error(s);
      }
    }
    const error e = Local::remove(t, name);
    if (e != error::ok && e != error::not_found) {
      return e;
    }
    forget(t, name);
    return error::ok;
  }

  // A partition's uploads (under mu_).
  struct upload_state {
    bool defer = false;           // commits leave their upload to flush()
    std::uint64_t committed = 0;  // commits since open
    std::uint64_t uploaded = 0;   // of which the bucket holds the newest's manifest
    // Data files written since their last upload: name -> writes (a flush clears a file only
    // if no write came after it read the file).
    std::map<std::string, std::uint64_t, std::less<>> dirty;
    std::vector<std::string> removals;  // for after the next flush
    // Data files whose latest write failed: they may not exist although counted as written
    // (a write creates a file the cache and the bucket lack; drop_unwritten()).
    std::set<std::string, std::less<>> failed_writes;
    // The manifest: writes to it (note_written), renames over it (write_file_atomic), the end
    // of the last write, and that end at the last commit (what a flush uploads of it).
    std::uint64_t manifest_writes = 0;
    std::uint64_t manifest_gen = 0;
    std::uint64_t written_len = 0;
    std::uint64_t committed_len = 0;
    // Data files with streamed writes in flight (write_ticket): never taken for uploaded.
    std::map<std::string, std::uint32_t, std::less<>> streaming;
    bool flushing = false;
    bool suspended = false;  // the last commit's upload failed: its request failed (committed())
    bool marked = false;     // upload_marker is on disk
    error last = error::ok;
    std::vector<detail::cache_shard::waiter> waiters;  // tasks waiting for the running flush
    [[nodiscard]] bool pending() const {
      return flushing || uploaded != committed || !dirty.empty() || !removals.empty();
    }
  };

  // In a partition's cache directory while it holds commits the bucket lacks.
  static constexpr std::string_view upload_marker = "UPLOAD_PENDING";

  // A data file of t was written: dirty until a flush uploads it.
  void note_written(const table_ident& t, std::string_view name) {
    const detail::file_kind k = detail::parse_file_name(name).kind;
    if (k == detail::file_kind::manifest) {
      std::lock_guard lock(mu_);
      ++uploads_[t].manifest_writes;
      return;
    }
    if (k != detail::file_kind::data) {
      return;
    }
    std::lock_guard lock(mu_);
    auto& dirty = uploads_[t].dirty;
    if (const auto it = dirty.find(name); it != dirty.end()) {
      ++it->second;
    } else {
      dirty.emplace(std::string(name), 1);
    }
  }

  // A cached file whole, data files included (a backend that reads data files with O_DIRECT
  // page by page offers read_file_buffered for this).
  error read_whole(const table_ident& t, std::string_view name, std::string& out) {
    if constexpr (requires(Local & l) { l.read_file_buffered(t, name, out); }) {
      return Local::read_file_buffered(t, name, out);
    } else {
      return Local::read_file(t, name, out);
    }
  }

  // ---- the bounded cache ---------------------------------------------------------------------

  using cache_shard = detail::cache_shard;
  using cache_file = cache_shard::file;
  using cache_state = cache_shard::state;

  struct cache_slot {
    cache_slot(std::uint64_t limit, std::uint64_t low) : files(limit, low) {}
    std::mutex mu;
    cache_shard files;  // under mu
    // Tasks waiting for room: woken whenever a file may have become evictable (unpinned,
    // downloaded, uploaded) or went.
    std::vector<cache_shard::waiter> space_waiters;  // under mu
    // Files of the shard being read for their upload or uploaded (upload_cached), at most
    // settings_.upload_batch, and the tasks waiting for a turn (under mu).
    std::uint32_t uploading = 0;
    std::vector<cache_shard::waiter> upload_waiters;
  };

  // What an operation needs of a file: to read it (downloaded on a miss; not_found if the
  // bucket lacks it too), to write into it (downloaded on a miss, as its upload sends the
  // whole file; new if the bucket lacks it; dirty until uploaded), to start a data file
  // (create: never downloaded, see written_files; dirty until uploaded), or to replace it
  // whole (never downloaded; dirty until uploaded).
  enum class access : std::uint8_t { read, write, create, replace };

  [[nodiscard]] cache_slot& slot_of(const table_ident& t) {
    return *slots_[t.partition % slots_.size()];
  }

  [[nodiscard]] std::uint64_t charge_of(std::string_view name) const {
    return detail::parse_file_name(name).kind == detail::file_kind::data ? settings_.data_file_bytes
                                                                         : settings_.manifest_bytes;
  }

  // The slots of the budget, then the files the cache directories already hold.
  error adopt_cache() {
    slots_.clear();
    const std::size_t shards = settings_.shards == 0 ? 1 : settings_.shards;
    std::uint64_t share = settings_.limit / shards;
    share = std::max(share, std::max(settings_.data_file_bytes, settings_.manifest_bytes));
    const std::uint64_t low = share - share / settings_.reserve_space_ratio;
    for (std::size_t i = 0; i < shards; ++i) {
      slots_.push_back(std::make_unique<cache_slot>(share, low));
    }
    meter_.reset(shards);
    std::vector<table_ident> parts;
    if (const error e = Local::list_partitions(parts); e != error::ok && e != error::not_found) {
      return e;
    }
    for (const table_ident& t : parts) {
      std::vector<std::string> names;
      if (const error e = Local::list(t, names); e != error::ok && e != error::not_found) {
        return e;
      }
      // Least wanted first, as eviction takes the oldest: archives, data files, manifests.
      // The files of a partition with commits the bucket lacks (its marker on disk) are
      // dirty until open_manifest decides: never evicted.
      const bool marked = std::find(names.begin(), names.end(), upload_marker) != names.end();
      std::vector<std::pair<int, std::string>> files;
      for (std::string& n : names) {
        if (n == upload_marker) {
          if (!settings_.reuse) {
            return error::invalid_args;
          }
          continue;
        }
        const detail::file_kind k = detail::parse_file_name(n).kind;
        if (k == detail::file_kind::temporary) {
          // A download or snapshot a crash interrupted: never a file of the partition.
          if (const error e = Local::remove(t, n); e != error::ok && e != error::not_found) {
            return e;
          }
          continue;
        }
        if (!fetchable(n) || !settings_.reuse) {
          return error::invalid_args;  // not a cache of ours, or one we may not adopt
        }
        files.emplace_back(k == detail::file_kind::archive ? 0
                           : k == detail::file_kind::data  ? 1
                                                           : 2,
                           std::move(n));
      }
      std::sort(files.begin(), files.end());
      for (const auto& [rank, name] : files) {
        cache_slot& s = slot_of(t);
        std::vector<cache_shard::victim> victims;
        {
          std::lock_guard lock(s.mu);
          if (s.files.admit(t, name, charge_of(name), cache_state::ready, victims) != error::ok) {
            if (marked) {
              return error::out_of_space;  // commits not uploaded that the budget cannot hold
            }
            victims.push_back(cache_shard::victim{t, name});  // larger than a shard's share
            continue;
          }
          s.files.find(t, name)->dirty = marked;
        }
        if (const error e = evict(s, victims); e != error::ok) {
          return e;
        }
      }
    }
    return error::ok;
  }

  // Unlinks the victims an admission chose; a victim that cannot be unlinked is charged again
  // (and its error returned).
  error evict(cache_slot& s, const std::vector<cache_shard::victim>& victims) {
    error first = error::ok;
    for (const cache_shard::victim& v : victims) {
      const error e = Local::remove(v.table, v.name);
      std::unique_lock lock(s.mu);
      if (e == error::ok || e == error::not_found) {
        wake(s.files.erase(v.table, v.name));
        room_changed(s);
        continue;
      }
      if (cache_file* f = s.files.find(v.table, v.name); f != nullptr) {
        wake(s.files.settle(*f, cache_state::ready));
      }
      if (first == error::ok) {
        first = e;
      }
    }
    return first;
  }

  static void wake(const std::vector<cache_shard::waiter>& waiters) {
    for (const cache_shard::waiter& w : waiters) {
      w.port->post(w.task);
    }
  }

  // Parks the running task on `waiters` until woken (the caller re-examines what it waited
  // for afterwards). False outside a task, where nothing can wait.
  [[nodiscard]] static bool park_on(std::vector<cache_shard::waiter>& waiters,
                                    std::unique_lock<std::mutex>& lock) {
    completion_port* port = completion_port::current();
    void* task = port == nullptr ? nullptr : port->hooks().running_task();
    if (task == nullptr) {
      return false;
    }
    waiters.push_back(cache_shard::waiter{port, task});
    lock.unlock();
    // A post cannot be drained before the park: drain() runs on this thread.
    port->hooks().park(port->hooks().sched);
    lock.lock();
    return true;
  }

  // Something may have become evictable, or went: the tasks waiting for room look again.
  static void room_changed(cache_slot& s) { wake(std::exchange(s.space_waiters, {})); }

  // Makes the cache hold t/name as `how` needs it, charged at least `bytes`, and pins it
  // until release(). May park: for a download, for a file being downloaded or evicted, and
  // for room while the files that stand in the way are only pinned or downloading (with
  // `may_wait` false that answers busy instead, for a caller that must drop its own pins
  // before it waits). out_of_space when not even that would make room.
  error acquire(const table_ident& t, std::string_view name, access how, std::uint64_t bytes = 0,
                bool may_wait = true) {
    cache_slot& s = slot_of(t);
    std::vector<cache_shard::victim> victims;
    std::unique_lock lock(s.mu);
    const auto no_room = [&](error e) {
      if (e != error::busy) {
        return e;
      }
      if (!may_wait) {
        return error::busy;
      }
      return park_on(s.space_waiters, lock) ? error::ok : error::out_of_space;
    };
    const std::uint64_t charge = std::max(bytes, charge_of(name));
    cache_file* f = nullptr;
    for (;;) {
      f = s.files.find(t, name);
      if (f != nullptr && f->st != cache_state::ready) {
        if (!park_on(f->waiters, lock)) {
          return error::busy;  // (outside tasks, which run alone, nothing is in flight)
        }
        continue;
      }
      if (f != nullptr) {
        if (const error e = s.files.grow(*f, bytes, victims); e != error::ok) {
          if (const error w = no_room(e); w != error::ok) {
            return w;
          }
          continue;
        }
        s.files.touch(*f);
        ++f->pins;
        lock.unlock();
        return evicted_for(s, t, name, victims);
      }
      // A miss: charge the file while its download runs, so others wait for it.
      const bool fresh = how == access::replace || how == access::create;
      const cache_state st = fresh ? cache_state::ready : cache_state::fetching;
      if (const error e = s.files.admit(t, name, charge, st, victims); e != error::ok) {
        if (const error w = no_room(e); w != error::ok) {
          return w;
        }
        continue;
      }
      break;
    }
    f = s.files.find(t, name);
    ++f->pins;
    lock.unlock();
    error e = evict(s, victims);
    if (e == error::ok && how != access::replace && how != access::create) {
      e = download(s, t, name);
      if (e == error::not_found && how == access::write) {
        e = error::ok;  // a new file
      }
    }
    lock.lock();
    if (e != error::ok) {
      wake(s.files.erase(t, name));
      room_changed(s);
      return e;
    }
    if (f = s.files.find(t, name); f != nullptr && f->st == cache_state::fetching) {
      wake(s.files.settle(*f, cache_state::ready));
      room_changed(s);
    }
    return error::ok;
  }

  // Evicts what a growth chose; on failure the file's pin goes again.
  error evicted_for(cache_slot& s, const table_ident& t, std::string_view name,
                    const std::vector<cache_shard::victim>& victims) {
    if (victims.empty()) {
      return error::ok;
    }
    const error e = evict(s, victims);
    if (e != error::ok) {
      release(t, name);
    }
    return e;
  }

  // Unpins t/name. `now` tells what the bucket holds of it after the operation: with
  // `written`, less than the cache (dirty until uploaded); with `uploaded`, the same (clean).
  enum class bucket_copy : std::uint8_t { unchanged, written, uploaded };
  void release(const table_ident& t, std::string_view name,
               bucket_copy now = bucket_copy::unchanged) {
    cache_slot& s = slot_of(t);
    {
      std::lock_guard lock(s.mu);
      if (cache_file* f = s.files.find(t, name); f != nullptr) {
        if (f->pins > 0) {
          --f->pins;
        }
        if (now == bucket_copy::written) {
          f->dirty = true;
        } else if (now == bucket_copy::uploaded) {
          f->dirty = false;
        }
        if (f->evictable()) {
          room_changed(s);
        }
      }
    }
    if (now == bucket_copy::written) {
      note_written(t, name);  // (mu_ is never taken under a slot's mutex)
    }
  }

  // A write into data file `name` succeeded or failed. A failed one may have created nothing
  // (the file new: in neither the cache nor the bucket), although release() counts it as
  // written.
  void note_write_outcome(const table_ident& t, std::string_view name, bool ok) {
    if (detail::parse_file_name(name).kind != detail::file_kind::data) {
      return;
    }
    std::lock_guard lock(mu_);
    auto& failed = uploads_[t].failed_writes;
    if (ok) {
      if (const auto it = failed.find(name); it != failed.end()) {
        failed.erase(it);
      }
    } else {
      failed.emplace(name);
    }
  }
  [[nodiscard]] bool last_write_failed(const table_ident& t, std::string_view name) {
    std::lock_guard lock(mu_);
    return uploads_[t].failed_writes.contains(name);
  }

  // A data file flush() found dirty but not on the local disk, whose latest write failed
  // (last_write_failed): the write that was to create it failed, nothing reached the disk,
  // and no commit names it (a commit syncs its data files before it writes its manifest, and
  // that sync failed on the missing file, or the commit failed at the write already). It is
  // dropped from the cache and from the partition's dirty files, unless it is in use or a
  // write to it came since (`writes`: the count the flush saw): then the next flush looks
  // again. Without this, every later flush, so every later commit of the partition, would
  // fail on it. Any other missing dirty file still fails the flush.
  // (The partition's calls come from one thread and nothing here parks, so no write of the
  // file runs between the checks and the drop.)
  void drop_unwritten(const table_ident& t, std::string_view name, std::uint64_t writes) {
    const auto unchanged = [&](upload_state& u) {
      const auto d = u.dirty.find(name);
      return d != u.dirty.end() && d->second == writes && !u.streaming.contains(name);
    };
    {
      std::lock_guard lock(mu_);
      if (!unchanged(uploads_[t])) {
        return;
      }
    }
    {
      cache_slot& s = slot_of(t);
      std::lock_guard lock(s.mu);
      if (const cache_file* f = s.files.find(t, name); f != nullptr) {
        if (f->pins > 0) {
          return;
        }
        wake(s.files.erase(t, name));
        room_changed(s);
      }
    }
    std::lock_guard lock(mu_);
    upload_state& u = uploads_[t];
    if (const auto d = u.dirty.find(name); d != u.dirty.end()) {
      u.dirty.erase(d);
    }
    if (const auto it = u.failed_writes.find(name); it != u.failed_writes.end()) {
      u.failed_writes.erase(it);
    }
  }

  void mark_dirty(const table_ident& t, std::string_view name) {
    cache_slot& s = slot_of(t);
    std::lock_guard lock(s.mu);
    if (cache_file* f = s.files.find(t, name); f != nullptr) {
      f->dirty = true;
    }
  }

  void mark_clean(const table_ident& t, std::string_view name) {
    cache_slot& s = slot_of(t);
    std::lock_guard lock(s.mu);
    if (cache_file* f = s.files.find(t, name); f != nullptr) {
      f->dirty = false;
      room_changed(s);
    }
  }

  void forget(const table_ident& t, std::string_view name) {
    cache_slot& s = slot_of(t);
    std::lock_guard lock(s.mu);
    wake(s.files.erase(t, name));
    room_changed(s);
  }

  // GETs `name` into the cache (atomically: a crash leaves no file or the whole file), its
  // charge grown to its size first. REQUIRES: acquire() charged it, fetching.
  error download(cache_slot& s, const table_ident& t, std::string_view name) {
    std::string body;
    object_meta meta;
    const object_status st = bucket(t).get(key(t, name), body, meta);
    if (st != object_status::ok) {
      return detail_error(st);
    }
    std::vector<cache_shard::victim> victims;
    {
      std::lock_guard lock(s.mu);
      cache_file* f = s.files.find(t, name);
      if (f == nullptr) {
        return error::not_found;  // removed meanwhile
      }
      if (const error e = s.files.grow(*f, body.size(), victims); e != error::ok) {
        return error::out_of_space;  // (a file above its nominal size, with no room now)
      }
    }
    if (const error e = evict(s, victims); e != error::ok) {
      return e;
    }
    return Local::write_file_atomic(t, name, body);
  }

  // Runs `op(group, whole)` over consecutive groups of `names`, each group's files pinned
  // (downloaded as `how` needs) together: as many at a time as the cache has room for, at
  // least one, so a batch spanning more files than the budget still completes. `whole` tells
  // that the group is all of `names` (the batch can go at once). A task waits for room only
  // while it holds no pins (two tasks holding pins could wait for each other forever).
  template <typename Op>
  error in_groups(const table_ident& t, const std::vector<std::string_view>& names,
                  const std::vector<access>& hows, Op op) {
    const std::span<const std::string_view> all(names);
    if (all.empty()) {
      return op(all, true);
    }
    std::size_t done = 0;
    while (done < all.size()) {
      std::size_t held = 0;
      error e = error::ok;
      for (; done + held < all.size(); ++held) {
        if (e = acquire(t, all[done + held], hows[done + held], 0, held == 0); e != error::ok) {
          break;
        }
      }
      if (held == 0) {
        return e;  // the first of a group waits for room itself: its failure is final
      }
      // (No room for the next file: the group goes as it is, the rest after it.)
      const bool ran = e == error::ok || e == error::busy || e == error::out_of_space;
      const error r = ran ? op(all.subspan(done, held), done == 0 && e == error::ok) : e;
      const bucket_copy now =
          ran && hows[done] != access::read ? bucket_copy::written : bucket_copy::unchanged;
      for (std::size_t i = 0; i < held; ++i) {
        if (ran && hows[done + i] != access::read) {
          note_write_outcome(t, all[done + i], r == error::ok);
        }
        release(t, all[done + i], now);
      }
      if (r != error::ok) {
        return r;
      }
      done += held;
    }
    return error::ok;
  }

  // The elements of `batch` (page reads or writes) of the files in `group`, and those of
  // files the cache does not track (with the first group).
  template <typename Batch>
  [[nodiscard]] static auto part_of(const Batch& batch, std::span<const std::string_view> group,
                                    bool first) {
    std::vector<std::remove_cvref_t<decltype(*std::begin(batch))>> out;
    for (const auto& x : batch) {
      const bool tracked = fetchable(x.name);
      if ((!tracked && first) ||
          (tracked && std::find(group.begin(), group.end(), x.name) != group.end())) {
        out.push_back(x);
      }
    }
    return out;
  }

  // The files `writes` write into, and how each is acquired: a data file written from its
  // start is new (append mode writes a file from its first page on, so a write at offset 0
  // starts it: whatever the bucket may hold under its name, a commit whose manifest never
  // landed, is named by no manifest), anything else is downloaded on a miss.
  template <typename Writes>
  [[nodiscard]] static std::vector<std::string_view> written_files(const Writes& writes,
                                                                   std::vector<access>& hows) {
    std::vector<std::string_view> names;
    hows.clear();
    for (const page_write& w : writes) {
      if (!fetchable(w.name)) {
        continue;
      }
      const auto at = std::find(names.begin(), names.end(), w.name);
      if (at == names.end()) {
        names.push_back(w.name);
        hows.push_back(w.offset == 0 && is_data(w.name) ? access::create : access::write);
      } else if (w.offset == 0 && is_data(w.name)) {
        hows[static_cast<std::size_t>(at - names.begin())] = access::create;
      }
    }
    return names;
  }

  // `op` on t/name, pinned in the cache (downloaded on a miss). A file the cache lost under
  // its bookkeeping (deleted from outside) is forgotten and downloaded again, once.
  template <typename Op>
  error cached(const table_ident& t, std::string_view name, Op op) {
    if (!fetchable(name)) {
      return op();
    }
    for (int attempt = 0;; ++attempt) {
      if (const error e = acquire(t, name, access::read); e != error::ok) {
        return e;
      }
      const error e = op();
      release(t, name);
      if (e != error::not_found || attempt > 0 || dirty(t, name)) {
        return e;
      }
      forget(t, name);
    }
  }

  // Whether the cache tracks t/name (held, or being downloaded or evicted).
  [[nodiscard]] bool cached_now(const table_ident& t, std::string_view name) {
    cache_slot& s = slot_of(t);
    std::lock_guard lock(s.mu);
    return s.files.find(t, name) != nullptr;
  }

  [[nodiscard]] bool dirty(const table_ident& t, std::string_view name) {
    cache_slot& s = slot_of(t);
    std::lock_guard lock(s.mu);
    const cache_file* f = s.files.find(t, name);
    return f != nullptr && f->dirty;
  }

  // The first open of t's manifest in this process: claim t for `term`, then bring the
  // manifest the term opens into the cache as manifest_<term> (promoting an older term's).
  // One open at a time per partition: tasks that open t while another does wait for its
  // outcome (its claim, or its failure, after which they try themselves). Two opens at once
  // would each ask the bucket, and one that found no manifest could clear from the cache the
  // files the other's first write had put there meanwhile.
  error open_manifest(const table_ident& t, std::uint64_t term) {
    {
      std::unique_lock lock(mu_);
      for (;;) {
        const auto it = claims_.find(t);
        if (it != claims_.end() && it->second.term == term) {
          return it->second.expired ? error::expired_term : error::ok;
        }
        const auto o = opening_.find(t);
        if (o == opening_.end() || !park_on(o->second, lock)) {
          break;  // (outside tasks, which run alone, no other open is in flight)
        }
      }
      opening_.try_emplace(t);
    }
    const struct opened {
      cloud_io& io;
      const table_ident& t;
      ~opened() {
        std::vector<cache_shard::waiter> waiters;
        {
          std::lock_guard lock(io.mu_);
          if (const auto o = io.opening_.find(t); o != io.opening_.end()) {
            waiters = std::move(o->second);
            io.opening_.erase(o);
          }
        }
        wake(waiters);
      }
    } done{*this, t};
    auto view = bucket(t);
    if (const error e = detail::claim_term(view, prefix_, t, term); e != error::ok) {
      return e;
    }
    std::uint64_t chosen = 0;
    std::string body;
    const error e = detail::choose_manifest(view, prefix_, t, term, chosen, body);
    if (e != error::ok && e != error::not_found) {
      return e;
    }
    std::string local;
    bool use_local = false;
    if (const error r = local_pending(t, term, e == error::ok, chosen, body, local, use_local);
        r != error::ok) {
      return r;
    }
    if (use_local) {
      return recover_local(t, term, local);
    }
    if (e == error::ok) {
      const std::string name = detail::manifest_file_name(term);
      if (const error a = acquire(t, name, access::replace, body.size()); a != error::ok) {
        return a;
      }
      const error w = Local::write_file_atomic(t, name, body);
      // (Clean when the bucket has it: the same manifest, or promoted just below.)
      release(t, name,
              w == error::ok && chosen == term ? bucket_copy::uploaded : bucket_copy::written);
      if (w != error::ok) {
        return w;
      }
      if (chosen != term) {
        // Promotion: the newer term continues from the older term's manifest under its own
        // name; the older term's files stay as they are (their names carry their term).
        object_meta meta;
        const object_status s = bucket(t).put(key(t, name), body, put_condition::always(), meta);
        if (s != object_status::ok) {
          return detail_error(s);
        }
        mark_clean(t, name);
      }
    } else {
      // A new partition in the bucket: whatever the cache holds of it is stale (a write whose
      // upload failed) and must not be taken for it.
      std::vector<std::string> cached;
      if (Local::list(t, cached) == error::ok) {
        for (const std::string& n : cached) {
          if (const error r = Local::remove(t, n); r != error::ok && r != error::not_found) {
            return r;
          }
          forget(t, n);
        }
      }
    }
    std::lock_guard lock(mu_);
    claims_[t] = partition_claim{term, false};
    return error::ok;
  }

  // Whether t's cache holds commits the bucket lacks that term `term` continues from (a
  // restart on the same cache): its marker is on disk and its newest manifest of this term
  // or older is not older than the bucket's choice (`in_bucket`: manifest_<chosen>, `body`)
  // nor the same. Its bytes go to `local`. Otherwise the marker goes and the cache's files of
  // t are clean again: a newer term wrote meanwhile (the commits it never saw are lost, as
  // with a lost disk), or the bucket has it all.
  error local_pending(const table_ident& t, std::uint64_t term, bool in_bucket,
                      std::uint64_t chosen, const std::string& body, std::string& local,
                      bool& use) {
    use = false;
    std::string marker;
    if (!settings_.reuse || Local::read_file(t, upload_marker, marker) != error::ok) {
      return error::ok;
    }
    std::vector<std::string> names;
    if (const error e = Local::list(t, names); e != error::ok && e != error::not_found) {
      return e;
    }
    std::optional<std::uint64_t> newest;
    for (const std::string& n : names) {
      const detail::parsed_file_name f = detail::parse_file_name(n);
      if (f.kind == detail::file_kind::manifest && f.term <= term &&
          (!newest || f.term > *newest)) {
        newest = f.term;
      }
    }
    if (newest && (!in_bucket || *newest >= chosen)) {
      const std::string name = detail::manifest_file_name(*newest);
      if (const error e = Local::read_file(t, name, local); e != error::ok) {
        return e;
      }
      use = !(in_bucket && *newest == chosen && local == body);
    }
    if (!use) {
      if (const error e = Local::remove(t, upload_marker);
          e != error::ok && e != error::not_found) {
        return e;
      }
      for (const std::string& n : names) {
        mark_clean(t, n);
      }
    }
    return error::ok;
  }

  // Opens t for `term` from the cache's own manifest `local` (local_pending) and uploads it:
  // every data file of t the cache holds (which of them the bucket lacks is not known after a
  // restart), then the manifest. The open fails with the upload's error, which leaves the
  // partition to upload at its next flush.
  error recover_local(const table_ident& t, std::uint64_t term, const std::string& local) {
    const std::string name = detail::manifest_file_name(term);
    if (const error a = acquire(t, name, access::replace, local.size()); a != error::ok) {
      return a;
    }
    const error w = Local::write_file_atomic(t, name, local);
    release(t, name, bucket_copy::written);
    if (w != error::ok) {
      return w;
    }
    std::vector<std::string> names;
    if (const error e = Local::list(t, names); e != error::ok) {
      return e;
    }
    {
      std::lock_guard lock(mu_);
      claims_[t] = partition_claim{term, false};
      upload_state& st = uploads_[t];
      st.committed = st.uploaded + 1;
      st.committed_len = st.written_len = local.size();
      st.marked = true;
      for (const std::string& n : names) {
        const detail::parsed_file_name f = detail::parse_file_name(n);
        if (f.kind == detail::file_kind::data && f.term <= term) {
          st.dirty.emplace(n, 1);
        }
      }
    }
    // (Older terms' manifests of the cache are superseded; the data files stay dirty.)
    for (const std::string& n : names) {
      const detail::parsed_file_name f = detail::parse_file_name(n);
      if (f.kind == detail::file_kind::manifest && f.term != term) {
        mark_clean(t, n);
      }
    }
    return flush(t);
  }

  std::shared_ptr<Store> store_;
  detail::metered_store<Store> meter_;  // every request to store_ goes through it
  std::string prefix_;
  std::mutex mu_;
  std::unordered_map<table_ident, partition_claim> claims_;  // under mu_
  // Partitions an open_manifest is running for, and the tasks waiting for it (under mu_).
  std::unordered_map<table_ident, std::vector<cache_shard::waiter>> opening_;
  std::unordered_map<table_ident, upload_state> uploads_;  // under mu_
  std::unordered_set<table_ident> failed_;  // partitions whose last flush failed (under mu_)
  cache_settings settings_;
  std::vector<std::unique_ptr<cache_slot>> slots_;  // one per shard, made by open()
};

}  // namespace eloqstore
