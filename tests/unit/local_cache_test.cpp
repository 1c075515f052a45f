// The bookkeeping of cloud mode's bounded cache (detail/cloud/local_cache.hpp): charges,
// least-recently-used victims, what is never a victim, and out_of_space with nothing changed.
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/detail/cloud/local_cache.hpp>

using namespace eloqstore;
using detail::cache_shard;
using state = cache_shard::state;

namespace {

const table_ident t0{"t", 0};
const table_ident t1{"t", 1};

std::vector<std::string> names_of(const std::vector<cache_shard::victim>& v) {
  std::vector<std::string> out;
  for (const auto& x : v) {
    out.push_back(x.table.to_string() + "/" + x.name);
  }
  return out;
}

// Admits a file that must fit without evicting anything.
void add(cache_shard& c, const table_ident& t, const std::string& name, std::uint64_t bytes) {
  std::vector<cache_shard::victim> v;
  REQUIRE(c.admit(t, name, bytes, state::ready, v) == error::ok);
  REQUIRE(v.empty());
}

// Unlinking done: the victims leave the table.
void evicted(cache_shard& c, const std::vector<cache_shard::victim>& v) {
  for (const auto& x : v) {
    CHECK(c.find(x.table, x.name) != nullptr);
    CHECK(c.find(x.table, x.name)->st == state::evicting);
    CHECK(c.erase(x.table, x.name).empty());
  }
}

}  // namespace

TEST_CASE("local cache: victims are the least recently used, down to the low mark") {
  cache_shard c(100, 70);
  add(c, t0, "a", 20);
  add(c, t0, "b", 20);
  add(c, t1, "c", 20);
  add(c, t1, "d", 20);
  CHECK(c.used() == 80);
  c.touch(*c.find(t0, "a"));  // a is now the most recently used: b goes first

  std::vector<cache_shard::victim> v;
  REQUIRE(c.admit(t0, "e", 30, state::fetching, v) == error::ok);
  // 80 + 30 > 100; down to 70: b (60 + 30 = 90 > 70), then c (40 + 30 = 70).
  CHECK(names_of(v) == std::vector<std::string>{"t.0/b", "t.1/c"});
  CHECK(c.used() == 70);
  CHECK(c.files() == 5);  // the victims stay, evicting, until unlinked
  evicted(c, v);
  CHECK(c.files() == 3);
  CHECK(c.evictions() == 2);
  CHECK(c.used() == 70);
  CHECK(c.find(t0, "e")->st == state::fetching);
}

TEST_CASE("local cache: dirty, pinned and busy files are never victims") {
  cache_shard c(100, 100);
  add(c, t0, "dirty", 30);
  add(c, t0, "pinned", 30);
  add(c, t0, "clean", 30);
  c.find(t0, "dirty")->dirty = true;
  c.find(t0, "pinned")->pins = 1;

  std::vector<cache_shard::victim> v;
  REQUIRE(c.admit(t0, "new", 40, state::fetching, v) == error::ok);
  CHECK(names_of(v) == std::vector<std::string>{"t.0/clean"});
  evicted(c, v);
  CHECK(c.used() == 100);

  // Nothing is evictable now, but the pinned and the downloading file will be: busy (the
  // caller waits), and nothing changed.
  v.clear();
  CHECK(c.admit(t0, "more", 10, state::ready, v) == error::busy);
  CHECK(v.empty());
  CHECK(c.used() == 100);
  CHECK(c.find(t0, "more") == nullptr);
  CHECK(c.find(t0, "pinned")->st == state::ready);

  // Unpinned, it can go.
  c.find(t0, "pinned")->pins = 0;
  (void)c.settle(*c.find(t0, "new"), state::ready);
  REQUIRE(c.admit(t0, "more", 10, state::ready, v) == error::ok);
  CHECK(names_of(v) == std::vector<std::string>{"t.0/pinned"});
  evicted(c, v);

  // Only dirty files stand in the way: out_of_space (waiting would not help).
  c.find(t0, "new")->dirty = true;
  c.find(t0, "more")->dirty = true;
  v.clear();
  CHECK(c.admit(t0, "last", 40, state::ready, v) == error::out_of_space);
  CHECK(c.used() == 80);
}

TEST_CASE("local cache: a file larger than the limit, growth, and a failed unlink") {
  cache_shard c(100, 90);
  std::vector<cache_shard::victim> v;
  CHECK(c.admit(t0, "huge", 101, state::ready, v) == error::out_of_space);
  CHECK(c.used() == 0);

  add(c, t0, "a", 50);
  add(c, t0, "b", 40);
  // b grows by 30: a goes (90 + 30 > 100, down to 90: 40 + 30 = 70).
  REQUIRE(c.grow(*c.find(t0, "b"), 70, v) == error::ok);
  CHECK(names_of(v) == std::vector<std::string>{"t.0/a"});
  CHECK(c.used() == 70);
  // The unlink failed: a is charged again and ready.
  (void)c.settle(*c.find(t0, "a"), state::ready);
  CHECK(c.used() == 120);
  CHECK(c.find(t0, "a")->evictable());
  // Over the limit: trim brings it down to the low mark, oldest first (a was re-linked at
  // the front, so b, then a).
  v.clear();
  REQUIRE(c.trim(v) == error::ok);
  CHECK(names_of(v) == std::vector<std::string>{"t.0/b"});
  evicted(c, v);
  CHECK(c.used() == 50);
  // A growth nothing can make room for fails and changes nothing.
  c.find(t0, "a")->dirty = true;
  v.clear();
  CHECK(c.grow(*c.find(t0, "a"), 101, v) == error::out_of_space);
  CHECK(c.find(t0, "a")->bytes == 50);
}

TEST_CASE("local cache: waiters are handed back when a file settles or goes") {
  cache_shard c(100, 100);
  std::vector<cache_shard::victim> v;
  REQUIRE(c.admit(t0, "a", 10, state::fetching, v) == error::ok);
  int task = 0;
  c.find(t0, "a")->waiters.push_back(cache_shard::waiter{nullptr, &task});
  const auto w = c.settle(*c.find(t0, "a"), state::ready);
  REQUIRE(w.size() == 1);
  CHECK(w[0].task == &task);
  CHECK(c.find(t0, "a")->waiters.empty());
  c.find(t0, "a")->waiters.push_back(cache_shard::waiter{nullptr, &task});
  const std::uint64_t first = c.find(t0, "a")->generation;
  CHECK(c.erase(t0, "a").size() == 1);
  CHECK(c.used() == 0);
  CHECK(c.names(t0).empty());
  // The same name admitted again is another entry (a task parked on the first tells them
  // apart).
  REQUIRE(c.admit(t0, "a", 10, state::fetching, v) == error::ok);
  CHECK(c.find(t0, "a")->generation != first);
}
