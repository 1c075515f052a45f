// Statistics and logging: what the store counts per shard, its snapshot (EloqStore::stats()),
// the Prometheus text exposition of a snapshot, and the log levels of the log callback
// (EloqStore::set_log_callback).
//
// Counters only grow while the store object lives (they survive stop() and start()); a
// snapshot is a copy, read without stopping the shards (each value is read atomically, the
// snapshot as a whole is not one instant). Latencies are from submission to completion, in
// microseconds, in power-of-two buckets.
//
// What is counted: the work of shard threads. Requests the store answers on the submitting
// thread are not (refused at submission: not_running, a read-only store, an invalid table
// name; drop_table, which runs on the calling thread as truncates that are counted), nor are
// failures of the store's own threads (the archive cron, prewarm listing), which are logged.
//
// Thread safety: snapshots are plain values; to_prometheus_text is reentrant.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <eloqstore/request.hpp>

namespace eloqstore {

// The counters of a shard, by name. Bytes are the users' keys and values (what reads
// returned, what writes carried); pages are device pages of data files.
enum class counter : std::uint8_t {
  bytes_read,          // keys and values returned by get, floor and scan
  bytes_written,       // keys and values of batch writes that committed
  pages_read,          // data, index and overflow pages read from data files
  pages_written,       // pages written to data files
  data_syncs,          // fdatasync of data files (commits)
  manifest_writes,     // manifest records appended
  manifest_snapshots,  // manifests replaced by a snapshot
  manifest_syncs,      // fdatasync of manifests
  index_cache_hits,    // index pages found in the cache
  index_cache_misses,  // index pages read from a data file
  write_groups,        // writer passes (group commit: requests per pass in group_sizes)
  compaction_rounds,   // append-mode compaction rounds
  meta_evictions,      // partitions evicted from the root-meta cache
  background_errors,   // errors of background work, also reported to the log callback
  data_cache_hits,     // data and overflow pages found in the data page cache
  data_cache_misses,   // data and overflow pages read from a data file with the cache on
  count_
};
inline constexpr std::size_t counter_count = static_cast<std::size_t>(counter::count_);

struct counter_info {
  std::string_view name;  // snake_case; Prometheus: eloqstore_<name>_total
  std::string_view help;
};
[[nodiscard]] constexpr counter_info describe(counter c) noexcept {
  constexpr std::array<counter_info, counter_count> infos{{
      {"bytes_read", "Bytes of keys and values returned by get, floor and scan."},
      {"bytes_written", "Bytes of keys and values of committed batch writes."},
      {"pages_read", "Pages read from data files."},
      {"pages_written", "Pages written to data files."},
      {"data_syncs", "fdatasync calls on data files."},
      {"manifest_writes", "Manifest records appended."},
      {"manifest_snapshots", "Manifests replaced by a snapshot."},
      {"manifest_syncs", "fdatasync calls on manifests."},
      {"index_cache_hits", "Index pages found in the index page cache."},
      {"index_cache_misses", "Index pages read from data files."},
      {"write_groups", "Writer passes (group commit)."},
      {"compaction_rounds", "Append-mode compaction rounds."},
      {"meta_evictions", "Partitions evicted from the root-meta cache."},
      {"background_errors", "Errors of background work (also logged)."},
      {"data_cache_hits", "Data and overflow pages found in the data page cache."},
      {"data_cache_misses", "Data and overflow pages read from data files (cache on)."},
  }};
  return infos[static_cast<std::size_t>(c)];
}

inline constexpr std::size_t request_type_count =
    static_cast<std::size_t>(request_type::upload_start) + 1;

[[nodiscard]] constexpr std::string_view request_type_name(request_type t) noexcept {
  constexpr std::array<std::string_view, request_type_count> names{
      "read",       "floor",   "scan",          "list_object",   "batch_write",    "truncate",
      "drop_table", "archive", "compact",       "clean_expired", "global_archive", "delete_range",
      "verify",     "restore", "list_archives", "upload_wait",   "upload_start"};
  return names[static_cast<std::size_t>(t)];
}

// A histogram over power-of-two buckets: bucket 0 counts the value 0, bucket i (1 <= i < 40)
// the values in [2^(i-1), 2^i), the last one everything larger.
struct histogram {
  static constexpr std::size_t bucket_count = 41;
  std::array<std::uint64_t, bucket_count> buckets{};
  std::uint64_t count = 0;
  std::uint64_t sum = 0;
  std::uint64_t max = 0;

  [[nodiscard]] static constexpr std::size_t bucket_of(std::uint64_t v) noexcept {
    return std::min<std::size_t>(std::bit_width(v), bucket_count - 1);
  }
  // The largest value bucket i holds (2^i - 1); the last bucket has none.
  [[nodiscard]] static constexpr std::uint64_t upper_bound(std::size_t i) noexcept {
    return i + 1 >= bucket_count ? UINT64_MAX : (std::uint64_t{1} << i) - 1;
  }
  void record(std::uint64_t v) noexcept {
    ++buckets[bucket_of(v)];
    ++count;
    sum += v;
    max = std::max(max, v);
  }
  void merge(const histogram& o) noexcept {
    for (std::size_t i = 0; i < bucket_count; ++i) {
      buckets[i] += o.buckets[i];
    }
    count += o.count;
    sum += o.sum;
    max = std::max(max, o.max);
  }
  // An upper bound of the p-quantile (0 <= p <= 1): the bound of the bucket that holds it,
  // at most max. 0 for an empty histogram.
  [[nodiscard]] std::uint64_t quantile(double p) const noexcept {
    if (count == 0) {
      return 0;
    }
    const double rank = std::clamp(p, 0.0, 1.0) * static_cast<double>(count);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < bucket_count; ++i) {
      seen += buckets[i];
      if (seen > 0 && static_cast<double>(seen) >= rank) {
        return std::min(upper_bound(i), max);
      }
    }
    return max;
  }
};

// Requests of one type that a shard completed.
struct request_stats {
  std::uint64_t count = 0;
  std::uint64_t errors = 0;  // completed with an error other than not_found
  histogram latency_us;      // submission to completion
};

struct shard_stats {
  std::array<std::uint64_t, counter_count> counters{};
  std::array<request_stats, request_type_count> requests{};
  histogram group_sizes;  // write requests per writer pass

  [[nodiscard]] std::uint64_t operator[](counter c) const noexcept {
    return counters[static_cast<std::size_t>(c)];
  }
  [[nodiscard]] const request_stats& operator[](request_type t) const noexcept {
    return requests[static_cast<std::size_t>(t)];
  }
  void merge(const shard_stats& o) noexcept {
    for (std::size_t i = 0; i < counter_count; ++i) {
      counters[i] += o.counters[i];
    }
    for (std::size_t i = 0; i < request_type_count; ++i) {
      requests[i].count += o.requests[i].count;
      requests[i].errors += o.requests[i].errors;
      requests[i].latency_us.merge(o.requests[i].latency_us);
    }
    group_sizes.merge(o.group_sizes);
  }
};

// A snapshot of every shard's statistics.
struct store_stats {
  std::vector<shard_stats> shards;

  [[nodiscard]] shard_stats total() const {
    shard_stats t;
    for (const auto& s : shards) {
      t.merge(s);
    }
    return t;
  }
};

// The Prometheus text exposition format (version 0.0.4) of a snapshot: one counter family per
// counter (eloqstore_<name>_total), eloqstore_requests_total and
// eloqstore_request_errors_total by shard and type, eloqstore_request_latency_seconds
// histograms by shard and type (types with requests only), eloqstore_write_group_size
// histograms by shard. Every sample is labelled with its shard.
[[nodiscard]] inline std::string to_prometheus_text(const store_stats& st) {
  std::string out;
  char buf[64];
  const auto number = [&](std::uint64_t v) {
    std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(v));
    out += buf;
  };
  const auto real = [&](double v) {
    std::snprintf(buf, sizeof buf, "%.9g", v);
    out += buf;
  };
  const auto family = [&](std::string_view name, std::string_view type, std::string_view help) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  };
  const auto sample = [&](std::string_view name, std::size_t shard, std::string_view type,
                          std::string_view le) {
    out.append(name).append("{shard=\"");
    number(shard);
    out.append("\"");
    if (!type.empty()) {
      out.append(",type=\"").append(type).append("\"");
    }
    if (!le.empty()) {
      out.append(",le=\"").append(le).append("\"");
    }
    out.append("} ");
  };
  // A histogram's buckets (cumulative), sum and count; `scale` turns recorded units into the
  // exposed ones (microseconds to seconds).
  const auto histogram_samples = [&](std::string_view name, std::size_t shard,
                                     std::string_view type, const histogram& h, double scale) {
    const std::string bucket = std::string(name) + "_bucket";
    std::uint64_t cumulative = 0;
    std::size_t last = 0;  // the buckets past the largest value add nothing: stop there
    for (std::size_t i = 0; i < histogram::bucket_count; ++i) {
      last = h.buckets[i] != 0 ? i : last;
    }
    for (std::size_t i = 0; i <= last && i + 1 < histogram::bucket_count; ++i) {
      cumulative += h.buckets[i];
      char le[32];
      std::snprintf(le, sizeof le, "%.9g", static_cast<double>(histogram::upper_bound(i)) * scale);
      sample(bucket, shard, type, le);
      number(cumulative);
      out += '\n';
    }
    sample(bucket, shard, type, "+Inf");
    number(h.count);
    out += '\n';
    sample(std::string(name) + "_sum", shard, type, "");
    real(static_cast<double>(h.sum) * scale);
    out += '\n';
    sample(std::string(name) + "_count", shard, type, "");
    number(h.count);
    out += '\n';
  };

  for (std::size_t c = 0; c < counter_count; ++c) {
    const counter_info info = describe(static_cast<counter>(c));
    const std::string name = "eloqstore_" + std::string(info.name) + "_total";
    family(name, "counter", info.help);
    for (std::size_t s = 0; s < st.shards.size(); ++s) {
      sample(name, s, "", "");
      number(st.shards[s].counters[c]);
      out += '\n';
    }
  }
  // A counter family of every shard's requests by type.
  const auto by_type = [&](std::string_view name, std::string_view help,
                           std::uint64_t request_stats::*field) {
    family(name, "counter", help);
    for (std::size_t s = 0; s < st.shards.size(); ++s) {
      for (std::size_t t = 0; t < request_type_count; ++t) {
        sample(name, s, request_type_name(static_cast<request_type>(t)), "");
        number(st.shards[s].requests[t].*field);
        out += '\n';
      }
    }
  };
  by_type("eloqstore_requests_total", "Requests completed, by type.", &request_stats::count);
  by_type("eloqstore_request_errors_total",
          "Requests completed with an error other than not_found, by type.",
          &request_stats::errors);
  family("eloqstore_request_latency_seconds", "histogram",
         "Request latency from submission to completion, by type.");
  for (std::size_t s = 0; s < st.shards.size(); ++s) {
    for (std::size_t t = 0; t < request_type_count; ++t) {
      const request_stats& r = st.shards[s].requests[t];
      if (r.count != 0) {
        histogram_samples("eloqstore_request_latency_seconds", s,
                          request_type_name(static_cast<request_type>(t)), r.latency_us, 1e-6);
      }
    }
  }
  family("eloqstore_write_group_size", "histogram", "Write requests per writer pass.");
  for (std::size_t s = 0; s < st.shards.size(); ++s) {
    histogram_samples("eloqstore_write_group_size", s, "", st.shards[s].group_sizes, 1.0);
  }
  return out;
}

// Log levels of the log callback, in increasing severity.
enum class log_level : std::uint8_t { debug, info, warning, error };

[[nodiscard]] constexpr std::string_view log_level_name(log_level l) noexcept {
  switch (l) {
    case log_level::debug:
      return "debug";
    case log_level::info:
      return "info";
    case log_level::warning:
      return "warning";
    case log_level::error:
      return "error";
  }
  return "?";
}

// Receives the store's log messages (the level and one line of text, without a newline). It
// runs on the thread that logs (a shard thread or one of the store's background threads),
// possibly on several at once: it must be thread-safe and must not call into the store.
using log_callback = std::function<void(log_level, std::string_view)>;

}  // namespace eloqstore
