// The workloads of the suite and the code that runs one of them against one engine.
//
// A workload runs in two timed phases on the same open engine: the page cache of the
// engine's files is dropped (see cache_drop), the engine opened, a warm-up runs (not
// recorded), the cache is dropped again and the measured phase runs for `duration_s` (fills
// stop earlier once they have written their data set, readseq once it has read it all). The driver
// runs each (workload, engine, repetition) in a child process, so getrusage and the peak RSS belong
// to that run alone.
//
// Operations counted (the report's ops/s):
//   fill*, overwrite          keys written (a batch of b keys counts b; latency per batch)
//   readrandom, readwhilewriting   point reads by the readers (the writer's keys separately)
//   readseq                   records visited; seekrandom: seeks (each followed by 100 nexts)
//   smallwrites               single-key durable writes
//   ycsb-*                    YCSB operations (a scan or a read-modify-write counts one)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine.hpp"
#include "histogram.hpp"
#include "keys.hpp"

namespace bench {

enum class workload_kind {
  fillseq,
  fillrandom,
  overwrite,
  readrandom,
  readseq,
  seekrandom,
  readwhilewriting,
  smallwrites,
  ycsb,
};

// The operation mix of a YCSB core workload (proportions add up to 1).
struct ycsb_mix {
  double read = 0;
  double update = 0;
  double insert = 0;
  double scan = 0;
  double rmw = 0;                     // read-modify-write
  bool latest = false;                // request distribution: latest (else scrambled zipfian 0.99)
  std::size_t scan_length_max = 100;  // scan lengths are uniform in [1, max]
};

struct workload {
  std::string name;
  workload_kind kind = workload_kind::readrandom;
  key_space space = key_space::db;
  std::size_t key_size = 16;
  std::size_t value_size = 1000;
  std::size_t batch_size = 1;      // keys per durable write (writers)
  std::size_t clients = 1;         // client threads (readers, for readwhilewriting)
  std::uint64_t dataset_keys = 0;  // records of the data set (fills: records to write)
  double duration_s = 1;
  double warmup_s = 0.5;
  std::size_t scan_length = 100;  // seekrandom: records per seek
  ycsb_mix mix;
  std::string summary;  // one line for the report

  // Fills start from an empty store; the others run on a loaded data set.
  [[nodiscard]] bool fresh() const noexcept {
    return kind == workload_kind::fillseq || kind == workload_kind::fillrandom;
  }
  [[nodiscard]] bool reads_only() const noexcept {
    return kind == workload_kind::readrandom || kind == workload_kind::readseq ||
           kind == workload_kind::seekrandom ||
           (kind == workload_kind::ycsb && mix.update == 0 && mix.insert == 0 && mix.rmw == 0);
  }
  // Identifies the data set it needs: workloads with equal ids share one loaded data set.
  [[nodiscard]] std::string dataset_id() const;
};

// How the page cache is emptied of the engine's files between warm-up and measurement.
enum class cache_drop {
  fadvise,  // fdatasync + posix_fadvise(DONTNEED) on every file of the engine's directory
  vm,       // sync(); echo 1 > /proc/sys/vm/drop_caches (root only; the whole machine)
  none,
};

// What one run measured; trivially copyable (it crosses a pipe from the child).
struct run_result {
  bool ok = false;
  char error[512] = {};
  double elapsed_s = 0;              // the measured phase
  std::uint64_t ops = 0;             // see the header comment
  std::uint64_t bytes = 0;           // keys plus values moved by the counted operations
  std::uint64_t misses = 0;          // reads of existing records that found nothing
  std::uint64_t writes = 0;          // keys written by every thread (the writer included)
  std::uint64_t write_bytes = 0;     // their keys plus values
  std::uint64_t inserted = 0;        // records added to the data set (YCSB inserts)
  std::uint64_t distinct_keys = 0;   // fills: distinct keys written (warm-up included)
  latency_summary read_lat;          // point reads (YCSB F: the plain reads)
  latency_summary write_lat;         // durable writes: per batch; YCSB F: per read-modify-write
  latency_summary scan_lat;          // seeks with their nexts, YCSB scans
  double cpu_s = 0;                  // user + system CPU of the process over the measured phase
  std::int64_t peak_rss_kib = 0;     // the child's peak RSS (open, warm-up, run, close)
  std::uint64_t io_read_bytes = 0;   // /proc/self/io read_bytes over the measured phase
  std::uint64_t io_write_bytes = 0;  // /proc/self/io write_bytes over the measured phase
  std::uint64_t disk_bytes = 0;      // allocated bytes under the engine's directory, closed
  std::uint64_t logical_bytes = 0;   // live records times (key + value) after the run
  double open_s = 0;
  double close_s = 0;
  double writer_keys_per_s = 0;  // readwhilewriting: the writer's rate
  int cache_drop_applied = -1;   // the cache_drop that ran before measuring, -1 for none
};

struct run_params {
  engine_config cfg;
  std::uint64_t records = 0;  // records the data set holds before the run
  cache_drop drop = cache_drop::fadvise;
  std::uint64_t seed = 1;
  bool load = false;  // load the data set (records = 0 -> workload.dataset_keys) and settle
  double settle_timeout_s = 120;
};

// Runs `w` on a new engine called `engine_name` with `p`; the engine's settings() go to
// `settings` when it is not null.
run_result run_workload(const std::string& engine_name, const workload& w, const run_params& p,
                        std::string* settings = nullptr);

// The standard suite at `scale` (1 = about ten minutes on two cores with three engines and
// three repetitions); `smoke` shrinks everything to seconds.
std::vector<workload> standard_workloads(double scale, bool smoke, double duration_s,
                                         double warmup_s);

// The workload that loads the data set of `w` (sequential keys, large durable batches).
workload load_workload_for(const workload& w);

// Allocated bytes (st_blocks) of the regular files under `dir`.
std::uint64_t disk_usage_bytes(const std::string& dir);

const char* to_string(workload_kind k) noexcept;
const char* to_string(cache_drop d) noexcept;

}  // namespace bench
