// Index pages (builder, iterator, floor search) and overflow chains (encode, decode).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/comparator.hpp>
#include <eloqstore/detail/codec/checksum.hpp>
#include <eloqstore/detail/page/index_page.hpp>
#include <eloqstore/detail/page/overflow_page.hpp>
#include <eloqstore/detail/page/page_check.hpp>

#include "support/page_store.hpp"

using namespace eloqstore;
using namespace eloqstore::detail;

TEST_CASE("index page: random pages round trip and floor search agrees with std::map") {
  const bytewise_comparator cmp;
  for (const std::uint16_t interval : {std::uint16_t{1}, std::uint16_t{4}, std::uint16_t{16}}) {
    const std::uint64_t seed = 1000 + interval;
    CAPTURE(seed);
    test::rng r(seed);
    index_page_builder b(4096, interval);
    for (int p = 0; p < 500; ++p) {
      const int alphabet = r.chance(0.5) ? 4 : 256;
      std::map<std::string, std::uint32_t> seps;
      const std::size_t n = r.uniform(0, 600);
      for (std::size_t i = 0; i < n; ++i) {
        seps.emplace(r.bytes(r.uniform(1, r.chance(0.05) ? 2048 : 20), alphabet),
                     static_cast<std::uint32_t>(r.uniform(0, child_page_id_max)));
      }
      const bool leaf = r.chance(0.5);
      b.reset();
      const page_id leftmost(static_cast<std::uint32_t>(r.uniform(0, child_page_id_max)));
      REQUIRE(b.add("ignored", leftmost, leaf));
      std::map<std::string, std::uint32_t> in_page;
      for (const auto& [k, c] : seps) {
        if (!b.add(k, page_id(c), leaf)) {
          break;
        }
        in_page.emplace(k, c);
      }
      CHECK(b.child_count() == in_page.size() + 1);
      auto bytes = b.finish();
      CHECK(decode_fixed16(bytes.data() + content_length_offset) ==
            b.current_size_bytes() - (in_page.empty() ? 2 : 0));
      set_page_checksum(bytes);
      index_page page;
      REQUIRE(index_page::open(bytes, page) == error::ok);
      CHECK(page.is_leaf_index() == leaf);
      CHECK(page.leftmost() == leftmost);

      index_page_iter it(page);
      it.seek_to_first();
      REQUIRE(it.valid());
      CHECK(it.at_leftmost());
      CHECK(it.child() == leftmost);
      for (const auto& [k, c] : in_page) {
        it.next();
        REQUIRE(it.valid());
        CHECK(it.key() == k);
        CHECK(it.child() == page_id(c));
      }
      it.next();
      CHECK_FALSE(it.valid());
      CHECK(it.status() == error::ok);

      for (int q = 0; q < 40; ++q) {
        const std::string target = r.bytes(r.uniform(0, 5), alphabet);
        REQUIRE(it.seek_floor(target, cmp));
        auto ub = in_page.upper_bound(target);
        if (ub == in_page.begin()) {
          CHECK(it.at_leftmost());
          CHECK(it.child() == leftmost);
        } else {
          --ub;
          CHECK(it.key() == ub->first);
          CHECK(it.child() == page_id(ub->second));
        }
      }
    }
  }
}

TEST_CASE("index page: a page with only the leftmost child") {
  index_page_builder b(4096, 16);
  REQUIRE(b.add({}, page_id(9), true));
  const auto bytes = b.finish();
  CHECK(decode_fixed16(bytes.data() + content_length_offset) == 17);
  CHECK(decode_fixed16(bytes.data() + 15) == 0);
  index_page page;
  REQUIRE(index_page::open(bytes, page) == error::ok);
  index_page_iter it(page);
  REQUIRE(it.seek_floor("anything", bytewise_comparator{}));
  CHECK(it.at_leftmost());
  CHECK(it.child() == page_id(9));
  it.seek_to_last();
  CHECK(it.child() == page_id(9));
}

TEST_CASE("overflow: capacities") {
  CHECK(overflow_capacity(4096) == 4084);
  CHECK(overflow_end_capacity(4096, 16) == 4020);
}

TEST_CASE("overflow: values of many sizes round trip through chains") {
  test::rng r(77);
  for (const std::size_t page_size : {std::size_t{256}, std::size_t{4096}}) {
    for (const std::size_t ptrs :
         {std::size_t{1}, std::size_t{2}, std::size_t{16}, std::size_t{128}}) {
      if (4 * ptrs >= overflow_capacity(page_size)) {
        continue;  // an end page could not hold the pointers: rejected, tested below
      }
      for (int i = 0; i < 25; ++i) {
        const std::size_t cap = overflow_capacity(page_size);
        std::size_t size = r.uniform(1, cap * (ptrs + 2) * 2);
        if (i < 6) {  // exact boundaries around groups
          const std::size_t edges[] = {cap,
                                       cap + 1,
                                       cap * ptrs,
                                       cap * ptrs + 1,
                                       (ptrs - 1) * cap + overflow_end_capacity(page_size, ptrs),
                                       cap * ptrs - 1};
          size = std::max<std::size_t>(1, edges[i]);
        }
        CAPTURE(page_size);
        CAPTURE(ptrs);
        CAPTURE(size);
        const std::string value = r.bytes(size);
        test::page_store store;
        std::vector<char> scratch(page_size);
        std::string head;
        REQUIRE(write_overflow_value(
                    value, ptrs, scratch, [&] { return store.alloc(); },
                    [&](page_id id, std::span<const char> p) { return store.write(id, p); },
                    head) == error::ok);
        CHECK(head.size() % 4 == 0);
        CHECK(head.size() / 4 >= 1);
        CHECK(head.size() / 4 <= ptrs);
        // Pages used: full pages plus the shorter end pages.
        CHECK(store.pages.size() >= (size + cap - 1) / cap);
        std::string back;
        REQUIRE(read_overflow_value(
                    head,
                    [&](page_id id, std::span<const char>& out) { return store.read(id, out); },
                    back) == error::ok);
        CHECK(back == value);
      }
    }
  }
}

TEST_CASE("overflow: write errors and missing pages propagate") {
  const std::string value(5000, 'x');
  std::vector<char> scratch(256);
  std::string head;
  int writes = 0;
  test::page_store store;
  CHECK(write_overflow_value(
            value, 4, scratch, [&] { return store.alloc(); },
            [&](page_id, std::span<const char>) {
              return ++writes == 3 ? error::out_of_space : error::ok;
            },
            head) == error::out_of_space);
  CHECK(writes == 3);

  store = {};
  REQUIRE(write_overflow_value(
              value, 4, scratch, [&] { return store.alloc(); },
              [&](page_id id, std::span<const char> p) { return store.write(id, p); },
              head) == error::ok);
  store.pages.erase(store.pages.rbegin()->first);
  std::string back;
  CHECK(read_overflow_value(
            head, [&](page_id id, std::span<const char>& out) { return store.read(id, out); },
            back) == error::not_found);
  // More pointers than an end page can hold is a caller error, reported as such.
  CHECK(write_overflow_value(
            value, 128, scratch, [&] { return store.alloc(); },
            [&](page_id, std::span<const char>) { return error::ok; },
            head) == error::invalid_args);
  CHECK(read_overflow_value(
            "abc", [&](page_id, std::span<const char>&) { return error::ok; }, back) ==
        error::corrupted);
}

// Found by the page fuzz target (tests/fuzz/regressions/page/index-entry-across-restart-point):
// an entry that runs across the next restart point. A scan decoded it from region 0 while a
// seek started at the restart point inside it, so the two read different children.
TEST_CASE("index page: an entry running across a restart point is corrupted") {
  std::vector<char> page(256, '\0');
  const std::vector<unsigned char> head = {
      0x01, 0x29, 0x00,        // offset 8: leaf index, content length 41
      0x03, 0x00, 0x00, 0x00,  // offset 11: leftmost child 3
      0x00, 0x01, 0x62, 0x14,  // offset 15 (restart 0): "b" -> child 10
      // offset 19: shared 1, 13 key bytes (21..33) and a child delta (34): up to 35,
      // across restart 1 at offset 24
      0x01, 0x0d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x63, 0xd8, 0x04, 0x01, 0x02, 0x61, 0x62, 0xc9,
      0x01, 0x0f, 0x00, 0x18, 0x00, 0x02, 0x00,  // offset 35: restarts 15 and 24, count 2
  };
  std::copy(head.begin(), head.end(), page.begin() + 8);
  index_page ip;
  REQUIRE(index_page::open(page, ip) == error::ok);  // the restart array itself is sound
  index_page_iter it(ip);
  for (it.seek_to_first(); it.valid(); it.next()) {
  }
  CHECK(it.status() == error::corrupted);
  CHECK(check_page(page, [](std::string_view a, std::string_view b) {
          return a < b ? -1 : (a == b ? 0 : 1);
        }) == error::corrupted);
}
