// The engine interface of the benchmark suite: every store under test (eloqstore, RocksDB,
// LMDB) is one `engine` adapter, and the workloads only talk to this interface.
//
// Contract shared by all adapters, so that the comparison is fair:
//   - write() returns only once the whole batch is durable (synced to the device); a batch
//     is atomic where the engine can make it so (see each adapter's settings()).
//   - get() and scan() copy the values they return into caller-owned buffers, so every
//     engine pays for touching the bytes it reads.
//   - Keys compare bytewise (memcmp, shorter first on a tie).
//
// Thread affinity: open(), settle() and close() run on one thread with no session alive.
// Each client thread owns one session; sessions of one engine may run concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

// One record of a write batch. The views must stay valid until write() returns.
struct kv_ref {
  std::string_view key;
  std::string_view value;
};

// What one scan() saw.
struct scan_result {
  std::size_t records = 0;
  std::size_t bytes = 0;  // keys plus values
  std::string last_key;   // empty when no record was visited
};

struct engine_config {
  std::string dir;              // the engine's own directory; exists and is empty or its data
  std::size_t cache_bytes = 0;  // the engine's cache budget, all shards together
  unsigned threads = 1;         // worker threads or shards the engine may use
  std::uint64_t logical_bytes_max = 0;  // keys plus values the data set may reach (map sizes)
  // Sorted keys that cut the key space into ranges of about equal traffic; an engine that
  // partitions its data (eloqstore) uses one partition per range.
  std::vector<std::string> split_keys;
};

// One client thread's handle. Every call returns false on an engine error (the message is in
// last_error()); a key that is absent is not an error.
class session {
 public:
  session() = default;
  session(const session&) = delete;
  session& operator=(const session&) = delete;
  virtual ~session() = default;

  // Writes the batch durably. REQUIRES: keys unique within the batch.
  [[nodiscard]] virtual bool write(std::span<const kv_ref> batch) = 0;
  // Reads `key` into `value`; `found` tells whether it exists.
  [[nodiscard]] virtual bool get(std::string_view key, std::string& value, bool& found) = 0;
  // Visits up to `count` records with key >= begin (> begin when !inclusive) in key order.
  [[nodiscard]] virtual bool scan(std::string_view begin, bool inclusive, std::size_t count,
                                  scan_result& out) = 0;
  [[nodiscard]] const std::string& last_error() const noexcept { return error_; }

 protected:
  bool fail(std::string message) {
    error_ = std::move(message);
    return false;
  }

 private:
  std::string error_;
};

class engine {
 public:
  engine() = default;
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;
  virtual ~engine() = default;

  [[nodiscard]] virtual std::string name() const = 0;
  // The exact settings in force after open(), one "key = value" per line, for the report.
  [[nodiscard]] virtual std::string settings() const = 0;
  // Opens (creating if needed) the store in cfg.dir. False with `error` set on failure.
  [[nodiscard]] virtual bool open(const engine_config& cfg, std::string& error) = 0;
  // Waits until background work caused by earlier writes is done (RocksDB compactions), so a
  // loaded data set starts every workload in a settled state. At most `timeout_s` seconds.
  virtual void settle(double timeout_s) { (void)timeout_s; }
  virtual void close() = 0;
  [[nodiscard]] virtual std::unique_ptr<session> new_session() = 0;
};

// The adapters, one translation unit each.
std::unique_ptr<engine> make_eloqstore_engine();        // EloqStore<default_traits>
std::unique_ptr<engine> make_eloqstore_pread_engine();  // EloqStore<pread_traits>
// EloqStore<default_traits> in append mode with file_amplify_factor `factor`: named
// "eloqstore-append" (factor 2) or "eloqstore-append-f<factor>".
std::unique_ptr<engine> make_eloqstore_append_engine(unsigned factor);
std::unique_ptr<engine> make_rocksdb_engine();
std::unique_ptr<engine> make_lmdb_engine();

// The engine called `name` ("eloqstore", "eloqstore-pread", "rocksdb", "lmdb"), or nullptr.
std::unique_ptr<engine> make_engine(std::string_view name);

}  // namespace bench
