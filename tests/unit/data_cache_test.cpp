// The data page cache: it never holds more than its capacity, copies pages in and out intact,
// keeps a page read twice (protected) through any scan of pages read once, bounds the
// protected segment, forgets erased pages and an owner's pages, and does nothing when off.
#include <cstdint>
#include <cstring>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/detail/shard/data_cache.hpp>

using eloqstore::detail::data_cache;
using eloqstore::detail::file_page_id;

namespace {

constexpr std::size_t page = 4096;
const int owners[2] = {0, 1};
const void* const owner_a = &owners[0];
const void* const owner_b = &owners[1];

std::vector<char> page_of(std::uint64_t fp) {
  std::vector<char> b(page);
  for (std::size_t i = 0; i < page; ++i) {
    b[i] = static_cast<char>((fp * 131 + i) & 0xff);
  }
  return b;
}

void put(data_cache& c, const void* owner, std::uint64_t fp, bool hot = false) {
  c.insert(owner, file_page_id(fp), page_of(fp), hot);
}

// A lookup as a reader does: true on a hit whose bytes are the page's.
bool hit(data_cache& c, const void* owner, std::uint64_t fp) {
  std::vector<char> out(page, 0);
  if (!c.copy_out(owner, file_page_id(fp), out)) {
    return false;
  }
  REQUIRE(out == page_of(fp));
  return true;
}

}  // namespace

TEST_CASE("data cache: bounded, pages come back intact, least recently used go first") {
  data_cache c(page, 8);
  CHECK(c.enabled());
  CHECK(!hit(c, owner_a, 1));
  for (std::uint64_t fp = 0; fp < 100; ++fp) {
    put(c, owner_a, fp);
    CHECK(c.statistics().cached <= 8);
  }
  const auto s = c.statistics();
  CHECK(s.capacity == 8);
  CHECK(s.allocated == 8);
  CHECK(s.cached == 8);
  CHECK(s.protected_pages == 0);
  for (std::uint64_t fp = 92; fp < 100; ++fp) {
    CHECK(c.segment_of(owner_a, file_page_id(fp)) == data_cache::segment::probation);
  }
  CHECK(c.segment_of(owner_a, file_page_id(91)) == data_cache::segment::none);
  // One owner's page is not another's.
  CHECK(!hit(c, owner_b, 99));
  CHECK(hit(c, owner_a, 99));  // (a hit: 99 moves to protected)
  CHECK(c.segment_of(owner_a, file_page_id(99)) == data_cache::segment::protected_);
  // Re-inserting a cached page replaces its bytes and keeps its place.
  std::vector<char> other(page, 'x');
  c.insert(owner_a, file_page_id(99), other);
  std::vector<char> out(page);
  REQUIRE(c.copy_out(owner_a, file_page_id(99), out));
  CHECK(out == other);
  CHECK(c.statistics().cached == 8);
}

TEST_CASE("data cache: a scan of pages read once does not push out pages read twice") {
  data_cache c(page, 20);
  // The hot set: ten pages, each read twice (inserted on a miss, then hit).
  for (std::uint64_t fp = 0; fp < 10; ++fp) {
    put(c, owner_a, fp);
    CHECK(hit(c, owner_a, fp));
  }
  CHECK(c.statistics().protected_pages == 10);
  // A scan: a thousand pages, each read once.
  for (std::uint64_t fp = 1000; fp < 2000; ++fp) {
    if (!hit(c, owner_a, fp)) {
      put(c, owner_a, fp);
    }
  }
  for (std::uint64_t fp = 0; fp < 10; ++fp) {
    CHECK(hit(c, owner_a, fp));
  }
  CHECK(c.statistics().cached == 20);
  // The scan's latest pages fill what the hot set leaves.
  CHECK(hit(c, owner_a, 1999));
  CHECK(!hit(c, owner_a, 1000));
}

TEST_CASE("data cache: the protected segment holds at most its share, the rest stays usable") {
  data_cache c(page, 10);
  const std::size_t protected_max = 10 * data_cache::protected_percent / 100;
  for (std::uint64_t fp = 0; fp < 10; ++fp) {
    put(c, owner_a, fp);
    CHECK(hit(c, owner_a, fp));
    CHECK(c.statistics().protected_pages <= protected_max);
  }
  CHECK(c.statistics().protected_pages == protected_max);
  CHECK(c.statistics().cached == 10);
  // The pages demoted from protected went back to probation, still cached.
  for (std::uint64_t fp = 0; fp < 10; ++fp) {
    CHECK(c.segment_of(owner_a, file_page_id(fp)) != data_cache::segment::none);
  }
  // A hot insert (a rewritten page whose old copy was protected) lands in protected.
  put(c, owner_a, 500, /*hot=*/true);
  CHECK(c.segment_of(owner_a, file_page_id(500)) == data_cache::segment::protected_);
  CHECK(c.statistics().protected_pages == protected_max);
  CHECK(c.statistics().cached == 10);
}

TEST_CASE("data cache: erase and erase_all forget pages and free their frames") {
  data_cache c(page, 6);
  for (std::uint64_t fp = 0; fp < 3; ++fp) {
    put(c, owner_a, fp);
    put(c, owner_b, fp);
  }
  CHECK(hit(c, owner_a, 1));
  c.erase(owner_a, file_page_id(1));  // a protected page
  c.erase(owner_a, file_page_id(2));  // a probation page
  c.erase(owner_a, file_page_id(7));  // not cached: nothing happens
  CHECK(!hit(c, owner_a, 1));
  CHECK(!hit(c, owner_a, 2));
  CHECK(hit(c, owner_a, 0));
  CHECK(c.statistics().cached == 4);
  CHECK(c.statistics().protected_pages == 1);
  c.erase_all(owner_b);
  for (std::uint64_t fp = 0; fp < 3; ++fp) {
    CHECK(!hit(c, owner_b, fp));
  }
  CHECK(c.statistics().cached == 1);
  // Freed frames are reused before the pool would grow or evict.
  for (std::uint64_t fp = 10; fp < 15; ++fp) {
    put(c, owner_b, fp);
  }
  CHECK(c.statistics().allocated == 6);
  CHECK(c.statistics().cached == 6);
  CHECK(hit(c, owner_a, 0));
  for (std::uint64_t fp = 10; fp < 15; ++fp) {
    CHECK(hit(c, owner_b, fp));
  }
}

TEST_CASE("data cache: capacity 0 is off, and wrong-sized pages are not cached") {
  data_cache off(page, 0);
  CHECK(!off.enabled());
  put(off, owner_a, 1);
  CHECK(!hit(off, owner_a, 1));
  CHECK(off.statistics().allocated == 0);
  data_cache c(page, 2);
  std::vector<char> small(page / 2, 'a');
  c.insert(owner_a, file_page_id(3), small);
  CHECK(c.statistics().cached == 0);
}
