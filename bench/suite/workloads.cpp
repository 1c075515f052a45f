// Runs one workload against one engine: client threads, warm-up, cache drop, measurement.
#include "workloads.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bench {
namespace {

using clock_type = std::chrono::steady_clock;

constexpr std::size_t readseq_chunk_records = 1000;
constexpr std::size_t load_batch_keys = 1000;
constexpr double until_done_s = 1e6;  // a load runs until its data set is written

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

std::uint64_t elapsed_ns(clock_type::time_point t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t).count());
}

struct io_counters {
  std::uint64_t read_bytes = 0;
  std::uint64_t write_bytes = 0;
};

// The bytes this process made the storage layer read and write (/proc/self/io); zeros when
// the kernel does not account I/O.
io_counters proc_io() {
  io_counters c;
  std::ifstream in("/proc/self/io");
  std::string name;
  std::uint64_t value = 0;
  while (in >> name >> value) {
    if (name == "read_bytes:") {
      c.read_bytes = value;
    } else if (name == "write_bytes:") {
      c.write_bytes = value;
    }
  }
  return c;
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  const auto tv = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return tv(u.ru_utime) + tv(u.ru_stime);
}

// Empties the page cache of the files under `dir` (see cache_drop); returns what it did.
cache_drop drop_cache(const std::string& dir, cache_drop mode) {
  if (mode == cache_drop::none) {
    return mode;
  }
  if (mode == cache_drop::vm) {
    ::sync();
    std::ofstream f("/proc/sys/vm/drop_caches");
    if (f << "1\n" && f.flush()) {
      return mode;
    }
  }
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) {
      continue;
    }
    const int fd = ::open(it->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    (void)::fdatasync(fd);  // dirty pages cannot be dropped
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
  return cache_drop::fadvise;
}

// YCSB's AcknowledgedCounterGenerator: hands out the ids of inserted records and knows the
// end of the prefix of ids whose inserts have all been acknowledged, so that "latest" reads
// never ask for a record that is still being written.
class acknowledged_counter {
 public:
  // Inserts in flight at once, at most: one per client thread, far below this.
  static constexpr std::size_t window = std::size_t{1} << 16;

  explicit acknowledged_counter(std::uint64_t start)
      : next_(start), limit_(start), acked_(window, false) {}

  std::uint64_t begin() noexcept { return next_.fetch_add(1, std::memory_order_relaxed); }

  void acknowledge(std::uint64_t id) {
    std::lock_guard lock(mu_);
    acked_[id % window] = true;
    std::uint64_t l = limit_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < window && acked_[l % window]; ++i) {
      acked_[l % window] = false;
      ++l;
    }
    limit_.store(l, std::memory_order_release);
  }

  // Every id below this has been acknowledged.
  [[nodiscard]] std::uint64_t limit() const noexcept {
    return limit_.load(std::memory_order_acquire);
  }

 private:
  std::atomic<std::uint64_t> next_;
  std::atomic<std::uint64_t> limit_;
  std::mutex mu_;            // guards acked_
  std::vector<bool> acked_;  // acknowledged ids at or above limit_, by id % window
};

struct thread_stats {
  std::uint64_t ops = 0;
  std::uint64_t bytes = 0;
  std::uint64_t misses = 0;
  std::uint64_t writes = 0;
  std::uint64_t write_bytes = 0;
  histogram read;
  histogram write;
  histogram scan;
};

// What the threads of a run share, across both phases.
struct shared_state {
  shared_state(engine& e, const workload& wl, std::uint64_t recs, std::uint64_t sd)
      : eng(e), w(wl), records(recs), seed(sd), values(wl.value_size, sd), inserts(recs) {
    if (w.fresh()) {
      seen = std::vector<std::atomic<std::uint64_t>>((w.dataset_keys + 63) / 64);
    }
    if (w.kind == workload_kind::ycsb) {
      zipf = std::make_unique<scrambled_zipfian>(std::max<std::uint64_t>(1, records));
      if (w.mix.latest) {
        latest = std::make_unique<zipfian>(std::max<std::uint64_t>(2, records));
      }
    }
  }

  void fail(const std::string& message) {
    std::lock_guard lock(error_mu);
    if (!failed.exchange(true)) {
      error = message;
    }
  }

  engine& eng;
  const workload& w;
  const std::uint64_t records;  // records before the run
  const std::uint64_t seed;
  value_source values;
  std::vector<std::atomic<std::uint64_t>> seen;  // fills: a bit per key written
  std::vector<std::uint64_t> order;  // fillseq: ids in the order to write them (empty: 0..n)
  std::unique_ptr<scrambled_zipfian> zipf;
  std::unique_ptr<zipfian> latest;
  std::atomic<std::uint64_t> next_seq{0};      // fillseq: the next id to write
  std::atomic<std::uint64_t> written{0};       // fills: keys written
  acknowledged_counter inserts;                // YCSB insert ids
  std::atomic<std::uint64_t> inserts_done{0};  // YCSB inserts acknowledged
  std::atomic<bool> failed{false};
  clock_type::time_point deadline;
  std::mutex error_mu;
  std::string error;
};

enum class role { main, writer, warm_reader };

// One client thread.
class client {
 public:
  client(shared_state& s, thread_stats& st, std::uint64_t seed)
      : s_(s), st_(st), rng_(seed), keys_(s.w.space, s.w.key_size), session_(s.eng.new_session()) {}

  void run(role r) {
    if (r == role::writer) {
      overwrite_loop(false);
      return;
    }
    if (r == role::warm_reader) {
      readrandom_loop();
      return;
    }
    switch (s_.w.kind) {
      case workload_kind::fillseq:
        fillseq_loop();
        break;
      case workload_kind::fillrandom:
        fillrandom_loop();
        break;
      case workload_kind::overwrite:
      case workload_kind::smallwrites:
        overwrite_loop(true);
        break;
      case workload_kind::readrandom:
      case workload_kind::readwhilewriting:
        readrandom_loop();
        break;
      case workload_kind::readseq:
        readseq_loop();
        break;
      case workload_kind::seekrandom:
        seekrandom_loop();
        break;
      case workload_kind::ycsb:
        ycsb_loop();
        break;
    }
  }

 private:
  bool running() const {
    return !s_.failed.load(std::memory_order_relaxed) && clock_type::now() < s_.deadline;
  }

  bool check(bool ok) {
    if (!ok) {
      s_.fail(s_.eng.name() + ": " + session_->last_error());
    }
    return ok;
  }

  // Writes the records `ids_` (unique) as one durable batch; `counted` adds them to ops,
  // `timed` records the batch's latency.
  bool write_ids(bool counted, bool timed = true) {
    batch_.clear();
    batch_keys_.resize(ids_.size());
    for (std::size_t i = 0; i < ids_.size(); ++i) {
      batch_keys_[i].assign(keys_(ids_[i]));
    }
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < ids_.size(); ++i) {
      batch_.push_back(kv_ref{batch_keys_[i], s_.values.next(rng_)});
      bytes += batch_keys_[i].size() + s_.w.value_size;
    }
    const auto t = clock_type::now();
    if (!check(session_->write(batch_))) {
      return false;
    }
    if (timed) {
      st_.write.record(elapsed_ns(t));
    }
    st_.writes += ids_.size();
    st_.write_bytes += bytes;
    if (counted) {
      st_.ops += ids_.size();
      st_.bytes += bytes;
    }
    return true;
  }

  void mark_seen() {
    for (const std::uint64_t id : ids_) {
      s_.seen[id / 64].fetch_or(std::uint64_t{1} << (id % 64), std::memory_order_relaxed);
    }
  }

  // `n` random distinct ids below `limit`, sorted.
  void random_ids(std::size_t n, std::uint64_t limit) {
    ids_.clear();
    for (std::size_t i = 0; i < n; ++i) {
      ids_.push_back(rng_.below(limit));
    }
    std::sort(ids_.begin(), ids_.end());
    ids_.erase(std::unique(ids_.begin(), ids_.end()), ids_.end());
  }

  void fillseq_loop() {
    const std::uint64_t n = s_.w.dataset_keys;
    while (running()) {
      const std::uint64_t first = s_.next_seq.fetch_add(s_.w.batch_size);
      if (first >= n) {
        return;
      }
      ids_.clear();
      for (std::uint64_t i = first; i < std::min(n, first + s_.w.batch_size); ++i) {
        ids_.push_back(s_.order.empty() ? i : s_.order[i]);
      }
      if (!write_ids(true)) {
        return;
      }
      mark_seen();
    }
  }

  void fillrandom_loop() {
    const std::uint64_t n = s_.w.dataset_keys;
    while (running() && s_.written.load(std::memory_order_relaxed) < n) {
      random_ids(s_.w.batch_size, n);
      if (!write_ids(true)) {
        return;
      }
      mark_seen();
      s_.written.fetch_add(ids_.size(), std::memory_order_relaxed);
    }
  }

  void overwrite_loop(bool counted) {
    while (running()) {
      random_ids(s_.w.batch_size, s_.records);
      if (!write_ids(counted)) {
        return;
      }
    }
  }

  bool read_id(std::uint64_t id) {
    const std::string_view key = keys_(id);
    bool found = false;
    const auto t = clock_type::now();
    if (!check(session_->get(key, value_, found))) {
      return false;
    }
    st_.read.record(elapsed_ns(t));
    ++st_.ops;
    st_.bytes += key.size() + value_.size();
    st_.misses += found ? 0 : 1;
    return true;
  }

  void readrandom_loop() {
    while (running() && read_id(rng_.below(s_.records))) {
    }
  }

  void readseq_loop() {
    std::string from;
    bool inclusive = true;
    while (running()) {
      scan_result r;
      if (!check(session_->scan(from, inclusive, readseq_chunk_records, r))) {
        return;
      }
      st_.ops += r.records;
      st_.bytes += r.bytes;
      if (r.records < readseq_chunk_records) {
        return;  // one full pass done
      }
      from = std::move(r.last_key);
      inclusive = false;
    }
  }

  bool scan_from(std::uint64_t id, std::size_t length) {
    scan_result r;
    const auto t = clock_type::now();
    if (!check(session_->scan(keys_(id), true, length, r))) {
      return false;
    }
    st_.scan.record(elapsed_ns(t));
    ++st_.ops;
    st_.bytes += r.bytes;
    return true;
  }

  void seekrandom_loop() {
    while (running() && scan_from(rng_.below(s_.records), s_.w.scan_length)) {
    }
  }

  // A record chosen by the workload's request distribution.
  std::uint64_t choose() {
    if (s_.latest) {
      // YCSB's SkewedLatestGenerator: the newest acknowledged record minus a zipfian offset.
      const std::uint64_t newest = s_.inserts.limit() - 1;
      const std::uint64_t back = s_.latest->next(rng_);
      return back > newest ? 0 : newest - back;
    }
    return s_.zipf->next(rng_);
  }

  bool ycsb_write(std::uint64_t id, bool counted) {
    ids_.assign(1, id);
    return write_ids(counted);
  }

  bool ycsb_op() {
    const ycsb_mix& m = s_.w.mix;
    const double u = rng_.unit();
    if (u < m.read) {
      return read_id(choose());
    }
    if (u < m.read + m.update) {
      return ycsb_write(choose(), true);
    }
    if (u < m.read + m.update + m.insert) {
      const std::uint64_t id = s_.inserts.begin();
      if (!ycsb_write(id, true)) {
        return false;
      }
      s_.inserts.acknowledge(id);
      s_.inserts_done.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    if (u < m.read + m.update + m.insert + m.scan) {
      return scan_from(choose(), 1 + rng_.below(m.scan_length_max));
    }
    // Read-modify-write: read the record, then write it back changed; timed as one.
    const std::uint64_t id = choose();
    const auto t = clock_type::now();
    bool found = false;
    if (!check(session_->get(keys_(id), value_, found))) {
      return false;
    }
    st_.misses += found ? 0 : 1;
    ids_.assign(1, id);
    if (!write_ids(false, false)) {
      return false;
    }
    st_.write.record(elapsed_ns(t));
    ++st_.ops;
    st_.bytes += keys_.size() + s_.w.value_size;
    return true;
  }

  void ycsb_loop() {
    while (running() && ycsb_op()) {
    }
  }

  shared_state& s_;
  thread_stats& st_;
  rng rng_;
  key_format keys_;
  std::unique_ptr<session> session_;
  std::vector<std::uint64_t> ids_;
  std::vector<std::string> batch_keys_;
  std::vector<kv_ref> batch_;
  std::string value_;
};

struct phase_totals {
  thread_stats sum;
  double elapsed_s = 0;
};

// Runs the client threads of one phase for `seconds`; the warm-up of readseq reads points.
std::unique_ptr<phase_totals> run_phase(shared_state& s, double seconds, bool warmup) {
  const workload& w = s.w;
  const bool writer = w.kind == workload_kind::readwhilewriting;
  const std::size_t threads_count = std::max<std::size_t>(1, w.clients) + (writer ? 1 : 0);
  std::vector<std::unique_ptr<thread_stats>> stats;
  for (std::size_t i = 0; i < threads_count; ++i) {
    stats.push_back(std::make_unique<thread_stats>());
  }
  std::vector<std::thread> threads;
  s.deadline = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                       std::chrono::duration<double>(seconds));
  const auto start = clock_type::now();
  for (std::size_t i = 0; i < threads_count; ++i) {
    role r = writer && i + 1 == threads_count ? role::writer : role::main;
    if (warmup && w.kind == workload_kind::readseq) {
      r = role::warm_reader;
    }
    const std::uint64_t seed = s.seed * 1000003 + i * 7919 + (warmup ? 1 : 0);
    threads.emplace_back([&s, &st = *stats[i], seed, r] {
      client c(s, st, seed);
      c.run(r);
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  auto out = std::make_unique<phase_totals>();
  out->elapsed_s = seconds_since(start);
  for (const auto& st : stats) {
    out->sum.ops += st->ops;
    out->sum.bytes += st->bytes;
    out->sum.misses += st->misses;
    out->sum.writes += st->writes;
    out->sum.write_bytes += st->write_bytes;
    out->sum.read.merge(st->read);
    out->sum.write.merge(st->write);
    out->sum.scan.merge(st->scan);
  }
  return out;
}

void set_error(run_result& r, const std::string& message) {
  r.ok = false;
  std::snprintf(r.error, sizeof r.error, "%s", message.c_str());
}

}  // namespace

std::string workload::dataset_id() const {
  return std::string(space == key_space::db ? "db" : "ycsb") + "-k" + std::to_string(key_size) +
         "-v" + std::to_string(value_size) + "-n" + std::to_string(dataset_keys);
}

run_result run_workload(const std::string& engine_name, const workload& w, const run_params& p,
                        std::string* settings) {
  run_result r;
  std::unique_ptr<engine> e = make_engine(engine_name);
  if (!e) {
    set_error(r, "unknown engine " + engine_name);
    return r;
  }
  if (!p.load) {
    // Start cold: the previous run (or the load) may have left the files in the page cache,
    // and an engine that maps its file (LMDB) would keep whatever its warm-up maps.
    (void)drop_cache(p.cfg.dir, p.drop);
  }
  auto t = clock_type::now();
  std::string error;
  if (!e->open(p.cfg, error)) {
    set_error(r, error);
    return r;
  }
  r.open_s = seconds_since(t);
  if (settings != nullptr) {
    *settings = e->settings();
  }
  shared_state s(*e, w, p.records, p.seed);
  if (p.load && w.space == key_space::ycsb) {
    // Load in key order (ids sorted by their hashed keys), as the db key space loads.
    s.order.resize(w.dataset_keys);
    for (std::uint64_t i = 0; i < w.dataset_keys; ++i) {
      s.order[i] = i;
    }
    std::sort(s.order.begin(), s.order.end(),
              [](std::uint64_t a, std::uint64_t b) { return fnvhash64(a) < fnvhash64(b); });
  }
  if (!p.load && w.warmup_s > 0) {
    (void)run_phase(s, w.warmup_s, true);
  }
  if (!p.load) {
    r.cache_drop_applied = static_cast<int>(drop_cache(p.cfg.dir, p.drop));
  }
  const double cpu0 = cpu_seconds();
  const io_counters io0 = proc_io();
  const auto m = run_phase(s, p.load ? until_done_s : w.duration_s, false);
  const double cpu1 = cpu_seconds();
  const io_counters io1 = proc_io();
  if (p.load && !s.failed) {
    e->settle(p.settle_timeout_s);
  }
  t = clock_type::now();
  e->close();
  r.close_s = seconds_since(t);

  r.ok = !s.failed;
  if (s.failed) {
    set_error(r, s.error);
  }
  r.elapsed_s = m->elapsed_s;
  r.ops = m->sum.ops;
  r.bytes = m->sum.bytes;
  r.misses = m->sum.misses;
  r.writes = m->sum.writes;
  r.write_bytes = m->sum.write_bytes;
  r.read_lat = m->sum.read.summary();
  r.write_lat = m->sum.write.summary();
  r.scan_lat = m->sum.scan.summary();
  r.cpu_s = cpu1 - cpu0;
  r.io_read_bytes = io1.read_bytes - io0.read_bytes;
  r.io_write_bytes = io1.write_bytes - io0.write_bytes;
  r.inserted = s.inserts_done.load();
  const std::size_t key_bytes = key_format(w.space, w.key_size).size();
  const std::uint64_t record_bytes = key_bytes + w.value_size;
  if (w.fresh()) {
    for (const auto& word : s.seen) {
      r.distinct_keys += static_cast<std::uint64_t>(std::popcount(word.load()));
    }
    r.logical_bytes = r.distinct_keys * record_bytes;
  } else {
    r.logical_bytes = (p.records + r.inserted) * record_bytes;
  }
  if (w.kind == workload_kind::readwhilewriting && r.elapsed_s > 0) {
    r.writer_keys_per_s = static_cast<double>(r.writes) / r.elapsed_s;
  }
  r.disk_bytes = disk_usage_bytes(p.cfg.dir);
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  r.peak_rss_kib = u.ru_maxrss;
  return r;
}

std::uint64_t disk_usage_bytes(const std::string& dir) {
  std::uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      total += static_cast<std::uint64_t>(st.st_blocks) * 512;
    }
  }
  return total;
}

std::vector<workload> standard_workloads(double scale, bool smoke, double duration_s,
                                         double warmup_s) {
  // Data sets: ~0.5 GB (db) and ~0.25 GB (YCSB) at scale 1, both well above the 64 MiB
  // cache budget; the smoke run uses a few thousand records.
  const auto keys = [&](std::uint64_t standard, std::uint64_t tiny) {
    return smoke ? tiny : static_cast<std::uint64_t>(std::llround(standard * scale));
  };
  workload db;
  db.space = key_space::db;
  db.key_size = 16;
  db.value_size = 1000;
  db.dataset_keys = keys(500000, 3000);
  db.duration_s = duration_s;
  db.warmup_s = warmup_s;
  std::vector<workload> out;
  const auto add = [&](workload w, const char* name, workload_kind kind, std::size_t batch,
                       std::size_t clients, std::string summary) {
    w.name = name;
    w.kind = kind;
    w.batch_size = batch;
    w.clients = clients;
    w.summary = std::move(summary);
    out.push_back(std::move(w));
  };
  workload fill = db;
  fill.warmup_s = 0;  // a fill is measured from an empty store; warming it would fill it
  add(fill, "fillseq", workload_kind::fillseq, smoke ? 100 : 1000, 1,
      "sequential keys into an empty store, durable batches");
  add(fill, "fillrandom", workload_kind::fillrandom, smoke ? 100 : 1000, 1,
      "uniform random keys into an empty store, durable batches");
  add(db, "overwrite", workload_kind::overwrite, 100, 1,
      "uniform random existing keys, durable batches");
  add(db, "readrandom", workload_kind::readrandom, 1, 8,
      "uniform random point reads of existing keys, page cache dropped");
  add(db, "readseq", workload_kind::readseq, 1, 1,
      "one full scan in key order (or until the duration), page cache dropped");
  add(db, "seekrandom", workload_kind::seekrandom, 1, 8,
      "seek to a uniform random key, then 100 nexts");
  add(db, "readwhilewriting", workload_kind::readwhilewriting, 100, 4,
      "random point reads while one writer overwrites in durable batches of 100");
  add(db, "smallwrites", workload_kind::smallwrites, 1, smoke ? 8 : 32,
      "many clients, single-key durable writes of random existing keys");

  workload y = db;
  y.space = key_space::ycsb;
  y.key_size = 20;  // "user" + 16 hex digits
  y.value_size = 1000;
  y.dataset_keys = keys(250000, 2000);
  const auto ycsb = [&](const char* name, ycsb_mix m, std::string summary) {
    y.mix = m;
    add(y, name, workload_kind::ycsb, 1, 8, std::move(summary));
  };
  ycsb("ycsb-a", {.read = 0.5, .update = 0.5}, "50% read, 50% update; zipfian 0.99");
  ycsb("ycsb-b", {.read = 0.95, .update = 0.05}, "95% read, 5% update; zipfian 0.99");
  ycsb("ycsb-c", {.read = 1.0}, "100% read; zipfian 0.99");
  ycsb("ycsb-d", {.read = 0.95, .insert = 0.05, .latest = true},
       "95% read, 5% insert; latest distribution");
  ycsb("ycsb-e", {.insert = 0.05, .scan = 0.95},
       "95% scan (length uniform 1..100), 5% insert; zipfian 0.99");
  ycsb("ycsb-f", {.read = 0.5, .rmw = 0.5}, "50% read, 50% read-modify-write; zipfian 0.99");
  return out;
}

workload load_workload_for(const workload& w) {
  workload l = w;
  l.name = "load " + w.dataset_id();
  l.kind = workload_kind::fillseq;
  l.batch_size = load_batch_keys;
  l.clients = 1;
  l.duration_s = until_done_s;
  l.warmup_s = 0;
  l.summary = "bulk load: keys in key order, durable batches of 1000";
  return l;
}

const char* to_string(workload_kind k) noexcept {
  switch (k) {
    case workload_kind::fillseq:
      return "fillseq";
    case workload_kind::fillrandom:
      return "fillrandom";
    case workload_kind::overwrite:
      return "overwrite";
    case workload_kind::readrandom:
      return "readrandom";
    case workload_kind::readseq:
      return "readseq";
    case workload_kind::seekrandom:
      return "seekrandom";
    case workload_kind::readwhilewriting:
      return "readwhilewriting";
    case workload_kind::smallwrites:
      return "smallwrites";
    case workload_kind::ycsb:
      return "ycsb";
  }
  return "?";
}

const char* to_string(cache_drop d) noexcept {
  switch (d) {
    case cache_drop::fadvise:
      return "fadvise";
    case cache_drop::vm:
      return "vm";
    case cache_drop::none:
      return "none";
  }
  return "?";
}

}  // namespace bench
