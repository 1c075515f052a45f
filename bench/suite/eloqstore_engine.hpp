// The eloqstore adapter, a template over the store's traits so that any traits type can be
// benchmarked: instantiate eloqstore_engine<my_traits> and register it in eloqstore_engine.cpp.
//
// Mapping onto the store: one table ("bench") cut into partitions by the workload's split
// keys (range partitioning, so scans stay ordered), partition p on shard p % num_threads.
// A batch is split by partition; the parts are submitted together with exec_async and the
// batch is acknowledged when every part is durable (each part is atomic on its own; the
// store has no cross-partition transaction). Reads and scans use request objects owned by
// the session, so the steady state allocates only what the request API itself does.
//
// Thread affinity: see engine.hpp; each session owns its requests, which are never
// submitted twice at once.
#pragma once

#include <cxxabi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include <eloqstore/eloqstore.hpp>

#include "engine.hpp"

namespace bench {

// A readable name of a type, for the settings dump.
inline std::string demangled_name(const std::type_info& t) {
  int status = 0;
  char* s = abi::__cxa_demangle(t.name(), nullptr, nullptr, &status);
  std::string out = status == 0 && s != nullptr ? s : t.name();
  std::free(s);
  return out;
}

template <typename Traits>
class eloqstore_engine final : public engine {
 public:
  using store_type = eloqstore::EloqStore<Traits>;
  // Scan requests ask for at most this many records at a time.
  static constexpr std::size_t scan_page_records_max = 1024;
  static constexpr const char* table_name = "bench";

  // `tune` adjusts the options after the suite's settings (append mode and its factor).
  eloqstore_engine(std::string name, std::string traits_name,
                   void (*tune)(eloqstore::options&, unsigned) = nullptr, unsigned tune_arg = 0)
      : name_(std::move(name)),
        traits_name_(std::move(traits_name)),
        tune_(tune),
        tune_arg_(tune_arg) {}
  ~eloqstore_engine() override { close(); }

  [[nodiscard]] std::string name() const override { return name_; }

  [[nodiscard]] std::string settings() const override {
    const eloqstore::options& o = opts_;
    std::string s;
    const auto line = [&](const std::string& k, const std::string& v) {
      s += k + " = " + v + "\n";
    };
    line("traits", traits_name_);
    line("io_type", demangled_name(typeid(typename Traits::io_type)));
    line("scheduler_type", demangled_name(typeid(typename Traits::scheduler_type)));
    line("page_size", std::to_string(Traits::page_size));
    line("num_threads (shards)", std::to_string(o.num_threads));
    line("partitions (table 'bench', range-partitioned by split keys)",
         std::to_string(splits_.size() + 1));
    line("buffer_pool_size (index-page cache per shard)", std::to_string(o.buffer_pool_size));
    line("data_page_cache_size (data-page cache per shard)",
         eloqstore::detail::data_cache_enabled<Traits>() ? std::to_string(o.data_page_cache_size)
                                                         : "0 (traits without a data cache)");
    line("root_meta_cache_size", std::to_string(o.root_meta_cache_size));
    line("pages_per_file_shift", std::to_string(o.pages_per_file_shift));
    line("data_append_mode", o.data_append_mode ? "true" : "false");
    line("file_amplify_factor", std::to_string(o.file_amplify_factor));
    line("group_commit", o.group_commit ? "true" : "false");
    line("group_commit_max", std::to_string(o.group_commit_max));
    line("skip_verify_checksum", o.skip_verify_checksum ? "true" : "false");
    line("enable_compression", o.enable_compression ? "true" : "false");
    line("durability",
         "a batch is acknowledged after every partition part is written, the data files "
         "fdatasync'ed and the manifest appended and fdatasync'ed");
    return s;
  }

  [[nodiscard]] bool open(const engine_config& cfg, std::string& error) override {
    close();
    opts_ = eloqstore::options{};
    opts_.store_path = {cfg.dir};
    opts_.num_threads = static_cast<std::uint16_t>(std::max(1U, cfg.threads));
    // The cache budget per shard: an eighth for index pages (a few MiB index the suite's
    // data sets), the rest for data pages; all of it for index pages without a data cache.
    const std::uint64_t per_shard = cfg.cache_bytes / opts_.num_threads;
    const std::uint64_t index_share =
        eloqstore::detail::data_cache_enabled<Traits>() ? per_shard / 8 : per_shard;
    opts_.buffer_pool_size = std::max<std::uint64_t>(index_share, 4 * Traits::page_size);
    opts_.data_page_cache_size = per_shard > index_share ? per_shard - index_share : 0;
    opts_.data_page_size = static_cast<std::uint16_t>(Traits::page_size);
    if (tune_ != nullptr) {
      tune_(opts_, tune_arg_);
    }
    splits_ = cfg.split_keys;
    std::sort(splits_.begin(), splits_.end());
    store_ = std::make_unique<store_type>(opts_);
    if (const eloqstore::error e = store_->start(); e != eloqstore::error::ok) {
      error = "eloqstore start failed: " + std::string(eloqstore::error_message(e)) + ": " +
              store_->last_message();
      store_.reset();
      return false;
    }
    // Timestamps order writes to one key; the wall clock keeps them rising across runs.
    ts_.store(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count()));
    return true;
  }

  void close() override {
    if (store_) {
      if (std::getenv("ELOQSTORE_BENCH_CACHE_STATS") != nullptr) {
        const auto t = store_->stats().total();
        std::fprintf(
            stderr, "%s: data cache hits %llu misses %llu, index cache hits %llu misses %llu\n",
            name_.c_str(), static_cast<unsigned long long>(t[eloqstore::counter::data_cache_hits]),
            static_cast<unsigned long long>(t[eloqstore::counter::data_cache_misses]),
            static_cast<unsigned long long>(t[eloqstore::counter::index_cache_hits]),
            static_cast<unsigned long long>(t[eloqstore::counter::index_cache_misses]));
      }
      store_->stop();
      store_.reset();
    }
  }

  [[nodiscard]] std::unique_ptr<session> new_session() override;

  [[nodiscard]] store_type& store() noexcept { return *store_; }
  [[nodiscard]] std::size_t partition_count() const noexcept { return splits_.size() + 1; }
  [[nodiscard]] std::size_t partition_of(std::string_view key) const {
    return static_cast<std::size_t>(std::upper_bound(splits_.begin(), splits_.end(), key) -
                                    splits_.begin());
  }
  [[nodiscard]] static eloqstore::table_ident table(std::size_t partition) {
    return eloqstore::table_ident{table_name, static_cast<std::uint32_t>(partition)};
  }
  [[nodiscard]] std::uint64_t next_timestamp() noexcept {
    return ts_.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  std::string name_;
  std::string traits_name_;
  void (*tune_)(eloqstore::options&, unsigned) = nullptr;
  unsigned tune_arg_ = 0;
  eloqstore::options opts_;
  std::vector<std::string> splits_;
  std::unique_ptr<store_type> store_;
  std::atomic<std::uint64_t> ts_{1};
};

template <typename Traits>
class eloqstore_session final : public session {
 public:
  explicit eloqstore_session(eloqstore_engine<Traits>& e)
      : engine_(e), writes_(e.partition_count()) {}

  [[nodiscard]] bool write(std::span<const kv_ref> batch) override {
    for (const std::size_t p : used_) {
      writes_[p].entries_.clear();
    }
    used_.clear();
    for (const kv_ref& r : batch) {
      const std::size_t p = engine_.partition_of(r.key);
      if (writes_[p].entries_.empty()) {
        used_.push_back(p);
      }
      writes_[p].entries_.push_back(eloqstore::write_entry{std::string(r.key), std::string(r.value),
                                                           engine_.next_timestamp(),
                                                           eloqstore::write_op::upsert, 0});
    }
    std::size_t submitted = 0;
    for (; submitted < used_.size(); ++submitted) {
      auto& req = writes_[used_[submitted]];
      req.set_args(engine_.table(used_[submitted]), std::move(req.entries_));
      if (!engine_.store().exec_async(req)) {
        break;
      }
    }
    // Every submitted part is waited for, even after a failure: the requests are reused.
    std::string error;
    for (std::size_t i = 0; i < submitted; ++i) {
      auto& req = writes_[used_[i]];
      req.wait();
      if (req.status() != eloqstore::error::ok && error.empty()) {
        error = "batch write: " + std::string(req.message());
      }
    }
    if (submitted != used_.size()) {
      return fail("exec_async refused (store stopped)");
    }
    return error.empty() || fail(std::move(error));
  }

  [[nodiscard]] bool get(std::string_view key, std::string& value, bool& found) override {
    read_.set_args(engine_.table(engine_.partition_of(key)), std::string(key));
    if (!run(read_)) {
      return false;
    }
    found = read_.status() == eloqstore::error::ok;
    if (!found && read_.status() != eloqstore::error::not_found) {
      return fail("read: " + std::string(read_.message()));
    }
    value.assign(read_.value());
    return true;
  }

  [[nodiscard]] bool scan(std::string_view begin, bool inclusive, std::size_t count,
                          scan_result& out) override {
    out = scan_result{};
    std::size_t p = engine_.partition_of(begin);
    std::string from(begin);
    // Each round either fills the request or moves to the next partition: bounded by the
    // records wanted plus the partitions.
    const std::size_t rounds_max = count / scan_page_records + engine_.partition_count() + 2;
    for (std::size_t round = 0;
         round < rounds_max && out.records < count && p < engine_.partition_count(); ++round) {
      const std::size_t want = std::min(count - out.records, scan_page_records);
      scan_.set_args(engine_.table(p), std::move(from), {}, inclusive);
      scan_.set_pagination(want, 0);
      scan_.entries_.clear();
      if (!run(scan_)) {
        return false;
      }
      if (scan_.status() != eloqstore::error::ok && scan_.status() != eloqstore::error::not_found) {
        return fail("scan: " + std::string(scan_.message()));
      }
      for (const eloqstore::kv_entry& e : scan_.entries()) {
        value_.assign(e.value);
        out.bytes += e.key.size() + e.value.size();
      }
      out.records += scan_.entries().size();
      if (!scan_.entries().empty()) {
        out.last_key = scan_.entries().back().key;
      }
      if (scan_.status() == eloqstore::error::ok && scan_.has_remaining()) {
        from = out.last_key;
        inclusive = false;
      } else {
        ++p;  // this partition is exhausted: its successor starts at its first key
        from.clear();
        inclusive = true;
      }
    }
    return true;
  }

 private:
  static constexpr std::size_t scan_page_records = eloqstore_engine<Traits>::scan_page_records_max;

  // Submits and waits; false only if the store refused the request.
  bool run(eloqstore::request& req) {
    if (!engine_.store().exec_async(req)) {
      return fail("exec_async refused (store stopped)");
    }
    req.wait();
    return true;
  }

  eloqstore_engine<Traits>& engine_;
  std::vector<eloqstore::batch_write_request> writes_;  // one per partition
  std::vector<std::size_t> used_;                       // partitions of the current batch
  eloqstore::read_request read_;
  eloqstore::scan_request scan_;
  std::string value_;  // scan values are copied here, as the other adapters do
};

template <typename Traits>
std::unique_ptr<session> eloqstore_engine<Traits>::new_session() {
  return std::make_unique<eloqstore_session<Traits>>(*this);
}

}  // namespace bench
