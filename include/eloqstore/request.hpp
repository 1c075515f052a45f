// Request objects, as in the reference engine: the caller owns a request, fills its
// arguments, hands it to EloqStore::exec_sync or exec_async, and reads the results once it is
// done. A request must stay alive until done and may then be reused.
//
// Completion: the store records the error, marks the request done (release), and then either
// runs the callback (exec_async with a callback; it runs on the shard thread) or wakes
// wait(). Results are valid once done() returns true (acquire).
#pragma once

#include <atomic>
#include <cassert>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <eloqstore/error.hpp>
#include <eloqstore/table_ident.hpp>
#include <eloqstore/types.hpp>

namespace eloqstore {

// The reference's request types in its order, then ours. Each request class names its own
// (`kind`), so the store dispatches on type() and casts with request_cast, never with
// dynamic_cast.
enum class request_type : std::uint8_t {
  read,
  floor,
  scan,
  list_object,
  batch_write,
  truncate,
  drop_table,
  archive,
  compact,
  clean_expired,
  global_archive,
  delete_range,
  verify,         // ours: a structural check of one partition's tree
  restore,        // ours: roll a partition back (or forward) to one of its archives
  list_archives,  // ours: the archives of a partition
  upload_wait,    // ours: wait for the upload of a partition's commits (cloud mode)
  upload_start,   // ours: start the background upload of a partition's commits (cloud mode)
};

// True for the types that change nothing: a read-only store runs them, and they run beside
// the partition's writer instead of in its lane.
[[nodiscard]] constexpr bool is_read_only(request_type t) noexcept {
  switch (t) {
    case request_type::read:
    case request_type::floor:
    case request_type::scan:
    case request_type::list_object:
    case request_type::verify:
    case request_type::list_archives:
    case request_type::upload_start:  // (it uploads what is committed, changing nothing)
      return true;
    default:
      return false;
  }
}

template <typename Traits>
class EloqStore;

namespace detail {
struct request_access;
}

class request {
 public:
  using callback_type = std::function<void(request&)>;

  request() = default;
  request(const request&) = delete;
  request& operator=(const request&) = delete;
  virtual ~request() = default;

  [[nodiscard]] virtual request_type type() const noexcept = 0;
  [[nodiscard]] bool read_only() const noexcept { return is_read_only(type()); }
  [[nodiscard]] error status() const noexcept { return err_; }
  [[nodiscard]] bool retryable() const noexcept { return is_retryable(err_); }
  // What went wrong, in words: for a rejected batch the entry and the rule it broke (as
  // "entry 3: empty key"), otherwise error_message(status()). Valid until resubmitted.
  [[nodiscard]] std::string_view message() const noexcept {
    return why_.empty() ? error_message(err_) : std::string_view(why_);
  }
  [[nodiscard]] const table_ident& table() const noexcept { return table_; }
  [[nodiscard]] std::uint64_t user_data() const noexcept { return user_data_; }
  [[nodiscard]] bool done() const noexcept { return done_.load(std::memory_order_acquire); }

  // Blocks until done. REQUIRES: submitted without a callback.
  void wait() const noexcept {
    while (!done_.load(std::memory_order_acquire)) {
      done_.wait(false, std::memory_order_acquire);
    }
  }

 protected:
  table_ident table_;

 private:
  template <typename Traits>
  friend class EloqStore;
  friend struct detail::request_access;

  // Claims the request for one run: false (nothing changed) while an earlier submission is
  // still pending, so a request submitted twice at once runs once and is not overwritten.
  [[nodiscard]] bool prepare(std::uint64_t user_data, callback_type cb) {
    bool idle = true;
    if (!done_.compare_exchange_strong(idle, false, std::memory_order_acq_rel)) {
      return false;
    }
    user_data_ = user_data;
    callback_ = std::move(cb);
    err_ = error::ok;
    why_.clear();
    submitted_ = std::chrono::steady_clock::now();
    return true;
  }
  void set_done(error e) {
    err_ = e;
    if (callback_) {
      callback_type cb = std::move(callback_);
      done_.store(true, std::memory_order_release);
      cb(*this);
      return;
    }
    done_.store(true, std::memory_order_release);
    done_.notify_all();
  }

  std::uint64_t user_data_ = 0;
  std::chrono::steady_clock::time_point submitted_{};  // the latency statistics' start
  std::string why_;                                    // message(); empty: the error's own message
  callback_type callback_;
  std::atomic<bool> done_{true};
  error err_ = error::ok;
};

// Point read. Output: value, timestamp, expire_ts; not_found if the key is absent or expired.
class read_request final : public request {
 public:
  void set_args(table_ident t, std::string key) {
    table_ = std::move(t);
    key_ = std::move(key);
  }
  static constexpr request_type kind = request_type::read;
  [[nodiscard]] request_type type() const noexcept override { return kind; }
  [[nodiscard]] std::string_view key() const noexcept { return key_; }
  [[nodiscard]] const kv_entry& entry() const noexcept { return entry_; }
  [[nodiscard]] std::string_view value() const noexcept { return entry_.value; }
  [[nodiscard]] std::uint64_t timestamp() const noexcept { return entry_.timestamp; }
  [[nodiscard]] std::uint64_t expire_ts() const noexcept { return entry_.expire_ts; }

  std::string key_;
  kv_entry entry_;
};

// Largest live key <= key. Output: entry() with floor key, value, timestamp, expire_ts.
class floor_request final : public request {
 public:
  void set_args(table_ident t, std::string key) {
    table_ = std::move(t);
    key_ = std::move(key);
  }
  static constexpr request_type kind = request_type::floor;
  [[nodiscard]] request_type type() const noexcept override { return kind; }
  [[nodiscard]] const kv_entry& entry() const noexcept { return entry_; }
  [[nodiscard]] std::string_view floor_key() const noexcept { return entry_.key; }

  std::string key_;
  kv_entry entry_;
};

// Range scan of [begin, end) (begin exclusive if !begin_inclusive); empty begin = -inf, empty
// end = +inf. Pagination: at most max_entries entries and max_bytes bytes (key + value + 16
// per entry, the first entry always returned); 0 = unlimited. To continue, scan again from
// the last key with begin_inclusive = false. A reverse scan walks from end down to begin
// (inclusive); continue it with end = the last key returned. not_found for an unknown
// partition; ok with no entries for an empty one.
class scan_request final : public request {
 public:
  void set_args(table_ident t, std::string begin, std::string end, bool begin_inclusive = true) {
    table_ = std::move(t);
    begin_ = std::move(begin);
    end_ = std::move(end);
    begin_inclusive_ = begin_inclusive;
  }
  void set_pagination(std::size_t max_entries, std::size_t max_bytes) {
    max_entries_ = max_entries;
    max_bytes_ = max_bytes;
  }
  void set_reverse(bool reverse) { reverse_ = reverse; }
  // Data pages read ahead together (in parallel where the backend can): 0 means the default
  // of 6; at most 128.
  void set_prefetch(std::size_t pages) {
    prefetch_ = pages == 0 ? prefetch_default : std::min<std::size_t>(pages, prefetch_max);
  }
  static constexpr std::size_t prefetch_default = 6;
  static constexpr std::size_t prefetch_max = 128;
  static constexpr request_type kind = request_type::scan;
  [[nodiscard]] request_type type() const noexcept override { return kind; }
  [[nodiscard]] const std::vector<kv_entry>& entries() const noexcept { return entries_; }
  [[nodiscard]] bool has_remaining() const noexcept { return has_remaining_; }
  // (entry count, sum of key + value + 16 bytes)
  [[nodiscard]] std::pair<std::size_t, std::size_t> result_size() const noexcept {
    std::size_t bytes = 0;
    for (const kv_entry& e : entries_) {
      bytes += e.key.size() + e.value.size() + 16;
    }
    return {entries_.size(), bytes};
  }

  std::string begin_;
  std::string end_;
  bool begin_inclusive_ = true;
  bool reverse_ = false;
  std::size_t max_entries_ = 0;
  std::size_t max_bytes_ = 0;
  std::size_t prefetch_ = prefetch_default;
  std::vector<kv_entry> entries_;
  bool has_remaining_ = false;
};

// An atomic batch of upserts and deletes to one partition. Keys must be non-empty, at most
// half a page, and unique; the engine sorts them. An empty batch completes at once.
class batch_write_request final : public request {
 public:
  void set_args(table_ident t, std::vector<write_entry> entries) {
    table_ = std::move(t);
    entries_ = std::move(entries);
  }
  void add_write(std::string key, std::string value, std::uint64_t ts, write_op op,
                 std::uint64_t expire_ts = 0) {
    entries_.push_back(write_entry{std::move(key), std::move(value), ts, op, expire_ts});
  }
  // Cloud mode: acknowledged after the upload (the default) or after the local fdatasync
  // with the upload in the background (types.hpp). Batches of one group commit with
  // different choices are all acknowledged after the upload.
  void set_durability(durability d) noexcept { durability_ = d; }
  [[nodiscard]] durability durability_of() const noexcept { return durability_; }
  static constexpr request_type kind = request_type::batch_write;
  [[nodiscard]] request_type type() const noexcept override { return kind; }
  [[nodiscard]] const std::vector<write_entry>& entries() const noexcept { return entries_; }

  std::vector<write_entry> entries_;
  durability durability_ = durability::uploaded;
};

// Deletes every key >= position; an empty position empties the partition.
class truncate_request final : public request {
 public:
  void set_args(table_ident t, std::string position = {}) {
    table_ = std::move(t);
    position_ = std::move(position);
  }
  static constexpr request_type kind = request_type::truncate;
  [[nodiscard]] request_type type() const noexcept override { return kind; }

  std::string position_;
};

// Deletes every key in [begin, end), dropping whole subtrees inside the range.
class delete_range_request final : public request {
 public:
  void set_args(table_ident t, std::string begin, std::string end) {
    table_ = std::move(t);
    begin_ = std::move(begin);
    end_ = std::move(end);
  }
  static constexpr request_type kind = request_type::delete_range;
  [[nodiscard]] request_type type() const noexcept override { return kind; }

  std::string begin_;
  std::string end_;
};

// Empties every partition of a table (handled on the calling thread).
class drop_table_request final : public request {
 public:
  void set_args(std::string table_name) { table_name_ = std::move(table_name); }
  static constexpr request_type kind = request_type::drop_table;
  [[nodiscard]] request_type type() const noexcept override { return kind; }

  std::string table_name_;
};

// Purges the partition's expired records through its TTL tree.
class clean_expired_request final : public request {
 public:
  void set_args(table_ident t) { table_ = std::move(t); }
  static constexpr request_type kind = request_type::clean_expired;
  [[nodiscard]] request_type type() const noexcept override { return kind; }
};

// Checks the tree structure of a partition (detail/btree/verify.hpp): page checksums and
// structure, key order and separator bounds, sibling links, every mapped page reachable
// once. error::corrupted with problem() naming the first fault; not_found for a partition
// without a manifest.
class verify_request final : public request {
 public:
  void set_args(table_ident t) { table_ = std::move(t); }
  static constexpr request_type kind = request_type::verify;
  [[nodiscard]] request_type type() const noexcept override { return kind; }
  [[nodiscard]] const std::string& problem() const noexcept { return problem_; }

  std::string problem_;
};

// Archives a partition (append mode only, spec 9): its committed state, written atomically
// as the manifest snapshot `manifest_<term>_<timestamp>` beside its manifest. Timestamp in
// microseconds; 0 means now. error::not_found for an empty partition; error::invalid_args
// outside append mode or for a timestamp the partition already has an archive of. With
// num_retained_archives > 0 the oldest archives beyond that count are deleted afterwards,
// and file GC reclaims what only they held.
class archive_request final : public request {
 public:
  void set_args(table_ident t, std::uint64_t timestamp = 0) {
    table_ = std::move(t);
    timestamp_ = timestamp;
  }
  static constexpr request_type kind = request_type::archive;
  [[nodiscard]] request_type type() const noexcept override { return kind; }
  // The archive's timestamp (after completion: the one used when 0 was given).
  [[nodiscard]] std::uint64_t timestamp() const noexcept { return timestamp_; }

  std::uint64_t timestamp_ = 0;
};

// Makes a partition's archive `timestamp` its current state (append mode only). The state
// it replaces is archived first (saved_timestamp(), 0 if the partition was empty), so
// restoring that archive rolls forward again. Writes after a restore never overwrite pages
// of either. error::not_found if the partition has no such archive.
class restore_request final : public request {
 public:
  void set_args(table_ident t, std::uint64_t timestamp) {
    table_ = std::move(t);
    timestamp_ = timestamp;
    saved_ = 0;
  }
  static constexpr request_type kind = request_type::restore;
  [[nodiscard]] request_type type() const noexcept override { return kind; }
  [[nodiscard]] std::uint64_t saved_timestamp() const noexcept { return saved_; }

  std::uint64_t timestamp_ = 0;
  std::uint64_t saved_ = 0;
};

// The timestamps of a partition's archives, oldest first (empty when it has none).
class list_archives_request final : public request {
 public:
  void set_args(table_ident t) { table_ = std::move(t); }
  static constexpr request_type kind = request_type::list_archives;
  [[nodiscard]] request_type type() const noexcept override { return kind; }
  [[nodiscard]] const std::vector<std::uint64_t>& timestamps() const noexcept {
    return timestamps_;
  }

  std::vector<std::uint64_t> timestamps_;
};

// Completes when every commit of the partition acknowledged before it is in the bucket
// (cloud mode; uploads what the background upload has not yet). Ordered with the
// partition's writes: batches submitted before it are covered. At once in local mode. Its
// error is the upload's (expired_term once a newer term took the partition over).
class upload_wait_request final : public request {
 public:
  void set_args(table_ident t) { table_ = std::move(t); }
  static constexpr request_type kind = request_type::upload_wait;
  [[nodiscard]] request_type type() const noexcept override { return kind; }
};

// Starts the background upload of what the partition has committed and not uploaded (cloud
// mode), and completes at once, ok: it waits neither for the upload nor behind the
// partition's writes. EloqStore::upload_status tells how the upload went. Nothing in local
// mode, or when an upload of the partition is running already.
class upload_start_request final : public request {
 public:
  void set_args(table_ident t) { table_ = std::move(t); }
  static constexpr request_type kind = request_type::upload_start;
  [[nodiscard]] request_type type() const noexcept override { return kind; }
};

namespace detail {

// What the shards do to a request besides reading its arguments: complete it, and say why
// it was refused.
struct request_access {
  static void set_done(request& r, error e) { r.set_done(e); }
  [[nodiscard]] static std::chrono::steady_clock::time_point submitted(const request& r) noexcept {
    return r.submitted_;
  }
  [[nodiscard]] static std::string& why(request& r) noexcept { return r.why_; }
};

// The request as its own class. REQUIRES: r.type() == R::kind.
template <typename R>
[[nodiscard]] R& request_cast(request& r) noexcept {
  assert(r.type() == R::kind);
  return static_cast<R&>(r);
}

}  // namespace detail

}  // namespace eloqstore
