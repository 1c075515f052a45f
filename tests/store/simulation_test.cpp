// The deterministic simulation: one seed drives the options, the operations and reads, the
// faults and the restarts of a store, and a model checks every read. Two worlds:
// * local mode: EloqStore over faulty_io<memory_io>: read, write and sync errors (EIO or
//   ENOSPC), short and torn writes, and a crash at a random mutation that loses what was not
//   synced;
// * cloud mode: the same faulty disk as the cache of cloud_io, over a bucket that fails
//   (faulty_object_store over memory_object_store: requests failing before or after they took
//   effect, downloads cut short, short listing pages, conditional puts losing a race), with a
//   cache small enough to evict, and restarts that lose the node's disk (every acknowledged
//   write must come back from the bucket) or start the process as a newer term.
// Shards run to completion and requests go one at a time, so a seed replays exactly:
// ELOQSTORE_SIM_SEED=N runs seed N alone; ELOQSTORE_SIM_SEEDS=N runs seeds 1..N (the long form);
// ELOQSTORE_SIM_TRACE=1 prints every step, restart and background failure to stderr.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/eloqstore.hpp>
#include <eloqstore/io/cloud.hpp>
#include <eloqstore/io/faulty.hpp>
#include <eloqstore/object/faulty.hpp>
#include <eloqstore/object/memory.hpp>

#include "support/crash_checks.hpp"
#include "support/store_fixture.hpp"
#include "support/workload.hpp"

using namespace eloqstore;

namespace {

using test::apply_op;
using test::describe;
using test::diff;
using test::key_of;
using test::kv_model;
using test::op;
using test::part_ident;
using test::read_all;
using test::run_op;
using test::workload;
using fio = faulty_io<memory_io>;

// Seeds per run of each world (the long form sets ELOQSTORE_SIM_SEEDS).
constexpr std::uint64_t local_seeds = test::slow_build ? 200 : 2000;
constexpr std::uint64_t cloud_seeds = test::slow_build ? 100 : 1000;

// A process's handle on a disk that outlives it. cloud_io holds its local backend by value
// and a restarted process begins with a new cloud_io (its bookkeeping is the process's
// memory), so the disk lives in the simulation and each process reaches it through this.
class disk_ref {
 public:
  explicit disk_ref(fio& disk) : disk_(&disk) {}

  error open() { return disk_->open(); }
  void close() { disk_->close(); }
  error read(const table_ident& t, std::string_view name, std::uint64_t offset,
             std::span<char> buf) {
    return disk_->read(t, name, offset, buf);
  }
  error write(const table_ident& t, std::string_view name, std::uint64_t offset,
              std::span<const char> data) {
    return disk_->write(t, name, offset, data);
  }
  error sync(const table_ident& t, std::string_view name) { return disk_->sync(t, name); }
  error sync_dir(const table_ident& t) { return disk_->sync_dir(t); }
  error read_file(const table_ident& t, std::string_view name, std::string& out) {
    return disk_->read_file(t, name, out);
  }
  error write_file_atomic(const table_ident& t, std::string_view name, std::span<const char> data) {
    return disk_->write_file_atomic(t, name, data);
  }
  error remove(const table_ident& t, std::string_view name) { return disk_->remove(t, name); }
  error list(const table_ident& t, std::vector<std::string>& names) {
    return disk_->list(t, names);
  }
  error list_partitions(std::vector<table_ident>& tables) { return disk_->list_partitions(tables); }

 private:
  fio* disk_;
};
static_assert(io_backend<disk_ref>);

struct local_traits : memory_traits {
  using io_type = fio;
  static std::unique_ptr<io_type> make_io(const options&) { return nullptr; }
};

using faulty_bucket = faulty_object_store<memory_object_store>;

// cloud_io as the simulation runs it: the store's thread that retries failed uploads wakes on
// the wall clock, which would make a seed's draws depend on timing; it is told of no failed
// upload (a failed upload is retried by the partition's next commit instead).
class sim_cloud_io : public cloud_io<disk_ref, faulty_bucket> {
 public:
  using cloud_io::cloud_io;
  static void failed_uploads(std::vector<table_ident>& out) { out.clear(); }
};

struct cloud_traits : memory_traits {
  using io_type = sim_cloud_io;
  static std::unique_ptr<io_type> make_io(const options&) { return nullptr; }
};

// What a world gives the simulation: the store type; the disk (faulty_io over memory_io,
// crashed and recovered by the simulation); reopen(s), which ends the process `s` (if any)
// and makes the next one; start(s); bucket_faults(on); restarting(r), the world's own
// draws before a restart; and which errors a request may fail with under its faults.

// Local mode: the store's backend is the disk itself.
struct local_world {
  using store_type = EloqStore<local_traits>;
  static constexpr const char* label = "simulation";
  static constexpr const char* test_name = "simulation: one seed*";
  std::unique_ptr<fio> disk;

  local_world(std::uint64_t seed, test::rng&, options&) : disk(std::make_unique<fio>(seed)) {}

  void reopen(std::unique_ptr<store_type>& s, const options& o) {
    s.reset();
    s = std::make_unique<store_type>(o, *disk);
  }
  error start(store_type& s) const { return s.start(); }
  void bucket_faults(bool) {}
  void restarting(test::rng&) {}
  [[nodiscard]] static std::string state() { return {}; }
  static bool expected_failure(error e) {
    return e == error::io_fail || e == error::try_again || e == error::out_of_space;
  }
  // (With the faults off a read must succeed.)
  static bool expected_read_failure(error e, bool faults) { return faults && e == error::io_fail; }
  [[nodiscard]] std::string describe() const { return {}; }
  [[nodiscard]] static std::string report() { return {}; }
};

// Cloud mode: the disk is the cache of a cloud_io per process, over one bucket.
struct cloud_world {
  using store_type = EloqStore<cloud_traits>;
  using io_type = cloud_traits::io_type;
  static constexpr const char* label = "cloud simulation";
  static constexpr const char* test_name = "simulation: cloud mode*";
  std::uint64_t seed;
  std::uint64_t disks = 1;  // disks used so far (a lost one is replaced by a new, empty one)
  std::unique_ptr<fio> disk;
  memory_object_store truth;
  std::shared_ptr<faulty_bucket> bucket;
  object_faults faults;
  std::unique_ptr<io_type> cache;  // the running process's
  std::uint64_t term = 1;
  std::uint64_t cache_limit = 0;  // 0: unbounded

  // Totals over the seeds of a run.
  struct totals {
    std::uint64_t disks_lost = 0;
    std::uint64_t new_terms = 0;
    std::uint64_t bounded_caches = 0;
    faulty_bucket::injected injected;
  };
  static totals& sum() {
    static totals t;
    return t;
  }

  cloud_world(std::uint64_t s, test::rng& r, options& o) : seed(s), disk(std::make_unique<fio>(s)) {
    const double probs[] = {0.0, 0.0, 0.01, 0.05};
    faults.fail_before = probs[r.uniform(0, 3)];
    faults.fail_after = probs[r.uniform(0, 3)];
    faults.cut_get = probs[r.uniform(0, 3)];
    faults.short_list = r.chance(0.5) ? 0.3 : 0.0;
    faults.race = probs[r.uniform(0, 3)];
    bucket = std::make_shared<faulty_bucket>(truth, s ^ 0x5bd1e995ULL, faults);
    o.store_path = {"/cache"};  // (memory_io's: a name, not a directory)
    o.cloud_store_path = "bucket/sim";
    o.allow_reuse_local_caches = true;  // (a restart keeps its disk, unless it lost it)
    o.data_append_mode = true;
    o.pages_per_file_shift = r.chance(0.5) ? 3 : 6;
    if (r.chance(0.5)) {
      // Room for each partition's manifest twice and a few data files: commits evict files
      // already uploaded, and reads download them again.
      const std::uint64_t file_bytes = std::uint64_t{o.data_page_size} << o.pages_per_file_shift;
      cache_limit = 6 * std::uint64_t{o.manifest_limit} + r.uniform(4, 24) * file_bytes;
      o.local_space_limit = cache_limit;
      ++sum().bounded_caches;
    }
  }
  ~cloud_world() {
    const faulty_bucket::injected i = bucket->counts();
    faulty_bucket::injected& t = sum().injected;
    t.failed_before += i.failed_before;
    t.failed_after += i.failed_after;
    t.cut_gets += i.cut_gets;
    t.short_lists += i.short_lists;
    t.races += i.races;
  }

  void reopen(std::unique_ptr<store_type>& s, const options& o) {
    s.reset();  // (before its cache goes)
    cache = std::make_unique<io_type>(bucket, "sim", *disk);
    s = std::make_unique<store_type>(o, *cache);
  }
  error start(store_type& s) const { return s.start(term); }
  void bucket_faults(bool on) { bucket->set_faults(on ? faults : object_faults{}); }

  // Before a restart (the process has ended): the node may lose its disk, and the process
  // may come back as a newer term.
  void restarting(test::rng& r) {
    if (r.chance(0.2)) {
      cache.reset();
      ++disks;
      disk = std::make_unique<fio>(seed * 1000003 + disks);
      ++sum().disks_lost;
    }
    if (r.chance(0.3)) {
      ++term;
      ++sum().new_terms;
    }
  }
  [[nodiscard]] std::string state() const {
    return " (disk " + std::to_string(disks) + ", term " + std::to_string(term) + ")";
  }
  static bool expected_failure(error e) {
    return local_world::expected_failure(e) || e == error::timeout || e == error::cloud_error;
  }
  // (With the faults off a read may still find the cache full of files not yet uploaded.)
  static bool expected_read_failure(error e, bool faults) {
    return e == error::out_of_space ||
           (faults && (e == error::io_fail || e == error::timeout || e == error::cloud_error ||
                       e == error::try_again));
  }
  [[nodiscard]] std::string describe() const {
    std::ostringstream os;
    os << ", cloud: bucket faults before " << faults.fail_before << " after " << faults.fail_after
       << " cut " << faults.cut_get << " short list " << faults.short_list << " race "
       << faults.race << ", cache limit " << cache_limit;
    return os.str();
  }
  [[nodiscard]] static std::string report() {
    const totals& t = sum();
    std::ostringstream os;
    os << "; cloud: disks lost " << t.disks_lost << ", new terms " << t.new_terms
       << ", bounded caches " << t.bounded_caches << ", bucket faults injected: failed before "
       << t.injected.failed_before << ", failed after " << t.injected.failed_after
       << ", cut downloads " << t.injected.cut_gets << ", short lists " << t.injected.short_lists
       << ", lost races " << t.injected.races;
    return os.str();
  }
};

// Reads of partition `part` checked against `want`: a full scan and point reads of keys drawn
// from r. A read may fail (with read faults on) but never give wrong data. Returns false with
// `why` on a mismatch.
template <typename World, typename Store>
bool reads_agree(Store& s, std::uint32_t part, const kv_model& want, test::rng& r, std::string& why,
                 bool faults = true) {
  const table_ident t = part_ident(part);
  kv_model got;
  const error scanned = read_all(s, t, got, 1 + r.uniform(0, 60));  // (checks the key order)
  if (scanned == error::ok && got != want) {
    why = "scan: " + diff(got, want);
    return false;
  }
  if (scanned != error::ok && !World::expected_read_failure(scanned, faults)) {
    why = "scan: " + std::string(error_message(scanned));
    return false;
  }
  for (int q = 0; q < 4; ++q) {
    const std::string key = key_of(r.uniform(0, workload::key_space));
    const auto g = s.get(t, key);
    const auto it = want.find(key);
    if (World::expected_read_failure(g.status(), faults)) {
      continue;
    }
    if (it == want.end() ? g.status() != error::not_found : (!g.ok() || g->value != it->second)) {
      why = "get " + key + ": " + std::string(error_message(g.status()));
      return false;
    }
  }
  return true;
}

// ELOQSTORE_SIM_TRACE: every step to stderr.
bool tracing() {
  static const bool on = std::getenv("ELOQSTORE_SIM_TRACE") != nullptr;
  return on;
}
#define SIM_TRACE(what)                                     \
  do {                                                      \
    if (tracing()) {                                        \
      std::ostringstream trace_os;                          \
      trace_os << what;                                     \
      std::fprintf(stderr, "%s\n", trace_os.str().c_str()); \
    }                                                       \
  } while (false)

struct counters {
  std::uint64_t crashes = 0;
  std::uint64_t failed_ops = 0;
  std::uint64_t reads = 0;
  std::uint64_t restarts = 0;
  std::uint64_t replayed = 0;
  std::uint64_t background_failures = 0;  // reported to the log callback (expected here)
};

// One seed: returns false with the failure in `why` (and the step in `step`).
template <typename World>
bool run_seed(std::uint64_t seed, counters& c, std::string& why, std::uint64_t& step,
              std::string& setting) {
  using store_type = typename World::store_type;
  test::rng r(seed * 0x9e3779b1ULL);
  const auto parts = static_cast<std::uint32_t>(r.uniform(1, 3));
  options opts = test::random_options(r);
  opts.num_threads = 1;  // (one shard: the order of I/O calls, so the faults, replay exactly)
  fio::faults f;
  const double probs[] = {0.0, 0.0, 0.01, 0.03};
  f.read_error = probs[r.uniform(0, 3)];
  f.write_error = probs[r.uniform(0, 3)];
  f.write_error_code = r.chance(0.5) ? error::out_of_space : error::io_fail;
  f.sync_error = probs[r.uniform(0, 3)];
  f.short_write = probs[r.uniform(0, 3)];
  f.torn_write = probs[r.uniform(0, 3)];
  const bool crashing = r.chance(0.6);
  World world(seed, r, opts);
  setting = describe(opts) + ", " + std::to_string(parts) + " partitions" + world.describe();
  workload wl(seed, parts);
  std::vector<kv_model> models(parts);
  // Failed operations since the partition's last success: one of them may reappear whole
  // after a restart (its manifest record written, its sync or upload failed).
  std::vector<std::vector<op>> failed(parts);
  std::optional<op> inflight;
  std::unique_ptr<store_type> s;
  auto reopen = [&] {
    world.reopen(s, opts);
    s->set_log_callback(
        [&](log_level, std::string_view m) {
          ++c.background_failures;
          SIM_TRACE("  log: " << m);
        },
        log_level::warning);
  };
  // Every fault on (the disk's as `g`) or off.
  auto set_faults = [&](const fio::faults& g, bool bucket) {
    world.disk->set_faults(g);
    world.bucket_faults(bucket);
  };

  // A request queued behind the work a request leaves on the shard (append mode's file GC
  // and compaction run after the request completes): once it returns, the shard is idle,
  // so the test thread's look at the backend (crashed, faults) does not race the shard.
  auto barrier = [&] { (void)s->get(table_ident{"barrier", 0}, "b"); };

  // Restarts the store (faults as `g`), then matches every partition against its model,
  // the operation in flight at a crash and the failed ones. A start that fails or crashes
  // under the faults is tried once more without them.
  auto restart = [&](const fio::faults& g, bool bucket) {
    if (s) {
      s->stop();
    }
    s.reset();
    world.restarting(r);
    SIM_TRACE("step " << step << ": restart" << world.state());
    for (int attempt = 0;; ++attempt) {
      world.disk->recover();
      if (attempt == 0) {
        set_faults(g, bucket);
      } else {
        set_faults({}, false);
      }
      reopen();
      const error e = world.start(*s);
      if (e == error::ok) {
        barrier();
        if (!world.disk->crashed()) {
          break;
        }
      }
      if (attempt == 1) {
        why = "start without faults: " + std::string(error_message(e));
        return false;
      }
      s->stop();
    }
    set_faults(g, bucket);
    ++c.restarts;
    for (std::uint32_t p = 0; p < parts; ++p) {
      std::vector<kv_model> candidates{models[p]};
      if (inflight && inflight->part == p) {
        kv_model with = models[p];
        apply_op(with, *inflight);
        candidates.push_back(std::move(with));
      }
      for (const op& o : failed[p]) {
        kv_model with = models[p];
        apply_op(with, o);
        candidates.push_back(with);
        if (inflight && inflight->part == p) {
          apply_op(with, *inflight);  // (the in-flight commit's sync made it durable too)
          candidates.push_back(std::move(with));
        }
      }
      set_faults({}, false);  // (the match reads every record: without read faults)
      const int which = test::match_candidates(*s, p, candidates, why);
      set_faults(g, bucket);
      if (which < 0) {
        why = "partition " + std::to_string(p) + " after a restart: " + why;
        return false;
      }
      if (which > 0) {
        c.replayed += candidates[static_cast<std::size_t>(which)] != models[p] ? 1 : 0;
        models[p] = candidates[static_cast<std::size_t>(which)];
      }
      failed[p].clear();
    }
    inflight.reset();
    return true;
  };

  reopen();
  REQUIRE(world.start(*s) == error::ok);
  barrier();
  fio::faults g = f;
  if (crashing) {
    g.crash_after_mutations = r.uniform(0, 400);
  }
  set_faults(g, true);
  bool ok = true;
  const std::uint64_t steps = r.uniform(30, 90);
  for (step = 0; step < steps && ok; ++step) {
    const auto roll = r.uniform(0, 99);
    if (roll < 25) {
      ++c.reads;
      const auto p = static_cast<std::uint32_t>(r.uniform(0, parts - 1));
      ok = world.disk->crashed() || reads_agree<World>(*s, p, models[p], r, why);
      SIM_TRACE("step " << step << ": reads of part " << p << (ok ? "" : " disagree"));
      continue;
    }
    if (roll < 28 || world.disk->crashed()) {
      // A restart: after a crash, or now and then a clean one; the faults go on, with a new
      // crash point half of the time.
      c.crashes += world.disk->crashed() ? 1 : 0;
      g = f;
      if (crashing && r.chance(0.5)) {
        g.crash_after_mutations = r.uniform(0, 400);
      }
      ok = restart(g, true);
      continue;
    }
    const op o = wl.next();
    const error e = run_op(*s, o);
    barrier();
    SIM_TRACE("step " << step << ": " << describe(o) << ": " << error_message(e)
                      << (world.disk->crashed() ? " (crashed)" : ""));
    if (e == error::ok) {
      apply_op(models[o.part], o);
      failed[o.part].clear();
    } else if (world.disk->crashed()) {
      inflight = o;
    } else if (!World::expected_failure(e)) {
      why = describe(o) + " failed with " + std::string(error_message(e));
      ok = false;
    } else {
      ++c.failed_ops;
      failed[o.part].push_back(o);
      // A failed write changes nothing visible (read without faults).
      set_faults({}, false);
      kv_model got;
      const error re = read_all(*s, part_ident(o.part), got);
      if (re == error::ok && got != models[o.part]) {
        why = describe(o) + " failed with " + std::string(error_message(e)) +
              " and changed the partition: " + diff(got, models[o.part]);
        ok = false;
      } else if (re != error::ok && !World::expected_read_failure(re, false)) {
        why = "scan after " + describe(o) + " failed: " + std::string(error_message(re));
        ok = false;
      }
      set_faults(g, true);
    }
  }
  if (ok) {
    // The end: faults off, a restart, every partition exact and verified.
    ok = restart({}, false);
    for (std::uint32_t p = 0; ok && p < parts; ++p) {
      ok = reads_agree<World>(*s, p, models[p], r, why, false);
      std::string problem;
      const error v = s->verify(part_ident(p), problem);
      if (ok && !(v == error::ok || (v == error::not_found && models[p].empty()))) {
        why = "verify: " + std::string(error_message(v)) + " " + problem;
        ok = false;
      }
    }
  }
  if (s) {
    s->stop();
  }
  s.reset();
  return ok;
}

template <typename World>
void simulate(std::uint64_t default_seeds) {
  const char* only = std::getenv("ELOQSTORE_SIM_SEED");
  const char* many = std::getenv("ELOQSTORE_SIM_SEEDS");
  const std::uint64_t first = only != nullptr ? std::strtoull(only, nullptr, 10) : 1;
  const std::uint64_t last =
      only != nullptr ? first
                      : (many != nullptr ? std::strtoull(many, nullptr, 10) : default_seeds);
  counters c;
  const auto started = std::chrono::steady_clock::now();
  const std::clock_t cpu_started = std::clock();
  for (std::uint64_t seed = first; seed <= last; ++seed) {
    std::string why;
    std::string setting;
    std::uint64_t step = 0;
    if (!run_seed<World>(seed, c, why, step, setting)) {
      FAIL_CHECK("seed " << seed << " failed at step " << step << " (" << setting << "): " << why
                         << "\n  replay: ELOQSTORE_SIM_SEED=" << seed << " crash_tests -tc='"
                         << std::string(World::test_name) << "'");
      break;
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const double cpu = static_cast<double>(std::clock() - cpu_started) / CLOCKS_PER_SEC;
  MESSAGE(std::string(World::label)
          << ": seeds " << first << ".." << last << ", restarts " << c.restarts
          << " (after crashes " << c.crashes << "), failed writes " << c.failed_ops << " ("
          << c.replayed << " reappeared whole after a restart), checked reads " << c.reads
          << ", background failures logged " << c.background_failures << World::report() << "; "
          << secs << " s, " << static_cast<double>(last - first + 1) / (cpu / 60)
          << " seeds per CPU-minute");
}

}  // namespace

TEST_CASE("simulation: one seed drives operations, faults, crashes and restarts") {
  simulate<local_world>(local_seeds);
}

TEST_CASE("simulation: cloud mode, with bucket faults, lost disks and newer terms") {
  simulate<cloud_world>(cloud_seeds);
}
