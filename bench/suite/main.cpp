// bench_suite: eloqstore beside RocksDB, LMDB and the raw device, in one run.
//
//   bench_suite [--out DIR] [--data DIR] [--scale N] [--smoke] [--reps N] [--duration S]
//               [--warmup S] [--engines a,b] [--workloads a,b] [--threads N]
//   (engines: eloqstore, eloqstore-pread, eloqstore-append, eloqstore-append-f<1-9>,
//   rocksdb, lmdb; the append ones run append mode with that file_amplify_factor)
//               [--partitions N] [--cache-mib N] [--drop-caches fadvise|vm|none]
//               [--no-fio] [--fio PATH] [--fio-runtime S] [--fio-file-mib N]
//               [--gnuplot PATH] [--keep-data] [--set WORKLOAD.FIELD=VALUE ...]
//
// --set changes one parameter of one workload (or of all, with "*"): FIELD is key_size,
// value_size, batch_size, clients, dataset_keys, duration or warmup, e.g.
// --set readrandom.clients=32 --set '*.value_size=100'. A changed key or value size or data
// set size gives the workload its own data set.
//
// --report-from FILE rebuilds report.md, results.json and the charts from a results.json
// (into --out, by default FILE's directory) without measuring anything.
//
// The driver is single-threaded and forks one child per run (workloads.hpp), so the engines'
// threads never live in the driver and fork() is safe. Exit status: 0 when every run
// succeeded, 1 when one failed (the report is written all the same), 2 on bad arguments.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "engine.hpp"
#include "report.hpp"

namespace bench {

std::unique_ptr<engine> make_engine(std::string_view name) {
  if (name == "eloqstore") {
    return make_eloqstore_engine();
  }
  if (name == "eloqstore-pread") {
    return make_eloqstore_pread_engine();
  }
  if (name == "eloqstore-append") {
    return make_eloqstore_append_engine(2);
  }
  if (name.starts_with("eloqstore-append-f")) {
    const std::string_view digits = name.substr(std::string_view("eloqstore-append-f").size());
    if (digits.size() == 1 && digits[0] >= '1' && digits[0] <= '9') {
      return make_eloqstore_append_engine(static_cast<unsigned>(digits[0] - '0'));
    }
  }
  if (name == "rocksdb") {
    return make_rocksdb_engine();
  }
  if (name == "lmdb") {
    return make_lmdb_engine();
  }
  return nullptr;
}

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

constexpr std::size_t settings_bytes_max = 1 << 20;

struct child_output {
  run_result r;
  std::string settings;
};

bool write_all(int fd, const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w <= 0) {
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Runs the workload in a child process; kills it after timeout_s.
child_output run_child(const std::string& eng, const workload& w, const run_params& p,
                       double timeout_s) {
  child_output out;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    std::snprintf(out.r.error, sizeof out.r.error, "pipe: %s", std::strerror(errno));
    return out;
  }
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string settings;
    const run_result r = run_workload(eng, w, p, &settings);
    const std::uint64_t len = std::min(settings.size(), settings_bytes_max);
    const bool ok = write_all(fds[1], &r, sizeof r) && write_all(fds[1], &len, sizeof len) &&
                    write_all(fds[1], settings.data(), len);
    ::_exit(ok ? 0 : 3);
  }
  ::close(fds[1]);
  if (pid < 0) {
    ::close(fds[0]);
    std::snprintf(out.r.error, sizeof out.r.error, "fork: %s", std::strerror(errno));
    return out;
  }
  std::string bytes;
  const auto deadline = clock_type::now() + std::chrono::duration<double>(timeout_s);
  bool killed = false;
  char buf[65536];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
    if (left <= 0) {
      ::kill(pid, SIGKILL);
      killed = true;
      break;
    }
    pollfd pfd{fds[0], POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 1000))) <= 0) {
      continue;
    }
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) {
      break;
    }
    bytes.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::uint64_t len = 0;
  if (killed) {
    std::snprintf(out.r.error, sizeof out.r.error, "killed after %.0f s (timeout)", timeout_s);
  } else if (WIFSIGNALED(status)) {
    std::snprintf(out.r.error, sizeof out.r.error, "child died of signal %d (%s)", WTERMSIG(status),
                  strsignal(WTERMSIG(status)));
  } else if (bytes.size() < sizeof(run_result) + sizeof len) {
    std::snprintf(out.r.error, sizeof out.r.error, "child exited %d without a result",
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  } else {
    std::memcpy(&out.r, bytes.data(), sizeof(run_result));
    std::memcpy(&len, bytes.data() + sizeof(run_result), sizeof len);
    out.settings = bytes.substr(sizeof(run_result) + sizeof len, len);
  }
  return out;
}

// ---- arguments ------------------------------------------------------------------------------

struct override_item {
  std::string workload;  // or "*"
  std::string field;
  double value = 0;
};

struct args {
  suite_config cfg;
  std::set<std::string> only_workloads;
  std::vector<override_item> overrides;
  std::string report_from;
  bool out_set = false;
  bool keep_data = false;
  bool reps_set = false;
  bool duration_set = false;
  bool warmup_set = false;
  double fio_runtime_s = -1;
  double fio_file_mib = -1;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) {
      out.push_back(item);
    }
  }
  return out;
}

bool parse_args(int argc, char** argv, args& a) {
  suite_config& c = a.cfg;
  c.out_dir = "bench-suite-results";
  c.data_dir = "bench-suite-data";
  c.engines = {"eloqstore", "rocksdb", "lmdb"};
  c.threads = std::max(1U, std::thread::hardware_concurrency());
  c.cache_bytes = std::size_t{64} << 20;
  for (int i = 0; i < argc; ++i) {
    if (i > 0) {
      c.command_line += ' ';
    }
    c.command_line += argv[i];
  }
  CLI::App app{"bench_suite: eloqstore beside RocksDB, LMDB and the device (fio)"};
  std::string engines;
  std::string workloads;
  std::string drop = "fadvise";
  double cache_mib = static_cast<double>(c.cache_bytes) / (1024 * 1024);
  std::vector<std::string> sets;
  app.add_option("--out", c.out_dir, "where the report goes")->each([&](const std::string&) {
    a.out_set = true;
  });
  app.add_option("--data", c.data_dir, "where the engines' files go");
  app.add_option("--scale", c.scale, "dataset scale factor")->check(CLI::PositiveNumber);
  app.add_flag("--smoke", c.smoke, "a tiny run of everything (for tests)");
  app.add_option("--reps", c.repetitions, "repetitions per workload and engine")
      ->check(CLI::Range(1, 1000))
      ->each([&](const std::string&) { a.reps_set = true; });
  app.add_option("--duration", c.duration_s, "seconds per timed phase")
      ->check(CLI::PositiveNumber)
      ->each([&](const std::string&) { a.duration_set = true; });
  app.add_option("--warmup", c.warmup_s, "seconds of warm-up")
      ->check(CLI::NonNegativeNumber)
      ->each([&](const std::string&) { a.warmup_set = true; });
  app.add_option("--engines", engines,
                 "comma-separated: eloqstore, eloqstore-pread, eloqstore-append, "
                 "eloqstore-append-fN, rocksdb, lmdb");
  app.add_option("--workloads", workloads, "comma-separated workload names (default: all)");
  app.add_option("--threads", c.threads, "client threads")->check(CLI::Range(1, 4096));
  app.add_option("--partitions", c.partitions, "partitions")->check(CLI::Range(1, 1 << 20));
  app.add_option("--cache-mib", cache_mib, "each engine's cache")->check(CLI::PositiveNumber);
  app.add_option("--drop-caches", drop, "how caches are dropped between phases")
      ->check(CLI::IsMember({"fadvise", "vm", "none"}));
  app.add_flag_function(
      "--no-fio", [&](std::int64_t) { c.fio = false; }, "skip the device runs");
  app.add_option("--fio", c.device.fio, "the fio binary");
  app.add_option("--fio-runtime", a.fio_runtime_s, "seconds per fio run")
      ->check(CLI::PositiveNumber);
  app.add_option("--fio-file-mib", a.fio_file_mib, "fio's file size")->check(CLI::PositiveNumber);
  app.add_option("--gnuplot", c.gnuplot, "the gnuplot binary");
  app.add_flag("--keep-data", a.keep_data, "keep the engines' files");
  app.add_option("--report-from", a.report_from, "write the report from a results file");
  app.add_option("--set", sets,
                 "WORKLOAD.FIELD=VALUE (FIELD: key_size value_size batch_size clients "
                 "dataset_keys duration warmup; WORKLOAD may be *)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return false;
  }
  if (!engines.empty()) {
    c.engines = split_list(engines);
  }
  for (const std::string& w : split_list(workloads)) {
    a.only_workloads.insert(w);
  }
  c.cache_bytes = static_cast<std::size_t>(cache_mib * 1024 * 1024);
  c.drop = drop == "vm" ? cache_drop::vm : drop == "none" ? cache_drop::none : cache_drop::fadvise;
  for (const std::string& value : sets) {
    const auto dot = value.find('.');
    const auto eq = value.find('=');
    char* end = nullptr;
    const double number = eq == std::string::npos ? 0 : std::strtod(value.c_str() + eq + 1, &end);
    if (dot == std::string::npos || eq == std::string::npos || eq < dot || end == nullptr ||
        *end != '\0' || end == value.c_str() + eq + 1) {
      std::fprintf(stderr, "bench_suite: --set wants WORKLOAD.FIELD=NUMBER, got %s\n",
                   value.c_str());
      return false;
    }
    a.overrides.push_back({value.substr(0, dot), value.substr(dot + 1, eq - dot - 1), number});
  }
  if (c.smoke) {
    c.repetitions = a.reps_set ? c.repetitions : 1;
    c.duration_s = a.duration_set ? c.duration_s : 0.1;
    c.warmup_s = a.warmup_set ? c.warmup_s : 0.05;
    c.device.runtime_s = 0.2;
    c.device.ramp_s = 0.05;
    c.device.settle_s = 0.2;
    c.device.file_bytes = std::uint64_t{16} << 20;
  }
  if (a.fio_runtime_s > 0) {
    c.device.runtime_s = a.fio_runtime_s;
  }
  if (a.fio_file_mib > 0) {
    c.device.file_bytes = static_cast<std::uint64_t>(a.fio_file_mib * 1024 * 1024);
  }
  // Names are checked without constructing engines: RocksDB's default Env may start threads,
  // and the driver must stay single-threaded to fork.
  for (const std::string& e : c.engines) {
    const bool append_factor = e.size() == std::string_view("eloqstore-append-f1").size() &&
                               e.starts_with("eloqstore-append-f") && e.back() >= '1' &&
                               e.back() <= '9';
    if (e != "eloqstore" && e != "eloqstore-pread" && e != "rocksdb" && e != "lmdb" &&
        e != "eloqstore-append" && !append_factor) {
      std::fprintf(stderr, "bench_suite: unknown engine %s\n", e.c_str());
      return false;
    }
  }
  if (c.engines.empty() || c.repetitions < 1 || c.scale <= 0 || c.duration_s <= 0 ||
      c.threads == 0 || c.partitions == 0 || c.cache_bytes == 0) {
    std::fprintf(stderr, "bench_suite: invalid arguments\n");
    return false;
  }
  return true;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

// ---- the run --------------------------------------------------------------------------------

class suite {
 public:
  explicit suite(args a) : a_(std::move(a)) { s_.cfg = a_.cfg; }

  int run() {
    const auto start = clock_type::now();
    s_.cfg.started_at = utc_now();
    s_.workloads = select_workloads();
    if (s_.workloads.empty()) {
      std::fprintf(stderr, "bench_suite: no workload selected\n");
      return 2;
    }
    fs::create_directories(s_.cfg.out_dir);
    fs::create_directories(s_.cfg.data_dir);
    std::error_code ec;
    fs::remove(s_.cfg.out_dir + "/runs.jsonl", ec);
    prepare_device_params();
    print_plan();
    measure_device();
    for (std::size_t i = 0; i < s_.workloads.size(); ++i) {
      for (int rep = 0; rep < s_.cfg.repetitions; ++rep) {
        for (const std::string& e : s_.cfg.engines) {
          run_one(e, static_cast<int>(i), rep);
        }
      }
    }
    if (!s_.cfg.smoke) {
      measure_device();  // again, to show drift; the smoke run only checks that fio works
    }
    if (!a_.keep_data) {
      for (const std::string& e : s_.cfg.engines) {
        fs::remove_all(engine_dir(e), ec);
      }
      fs::remove_all(s_.cfg.data_dir + "/device", ec);
    }
    s_.total_s = seconds_since(start);
    std::string error;
    if (!write_reports(s_, error)) {
      std::fprintf(stderr, "bench_suite: %s\n", error.c_str());
      return 1;
    }
    std::fprintf(stderr, "bench_suite: %d run(s) failed; report in %s/report.md (%.0f s)\n",
                 failures_, s_.cfg.out_dir.c_str(), s_.total_s);
    return failures_ == 0 ? 0 : 1;
  }

 private:
  std::vector<workload> select_workloads() const {
    std::vector<workload> out;
    for (workload& w :
         standard_workloads(s_.cfg.scale, s_.cfg.smoke, s_.cfg.duration_s, s_.cfg.warmup_s)) {
      if (a_.only_workloads.empty() || a_.only_workloads.contains(w.name)) {
        out.push_back(std::move(w));
      }
    }
    for (const override_item& o : a_.overrides) {
      for (workload& w : out) {
        if (o.workload == "*" || o.workload == w.name) {
          apply_override(w, o);
        }
      }
    }
    return out;
  }

  static void apply_override(workload& w, const override_item& o) {
    const auto count = static_cast<std::size_t>(std::max(1.0, o.value));
    if (o.field == "key_size") {
      w.key_size = std::max<std::size_t>(count, 8);
    } else if (o.field == "value_size") {
      w.value_size = static_cast<std::size_t>(std::max(0.0, o.value));
    } else if (o.field == "batch_size") {
      w.batch_size = count;
    } else if (o.field == "clients") {
      w.clients = count;
    } else if (o.field == "dataset_keys") {
      w.dataset_keys = count;
    } else if (o.field == "duration") {
      w.duration_s = std::max(0.01, o.value);
    } else if (o.field == "warmup") {
      w.warmup_s = std::max(0.0, o.value);
    } else {
      std::fprintf(stderr, "bench_suite: --set: unknown field %s (ignored)\n", o.field.c_str());
    }
  }

  void prepare_device_params() {
    device_params& d = s_.cfg.device;
    d.dir = s_.cfg.data_dir + "/device";
    for (const workload& w : s_.workloads) {
      const bool point_reads =
          w.kind == workload_kind::readrandom || w.kind == workload_kind::seekrandom ||
          w.kind == workload_kind::readwhilewriting || w.kind == workload_kind::ycsb;
      if (point_reads) {
        d.read_queue_depths.push_back(static_cast<int>(w.clients));
      }
    }
  }

  void print_plan() const {
    const double per_run = s_.cfg.warmup_s + s_.cfg.duration_s + 1.0;
    const double runs =
        static_cast<double>(s_.workloads.size() * s_.cfg.engines.size()) * s_.cfg.repetitions;
    std::fprintf(stderr,
                 "bench_suite: %zu workloads x %zu engines x %d repetitions, ~%.0f s of runs "
                 "plus loads and fio; data in %s, report in %s\n",
                 s_.workloads.size(), s_.cfg.engines.size(), s_.cfg.repetitions, runs * per_run,
                 s_.cfg.data_dir.c_str(), s_.cfg.out_dir.c_str());
  }

  void measure_device() {
    if (!s_.cfg.fio) {
      return;
    }
    s_.device.push_back(run_device_suite(s_.cfg.device));
  }

  [[nodiscard]] std::string engine_dir(const std::string& e) const {
    return s_.cfg.data_dir + "/" + e;
  }

  engine_config config_for(const std::string& dir, const workload& w) const {
    engine_config c;
    c.dir = dir;
    c.cache_bytes = s_.cfg.cache_bytes;
    c.threads = s_.cfg.threads;
    const std::uint64_t record = key_format(w.space, w.key_size).size() + w.value_size;
    c.logical_bytes_max = 2 * w.dataset_keys * record;
    c.split_keys = key_format(w.space, w.key_size).split_keys(s_.cfg.partitions, w.dataset_keys);
    return c;
  }

  [[nodiscard]] double timeout_for(const workload& w) const {
    return w.warmup_s + w.duration_s + 300;
  }

  // Loads w's data set into engine e unless it is there; false if the load failed.
  bool ensure_dataset(const std::string& e, const workload& w) {
    const std::string id = w.dataset_id();
    if (records_.contains({e, id})) {
      return records_[{e, id}] > 0;
    }
    const std::string dir = engine_dir(e) + "/" + id;
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::create_directories(dir);
    run_params p;
    p.cfg = config_for(dir, w);
    p.load = true;
    p.seed = ++seed_;
    const workload l = load_workload_for(w);
    const double timeout = 600 + static_cast<double>(w.dataset_keys) / 1000.0;
    child_output out = run_child(e, l, p, timeout);
    remember_settings(e, out.settings, dir);
    run_record rec{e, -1, id, 0, out.r};
    log(rec, "load");
    append_jsonl(rec);
    s_.loads.push_back(rec);
    records_[{e, id}] = out.r.ok ? w.dataset_keys : 0;
    if (!out.r.ok) {
      ++failures_;
    }
    return out.r.ok;
  }

  void remember_settings(const std::string& e, const std::string& text, const std::string& dir) {
    if (!text.empty() && !s_.settings.contains(e)) {
      s_.settings[e] = text;
    }
    // RocksDB writes its complete option set into OPTIONS-<n>; keep the newest.
    fs::path newest;
    std::error_code ec;
    for (const auto& f : fs::directory_iterator(dir, ec)) {
      const std::string n = f.path().filename().string();
      if (n.rfind("OPTIONS-", 0) == 0 && (newest.empty() || n > newest.filename().string())) {
        newest = f.path();
      }
    }
    if (!newest.empty()) {
      fs::copy_file(newest, s_.cfg.out_dir + "/" + e + "-OPTIONS.ini",
                    fs::copy_options::overwrite_existing, ec);
    }
  }

  void run_one(const std::string& e, int index, int rep) {
    const workload& w = s_.workloads[static_cast<std::size_t>(index)];
    run_params p;
    p.drop = s_.cfg.drop;
    p.seed = ++seed_;
    std::string dir;
    if (w.fresh()) {
      dir = engine_dir(e) + "/fill";
      std::error_code ec;
      fs::remove_all(dir, ec);
      fs::create_directories(dir);
    } else {
      if (!ensure_dataset(e, w)) {
        run_record rec{e, index, w.name, rep, {}};
        std::snprintf(rec.r.error, sizeof rec.r.error, "its data set failed to load");
        s_.runs.push_back(rec);
        ++failures_;
        return;
      }
      dir = engine_dir(e) + "/" + w.dataset_id();
      p.records = records_[{e, w.dataset_id()}];
    }
    p.cfg = config_for(dir, w);
    child_output out = run_child(e, w, p, timeout_for(w));
    remember_settings(e, out.settings, dir);
    if (!w.fresh()) {
      records_[{e, w.dataset_id()}] += out.r.inserted;
    } else {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
    run_record rec{e, index, w.name, rep, out.r};
    log(rec, "run");
    append_jsonl(rec);
    s_.runs.push_back(rec);
    if (!out.r.ok) {
      ++failures_;
    }
  }

  // One line per run, written as it ends: what a crashed or interrupted suite leaves behind.
  void append_jsonl(const run_record& rec) const {
    std::FILE* f = std::fopen((s_.cfg.out_dir + "/runs.jsonl").c_str(), "a");
    if (f != nullptr) {
      const std::string line = dump_json(run_to_json(rec), -1);
      std::fprintf(f, "%s\n", line.c_str());
      std::fclose(f);
    }
  }

  void log(const run_record& rec, const char* what) {
    const run_result& r = rec.r;
    ++done_;
    if (!r.ok) {
      std::fprintf(stderr, "[%3d] %s %-16s rep %d %-9s FAILED: %s\n", done_, what,
                   rec.workload_name.c_str(), rec.repetition, rec.engine.c_str(), r.error);
      return;
    }
    const double ops = r.elapsed_s > 0 ? static_cast<double>(r.ops) / r.elapsed_s : 0;
    const latency_summary& l =
        r.read_lat.count > 0 ? r.read_lat : (r.scan_lat.count > 0 ? r.scan_lat : r.write_lat);
    std::fprintf(stderr,
                 "[%3d] %s %-16s rep %d %-9s %10.0f ops/s %7.1f MB/s p50 %8.1f us p99 %8.1f us "
                 "cpu %.2f s rss %ld MiB %s\n",
                 done_, what, rec.workload_name.c_str(), rec.repetition, rec.engine.c_str(), ops,
                 r.elapsed_s > 0 ? static_cast<double>(r.bytes) / r.elapsed_s / 1e6 : 0.0, l.p50_us,
                 l.p99_us, r.cpu_s, static_cast<long>(r.peak_rss_kib / 1024),
                 r.misses > 0 ? ("misses " + std::to_string(r.misses)).c_str() : "");
  }

  args a_;
  suite_results s_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> records_;  // (engine, data set)
  std::uint64_t seed_ = 0;
  int failures_ = 0;
  int done_ = 0;
};

}  // namespace

// --report-from: the report of measured data, written again by the current report code.
static int rereport(const args& a) {
  suite_results s;
  std::string error;
  if (!read_results(a.report_from, s, error)) {
    std::fprintf(stderr, "bench_suite: %s\n", error.c_str());
    return 1;
  }
  s.cfg.out_dir = a.out_set ? a.cfg.out_dir : fs::path(a.report_from).parent_path().string();
  if (s.cfg.out_dir.empty()) {
    s.cfg.out_dir = ".";
  }
  s.cfg.gnuplot = a.cfg.gnuplot;
  s.regenerated = "Report rebuilt from its results.json by `" + a.cfg.command_line +
                  "` (same measurements, current report code).";
  if (!write_reports(s, error)) {
    std::fprintf(stderr, "bench_suite: %s\n", error.c_str());
    return 1;
  }
  std::fprintf(stderr, "bench_suite: report rebuilt in %s/report.md\n", s.cfg.out_dir.c_str());
  return 0;
}

}  // namespace bench

int main(int argc, char** argv) {
  bench::args a;
  if (!bench::parse_args(argc, argv, a)) {
    return 2;
  }
  if (!a.report_from.empty()) {
    return bench::rereport(a);
  }
  bench::suite s(std::move(a));
  return s.run();
}
