// The index page cache: the pool never outgrows its capacity, pinned frames are never
// recycled, allocation fails only when every frame is pinned, concurrent loads of one page
// end in one frame, and erased pages vanish even while pinned; swizzled mapping entries lead
// to their frames and turn back into file page ids whenever a frame or a chunk goes.
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/detail/shard/index_cache.hpp>

using eloqstore::detail::file_page_id;
using eloqstore::detail::index_cache;

namespace {

constexpr std::size_t page = 4096;
const int owners[2] = {0, 1};
const int& owner_a = owners[0];
const int& owner_b = owners[1];

// Loads page (owner, fp) as a reader would: find, else allocate + fill + insert.
index_cache::pin load(index_cache& c, const void* owner, std::uint64_t raw_fp) {
  const file_page_id fp(raw_fp);
  if (auto hit = c.find(owner, fp)) {
    return hit;
  }
  auto p = c.allocate();
  if (p) {
    std::memset(p.buffer().data(), static_cast<int>(raw_fp & 0xff), page);
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
    CHECK(c.find(&owner_a, file_page_id(fp)));
  }
  CHECK(!c.find(&owner_a, file_page_id(95)));
  // A hit moves a page to the front: touching 96 makes 97 the next victim.
  CHECK(c.find(&owner_a, file_page_id(96)));
  CHECK(load(c, &owner_a, 200));
  CHECK(c.find(&owner_a, file_page_id(96)));
  CHECK(!c.find(&owner_a, file_page_id(97)));
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
  auto again = c.find(&owner_a, file_page_id(1));
  CHECK(again);
  again.reset();
  held[2].reset();
  auto p = load(c, &owner_a, 50);  // recycles page 2's frame, the only unpinned one
  REQUIRE(p);
  CHECK(!c.find(&owner_a, file_page_id(2)));
  CHECK(c.find(&owner_a, file_page_id(0)));
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
  c.insert(first, &owner_a, file_page_id(7));
  c.insert(second, &owner_a, file_page_id(7));  // switches to the first frame, recycles its own
  CHECK(first.bytes().data() == second.bytes().data());
  CHECK(c.statistics().cached == 1);
  CHECK(c.statistics().pinned == 1);
  first.reset();
  second.reset();
  // The recycled frame is free: a new page needs no eviction of page 7.
  CHECK(load(c, &owner_a, 8));
  CHECK(c.find(&owner_a, file_page_id(7)));
}

TEST_CASE("index cache: erase and erase_all, also of pinned pages") {
  index_cache c(page, 4);
  auto pinned = load(c, &owner_a, 1);
  CHECK(load(c, &owner_a, 2));
  CHECK(load(c, &owner_b, 1));
  c.erase(&owner_a, file_page_id(1));  // reused file page: gone at once, frame freed when unpinned
  CHECK(!c.find(&owner_a, file_page_id(1)));
  CHECK(static_cast<unsigned char>(pinned.bytes()[0]) == 1);  // the holder still reads it
  CHECK(c.find(&owner_b, file_page_id(1)));
  pinned.reset();
  c.erase_all(&owner_a);
  CHECK(!c.find(&owner_a, file_page_id(2)));
  CHECK(c.find(&owner_b, file_page_id(1)));
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
  c.put(&owner_a, file_page_id(9), bytes);
  {
    auto p = c.find(&owner_a, file_page_id(9));
    REQUIRE(p);
    CHECK(p.bytes()[10] == 5);
    c.put(&owner_a, file_page_id(10),
          bytes);  // the only frame is pinned: nothing cached, nothing fails
    CHECK(!c.find(&owner_a, file_page_id(10)));
  }
  bytes.assign(page, 6);
  c.put(&owner_a, file_page_id(9), bytes);  // replaces the older copy
  CHECK(c.find(&owner_a, file_page_id(9)).bytes()[0] == 6);
  c.put(&owner_a, file_page_id(11), std::vector<char>(100, 1));  // not a page: ignored
  CHECK(!c.find(&owner_a, file_page_id(11)));
}

// ---- swizzling -------------------------------------------------------------------------------

namespace {

using eloqstore::detail::encode_file_page;
using eloqstore::detail::file_page_id;
using eloqstore::detail::mapping_table;
using eloqstore::detail::page_id;

// A table of n logical pages, page i at file page 100 + i.
mapping_table table_of(std::uint32_t n) {
  std::vector<std::uint64_t> values;
  for (std::uint32_t i = 0; i < n; ++i) {
    values.push_back(encode_file_page(file_page_id(100 + i)));
  }
  return mapping_table::from_values(values);
}

// A reader's index lookup: through a swizzled entry, else load by file page and swizzle.
index_cache::pin lookup(index_cache& c, const mapping_table& m, std::uint32_t id) {
  if (auto* t = m.swizzled(page_id(id))) {
    return c.pin_swizzled(*t, &owner_a);
  }
  auto p = load(c, &owner_a, m.file_page(page_id(id)).value());
  if (p) {
    m.swizzle(page_id(id), p.target());
  }
  return p;
}

std::vector<std::uint64_t> values_of(const mapping_table& m) {
  std::vector<std::uint64_t> v;
  m.for_each([&](std::uint64_t x) { v.push_back(x); });
  return v;
}

}  // namespace

TEST_CASE("swizzling: a cached page is found through its entry and read as its file page") {
  index_cache c(page, 8);
  const mapping_table m = table_of(3000);  // three chunks
  const auto before = values_of(m);
  for (const std::uint32_t id : {0u, 5u, 1500u, 2999u}) {
    CHECK(m.swizzled(page_id(id)) == nullptr);
    auto p = lookup(c, m, id);
    REQUIRE(p);
    CHECK(static_cast<unsigned char>(p.bytes()[0]) == ((100 + id) & 0xff));
    REQUIRE(m.swizzled(page_id(id)) != nullptr);
    CHECK(m.swizzled(page_id(id))->fp.value() == 100 + id);
    CHECK(m.file_page(page_id(id)).value() == 100 + id);  // readers see the file page
  }
  CHECK(values_of(m) == before);  // snapshots never see pointers
  const auto hits = c.statistics().swizzled_hits;
  CHECK(lookup(c, m, 5));
  CHECK(c.statistics().swizzled_hits == hits + 1);
}

TEST_CASE("swizzling: eviction and erase turn entries back into file page ids") {
  index_cache c(page, 2);
  const mapping_table m = table_of(10);
  const auto before = values_of(m);
  CHECK(lookup(c, m, 1));
  CHECK(lookup(c, m, 2));
  CHECK(m.swizzled(page_id(1)) != nullptr);
  CHECK(lookup(c, m, 3));  // evicts page 1 (least recently used)
  CHECK(m.swizzled(page_id(1)) == nullptr);
  CHECK(m.raw(page_id(1)) == encode_file_page(file_page_id(101)));
  CHECK(m.swizzled(page_id(3)) != nullptr);
  c.erase(&owner_a, file_page_id(103));
  CHECK(m.swizzled(page_id(3)) == nullptr);
  CHECK(values_of(m) == before);
  // A pinned page stays swizzled while others churn through the one remaining frame.
  auto held = lookup(c, m, 4);
  for (std::uint32_t id = 5; id < 10; ++id) {
    CHECK(lookup(c, m, id));
  }
  CHECK(m.swizzled(page_id(4)) != nullptr);
  CHECK(m.swizzled(page_id(5)) == nullptr);
  CHECK(values_of(m) == before);
}

TEST_CASE("swizzling: shared chunks, clones for a writer, and dying chunks") {
  index_cache c(page, 16);
  auto reader = std::make_unique<mapping_table>(table_of(2100));
  CHECK(lookup(c, *reader, 7));
  mapping_table writer = *reader;                               // shares every chunk
  CHECK(writer.swizzled(page_id(7)) != nullptr);                // seen through the shared chunk
  writer.set(page_id(8), encode_file_page(file_page_id(900)));  // clones chunk 0
  CHECK(writer.swizzled(page_id(7)) == nullptr);                // the clone holds the file page id
  CHECK(writer.file_page(page_id(7)).value() == 107);
  CHECK(reader->swizzled(page_id(7)) != nullptr);
  CHECK(reader->file_page(page_id(8)).value() == 108);
  // The writer's clone swizzles on its own; both entries point at the one frame.
  CHECK(lookup(c, writer, 7));
  CHECK(writer.swizzled(page_id(7)) == reader->swizzled(page_id(7)));
  CHECK(writer.swizzled(page_id(7))->slots.size() == 2);
  // Overwriting a swizzled entry in an unshared chunk drops its slot.
  writer.set(page_id(7), encode_file_page(file_page_id(901)));
  CHECK(reader->swizzled(page_id(7))->slots.size() == 1);
  CHECK(writer.file_page(page_id(7)).value() == 901);
  // The reader's version dies: its chunk 0 (not shared any more) drops its slot; the frame
  // can then be evicted without touching freed memory (ASan would tell).
  auto* frame = reader->swizzled(page_id(7));
  CHECK(lookup(c, *reader, 2050));  // chunk 2, still shared with the writer
  reader.reset();
  CHECK(frame->slots.empty());
  CHECK(writer.swizzled(page_id(2050)) != nullptr);
  c.erase_all(&owner_a);
  CHECK(writer.swizzled(page_id(2050)) == nullptr);
  CHECK(writer.file_page(page_id(2050)).value() == 2150);
}

TEST_CASE("swizzling: a cache destroyed before its mappings leaves file page ids") {
  const mapping_table m = table_of(4);
  {
    index_cache c(page, 4);
    CHECK(lookup(c, m, 2));
    CHECK(m.swizzled(page_id(2)) != nullptr);
  }
  CHECK(m.swizzled(page_id(2)) == nullptr);
  CHECK(m.file_page(page_id(2)).value() == 102);
}
