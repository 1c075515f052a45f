// The device's own limits, measured with fio (--output-format=json) on a file in the same
// directory as the engines' data:
//   randread-qdN    4 KiB random reads, io_uring, O_DIRECT, queue depth N (1, 32, 128 and
//                   the client counts of the read workloads)
//   seqread-256k    256 KiB sequential reads, io_uring, O_DIRECT, queue depth 8
//   fdatasync       4 KiB buffered overwrites of written blocks, fdatasync after each
//   fdatasync-append   the same into a new sparse file (block allocation in every sync)
//   seqwrite-256k   256 KiB sequential writes of the whole file once, io_uring, O_DIRECT,
//                   queue depth 8, fdatasync every 8 MiB: durable bandwidth, not what a
//                   write-back cache in front of the disk (a VM host's) absorbs; last,
//                   followed by a settling pause
// The shared file is laid out and flushed before the first job, and the device settles after
// the last. Also a subprocess helper shared with the driver.
//
// Thread affinity: call from the driver's (single) thread; it forks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "histogram.hpp"
#include "json.hpp"

namespace bench {

struct fio_job {
  std::string name;
  std::string rw;  // fio's rw=
  std::uint64_t block_bytes = 4096;
  int iodepth = 1;
  std::string ioengine = "io_uring";
  bool direct = true;
  bool fdatasync = false;   // fdatasync after every write; latency is the sync's
  int fdatasync_every = 0;  // > 0: fdatasync after every this many writes (durable bandwidth)
  bool new_file = false;    // write into a fresh sparse file instead of the shared one
  bool size_bound = false;  // write the file once instead of running for runtime_s
  std::string description;
};

struct fio_result {
  fio_job job;
  bool ok = false;
  std::string error;
  double iops = 0;
  double bytes_per_s = 0;
  latency_summary lat;  // completion latency of the I/O, or of the fdatasync
};

struct device_params {
  std::string fio = "fio";
  std::string dir;  // where the test files go (same file system as the engines)
  std::uint64_t file_bytes = std::uint64_t{1} << 30;
  double runtime_s = 2;
  double ramp_s = 0.5;
  double settle_s = 3;  // pause after laying out the file and after the last job
  std::vector<int> read_queue_depths{1, 32, 128};
};

struct device_run {
  bool available = false;  // fio found and runnable
  std::string fio_version;
  std::string note;  // why it is missing, if it is
  std::vector<fio_result> results;

  // The result called `name`, or nullptr.
  [[nodiscard]] const fio_result* find(const std::string& name) const;
};

// The jobs for `p` (read queue depths sorted and unique).
std::vector<fio_job> device_jobs(const device_params& p);

// Runs every job once; a missing fio gives available = false and no results.
device_run run_device_suite(const device_params& p);

json to_json(const device_run& d);

// Runs argv (argv[0] looked up in PATH) with stdout captured into `out` (stderr discarded
// unless `keep_stderr`); kills it after `timeout_s`. Returns the exit status, -1 when it
// could not run or was killed.
int run_command(const std::vector<std::string>& argv, std::string& out, double timeout_s,
                bool keep_stderr = false);

}  // namespace bench
