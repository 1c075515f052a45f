// Aggregation over repetitions, and the report files (see report.hpp).
#include "report.hpp"

#include <sys/statfs.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace bench {
namespace {

constexpr double nan_value = std::numeric_limits<double>::quiet_NaN();
constexpr double mib = 1024.0 * 1024.0;
namespace fs = std::filesystem;

// Median, min and max of the repetitions that produced a value.
struct spread {
  double median = nan_value;
  double min = nan_value;
  double max = nan_value;
  int count = 0;
};

spread spread_of(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  spread s;
  s.count = static_cast<int>(v.size());
  if (v.empty()) {
    return s;
  }
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  s.median = n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  s.min = v.front();
  s.max = v.back();
  return s;
}

double ratio(double a, double b) {
  return b > 0 && std::isfinite(a) ? a / b : nan_value;
}

// One engine on one workload, over its repetitions.
struct cell {
  int ok = 0;
  int failed = 0;
  std::string error;
  spread ops;
  spread mb;
  spread read[3];  // p50, p99, p99.9 in microseconds
  spread write[3];
  spread scan[3];
  spread cpu_per_mop;
  spread rss_mib;
  spread space_amp;
  spread read_kib_per_op;
  spread write_amp;
  spread writer_keys;
  std::uint64_t misses = 0;
  std::uint64_t reads = 0;
};

void add_latency(std::vector<double> (&v)[3], const latency_summary& l) {
  if (l.count == 0) {
    return;
  }
  v[0].push_back(l.p50_us);
  v[1].push_back(l.p99_us);
  v[2].push_back(l.p999_us);
}

cell aggregate(const std::vector<run_record>& runs, int index, const std::string& eng) {
  cell c;
  std::vector<double> ops, mb, rd[3], wr[3], sc[3], cpu, rss, amp, rkib, wamp, wk;
  for (const run_record& rec : runs) {
    if (rec.workload_index != index || rec.engine != eng) {
      continue;
    }
    const run_result& r = rec.r;
    if (!r.ok) {
      ++c.failed;
      c.error = r.error;
      continue;
    }
    ++c.ok;
    const double s = r.elapsed_s > 0 ? r.elapsed_s : nan_value;
    ops.push_back(static_cast<double>(r.ops) / s);
    mb.push_back(static_cast<double>(r.bytes) / s / 1e6);
    add_latency(rd, r.read_lat);
    add_latency(wr, r.write_lat);
    add_latency(sc, r.scan_lat);
    cpu.push_back(r.ops > 0 ? r.cpu_s / static_cast<double>(r.ops) * 1e6 : nan_value);
    rss.push_back(static_cast<double>(r.peak_rss_kib) / 1024.0);
    amp.push_back(ratio(static_cast<double>(r.disk_bytes), static_cast<double>(r.logical_bytes)));
    rkib.push_back(r.ops > 0
                       ? static_cast<double>(r.io_read_bytes) / 1024.0 / static_cast<double>(r.ops)
                       : nan_value);
    wamp.push_back(
        ratio(static_cast<double>(r.io_write_bytes), static_cast<double>(r.write_bytes)));
    if (r.writer_keys_per_s > 0) {
      wk.push_back(r.writer_keys_per_s);
    }
    c.misses += r.misses;
    c.reads += r.read_lat.count;
  }
  c.ops = spread_of(ops);
  c.mb = spread_of(mb);
  for (int i = 0; i < 3; ++i) {
    c.read[i] = spread_of(rd[i]);
    c.write[i] = spread_of(wr[i]);
    c.scan[i] = spread_of(sc[i]);
  }
  c.cpu_per_mop = spread_of(cpu);
  c.rss_mib = spread_of(rss);
  c.space_amp = spread_of(amp);
  c.read_kib_per_op = spread_of(rkib);
  c.write_amp = spread_of(wamp);
  c.writer_keys = spread_of(wk);
  return c;
}

// ---- formatting ----------------------------------------------------------------------------

std::string num(double x) {
  if (!std::isfinite(x)) {
    return "-";
  }
  char buf[48];
  const double a = std::fabs(x);
  if (a >= 100) {
    std::snprintf(buf, sizeof buf, "%.0f", x);
  } else if (a >= 10) {
    std::snprintf(buf, sizeof buf, "%.1f", x);
  } else if (a >= 0.1) {
    std::snprintf(buf, sizeof buf, "%.2f", x);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g", x);
  }
  return buf;
}

std::string times(double x) {
  return std::isfinite(x) ? num(x) + "x" : "-";
}
std::string percent(double x) {
  return std::isfinite(x) ? num(100 * x) + "%" : "-";
}

std::string med_range(const spread& s) {
  if (s.count == 0) {
    return "-";
  }
  if (s.count == 1) {
    return num(s.median);
  }
  return num(s.median) + " [" + num(s.min) + "-" + num(s.max) + "]";
}

std::string lat3(const spread (&l)[3]) {
  if (l[0].count == 0) {
    return "-";
  }
  return num(l[0].median) + " / " + num(l[1].median) + " / " + num(l[2].median);
}

// ---- device matching ------------------------------------------------------------------------

// The device's limit for fio job `job`: of the device runs (before and after the engines),
// the one with the most IOPS, or nullptr when none succeeded.
const fio_result* best_device_result(const suite_results& s, const std::string& job) {
  const fio_result* best = nullptr;
  for (const device_run& d : s.device) {
    if (const fio_result* r = d.find(job); r != nullptr && r->ok) {
      best = best == nullptr || r->iops > best->iops ? r : best;
    }
  }
  return best;
}

// The device figure a workload's throughput is compared with.
struct device_match {
  std::string job;
  bool bytes = false;        // compare MB/s (else operations/s against IOPS)
  double value = nan_value;  // IOPS or MB/s, mean of the device runs
  latency_summary lat;       // of the first device run that has it
};

device_match match_device(const suite_results& s, const workload& w) {
  device_match m;
  switch (w.kind) {
    case workload_kind::fillseq:
    case workload_kind::fillrandom:
    case workload_kind::overwrite:
      m.job = "seqwrite-256k";
      m.bytes = true;
      break;
    case workload_kind::readseq:
      m.job = "seqread-256k";
      m.bytes = true;
      break;
    case workload_kind::smallwrites:
      m.job = "fdatasync";
      break;
    default:
      m.job = "randread-qd" + std::to_string(w.clients);
      break;
  }
  if (const fio_result* r = best_device_result(s, m.job); r != nullptr) {
    m.value = m.bytes ? r->bytes_per_s / 1e6 : r->iops;
    m.lat = r->lat;
  }
  return m;
}

// The device latency of fio job `job` (its best run), count 0 if none.
latency_summary device_latency(const suite_results& s, const std::string& job) {
  const fio_result* r = best_device_result(s, job);
  return r != nullptr ? r->lat : latency_summary{};
}

// "a / b / c" of l's percentiles over the device's, e.g. "2.1x / 1.5x / 1.2x".
std::string latency_ratios(const spread (&l)[3], const latency_summary& dev) {
  return times(ratio(l[0].median, dev.p50_us)) + " / " + times(ratio(l[1].median, dev.p99_us)) +
         " / " + times(ratio(l[2].median, dev.p999_us));
}

// One sentence per figure of the first engine against the matching device figure.
void device_lines(std::ostringstream& md, const suite_results& s, const workload& w,
                  const cell& c) {
  const std::string& me = s.cfg.engines.front();
  const device_match dm = match_device(s, w);
  if (!std::isfinite(dm.value)) {
    md << "- " << me << " against the device: not measured (fio missing or failed).\n";
    return;
  }
  const double mine = dm.bytes ? c.mb.median : c.ops.median;
  md << "- " << me << " throughput: " << percent(ratio(mine, dm.value)) << " of the device's "
     << dm.job << " (" << num(dm.value) << (dm.bytes ? " MB/s" : " IOPS") << ")";
  if (dm.bytes) {
    md << ", counting logical MB/s";
  }
  md << ".\n";
  const std::string read_job = "randread-qd" + std::to_string(w.clients);
  const latency_summary rd = device_latency(s, read_job);
  const latency_summary sync = device_latency(s, "fdatasync");
  if (c.read[0].count > 0 && rd.p50_us > 0) {
    md << "- " << me << " read latency p50 / p99 / p99.9: " << latency_ratios(c.read, rd)
       << " the device's " << read_job << " (" << num(rd.p50_us) << " / " << num(rd.p99_us) << " / "
       << num(rd.p999_us) << " us).\n";
  }
  if (c.scan[0].count > 0 && rd.p50_us > 0) {
    md << "- " << me << " scan latency p50 / p99 / p99.9: " << latency_ratios(c.scan, rd)
       << " one 4 KiB read of the device's " << read_job << ".\n";
  }
  if (c.write[0].count > 0 && sync.p50_us > 0) {
    md << "- " << me << " write latency p50 / p99 / p99.9: " << latency_ratios(c.write, sync)
       << " the device's fdatasync (" << num(sync.p50_us) << " / " << num(sync.p99_us) << " / "
       << num(sync.p999_us) << " us), the floor of any durable write.\n";
  }
}

// The latency a workload is summed up by (and compared with the device's).
const spread* primary_latency(const workload& w, const cell& c) {
  switch (w.kind) {
    case workload_kind::fillseq:
    case workload_kind::fillrandom:
    case workload_kind::overwrite:
    case workload_kind::smallwrites:
      return c.write;
    case workload_kind::readseq:
      return nullptr;
    case workload_kind::seekrandom:
      return c.scan;
    case workload_kind::ycsb:
      return w.mix.read > 0 ? c.read : c.scan;
    default:
      return c.read;
  }
}

// ---- machine -------------------------------------------------------------------------------

std::string first_line_of(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\n')) {
    line.pop_back();
  }
  return line;
}

std::string cpuinfo_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      return line.substr(line.find(':') + 2);
    }
  }
  return "unknown";
}

// The mount (device, mount point, type) holding `path`: the longest matching mount point.
void mount_of(const std::string& path, std::string& dev, std::string& point, std::string& type) {
  std::error_code ec;
  const std::string abs = std::filesystem::weakly_canonical(path, ec).string();
  std::ifstream in("/proc/mounts");
  std::string d;
  std::string p;
  std::string t;
  std::string rest;
  while (in >> d >> p >> t && std::getline(in, rest)) {
    const bool under = abs == p || (abs.rfind(p, 0) == 0 && (p == "/" || abs[p.size()] == '/'));
    if (under && p.size() >= point.size()) {
      dev = d;
      point = p;
      type = t;
    }
  }
}

json machine_info(const std::string& data_dir) {
  json m = json::object();
  utsname u{};
  uname(&u);
  m["kernel"] = std::string(u.sysname) + " " + u.release + " " + u.machine;
  m["cpu"] = cpuinfo_model();
  m["cpus_online"] = static_cast<std::int64_t>(sysconf(_SC_NPROCESSORS_ONLN));
  m["memory_bytes"] = static_cast<std::int64_t>(sysconf(_SC_PHYS_PAGES)) *
                      static_cast<std::int64_t>(sysconf(_SC_PAGE_SIZE));
  std::string dev;
  std::string point;
  std::string type;
  mount_of(data_dir, dev, point, type);
  m["data_device"] = dev;
  m["data_mount"] = point;
  m["data_filesystem"] = type;
  std::string block = std::filesystem::path(dev).filename().string();
  // /dev/vda1 -> vda when the partition's parent is a disk in /sys/block.
  while (!block.empty() && !std::filesystem::exists("/sys/block/" + block) &&
         std::isdigit(static_cast<unsigned char>(block.back())) != 0) {
    block.pop_back();
  }
  const std::string sys = "/sys/block/" + block;
  // SCSI and NVMe disks name a model; virtio disks only a vendor id and their driver.
  std::string model = first_line_of(sys + "/device/model");
  const std::string vendor = first_line_of(sys + "/device/vendor");
  std::error_code ec;
  const std::string driver = fs::read_symlink(sys + "/device/driver", ec).filename().string();
  if (model.empty()) {
    model = "no model name";
  }
  m["disk"] = block;
  m["disk_model"] =
      (vendor.empty() ? "" : vendor + " ") + model + (driver.empty() ? "" : ", driver " + driver);
  m["disk_rotational"] = first_line_of(sys + "/queue/rotational");
  m["disk_scheduler"] = first_line_of(sys + "/queue/scheduler");
  return m;
}

// ---- JSON -----------------------------------------------------------------------------------

json latency_json(const latency_summary& l) {
  json o = json::object();
  o["count"] = l.count;
  o["mean_us"] = l.mean_us;
  o["p50_us"] = l.p50_us;
  o["p99_us"] = l.p99_us;
  o["p999_us"] = l.p999_us;
  o["max_us"] = l.max_us;
  return o;
}

json run_json_impl(const run_record& rec) {
  const run_result& r = rec.r;
  json o = json::object();
  o["engine"] = rec.engine;
  o["workload"] = rec.workload_name;
  o["repetition"] = rec.repetition;
  o["ok"] = r.ok;
  o["error"] = std::string(r.error);
  o["elapsed_s"] = r.elapsed_s;
  o["ops"] = r.ops;
  o["ops_per_s"] = r.elapsed_s > 0 ? static_cast<double>(r.ops) / r.elapsed_s : 0.0;
  o["mb_per_s"] = r.elapsed_s > 0 ? static_cast<double>(r.bytes) / r.elapsed_s / 1e6 : 0.0;
  o["bytes"] = r.bytes;
  o["misses"] = r.misses;
  o["keys_written"] = r.writes;
  o["logical_bytes_written"] = r.write_bytes;
  o["inserted"] = r.inserted;
  o["distinct_keys"] = r.distinct_keys;
  o["read_latency"] = latency_json(r.read_lat);
  o["write_latency"] = latency_json(r.write_lat);
  o["scan_latency"] = latency_json(r.scan_lat);
  o["cpu_s"] = r.cpu_s;
  o["cpu_s_per_million_ops"] = r.ops > 0 ? r.cpu_s / static_cast<double>(r.ops) * 1e6 : 0.0;
  o["peak_rss_kib"] = r.peak_rss_kib;
  o["io_read_bytes"] = r.io_read_bytes;
  o["io_write_bytes"] = r.io_write_bytes;
  o["disk_bytes"] = r.disk_bytes;
  o["logical_bytes"] = r.logical_bytes;
  o["space_amplification"] =
      r.logical_bytes > 0 ? static_cast<double>(r.disk_bytes) / static_cast<double>(r.logical_bytes)
                          : 0.0;
  o["open_s"] = r.open_s;
  o["close_s"] = r.close_s;
  o["writer_keys_per_s"] = r.writer_keys_per_s;
  o["cache_drop"] =
      r.cache_drop_applied < 0 ? "none" : to_string(static_cast<cache_drop>(r.cache_drop_applied));
  return o;
}

json workload_json(const workload& w) {
  json o = json::object();
  o["name"] = w.name;
  o["kind"] = to_string(w.kind);
  o["key_space"] = w.space == key_space::db ? "db" : "ycsb";
  o["key_size"] = static_cast<std::uint64_t>(w.key_size);
  o["value_size"] = static_cast<std::uint64_t>(w.value_size);
  o["batch_size"] = static_cast<std::uint64_t>(w.batch_size);
  o["clients"] = static_cast<std::uint64_t>(w.clients);
  o["dataset_keys"] = w.dataset_keys;
  o["duration_s"] = w.duration_s;
  o["warmup_s"] = w.warmup_s;
  if (w.kind == workload_kind::seekrandom) {
    o["scan_length"] = static_cast<std::uint64_t>(w.scan_length);
  }
  if (w.kind == workload_kind::ycsb) {
    json m = json::object();
    m["read"] = w.mix.read;
    m["update"] = w.mix.update;
    m["insert"] = w.mix.insert;
    m["scan"] = w.mix.scan;
    m["read_modify_write"] = w.mix.rmw;
    m["distribution"] = w.mix.latest ? "latest" : "zipfian 0.99 (scrambled)";
    m["scan_length"] = "uniform 1.." + std::to_string(w.mix.scan_length_max);
    o["mix"] = std::move(m);
  }
  o["summary"] = w.summary;
  return o;
}

json results_json(const suite_results& s, const json& machine) {
  const suite_config& c = s.cfg;
  json root = json::object();
  json cfg = json::object();
  cfg["command_line"] = c.command_line;
  cfg["started_at"] = c.started_at;
  cfg["total_s"] = s.total_s;
  cfg["scale"] = c.scale;
  cfg["smoke"] = c.smoke;
  cfg["repetitions"] = c.repetitions;
  cfg["threads"] = static_cast<std::uint64_t>(c.threads);
  cfg["partitions"] = static_cast<std::uint64_t>(c.partitions);
  cfg["cache_bytes"] = static_cast<std::uint64_t>(c.cache_bytes);
  cfg["cache_drop"] = to_string(c.drop);
  cfg["data_dir"] = c.data_dir;
  cfg["fio"] = c.fio;
  cfg["device_runtime_s"] = c.device.runtime_s;
  cfg["device_ramp_s"] = c.device.ramp_s;
  cfg["device_file_bytes"] = c.device.file_bytes;
  json engines = json::array();
  for (const std::string& e : c.engines) {
    engines.push_back(e);
  }
  cfg["engines"] = std::move(engines);
  root["config"] = std::move(cfg);
  root["machine"] = machine;
  json settings = json::object();
  for (const auto& [name, text] : s.settings) {
    settings[name] = text;
  }
  root["engine_settings"] = std::move(settings);
  const auto array_of = [](const auto& items, const auto& to) {
    json a = json::array();
    for (const auto& item : items) {
      a.push_back(to(item));
    }
    return a;
  };
  root["device"] = array_of(s.device, [](const device_run& d) { return to_json(d); });
  root["workloads"] = array_of(s.workloads, workload_json);
  root["loads"] = array_of(s.loads, run_json_impl);
  root["runs"] = array_of(s.runs, run_json_impl);
  return root;
}

// ---- charts ---------------------------------------------------------------------------------

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  return static_cast<bool>(out.flush());
}

std::string dat(double x) {
  if (!std::isfinite(x) || x <= 0) {
    return "NaN";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

std::string gp_quote(const std::string& s) {
  return "'" + s + "'";
}

const char* const palette[] = {"#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#666666"};

// Writes the two charts' data and scripts and runs gnuplot; returns a note on failure.
std::string write_charts(const suite_results& s) {
  const std::string& out = s.cfg.out_dir;
  const auto& engines = s.cfg.engines;
  std::ostringstream thr;
  thr << "# workload";
  for (const std::string& e : engines) {
    thr << " " << e << "_median " << e << "_min " << e << "_max";
  }
  thr << "\n";
  for (std::size_t i = 0; i < s.workloads.size(); ++i) {
    thr << s.workloads[i].name;
    for (const std::string& e : engines) {
      const cell c = aggregate(s.runs, static_cast<int>(i), e);
      thr << " " << dat(c.ops.median) << " " << dat(c.ops.min) << " " << dat(c.ops.max);
    }
    thr << "\n";
  }
  std::ostringstream gp;
  gp << "set terminal pngcairo size 1400,650 font ',10'\n"
     << "set output " << gp_quote(out + "/throughput.png") << "\n"
     << "set title 'Throughput per workload: median of " << s.cfg.repetitions
     << " repetitions, bars from min to max (log scale)'\n"
     << "set datafile missing 'NaN'\nset style data histogram\n"
     << "set style histogram errorbars gap 2 lw 1\nset style fill solid 0.85 border -1\n"
     << "set logscale y\nset ylabel 'operations/s (see report: keys, reads, seeks or YCSB ops)'\n"
     << "set xtics rotate by -35 nomirror\nset grid ytics\nset key top right\n"
     << "set bmargin 6\nplot ";
  for (std::size_t k = 0; k < engines.size(); ++k) {
    gp << (k == 0 ? gp_quote(out + "/throughput.dat") : "''") << " using " << 2 + 3 * k << ":"
       << 3 + 3 * k << ":" << 4 + 3 * k << (k == 0 ? ":xtic(1)" : "") << " title "
       << gp_quote(engines[k]) << " lc rgb '" << palette[k % 6] << "'"
       << (k + 1 < engines.size() ? ", " : "\n");
  }

  // Read latency: each workload with point reads, p50 / p99 / p99.9, every engine and the
  // device's 4 KiB random read at the same queue depth.
  std::ostringstream lat;
  lat << "# label";
  for (const std::string& e : engines) {
    lat << " " << e;
  }
  lat << " device\n";
  const char* const pct_names[3] = {"p50", "p99", "p99.9"};
  for (std::size_t i = 0; i < s.workloads.size(); ++i) {
    const workload& w = s.workloads[i];
    const cell first = aggregate(s.runs, static_cast<int>(i), engines.front());
    if (first.read[0].count == 0) {
      continue;
    }
    const device_match dm = match_device(s, w);
    const double dev[3] = {dm.lat.p50_us, dm.lat.p99_us, dm.lat.p999_us};
    for (int p = 0; p < 3; ++p) {
      lat << w.name << ":" << pct_names[p];
      for (const std::string& e : engines) {
        lat << " " << dat(aggregate(s.runs, static_cast<int>(i), e).read[p].median);
      }
      lat << " " << dat(dm.lat.count > 0 || dev[p] > 0 ? dev[p] : nan_value) << "\n";
    }
  }
  gp << "\nset output " << gp_quote(out + "/latency.png") << "\n"
     << "set title 'Point-read latency percentiles (median over repetitions; device: fio 4 KiB "
        "random read, queue depth = the workload client count)'\n"
     << "set style histogram clustered gap 1\nset ylabel 'microseconds (log scale)'\nplot ";
  for (std::size_t k = 0; k <= engines.size(); ++k) {
    const std::string title = k < engines.size() ? engines[k] : "device (fio)";
    gp << (k == 0 ? gp_quote(out + "/latency.dat") : "''") << " using " << 2 + k
       << (k == 0 ? ":xtic(1)" : "") << " title " << gp_quote(title) << " lc rgb '"
       << (k < engines.size() ? palette[k % 6] : "#999999") << "'"
       << (k < engines.size() ? ", " : "\n");
  }
  if (!write_file(out + "/throughput.dat", thr.str()) ||
      !write_file(out + "/latency.dat", lat.str()) || !write_file(out + "/charts.gp", gp.str())) {
    return "could not write the chart data";
  }
  std::string ignored;
  const int rc = run_command({s.cfg.gnuplot, out + "/charts.gp"}, ignored, 120);
  if (rc != 0) {
    return "gnuplot (" + s.cfg.gnuplot +
           ") failed or is missing: charts not drawn (data and "
           "script are in charts.gp / *.dat)";
  }
  return {};
}

// ---- Markdown -------------------------------------------------------------------------------

std::string params_line(const workload& w) {
  std::string s = "keys " + std::to_string(w.dataset_keys) + ", key " + std::to_string(w.key_size) +
                  " B, value " + std::to_string(w.value_size) + " B, ";
  if (w.kind == workload_kind::readwhilewriting) {
    s += std::to_string(w.clients) + " readers + 1 writer (batch " + std::to_string(w.batch_size) +
         ")";
  } else {
    s += std::to_string(w.clients) + (w.clients == 1 ? " client" : " clients");
    if (w.batch_size > 1) {
      s += ", batch " + std::to_string(w.batch_size);
    }
  }
  s += ", warm-up " + num(w.warmup_s) + " s, duration " + num(w.duration_s) + " s";
  return s;
}

const char* ops_unit(const workload& w) {
  switch (w.kind) {
    case workload_kind::fillseq:
    case workload_kind::fillrandom:
    case workload_kind::overwrite:
      return "keys/s";
    case workload_kind::readseq:
      return "records/s";
    case workload_kind::seekrandom:
      return "seeks/s";
    case workload_kind::smallwrites:
      return "writes/s";
    case workload_kind::ycsb:
      return "ops/s";
    default:
      return "reads/s";
  }
}

// CPU per operation, peak RSS and space amplification of the first engine over each peer's
// (below 1 favours the first engine).
void efficiency_table(std::ostringstream& md, const suite_results& s) {
  const auto& engines = s.cfg.engines;
  if (engines.size() < 2) {
    return;
  }
  const std::string& me = engines.front();
  md << "\nEfficiency, " << me << " over each peer (below 1 favours " << me << "):\n\n| workload |";
  for (std::size_t k = 1; k < engines.size(); ++k) {
    md << " CPU/op vs " << engines[k] << " | peak RSS vs " << engines[k] << " | space amp vs "
       << engines[k] << " |";
  }
  md << "\n|---|";
  for (std::size_t k = 1; k < engines.size(); ++k) {
    md << "---|---|---|";
  }
  md << "\n";
  for (std::size_t i = 0; i < s.workloads.size(); ++i) {
    const cell mine = aggregate(s.runs, static_cast<int>(i), me);
    md << "| " << s.workloads[i].name << " |";
    for (std::size_t k = 1; k < engines.size(); ++k) {
      const cell peer = aggregate(s.runs, static_cast<int>(i), engines[k]);
      md << " " << times(ratio(mine.cpu_per_mop.median, peer.cpu_per_mop.median)) << " | "
         << times(ratio(mine.rss_mib.max, peer.rss_mib.max)) << " | "
         << times(ratio(mine.space_amp.median, peer.space_amp.median)) << " |";
    }
    md << "\n";
  }
}

void summary_section(std::ostringstream& md, const suite_results& s) {
  const auto& engines = s.cfg.engines;
  const std::string& me = engines.front();
  md << "## Summary: " << me << " against its peers and the device\n\n"
     << "Medians over " << s.cfg.repetitions
     << (s.cfg.repetitions == 1 ? " repetition" : " repetitions") << ". Ratios above 1 favour "
     << me << " for throughput and the peer for latency (a p99 ratio below 1 means " << me
     << " is faster).\n\n| workload | unit |";
  for (const std::string& e : engines) {
    md << " " << e << " |";
  }
  for (std::size_t k = 1; k < engines.size(); ++k) {
    md << " " << me << "/" << engines[k] << " |";
  }
  md << " device figure | " << me << "/device | p99 latency " << me << " (us) |";
  for (std::size_t k = 1; k < engines.size(); ++k) {
    md << " p99 " << me << "/" << engines[k] << " |";
  }
  md << "\n|---|---|";
  for (std::size_t k = 0; k < 2 * engines.size() + 1 + engines.size(); ++k) {
    md << "---|";
  }
  md << "\n";
  for (std::size_t i = 0; i < s.workloads.size(); ++i) {
    const workload& w = s.workloads[i];
    std::vector<cell> cells;
    for (const std::string& e : engines) {
      cells.push_back(aggregate(s.runs, static_cast<int>(i), e));
    }
    const device_match dm = match_device(s, w);
    const double mine = dm.bytes ? cells[0].mb.median : cells[0].ops.median;
    md << "| " << w.name << " | " << ops_unit(w) << " |";
    for (const cell& c : cells) {
      md << " " << num(c.ops.median) << " |";
    }
    for (std::size_t k = 1; k < cells.size(); ++k) {
      md << " " << times(ratio(cells[0].ops.median, cells[k].ops.median)) << " |";
    }
    if (std::isfinite(dm.value)) {
      md << " " << dm.job << ": " << num(dm.value) << (dm.bytes ? " MB/s" : " IOPS") << " | "
         << percent(ratio(mine, dm.value)) << (dm.bytes ? " of MB/s" : "") << " |";
    } else {
      md << " not measured | - |";
    }
    const spread* mylat = primary_latency(w, cells[0]);
    md << " " << (mylat != nullptr ? num(mylat[1].median) : "-") << " |";
    for (std::size_t k = 1; k < cells.size(); ++k) {
      const spread* peer = primary_latency(w, cells[k]);
      md << " "
         << (mylat != nullptr && peer != nullptr ? times(ratio(mylat[1].median, peer[1].median))
                                                 : "-")
         << " |";
    }
    md << "\n";
  }
  md << "\nDevice figures: the device's limit, the better of the fio runs before and after the "
        "engines (both are in the device table). Throughput "
        "workloads that move whole pages (fills, overwrite, readseq) are compared in MB/s of "
        "logical data (keys + values) against fio's sequential MB/s; point-read workloads in "
        "operations/s against fio's 4 KiB random-read IOPS at a queue depth equal to the "
        "workload's client count; smallwrites against fio's fdatasync rate. The p99 column is "
        "the workload's main latency: per batch for writers, per read for readers, per seek "
        "(+ nexts) for seekrandom, per scan for YCSB-E.\n";
  efficiency_table(md, s);
  md << "\n";
}

void device_section(std::ostringstream& md, const suite_results& s) {
  md << "## Device (fio)\n\n";
  if (s.device.empty() || !s.device.front().available) {
    md << (s.device.empty() ? std::string("fio was not run (--no-fio).") : s.device.front().note)
       << "\n\n";
    return;
  }
  md << s.device.front().fio_version << ", file in the data directory (" << s.cfg.data_dir << "), "
     << num(s.cfg.device.runtime_s) << " s per job after " << num(s.cfg.device.ramp_s)
     << " s ramp, file of " << num(static_cast<double>(s.cfg.device.file_bytes) / mib)
     << " MiB. Latency is fio's total latency (submission + completion), or the fdatasync's. "
     << "Run " << s.device.size() << " time(s): before the engines"
     << (s.device.size() > 1 ? " and after them" : "") << ".\n\n"
     << "| job | description | run | IOPS | MB/s | p50 us | p99 us | p99.9 us |\n"
     << "|---|---|---|---|---|---|---|---|\n";
  for (std::size_t j = 0; j < s.device.front().results.size(); ++j) {
    for (std::size_t d = 0; d < s.device.size(); ++d) {
      if (j >= s.device[d].results.size()) {
        continue;
      }
      const fio_result& r = s.device[d].results[j];
      md << "| " << r.job.name << " | " << r.job.description << " | "
         << (d == 0 ? "before" : "after") << " | ";
      if (r.ok) {
        md << num(r.iops) << " | " << num(r.bytes_per_s / 1e6) << " | " << num(r.lat.p50_us)
           << " | " << num(r.lat.p99_us) << " | " << num(r.lat.p999_us) << " |\n";
      } else {
        md << "failed: " << r.error << " | | | | |\n";
      }
    }
  }
  md << "\n";
}

void workload_section(std::ostringstream& md, const suite_results& s, std::size_t i) {
  const workload& w = s.workloads[i];
  const auto& engines = s.cfg.engines;
  md << "### " << w.name << "\n\n"
     << w.summary << ". " << params_line(w) << ".\n\n"
     << "| engine | " << ops_unit(w) << " median [min-max] | MB/s | read p50/p99/p99.9 us | "
     << "write p50/p99/p99.9 us | scan p50/p99/p99.9 us | CPU s per M ops | peak RSS MiB | "
     << "space amp | device read KiB/op | device write / logical write |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|\n";
  std::vector<std::string> notes;
  cell first;
  for (const std::string& e : engines) {
    const cell c = aggregate(s.runs, static_cast<int>(i), e);
    if (e == engines.front()) {
      first = c;
    }
    md << "| " << e << " | " << med_range(c.ops) << " | " << num(c.mb.median) << " | "
       << lat3(c.read) << " | " << lat3(c.write) << " | " << lat3(c.scan) << " | "
       << num(c.cpu_per_mop.median) << " | " << num(c.rss_mib.max) << " | "
       << num(c.space_amp.median) << " | " << num(c.read_kib_per_op.median) << " | "
       << num(c.write_amp.median) << " |\n";
    if (c.failed > 0) {
      notes.push_back(e + ": " + std::to_string(c.failed) + " run(s) failed: " + c.error);
    }
    if (c.misses > 0 && w.kind != workload_kind::ycsb) {
      notes.push_back(e + ": " + std::to_string(c.misses) +
                      " reads of existing keys found nothing");
    }
    if (c.writer_keys.count > 0) {
      notes.push_back(e + ": the writer wrote " + med_range(c.writer_keys) + " keys/s");
    }
  }
  md << "\n";
  for (const std::string& n : notes) {
    md << "- " << n << "\n";
  }
  if (s.cfg.fio) {
    device_lines(md, s, w, first);
  }
  md << "\n";
}

void loads_section(std::ostringstream& md, const suite_results& s) {
  md << "## Loads\n\nEach data set is loaded once per engine (keys in key order, durable "
        "batches of 1000, then background work settled; YCSB records go in sorted by their "
        "hashed keys, not in YCSB's hashed insert order, which fillrandom covers) and reused by "
        "the workloads after it; "
        "the workloads that write change it, in the same order for every engine.\n\n"
     << "| data set | engine | keys/s | MB/s | CPU s per M keys | space amp after load | "
        "device write / logical write |\n|---|---|---|---|---|---|---|\n";
  for (const run_record& l : s.loads) {
    const run_result& r = l.r;
    const double sec = r.elapsed_s > 0 ? r.elapsed_s : nan_value;
    md << "| " << l.workload_name << " | " << l.engine << " | "
       << (r.ok ? num(static_cast<double>(r.ops) / sec) : "failed: " + std::string(r.error))
       << " | " << num(static_cast<double>(r.bytes) / sec / 1e6) << " | "
       << num(r.ops > 0 ? r.cpu_s / static_cast<double>(r.ops) * 1e6 : nan_value) << " | "
       << num(ratio(static_cast<double>(r.disk_bytes), static_cast<double>(r.logical_bytes)))
       << " | "
       << num(ratio(static_cast<double>(r.io_write_bytes), static_cast<double>(r.write_bytes)))
       << " |\n";
  }
  md << "\n";
}

void method_section(std::ostringstream& md, const suite_results& s) {
  const suite_config& c = s.cfg;
  md << "## Method\n\n"
     << "- One invocation runs every engine: for each workload, for each repetition, the "
        "engines in the order "
     <<
      [&] {
        std::string o;
        for (const std::string& e : c.engines) {
          o += (o.empty() ? "" : ", ") + e;
        }
        return o;
      }()
     << ", so drift over the run hits all of them alike.\n"
     << "- Each run is a child process: drop the page cache of the store's files, open the "
        "store, warm up ("
     << num(c.warmup_s)
     << " s of the same operations; readseq warms up with point reads; fills have no warm-up), "
        "drop that cache again, measure for "
     << num(c.duration_s)
     << " s, close. getrusage and /proc/self/io are read around the "
        "measured phase (CPU includes the engines' background threads); peak RSS is the child's "
        "whole life.\n"
     << "- Page cache: "
     << (c.drop == cache_drop::fadvise
             ? "fdatasync + posix_fadvise(POSIX_FADV_DONTNEED) on every file of the store's "
               "directory (not /proc/sys/vm/drop_caches, which would disturb other work on the "
               "machine)"
         : c.drop == cache_drop::vm ? "sync; echo 1 > /proc/sys/vm/drop_caches"
                                    : "not dropped")
     << ". Neither evicts pages a process has mapped, so LMDB keeps the map pages it touched "
        "while warming up; those stay in its RSS.\n"
     << "- Cache budget per engine: " << num(static_cast<double>(c.cache_bytes) / mib)
     << " MiB (eloqstore: index-page pool split over its shards; RocksDB: LRU block cache; "
        "LMDB: none of its own). Shards / background threads: "
     << c.threads << "; eloqstore partitions: " << c.partitions << ".\n"
     << "- Durability: every acknowledged write or batch is synced (see the settings below).\n"
     << "- Values are random bytes (incompressible); no engine compresses.\n"
     << "- Latency is per operation as the client sees it (per batch for batched writers), "
        "from a log-linear histogram (1.6% resolution); the tables give the median over "
        "repetitions of each repetition's percentile.\n"
     << "- Space amplification: allocated bytes (st_blocks) of every file in the store's "
        "directory after close, over live records x (key + value). Device write / logical "
        "write: /proc/self/io write_bytes over the keys and values the clients wrote.\n"
     << "- YCSB: one 1000-byte value per record (YCSB's 10 fields of 100 B as one blob), keys "
        "\"user\" + 16 hex digits of fnvhash64(id); an update rewrites the whole record; "
        "latest (D) uses the zipfian constant of the record count at the start of the run.\n\n";
}

void caveats_section(std::ostringstream& md, const suite_results& s) {
  md << "## Caveats\n\n"
     << "- LMDB has no cache of its own and reads through its memory map: pages it has mapped "
        "since the run started stay resident (the page-cache drop cannot evict mapped pages), "
        "so within a run LMDB's cache grows without the budget the other engines keep to. The "
        "\"device read KiB/op\" column shows how much each engine really read from the device "
        "(4 KiB per point read means every read went to the device).\n"
     << "- eloqstore's batches are split by partition; each part is atomic and durable, the "
        "batch is acknowledged when all parts are, but a batch spanning partitions is not "
        "atomic as a whole (RocksDB's WriteBatch and LMDB's transaction are).\n"
     << "- The machine has " << s.cfg.threads
     << " cores shared with everything else running on it; runs of all engines are "
        "interleaved so that background load hits them alike, but it widens the min-max "
        "ranges.\n"
     << "- The data sets are small next to the machine's memory; page-cache effects are "
        "removed by dropping the store's files from the cache, not by a memory limit.\n\n";
}

}  // namespace

json run_to_json(const run_record& rec) {
  return run_json_impl(rec);
}

// ---- reading results.json back --------------------------------------------------------------

namespace {

latency_summary latency_from(const json& j) {
  latency_summary l;
  l.count = static_cast<std::uint64_t>(number_or(member(j, "count"), 0));
  l.mean_us = number_or(member(j, "mean_us"), 0);
  l.p50_us = number_or(member(j, "p50_us"), 0);
  l.p99_us = number_or(member(j, "p99_us"), 0);
  l.p999_us = number_or(member(j, "p999_us"), 0);
  l.max_us = number_or(member(j, "max_us"), 0);
  return l;
}

// Counters are written as integers: read them exactly (beyond 2^53), else through a double.
std::uint64_t u64(const json& j) {
  return j.is_number_unsigned() ? j.get<std::uint64_t>()
                                : static_cast<std::uint64_t>(number_or(j, 0));
}
bool is_true(const json& j) {
  return j.is_boolean() && j.get<bool>();
}

run_record run_from(const json& j, const std::vector<workload>& workloads) {
  run_record rec;
  rec.engine = string_or_empty(member(j, "engine"));
  rec.workload_name = string_or_empty(member(j, "workload"));
  rec.repetition = static_cast<int>(number_or(member(j, "repetition"), 0));
  for (std::size_t i = 0; i < workloads.size(); ++i) {
    if (workloads[i].name == rec.workload_name) {
      rec.workload_index = static_cast<int>(i);
    }
  }
  run_result& r = rec.r;
  r.ok = is_true(member(j, "ok"));
  std::snprintf(r.error, sizeof r.error, "%s", string_or_empty(member(j, "error")).c_str());
  r.elapsed_s = number_or(member(j, "elapsed_s"), 0);
  r.ops = u64(member(j, "ops"));
  r.bytes = u64(member(j, "bytes"));
  r.misses = u64(member(j, "misses"));
  r.writes = u64(member(j, "keys_written"));
  r.write_bytes = u64(member(j, "logical_bytes_written"));
  r.inserted = u64(member(j, "inserted"));
  r.distinct_keys = u64(member(j, "distinct_keys"));
  r.read_lat = latency_from(member(j, "read_latency"));
  r.write_lat = latency_from(member(j, "write_latency"));
  r.scan_lat = latency_from(member(j, "scan_latency"));
  r.cpu_s = number_or(member(j, "cpu_s"), 0);
  r.peak_rss_kib = static_cast<std::int64_t>(number_or(member(j, "peak_rss_kib"), 0));
  r.io_read_bytes = u64(member(j, "io_read_bytes"));
  r.io_write_bytes = u64(member(j, "io_write_bytes"));
  r.disk_bytes = u64(member(j, "disk_bytes"));
  r.logical_bytes = u64(member(j, "logical_bytes"));
  r.open_s = number_or(member(j, "open_s"), 0);
  r.close_s = number_or(member(j, "close_s"), 0);
  r.writer_keys_per_s = number_or(member(j, "writer_keys_per_s"), 0);
  const std::string drop = string_or_empty(member(j, "cache_drop"));
  r.cache_drop_applied = drop == "fadvise" ? static_cast<int>(cache_drop::fadvise)
                         : drop == "vm"    ? static_cast<int>(cache_drop::vm)
                                           : -1;
  return rec;
}

workload workload_from(const json& j) {
  workload w;
  w.name = string_or_empty(member(j, "name"));
  const std::string kind = string_or_empty(member(j, "kind"));
  for (int k = 0; k <= static_cast<int>(workload_kind::ycsb); ++k) {
    if (kind == to_string(static_cast<workload_kind>(k))) {
      w.kind = static_cast<workload_kind>(k);
    }
  }
  w.space = string_or_empty(member(j, "key_space")) == "ycsb" ? key_space::ycsb : key_space::db;
  w.key_size = static_cast<std::size_t>(number_or(member(j, "key_size"), 16));
  w.value_size = static_cast<std::size_t>(number_or(member(j, "value_size"), 0));
  w.batch_size = static_cast<std::size_t>(number_or(member(j, "batch_size"), 1));
  w.clients = static_cast<std::size_t>(number_or(member(j, "clients"), 1));
  w.dataset_keys = u64(member(j, "dataset_keys"));
  w.duration_s = number_or(member(j, "duration_s"), 0);
  w.warmup_s = number_or(member(j, "warmup_s"), 0);
  w.scan_length = static_cast<std::size_t>(number_or(member(j, "scan_length"), 100));
  const json& m = member(j, "mix");
  w.mix.read = number_or(member(m, "read"), 0);
  w.mix.update = number_or(member(m, "update"), 0);
  w.mix.insert = number_or(member(m, "insert"), 0);
  w.mix.scan = number_or(member(m, "scan"), 0);
  w.mix.rmw = number_or(member(m, "read_modify_write"), 0);
  w.mix.latest = string_or_empty(member(m, "distribution")) == "latest";
  w.summary = string_or_empty(member(j, "summary"));
  return w;
}

device_run device_from(const json& j) {
  device_run d;
  d.available = is_true(member(j, "available"));
  d.fio_version = string_or_empty(member(j, "fio_version"));
  d.note = string_or_empty(member(j, "note"));
  for (const json& r : array_or_empty(member(j, "jobs"))) {
    fio_result f;
    f.job.name = string_or_empty(member(r, "name"));
    f.job.description = string_or_empty(member(r, "description"));
    f.ok = is_true(member(r, "ok"));
    f.error = string_or_empty(member(r, "error"));
    f.iops = number_or(member(r, "iops"), 0);
    f.bytes_per_s = number_or(member(r, "bytes_per_s"), 0);
    f.lat.count = f.ok ? 1 : 0;  // not stored; only "measured or not" matters here
    f.lat.p50_us = number_or(member(r, "lat_p50_us"), 0);
    f.lat.p99_us = number_or(member(r, "lat_p99_us"), 0);
    f.lat.p999_us = number_or(member(r, "lat_p999_us"), 0);
    f.lat.mean_us = number_or(member(r, "lat_mean_us"), 0);
    d.results.push_back(std::move(f));
  }
  return d;
}

void config_from(const json& c, suite_results& out) {
  suite_config& cfg = out.cfg;
  cfg.command_line = string_or_empty(member(c, "command_line"));
  cfg.started_at = string_or_empty(member(c, "started_at"));
  out.total_s = number_or(member(c, "total_s"), 0);
  cfg.scale = number_or(member(c, "scale"), 1);
  cfg.smoke = is_true(member(c, "smoke"));
  cfg.repetitions = static_cast<int>(number_or(member(c, "repetitions"), 1));
  cfg.threads = static_cast<unsigned>(number_or(member(c, "threads"), 1));
  cfg.partitions = static_cast<std::size_t>(number_or(member(c, "partitions"), 1));
  cfg.cache_bytes = static_cast<std::size_t>(number_or(member(c, "cache_bytes"), 0));
  const std::string drop = string_or_empty(member(c, "cache_drop"));
  cfg.drop = drop == "vm"     ? cache_drop::vm
             : drop == "none" ? cache_drop::none
                              : cache_drop::fadvise;
  cfg.data_dir = string_or_empty(member(c, "data_dir"));
  cfg.fio = member(c, "fio").is_null() || is_true(member(c, "fio"));
  cfg.device.runtime_s = number_or(member(c, "device_runtime_s"), cfg.device.runtime_s);
  cfg.device.ramp_s = number_or(member(c, "device_ramp_s"), cfg.device.ramp_s);
  if (u64(member(c, "device_file_bytes")) > 0) {
    cfg.device.file_bytes = u64(member(c, "device_file_bytes"));
  }
  cfg.engines.clear();
  for (const json& e : array_or_empty(member(c, "engines"))) {
    cfg.engines.push_back(string_or_empty(e));
  }
}

}  // namespace

bool read_results(const std::string& path, suite_results& out, std::string& error) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  json root;
  if (!in || !parse_json(text.str(), root, error)) {
    error = "cannot read " + path + (error.empty() ? "" : ": " + error);
    return false;
  }
  config_from(member(root, "config"), out);
  if (out.cfg.engines.empty()) {
    error = path + " names no engine";
    return false;
  }
  out.machine = member(root, "machine");
  const json& settings = member(root, "engine_settings");
  if (settings.is_object()) {
    for (auto it = settings.begin(); it != settings.end(); ++it) {
      out.settings[it.key()] = string_or_empty(it.value());
    }
  }
  for (const json& d : array_or_empty(member(root, "device"))) {
    out.device.push_back(device_from(d));
  }
  for (const json& w : array_or_empty(member(root, "workloads"))) {
    out.workloads.push_back(workload_from(w));
  }
  // The method section names one warm-up and duration: the first workload that warms up.
  for (const workload& w : out.workloads) {
    if (w.warmup_s > 0) {
      out.cfg.duration_s = w.duration_s;
      out.cfg.warmup_s = w.warmup_s;
      break;
    }
  }
  for (const json& r : array_or_empty(member(root, "loads"))) {
    out.loads.push_back(run_from(r, out.workloads));
    out.loads.back().workload_index = -1;
  }
  for (const json& r : array_or_empty(member(root, "runs"))) {
    out.runs.push_back(run_from(r, out.workloads));
  }
  return true;
}

bool write_reports(const suite_results& s, std::string& error) {
  const std::string& out = s.cfg.out_dir;
  std::filesystem::create_directories(out);
  const json machine = s.machine.is_null() ? machine_info(s.cfg.data_dir) : s.machine;
  if (!write_file(out + "/results.json", dump_json(results_json(s, machine), 2) + "\n")) {
    error = "could not write " + out + "/results.json";
    return false;
  }
  const std::string chart_note = write_charts(s);
  const auto machine_text = [&machine](const char* key) {
    return string_or_empty(member(machine, key));
  };

  std::ostringstream md;
  md << "# eloqstore benchmark suite"
     << (s.cfg.smoke ? " (smoke run: tiny, not a measurement)" : "") << "\n\n"
     << "Started " << s.cfg.started_at << ", took " << num(s.total_s) << " s. Command: `"
     << s.cfg.command_line << "`." << (s.regenerated.empty() ? "" : " " + s.regenerated) << "\n\n"
     << "Machine: " << machine_text("cpu") << ", "
     << static_cast<int>(number_or(member(machine, "cpus_online"), 0)) << " CPUs, "
     << num(number_or(member(machine, "memory_bytes"), 0) / mib / 1024) << " GiB memory, "
     << machine_text("kernel") << "; data on " << machine_text("data_device") << " ("
     << machine_text("disk_model") << ", " << machine_text("data_filesystem") << " at "
     << machine_text("data_mount")
     << "). The full description is in machine.txt when the "
        "suite runs through scripts/bench-suite.sh.\n\n";
  summary_section(md, s);
  if (chart_note.empty()) {
    md << "![throughput per workload](throughput.png)\n\n![read latency](latency.png)\n\n";
  } else {
    md << "Charts: " << chart_note << ".\n\n";
  }
  device_section(md, s);
  md << "## Workloads\n\n"
     << "CPU is user + system seconds of the whole process per million counted operations. "
        "Device read KiB/op counts what the engine made the storage layer read (page-cache "
        "hits cost nothing there).\n\n";
  for (std::size_t i = 0; i < s.workloads.size(); ++i) {
    workload_section(md, s, i);
  }
  loads_section(md, s);
  method_section(md, s);
  caveats_section(md, s);
  md << "## Engine settings\n\n";
  for (const std::string& e : s.cfg.engines) {
    const auto it = s.settings.find(e);
    md << "### " << e << "\n\n```\n"
       << (it != s.settings.end() ? it->second : "(not opened)\n") << "```\n\n";
    if (std::filesystem::exists(out + "/" + e + "-OPTIONS.ini")) {
      md << "The complete option file " << e << " wrote is " << e << "-OPTIONS.ini.\n\n";
    }
  }
  if (!write_file(out + "/report.md", md.str())) {
    error = "could not write " + out + "/report.md";
    return false;
  }
  return true;
}

}  // namespace bench
