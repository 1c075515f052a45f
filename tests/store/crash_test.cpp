// Crash consistency and fault tolerance of EloqStore<Traits>:
// * seeded random workloads over faulty_io<memory_io> (run-to-completion shards) and over
//   faulty_io<uring_io> (fiber tasks, the default traits' I/O) crashed after a random number of
//   mutations: after recovery every partition holds exactly its acknowledged batches (plus,
//   at most, the whole batch that was in flight), the trees verify, and the store keeps
//   working across further writes and restarts;
// * injected write/sync errors and short/torn writes without a crash: a failed write changes
//   nothing visible, an acknowledged one is visible and survives restarts;
// * corruption of data, index and overflow pages and of manifest records: reported as
//   error::corrupted (or rolled back to the previous record), never silently wrong data;
// * scale: thousands of partitions over two shards, and a deep tree shrunk and regrown.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/detail/manifest/replay.hpp>
#include <eloqstore/eloqstore.hpp>
#include <eloqstore/io/faulty.hpp>

#include "support/crash_checks.hpp"
#include "support/page_store.hpp"
#include "support/store_fixture.hpp"
#include "support/workload.hpp"

using namespace eloqstore;

namespace {

// Debug and sanitizer builds are an order of magnitude slower: fewer iterations there.
using test::slow_build;
// (The simulation, simulation_test.cpp, draws crashes and faults together over thousands of
// seeds: the crash and fault cases run fewer of their own.)
constexpr std::uint64_t crash_seeds = slow_build ? 100 : 400;
constexpr std::uint64_t fault_seeds = slow_build ? 60 : 200;
constexpr std::uint64_t concurrent_seeds = slow_build ? 40 : 200;
constexpr std::uint32_t many_partitions = 2000;
constexpr std::size_t page_bytes = 4096;

using test::apply_op;
using test::check_exact;
using test::check_verify;
using test::describe;
using test::diff;
using test::key_of;
using test::kv_model;
using test::make_request;
using test::make_value;
using test::match_candidates;
using test::op;
using test::op_kind;
using test::part_ident;
using test::random_options;
using test::read_all;
using test::run_op;
using test::workload;
using fio = faulty_io<memory_io>;

struct faulty_traits : memory_traits {
  using io_type = fio;
  static std::unique_ptr<io_type> make_io(const options&) { return std::make_unique<io_type>(1); }
};
using faulty_store = EloqStore<faulty_traits>;
using memory_store = EloqStore<memory_traits>;

// The default traits' I/O path under faults: uring_io (files in a temporary directory, O_DIRECT
// where its file system has it, asynchronous streamed page writes) with fiber tasks.
struct faulty_uring_traits : default_traits {
  using io_type = faulty_io<uring_io>;
  static std::unique_ptr<io_type> make_io(const options& o) {
    return std::make_unique<io_type>(1, o.store_path, uring_config(o));
  }
};
static_assert(async_page_writes<faulty_io<uring_io>>);
static_assert(batched_reads<faulty_io<uring_io>>);
static_assert(!batched_io<fio>);

// The backends the crash and fault tests run over. make_io(seed, opts) gives a fresh, empty
// backend; store_options(opts) points the options at it. memory_io's crash() drops what was
// not synced (a power loss); on real files what reached them stays (a process crash: a
// missing sync cannot show there, and pages are torn only by whole pages), so the uring
// cases see more of the in-flight operations' writes. The uring cases also draw bulk batches
// (streamed writes) and run a tenth of the seeds (real syncs). With fiber tasks the order of
// calls, and so the faults drawn, follows I/O completion: a uring seed may not replay exactly.
struct memory_env {
  using io_type = fio;
  using store_type = faulty_store;
  static constexpr std::uint64_t seed_divisor = 1;
  static constexpr double bulk_chance = 0;
  // Every page write is a mutation.
  static constexpr std::uint64_t concurrent_crash_max = 300;
  std::unique_ptr<io_type> make_io(std::uint64_t seed, const options&) {
    return std::make_unique<io_type>(seed);
  }
  options store_options(options o) const { return o; }
};

struct uring_env {
  using io_type = faulty_io<uring_io>;
  using store_type = EloqStore<faulty_uring_traits>;
  static constexpr std::uint64_t seed_divisor = 10;
  static constexpr double bulk_chance = 0.05;
  // A batch of page writes is one mutation: the concurrent case makes some 140-220.
  static constexpr std::uint64_t concurrent_crash_max = 120;
  std::string dir = test::fresh_temp_dir("crash");
  uring_env() = default;
  uring_env(const uring_env&) = delete;
  uring_env& operator=(const uring_env&) = delete;
  ~uring_env() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::unique_ptr<io_type> make_io(std::uint64_t seed, const options& o) {
    std::filesystem::remove_all(dir);
    return std::make_unique<io_type>(seed, std::vector<std::string>{dir},
                                     default_traits::uring_config(o));
  }
  options store_options(options o) const {
    o.store_path = {dir};
    o.coroutine_stack_size = 1024 * 1024;
    return o;
  }
};

// memory_io that counts page reads, to measure the height of a tree from a cold read.
class counting_io {
 public:
  memory_io inner;
  std::atomic<std::uint64_t> reads{0};
  std::atomic<std::uint64_t> file_reads{0};  // read_file: manifests

  error open() { return inner.open(); }
  void close() { inner.close(); }
  error read(const table_ident& t, std::string_view name, std::uint64_t offset,
             std::span<char> buf) {
    reads.fetch_add(1, std::memory_order_relaxed);
    return inner.read(t, name, offset, buf);
  }
  error write(const table_ident& t, std::string_view name, std::uint64_t offset,
              std::span<const char> data) {
    return inner.write(t, name, offset, data);
  }
  error sync(const table_ident& t, std::string_view name) { return inner.sync(t, name); }
  error sync_dir(const table_ident& t) { return inner.sync_dir(t); }
  error read_file(const table_ident& t, std::string_view name, std::string& out) {
    file_reads.fetch_add(1, std::memory_order_relaxed);
    return inner.read_file(t, name, out);
  }
  error write_file_atomic(const table_ident& t, std::string_view name, std::span<const char> data) {
    return inner.write_file_atomic(t, name, data);
  }
  error remove(const table_ident& t, std::string_view name) { return inner.remove(t, name); }
  error list(const table_ident& t, std::vector<std::string>& names) { return inner.list(t, names); }
  error list_partitions(std::vector<table_ident>& tables) { return inner.list_partitions(tables); }
};
static_assert(io_backend<counting_io>);

struct counting_traits : memory_traits {
  using io_type = counting_io;
  static std::unique_ptr<io_type> make_io(const options&) { return std::make_unique<io_type>(); }
};
using counting_store = EloqStore<counting_traits>;

}  // namespace

// ---- 1. crash consistency ------------------------------------------------------------------

TEST_CASE_TEMPLATE(
    "crash: after a crash at any mutation the store recovers exactly the acknowledged batches", Env,
    memory_env, uring_env) {
  using io_type = typename Env::io_type;
  using store_type = typename Env::store_type;
  Env env;
  const std::uint64_t seeds = crash_seeds / Env::seed_divisor;
  std::uint64_t crashes = 0;
  std::uint64_t inflight_survived = 0;
  // ELOQSTORE_CRASH_SEED=N runs seed N alone (to reproduce a failure).
  const char* only = std::getenv("ELOQSTORE_CRASH_SEED");
  const std::uint64_t first_seed = only != nullptr ? std::strtoull(only, nullptr, 10) : 1;
  for (std::uint64_t seed = first_seed; seed <= (only != nullptr ? first_seed : seeds); ++seed) {
    CAPTURE(seed);
    test::rng r(seed * 7919);
    const auto parts = static_cast<std::uint32_t>(r.uniform(1, 3));
    const options opts = env.store_options(random_options(r));
    CAPTURE(parts);
    INFO("options: " << describe(opts));
    workload wl(seed, parts, Env::bulk_chance);
    std::vector<op> ops;
    const std::size_t op_count = r.uniform(8, 30);
    for (std::size_t i = 0; i < op_count; ++i) {
      ops.push_back(wl.next());
    }

    // A fault-free run of the same workload counts its mutations.
    std::uint64_t total_mutations = 0;
    {
      const auto counting_io = env.make_io(seed, opts);
      store_type s(opts, *counting_io);
      REQUIRE(s.start() == error::ok);
      for (const op& o : ops) {
        INFO(describe(o));
        REQUIRE(run_op(s, o) == error::ok);
      }
      total_mutations = counting_io->mutations();
      s.stop();
    }

    const auto io_owner = env.make_io(seed + 1000003, opts);
    io_type& io = *io_owner;
    std::vector<kv_model> models(parts);
    // Two crash rounds: the first at a point of the known workload, the second at a random
    // point of a continued workload after the first recovery.
    for (int round = 0; round < 2; ++round) {
      CAPTURE(round);
      std::uint64_t crash_after = 0;
      std::vector<op> round_ops;
      if (round == 0) {
        crash_after = r.uniform(0, total_mutations);
        round_ops = ops;
      } else {
        crash_after = r.uniform(0, 120);
        const std::size_t n = r.uniform(5, 25);
        for (std::size_t i = 0; i < n; ++i) {
          round_ops.push_back(wl.next());
        }
      }
      CAPTURE(crash_after);
      typename io_type::faults f;
      f.crash_after_mutations = crash_after;
      io.set_faults(f);

      std::optional<op> inflight;
      std::size_t acked = 0;
      {
        store_type s(opts, io);
        REQUIRE(s.start() == error::ok);
        for (const op& o : round_ops) {
          const error e = run_op(s, o);
          if (e == error::ok) {
            apply_op(models[o.part], o);
            ++acked;
            continue;
          }
          INFO(describe(o) << " failed with " << error_message(e));
          CHECK(io.crashed());
          CHECK(e == error::io_fail);
          inflight = o;
          break;
        }
        if (inflight) {
          ++crashes;
          // The backend stays down: a write that must touch the disk fails too.
          CHECK(s.put(part_ident(0), "zz-after-crash", "x", 1u << 30) != error::ok);
        }
        s.stop();
      }
      CAPTURE(acked);
      INFO("in flight: " << (inflight ? describe(*inflight) : std::string("none")));

      io.recover();
      io.set_faults({});
      {
        store_type s(opts, io);
        REQUIRE(s.start() == error::ok);
        for (std::uint32_t p = 0; p < parts; ++p) {
          CAPTURE(p);
          std::vector<kv_model> candidates{models[p]};
          if (inflight && inflight->part == p) {
            kv_model with = models[p];
            apply_op(with, *inflight);
            candidates.push_back(std::move(with));
          }
          std::string why;
          const int which = match_candidates(s, p, candidates, why);
          INFO("mismatch: " << why);
          CHECK(which >= 0);
          if (which == 1) {
            models[p] = candidates[1];
            ++inflight_survived;
          }
          check_verify(s, part_ident(p), models[p]);
        }
        // The recovered store still works: new writes, reads, and a restart.
        for (int i = 0; i < 6; ++i) {
          const op o = wl.next();
          INFO("after recovery: " << describe(o));
          REQUIRE(run_op(s, o) == error::ok);
          apply_op(models[o.part], o);
        }
        for (std::uint32_t p = 0; p < parts; ++p) {
          check_exact(s, p, models[p], r);
        }
        s.stop();
        REQUIRE(s.start() == error::ok);
        for (std::uint32_t p = 0; p < parts; ++p) {
          check_exact(s, p, models[p], r);
        }
        s.stop();
      }
    }
  }
  MESSAGE("crashes: " << crashes << ", in-flight batches that survived: " << inflight_survived);
  CHECK((only != nullptr || crashes > seeds / 2));
}

TEST_CASE_TEMPLATE("crash: concurrent writers on two shards crash together and recover", Env,
                   memory_env, uring_env) {
  using io_type = typename Env::io_type;
  using store_type = typename Env::store_type;
  Env env;
  const std::uint64_t seeds = concurrent_seeds / Env::seed_divisor;
  std::uint64_t crashes = 0;
  for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
    CAPTURE(seed);
    test::rng r(seed * 31337);
    constexpr std::uint32_t parts = 4;
    options opts = env.store_options(random_options(r));
    opts.num_threads = 2;
    INFO("options: " << describe(opts));
    workload wl(seed + 555, parts, Env::bulk_chance);
    const auto io_owner = env.make_io(seed, opts);
    io_type& io = *io_owner;
    typename io_type::faults f;
    f.crash_after_mutations = r.uniform(0, Env::concurrent_crash_max);
    CAPTURE(f.crash_after_mutations);
    io.set_faults(f);
    std::vector<kv_model> models(parts);
    std::vector<std::optional<op>> inflight(parts);
    {
      store_type s(opts, io);
      REQUIRE(s.start() == error::ok);
      bool failed = false;
      for (int step = 0; step < 10 && !failed; ++step) {
        // One operation per partition at once; the two shards run them in parallel.
        std::vector<op> step_ops;
        std::vector<std::unique_ptr<request>> reqs;
        for (std::uint32_t p = 0; p < parts; ++p) {
          op o = wl.next();
          o.part = p;
          reqs.push_back(make_request(o));
          step_ops.push_back(std::move(o));
          REQUIRE(s.exec_async(*reqs.back()));
        }
        for (std::uint32_t p = 0; p < parts; ++p) {
          reqs[p]->wait();
          const error e = reqs[p]->status();
          if (e == error::ok) {
            apply_op(models[p], step_ops[p]);
          } else {
            INFO(describe(step_ops[p]) << " failed with " << error_message(e));
            CHECK(io.crashed());
            inflight[p] = step_ops[p];
            failed = true;
          }
        }
      }
      crashes += failed ? 1 : 0;
      s.stop();
    }
    io.recover();
    io.set_faults({});
    store_type s(opts, io);
    REQUIRE(s.start() == error::ok);
    for (std::uint32_t p = 0; p < parts; ++p) {
      CAPTURE(p);
      std::vector<kv_model> candidates{models[p]};
      if (inflight[p]) {
        kv_model with = models[p];
        apply_op(with, *inflight[p]);
        candidates.push_back(std::move(with));
      }
      std::string why;
      const int which = match_candidates(s, p, candidates, why);
      INFO("in flight: " << (inflight[p] ? describe(*inflight[p]) : std::string("none")));
      INFO("mismatch: " << why);
      CHECK(which >= 0);
      if (which == 1) {
        models[p] = candidates[1];
      }
      check_verify(s, part_ident(p), models[p]);
    }
    for (int i = 0; i < 8; ++i) {
      const op o = wl.next();
      INFO("after recovery: " << describe(o));
      REQUIRE(run_op(s, o) == error::ok);
      apply_op(models[o.part], o);
    }
    s.stop();
    REQUIRE(s.start() == error::ok);
    for (std::uint32_t p = 0; p < parts; ++p) {
      check_exact(s, p, models[p], r);
    }
  }
  MESSAGE("concurrent crashes: " << crashes);
  CHECK(crashes > seeds / 2);
}

// ---- 2. injected errors without a crash ----------------------------------------------------

TEST_CASE_TEMPLATE("crash: injected write and sync errors never change visible state", Env,
                   memory_env, uring_env) {
  using io_type = typename Env::io_type;
  using store_type = typename Env::store_type;
  Env env;
  const std::uint64_t seeds = fault_seeds / Env::seed_divisor;
  std::uint64_t failures = 0;
  std::uint64_t indeterminate_seen = 0;
  std::uint64_t deferred = 0;
  for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
    CAPTURE(seed);
    test::rng r(seed * 104729);
    const auto parts = static_cast<std::uint32_t>(r.uniform(1, 3));
    const options opts = env.store_options(random_options(r));
    CAPTURE(parts);
    INFO("options: " << describe(opts));
    workload wl(seed + 77, parts, Env::bulk_chance);
    const auto io_owner = env.make_io(seed, opts);
    io_type& io = *io_owner;
    typename io_type::faults f;
    const double probs[] = {0.0, 0.03, 0.08};
    f.write_error = probs[r.uniform(0, 2)];
    f.sync_error = probs[r.uniform(0, 2)];
    f.torn_write = probs[r.uniform(0, 2)];
    f.short_write = probs[r.uniform(0, 2)];
    if (f.write_error + f.sync_error + f.torn_write + f.short_write == 0) {
      f.sync_error = 0.05;
    }
    CAPTURE(f.write_error);
    CAPTURE(f.sync_error);
    CAPTURE(f.torn_write);
    CAPTURE(f.short_write);

    std::vector<kv_model> models(parts);
    // Failed operations since the partition's last successful write: each may have reached
    // the manifest without its sync, so one of them may reappear after a restart.
    std::vector<std::vector<op>> failed(parts);
    auto s = std::make_unique<store_type>(opts, io);
    REQUIRE(s->start() == error::ok);
    io.set_faults(f);
    for (int i = 0; i < 40; ++i) {
      const op o = wl.next();
      CAPTURE(i);
      INFO(describe(o));
      const error e = run_op(*s, o);
      if (e == error::ok) {
        apply_op(models[o.part], o);
        failed[o.part].clear();
      } else {
        ++failures;
        CHECK((e == error::io_fail || e == error::try_again));
        failed[o.part].push_back(o);
      }
      // Reads are not faulted: the partition shows exactly the acknowledged state.
      kv_model got;
      CHECK(read_all(*s, part_ident(o.part), got) == error::ok);
      const std::string d = diff(got, models[o.part]);
      INFO("after " << error_message(e) << ": " << d);
      CHECK(d.empty());
      if (i % 5 == 4) {
        check_verify(*s, part_ident(o.part), models[o.part]);
      }
    }
    const int mode = static_cast<int>(seed % 3);
    CAPTURE(mode);
    if (mode == 1) {
      // The faults go on and the backend crashes a few mutations later.
      typename io_type::faults fc = f;
      fc.crash_after_mutations = io.mutations() + r.uniform(0, 40);
      io.set_faults(fc);
      for (int i = 0; i < 30 && !io.crashed(); ++i) {
        const op o = wl.next();
        const error e = run_op(*s, o);
        if (e == error::ok) {
          apply_op(models[o.part], o);
          failed[o.part].clear();
        } else {
          failed[o.part].push_back(o);
        }
      }
      s->stop();
      io.recover();
    }
    io.set_faults({});

    if (mode != 2) {
      // Restart at once (mode 0) or after the crash (mode 1): a failed write whose manifest
      // record was written but not synced may be replayed (after a crash only where the
      // backend keeps unsynced writes: real files), but only whole, and only one of them.
      s->stop();
      s = std::make_unique<store_type>(opts, io);
      REQUIRE(s->start() == error::ok);
      for (std::uint32_t p = 0; p < parts; ++p) {
        CAPTURE(p);
        std::vector<kv_model> candidates{models[p]};
        for (const op& o : failed[p]) {
          kv_model with = models[p];
          apply_op(with, o);
          candidates.push_back(std::move(with));
        }
        std::string why;
        const int which = match_candidates(*s, p, candidates, why);
        INFO("mismatch: " << why << " (" << failed[p].size() << " failed ops since the last ok)");
        CHECK(which >= 0);
        if (which > 0 && candidates[static_cast<std::size_t>(which)] != models[p]) {
          ++indeterminate_seen;
          models[p] = candidates[static_cast<std::size_t>(which)];
        }
        check_verify(*s, part_ident(p), models[p]);
      }
    }

    // Errors stopped: a real write on every partition succeeds (a forced manifest snapshot
    // after a failed manifest write included), then more work, then a restart.
    for (std::uint32_t p = 0; p < parts; ++p) {
      op o;
      o.part = p;
      o.batch.push_back(write_entry{"fresh-" + std::to_string(seed), make_value(r, 50), 1u << 30,
                                    write_op::upsert, 0});
      INFO("first write after the faults stopped, part " << p);
      REQUIRE(run_op(*s, o) == error::ok);
      apply_op(models[p], o);
      check_exact(*s, p, models[p], r);
    }
    for (int i = 0; i < 10; ++i) {
      const op o = wl.next();
      INFO("after the faults: " << describe(o));
      REQUIRE(run_op(*s, o) == error::ok);
      apply_op(models[o.part], o);
    }
    for (std::uint32_t p = 0; p < parts; ++p) {
      check_exact(*s, p, models[p], r);
    }
    s->stop();
    s = std::make_unique<store_type>(opts, io);
    REQUIRE(s->start() == error::ok);
    for (std::uint32_t p = 0; p < parts; ++p) {
      check_exact(*s, p, models[p], r);
    }
    s->stop();
    deferred += io.deferred_faults();
  }
  MESSAGE("failed writes: " << failures << ", failed writes replayed after a restart: "
                            << indeterminate_seen << ", streamed batches torn: " << deferred);
  CHECK(failures > 0);
  if constexpr (async_page_writes<io_type>) {
    // Streamed batches were torn (the model checks above are what catch a swallowed error).
    CHECK(deferred > 0);
  }
}

// ---- 3. corruption -------------------------------------------------------------------------

TEST_CASE("crash: a corrupted data, index or overflow page is reported, never returned wrong") {
  memory_io io;
  options opts;
  opts.num_threads = 1;
  const table_ident t{"corrupt", 0};
  test::rng r(99);
  kv_model m;
  {
    memory_store s(opts, io);
    REQUIRE(s.start() == error::ok);
    for (int round = 0; round < 4; ++round) {
      std::vector<write_entry> b;
      for (std::uint64_t i = 0; i < 400; i += (round == 0 ? 1 : 3)) {
        const std::size_t n = i % 53 == 7 ? r.uniform(6000, 20000) : r.uniform(20, 200);
        b.push_back(write_entry{key_of(i), make_value(r, n), static_cast<std::uint64_t>(round),
                                write_op::upsert, 0});
        m[b.back().key] = b.back().value;
      }
      REQUIRE(s.write(t, b) == error::ok);
    }
    s.stop();
  }
  std::string file;
  REQUIRE(io.open() == error::ok);
  REQUIRE(io.read_file(t, "data_0_0", file) == error::ok);
  io.close();
  const std::size_t pages = file.size() / page_bytes;
  CAPTURE(pages);
  REQUIRE(pages > 10);

  std::map<int, int> detected;  // page type -> pages whose corruption was reported
  std::map<int, int> tried;
  std::ostringstream verify_missed;  // damaged pages the reads saw but verify passed
  for (std::size_t pg = 0; pg < pages; ++pg) {
    const auto type = static_cast<int>(static_cast<unsigned char>(file[pg * page_bytes + 8]));
    if (type > 3) {
      continue;
    }
    const std::uint64_t offset = pg * page_bytes + 100;
    CAPTURE(pg);
    CAPTURE(type);
    ++tried[type];
    REQUIRE(io.corrupt_byte(t, "data_0_0", offset, 0x5a));
    {
      memory_store s(opts, io);
      REQUIRE(s.start() == error::ok);
      std::string problem;
      const error vr = s.verify(t, problem);
      CHECK((vr == error::ok || vr == error::corrupted));
      kv_model got;
      const error e = read_all(s, t, got);
      CHECK((e == error::ok || e == error::corrupted));
      // Whatever a scan returns must be true.
      for (const auto& [k, v] : got) {
        const auto it = m.find(k);
        INFO("scan returned " << k);
        REQUIRE(it != m.end());
        CHECK(it->second == v);
      }
      if (e == error::ok) {
        CHECK(got.size() == m.size());
      }
      bool get_failed = false;
      for (const auto& [k, v] : m) {
        const auto g = s.get(t, k);
        if (g.ok()) {
          CHECK(g->value == v);
        } else {
          INFO("get " << k);
          CHECK(g.status() == error::corrupted);
          get_failed = true;
        }
      }
      // A page the tree reaches is seen damaged by some read; one it does not reach (a stale
      // copy) changes nothing. verify checks every reachable page's checksum, so it reports
      // exactly the pages the reads see.
      const bool reads_see = get_failed || e == error::corrupted;
      if (reads_see && (type == 2 || type == 3)) {
        // A full scan reads every data page and every value: it must see it, and so must
        // the point read of some key on it.
        CHECK(e == error::corrupted);
        CHECK(get_failed);
      }
      if (reads_see) {
        ++detected[type];
      } else {
        CHECK(e == error::ok);
        CHECK(diff(got, m).empty());
      }
      INFO("verify: " << problem);
      CHECK_FALSE((vr == error::corrupted && !reads_see));
      if (reads_see && vr != error::corrupted) {
        verify_missed << " page " << pg << " (type " << type << ")";
      }
      s.stop();
    }
    REQUIRE(io.corrupt_byte(t, "data_0_0", offset, 0x5a));  // repair
  }
  MESSAGE("pages tried by type (0 index, 1 leaf index, 2 data, 3 overflow): "
          << tried[0] << "/" << tried[1] << "/" << tried[2] << "/" << tried[3] << ", detected: "
          << detected[0] << "/" << detected[1] << "/" << detected[2] << "/" << detected[3]);
  CHECK(detected[2] > 0);
  CHECK(detected[3] > 0);
  // tree_verifier::overflow() reads only the last page of each overflow pointer group, so
  // damage to the other pages of a chain passes verify although get/scan report it.
  INFO("verify returned ok with damaged pages:" << verify_missed.str());
  CHECK(verify_missed.str().empty());
  CHECK(detected[0] + detected[1] > 0);
  // Repaired, everything is back.
  memory_store s(opts, io);
  REQUIRE(s.start() == error::ok);
  kv_model got;
  CHECK(read_all(s, t, got) == error::ok);
  CHECK(diff(got, m).empty());
  check_verify(s, t, m);
}

namespace {

// Writes `batches` small batches to partition 0 of "manifest" (the first a snapshot, the rest
// appended logs) and one batch to partition 1. Returns the model after each batch and the
// manifest offset where each batch's record starts.
struct manifest_history {
  std::vector<kv_model> states;     // states[i] = after batch i
  std::vector<std::size_t> starts;  // record start of batch i
  std::size_t size = 0;             // manifest bytes at the end
  kv_model other;                   // partition 1
};

// Where the manifest's records end (its file also holds end-marker blocks written ahead of
// the appends, where replay stops).
std::size_t manifest_records_end(memory_io& io, const table_ident& t) {
  std::string bytes;
  const error re = io.read_file(t, "manifest_0", bytes);
  REQUIRE((re == error::ok || re == error::not_found));
  if (re == error::not_found) {
    return 0;
  }
  detail::replay_result r;
  REQUIRE(detail::replay_manifest(bytes, r) == error::ok);
  return r.append_offset;
}

manifest_history write_manifest_history(memory_io& io, int batches) {
  options opts;
  opts.num_threads = 1;
  opts.manifest_limit = 8 << 20;
  manifest_history h;
  const table_ident t{"manifest", 0};
  memory_store s(opts, io);
  REQUIRE(s.start() == error::ok);
  kv_model m;
  for (int i = 0; i < batches; ++i) {
    h.starts.push_back(manifest_records_end(io, t));
    std::vector<write_entry> b;
    for (int j = 0; j < 5; ++j) {
      b.push_back(write_entry{key_of(static_cast<std::uint64_t>(i * 5 + j)),
                              "v" + std::to_string(i) + "-" + std::to_string(j),
                              static_cast<std::uint64_t>(i), write_op::upsert, 0});
      m[b.back().key] = b.back().value;
    }
    if (i > 0) {
      b.push_back(write_entry{key_of(static_cast<std::uint64_t>(i * 5 - 5)),
                              {},
                              static_cast<std::uint64_t>(i),
                              write_op::erase,
                              0});
      m.erase(b.back().key);
    }
    REQUIRE(s.write(t, b) == error::ok);
    // Even the first write appends: a partition starts with an empty snapshot.
    CHECK_FALSE(s.last_write_stats().manifest_snapshot);
    h.states.push_back(m);
  }
  REQUIRE(s.put({"manifest", 1}, "other", "value") == error::ok);
  h.other["other"] = "value";
  h.size = manifest_records_end(io, t);
  s.stop();
  return h;
}

template <typename Store>
kv_model scan_ok(Store& s, const table_ident& t) {
  kv_model got;
  CHECK(read_all(s, t, got) == error::ok);
  return got;
}

}  // namespace

TEST_CASE("crash: a damaged last manifest record falls back to the previous state") {
  constexpr int batches = 6;
  const table_ident t{"manifest", 0};
  // Offsets inside the last record: checksum, root, payload length, payload.
  for (const std::size_t rel :
       {std::size_t{0}, std::size_t{10}, std::size_t{17}, std::size_t{24}}) {
    CAPTURE(rel);
    memory_io io;
    const manifest_history h = write_manifest_history(io, batches);
    const std::size_t last = h.starts.back();
    REQUIRE(last % 4096 == 0);
    REQUIRE(last > 0);
    REQUIRE(h.size > last + rel);
    REQUIRE(io.corrupt_byte(t, "manifest_0", last + rel, 0x01));
    options opts;
    opts.num_threads = 1;
    opts.manifest_limit = 8 << 20;
    kv_model want = h.states[batches - 2];
    memory_store s(opts, io);
    REQUIRE(s.start() == error::ok);
    std::string d = diff(scan_ok(s, t), want);
    INFO("after restart: " << d);
    CHECK(d.empty());
    check_verify(s, t, want);
    CHECK(diff(scan_ok(s, {"manifest", 1}), h.other).empty());
    // New writes append over the damaged tail and survive a restart.
    for (int i = 0; i < 3; ++i) {
      const std::string k = "after-" + std::to_string(i);
      REQUIRE(s.put(t, k, "x" + std::to_string(i), 100) == error::ok);
      want[k] = "x" + std::to_string(i);
    }
    CHECK(diff(scan_ok(s, t), want).empty());
    s.stop();
    REQUIRE(s.start() == error::ok);
    d = diff(scan_ok(s, t), want);
    INFO("after a second restart: " << d);
    CHECK(d.empty());
    check_verify(s, t, want);
  }
}

TEST_CASE("crash: a manifest cut short in its last record loses only that record") {
  constexpr int batches = 6;
  const table_ident t{"manifest", 0};
  options opts;
  opts.num_threads = 1;
  opts.manifest_limit = 8 << 20;
  // Cut points relative to the last record: inside the header, inside the payload (both
  // torn: the previous state), right after the payload and inside the padding (the record
  // is whole: the last state).
  for (int variant = 0; variant < 4; ++variant) {
    CAPTURE(variant);
    memory_io io;
    const manifest_history h = write_manifest_history(io, batches);
    const std::size_t last = h.starts.back();
    REQUIRE(io.open() == error::ok);
    std::string bytes;
    REQUIRE(io.read_file(t, "manifest_0", bytes) == error::ok);
    REQUIRE(bytes.size() >= last + 20);
    const std::size_t payload =
        static_cast<unsigned char>(bytes[last + 16]) |
        (static_cast<std::size_t>(static_cast<unsigned char>(bytes[last + 17])) << 8);
    CAPTURE(payload);
    const std::size_t cuts[] = {last + 10, last + 20 + payload / 2, last + 20 + payload,
                                last + 20 + payload + 100};
    const std::size_t cut = cuts[variant];
    REQUIRE(cut < bytes.size());
    REQUIRE(io.write_file_atomic(t, "manifest_0", std::span<const char>(bytes.data(), cut)) ==
            error::ok);
    io.close();
    kv_model want = variant < 2 ? h.states[batches - 2] : h.states[batches - 1];
    memory_store s(opts, io);
    REQUIRE(s.start() == error::ok);
    std::string d = diff(scan_ok(s, t), want);
    INFO("after restart: " << d);
    CHECK(d.empty());
    check_verify(s, t, want);
    for (int i = 0; i < 3; ++i) {
      const std::string k = "after-" + std::to_string(i);
      REQUIRE(s.put(t, k, "y" + std::to_string(i), 100) == error::ok);
      want[k] = "y" + std::to_string(i);
    }
    s.stop();
    REQUIRE(s.start() == error::ok);
    d = diff(scan_ok(s, t), want);
    INFO("after appending and a second restart: " << d);
    CHECK(d.empty());
    check_verify(s, t, want);
  }
}

TEST_CASE("crash: manifest appends overwrite the end-marker blocks written ahead of them") {
  // An append past the manifest file's end writes end-marker blocks ahead (as many as the
  // records hold, up to 256 KiB), so the appends that follow only overwrite (their fdatasync
  // records no new file size). The records end where they would without it; replay stops at
  // the markers, and the next append after a restart overwrites them too.
  memory_io io;
  options opts;
  opts.num_threads = 1;
  opts.manifest_limit = 1 << 20;
  const table_ident t{"ahead", 0};
  const auto file_size = [&] {
    std::string bytes;
    REQUIRE(io.read_file(t, "manifest_0", bytes) == error::ok);
    return bytes.size();
  };
  // Past the records: end-marker blocks only (record.hpp), as the writer fills them.
  const auto markers_after = [&](std::size_t from) {
    std::string bytes;
    REQUIRE(io.read_file(t, "manifest_0", bytes) == error::ok);
    std::string markers;
    eloqstore::detail::fill_manifest_end_markers(markers, bytes.size() - from, from, bytes.size());
    return bytes.compare(from, std::string::npos, markers) == 0;
  };
  std::set<std::size_t> sizes;
  std::size_t records = 0;
  {
    memory_store s(opts, io);
    REQUIRE(s.start() == error::ok);
    for (int i = 0; i < 40; ++i) {
      REQUIRE(s.put(t, key_of(static_cast<std::uint64_t>(i)), "v" + std::to_string(i), 1) ==
              error::ok);
      const std::size_t end = manifest_records_end(io, t);
      CAPTURE(i);
      if (i > 0) {
        CHECK(end == records + 4096);  // one padded log record per small commit
      }
      records = end;
      CHECK(file_size() >= records);
      CHECK(file_size() <= 2 * records + 4096);  // ahead by at most what the records hold
      CHECK(markers_after(records));
      sizes.insert(file_size());
    }
    s.stop();
  }
  // The partition's empty snapshot, then write-aheads that double: the 40 appends grew the
  // file 4 times (to 16, 40, 88 and 184 KiB).
  CHECK(sizes.size() == 4);
  CHECK(*sizes.rbegin() > records);
  REQUIRE(io.open() == error::ok);
  const std::size_t size_before = file_size();
  io.close();
  memory_store s(opts, io);
  REQUIRE(s.start() == error::ok);
  for (int i = 0; i < 40; ++i) {
    const auto got = s.get(t, key_of(static_cast<std::uint64_t>(i)));
    REQUIRE(got.ok());
    CHECK(got->value == "v" + std::to_string(i));
  }
  REQUIRE(s.put(t, "after", "restart", 2) == error::ok);
  CHECK(manifest_records_end(io, t) == records + 4096);
  CHECK(file_size() == size_before);
  CHECK(markers_after(records + 4096));
  // Appends stop growing the file at the manifest limit; the next record past it is a new
  // snapshot.
  for (int i = 0; i < 300; ++i) {
    REQUIRE(s.put(t, "k" + std::to_string(i), "v", 3) == error::ok);
    CHECK(file_size() <= opts.manifest_limit);
  }
  s.stop();
  REQUIRE(s.start() == error::ok);
  const auto got = s.get(t, "k299");
  REQUIRE(got.ok());
  CHECK(got->value == "v");
  s.stop();
}

TEST_CASE("crash: damage past the manifest's records is a torn tail, then overwritten") {
  // What a crash can leave after the records of a manifest with blocks written ahead: a torn
  // record (garbage) in the first block past them, or the file cut short inside the markers.
  // Either way a restart keeps every acknowledged write and appends where the records end.
  for (int variant = 0; variant < 2; ++variant) {
    CAPTURE(variant);
    memory_io io;
    options opts;
    opts.num_threads = 1;
    opts.manifest_limit = 1 << 20;
    const table_ident t{"tail", 0};
    kv_model want;
    {
      memory_store s(opts, io);
      REQUIRE(s.start() == error::ok);
      for (int i = 0; i < 12; ++i) {
        const std::string k = key_of(static_cast<std::uint64_t>(i));
        REQUIRE(s.put(t, k, "v" + std::to_string(i), 1) == error::ok);
        want[k] = "v" + std::to_string(i);
      }
      s.stop();
    }
    REQUIRE(io.open() == error::ok);
    const std::size_t records = manifest_records_end(io, t);
    std::string bytes;
    REQUIRE(io.read_file(t, "manifest_0", bytes) == error::ok);
    REQUIRE(bytes.size() > records + 8192);  // blocks written ahead follow the records
    if (variant == 0) {
      for (std::size_t i = 0; i < 300; ++i) {
        bytes[records + i] = static_cast<char>(0x5a ^ i);
      }
    } else {
      bytes.resize(records + 4096 + 1000);
    }
    REQUIRE(io.write_file_atomic(t, "manifest_0", bytes) == error::ok);
    io.close();
    memory_store s(opts, io);
    REQUIRE(s.start() == error::ok);
    CHECK(diff(scan_ok(s, t), want).empty());
    for (int i = 0; i < 6; ++i) {
      const std::string k = "after-" + std::to_string(i);
      REQUIRE(s.put(t, k, "x", 2) == error::ok);
      want[k] = "x";
    }
    CHECK(manifest_records_end(io, t) == records + 6 * 4096);
    s.stop();
    REQUIRE(s.start() == error::ok);
    CHECK(diff(scan_ok(s, t), want).empty());
    check_verify(s, t, want);
    s.stop();
  }
}

TEST_CASE("crash: a damaged snapshot or middle manifest record makes the partition corrupted") {
  constexpr int batches = 6;
  const table_ident t{"manifest", 0};
  options opts;
  opts.num_threads = 1;
  opts.manifest_limit = 8 << 20;
  SUBCASE("first record (the snapshot)") {
    memory_io io;
    const manifest_history h = write_manifest_history(io, batches);
    REQUIRE(io.corrupt_byte(t, "manifest_0", 30, 0x01));
    memory_store s(opts, io);
    REQUIRE(s.start() == error::ok);
    CHECK(s.get(t, key_of(1)).status() == error::corrupted);
    kv_model got;
    CHECK(read_all(s, t, got) == error::corrupted);
    CHECK(got.empty());
    std::string problem;
    CHECK(s.verify(t, problem) == error::corrupted);
    CHECK(s.put(t, "k", "v") == error::corrupted);  // never overwrites what it cannot read
    // Other partitions are unaffected.
    CHECK(diff(scan_ok(s, {"manifest", 1}), h.other).empty());
  }
  SUBCASE("a middle record") {
    memory_io io;
    const manifest_history h = write_manifest_history(io, batches);
    REQUIRE(io.corrupt_byte(t, "manifest_0", h.starts[2] + 10, 0x01));
    memory_store s(opts, io);
    REQUIRE(s.start() == error::ok);
    CHECK(s.get(t, key_of(1)).status() == error::corrupted);
    kv_model got;
    CHECK(read_all(s, t, got) == error::corrupted);
    CHECK(diff(scan_ok(s, {"manifest", 1}), h.other).empty());
  }
}

// ---- 4. scale ------------------------------------------------------------------------------

TEST_CASE("crash: thousands of partitions over two shards survive restarts") {
  memory_io io;
  options opts;
  opts.num_threads = 2;
  const auto value = [](std::uint32_t p, int k, int gen) {
    return "p" + std::to_string(p) + "-k" + std::to_string(k) + "-g" + std::to_string(gen);
  };
  {
    memory_store s(opts, io);
    REQUIRE(s.start() == error::ok);
    for (std::uint32_t p = 0; p < many_partitions; ++p) {
      std::vector<write_entry> b;
      for (int k = 0; k < 3; ++k) {
        b.push_back(write_entry{"k" + std::to_string(k), value(p, k, 0), 1, write_op::upsert, 0});
      }
      REQUIRE(s.write({"many", p}, b) == error::ok);
    }
    s.stop();
  }
  {
    memory_store s(opts, io);
    REQUIRE(s.start() == error::ok);
    std::vector<table_ident> parts;
    REQUIRE(io.list_partitions(parts) == error::ok);
    CHECK(parts.size() == many_partitions);
    std::size_t bad = 0;
    for (std::uint32_t p = 0; p < many_partitions; ++p) {
      for (int k = 0; k < 3; ++k) {
        const auto g = s.get({"many", p}, "k" + std::to_string(k));
        bad += g.ok() && g->value == value(p, k, 0) ? 0 : 1;
      }
      // A second generation: one key updated (an appended log), one erased.
      std::vector<write_entry> b{{"k1", value(p, 1, 1), 2, write_op::upsert, 0},
                                 {"k2", {}, 2, write_op::erase, 0}};
      REQUIRE(s.write({"many", p}, b) == error::ok);
    }
    CHECK(bad == 0);
    s.stop();
  }
  memory_store s(opts, io);
  REQUIRE(s.start() == error::ok);
  std::size_t bad = 0;
  for (std::uint32_t p = 0; p < many_partitions; ++p) {
    kv_model got;
    if (read_all(s, {"many", p}, got, 2) != error::ok) {
      ++bad;
      continue;
    }
    const kv_model want{{"k0", value(p, 0, 0)}, {"k1", value(p, 1, 1)}};
    bad += got == want ? 0 : 1;
  }
  CHECK(bad == 0);
  for (std::uint32_t p = 0; p < many_partitions; p += 97) {
    check_verify(s, {"many", p}, {{"k0", ""}});
  }
}

TEST_CASE("crash: reads of absent partitions look for their manifest once") {
  // A shard remembers (a bounded number of) partitions it found without a manifest; a write
  // creates one, and the partition reads like any other from then on, also after a restart.
  counting_store::io_type io;
  options opts;
  opts.num_threads = 2;
  opts.root_meta_cache_size = 512 << 10;  // a few dozen partitions: written ones get evicted
  auto s = std::make_unique<counting_store>(opts, io);
  REQUIRE(s->start() == error::ok);
  const table_ident t{"absent", 3};
  const std::uint64_t before = io.file_reads.load();
  for (int i = 0; i < 200; ++i) {
    CHECK(s->get(t, "k").status() == error::not_found);
    CHECK(s->floor(t, "k").status() == error::not_found);
  }
  CHECK(io.file_reads.load() - before == 1);
  REQUIRE(s->put(t, "k", "v", 1) == error::ok);
  auto got = s->get(t, "k");
  REQUIRE(got.ok());
  CHECK(got->value == "v");
  // Written partitions that the root-meta cache evicts are read back from their manifests
  // (the write made the shard forget that `t` was absent).
  for (std::uint32_t p = 0; p < 200; ++p) {
    REQUIRE(s->put({"written", p}, "k", std::to_string(p), 1) == error::ok);
  }
  for (std::uint32_t p = 0; p < 200; ++p) {
    got = s->get({"written", p}, "k");
    REQUIRE(got.ok());
    CHECK(got->value == std::to_string(p));
  }
  got = s->get(t, "k");
  REQUIRE(got.ok());
  CHECK(got->value == "v");
  // More absent partitions than a shard remembers: every read still answers not_found, and
  // the one written in between is found.
  for (std::uint32_t p = 0; p < 10000; ++p) {
    CHECK(s->get({"absent-many", p}, "k").status() == error::not_found);
    if (p == 5000) {
      REQUIRE(s->put({"absent-many", 7}, "k", "seven", 1) == error::ok);
    }
  }
  for (std::uint32_t p = 0; p < 10000; p += 499) {
    CHECK(s->get({"absent-many", p}, "k").status() == error::not_found);
  }
  got = s->get({"absent-many", 7}, "k");
  REQUIRE(got.ok());
  CHECK(got->value == "seven");
  s->stop();
  REQUIRE(s->start() == error::ok);
  got = s->get(t, "k");
  REQUIRE(got.ok());
  CHECK(got->value == "v");
  got = s->get({"absent-many", 7}, "k");
  REQUIRE(got.ok());
  CHECK(got->value == "seven");
  s->stop();
}

TEST_CASE("crash: a deep tree shrinks by range deletes and truncates and grows again") {
  counting_store::io_type io;
  options opts;
  opts.num_threads = 1;
  opts.index_page_restart_interval = 1;  // no prefix sharing: ~2 separators per index page
  opts.manifest_limit = 256 << 10;
  const table_ident t{"deep", 0};
  const std::string prefix(1500, 'p');
  const auto key = [&](std::uint64_t i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08llu", static_cast<unsigned long long>(i));
    return prefix + buf;
  };
  test::rng r(5);
  kv_model m;
  auto s = std::make_unique<counting_store>(opts, io);
  REQUIRE(s->start() == error::ok);

  const auto check_all = [&](const char* step) {
    INFO(step);
    kv_model got;
    CHECK(read_all(*s, t, got, 13) == error::ok);
    const std::string d = diff(got, m);
    INFO(d);
    CHECK(d.empty());
    std::string problem;
    const error v = s->verify(t, problem);
    INFO("verify: " << problem);
    CHECK(v == error::ok);
    for (int q = 0; q < 20; ++q) {
      const std::string k = key(r.uniform(0, 4000));
      const auto g = s->get(t, k);
      const auto it = m.find(k);
      if (it == m.end()) {
        CHECK(g.status() == error::not_found);
      } else {
        REQUIRE(g.ok());
        CHECK(g->value == it->second);
      }
    }
  };
  // Index levels: the page reads of a cold point read, minus the data page.
  const auto height = [&]() -> std::uint64_t {
    s->stop();
    REQUIRE(s->start() == error::ok);
    const std::uint64_t before = io.reads.load();
    const auto g = s->get(t, key(2000));
    CHECK((g.ok() || g.status() == error::not_found));
    return io.reads.load() - before - 1;
  };
  const auto insert = [&](std::uint64_t from, std::uint64_t to, std::uint64_t step,
                          std::uint64_t ts) {
    std::vector<write_entry> b;
    for (std::uint64_t i = from; i < to; i += step) {
      b.push_back(write_entry{key(i), make_value(r, 1500), ts, write_op::upsert, 0});
      m[b.back().key] = b.back().value;
      if (b.size() == 50) {
        REQUIRE(s->write(t, b) == error::ok);
        b.clear();
      }
    }
    if (!b.empty()) {
      REQUIRE(s->write(t, b) == error::ok);
    }
  };

  insert(0, 4000, 10, 1);  // 400 keys, one per data page
  check_all("built");
  const std::uint64_t h1 = height();
  MESSAGE("index levels after 400 keys: " << h1);
  CHECK(h1 >= 3);
  check_all("after restart");

  REQUIRE(s->delete_range(t, key(150), key(3700)) == error::ok);
  m.erase(m.lower_bound(key(150)), m.lower_bound(key(3700)));
  check_all("delete_range [150, 3700)");
  REQUIRE(s->truncate(t, key(3850)) == error::ok);
  m.erase(m.lower_bound(key(3850)), m.end());
  check_all("truncate from 3850");
  REQUIRE(s->delete_range(t, key(0), key(140)) == error::ok);
  m.erase(m.lower_bound(key(0)), m.lower_bound(key(140)));
  check_all("delete_range [0, 140)");
  const std::uint64_t h2 = height();
  MESSAGE("index levels after the deletes (" << m.size() << " keys left): " << h2);
  CHECK(h2 <= h1);
  check_all("after restart 2");

  insert(5, 4000, 10, 2);  // the odd fives in between
  insert(0, 4000, 20, 3);  // overwrite some
  check_all("reinserted");
  const std::uint64_t h3 = height();
  MESSAGE("index levels after reinserting (" << m.size() << " keys): " << h3);
  CHECK(h3 >= 3);
  check_all("after restart 3");

  REQUIRE(s->truncate(t) == error::ok);
  m.clear();
  check_all("truncate all");
  insert(0, 4000, 7, 4);
  check_all("refilled");
  s->stop();
  REQUIRE(s->start() == error::ok);
  check_all("after the last restart");
}

TEST_CASE("crash: group commit applies queued batches together, bad ones fail alone") {
  options o;
  o.num_threads = 1;
  faulty_traits::io_type io(7);
  faulty_store store(o, io);
  REQUIRE(store.start() == error::ok);
  const table_ident t{"group", 0};
  constexpr int n = 128;
  std::vector<batch_write_request> reqs(n);
  std::atomic<int> done{0};
  std::vector<error> results(n, error::ok);
  for (int i = 0; i < n; ++i) {
    std::vector<write_entry> b;
    for (int k = 0; k < 5; ++k) {
      b.push_back({"k" + std::to_string(k), std::to_string(i), static_cast<std::uint64_t>(i),
                   write_op::upsert, 0});
    }
    if (i % 10 == 3) {
      b.push_back(b.front());  // duplicate key: invalid, must fail alone
    }
    reqs[i].set_args(t, std::move(b));
    REQUIRE(store.exec_async(reqs[i], static_cast<std::uint64_t>(i), [&, i](request& r) {
      results[i] = r.status();
      ++done;
    }));
  }
  while (done.load() < n) {
    std::this_thread::yield();
  }
  for (int i = 0; i < n; ++i) {
    CAPTURE(i);
    CHECK(results[i] == (i % 10 == 3 ? error::invalid_args : error::ok));
  }
  for (int k = 0; k < 5; ++k) {
    CHECK(store.get(t, "k" + std::to_string(k))->value == std::to_string(n - 1));
  }
  CHECK(store.largest_group() > 1);  // queued batches were committed together
  // An I/O failure fails every batch of its group and changes nothing.
  faulty_traits::io_type::faults f;
  f.write_error = 1.0;
  io.set_faults(f);
  done = 0;
  for (int i = 0; i < 16; ++i) {
    reqs[i].set_args(t,
                     {{"k0", "lost", static_cast<std::uint64_t>(1000 + i), write_op::upsert, 0}});
    REQUIRE(store.exec_async(reqs[i], 0, [&, i](request& r) {
      results[i] = r.status();
      ++done;
    }));
  }
  while (done.load() < 16) {
    std::this_thread::yield();
  }
  for (int i = 0; i < 16; ++i) {
    CHECK(results[i] != error::ok);
  }
  io.set_faults({});
  CHECK(store.get(t, "k0")->value == std::to_string(n - 1));
  std::string problem;
  CHECK(store.verify(t, problem) == error::ok);
  store.stop();
  REQUIRE(store.start() == error::ok);
  CHECK(store.get(t, "k0")->value == std::to_string(n - 1));
}
