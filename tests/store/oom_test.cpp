// Running out of memory: this binary replaces the global operator new, and while a test arms
// it, the N-th allocation on a shard thread fails (std::bad_alloc, or nullptr for the
// nothrow forms). A request that runs out completes with error::out_of_mem and changes
// nothing; the store goes on serving, and a restart finds exactly what was acknowledged.
// Run over memory_io (run-to-completion shards) and uring_io with fiber tasks.
#include <sys/prctl.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/eloqstore.hpp>

#include "support/page_store.hpp"
#include "support/store_fixture.hpp"

namespace {

// < 0: disarmed. Otherwise the number of shard-thread allocations that still succeed.
std::atomic<long> allocations_left{-1};
std::atomic<long> failures_injected{0};

bool on_shard_thread() noexcept {
  char name[17] = {};
  ::prctl(PR_GET_NAME, name, 0, 0, 0);
  return std::strcmp(name, "eloqstore-shard") == 0;
}

// True if this allocation is to fail.
bool fail_now() noexcept {
  if (allocations_left.load(std::memory_order_relaxed) < 0 || !on_shard_thread()) {
    return false;
  }
  if (allocations_left.fetch_sub(1, std::memory_order_relaxed) == 0) {
    failures_injected.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  return false;
}

void* allocate(std::size_t n, std::size_t align) noexcept {
  if (fail_now()) {
    return nullptr;
  }
  n = n == 0 ? 1 : n;
  if (align <= alignof(std::max_align_t)) {
    return std::malloc(n);
  }
  void* p = nullptr;
  return ::posix_memalign(&p, align, n) == 0 ? p : nullptr;
}

}  // namespace

// The replacements below pair malloc with free themselves; GCC sees only new and free.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(std::size_t n) {
  if (void* p = allocate(n, 0)) {
    return p;
  }
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  return operator new(n);
}
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = allocate(n, static_cast<std::size_t>(a))) {
    return p;
  }
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return operator new(n, a);
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return allocate(n, 0);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return allocate(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}

using namespace eloqstore;

namespace {

using kv_model = std::map<std::string, std::string>;

std::string key_of(std::uint64_t i) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "key%08llu", static_cast<unsigned long long>(i));
  return buf;
}

template <typename Store>
void check_model(Store& s, const table_ident& t, const kv_model& m) {
  std::vector<kv_entry> got;
  scan_request req;
  req.set_args(t, {}, {}, true);
  REQUIRE(s.exec_sync(req) == error::ok);
  REQUIRE(!req.has_remaining());
  auto it = m.begin();
  bool same = req.entries().size() == m.size();
  for (const kv_entry& e : req.entries()) {
    if (it == m.end() || e.key != it->first || e.value != it->second) {
      same = false;
      break;
    }
    ++it;
  }
  CHECK(same);
  std::string problem;
  const error v = s.verify(t, problem);
  INFO("verify: " << problem);
  CHECK(v == error::ok);
}

// Random batches, each with an allocation failure armed somewhere in its execution.
template <typename Fixture>
void run_oom_batches(Fixture& fx) {
  fx.opts.manifest_limit = 64 << 10;  // snapshots too, not only appended records
  test::rng r(11);
  const table_ident t{"oom", 0};
  kv_model m;
  auto s = fx.make();
  REQUIRE(s->start() == error::ok);
  {
    std::vector<write_entry> load;
    for (std::uint64_t i = 0; i < 3000; i += 3) {
      load.push_back(
          write_entry{key_of(i), r.bytes(r.uniform(1, 200), 26), 1, write_op::upsert, 0});
      m[load.back().key] = load.back().value;
    }
    REQUIRE(s->write(t, load) == error::ok);
  }
  int failed = 0;
  int succeeded = 0;
  for (int round = 0; round < 300; ++round) {
    CAPTURE(round);
    std::map<std::string, write_entry> batch;
    const std::size_t n = r.chance(0.1) ? r.uniform(100, 600) : r.uniform(1, 12);
    for (std::size_t i = 0; i < n; ++i) {
      write_entry w;
      w.key = key_of(r.uniform(0, 3500));
      w.op = r.chance(0.2) ? write_op::erase : write_op::upsert;
      if (w.op == write_op::upsert) {
        w.value = r.bytes(r.chance(0.05) ? r.uniform(5000, 20000) : r.uniform(1, 300), 26);
      }
      w.timestamp = 2 + static_cast<std::uint64_t>(round);
      batch[w.key] = std::move(w);
    }
    std::vector<write_entry> b;
    for (auto& [k, w] : batch) {
      b.push_back(std::move(w));
    }
    const std::vector<write_entry> copy = b;
    allocations_left = static_cast<long>(r.uniform(0, 400));
    const error e = s->write(t, std::move(b));
    allocations_left = -1;
    if (e == error::ok) {
      ++succeeded;
      for (const write_entry& w : copy) {
        if (w.op == write_op::erase) {
          m.erase(w.key);
        } else {
          m[w.key] = w.value;
        }
      }
    } else {
      REQUIRE(e == error::out_of_mem);
      ++failed;
    }
    if (round % 10 == 0) {
      check_model(*s, t, m);
    }
  }
  CHECK(failed > 0);
  CHECK(succeeded > 0);
  // Reads that run out of memory fail the same way, and the next ones succeed.
  int read_failures = 0;
  for (int q = 0; q < 200; ++q) {
    const std::string k = key_of(r.uniform(0, 3500));
    allocations_left = static_cast<long>(r.uniform(0, 8));
    const auto got = s->get(t, k);
    allocations_left = -1;
    if (got.status() == error::out_of_mem) {
      ++read_failures;
      continue;
    }
    const auto it = m.find(k);
    CHECK(got.ok() == (it != m.end()));
    if (got.ok() && it != m.end()) {
      CHECK(got->value == it->second);
    }
  }
  INFO("reads failed: " << read_failures);
  // A successful write replaces a manifest that a failed one may have left a record in
  // (the record of a failed manifest write is never relied on), then a restart.
  REQUIRE(s->put(t, "last", "write", 1000) == error::ok);
  m["last"] = "write";
  check_model(*s, t, m);
  s->stop();
  REQUIRE(s->start() == error::ok);
  check_model(*s, t, m);
  s->stop();
}

}  // namespace

TEST_CASE_TEMPLATE("oom: an allocation failure fails its request alone and changes nothing",
                   Fixture, test::memory_fixture, test::uring_fixture) {
  Fixture fx;
  run_oom_batches(fx);
  MESSAGE("allocation failures injected: " << failures_injected.load());
}
