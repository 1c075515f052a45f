// The index page cache: the pool never outgrows its capacity, pinned frames are never
// recycled, allocation fails only when every frame is pinned, concurrent loads of one page
// end in one frame, and erased pages vanish even while pinned.
#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/detail/shard/index_cache.hpp>

using eloqstore::detail::index_cache;

namespace {

constexpr std::size_t page = 4096;
const int owners[2] = {0, 1};
const int& owner_a = owners[0];
const int& owner_b = owners[1];

// Loads page (owner, fp) as a reader would: find, else allocate + fill + insert.
index_cache::pin load(index_cache& c, const void* owner, std::uint64_t fp) {
  if (auto hit = c.find(owner, fp)) {
    return hit;
  }
  auto p = c.allocate();
  if (p) {
    std::memset(p.buffer().data(), static_cast<int>(fp & 0xff), page);
    c.insert(p, owner, fp);
  }
  return p;
}

}  // namespace

TEST_CASE("index cache: LRU recycling within capacity, pages keep their bytes") {
  index_cache c(page, 4);
  for (std::uint64_t fp = 0; fp < 100; ++fp) {
    auto p = load(c, &owner_a, fp);
    REQUIRE(p);
    CHECK(reinterpret_cast<std::uintptr_t>(p.bytes().data()) % 4096 == 0);
    CHECK(static_cast<unsigned char>(p.bytes()[page - 1]) == (fp & 0xff));
  }
  const auto s = c.statistics();
  CHECK(s.capacity == 4);
  CHECK(s.allocated == 4);
  CHECK(s.pinned == 0);
  CHECK(s.cached == 4);
  // The four most recent pages are cached, older ones are not.
  for (std::uint64_t fp = 96; fp < 100; ++fp) {
    CHECK(c.find(&owner_a, fp));
  }
  CHECK(!c.find(&owner_a, 95));
  // A hit moves a page to the front: touching 96 makes 97 the next victim.
  CHECK(c.find(&owner_a, 96));
  CHECK(load(c, &owner_a, 200));
  CHECK(c.find(&owner_a, 96));
  CHECK(!c.find(&owner_a, 97));
}

TEST_CASE("index cache: pinned frames are never recycled; all pinned means no frame") {
  index_cache c(page, 3);
  std::vector<index_cache::pin> held;
  for (std::uint64_t fp = 0; fp < 3; ++fp) {
    held.push_back(load(c, &owner_a, fp));
    REQUIRE(held.back());
  }
  CHECK(c.statistics().pinned == 3);
  CHECK(!c.allocate());  // the caller reports out_of_mem
  // A second pin of a cached page needs no frame.
  auto again = c.find(&owner_a, 1);
  CHECK(again);
  again.reset();
  held[2].reset();
  auto p = load(c, &owner_a, 50);  // recycles page 2's frame, the only unpinned one
  REQUIRE(p);
  CHECK(!c.find(&owner_a, 2));
  CHECK(c.find(&owner_a, 0));
  CHECK(static_cast<unsigned char>(held[0].bytes()[0]) == 0);
  CHECK(static_cast<unsigned char>(held[1].bytes()[0]) == 1);
  held.clear();
  p.reset();
  CHECK(c.statistics().pinned == 0);
  CHECK(c.statistics().allocated == 3);
}

TEST_CASE("index cache: two loads of one page end in one frame") {
  index_cache c(page, 2);
  auto first = c.allocate();
  auto second = c.allocate();
  REQUIRE(first);
  REQUIRE(second);
  std::memset(first.buffer().data(), 1, page);
  std::memset(second.buffer().data(), 1, page);
  c.insert(first, &owner_a, 7);
  c.insert(second, &owner_a, 7);  // switches to the first frame, recycles its own
  CHECK(first.bytes().data() == second.bytes().data());
  CHECK(c.statistics().cached == 1);
  CHECK(c.statistics().pinned == 1);
  first.reset();
  second.reset();
  // The recycled frame is free: a new page needs no eviction of page 7.
  CHECK(load(c, &owner_a, 8));
  CHECK(c.find(&owner_a, 7));
}

TEST_CASE("index cache: erase and erase_all, also of pinned pages") {
  index_cache c(page, 4);
  auto pinned = load(c, &owner_a, 1);
  CHECK(load(c, &owner_a, 2));
  CHECK(load(c, &owner_b, 1));
  c.erase(&owner_a, 1);  // reused file page: gone at once, frame freed when unpinned
  CHECK(!c.find(&owner_a, 1));
  CHECK(static_cast<unsigned char>(pinned.bytes()[0]) == 1);  // the holder still reads it
  CHECK(c.find(&owner_b, 1));
  pinned.reset();
  c.erase_all(&owner_a);
  CHECK(!c.find(&owner_a, 2));
  CHECK(c.find(&owner_b, 1));
  const auto s = c.statistics();
  CHECK(s.cached == 1);
  CHECK(s.pinned == 0);
  // Freed frames are reused before the pool grows.
  CHECK(load(c, &owner_a, 3));
  CHECK(load(c, &owner_a, 4));
  CHECK(c.statistics().allocated == 3);
}

TEST_CASE("index cache: put caches a copy unless every frame is pinned") {
  index_cache c(page, 1);
  std::vector<char> bytes(page, 5);
  c.put(&owner_a, 9, bytes);
  {
    auto p = c.find(&owner_a, 9);
    REQUIRE(p);
    CHECK(p.bytes()[10] == 5);
    c.put(&owner_a, 10, bytes);  // the only frame is pinned: nothing cached, nothing fails
    CHECK(!c.find(&owner_a, 10));
  }
  bytes.assign(page, 6);
  c.put(&owner_a, 9, bytes);  // replaces the older copy
  CHECK(c.find(&owner_a, 9).bytes()[0] == 6);
  c.put(&owner_a, 11, std::vector<char>(100, 1));  // not a page: ignored
  CHECK(!c.find(&owner_a, 11));
}
