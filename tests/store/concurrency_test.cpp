// Concurrency of the runtime: snapshot atomicity under mixed load, ordering of many async
// batches to one partition, and stop/start cycles while clients keep submitting. Each runs
// over the run-to-completion shards (memory_io) and the fiber shards over io_uring with one
// and four shards. ELOQSTORE_STRESS_SECONDS lengthens the mixed-load test (default 2 s).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/eloqstore.hpp>

#include "support/page_store.hpp"
#include "support/store_fixture.hpp"

using namespace eloqstore;

namespace {

double stress_seconds() {
  const char* env = std::getenv("ELOQSTORE_STRESS_SECONDS");
  return env != nullptr ? std::atof(env) : 2.0;
}

std::string seg_key(std::size_t segment, std::size_t key) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "s%03zu/k%03zu", segment, key);
  return buf;
}

constexpr std::size_t partitions = 4;
constexpr std::size_t segments = 12;
constexpr std::size_t keys_per_segment = 16;
constexpr std::int64_t initial_value = 1000;
constexpr std::size_t writers = 3;

// Sums every segment of a scan result; false if any segment's sum is off.
bool segment_sums_hold(const std::vector<kv_entry>& entries, std::size_t& segments_seen) {
  std::map<std::string, std::int64_t> sums;
  std::map<std::string, std::size_t> counts;
  for (const kv_entry& e : entries) {
    const std::string seg = e.key.substr(0, 4);
    sums[seg] += std::stoll(e.value);
    ++counts[seg];
  }
  segments_seen = sums.size();
  for (const auto& [seg, sum] : sums) {
    if (sum != initial_value * static_cast<std::int64_t>(keys_per_segment) ||
        counts[seg] != keys_per_segment) {
      return false;
    }
  }
  return true;
}

}  // namespace

TEST_CASE_TEMPLATE(
    "concurrency: segment sums stay constant under concurrent writes, scans and reads", Fixture,
    test::memory_fixture, test::uring_fixture, test::uring4_fixture) {
  Fixture fx;
  auto store = fx.make();
  REQUIRE(store->start() == error::ok);
  // Every segment starts at keys_per_segment * initial_value.
  for (std::size_t p = 0; p < partitions; ++p) {
    std::vector<write_entry> batch;
    for (std::size_t s = 0; s < segments; ++s) {
      for (std::size_t k = 0; k < keys_per_segment; ++k) {
        batch.push_back(write_entry{seg_key(s, k), std::to_string(initial_value), 1});
      }
    }
    REQUIRE(store->write(table_ident{"atom", static_cast<std::uint32_t>(p)}, batch) == error::ok);
  }
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ts{2};
  std::atomic<std::size_t> transfers{0};
  std::atomic<std::size_t> scans{0};
  std::atomic<std::size_t> failures{0};
  std::atomic<std::size_t> errors{0};
  std::vector<std::thread> threads;
  // Writer w owns the segments s with s % writers == w in every partition, so it knows their
  // values exactly and moves value between their keys in batches.
  for (std::size_t w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      test::rng r(100 + w);
      std::vector<std::vector<std::vector<std::int64_t>>> values(
          partitions, std::vector<std::vector<std::int64_t>>(
                          segments, std::vector<std::int64_t>(keys_per_segment, initial_value)));
      while (!stop.load()) {
        const std::size_t p = r.uniform(0, partitions - 1);
        std::size_t s = r.uniform(0, segments - 1);
        s = s - s % writers + w;
        if (s >= segments) {
          continue;
        }
        auto& v = values[p][s];
        // Several moves in one batch; every touched key is written once.
        std::map<std::size_t, bool> touched;
        for (int m = 0; m < 3; ++m) {
          const std::size_t a = r.uniform(0, keys_per_segment - 1);
          const std::size_t b = r.uniform(0, keys_per_segment - 1);
          const auto amount = static_cast<std::int64_t>(r.uniform(0, 50));
          v[a] -= amount;
          v[b] += amount;
          touched[a] = touched[b] = true;
        }
        std::vector<write_entry> batch;
        const std::uint64_t stamp = ts.fetch_add(1);
        for (const auto& [k, unused] : touched) {
          batch.push_back(write_entry{seg_key(s, k), std::to_string(v[k]), stamp});
        }
        if (store->write(table_ident{"atom", static_cast<std::uint32_t>(p)}, batch) != error::ok) {
          ++errors;
          return;
        }
        ++transfers;
      }
    });
  }
  // Readers: whole-partition scans in one request (one snapshot), and single-segment scans.
  for (std::size_t rd = 0; rd < 2; ++rd) {
    threads.emplace_back([&, rd] {
      test::rng r(200 + rd);
      while (!stop.load()) {
        const std::size_t p = r.uniform(0, partitions - 1);
        scan_request req;
        if (r.chance(0.5)) {
          req.set_args(table_ident{"atom", static_cast<std::uint32_t>(p)}, {}, {});
        } else {
          const std::size_t s = r.uniform(0, segments - 1);
          req.set_args(table_ident{"atom", static_cast<std::uint32_t>(p)}, seg_key(s, 0),
                       seg_key(s + 1, 0));
        }
        req.set_pagination(0, 0);
        req.set_reverse(r.chance(0.3));
        if (store->exec_sync(req) != error::ok) {
          ++errors;
          return;
        }
        std::size_t seen = 0;
        if (!segment_sums_hold(req.entries(), seen) || seen == 0) {
          ++failures;
        }
        ++scans;
      }
    });
  }
  // Point reads: every key always holds a number.
  threads.emplace_back([&] {
    test::rng r(300);
    while (!stop.load()) {
      const auto p = static_cast<std::uint32_t>(r.uniform(0, partitions - 1));
      auto got = store->get(table_ident{"atom", p}, seg_key(r.uniform(0, segments - 1),
                                                            r.uniform(0, keys_per_segment - 1)));
      if (!got.ok() || got->value.empty()) {
        ++errors;
        return;
      }
    }
  });
  std::this_thread::sleep_for(std::chrono::duration<double>(stress_seconds()));
  stop = true;
  for (std::thread& t : threads) {
    t.join();
  }
  CHECK(errors.load() == 0);
  CHECK(failures.load() == 0);
  CHECK(transfers.load() > 0);
  CHECK(scans.load() > 0);
  // After a restart every segment still sums up and the trees are sound.
  store->stop();
  REQUIRE(store->start() == error::ok);
  for (std::size_t p = 0; p < partitions; ++p) {
    const table_ident t{"atom", static_cast<std::uint32_t>(p)};
    scan_request req;
    req.set_args(t, {}, {});
    req.set_pagination(0, 0);
    REQUIRE(store->exec_sync(req) == error::ok);
    std::size_t seen = 0;
    CHECK(segment_sums_hold(req.entries(), seen));
    CHECK(seen == segments);
    std::string problem;
    CHECK(store->verify(t, problem) == error::ok);
  }
}

TEST_CASE_TEMPLATE("concurrency: 128 async batches to one partition end with the last batch",
                   Fixture, test::memory_fixture, test::uring_fixture, test::uring4_fixture) {
  Fixture fx;
  auto store = fx.make();
  REQUIRE(store->start() == error::ok);
  const table_ident t{"order", 3};
  constexpr std::size_t batch_count = 128;
  constexpr std::size_t keys = 40;
  std::vector<batch_write_request> reqs(batch_count);
  std::atomic<std::size_t> done{0};
  std::atomic<std::size_t> failed{0};
  for (std::size_t i = 0; i < batch_count; ++i) {
    std::vector<write_entry> batch;
    for (std::size_t k = 0; k < keys; ++k) {
      batch.push_back(write_entry{"key" + std::to_string(k),
                                  "batch" + std::to_string(i) + "/" + std::to_string(k), i + 1});
    }
    reqs[i].set_args(t, std::move(batch));
  }
  for (std::size_t i = 0; i < batch_count; ++i) {
    REQUIRE(store->exec_async(reqs[i], i, [&](request& r) {
      if (r.status() != error::ok) {
        ++failed;
      }
      ++done;
    }));
  }
  while (done.load() < batch_count) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(failed.load() == 0);
  for (int round = 0; round < 2; ++round) {  // before and after a restart
    for (std::size_t k = 0; k < keys; ++k) {
      auto got = store->get(t, "key" + std::to_string(k));
      REQUIRE(got.ok());
      CHECK(got->value == "batch127/" + std::to_string(k));
      CHECK(got->timestamp == batch_count);
    }
    store->stop();
    REQUIRE(store->start() == error::ok);
  }
}

TEST_CASE_TEMPLATE("concurrency: stop/start cycles while clients keep submitting", Fixture,
                   test::memory_fixture, test::uring_fixture, test::uring4_fixture) {
  Fixture fx;
  auto store = fx.make();
  REQUIRE(store->start() == error::ok);
  constexpr std::size_t clients = 3;
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> unexpected{0};
  std::atomic<std::size_t> refused{0};
  // What each client saw acknowledged: key -> value (each client owns its keys).
  std::vector<std::map<std::string, std::string>> acked(clients);
  std::vector<std::thread> threads;
  for (std::size_t c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      test::rng r(400 + c);
      std::uint64_t stamp = 1;
      while (!stop.load()) {
        const auto p = static_cast<std::uint32_t>(r.uniform(0, 5));
        const std::string key = "c" + std::to_string(c) + "/" + std::to_string(r.uniform(0, 30));
        const std::string value = std::to_string(stamp);
        const error e = store->put(table_ident{"cycle", p}, key, value, stamp++);
        if (e == error::ok) {
          acked[c][std::to_string(p) + "|" + key] = value;
        } else if (e == error::not_running) {
          ++refused;
        } else {
          ++unexpected;
        }
      }
    });
  }
  for (int cycle = 0; cycle < 12; ++cycle) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    store->stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    REQUIRE(store->start() == error::ok);
  }
  stop = true;
  for (std::thread& t : threads) {
    t.join();
  }
  CHECK(unexpected.load() == 0);
  store->stop();
  REQUIRE(store->start() == error::ok);
  std::size_t checked = 0;
  for (const auto& m : acked) {
    for (const auto& [pk, value] : m) {
      const auto bar = pk.find('|');
      const auto p = static_cast<std::uint32_t>(std::stoul(pk.substr(0, bar)));
      auto got = store->get(table_ident{"cycle", p}, pk.substr(bar + 1));
      REQUIRE(got.ok());
      CHECK(got->value == value);
      ++checked;
    }
  }
  CHECK(checked > 0);
}

TEST_CASE_TEMPLATE("concurrency: many first reads of a cold partition load it once", Fixture,
                   test::memory_fixture, test::uring_fixture, test::uring4_fixture) {
  // Every read of a partition not yet loaded loads it; on fiber shards the loads suspend on
  // their I/O, so the reads behind the first find it loading. They must share one state.
  Fixture fx;
  auto store = fx.make();
  REQUIRE(store->start() == error::ok);
  constexpr std::size_t parts = 3;
  constexpr std::size_t keys = 50;
  for (std::size_t p = 0; p < parts; ++p) {
    std::vector<write_entry> batch;
    for (std::size_t k = 0; k < keys; ++k) {
      batch.push_back(
          write_entry{"key" + std::to_string(1000 + k), "v" + std::to_string(p * k), 1});
    }
    REQUIRE(store->write(table_ident{"cold", static_cast<std::uint32_t>(p)}, batch) == error::ok);
  }
  for (int round = 0; round < 3; ++round) {
    store->stop();
    REQUIRE(store->start() == error::ok);  // every partition cold again
    std::vector<read_request> reqs(parts * keys);
    std::atomic<std::size_t> done{0};
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      reqs[i].set_args(table_ident{"cold", static_cast<std::uint32_t>(i % parts)},
                       "key" + std::to_string(1000 + i / parts));
    }
    for (auto& r : reqs) {
      REQUIRE(store->exec_async(r, 0, [&](request&) { ++done; }));
    }
    while (done.load() < reqs.size()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      REQUIRE(reqs[i].status() == error::ok);
      CHECK(reqs[i].value() == "v" + std::to_string((i % parts) * (i / parts)));
    }
  }
}
