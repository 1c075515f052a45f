// Engine benchmark on local files, one shard, for the default traits (uring_io, O_DIRECT data
// files, fiber tasks) and pread_traits (pread_io, run-to-completion):
//   load      1 KB values in batches of 1000 and 20000 (MB/s, durable per batch)
//   read      random point reads of a partition whose index exceeds the index cache budget
//   read qd   random point reads with 1, 32 and 128 requests in flight, index pages cached
//             (64 MiB index cache, warmed), data pages from the device (O_DIRECT for uring_io;
//             for pread_io the OS page cache is dropped first when running as root)
//   scan      full forward scan (entries/s)
//   small     a 10-key batch into the large partition (latency per durable batch)
//   clients   64 clients (threads with the sync API, then asynchronous requests), single-key
//             durable writes to one partition, with and without group commit
//   mapping   copy-on-write cost of one small batch in a 1M-page mapping: chunked (ours)
//             vs copying the whole table (the reference engine)
//   large     gets of one 32 MiB and one 128 MiB value (overflow chains), the OS page cache
//             dropped before each (as root): the median of 3, in s and MB/s
//
// Usage: engine_bench [directory=/tmp/eloqstore-bench] [keys=1000000] [traits=both|uring|pread]
//                     [phases=load,read,qd,clients,mapping,large; load1000, load20000: one
//                     batch size; qd1, qd32, qd128: one depth]
// The read and qd phases use the data set of the load phase; a run given an explicit phase list
// keeps the data set for the next one. ELOQSTORE_BENCH_APPEND=1: every phase in append mode.
// ELOQSTORE_BENCH_COMPRESS=1: enable_compression. ELOQSTORE_BENCH_VALUES=text: the load's
// values are distinct JSON-like text records (compressible about 4x) instead of one repeated
// byte; the load then also reports the bytes on disk. The data page cache is off (device
// figures) unless ELOQSTORE_BENCH_DATA_CACHE=BYTES sets its size per shard.
#include <sys/resource.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include <CLI/CLI.hpp>

#include <range/v3/algorithm/for_each.hpp>

#include <eloqstore/default_store.hpp>  // (EloqStore<default_traits> compiled once)
#include <eloqstore/detail/mapping/page_mapping.hpp>
#include <eloqstore/eloqstore.hpp>

namespace {

using namespace eloqstore;
using bench_clock = std::chrono::steady_clock;

double since(bench_clock::time_point t) {
  return std::chrono::duration<double>(bench_clock::now() - t).count();
}

// CPU time of the whole process (user + system), every thread.
double process_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  const auto secs = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

std::string key_of(std::uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(i));
  return buf;
}

// ELOQSTORE_BENCH_APPEND=1 runs every phase in append mode (8 MiB data files, compaction
// and file GC with the default factor); ELOQSTORE_BENCH_SHIFT=N sets pages_per_file_shift.
bool env_is(const char* name, std::string_view want) {
  const char* v = std::getenv(name);
  return v != nullptr && std::string_view(v) == want;
}

bool append_mode() {
  return env_is("ELOQSTORE_BENCH_APPEND", "1");
}

// A JSON-like text record of `n` bytes, different for every seed.
std::string text_value(std::size_t n, std::uint64_t seed) {
  static const char* const words[] = {"alpha", "bravo", "charlie", "delta", "echo",   "foxtrot",
                                      "golf",  "hotel", "india",   "kilo",  "juliet", "lima"};
  std::mt19937_64 g(seed);
  std::string s;
  s.reserve(n + 64);
  while (s.size() < n) {
    s.append("{\"name\":\"").append(words[g() % 12]).append("\",\"n\":");
    s.append(std::to_string(g() % 1000)).append("},");
  }
  s.resize(n);
  return s;
}

std::uint64_t bytes_on_disk(const std::string& dir) {
  std::uint64_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) {
      n += e.file_size();
    }
  }
  return n;
}

options make_options(const std::string& dir) {
  options o;
  o.enable_compression = env_is("ELOQSTORE_BENCH_COMPRESS", "1");
  o.store_path = {dir};
  o.num_threads = 1;
  o.buffer_pool_size = 1 << 20;  // 256 index pages: smaller than the index of the data set
  // Device figures: every data page read comes from the device, unless
  // ELOQSTORE_BENCH_DATA_CACHE gives the data page cache bytes.
  o.data_page_cache_size = 0;
  if (const char* cache = std::getenv("ELOQSTORE_BENCH_DATA_CACHE"); cache != nullptr) {
    o.data_page_cache_size = std::strtoull(cache, nullptr, 10);
  }
  if (append_mode()) {
    o.data_append_mode = true;
    o.pages_per_file_shift = 11;
  }
  if (const char* shift = std::getenv("ELOQSTORE_BENCH_SHIFT"); shift != nullptr) {
    o.pages_per_file_shift = static_cast<std::uint8_t>(std::strtoul(shift, nullptr, 10));
  }
  return o;
}

// False where it is not allowed (not root).
bool drop_os_cache() {
  ::sync();
  std::ofstream drop("/proc/sys/vm/drop_caches");
  drop << "1\n";
  drop.flush();
  return drop.good();
}

// Gets of one 32 MiB and one 128 MiB value in a fresh store (each an overflow chain of 8 K and
// 32 K pages), the OS page cache dropped before each get: the median of 3 gets.
template <typename store_type>
void large_values(const std::string& dir) {
  std::filesystem::remove_all(dir);
  options o = make_options(dir);
  const table_ident t{"bench", 0};
  for (const std::size_t mib : {32, 128}) {
    const std::string key = "large" + std::to_string(mib);
    {
      store_type store(o);
      if (store.start() != error::ok) {
        std::exit(1);
      }
      std::vector<write_entry> b;
      b.push_back(write_entry{key, text_value(mib << 20, mib), 1, write_op::upsert, 0});
      if (const error e = store.write(t, std::move(b)); e != error::ok) {
        std::fprintf(stderr, "large: write of %zu MiB: %s\n", mib,
                     std::string(error_message(e)).c_str());
        std::exit(1);
      }
      store.stop();
    }
    store_type store(o);
    if (store.start() != error::ok) {
      std::exit(1);
    }
    std::vector<double> secs;
    bool dropped = true;
    for (int i = 0; i < 3; ++i) {
      dropped = drop_os_cache() && dropped;
      const auto start = bench_clock::now();
      const auto got = store.get(t, key);
      secs.push_back(since(start));
      if (!got.ok() || got->value.size() != mib << 20) {
        std::fprintf(stderr, "large: get of %zu MiB failed\n", mib);
        std::exit(1);
      }
    }
    store.stop();
    std::sort(secs.begin(), secs.end());
    std::printf("  large     get of a %3zu MiB value: %.3f s (%.0f MB/s), median of 3%s\n", mib,
                secs[1], static_cast<double>(mib << 20) / 1e6 / secs[1],
                dropped ? "" : " (OS page cache not dropped: not root)");
  }
  std::filesystem::remove_all(dir);
}

// Random point reads with `depth` requests in flight (callbacks resubmit on the shard).
template <typename store_type>
void reads_depth(const std::string& dir, std::uint64_t keys, std::size_t depth) {
  options o = make_options(dir);
  o.buffer_pool_size = 64 << 20;  // the whole index of the data set
  // Declared before the store, so they outlive its shard threads: the last callback still
  // touches `done` (and the store its request) after the waiter has seen the count.
  std::deque<std::vector<read_request>> request_sets;
  std::atomic<std::uint64_t> issued{0};
  std::atomic<std::uint64_t> done{0};
  std::atomic<std::uint64_t> missing{0};
  store_type store(o);
  if (store.start() != error::ok) {
    std::exit(1);
  }
  const table_ident t{"bench", 0};
  const auto run = [&](std::uint64_t total) {
    std::vector<read_request>& reqs = request_sets.emplace_back(depth);
    issued = 0;
    done = 0;
    missing = 0;
    // Keys are made before the clock starts: the callbacks run on the shard thread, and the
    // measurement is of the store, not of snprintf.
    std::mt19937_64 g(depth);
    std::vector<std::string> key_list(total + depth);
    for (auto& k : key_list) {
      k = key_of(g() % keys);
    }
    std::function<void(request&)> on_done = [&](request& r) {
      if (r.status() != error::ok) {
        ++missing;
      }
      if (const std::uint64_t n = issued.fetch_add(1); n < total) {
        auto& rr = static_cast<read_request&>(r);
        rr.set_args(t, std::move(key_list[n]));
        store.exec_async(rr, 0, on_done);
      }
      if (done.fetch_add(1) + 1 == total) {
        done.notify_all();
      }
    };
    const double cpu_start = process_cpu_seconds();
    const auto start = bench_clock::now();
    for (auto& r : reqs) {
      if (const std::uint64_t n = issued.fetch_add(1); n < total) {
        r.set_args(t, std::move(key_list[n]));
        store.exec_async(r, 0, on_done);
      }
    }
    for (std::uint64_t seen = done.load(); seen < total; seen = done.load()) {
      done.wait(seen);  // woken by the last callback only (no polling beside the shard)
    }
    const double secs = since(start);
    const double cpu_us = (process_cpu_seconds() - cpu_start) * 1e6 / static_cast<double>(total);
    return std::tuple<double, std::uint64_t, double>(total / secs, missing.load(), cpu_us);
  };
  run(std::min<std::uint64_t>(keys / 10 + 20000, 60000));  // warm the index cache
  drop_os_cache();
  const auto [ops, not_found, cpu_us] = run(depth == 1 ? 40000 : 300000);
  std::printf("read  random, depth %3zu:  %8.0f ops/s  %5.1f us CPU/op%s\n", depth, ops, cpu_us,
              not_found != 0 ? " (MISSING KEYS)" : "");
}

template <typename store_type>
void load(const std::string& dir, std::uint64_t keys, std::uint64_t batch) {
  std::filesystem::remove_all(dir);
  store_type store(make_options(dir));
  if (store.start() != error::ok) {
    std::exit(1);
  }
  const table_ident t{"bench", 0};
  // The batches are built before the clock starts: the figure is the store's.
  const std::string value(1000, 'v');
  const bool text = env_is("ELOQSTORE_BENCH_VALUES", "text");
  std::vector<std::vector<write_entry>> batches;
  for (std::uint64_t first = 0; first < keys; first += batch) {
    auto& b = batches.emplace_back();
    for (std::uint64_t i = first; i < std::min(keys, first + batch); ++i) {
      b.push_back({key_of(i), text ? text_value(1000, i) : value, 1, write_op::upsert, 0});
    }
  }
  const auto start = bench_clock::now();
  for (auto& b : batches) {
    if (store.write(t, std::move(b)) != error::ok) {
      std::fprintf(stderr, "write failed\n");
      std::exit(1);
    }
  }
  const double s = since(start);
  std::printf("load  batch %6llu: %8.0f keys/s  %7.1f MB/s (values, durable per batch)\n",
              static_cast<unsigned long long>(batch), keys / s, keys * 1000.0 / s / 1e6);
  if (text) {
    const std::uint64_t disk = bytes_on_disk(dir);
    std::printf("      on disk: %.1f MB for %.1f MB of keys and values (%.2fx)\n", disk / 1e6,
                keys * 1016.0 / 1e6, keys * 1016.0 / static_cast<double>(disk));
  }
}

template <typename store_type>
void reads_scan_small(const std::string& dir, std::uint64_t keys) {
  store_type store(make_options(dir));
  if (store.start() != error::ok) {
    std::exit(1);
  }
  const table_ident t{"bench", 0};
  std::mt19937_64 g(1);
  const std::uint64_t n = std::min<std::uint64_t>(keys, 200000);
  auto start = bench_clock::now();
  std::uint64_t found = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    found += store.get(t, key_of(g() % keys)).ok() ? 1 : 0;
  }
  double s = since(start);
  std::printf("read  random, 1 client:   %8.0f ops/s (%llu/%llu found)\n", n / s,
              static_cast<unsigned long long>(found), static_cast<unsigned long long>(n));
  start = bench_clock::now();
  std::uint64_t scanned = 0;
  ranges::for_each(store.scan(t, {}, {}, 4096), [&](const kv_entry&) { ++scanned; });
  s = since(start);
  std::printf("scan  full:               %8.0f entries/s (%llu entries)\n", scanned / s,
              static_cast<unsigned long long>(scanned));
  const std::string value(1000, 'w');
  constexpr int rounds = 200;
  std::size_t chunks = 0;
  start = bench_clock::now();
  for (int r = 0; r < rounds; ++r) {
    std::vector<write_entry> b;
    for (int i = 0; i < 10; ++i) {
      b.push_back({key_of(g() % keys), value, 2, write_op::upsert, 0});
    }
    std::sort(b.begin(), b.end(), [](auto& a, auto& c) { return a.key < c.key; });
    b.erase(std::unique(b.begin(), b.end(), [](auto& a, auto& c) { return a.key == c.key; }),
            b.end());
    if (store.write(t, std::move(b)) != error::ok) {
      std::exit(1);
    }
    chunks += store.last_write_stats().mapping_chunks_copied;
  }
  s = since(start);
  std::printf(
      "small 10-key batch:       %8.1f us/batch durable, %.1f mapping chunks copied/batch\n",
      s / rounds * 1e6, static_cast<double>(chunks) / rounds);
}

// 64 clients writing single keys durably to one partition: 64 client threads (sync API), or
// 64 asynchronous clients (64 requests in flight, each callback, on the shard thread,
// submitting its client's next write; no client threads to schedule).
template <typename store_type>
void small_writes(const std::string& dir, bool group_commit, bool async_clients) {
  std::filesystem::remove_all(dir);
  options o = make_options(dir);
  o.group_commit = group_commit;
  store_type store(o);
  if (store.start() != error::ok) {
    std::exit(1);
  }
  const table_ident t{"clients", 0};
  constexpr int clients = 64;
  // Long enough that thread start-up does not count: a few seconds either way.
  const int per_client = group_commit ? 400 : 50;
  std::atomic<int> failures{0};
  const auto start = bench_clock::now();
  if (!async_clients) {
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        for (int i = 0; i < per_client; ++i) {
          if (store.put(t, key_of(static_cast<std::uint64_t>(c) * 1000 + i), "value", 1) !=
              error::ok) {
            ++failures;
          }
        }
      });
    }
    for (auto& th : threads) {
      th.join();
    }
  } else {
    std::vector<batch_write_request> reqs(clients);
    std::vector<int> sent(clients, 0);
    std::atomic<int> done{0};
    const auto next = [&](int c) {
      const auto key = key_of(static_cast<std::uint64_t>(c) * 1000 + sent[c]);
      ++sent[c];
      reqs[c].set_args(t, {{key, "value", 1, write_op::upsert, 0}});
    };
    std::function<void(request&)> on_done = [&](request& r) {
      const int c = static_cast<int>(r.user_data());
      if (r.status() != error::ok) {
        ++failures;
      }
      if (sent[c] < per_client) {
        next(c);
        store.exec_async(reqs[c], static_cast<std::uint64_t>(c), on_done);
      } else {
        ++done;
      }
    };
    for (int c = 0; c < clients; ++c) {
      next(c);
      store.exec_async(reqs[c], static_cast<std::uint64_t>(c), on_done);
    }
    while (done.load() < clients) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  const double s = since(start);
  const auto [groups, writes] = store.write_groups();
  std::printf(
      "clients 64 %-7s 1-key durable writes, group commit %-3s: %8.0f writes/s (groups: "
      "largest %zu, average %.1f)%s\n",
      async_clients ? "async" : "threads", group_commit ? "on" : "off", clients * per_client / s,
      store.largest_group(),
      groups == 0 ? 0.0 : static_cast<double>(writes) / static_cast<double>(groups),
      failures.load() != 0 ? " FAILURES" : "");
}

void mapping_copy() {
  constexpr std::size_t pages = 1 << 20;
  std::vector<std::uint64_t> values(pages, detail::encode_file_page(detail::file_page_id(1)));
  const auto table = detail::mapping_table::from_values(values);
  std::mt19937_64 g(2);
  constexpr int rounds = 200;
  std::uint64_t sink = 0;
  auto start = bench_clock::now();
  for (int r = 0; r < rounds; ++r) {
    detail::mapping_table copy = table;  // what a write does: copy, then change 10 pages
    for (int i = 0; i < 10; ++i) {
      copy.set(detail::page_id(static_cast<std::uint32_t>(g() % pages)), 9);
    }
    sink += copy.chunks_copied();
  }
  const double chunked = since(start) / rounds;
  start = bench_clock::now();
  for (int r = 0; r < rounds; ++r) {
    std::vector<std::uint64_t> copy(values);  // the reference copies the whole table
    for (int i = 0; i < 10; ++i) {
      copy[g() % pages] = 9;
    }
    sink += copy[0];
  }
  const double whole = since(start) / rounds;
  std::printf(
      "mapping 1M pages, 10-page batch: chunked %.1f us, whole-table %.1f us (%.0fx) [%llu]\n",
      chunked * 1e6, whole * 1e6, whole / chunked, static_cast<unsigned long long>(sink % 10));
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp/eloqstore-bench";
  std::uint64_t keys = 1000000;
  std::string which = "both";
  std::string phases = "load,read,qd,clients,mapping,large";
  CLI::App app{"engine_bench: the engine on local files, uring_io and pread_io"};
  app.add_option("directory", dir,
                 "a scratch directory (removed at the end unless phases are given)");
  app.add_option("keys", keys, "keys to load")
      ->check(CLI::Range(std::uint64_t{1000}, std::uint64_t{1} << 34));
  app.add_option("backend", which, "uring, pread or both")
      ->check(CLI::IsMember({"uring", "pread", "both"}));
  auto* phases_opt = app.add_option("phases", phases,
                                    "comma-separated: load, load1000, load20000, read, qd, qd1, "
                                    "qd32, qd128, clients, mapping, large");
  CLI11_PARSE(app, argc, argv);
  const auto wanted = [&](std::string_view phase) {
    return ("," + phases + ",").find("," + std::string(phase) + ",") != std::string::npos;
  };
  const auto suite = [&]<typename store_type>(const char* name) {
    std::printf("eloqstore engine_bench: %s, 1 shard, %llu keys of 16 B + 1000 B%s\n", name,
                static_cast<unsigned long long>(keys), append_mode() ? ", append mode" : "");
    for (const std::uint64_t batch : {1000, 20000}) {
      if (wanted("load") || wanted("load" + std::to_string(batch))) {
        load<store_type>(dir, keys, batch);
      }
    }
    if (wanted("read")) {
      reads_scan_small<store_type>(dir, keys);
    }
    for (const std::size_t depth : {1, 32, 128}) {
      if (wanted("qd") || wanted("qd" + std::to_string(depth))) {
        reads_depth<store_type>(dir, keys, depth);
      }
    }
    if (wanted("clients")) {
      const std::string clients_dir = dir + "-clients";
      for (const bool async_clients : {false, true}) {
        small_writes<store_type>(clients_dir, false, async_clients);
        small_writes<store_type>(clients_dir, true, async_clients);
      }
      std::filesystem::remove_all(clients_dir);
    }
    if (wanted("large")) {
      large_values<store_type>(dir + "-large");
    }
  };
  if (which == "both" || which == "uring") {
    suite.template operator()<EloqStore<default_traits>>("uring_io + fibers (default_traits)");
  }
  if (which == "both" || which == "pread") {
    suite.template operator()<EloqStore<pread_traits>>("pread_io + inline (pread_traits)");
  }
  if (wanted("mapping")) {
    mapping_copy();
  }
  if (phases_opt->count() == 0) {
    std::filesystem::remove_all(dir);
  }
  return 0;
}
