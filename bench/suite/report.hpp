// What one invocation of the suite produced, and the files written from it:
//   results.json   configuration, machine, peer settings, device figures, every run
//   runs.jsonl     one line per run, appended by the driver as each run ends
//   report.md      medians with min and max, ratios against the peers and the device
//   throughput.png, latency.png (gnuplot; their .gp and .dat files stay beside them)
//
// Thread affinity: the driver's thread.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "device.hpp"
#include "json.hpp"
#include "workloads.hpp"

namespace bench {

struct suite_config {
  std::string out_dir;
  std::string data_dir;
  std::string command_line;
  std::string started_at;  // UTC, ISO 8601
  double scale = 1;
  bool smoke = false;
  int repetitions = 3;
  double duration_s = 2.5;
  double warmup_s = 0.5;
  unsigned threads = 2;
  std::size_t partitions = 8;
  std::size_t cache_bytes = 0;
  cache_drop drop = cache_drop::fadvise;
  std::vector<std::string> engines;  // engines[0] is the one compared against the others
  bool fio = true;
  std::string gnuplot = "gnuplot";
  device_params device;
};

struct run_record {
  std::string engine;
  int workload_index = -1;  // into suite_results::workloads; -1 for a load
  std::string workload_name;
  int repetition = 0;
  run_result r;
};

struct suite_results {
  suite_config cfg;
  std::vector<workload> workloads;
  std::vector<run_record> runs;
  std::vector<run_record> loads;
  std::map<std::string, std::string> settings;  // engine -> its settings() text
  std::vector<device_run> device;               // before the engines, and after them
  double total_s = 0;
  json machine;             // null: describe the machine the report is written on
  std::string regenerated;  // non-empty when rebuilt from a results.json: how
};

// One run as a JSON object (the elements of results.json's "runs", and runs.jsonl's lines).
json run_to_json(const run_record& rec);

// Reads a results.json written by write_reports back (--report-from), so that the report
// can be rebuilt from measured data. False with `error` set on a malformed file.
bool read_results(const std::string& path, suite_results& out, std::string& error);

// Writes results.json, report.md and the charts into cfg.out_dir. False with `error` set
// when a file could not be written (a missing gnuplot is noted in the report instead).
bool write_reports(const suite_results& s, std::string& error);

}  // namespace bench
