// Run-time options of a store: the reference engine's KvOptions (spec 2.1), same names in
// snake_case, same types and defaults.
//
// `options` is a plain aggregate; set the fields, then call `validate()`. Validation is strict
// (it rejects every value the engine could not run with, and a few the reference silently
// accepts) and never aborts: it returns `error::invalid_args` with a message that names the
// option. `normalized()` applies the reference's cloud-mode auto-fixes; `validate()` accepts
// exactly what stays valid after them, so an engine validates once and then runs on
// `normalized()`.
//
// Not a member: the reference's comparator_, which is a compile-time policy of the store's
// traits here. Option files are read by options_file.hpp.
//
// Thread affinity: none; all functions are pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <eloqstore/detail/page/overflow_page.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore {

// The outcome of checking or loading options: `code` is error::ok when valid, otherwise
// `message` says which option is wrong and why.
struct validation_result {
  error code = error::ok;
  std::string message;

  [[nodiscard]] bool ok() const noexcept { return code == error::ok; }
};

struct options {
  // ---- limits shared by validation and loading -------------------------------------------
  static constexpr std::uint64_t kib = std::uint64_t{1} << 10;
  static constexpr std::uint64_t mib = std::uint64_t{1} << 20;
  static constexpr std::uint64_t gib = std::uint64_t{1} << 30;
  static constexpr std::uint64_t tib = std::uint64_t{1} << 40;
  // Coroutine stacks and O_DIRECT buffers are aligned to the OS page.
  static constexpr std::uint64_t os_page_bytes = 4096;
  static constexpr std::uint64_t data_page_size_min = 4096;
  static constexpr std::uint64_t data_page_size_max = 32768;
  static constexpr std::uint64_t coroutine_stack_size_min = 16 * kib;
  static constexpr std::uint64_t pages_per_file_shift_min = 1;
  static constexpr std::uint64_t pages_per_file_shift_max = 32;
  static constexpr std::uint64_t overflow_pointers_max = detail::overflow_pointers_max;
  // Readers pin one index page at a time, so one page serves reads; a writer pins one page
  // per tree level and gets out_of_mem when the pool cannot hold its path.
  static constexpr std::uint64_t buffer_pool_pages_min = 1;
  // Kernel limits: IORING_MAX_ENTRIES and the provided-buffer ring's u16 ids.
  static constexpr std::uint64_t io_queue_size_max = 32768;
  static constexpr std::uint64_t buf_ring_size_max = 32768;
  // Descriptors kept out of the shards' budgets (stdio, logs, store directories).
  static constexpr std::uint64_t reserved_fd_count = 100;
  // Cloud mode's local_space_limit when none is given.
  static constexpr std::uint64_t default_cloud_space_limit = tib;

  // ---- runtime tunables ([run] in option files) ------------------------------------------
  std::uint16_t num_threads = 1;                   // number of shards, one worker thread each
  std::uint16_t data_page_restart_interval = 16;   // entries per restart region, data pages
  std::uint16_t index_page_restart_interval = 16;  // entries per restart region, index pages
  std::uint32_t init_page_count = 32768;           // initial capacity of a mapping table
  bool skip_verify_checksum = false;               // skip page checksum checks on read
  std::uint64_t buffer_pool_size = 32 * mib;       // per-shard bytes of cached index pages
  // Ours: per-shard bytes of cached data and overflow pages (traits with a data_cache); 0
  // turns the cache off. Each page costs about 3% more in bookkeeping.
  std::uint64_t data_page_cache_size = 64 * mib;
  std::uint64_t root_meta_cache_size = gib;   // bytes of cached partition metadata, all shards
  std::uint32_t manifest_limit = 8 * mib;     // manifest bytes above which a snapshot is written
  std::uint32_t fd_limit = 10000;             // process-wide open files (100 reserved)
  std::uint32_t io_queue_size = 4096;         // io_uring submission queue entries per shard
  std::uint32_t max_inflight_write = 32768;   // per-shard page-write slots (non-append mode)
  std::uint32_t max_write_batch_pages = 256;  // pages per writev (append) / in flight per task
  std::uint16_t buf_ring_size = 4096;         // provided-buffer ring entries, one page each
  std::uint32_t coroutine_stack_size = 32 * kib;  // bytes of stack per task
  std::uint32_t num_retained_archives = 0;        // archives kept; > 0 enables the archive cron
  std::uint32_t archive_interval_secs = 86400;    // archive cron period; 0 disables the cron
  std::uint16_t max_archive_tasks = 256;          // concurrency cap of a global archive
  std::uint8_t file_amplify_factor = 2;          // append mode: compact above space/live; 0 = never
  std::size_t local_space_limit = tib;           // cloud: local cache bytes, all shards together
  std::uint16_t reserve_space_ratio = 100;       // cloud: cleaner keeps usage below l - l/ratio
  std::uint32_t max_upload_batch = 5;            // cloud: files uploaded at once per shard
  std::uint32_t max_cloud_concurrency = 20;      // cloud: HTTP requests in flight per shard
  std::uint16_t cloud_request_threads = 1;       // cloud: HTTP threads (shard i -> i % n)
  std::uint32_t direct_io_buffer_pool_size = 4;  // cloud: cached aligned transfer buffers
  bool allow_reuse_local_caches = false;         // cloud: adopt files already in the cache dirs
  std::string cloud_provider = "aws";            // "gcs"/"google"/"google-cloud" = GCS, else S3
  std::string cloud_endpoint;                    // empty = the provider's default endpoint
  std::string cloud_region = "us-east-1";        // signing region
  std::string cloud_access_key = "minioadmin";   // static credentials: access key id
  std::string cloud_secret_key = "minioadmin";   // static credentials: secret key
  bool cloud_verify_ssl = false;         // verify TLS peers (only with an explicit endpoint)
  bool enable_compression = false;       // zstd value compression; not settable from files
  bool prewarm_cloud_cache = false;      // cloud: download files into the cache at start
  std::uint16_t prewarm_task_count = 3;  // cloud: prewarm coroutines per shard
  std::size_t mapping_arena_size = 128;  // recycled mapping-table vectors kept per shard
  // Ours, not the reference's: write requests queued for one partition while it is busy are
  // applied in one copy-on-write pass and one sync chain, each completing on its own.
  bool group_commit = true;
  std::uint32_t group_commit_max = 256;  // requests per group
  // Ours: requests a shard queues before exec_async blocks its caller (callbacks running on
  // a shard thread are never blocked).
  std::uint32_t request_queue_capacity = 65536;
  // Ours: open the store read-only. start() takes a shared lock on each store path (beside
  // other read-only stores; never beside a writer), creates nothing, files are opened
  // read-only, and every write request fails with error::no_permission.
  bool read_only = false;
  // Which partitions this instance owns for prewarm and global archive; empty = all.
  std::function<bool(const table_ident&)> partition_filter;

  // ---- permanent: fixed once a store holds data ([permanent] in option files) ------------
  std::vector<std::string> store_path;     // local directories, one per disk; empty = in memory
  std::string cloud_store_path;            // "bucket[/prefix]"; non-empty = cloud mode
  std::uint16_t data_page_size = 4096;     // bytes per page of every kind, power of two
  std::uint8_t pages_per_file_shift = 18;  // a data file holds 2^shift pages
  std::uint8_t overflow_pointers = 16;     // page ids per overflow group, 1..128
  bool data_append_mode = false;           // append-only page allocation in files

  // ---- derived ----------------------------------------------------------------------------

  [[nodiscard]] bool cloud_mode() const noexcept { return !cloud_store_path.empty(); }

  // Bytes per data file, data_page_size << pages_per_file_shift; 0 when the shift is so large
  // the size would not fit in 64 bits (validate() rejects such a shift).
  [[nodiscard]] std::uint64_t data_file_size() const noexcept {
    if (pages_per_file_shift > 48) {
      return 0;
    }
    return std::uint64_t{data_page_size} << pages_per_file_shift;
  }

  // Mask of a page's offset inside its file, 2^pages_per_file_shift - 1.
  [[nodiscard]] std::uint64_t file_page_offset_mask() const noexcept {
    if (pages_per_file_shift >= 64) {
      return ~std::uint64_t{0};
    }
    return (std::uint64_t{1} << pages_per_file_shift) - 1;
  }

  // error::ok, or error::invalid_args with a message naming the first invalid option. Accepts
  // what normalized() repairs (a zero local_space_limit or append mode off in cloud mode).
  [[nodiscard]] validation_result validate() const;

  // A copy with the reference's cloud-mode fixes applied; local-mode options are returned
  // unchanged. In cloud mode: local_space_limit 0 becomes 1 TiB, data_append_mode is forced
  // on, a limit below one data file is raised to one file, and fd_limit is clamped to the
  // number of files the limit holds plus the reserved descriptors.
  [[nodiscard]] options normalized() const;
};

namespace detail {

[[nodiscard]] inline validation_result invalid_option(std::string_view option,
                                                      std::string_view rule) {
  std::string m = "invalid option ";
  m.append(option).append(": ").append(rule);
  return {error::invalid_args, std::move(m)};
}

[[nodiscard]] inline validation_result invalid_option(std::string_view option,
                                                      std::string_view rule, std::uint64_t got) {
  validation_result r = invalid_option(option, rule);
  r.message.append(" (got ").append(std::to_string(got)).append(")");
  return r;
}

[[nodiscard]] constexpr bool is_power_of_two(std::uint64_t v) noexcept {
  return v != 0 && (v & (v - 1)) == 0;
}

// Page and file geometry: everything that shapes bytes on disk.
[[nodiscard]] inline validation_result validate_geometry(const options& o) {
  const std::uint64_t page = o.data_page_size;
  if (!is_power_of_two(page) || page < options::data_page_size_min ||
      page > options::data_page_size_max) {
    return invalid_option("data_page_size", "must be a power of two in [4096, 32768]", page);
  }
  if (o.pages_per_file_shift < options::pages_per_file_shift_min ||
      o.pages_per_file_shift > options::pages_per_file_shift_max) {
    return invalid_option("pages_per_file_shift", "must be in [1, 32]", o.pages_per_file_shift);
  }
  if (o.overflow_pointers < 1 || o.overflow_pointers > options::overflow_pointers_max) {
    return invalid_option("overflow_pointers", "must be in [1, 128]", o.overflow_pointers);
  }
  if (4 * std::uint64_t{o.overflow_pointers} >= overflow_capacity(page)) {
    return invalid_option("overflow_pointers",
                          "4 * overflow_pointers must be below data_page_size - 12",
                          o.overflow_pointers);
  }
  if (o.data_page_restart_interval == 0) {
    return invalid_option("data_page_restart_interval", "must be at least 1");
  }
  if (o.index_page_restart_interval == 0) {
    return invalid_option("index_page_restart_interval", "must be at least 1");
  }
  return {};
}

// Each store path is one directory; an empty or repeated entry would misroute partitions.
[[nodiscard]] inline validation_result validate_store_paths(const options& o) {
  for (std::size_t i = 0; i < o.store_path.size(); ++i) {
    if (o.store_path[i].empty()) {
      return invalid_option("store_path", "entries must not be empty");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (o.store_path[j] == o.store_path[i]) {
        return invalid_option("store_path", "lists '" + o.store_path[i] + "' twice");
      }
    }
  }
  return {};
}

// Shards, memory budgets and the I/O machinery.
[[nodiscard]] inline validation_result validate_runtime(const options& o) {
  if (o.num_threads == 0) {
    return invalid_option("num_threads", "must be at least 1");
  }
  const std::uint64_t pool_pages = o.buffer_pool_size / o.data_page_size;
  if (pool_pages < options::buffer_pool_pages_min) {
    return invalid_option("buffer_pool_size", "must hold at least one page of data_page_size",
                          o.buffer_pool_size);
  }
  if (o.data_page_cache_size != 0 && o.data_page_cache_size < o.data_page_size) {
    return invalid_option("data_page_cache_size",
                          "must be 0 (off) or hold at least one page of data_page_size",
                          o.data_page_cache_size);
  }
  if (o.coroutine_stack_size % options::os_page_bytes != 0 ||
      o.coroutine_stack_size < options::coroutine_stack_size_min) {
    return invalid_option("coroutine_stack_size", "must be a multiple of 4096 and >= 16384",
                          o.coroutine_stack_size);
  }
  if (o.io_queue_size == 0 || o.io_queue_size > options::io_queue_size_max) {
    return invalid_option("io_queue_size", "must be in [1, 32768]", o.io_queue_size);
  }
  if (!is_power_of_two(o.buf_ring_size) || o.buf_ring_size > options::buf_ring_size_max) {
    return invalid_option("buf_ring_size", "must be a power of two <= 32768", o.buf_ring_size);
  }
  if (o.max_inflight_write == 0) {
    return invalid_option("max_inflight_write", "must be at least 1");
  }
  if (o.max_write_batch_pages == 0) {
    return invalid_option("max_write_batch_pages", "must be at least 1");
  }
  if (o.max_archive_tasks == 0) {
    return invalid_option("max_archive_tasks", "must be at least 1");
  }
  return {};
}

// Cloud-only settings, and the settings that need cloud mode.
[[nodiscard]] inline validation_result validate_cloud(const options& o) {
  if (!o.cloud_mode()) {
    if (o.prewarm_cloud_cache) {
      return invalid_option("prewarm_cloud_cache", "requires cloud_store_path");
    }
    return {};
  }
  if (o.cloud_store_path.front() == ':' || o.cloud_store_path.front() == '/') {
    return invalid_option("cloud_store_path", "must be bucket[/prefix], not start with ':' or '/'");
  }
  if (o.store_path.empty()) {
    return invalid_option("store_path", "cloud mode needs a local cache directory");
  }
  if (o.max_cloud_concurrency == 0) {
    return invalid_option("max_cloud_concurrency", "must be at least 1 in cloud mode");
  }
  if (o.cloud_request_threads == 0) {
    return invalid_option("cloud_request_threads", "must be at least 1 in cloud mode");
  }
  if (o.max_upload_batch == 0 || o.max_upload_batch >= o.max_cloud_concurrency) {
    return invalid_option("max_upload_batch", "must be in [1, max_cloud_concurrency)",
                          o.max_upload_batch);
  }
  if (o.reserve_space_ratio == 0) {
    return invalid_option("reserve_space_ratio", "must be at least 1 in cloud mode");
  }
  if (o.prewarm_cloud_cache && o.prewarm_task_count == 0) {
    return invalid_option("prewarm_task_count", "must be at least 1 when prewarming");
  }
  return {};
}

// A store with directories needs descriptors beyond the reserved ones for every shard.
// REQUIRES: the other groups passed (normalized() then computes a meaningful fd_limit).
[[nodiscard]] inline validation_result validate_fd_budget(const options& o) {
  if (o.store_path.empty()) {
    return {};
  }
  const std::uint64_t fds = o.cloud_mode() ? o.normalized().fd_limit : o.fd_limit;
  if (fds < options::reserved_fd_count + o.num_threads) {
    return invalid_option("fd_limit",
                          "must be at least 100 (reserved) + num_threads; in cloud mode it is "
                          "first clamped to local_space_limit / data_file_size + 100",
                          fds);
  }
  return {};
}

}  // namespace detail

inline validation_result options::validate() const {
  validation_result r = detail::validate_geometry(*this);
  if (r.ok()) {
    r = detail::validate_store_paths(*this);
  }
  if (r.ok()) {
    r = detail::validate_runtime(*this);
  }
  if (r.ok()) {
    r = detail::validate_cloud(*this);
  }
  if (r.ok()) {
    r = detail::validate_fd_budget(*this);
  }
  return r;
}

inline options options::normalized() const {
  options n = *this;
  if (!n.cloud_mode()) {
    return n;
  }
  if (n.local_space_limit == 0) {
    n.local_space_limit = default_cloud_space_limit;
  }
  n.data_append_mode = true;
  const std::uint64_t file_bytes = n.data_file_size();
  if (file_bytes == 0) {
    return n;  // invalid geometry; validate() reports it
  }
  if (n.local_space_limit < file_bytes) {
    n.local_space_limit = file_bytes;
  }
  const std::uint64_t fd_cap = n.local_space_limit / file_bytes + reserved_fd_count;
  if (n.fd_limit > fd_cap) {
    n.fd_limit = static_cast<std::uint32_t>(fd_cap);  // fd_cap < fd_limit, so it fits
  }
  return n;
}

}  // namespace eloqstore
