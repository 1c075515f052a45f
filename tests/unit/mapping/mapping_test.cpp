// The chunked copy-on-write mapping table and the pooled file page allocator
// (detail/mapping/page_mapping.hpp): logical ids are handed out from the free list last freed
// first, then appended; copies share chunks until one of them writes; from_values rebuilds a
// replayed table with the highest free id first; swizzled entries read as file page ids; the
// allocator reuses freed file pages and, rebuilt from a mapping, hands out the holes front to
// back before growing.
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/detail/mapping/append_allocator.hpp>
#include <eloqstore/detail/mapping/page_mapping.hpp>

#include "support/page_store.hpp"
#include "support/print_error.hpp"

namespace {

namespace detail = eloqstore::detail;
using detail::file_page_id;
using detail::mapping_table;
using detail::page_id;

page_id pid(std::uint32_t v) {
  return page_id(v);
}
std::uint64_t fp_value(std::uint64_t fp) {
  return detail::encode_file_page(file_page_id(fp));
}

// A table of n allocated ids, id i mapped to file page 1000 + i.
mapping_table mapped_table(std::uint32_t n) {
  mapping_table t;
  for (std::uint32_t i = 0; i < n; ++i) {
    const page_id id = t.allocate();
    REQUIRE(id == pid(i));
    t.set(id, fp_value(1000 + i));
  }
  return t;
}

// Every entry as for_each reports it.
std::vector<std::uint64_t> values_of(const mapping_table& t) {
  std::vector<std::uint64_t> out;
  t.for_each([&](std::uint64_t v) { out.push_back(v); });
  return out;
}

}  // namespace

TEST_CASE("mapping: allocate appends, release pushes on a free list taken last freed first") {
  mapping_table t;
  CHECK(t.size() == 0);
  CHECK(t.live_count() == 0);
  CHECK(t.file_page(pid(0)).is_none());  // out of range reads as unmapped
  for (std::uint32_t i = 0; i < 10; ++i) {
    CHECK(t.allocate() == pid(i));
    CHECK(t.get(pid(i)) == detail::mapping_invalid_value);  // invalid until set
    CHECK(t.file_page(pid(i)).is_none());
  }
  for (std::uint32_t i = 0; i < 10; ++i) {
    t.set(pid(i), fp_value(i * 7));
  }
  CHECK(t.size() == 10);
  CHECK(t.live_count() == 10);
  CHECK(t.file_page(pid(4)) == file_page_id(28));

  t.release(pid(3));
  t.release(pid(7));
  t.release(pid(5));
  CHECK(t.free_count() == 3);
  CHECK(t.live_count() == 7);
  CHECK(t.size() == 10);
  CHECK(t.file_page(pid(7)).is_none());  // a free id maps no file page
  // The list is threaded through the entries: 5 -> 7 -> 3 -> end.
  CHECK(detail::tag_of(t.get(pid(5))) == detail::mapping_tag::free_link);
  CHECK(detail::decode_free_link(t.get(pid(5))) == pid(7));
  CHECK(detail::decode_free_link(t.get(pid(7))) == pid(3));
  CHECK(t.get(pid(3)) == detail::mapping_invalid_value);

  CHECK(t.allocate() == pid(5));
  CHECK(t.allocate() == pid(7));
  CHECK(t.allocate() == pid(3));
  CHECK(t.free_count() == 0);
  CHECK(t.allocate() == pid(10));  // the list is empty: append
  CHECK(t.size() == 11);
  CHECK(t.live_count() == 11);
  // Untouched entries kept their file pages.
  CHECK(t.file_page(pid(9)) == file_page_id(63));
}

TEST_CASE("mapping: the free list against a model over random allocate and release") {
  eloqstore::test::rng r(0x6d617070);
  mapping_table t;
  std::vector<std::uint32_t> free_stack;  // model: top is the next id handed out
  std::set<std::uint32_t> live;
  std::uint32_t size = 0;
  for (int step = 0; step < 20000; ++step) {
    if (live.empty() || r.chance(0.55)) {
      std::uint32_t want = size;
      if (!free_stack.empty()) {
        want = free_stack.back();
        free_stack.pop_back();
      } else {
        ++size;
      }
      const page_id id = t.allocate();
      REQUIRE(id == pid(want));
      t.set(id, fp_value(want + 5));
      live.insert(want);
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(r.uniform(0, live.size() - 1)));
      t.release(pid(*it));
      free_stack.push_back(*it);
      live.erase(it);
    }
  }
  CHECK(t.size() == size);
  CHECK(t.live_count() == live.size());
  CHECK(t.free_count() == free_stack.size());
  CHECK(size > detail::mapping_chunk_entries);  // several chunks took part
  for (std::uint32_t i = 0; i < size; ++i) {
    const bool mapped = live.contains(i);
    CHECK(t.file_page(pid(i)) == (mapped ? file_page_id(i + 5) : file_page_id::none()));
  }
}

TEST_CASE("mapping: copies share chunks until one of them writes") {
  const std::uint32_t n = 3 * detail::mapping_chunk_entries + 10;  // four chunks
  mapping_table a = mapped_table(n);
  CHECK(a.memory_bytes() ==
        4 * (sizeof(detail::mapping_chunk) + sizeof(std::shared_ptr<detail::mapping_chunk>)));

  mapping_table b = a;
  b.reset_chunks_copied();
  a.reset_chunks_copied();
  CHECK(b.chunks_copied() == 0);

  b.set(pid(5), fp_value(1));  // chunk 0: cloned
  CHECK(b.chunks_copied() == 1);
  b.set(pid(6), fp_value(2));  // chunk 0 again: b's own now
  CHECK(b.chunks_copied() == 1);
  const std::uint32_t in_chunk2 = 2 * detail::mapping_chunk_entries + 3;
  b.set(pid(in_chunk2), fp_value(3));
  CHECK(b.chunks_copied() == 2);

  // The original still reads its own values.
  CHECK(a.file_page(pid(5)) == file_page_id(1005));
  CHECK(a.file_page(pid(6)) == file_page_id(1006));
  CHECK(a.file_page(pid(in_chunk2)) == file_page_id(1000 + in_chunk2));
  CHECK(b.file_page(pid(5)) == file_page_id(1));
  CHECK(b.file_page(pid(in_chunk2)) == file_page_id(3));
  // Entries of the cloned chunk that b did not write are the same as a's.
  CHECK(b.file_page(pid(7)) == file_page_id(1007));

  // a's chunk 0 is no longer shared (b has its own copy): writing it copies nothing. Chunk 1
  // is still shared.
  a.set(pid(8), fp_value(9));
  CHECK(a.chunks_copied() == 0);
  a.set(pid(detail::mapping_chunk_entries + 1), fp_value(9));
  CHECK(a.chunks_copied() == 1);
  CHECK(b.file_page(pid(detail::mapping_chunk_entries + 1)) ==
        file_page_id(1000 + detail::mapping_chunk_entries + 1));

  // allocate and release write too: on a fresh copy they clone the chunk they touch.
  mapping_table c = a;
  c.reset_chunks_copied();
  c.release(pid(n - 1));  // last chunk
  CHECK(c.chunks_copied() == 1);
  CHECK(c.allocate() == pid(n - 1));
  CHECK(c.chunks_copied() == 1);
  CHECK(a.file_page(pid(n - 1)) == file_page_id(1000 + n - 1));
  CHECK(a.live_count() == n);
}

TEST_CASE("mapping: from_values round trip and the highest free id first") {
  // Ids 0..11: file pages except 2, 5, 6 (free links and invalid values as on disk).
  std::vector<std::uint64_t> values;
  for (std::uint64_t i = 0; i < 12; ++i) {
    values.push_back(fp_value(100 + i));
  }
  values[2] = detail::mapping_invalid_value;
  values[5] = detail::encode_free_link(pid(2));
  values[6] = detail::mapping_invalid_value;
  mapping_table t = mapping_table::from_values(values);
  CHECK(t.size() == 12);
  CHECK(t.live_count() == 9);
  CHECK(t.free_count() == 3);
  CHECK(t.chunks_copied() == 0);
  for (std::uint32_t i = 0; i < 12; ++i) {
    const bool mapped = i != 2 && i != 5 && i != 6;
    CHECK(t.file_page(pid(i)) == (mapped ? file_page_id(100 + i) : file_page_id::none()));
  }

  // for_each reports entries in id order; rebuilding from them gives the same table.
  const std::vector<std::uint64_t> seen = values_of(t);
  REQUIRE(seen.size() == 12);
  for (std::uint32_t i = 0; i < 12; ++i) {
    CHECK(seen[i] == t.get(pid(i)));
  }
  mapping_table u = mapping_table::from_values(seen);
  CHECK(u.size() == t.size());
  CHECK(u.live_count() == t.live_count());
  for (std::uint32_t i = 0; i < 12; ++i) {
    CHECK(u.file_page(pid(i)) == t.file_page(pid(i)));
  }

  CHECK(t.allocate() == pid(6));  // pushed in ascending order: the highest comes out first
  CHECK(t.allocate() == pid(5));
  CHECK(t.allocate() == pid(2));
  CHECK(t.allocate() == pid(12));
  CHECK(t.live_count() == 13);
}

TEST_CASE("mapping: a large table survives for_each and from_values unchanged") {
  eloqstore::test::rng r(7);
  mapping_table t;
  const std::uint32_t n = 5000;
  for (std::uint32_t i = 0; i < n; ++i) {
    t.set(t.allocate(), fp_value(r.uniform(0, 1u << 30)));
  }
  for (std::uint32_t i = 0; i < n; i += 3) {
    t.release(pid(i));
  }
  const mapping_table u = mapping_table::from_values(values_of(t));
  CHECK(u.size() == n);
  CHECK(u.live_count() == t.live_count());
  std::size_t differences = 0;
  for (std::uint32_t i = 0; i < n; ++i) {
    differences += u.file_page(pid(i)) == t.file_page(pid(i)) ? 0 : 1;
  }
  CHECK(differences == 0);
}

TEST_CASE("mapping: swizzled entries read as file page ids, and copies for writers unswizzle") {
  detail::swizzle_target frame;  // declared first: it outlives the chunks pointing at it
  frame.fp = file_page_id(1003);
  mapping_table a = mapped_table(10);
  a.swizzle(pid(3), frame);
  CHECK(detail::is_swizzled(a.raw(pid(3))));
  CHECK(a.swizzled(pid(3)) == &frame);
  CHECK(a.swizzled(pid(4)) == nullptr);
  CHECK(a.get(pid(3)) == fp_value(1003));
  CHECK(a.file_page(pid(3)) == file_page_id(1003));
  CHECK(values_of(a)[3] == fp_value(1003));
  CHECK(frame.slots.size() == 1);

  mapping_table b = a;
  CHECK(b.swizzled(pid(3)) == &frame);  // shared chunk: the same entry
  b.set(pid(4), fp_value(1));           // cloned: the clone holds the file page id
  CHECK(b.swizzled(pid(3)) == nullptr);
  CHECK(b.raw(pid(3)) == fp_value(1003));
  CHECK(a.swizzled(pid(3)) == &frame);

  frame.unswizzle_all();
  CHECK(a.swizzled(pid(3)) == nullptr);
  CHECK(a.raw(pid(3)) == fp_value(1003));
  CHECK(frame.slots.empty());

  // A chunk that dies drops its slot from the frame.
  {
    frame.fp = file_page_id(1001);
    mapping_table c = mapped_table(5);
    c.swizzle(pid(1), frame);
    CHECK(frame.slots.size() == 1);
  }
  CHECK(frame.slots.empty());
}

TEST_CASE("file page allocator: fresh pages in order, released pages reused last first") {
  detail::file_page_allocator a;
  CHECK(a.max_fp() == 0);
  for (std::uint64_t i = 0; i < 6; ++i) {
    CHECK(a.allocate() == file_page_id(i));
  }
  CHECK(a.max_fp() == 6);
  a.release(file_page_id(2));
  a.release(file_page_id(4));
  CHECK(a.free_count() == 2);
  a.reserve_free(100);
  CHECK(a.free_count() == 2);
  CHECK(a.allocate() == file_page_id(4));
  CHECK(a.allocate() == file_page_id(2));
  CHECK(a.free_count() == 0);
  CHECK(a.max_fp() == 6);  // reuse does not grow the file
  CHECK(a.allocate() == file_page_id(6));
  CHECK(a.max_fp() == 7);
}

TEST_CASE("file page allocator: rebuilt from a mapping, the holes fill front to back") {
  mapping_table t;
  for (const std::uint64_t fp : {0, 2, 5, 9}) {
    t.set(t.allocate(), fp_value(fp));
  }
  t.set(t.allocate(), fp_value(3));
  t.release(pid(4));  // file page 3 is no longer mapped
  detail::file_page_allocator a(t, 8);
  CHECK(a.max_fp() == 8);
  CHECK(a.free_count() == 5);  // 1, 3, 4, 6, 7 (9 is past max_fp and not counted)
  std::vector<std::uint64_t> order;
  for (int i = 0; i < 7; ++i) {
    order.push_back(a.allocate().value());
  }
  CHECK(order == std::vector<std::uint64_t>{1, 3, 4, 6, 7, 8, 9});
  CHECK(a.max_fp() == 10);

  // Every file page below max_fp is either mapped or free.
  eloqstore::test::rng r(11);
  mapping_table m;
  std::set<std::uint64_t> used;
  for (int i = 0; i < 300; ++i) {
    const std::uint64_t fp = r.uniform(0, 999);
    if (used.insert(fp).second) {
      m.set(m.allocate(), fp_value(fp));
    }
  }
  detail::file_page_allocator b(m, 1000);
  CHECK(b.free_count() + used.size() == 1000);
  std::set<std::uint64_t> handed;
  for (std::size_t i = 0; i < 1000 - used.size(); ++i) {
    const std::uint64_t fp = b.allocate().value();
    CHECK_FALSE(used.contains(fp));
    CHECK(handed.insert(fp).second);
    CHECK(fp < 1000);
  }
  CHECK(b.allocate() == file_page_id(1000));
}

// ---- append mode ------------------------------------------------------------------------

using detail::append_allocator;
using detail::file_id;

TEST_CASE("append allocator: pages go to the tail in order and are never reused") {
  append_allocator a(2);  // 4 pages per file
  for (std::uint64_t i = 0; i < 10; ++i) {
    CHECK(a.allocate() == file_page_id(i));
  }
  CHECK(a.max_fp() == 10);
  CHECK(a.tail_file() == file_id(2));
  CHECK(a.referenced(file_id(0)) == 4);
  CHECK(a.referenced(file_id(1)) == 4);
  CHECK(a.referenced(file_id(2)) == 2);
  CHECK(a.referenced(file_id(7)) == 0);
  a.release(file_page_id(1));
  CHECK(a.referenced(file_id(0)) == 3);
  CHECK(a.allocate() == file_page_id(10));  // a released page is not handed out again
  a.release(file_page_id(1000));            // never handed out: ignored
  CHECK(a.referenced(file_id(2)) == 3);
}

TEST_CASE("append allocator: space, the compaction trigger, and the files GC may delete") {
  append_allocator a(2);  // 4 pages per file
  for (int i = 0; i < 12; ++i) {
    (void)a.allocate();  // files 0, 1, 2 full; the tail is file 3
  }
  CHECK(a.space_pages() == 12);
  CHECK_FALSE(a.compaction_due(12, 2));
  std::vector<file_id> gone;
  a.collectable(gone);
  CHECK(gone.empty());
  for (std::uint64_t fp = 4; fp < 8; ++fp) {
    a.release(file_page_id(fp));  // file 1 empty
  }
  CHECK(a.oldest_file() == file_id(0));
  CHECK(a.empty_files() == 1);
  CHECK(a.space_pages() == 8);  // files 0 and 2
  CHECK_FALSE(a.compaction_due(8, 2));
  for (const std::uint64_t fp : {0, 1, 2, 8, 9, 10}) {
    a.release(file_page_id(fp));
  }
  CHECK(a.space_pages() == 8);
  // Due above factor * live + one file: 2 * 2 + 4 = 8 is not exceeded, 1 * 2 + 4 = 6 is.
  CHECK(a.bound_pages(2, 2) == 8);
  CHECK_FALSE(a.compaction_due(2, 2));
  CHECK(a.compaction_due(2, 1));
  CHECK_FALSE(a.compaction_due(2, 0));  // factor 0 never compacts
  a.collectable(gone);
  CHECK(gone == std::vector<file_id>{file_id(1)});
  a.release(file_page_id(3));
  CHECK(a.oldest_file() == file_id(2));
  CHECK(a.empty_files() == 0);
  CHECK(a.space_pages() == 4);
  a.release(file_page_id(11));
  CHECK(a.oldest_file() == a.tail_file());  // nothing referenced
  CHECK(a.space_pages() == 0);
  CHECK_FALSE(a.compaction_due(0, 2));
  (void)a.allocate();
  a.release(file_page_id(12));
  CHECK(a.space_pages() == 1);  // one dead page in the tail file
  CHECK(a.compaction_due(0, 2));
  gone.clear();
  a.collectable(gone);  // the tail file (3) is never collectable
  CHECK(gone == std::vector<file_id>{file_id(0), file_id(1), file_id(2)});
  for (const file_id f : gone) {
    a.mark_removed(f);
  }
  gone.clear();
  a.collectable(gone);
  CHECK(gone.empty());
  CHECK(a.referenced(file_id(0)) == 0);
  CHECK(a.allocate() == file_page_id(13));
  CHECK(a.referenced(file_id(3)) == 1);
  // A restore counts its archive's pages again, in files older than the recorded ones too;
  // never past the tail.
  CHECK(a.acquire(file_page_id(5)));
  CHECK(a.referenced(file_id(1)) == 1);
  CHECK(a.oldest_file() == file_id(1));
  CHECK_FALSE(a.acquire(file_page_id(14)));
  a.release(file_page_id(5));
  gone.clear();
  a.collectable(gone);
  CHECK(gone == std::vector<file_id>{file_id(1), file_id(2)});
  for (const file_id f : gone) {
    a.mark_removed(f);
  }
  a.release(file_page_id(13));
  a.skip_to_next_file();  // an empty partition leaves its tail file
  CHECK(a.max_fp() == 16);
  gone.clear();
  a.collectable(gone);
  CHECK(gone == std::vector<file_id>{file_id(3)});
  a.mark_removed(file_id(3));
  CHECK(a.space_pages() == 0);
  CHECK(a.allocate() == file_page_id(16));
  CHECK(a.referenced(file_id(4)) == 1);
}

TEST_CASE("append allocator: rebuilt from a mapping, and a new term starts a new file") {
  mapping_table t;
  // Page order differs from file order: the first page lives in the highest file.
  for (const std::uint64_t fp : {9, 0, 1, 5, 10}) {
    t.set(t.allocate(), fp_value(fp));
  }
  const page_id freed = t.allocate();
  t.release(freed);
  for (const bool new_term : {false, true}) {
    CAPTURE(new_term);
    append_allocator a(t, 11, 2, new_term);
    CHECK(a.referenced(file_id(0)) == 2);
    CHECK(a.referenced(file_id(1)) == 1);
    CHECK(a.referenced(file_id(2)) == 2);
    CHECK(a.oldest_file() == file_id(0));
    CHECK(a.max_fp() == (new_term ? 12 : 11));
    CHECK(a.allocate() == file_page_id(new_term ? 12 : 11));
  }
  append_allocator on_boundary(t, 12, 2, true);  // already at a file's start
  CHECK(on_boundary.max_fp() == 12);
  // A tail file without a mapped page (GC may have deleted it) is not appended to again.
  append_allocator past_empty_tail(t, 14, 2, false);
  CHECK(past_empty_tail.max_fp() == 16);
  CHECK(past_empty_tail.referenced(file_id(3)) == 0);
  append_allocator empty(mapping_table{}, 0, 2, true);
  CHECK(empty.max_fp() == 0);
  CHECK(empty.space_pages() == 0);
}

TEST_CASE("append allocator: counts, space and empty files against a model") {
  std::mt19937_64 rng(7);
  append_allocator a(3);                // 8 pages per file
  std::map<std::uint64_t, bool> model;  // every fp handed out: still referenced?
  for (int step = 0; step < 20000; ++step) {
    const bool add = model.empty() || rng() % 3 != 0;
    if (add) {
      const file_page_id fp = a.allocate();
      REQUIRE(model.emplace(fp.value(), true).second);
      continue;
    }
    auto it = model.lower_bound(rng() % (a.max_fp() + 1));
    if (it == model.end()) {
      it = model.begin();
    }
    if (it->second) {
      it->second = false;
      a.release(file_page_id(it->first));
    }
    if (step % 997 == 0) {
      std::map<std::uint64_t, std::uint64_t> per_file;
      std::uint64_t oldest = a.max_fp() >> 3;
      for (const auto& [fp, live] : model) {
        if (live) {
          ++per_file[fp >> 3];
          oldest = std::min(oldest, fp >> 3);
        }
      }
      const std::uint64_t tail = a.max_fp() >> 3;
      std::uint64_t empty = 0;
      for (std::uint64_t f = 0; f <= tail + 1; ++f) {
        CHECK(a.referenced(file_id(f)) == per_file[f]);
        empty += f >= oldest && f < tail && per_file[f] == 0 ? 1 : 0;
      }
      CHECK(a.oldest_file() == file_id(oldest));
      CHECK(a.empty_files() == empty);
      CHECK(a.space_pages() == a.max_fp() - (oldest << 3) - empty * 8);
    }
  }
}
