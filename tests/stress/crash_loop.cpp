// crash_loop: the blackbox crash test. A driver process runs a random workload on a store in a
// real directory (the default traits: uring_io, fiber tasks) and records every operation in an
// expected-state file; the parent kills it with SIGKILL at random moments (while it recovers,
// writes, stops or starts) and starts it again, and the new driver checks the store before it
// writes more:
//
//  * every acknowledged operation is there, and no failed one;
//  * an operation in flight at the kill (at most one per partition: a partition's operations
//    run one after another, its partitions in parallel) is there whole or not at all;
//  * a full scan of every partition equals the model exactly (no phantom keys), point reads
//    agree, and verify() finds the tree of every partition sound.
//
// The expected-state file (`expected.log` beside the store) is a text log appended with one
// write() per record, which a SIGKILL cannot lose: "S i" before operation i is submitted,
// "A i" when it succeeded, "F i code" when it failed, "R i 0|1" when a check resolved an
// operation left in flight (1: it is there). Operations are not stored: operation i is the
// i-th of the run's seeded workload (tests/support/workload.hpp), regenerated at each check.
//
// A run is one store with options drawn from the run's seed (append mode and file size,
// partitions, TTLs, bulk batches, compression, and the page size: the default traits' 4 KiB, or
// 16 KiB in one run of four, over the same traits with larger pages); each cycle of it draws the
// options a restart may change (shards, group commit, manifest size limit, how often the driver
// stops and restarts the store in process). After its last cycle a final check runs to completion.
//
// Usage:
//   crash_loop run [--cycles N] [--cycles-per-run N] [--seed S] [--dir D] [--store-root R]
//                  [--max-kill-ms M] [--report FILE] [--keep] [--remount-ro P --mountpoint M]
//   crash_loop child --dir D --store-dir S --seed S --cycle C [--check-only] [--read-only-fs]
//
// `run` prints the seed; a failing check names its run directory (kept) and the command that
// repeats the check. --store-root puts the stores on another file system than the logs (a
// small or read-only one: the log must stay writable). --remount-ro P: in that share of
// cycles the parent remounts the file system at --mountpoint read-only before it starts the
// driver and read-write after the kill; the driver then must either refuse to start with an
// error and open read-only (options.read_only) to check, or start, check, and fail every
// write it tries without changing anything (root only; tests/stress/disk_modes.sh runs these
// and the loop on a nearly full file system).
//
// Exit codes: 0 all checks passed, 1 a check failed, 2 bad usage or an environment problem.
#define DOCTEST_CONFIG_DISABLE  // (the support headers' checks are for the doctest suites)

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "stress/large_page_store.hpp"
#include "stress/stress_common.hpp"
#include "support/workload.hpp"

extern char** environ;

namespace {

using namespace eloqstore;
using stress::mix;
using test::kv_model;
using test::op;
using test::op_kind;
using test::workload;
using clock_type = std::chrono::steady_clock;

// ---- configuration drawn from seeds ---------------------------------------------------------

// What a run keeps for the life of its store.
struct run_config {
  std::uint64_t seed = 0;
  bool append = false;
  std::uint8_t pages_per_file_shift = 18;
  std::uint32_t parts = 1;
  double ttl_chance = 0;
  double bulk_chance = 0;
  bool compression = false;
  std::uint16_t page_size = 4096;

  explicit run_config(std::uint64_t s) : seed(s) {
    std::mt19937_64 r(mix(s, 1));
    auto pick = [&r](std::uint64_t lo, std::uint64_t hi) {
      return std::uniform_int_distribution<std::uint64_t>(lo, hi)(r);
    };
    append = pick(0, 1) == 1;
    pages_per_file_shift = static_cast<std::uint8_t>(append ? pick(5, 9) : pick(8, 18));
    parts = static_cast<std::uint32_t>(pick(1, 6));
    ttl_chance = pick(0, 1) == 1 ? 0.1 : 0;
    bulk_chance = pick(0, 3) == 0 ? 0.03 : 0;
    compression = pick(0, 3) == 0;
    page_size = pick(0, 3) == 0 ? stress::large_page_traits::page_size : default_traits::page_size;
  }
  [[nodiscard]] std::string describe() const {
    std::ostringstream os;
    os << (append ? "append" : "in place") << ", 2^" << int{pages_per_file_shift}
       << " pages per file, " << parts << " partitions, ttl " << ttl_chance << ", bulk "
       << bulk_chance << ", compression " << compression << ", " << page_size / 1024
       << " KiB pages";
    return os.str();
  }
};

// What a cycle may change at its restart.
struct cycle_config {
  std::uint16_t shards = 1;
  bool group_commit = true;
  std::uint32_t manifest_limit = 8 << 20;
  std::uint64_t stop_every = 0;  // operations between in-process stop/start (0: never)

  cycle_config(std::uint64_t run_seed, std::uint64_t cycle) {
    std::mt19937_64 r(mix(run_seed, 1000 + cycle));
    auto pick = [&r](std::uint64_t lo, std::uint64_t hi) {
      return std::uniform_int_distribution<std::uint64_t>(lo, hi)(r);
    };
    shards = static_cast<std::uint16_t>(pick(1, 3));
    group_commit = pick(0, 3) != 0;
    manifest_limit = pick(0, 2) == 0 ? 16 * 1024 : 8 << 20;
    stop_every = pick(0, 2) == 0 ? 0 : pick(20, 300);
  }
};

options store_options(const std::string& store_dir, const run_config& rc, const cycle_config& cc) {
  options o;
  o.store_path = {store_dir};
  o.num_threads = cc.shards;
  o.data_append_mode = rc.append;
  o.data_page_size = rc.page_size;
  o.pages_per_file_shift = rc.pages_per_file_shift;
  o.enable_compression = rc.compression;
  o.group_commit = cc.group_commit;
  o.manifest_limit = cc.manifest_limit;
  o.coroutine_stack_size = 256 * 1024;
  return o;
}

// ---- the expected-state file ----------------------------------------------------------------

enum class op_state : std::uint8_t { submitted, acked, failed, applied, not_applied };

struct expected_state {
  std::map<std::uint64_t, op_state> ops;
  std::map<std::uint64_t, int> failures;  // failed operations' error codes

  [[nodiscard]] std::uint64_t next_op() const { return ops.empty() ? 0 : ops.rbegin()->first + 1; }
};

// Reads the log; a torn last line (no newline) cannot happen with single write() calls and a
// SIGKILL, so any malformed line is an error.
bool read_log(const std::string& path, expected_state& st, std::string& why) {
  std::ifstream in(path);
  if (!in) {
    return true;  // no log yet
  }
  std::string line;
  std::uint64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::istringstream ls(line);
    char kind = 0;
    std::uint64_t i = 0;
    long long extra = 0;
    if (!(ls >> kind >> i)) {
      why = "expected.log line " + std::to_string(n) + " malformed: " + line;
      return false;
    }
    switch (kind) {
      case 'S':
        st.ops[i] = op_state::submitted;
        break;
      case 'A':
        st.ops[i] = op_state::acked;
        break;
      case 'F':
        ls >> extra;
        st.ops[i] = op_state::failed;
        st.failures[i] = static_cast<int>(extra);
        break;
      case 'R':
        ls >> extra;
        st.ops[i] = extra == 1 ? op_state::applied : op_state::not_applied;
        break;
      default:
        why = "expected.log line " + std::to_string(n) + " unknown: " + line;
        return false;
    }
  }
  return true;
}

class log_writer {
 public:
  explicit log_writer(const std::string& path)
      : fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) {}
  ~log_writer() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  log_writer(const log_writer&) = delete;
  log_writer& operator=(const log_writer&) = delete;
  [[nodiscard]] bool ok() const { return fd_ >= 0; }
  void record(char kind, std::uint64_t i, long long extra = -1) {
    char buf[64];
    const int n = extra < 0
                      ? std::snprintf(buf, sizeof buf, "%c %" PRIu64 "\n", kind, i)
                      : std::snprintf(buf, sizeof buf, "%c %" PRIu64 " %lld\n", kind, i, extra);
    if (::write(fd_, buf, static_cast<std::size_t>(n)) != n) {
      std::fprintf(stderr, "crash_loop: cannot append to expected.log: %s\n", std::strerror(errno));
      std::_Exit(2);
    }
  }

 private:
  int fd_;
};

// ---- the driver -----------------------------------------------------------------------------

[[noreturn]] void check_failed(const std::string& what) {
  std::fprintf(stderr, "crash_loop: CHECK FAILED: %s\n", what.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

std::string error_text(error e) {
  return std::string(error_message(e));
}

// Every record of a partition by a full scan (keys ascending), or the scan's error.
template <typename Store>
error scan_all(Store& s, const table_ident& t, kv_model& out) {
  bool ordered = true;
  const error e = stress::scan_all(s, t, out, ordered);
  if (!ordered) {
    check_failed(t.to_string() + ": scan returned keys out of order");
  }
  return e;
}

struct check_totals {
  std::uint64_t ops = 0;          // operations in the log
  std::uint64_t acked = 0;        // acknowledged operations found
  std::uint64_t failed = 0;       // failed operations resolved by this check
  std::uint64_t inflight = 0;     // operations in flight at the kill
  std::uint64_t applied = 0;      // ... of which were there whole
  std::uint64_t failed_back = 0;  // failed operations that came back whole
};

// Checks the store against the log, then records how each operation left in flight resolved,
// and each failed one since its partition's last success (a write whose manifest record
// reached the file but whose sync failed may come back whole after a restart: at most one of
// them, as the simulation in simulation_test.cpp allows; with a normal disk nothing fails).
// Leaves `gen` after the last logged operation.
template <typename Store>
check_totals check_store(Store& s, const run_config& rc, expected_state& st, workload& gen,
                         log_writer& log) {
  struct indexed_op {
    std::uint64_t index = 0;
    op o;
  };
  const std::uint64_t next = st.next_op();
  std::vector<kv_model> models(rc.parts);
  std::vector<std::optional<indexed_op>> inflight(rc.parts);
  std::vector<std::vector<indexed_op>> failed_since(rc.parts);
  check_totals tot;
  tot.ops = next;
  for (std::uint64_t i = 0; i < next; ++i) {
    op o = gen.next();
    const auto it = st.ops.find(i);
    if (it == st.ops.end()) {
      check_failed("expected.log misses operation " + std::to_string(i));
    }
    const std::uint32_t p = o.part;
    if (inflight[p]) {
      check_failed("operation " + std::to_string(i) + " follows one in flight on its partition");
    }
    switch (it->second) {
      case op_state::acked:
      case op_state::applied:
        test::apply_op(models[p], o);
        tot.acked += it->second == op_state::acked ? 1 : 0;
        failed_since[p].clear();
        break;
      case op_state::failed:
        failed_since[p].push_back({i, std::move(o)});
        break;
      case op_state::not_applied:
        break;
      case op_state::submitted:
        inflight[p] = indexed_op{i, std::move(o)};
        ++tot.inflight;
        break;
    }
  }
  // What each partition may hold: the model, plus the operation in flight, plus one failed
  // operation (with or without the one in flight after it). `uses` names the failed one.
  struct candidate {
    kv_model state;
    const indexed_op* uses = nullptr;
    bool with_inflight = false;
  };
  std::vector<const candidate*> chosen(rc.parts, nullptr);
  std::vector<std::vector<candidate>> candidates(rc.parts);
  for (std::uint32_t p = 0; p < rc.parts; ++p) {
    const table_ident t = test::part_ident(p);
    std::vector<candidate>& c = candidates[p];
    c.push_back({models[p], nullptr, false});
    for (const indexed_op& f : failed_since[p]) {
      kv_model with = models[p];
      test::apply_op(with, f.o);
      c.push_back({std::move(with), &f, false});
    }
    if (inflight[p]) {
      const std::size_t n = c.size();
      for (std::size_t k = 0; k < n; ++k) {
        kv_model with = c[k].state;
        test::apply_op(with, inflight[p]->o);
        c.push_back({std::move(with), c[k].uses, true});
      }
    }
    kv_model got;
    const error e = scan_all(s, t, got);
    if (e != error::ok && !(e == error::not_found && got.empty())) {
      check_failed(t.to_string() + ": scan failed: " + error_text(e));
    }
    for (const candidate& k : c) {
      if (got == k.state) {
        chosen[p] = &k;
        break;
      }
    }
    if (chosen[p] == nullptr) {
      std::string what = t.to_string() + ": " + test::diff(got, models[p]);
      if (inflight[p]) {
        what += "; operation " + std::to_string(inflight[p]->index) + " was in flight (" +
                test::describe(inflight[p]->o) + ")";
      }
      if (!failed_since[p].empty()) {
        what += "; " + std::to_string(failed_since[p].size()) + " failed since the last success";
      }
      check_failed(what);
    }
    models[p] = chosen[p]->state;
    tot.applied += chosen[p]->with_inflight ? 1 : 0;
    error read_error = error::ok;
    if (const std::string bad = stress::point_reads(s, t, models[p], p, read_error); !bad.empty()) {
      check_failed(t.to_string() + ": " + bad);
    }
    std::string problem;
    const error v = s.verify(t, problem);
    if (v != error::ok && !(v == error::not_found && models[p].empty())) {
      check_failed(t.to_string() + ": verify: " + error_text(v) + " " + problem);
    }
  }
  // Every partition passed: record the resolutions.
  for (std::uint32_t p = 0; p < rc.parts; ++p) {
    tot.failed += failed_since[p].size();
    for (const indexed_op& f : failed_since[p]) {
      const bool back = chosen[p]->uses == &f;
      log.record('R', f.index, back ? 1 : 0);
      st.ops[f.index] = back ? op_state::applied : op_state::not_applied;
      tot.failed_back += back ? 1 : 0;
    }
    if (inflight[p]) {
      const bool applied = chosen[p]->with_inflight;
      log.record('R', inflight[p]->index, applied ? 1 : 0);
      st.ops[inflight[p]->index] = applied ? op_state::applied : op_state::not_applied;
    }
  }
  return tot;
}

// Runs operations until killed (or, with max_ops, until that many ran): one in flight per
// partition, each logged before it is submitted and when it completes; every
// cc.stop_every operations the store is stopped and started again in process.
template <typename Store>
void drive(Store& store, const cycle_config& cc, std::uint64_t first, workload& gen,
           log_writer& log, std::uint32_t parts, std::uint64_t max_ops, bool may_fail) {
  struct pending {
    std::unique_ptr<request> req;
    std::uint64_t index = 0;
  };
  std::vector<pending> out(parts);
  auto complete = [&](pending& p) {
    if (!p.req) {
      return;
    }
    p.req->wait();
    const error e = p.req->status();
    if (e == error::ok) {
      log.record('A', p.index);
    } else {
      log.record('F', p.index, static_cast<long long>(e));
      if (!may_fail) {
        check_failed("operation " + std::to_string(p.index) + " failed on a healthy file system: " +
                     error_text(e) + " (" + std::string(p.req->message()) + ")");
      }
    }
    p.req.reset();
  };
  std::uint64_t since_restart = 0;
  for (std::uint64_t i = first; max_ops == 0 || i < first + max_ops; ++i) {
    op o = gen.next();
    pending& slot = out[o.part];
    complete(slot);
    slot.req = test::make_request(o);
    slot.index = i;
    log.record('S', i);
    if (!store.exec_async(*slot.req)) {
      check_failed("operation " + std::to_string(i) + " refused at submission");
    }
    if (cc.stop_every != 0 && ++since_restart >= cc.stop_every) {
      since_restart = 0;
      for (pending& p : out) {
        complete(p);
      }
      store.stop();
      if (const error e = store.start(); e != error::ok) {
        if (may_fail) {
          std::_Exit(0);  // (refused on a full disk: the next cycle checks the store)
        }
        check_failed("start after an in-process stop: " + error_text(e) + " (" +
                     store.last_message() + ")");
      }
    }
  }
  for (pending& p : out) {
    complete(p);
  }
}

struct child_args {
  std::string dir;        // the run's directory: expected.log
  std::string store_dir;  // the store
  std::uint64_t seed = 0;
  std::uint64_t cycle = 0;
  bool check_only = false;
  bool read_only_fs = false;  // the store's file system is mounted read-only
  bool may_fail = false;      // writes may fail (a nearly full file system)
  std::uint64_t max_ops = 0;
};

template <typename Store>
int run_child_as(const child_args& a, const run_config& rc) {
  cycle_config cc(a.seed, a.cycle);
  std::uint64_t max_ops = a.max_ops;
  if (a.read_only_fs) {
    cc.stop_every = 0;  // (no restarts there)
    max_ops = 200;      // every write fails at once: a few suffice
  }
  const std::string log_path = a.dir + "/expected.log";
  expected_state st;
  std::string why;
  if (!read_log(log_path, st, why)) {
    check_failed(why);
  }
  log_writer log(log_path);
  if (!log.ok()) {
    std::fprintf(stderr, "crash_loop: cannot open %s: %s\n", log_path.c_str(),
                 std::strerror(errno));
    return 2;
  }
  options o = store_options(a.store_dir, rc, cc);
  auto store = std::make_unique<Store>(o);
  const bool may_fail = a.may_fail || a.read_only_fs;
  if (may_fail) {
    // Background work fails for want of space there (manifest rewrites at stop, file GC):
    // expected, and not shown.
    store->set_log_callback([](log_level, std::string_view) {}, log_level::error);
  }
  if (const error e = store->start(); e != error::ok) {
    if (!may_fail) {
      check_failed("start: " + error_text(e) + " (" + store->last_message() + ")");
    }
    // Refused on a read-only or full file system: it must still open read-only.
    std::printf("refused: %s (%s)\n", error_text(e).c_str(), store->last_message().c_str());
    o.read_only = true;
    store = std::make_unique<Store>(o);
    store->set_log_callback([](log_level, std::string_view) {}, log_level::error);
    if (const error r = store->start(); r != error::ok) {
      check_failed("read-only start after a refused start: " + error_text(r) + " (" +
                   store->last_message() + ")");
    }
  }
  workload gen(a.seed, rc.parts, rc.bulk_chance, rc.ttl_chance);
  const check_totals tot = check_store(*store, rc, st, gen, log);
  std::printf("checked ops %" PRIu64 " acked %" PRIu64 " failed %" PRIu64 " back %" PRIu64
              " inflight %" PRIu64 " applied %" PRIu64 "\n",
              tot.ops, tot.acked, tot.failed, tot.failed_back, tot.inflight, tot.applied);
  std::fflush(stdout);
  if (a.check_only || o.read_only) {
    store->stop();
    return 0;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  drive(*store, cc, st.next_op(), gen, log, rc.parts, max_ops, may_fail);
  store->stop();
  return 0;
}

int run_child(const child_args& a) {
  const run_config rc(a.seed);
  if (rc.page_size == stress::large_page_traits::page_size) {
    return run_child_as<stress::large_page_store>(a, rc);
  }
  return run_child_as<default_store>(a, rc);
}

// ---- the parent -----------------------------------------------------------------------------

struct loop_totals {
  std::uint64_t cycles = 0;
  std::uint64_t runs = 0;
  std::uint64_t checks = 0;
  std::uint64_t kills_before_ready = 0;
  std::uint64_t remounts = 0;
  std::uint64_t ops_checked = 0;  // acknowledged operations, each counted at its first check
  std::uint64_t failed_checked = 0;
  std::uint64_t failed_back = 0;
  std::uint64_t inflight = 0;
  std::uint64_t inflight_applied = 0;
};

struct child_process {
  pid_t pid = -1;
  int out = -1;  // the read end of its stdout
};

child_process spawn_child(const std::string& self, const std::vector<std::string>& args) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    std::perror("crash_loop: pipe");
    std::exit(2);
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(self.c_str()));
  for (const std::string& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  child_process c;
  const int rc = posix_spawn(&c.pid, self.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (rc != 0) {
    std::fprintf(stderr, "crash_loop: spawn: %s\n", std::strerror(rc));
    std::exit(2);
  }
  c.out = fds[0];
  return c;
}

// Reads the child's stdout until `want` starts a line, the deadline passes or the pipe closes;
// every "checked" line is parsed into `last`.
class line_reader {
 public:
  explicit line_reader(int fd) : fd_(fd) {}
  // True when a line starting with `want` arrived before `deadline`.
  bool until(std::string_view want, clock_type::time_point deadline) {
    for (;;) {
      std::size_t nl;
      while ((nl = buf_.find('\n')) != std::string::npos) {
        const std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        note(line);
        if (line.rfind(want, 0) == 0) {
          return true;
        }
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
      if (left.count() <= 0) {
        return false;
      }
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
        continue;
      }
      char chunk[512];
      const ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n <= 0) {
        closed = true;  // the child exited
        return false;
      }
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  bool closed = false;
  bool checked = false;
  std::uint64_t acked = 0;
  std::uint64_t failed = 0;
  std::uint64_t failed_back = 0;
  std::uint64_t inflight = 0;
  std::uint64_t applied = 0;

 private:
  void note(const std::string& line) {
    unsigned long long ops = 0, a = 0, f = 0, b = 0, i = 0, ap = 0;
    if (std::sscanf(line.c_str(),
                    "checked ops %llu acked %llu failed %llu back %llu inflight %llu applied %llu",
                    &ops, &a, &f, &b, &i, &ap) == 6) {
      checked = true;
      acked = a;
      failed = f;
      failed_back = b;
      inflight = i;
      applied = ap;
    }
  }
  int fd_;
  std::string buf_;
};

int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return 255;
    }
  }
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 255;
}

struct loop_args {
  std::uint64_t cycles = 50;
  std::uint64_t cycles_per_run = 10;
  std::uint64_t seed = 0;
  std::string dir;
  std::string store_root;
  std::uint64_t max_kill_ms = 1500;
  std::string report;
  bool keep = false;
  double remount_ro = 0;
  std::string mountpoint;
  bool may_fail = false;
};

// Runs a shell command, trying again for up to 10 s: a killed process's io_uring releases
// its files a moment after the process is gone, and until then a read-only remount finds
// the file system busy.
bool run_command(const std::string& cmd) {
  int rc = 0;
  for (int attempt = 0; attempt < 100; ++attempt) {
    rc = std::system((cmd + " 2>/dev/null").c_str());
    if (rc == 0) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::fprintf(stderr, "crash_loop: `%s` failed (%d)\n", cmd.c_str(), rc);
  return false;
}

int run_loop(const loop_args& a) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::uint64_t seed = a.seed != 0 ? a.seed : std::random_device{}() | 1ULL;
  std::string base = a.dir;
  const bool own_dir = base.empty();
  if (own_dir) {
    const char* tmp = std::getenv("TMPDIR");
    base = std::string(tmp != nullptr ? tmp : "/tmp") + "/crash_loop." + std::to_string(::getpid());
  }
  std::filesystem::create_directories(base);
  std::printf("crash_loop: seed %" PRIu64 ", %" PRIu64 " cycles in runs of %" PRIu64 ", in %s\n",
              seed, a.cycles, a.cycles_per_run, base.c_str());
  std::fflush(stdout);
  std::mt19937_64 r(mix(seed, 7));
  loop_totals tot;
  const auto start = clock_type::now();
  std::uint64_t acked_before = 0;
  bool run_checked = false;  // a check of the current run completed
  bool failed = false;
  std::string failed_dir;
  std::string failed_command;
  auto fail = [&](const std::string& dir, const std::vector<std::string>& args) {
    failed = true;
    failed_dir = dir;
    failed_command = self;
    for (const std::string& arg : args) {
      failed_command += " " + arg;
    }
    failed_command += " --check-only";
  };
  for (std::uint64_t cycle = 0; cycle < a.cycles && !failed; ++cycle) {
    const std::uint64_t run = cycle / a.cycles_per_run;
    const std::uint64_t run_seed = mix(seed, run + 1);
    const std::string dir = base + "/run-" + std::to_string(run);
    const std::string store_dir =
        (a.store_root.empty() ? dir : a.store_root + "/run-" + std::to_string(run)) + "/store";
    const std::uint64_t in_run = cycle % a.cycles_per_run;
    const bool last_of_run = in_run + 1 == a.cycles_per_run || cycle + 1 == a.cycles;
    if (in_run == 0) {
      std::filesystem::remove_all(dir);
      std::filesystem::remove_all(store_dir);
      std::filesystem::create_directories(dir);
      ++tot.runs;
      acked_before = 0;
      run_checked = false;
      std::printf("run %" PRIu64 ": %s\n", run, run_config(run_seed).describe().c_str());
      std::fflush(stdout);
    }
    std::vector<std::string> args = {"child",
                                     "--dir",
                                     dir,
                                     "--store-dir",
                                     store_dir,
                                     "--seed",
                                     std::to_string(run_seed),
                                     "--cycle",
                                     std::to_string(in_run)};
    if (a.may_fail) {
      args.emplace_back("--may-fail");
    }
    // (Only once a check of the run completed: the store must exist before its file system
    // turns read-only.)
    const bool remount =
        !a.mountpoint.empty() && run_checked && std::bernoulli_distribution(a.remount_ro)(r);
    std::vector<std::string> child_argv = args;
    if (remount) {
      if (!run_command("mount -o remount,ro " + a.mountpoint)) {
        return 2;
      }
      ++tot.remounts;
      child_argv.emplace_back("--read-only-fs");
    }
    child_process c = spawn_child(self, child_argv);
    line_reader lines(c.out);
    const bool early = std::uniform_int_distribution<int>(0, 99)(r) < 15;
    bool hung = false;
    bool reaped = false;
    if (early) {
      // A kill at a random moment from the start: while the store recovers or the check runs.
      const auto delay = std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 300)(r));
      if (!lines.until("ready", clock_type::now() + delay) && !lines.closed) {
        ++tot.kills_before_ready;
      }
    } else if (!lines.until("ready", clock_type::now() + std::chrono::minutes(5))) {
      // It exited (a failed check, or a read-only open that checked) or hung.
      hung = !lines.closed;
      const int code = hung ? 0 : wait_exit(c.pid);
      reaped = !hung;
      if (!hung && code != 0) {
        std::fprintf(stderr,
                     "crash_loop: cycle %" PRIu64 " (run %" PRIu64 ", cycle %" PRIu64
                     " of it): the driver exited with %d before it was ready\n",
                     cycle, run, in_run, code);
        fail(dir, args);
      } else if (!hung && !remount) {
        std::fprintf(stderr, "crash_loop: cycle %" PRIu64 ": the driver exited early\n", cycle);
        fail(dir, args);
      }
    } else {
      const auto delay = std::chrono::milliseconds(
          std::uniform_int_distribution<std::uint64_t>(0, a.max_kill_ms)(r));
      lines.until("never", clock_type::now() + delay);
    }
    int code = 128 + SIGKILL;
    if (!reaped) {
      ::kill(c.pid, SIGKILL);
      code = wait_exit(c.pid);
    }
    ::close(c.out);
    if (remount && !run_command("mount -o remount,rw " + a.mountpoint)) {
      return 2;
    }
    ++tot.cycles;
    if (lines.checked) {
      ++tot.checks;
      run_checked = true;
      tot.ops_checked += lines.acked - std::min(lines.acked, acked_before);
      acked_before = std::max(acked_before, lines.acked);
      tot.failed_checked += lines.failed;
      tot.failed_back += lines.failed_back;
      tot.inflight += lines.inflight;
      tot.inflight_applied += lines.applied;
    }
    if (hung) {
      std::fprintf(stderr, "crash_loop: cycle %" PRIu64 ": the driver was not ready in 5 minutes\n",
                   cycle);
      fail(dir, args);
    } else if (!failed && code != 128 + SIGKILL && !(code == 0 && remount)) {
      std::fprintf(stderr,
                   "crash_loop: cycle %" PRIu64 " (run %" PRIu64 ", cycle %" PRIu64
                   " of it): the driver exited with %d\n",
                   cycle, run, in_run, code);
      fail(dir, args);
    }
    if (failed) {
      break;
    }
    if (last_of_run) {
      // The final check of the run, to completion.
      std::vector<std::string> check = args;  // (never on a read-only file system)
      check.emplace_back("--check-only");
      child_process f = spawn_child(self, check);
      line_reader flines(f.out);
      flines.until("never", clock_type::now() + std::chrono::minutes(10));
      if (!flines.closed) {
        ::kill(f.pid, SIGKILL);  // (hung: a failure below)
      }
      const int fcode = wait_exit(f.pid);
      ::close(f.out);
      if (fcode != 0 || !flines.checked) {
        std::fprintf(stderr, "crash_loop: the final check of run %" PRIu64 " failed (%d)%s\n", run,
                     fcode, flines.closed ? "" : ": it did not finish in 10 minutes");
        fail(dir, args);
        break;
      }
      ++tot.checks;
      tot.ops_checked += flines.acked - std::min(flines.acked, acked_before);
      tot.failed_checked += flines.failed;
      tot.failed_back += flines.failed_back;
      tot.inflight += flines.inflight;
      tot.inflight_applied += flines.applied;
      if (flines.acked == 0 && !a.may_fail) {
        std::fprintf(stderr, "crash_loop: run %" PRIu64 " acknowledged no operation\n", run);
        fail(dir, args);
        break;
      }
      if (!a.keep) {
        std::filesystem::remove_all(dir);
        std::filesystem::remove_all(store_dir);
      }
    }
  }
  const double secs = std::chrono::duration<double>(clock_type::now() - start).count();
  std::ostringstream rep;
  rep << "crash_loop report\n"
      << "seed: " << seed << "\n"
      << "result: " << (failed ? "FAILED" : "passed") << "\n"
      << "cycles: " << tot.cycles
      << " (kills before the driver was ready: " << tot.kills_before_ready
      << ", read-only remounts: " << tot.remounts << ")\n"
      << "runs: " << tot.runs << "\n"
      << "checks completed: " << tot.checks << "\n"
      << "acknowledged operations checked: " << tot.ops_checked << "\n"
      << "failed operations checked: " << tot.failed_checked
      << " (came back whole: " << tot.failed_back << ")\n"
      << "operations in flight at a kill: " << tot.inflight
      << " (found whole: " << tot.inflight_applied
      << ", found absent: " << tot.inflight - tot.inflight_applied << ")\n"
      << "seconds: " << secs << "\n"
      << "cycles per hour: " << static_cast<std::uint64_t>(tot.cycles * 3600 / secs) << "\n"
      << "acknowledged operations checked per hour: "
      << static_cast<std::uint64_t>(static_cast<double>(tot.ops_checked) * 3600 / secs) << "\n";
  std::fputs(rep.str().c_str(), stdout);
  if (!a.report.empty()) {
    std::ofstream(a.report) << rep.str();
  }
  if (failed) {
    std::fprintf(stderr, "crash_loop: the run is kept in %s; repeat its check with:\n  %s\n",
                 failed_dir.c_str(), failed_command.c_str());
    return 1;
  }
  if (own_dir && !a.keep) {
    std::filesystem::remove_all(base);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"crash_loop: kill -9 a store's driver at random moments and check what survived"};
  app.require_subcommand(1);
  loop_args la;
  CLI::App* run = app.add_subcommand("run", "the parent: run cycles of driver, kill, check");
  run->add_option("--cycles", la.cycles, "kill cycles in all")->check(CLI::Range(1, 100000000));
  run->add_option("--cycles-per-run", la.cycles_per_run, "cycles per store (then a new one)")
      ->check(CLI::Range(1, 100000000));
  run->add_option("--seed", la.seed, "the seed (0: a random one, printed)");
  run->add_option("--dir", la.dir, "where the runs go (default: a directory in TMPDIR)");
  run->add_option("--store-root", la.store_root, "where the stores go (default: in the runs)");
  run->add_option("--max-kill-ms", la.max_kill_ms, "longest run of the driver before its kill")
      ->check(CLI::Range(1, 3600000));
  run->add_option("--report", la.report, "write the report to this file too");
  run->add_flag("--keep", la.keep, "keep the stores");
  run->add_option("--remount-ro", la.remount_ro, "share of cycles with a read-only remount")
      ->check(CLI::Range(0.0, 1.0));
  run->add_option("--mountpoint", la.mountpoint, "the file system to remount (with --remount-ro)");
  run->add_flag("--may-fail", la.may_fail,
                "writes may fail (the stores are on a nearly full file system)");
  child_args ca;
  CLI::App* child = app.add_subcommand("child", "the driver: check the store, then write");
  child->add_option("--dir", ca.dir, "the run's directory (expected.log)")->required();
  child->add_option("--store-dir", ca.store_dir, "the store's directory")->required();
  child->add_option("--seed", ca.seed, "the run's seed")->required();
  child->add_option("--cycle", ca.cycle, "the cycle within the run")->required();
  child->add_flag("--check-only", ca.check_only, "check and exit");
  child->add_flag("--read-only-fs", ca.read_only_fs, "the store's file system is read-only");
  child->add_flag("--may-fail", ca.may_fail, "writes may fail (a nearly full file system)");
  child->add_option("--max-ops", ca.max_ops, "stop after this many operations (0: until killed)");
  CLI11_PARSE(app, argc, argv);
  if (*child) {
    return run_child(ca);
  }
  if (la.remount_ro > 0 && la.mountpoint.empty()) {
    std::fprintf(stderr, "crash_loop: --remount-ro needs --mountpoint\n");
    return 2;
  }
  return run_loop(la);
}
