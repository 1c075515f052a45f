// fio runs and their parsing (see device.hpp).
#include "device.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <thread>

namespace bench {
namespace {

std::string ms_arg(double seconds) {
  return std::to_string(static_cast<long long>(std::llround(seconds * 1000))) + "ms";
}

latency_summary latency_of(const json& lat_ns) {
  latency_summary s;
  const json& pct = member(lat_ns, "percentile");
  s.count = static_cast<std::uint64_t>(number_or(member(lat_ns, "N"), 0));
  s.mean_us = number_or(member(lat_ns, "mean"), 0) / 1e3;
  s.max_us = number_or(member(lat_ns, "max"), 0) / 1e3;
  s.p50_us = number_or(member(pct, "50.000000"), 0) / 1e3;
  s.p99_us = number_or(member(pct, "99.000000"), 0) / 1e3;
  s.p999_us = number_or(member(pct, "99.900000"), 0) / 1e3;
  return s;
}

// Reads one job's figures out of fio's JSON document.
bool parse_fio(const std::string& text, fio_result& r) {
  json doc;
  std::string error;
  if (!parse_json(text, doc, error)) {
    r.error = "fio output is not JSON: " + error;
    return false;
  }
  const json& jobs = array_or_empty(member(doc, "jobs"));
  if (jobs.empty()) {
    r.error = "fio output has no jobs";
    return false;
  }
  const json& job = jobs.front();
  const double job_error = number_or(member(job, "error"), 0);
  if (job_error != 0) {
    r.error = "fio job error " + std::to_string(static_cast<int>(job_error));
    return false;
  }
  const bool reads = r.job.rw.find("read") != std::string::npos;
  const json& dir = member(job, reads ? "read" : "write");
  r.iops = number_or(member(dir, "iops"), 0);
  r.bytes_per_s = number_or(member(dir, "bw_bytes"), 0);
  if (r.job.fdatasync) {
    r.lat = latency_of(member(member(job, "sync"), "lat_ns"));
  } else {
    // lat_percentiles=1 gives percentiles of the whole latency (submission + completion).
    const json& lat_ns = member(dir, "lat_ns");
    r.lat = latency_of(member(lat_ns, "percentile").is_null() ? member(dir, "clat_ns") : lat_ns);
  }
  r.ok = r.iops > 0;
  if (!r.ok) {
    r.error = "fio reported no I/O";
  }
  return r.ok;
}

std::vector<std::string> fio_args(const device_params& p, const fio_job& j,
                                  const std::string& file) {
  std::vector<std::string> a = {p.fio,
                                "--output-format=json",
                                "--name=" + j.name,
                                "--filename=" + file,
                                "--size=" + std::to_string(p.file_bytes),
                                "--rw=" + j.rw,
                                "--bs=" + std::to_string(j.block_bytes),
                                "--iodepth=" + std::to_string(j.iodepth),
                                "--ioengine=" + j.ioengine,
                                "--direct=" + std::string(j.direct ? "1" : "0"),

                                "--numjobs=1",
                                "--randrepeat=0",
                                "--norandommap=1",
                                "--lat_percentiles=1",
                                "--percentile_list=50:99:99.9"};
  if (!j.size_bound) {
    a.emplace_back("--time_based=1");
    a.emplace_back("--runtime=" + ms_arg(p.runtime_s));
    a.emplace_back("--ramp_time=" + ms_arg(p.ramp_s));
  }
  if (j.fdatasync) {
    a.emplace_back("--fdatasync=1");
  }
  if (j.fdatasync_every > 0) {
    a.emplace_back("--fdatasync=" + std::to_string(j.fdatasync_every));
  }
  if (j.rw == "write" && !j.fdatasync) {
    a.emplace_back("--end_fsync=1");
  }
  if (j.new_file) {
    a.emplace_back("--fallocate=none");
  }
  return a;
}

}  // namespace

const fio_result* device_run::find(const std::string& name) const {
  for (const fio_result& r : results) {
    if (r.job.name == name) {
      return &r;
    }
  }
  return nullptr;
}

std::vector<fio_job> device_jobs(const device_params& p) {
  std::vector<int> qds = p.read_queue_depths;
  std::sort(qds.begin(), qds.end());
  qds.erase(std::unique(qds.begin(), qds.end()), qds.end());
  std::vector<fio_job> jobs;
  for (const int qd : qds) {
    fio_job j;
    j.name = "randread-qd" + std::to_string(qd);
    j.rw = "randread";
    j.iodepth = qd;
    j.description = "4 KiB random reads, io_uring, direct, QD " + std::to_string(qd);
    jobs.push_back(j);
  }
  fio_job sr;
  sr.name = "seqread-256k";
  sr.rw = "read";
  sr.block_bytes = 256 * 1024;
  sr.iodepth = 8;
  sr.description = "256 KiB sequential reads, io_uring, direct, QD 8";
  jobs.push_back(sr);
  fio_job fs;
  fs.name = "fdatasync";
  fs.rw = "write";
  fs.ioengine = "sync";
  fs.direct = false;
  fs.fdatasync = true;
  fs.description = "4 KiB buffered overwrites, fdatasync after each (latency of the fdatasync)";
  jobs.push_back(fs);
  fio_job fa = fs;
  fa.name = "fdatasync-append";
  fa.new_file = true;
  fa.description = "4 KiB buffered writes into a new sparse file, fdatasync after each";
  jobs.push_back(fa);
  // Last, and bounded by size: gigabytes of writes leave the device (or its host) flushing
  // for a while, which would slow whatever syncs next.
  fio_job sw = sr;
  sw.name = "seqwrite-256k";
  sw.rw = "write";
  sw.size_bound = true;
  sw.fdatasync_every = 32;
  sw.description =
      "256 KiB sequential writes over the whole file once, io_uring, direct, QD 8, "
      "fdatasync every 8 MiB (durable MB/s)";
  jobs.push_back(sw);
  return jobs;
}

int run_command(const std::vector<std::string>& argv, std::string& out, double timeout_s,
                bool keep_stderr) {
  out.clear();
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return -1;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return -1;
  }
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    if (!keep_stderr) {
      const int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, STDERR_FILENO);
    }
    std::vector<char*> args;
    for (const std::string& a : argv) {
      args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  bool killed = false;
  char buf[65536];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      ::kill(pid, SIGKILL);
      killed = true;
      break;
    }
    pollfd pfd{pipe_fds[0], POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 1000))) <= 0) {
      continue;
    }
    const ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
    if (n <= 0) {
      break;  // EOF: the child closed its stdout
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (killed || !WIFEXITED(status)) {
    return -1;
  }
  return WEXITSTATUS(status);
}

device_run run_device_suite(const device_params& p) {
  device_run d;
  std::string out;
  if (run_command({p.fio, "--version"}, out, 10) != 0) {
    d.note = "fio not found or not runnable (" + p.fio + "); device figures not measured";
    return d;
  }
  d.available = true;
  d.fio_version = out.substr(0, out.find('\n'));
  std::filesystem::create_directories(p.dir);
  const std::string shared_file = p.dir + "/fio-shared.dat";
  const std::string append_file = p.dir + "/fio-append.dat";
  const double timeout_s = p.runtime_s + p.ramp_s + 120 + static_cast<double>(p.file_bytes) / 20e6;
  // Lay the shared file out first and flush it: fio writes it through the page cache, and
  // a gigabyte left dirty would be paid for by the first job that syncs (fdatasync).
  std::vector<std::string> layout = fio_args(p, device_jobs(p).front(), shared_file);
  layout.emplace_back("--create_only=1");
  if (run_command(layout, out, timeout_s) != 0) {
    d.note = "fio could not lay out " + shared_file;
  }
  ::sync();
  std::this_thread::sleep_for(std::chrono::duration<double>(p.settle_s));
  for (const fio_job& j : device_jobs(p)) {
    fio_result r;
    r.job = j;
    std::error_code ec;
    std::filesystem::remove(append_file, ec);
    const std::string file = j.new_file ? append_file : shared_file;
    const int rc = run_command(fio_args(p, j, file), out, timeout_s);
    if (rc != 0) {
      r.error = "fio exited with " + std::to_string(rc);
    } else {
      (void)parse_fio(out, r);
    }
    std::fprintf(stderr, "device %-18s %s\n", j.name.c_str(),
                 r.ok ? (std::to_string(static_cast<long long>(r.iops)) + " IOPS, " +
                         std::to_string(static_cast<long long>(r.bytes_per_s / 1e6)) +
                         " MB/s, p50 " + std::to_string(r.lat.p50_us) + " us")
                            .c_str()
                      : r.error.c_str());
    d.results.push_back(std::move(r));
  }
  std::error_code ec;
  std::filesystem::remove(append_file, ec);
  // Let the device finish flushing the sequential writes before anything else is timed.
  ::sync();
  std::this_thread::sleep_for(std::chrono::duration<double>(p.settle_s));
  return d;
}

json to_json(const device_run& d) {
  json o = json::object();
  o["available"] = d.available;
  o["fio_version"] = d.fio_version;
  o["note"] = d.note;
  json jobs = json::array();
  for (const fio_result& r : d.results) {
    json j = json::object();
    j["name"] = r.job.name;
    j["description"] = r.job.description;
    j["ok"] = r.ok;
    j["error"] = r.error;
    j["iops"] = r.iops;
    j["bytes_per_s"] = r.bytes_per_s;
    j["lat_p50_us"] = r.lat.p50_us;
    j["lat_p99_us"] = r.lat.p99_us;
    j["lat_p999_us"] = r.lat.p999_us;
    j["lat_mean_us"] = r.lat.mean_us;
    jobs.push_back(std::move(j));
  }
  o["jobs"] = std::move(jobs);
  return o;
}

}  // namespace bench
