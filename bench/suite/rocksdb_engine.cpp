// The RocksDB adapter (Debian's librocksdb-dev 7.8): one default column family, the WAL on
// and every write synced (WriteOptions::sync), block-based tables with a bloom filter and an
// LRU block cache of the suite's cache budget, reads with O_DIRECT (use_direct_reads), no
// compression (the values are random bytes, and the other engines do not compress either).
// Everything else is RocksDB's default; the full option set RocksDB ends up with is in the OPTIONS
// file it writes, which the driver copies next to the report.
#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "engine.hpp"

namespace bench {
namespace {

constexpr int bloom_bits_per_key = 10;
constexpr std::size_t block_bytes = 4096;

rocksdb::Slice slice(std::string_view s) {
  return rocksdb::Slice(s.data(), s.size());
}

class rocksdb_session final : public session {
 public:
  rocksdb_session(rocksdb::DB& db, const rocksdb::WriteOptions& wo) : db_(db), wo_(wo) {}

  [[nodiscard]] bool write(std::span<const kv_ref> batch) override {
    batch_.Clear();
    for (const kv_ref& r : batch) {
      if (const auto s = batch_.Put(slice(r.key), slice(r.value)); !s.ok()) {
        return fail("WriteBatch::Put: " + s.ToString());
      }
    }
    const rocksdb::Status s = db_.Write(wo_, &batch_);
    return s.ok() || fail("Write: " + s.ToString());
  }

  [[nodiscard]] bool get(std::string_view key, std::string& value, bool& found) override {
    value_.Reset();
    const rocksdb::Status s = db_.Get(ro_, db_.DefaultColumnFamily(), slice(key), &value_);
    found = s.ok();
    if (!found && !s.IsNotFound()) {
      return fail("Get: " + s.ToString());
    }
    if (found) {
      value.assign(value_.data(), value_.size());
    }
    return true;
  }

  [[nodiscard]] bool scan(std::string_view begin, bool inclusive, std::size_t count,
                          scan_result& out) override {
    out = scan_result{};
    std::unique_ptr<rocksdb::Iterator> it(db_.NewIterator(ro_));
    it->Seek(slice(begin));
    if (!inclusive && it->Valid() && it->key() == slice(begin)) {
      it->Next();
    }
    for (; it->Valid() && out.records < count; it->Next()) {
      const rocksdb::Slice v = it->value();
      scratch_.assign(v.data(), v.size());
      out.bytes += it->key().size() + v.size();
      out.last_key.assign(it->key().data(), it->key().size());
      ++out.records;
    }
    return it->status().ok() || fail("Iterator: " + it->status().ToString());
  }

 private:
  rocksdb::DB& db_;
  const rocksdb::WriteOptions& wo_;
  rocksdb::ReadOptions ro_;
  rocksdb::WriteBatch batch_;
  rocksdb::PinnableSlice value_;
  std::string scratch_;
};

class rocksdb_engine final : public engine {
 public:
  ~rocksdb_engine() override { close(); }

  [[nodiscard]] std::string name() const override { return "rocksdb"; }

  [[nodiscard]] std::string settings() const override {
    std::string s;
    const auto line = [&](const std::string& k, const std::string& v) {
      s += k + " = " + v + "\n";
    };
    line("version", std::to_string(ROCKSDB_MAJOR) + "." + std::to_string(ROCKSDB_MINOR) + "." +
                        std::to_string(ROCKSDB_PATCH));
    line("WriteOptions.sync", wo_.sync ? "true" : "false");
    line("WriteOptions.disableWAL", wo_.disableWAL ? "true" : "false");
    line("Options.IncreaseParallelism", std::to_string(threads_));
    line("Options.max_background_jobs", std::to_string(opts_.max_background_jobs));
    line("Options.compression", "kNoCompression (all levels)");
    line("Options.write_buffer_size", std::to_string(opts_.write_buffer_size));
    line("Options.max_write_buffer_number", std::to_string(opts_.max_write_buffer_number));
    line("Options.use_direct_reads", opts_.use_direct_reads ? "true" : "false");
    line("Options.use_direct_io_for_flush_and_compaction",
         opts_.use_direct_io_for_flush_and_compaction ? "true" : "false");
    line("Options.use_fsync", opts_.use_fsync ? "true" : "false");
    line("BlockBasedTableOptions.block_cache (LRU bytes)", std::to_string(cache_bytes_));
    line("BlockBasedTableOptions.block_size", std::to_string(block_bytes));
    line("BlockBasedTableOptions.filter_policy",
         "bloom, " + std::to_string(bloom_bits_per_key) + " bits/key");
    line("ReadOptions", "defaults (verify_checksums = true, fill_cache = true)");
    line("other options", "RocksDB defaults (see rocksdb-OPTIONS.ini)");
    return s;
  }

  [[nodiscard]] bool open(const engine_config& cfg, std::string& error) override {
    close();
    threads_ = std::max(1U, cfg.threads);
    cache_bytes_ = cfg.cache_bytes;
    opts_ = rocksdb::Options{};
    opts_.create_if_missing = true;
    opts_.IncreaseParallelism(static_cast<int>(threads_));
    opts_.compression = rocksdb::kNoCompression;
    opts_.bottommost_compression = rocksdb::kNoCompression;
    // Reads bypass the OS page cache, as eloqstore's O_DIRECT data files do: the block cache
    // is RocksDB's only read cache, within the same budget as eloqstore's.
    opts_.use_direct_reads = true;
    rocksdb::BlockBasedTableOptions t;
    t.block_cache = rocksdb::NewLRUCache(cache_bytes_);
    t.block_size = block_bytes;
    t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(bloom_bits_per_key));
    opts_.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
    wo_ = rocksdb::WriteOptions{};
    wo_.sync = true;
    wo_.disableWAL = false;
    rocksdb::DB* db = nullptr;
    const rocksdb::Status s = rocksdb::DB::Open(opts_, cfg.dir, &db);
    if (!s.ok()) {
      error = "rocksdb open failed: " + s.ToString();
      return false;
    }
    db_.reset(db);
    return true;
  }

  void settle(double timeout_s) override {
    if (!db_) {
      return;
    }
    (void)db_->Flush(rocksdb::FlushOptions{});
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    const char* busy[] = {"rocksdb.compaction-pending", "rocksdb.num-running-compactions",
                          "rocksdb.num-running-flushes", "rocksdb.mem-table-flush-pending"};
    while (std::chrono::steady_clock::now() < deadline) {
      std::uint64_t pending = 0;
      for (const char* p : busy) {
        std::uint64_t v = 0;
        if (db_->GetIntProperty(p, &v)) {
          pending += v;
        }
      }
      if (pending == 0) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  void close() override {
    if (db_) {
      rocksdb::CancelAllBackgroundWork(db_.get(), true);
      (void)db_->Close();
      db_.reset();
    }
  }

  [[nodiscard]] std::unique_ptr<session> new_session() override {
    return std::make_unique<rocksdb_session>(*db_, wo_);
  }

 private:
  unsigned threads_ = 1;
  std::size_t cache_bytes_ = 0;
  rocksdb::Options opts_;
  rocksdb::WriteOptions wo_;
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace

std::unique_ptr<engine> make_rocksdb_engine() {
  return std::make_unique<rocksdb_engine>();
}

}  // namespace bench
