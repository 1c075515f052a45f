// Golden byte vectors of the on-disk formats, written out by hand from the specification
// (reference-engine.md sections 3 and 4, docs/format.md).
//
// Every expected byte below was computed by hand from the layouts, NOT produced by our
// encoders; each test then checks both directions: our builders produce exactly these bytes,
// and our decoders read these bytes back to the values they stand for. Checksums are computed
// in this file from the hand-built bytes with XXH3_64bits directly (the manifest's chunked
// aggregate is written out here too), so a wrong checksum routine in the library is caught.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <map>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <xxhash.h>

#include <eloqstore/comparator.hpp>
#include <eloqstore/detail/codec/checksum.hpp>
#include <eloqstore/detail/codec/coding.hpp>
#include <eloqstore/detail/manifest/record.hpp>
#include <eloqstore/detail/manifest/replay.hpp>
#include <eloqstore/detail/mapping/mapping_entry.hpp>
#include <eloqstore/detail/page/data_page.hpp>
#include <eloqstore/detail/page/index_page.hpp>
#include <eloqstore/detail/page/overflow_page.hpp>
#include <eloqstore/detail/page/page_common.hpp>
#include <eloqstore/error.hpp>

#include "support/golden_bytes.hpp"
#include "support/golden_vectors.hpp"

using namespace eloqstore;
using namespace eloqstore::detail;
using namespace eloqstore::test;

namespace {

// A hex dump of bytes around `at`, for failure messages.
std::string hex_around(std::span<const char> bytes, std::size_t at) {
  std::ostringstream os;
  const std::size_t from = at < 8 ? 0 : at - 8;
  const std::size_t to = std::min(bytes.size(), at + 8);
  static const char* digits = "0123456789abcdef";
  for (std::size_t i = from; i < to; ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    os << (i == at ? "[" : "") << digits[b >> 4] << digits[b & 15] << (i == at ? "]" : "") << ' ';
  }
  return os.str();
}

// Compares two byte ranges; on mismatch reports the first differing offset with context.
// Bytes from offset 8 on are compared first: pages and manifest records start with a
// checksum, which differs whenever anything else does and would hide the real difference.
void check_same_bytes(std::span<const char> actual, std::span<const char> expected) {
  REQUIRE(actual.size() == expected.size());
  const std::size_t n = actual.size();
  const std::size_t checksum_end = std::min<std::size_t>(8, n);
  std::size_t diff = n;
  for (std::size_t i = checksum_end; i < n && diff == n; ++i) {
    diff = actual[i] != expected[i] ? i : n;
  }
  for (std::size_t i = 0; i < checksum_end && diff == n; ++i) {
    diff = actual[i] != expected[i] ? i : n;
  }
  CHECK_MESSAGE(diff == actual.size(), "first difference at offset ", diff,
                "\n  actual:   ", hex_around(actual, diff),
                "\n  expected: ", hex_around(expected, diff));
}

std::string_view view(std::span<const char> s) {
  return {s.data(), s.size()};
}

std::vector<char> pointer_list(std::initializer_list<std::uint32_t> ids) {
  std::vector<char> out;
  for (const std::uint32_t id : ids) {
    for (int i = 0; i < 4; ++i) {
      out.push_back(static_cast<char>((id >> (8 * i)) & 0xff));
    }
  }
  return out;
}

}  // namespace

// ---- primitives ---------------------------------------------------------------------------

TEST_CASE("golden: varint bytes") {
  // clang-format off
  const std::vector<std::pair<std::uint64_t, std::vector<char>>> cases = {
      {0, to_chars({0x00})},
      {127, to_chars({0x7f})},
      {128, to_chars({0x80, 0x01})},  // low 7 bits 0 + continuation, then 1
      {300, to_chars({0xac, 0x02})},  // 300 = 2*128 + 44: 0x2c|0x80, 0x02
      {0xffffffffULL, to_chars({0xff, 0xff, 0xff, 0xff, 0x0f})},  // 4*7 bits + 4 bits
      {u64_max, to_chars({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})},
  };
  // clang-format on
  for (const auto& [v, expected] : cases) {
    CAPTURE(v);
    std::string enc;
    put_varint64(enc, v);
    check_same_bytes(enc, expected);
    CHECK(varint_length(v) == expected.size());
    std::uint64_t out = 0;
    CHECK(get_varint64(expected.data(), expected.data() + expected.size(), &out) ==
          expected.data() + expected.size());
    CHECK(out == v);
    if (v <= 0xffffffffULL) {
      std::string enc32;
      put_varint32(enc32, static_cast<std::uint32_t>(v));
      check_same_bytes(enc32, expected);
      std::uint32_t out32 = 0;
      CHECK(get_varint32(expected.data(), expected.data() + expected.size(), &out32) ==
            expected.data() + expected.size());
      CHECK(out32 == v);
    }
  }
}

TEST_CASE("golden: sign-magnitude deltas") {
  // d >= 0 -> d << 1; d < 0 -> (|d| << 1) | 1. Not zig-zag: zig-zag would map -1 to 1.
  CHECK(encode_delta64(0) == 0);
  CHECK(encode_delta64(1) == 2);
  CHECK(encode_delta64(-1) == 3);
  CHECK(encode_delta64(-10) == 21);
  CHECK(encode_delta64(-50) == 101);
  CHECK(encode_delta64(std::numeric_limits<std::int64_t>::max()) == u64_max - 1);
  CHECK(encode_delta64(-std::numeric_limits<std::int64_t>::max()) == u64_max);
  // INT64_MIN: |d| = 2^63, and 2^63 << 1 wraps to 0 in 64 bits, leaving only the sign bit.
  // Such a delta never occurs on disk (timestamps are clamped to [0, INT64_MAX], so deltas
  // stay within +-INT64_MAX); this pins the wrap-around of the formula, which is lossy.
  CHECK(encode_delta64(std::numeric_limits<std::int64_t>::min()) == 1);
  CHECK(decode_delta64(3) == -1);
  CHECK(decode_delta64(2) == 1);
  CHECK(decode_delta64(21) == -10);
  CHECK(decode_delta64(u64_max) == -std::numeric_limits<std::int64_t>::max());
  // 32-bit variant used for index-page child ids.
  CHECK(encode_delta32(-6) == 13);
  CHECK(encode_delta32(-100) == 201);
  CHECK(encode_delta32(std::numeric_limits<std::int32_t>::max()) == 0xfffffffeU);
  CHECK(decode_delta32(13) == -6);
  CHECK(decode_delta32(0xffffffffU) == -std::numeric_limits<std::int32_t>::max());
}

TEST_CASE("golden: fixed-width integers and be64") {
  char buf[8];
  encode_be64(buf, 0x0102030405060708ULL);
  check_same_bytes(std::span<const char>(buf, 8),
                   to_chars({0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}));
  encode_be64(buf, 1700000000000ULL);  // 0x18BCFE56800 ms
  check_same_bytes(std::span<const char>(buf, 8),
                   to_chars({0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00}));
  CHECK(decode_be64(buf) == 1700000000000ULL);
  encode_fixed64(buf, 0x0102030405060708ULL);
  check_same_bytes(std::span<const char>(buf, 8),
                   to_chars({0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01}));
  encode_fixed32(buf, 0xdeadbeefU);
  check_same_bytes(std::span<const char>(buf, 4), to_chars({0xef, 0xbe, 0xad, 0xde}));
  encode_fixed16(buf, 0x1234);
  check_same_bytes(std::span<const char>(buf, 2), to_chars({0x34, 0x12}));
}

TEST_CASE("golden: manifest checksum chunking") {
  // Cross-checks the library's chunked aggregate against the spec's algorithm written out
  // here, across the 1 MiB chunk boundaries, and pins the empty input to 0.
  CHECK(manifest_checksum("") == 0);
  CHECK(spec_manifest_checksum("", 0) == 0);
  for (const std::size_t n : {std::size_t{1}, (std::size_t{1} << 20) - 1, std::size_t{1} << 20,
                              (std::size_t{1} << 20) + 1, (std::size_t{5} << 19) + 17}) {
    CAPTURE(n);
    std::string content(n, '\0');
    for (std::size_t i = 0; i < n; ++i) {
      content[i] = static_cast<char>((i * 131 + 7) & 0xff);
    }
    CHECK(manifest_checksum(content) == spec_manifest_checksum(content.data(), n));
  }
}

// ---- data page ----------------------------------------------------------------------------

namespace {

struct expected_record {
  std::string key;
  std::string value;
  std::uint64_t ts;
  std::uint64_t expire_ts;
  bool overflow;
};

std::vector<expected_record> golden_data_records() {
  const std::vector<char> ptrs = pointer_list({10, 11});
  return {
      {"apple", "red", 100, 0, false},
      {"apricot", "xy", 90, 74565, false},
      {"banana", std::string(ptrs.begin(), ptrs.end()), 200, 0, true},
      {"bandana", "", 150, 0, false},
      {"cherry", "v", 1000, 0, false},
  };
}

void check_at(const data_page_iter& it, const expected_record& r) {
  REQUIRE(it.valid());
  CHECK(it.key() == r.key);
  CHECK(it.value() == r.value);
  CHECK(it.timestamp() == r.ts);
  CHECK(it.expire_ts() == r.expire_ts);
  CHECK(it.is_overflow() == r.overflow);
  CHECK(it.compression() == compression_kind::none);
}

}  // namespace

TEST_CASE("golden: data page") {
  const std::vector<char> expected = golden_data_page();
  const std::vector<expected_record> records = golden_data_records();
  CHECK(verify_page_checksum(expected));

  SUBCASE("builder produces the hand-built bytes") {
    data_page_builder b(data_golden_page_size, 2);
    for (const auto& r : records) {
      REQUIRE(b.add(r.key, r.value, r.ts, r.expire_ts, r.overflow));
    }
    CHECK(b.current_size_bytes() == 94);
    std::span<char> page = b.finish(page_id(7), page_id(258));
    set_page_checksum(page);
    check_same_bytes(page, expected);
  }

  SUBCASE("decoder reads the hand-built bytes") {
    data_page page;
    REQUIRE(data_page::open(expected, page) == error::ok);
    CHECK(page.prev() == page_id(7));
    CHECK(page.next() == page_id(258));
    CHECK(page.restart_count() == 3);
    CHECK(page.restart_offset(0) == 19);
    CHECK(page.restart_offset(1) == 46);
    CHECK(page.restart_offset(2) == 74);
    CHECK(page.entries_end() == 86);
    CHECK_FALSE(page.empty());

    const bytewise_comparator cmp;
    data_page_iter it(page);
    it.seek_to_first();
    for (const auto& r : records) {
      CAPTURE(r.key);
      check_at(it, r);
      it.next();
    }
    CHECK_FALSE(it.valid());
    CHECK(it.status() == error::ok);

    it.seek_to_last();
    check_at(it, records[4]);

    it.seek("b", cmp);
    check_at(it, records[2]);
    it.seek("apricot", cmp);
    check_at(it, records[1]);
    it.seek("bandanaz", cmp);
    check_at(it, records[4]);
    it.seek("", cmp);
    check_at(it, records[0]);
    it.seek("d", cmp);
    CHECK_FALSE(it.valid());
    CHECK(it.status() == error::ok);

    CHECK(it.seek_floor("bandana", cmp));  // second entry of region 1: ts from a delta
    check_at(it, records[3]);
    CHECK(it.seek_floor("apricots", cmp));
    check_at(it, records[1]);
    CHECK(it.seek_floor("b", cmp));
    check_at(it, records[1]);
    CHECK(it.seek_floor("zzz", cmp));
    check_at(it, records[4]);
    CHECK_FALSE(it.seek_floor("a", cmp));
    CHECK_FALSE(it.valid());
    CHECK(it.status() == error::ok);
  }
}

TEST_CASE("golden: docs/format.md data page example") {
  // "apple" -> "red" (ts 5) and "apricot" -> "orange" (ts 7), 4096-byte page, interval 16,
  // no neighbours: the worked example of docs/format.md, byte for byte.
  std::vector<char> expected;
  // clang-format off
  append(expected, {
                       0, 0, 0, 0, 0, 0, 0, 0,  // checksum, set below
                       0x02,                    // type data
                       0x32, 0x00,              // content length 50
                       0xff, 0xff, 0xff, 0xff,  // prev = none
                       0xff, 0xff, 0xff, 0xff,  // next = none
                       // entry 0: shared 0, non_shared 5, vfield 0x30, "apple", "red", ts 5 -> 0a
                       0x00, 0x05, 0x30, 0x61, 0x70, 0x70, 0x6c, 0x65, 0x72, 0x65, 0x64, 0x0a,
                       // entry 1: shared 2, non_shared 5, vfield 0x60, "ricot", "orange", +2 -> 04
                       0x02, 0x05, 0x60, 0x72, 0x69, 0x63, 0x6f, 0x74, 0x6f, 0x72, 0x61, 0x6e,
                       0x67, 0x65, 0x04,
                       0x13, 0x00,  // restart[0] = 19
                       0x01, 0x00,  // restart count 1
                   });
  // clang-format on
  REQUIRE(expected.size() == 50);
  expected.resize(4096, '\0');
  seal_page_by_hand(expected);

  data_page_builder b(4096, 16);
  REQUIRE(b.add("apple", "red", 5));
  REQUIRE(b.add("apricot", "orange", 7));
  std::span<char> page = b.finish();
  set_page_checksum(page);
  check_same_bytes(page, expected);
}

TEST_CASE("golden: data page overflow-KV threshold") {
  // docs/format.md: with 4 KiB pages an entry larger than 4073 bytes is an overflow KV
  // (19 header + 2 restart slot + 2 count + entry <= 4096).
  // Key "k", ts 1: entry = shared (1) + non_shared (1) + vfield + key (1) + value + ts (1).
  // Value 4066: vfield = 4066 << 4 = 65056, a 3-byte varint; entry = 1+1+3+1+4066+1 = 4073.
  CHECK_FALSE(data_page_builder::is_overflow_kv(4096, "k", 4066, 1, 0));
  CHECK(data_page_builder::is_overflow_kv(4096, "k", 4067, 1, 0));
  data_page_builder b(4096, 16);
  REQUIRE(b.add("k", std::string(4066, 'x'), 1));
  CHECK(b.current_size_bytes() == 4096);
}

// ---- index page ---------------------------------------------------------------------------

namespace {

void check_index_at(const index_page_iter& it, std::string_view key, std::uint32_t child) {
  REQUIRE(it.valid());
  CHECK(it.key() == key);
  CHECK(it.child() == page_id(child));
  CHECK(it.at_leftmost() == key.empty());
}

}  // namespace

TEST_CASE("golden: index page") {
  const std::vector<char> expected = golden_index_page();
  CHECK(verify_page_checksum(expected));
  const std::vector<std::pair<std::string, std::uint32_t>> children = {
      {"", 3}, {"b", 10}, {"bat", 4}, {"c", 300}, {"cab", 200}};

  SUBCASE("builder produces the hand-built bytes") {
    index_page_builder b(index_golden_page_size, 2);
    for (const auto& [key, child] : children) {
      REQUIRE(b.add(key, page_id(child), /*leaf_index=*/true));
    }
    CHECK(b.child_count() == 5);
    std::span<char> page = b.finish();
    set_page_checksum(page);
    check_same_bytes(page, expected);
  }

  SUBCASE("decoder reads the hand-built bytes") {
    index_page page;
    REQUIRE(index_page::open(expected, page) == error::ok);
    CHECK(page.is_leaf_index());
    CHECK(page.leftmost() == page_id(3));
    const bytewise_comparator cmp;
    index_page_iter it(page);
    it.seek_to_first();
    for (const auto& [key, child] : children) {
      CAPTURE(key);
      check_index_at(it, key, child);
      it.next();
    }
    CHECK_FALSE(it.valid());
    CHECK(it.status() == error::ok);

    it.seek_to_last();
    check_index_at(it, "cab", 200);

    const std::vector<std::pair<std::string, std::size_t>> floors = {
        {"", 0},   {"a", 0}, {"azzz", 0}, {"b", 1},   {"ba", 1}, {"bat", 2},
        {"bb", 2}, {"c", 3}, {"ca", 3},   {"cab", 4}, {"zz", 4}};
    for (const auto& [target, at] : floors) {
      CAPTURE(target);
      REQUIRE(it.seek_floor(target, cmp));
      check_index_at(it, children[at].first, children[at].second);
    }
  }
}

TEST_CASE("golden: index page with only the leftmost child") {
  std::vector<char> expected;
  // clang-format off
  append(expected, {
                       0, 0, 0, 0, 0, 0, 0, 0,  // checksum, set below
                       0x00,                    // type 0 = NonLeafIndex
                       0x11, 0x00,              // content length 17 = 15 + 2
                       0x78, 0x56, 0x34, 0x12,  // leftmost child 0x12345678
                       0x00, 0x00,              // restart count 0 (no restart array)
                   });
  // clang-format on
  expected.resize(index_golden_page_size, '\0');
  seal_page_by_hand(expected);

  index_page_builder b(index_golden_page_size, 2);
  REQUIRE(b.add("ignored", page_id(0x12345678), /*leaf_index=*/false));
  std::span<char> built = b.finish();
  set_page_checksum(built);
  check_same_bytes(built, expected);

  index_page page;
  REQUIRE(index_page::open(expected, page) == error::ok);
  CHECK_FALSE(page.is_leaf_index());
  CHECK(page.leftmost() == page_id(0x12345678));
  const bytewise_comparator cmp;
  index_page_iter it(page);
  it.seek_to_first();
  check_index_at(it, "", 0x12345678);
  it.next();
  CHECK_FALSE(it.valid());
  CHECK(it.status() == error::ok);
  it.seek_to_last();
  check_index_at(it, "", 0x12345678);
  REQUIRE(it.seek_floor("anything", cmp));
  check_index_at(it, "", 0x12345678);
}

TEST_CASE("golden: docs/format.md index page example") {
  // LeafIndex page with leftmost child 3, then ("b", 7) and ("d", 5), interval 16.
  std::vector<char> expected;
  // clang-format off
  append(expected, {
                       0, 0, 0, 0, 0, 0, 0, 0,  // checksum, set below
                       0x01,                    // type LeafIndex
                       0x1b, 0x00,              // content length 27
                       0x03, 0x00, 0x00, 0x00,  // leftmost child 3
                       0x00, 0x01, 0x62, 0x0e,  // shared 0, non_shared 1, "b", +7 -> 14
                       0x00, 0x01, 0x64, 0x05,  // shared 0, non_shared 1, "d", 5-7 = -2 -> 5
                       0x0f, 0x00,              // restart[0] = 15
                       0x01, 0x00,              // restart count 1
                   });
  // clang-format on
  expected.resize(4096, '\0');
  seal_page_by_hand(expected);
  index_page_builder b(4096, 16);
  REQUIRE(b.add("", page_id(3), true));
  REQUIRE(b.add("b", page_id(7), true));
  REQUIRE(b.add("d", page_id(5), true));
  std::span<char> built = b.finish();
  set_page_checksum(built);
  check_same_bytes(built, expected);
}

// ---- overflow chain -----------------------------------------------------------------------

TEST_CASE("golden: overflow chain") {
  const std::string value = golden_overflow_value();
  const auto expected_pages = golden_overflow_pages(value);
  // The data-page value: the first group's ids, u32 LE each.
  // clang-format off
  const std::vector<char> expected_head = to_chars({
      0x0a, 0x00, 0x00, 0x00,  // id 10
      0x0b, 0x00, 0x00, 0x00,  // id 11
  });
  // clang-format on
  CHECK(overflow_capacity(overflow_golden_page_size) == 244);
  CHECK(overflow_end_capacity(overflow_golden_page_size, 2) == 236);

  SUBCASE("writer produces the hand-built pages and head") {
    std::uint32_t next_id = 10;
    std::vector<std::pair<std::uint32_t, std::vector<char>>> written;
    std::vector<char> scratch(overflow_golden_page_size);
    std::string head;
    const error e = write_overflow_value(
        value, 2, scratch, [&] { return page_id(next_id++); },
        [&](page_id id, std::span<const char> page) {
          written.emplace_back(id.value(), std::vector<char>(page.begin(), page.end()));
          return error::ok;
        },
        head);
    REQUIRE(e == error::ok);
    check_same_bytes(head, expected_head);
    CHECK(next_id == 13);
    REQUIRE(written.size() == 3);
    // Write order: 10 first; the end page 11 once group 2's ids are known; then 12.
    const std::uint32_t order[] = {10, 11, 12};
    for (std::size_t i = 0; i < 3; ++i) {
      CAPTURE(i);
      CHECK(written[i].first == order[i]);
      check_same_bytes(written[i].second, expected_pages.at(order[i]));
    }
  }

  SUBCASE("reader reads the hand-built pages (sealed and unsealed)") {
    auto sealed = expected_pages;
    for (auto& [id, page] : sealed) {
      seal_page_by_hand(page);
      CHECK(verify_page_checksum(page));
    }
    using page_map = std::map<std::uint32_t, std::vector<char>>;
    for (const page_map* pages : {&expected_pages, static_cast<const page_map*>(&sealed)}) {
      std::vector<std::uint32_t> reads;
      std::string out;
      const error e = read_overflow_value(
          view(expected_head),
          [&](page_id id, std::span<const char>& bytes) {
            reads.push_back(id.value());
            const auto it = pages->find(id.value());
            if (it == pages->end()) {
              return error::not_found;
            }
            bytes = it->second;
            return error::ok;
          },
          out);
      REQUIRE(e == error::ok);
      CHECK(out == value);
      CHECK(reads == std::vector<std::uint32_t>{10, 11, 12});
    }
    overflow_page p;
    REQUIRE(overflow_page::open(expected_pages.at(11), p) == error::ok);
    CHECK(p.chunk() == std::string_view(value).substr(244, 236));
    REQUIRE(p.pointer_count() == 1);
    CHECK(p.pointer(0) == page_id(12));
  }
}

TEST_CASE("golden: docs/format.md overflow example") {
  // 4 KiB pages, 16 pointers, a 100 000-byte value: group 1 = 16 pages (15 x 4084 bytes, then
  // an end page of 4020 bytes pointing at 9 pages), group 2 = 8 x 4084 + 2048.
  std::string value(100000, '\0');
  for (std::size_t i = 0; i < value.size(); ++i) {
    value[i] = static_cast<char>(i * 31 + (i >> 8));
  }
  std::uint32_t next_id = 0;
  std::map<std::uint32_t, std::vector<char>> pages;
  std::vector<char> scratch(4096);
  std::string head;
  REQUIRE(write_overflow_value(
              value, 16, scratch, [&] { return page_id(next_id++); },
              [&](page_id id, std::span<const char> page) {
                pages[id.value()].assign(page.begin(), page.end());
                return error::ok;
              },
              head) == error::ok);
  CHECK(head.size() == 64);  // 16 ids; vfield (64 << 4) | 1 = 1025 = varint 81 08
  std::string vfield;
  put_varint32(vfield, (64u << 4) | 1u);
  check_same_bytes(vfield, to_chars({0x81, 0x08}));
  REQUIRE(pages.size() == 25);
  for (std::uint32_t id = 0; id < 25; ++id) {
    CAPTURE(id);
    const std::vector<char>& p = pages.at(id);
    const std::size_t chunk = static_cast<unsigned char>(p[9]) |
                              (static_cast<std::size_t>(static_cast<unsigned char>(p[10])) << 8);
    const std::size_t m = static_cast<unsigned char>(p[4095]);
    CHECK(p[8] == 3);
    if (id == 15) {
      CHECK(chunk == 4020);
      CHECK(m == 9);
      // Pointers 16..24 at offset 4095 - 36 = 4059.
      for (std::uint32_t j = 0; j < 9; ++j) {
        CHECK(static_cast<unsigned char>(p[4059 + 4 * j]) == 16 + j);
      }
    } else if (id == 24) {
      CHECK(chunk == 2048);
      CHECK(m == 0);
    } else {
      CHECK(chunk == 4084);
      CHECK(m == 0);
    }
  }
}

// ---- manifest -----------------------------------------------------------------------------

namespace {

const std::uint64_t manifest_fid = u64_max - 1;

}  // namespace

TEST_CASE("golden: manifest snapshot and log records") {
  const std::vector<char> snapshot = golden_snapshot_record();
  const std::vector<char> log = golden_log_record();
  const std::vector<std::uint64_t> snapshot_mapping = {1, 2401, 34, 7, 7, 17};

  SUBCASE("builder produces the hand-built snapshot") {
    manifest_builder b;
    const term_mapping terms = {{0, 3}, {manifest_fid, 3}};
    const std::string_view rec =
        b.snapshot(page_id(5), page_id::none(), snapshot_mapping, 400, "dic", terms);
    check_same_bytes(rec, snapshot);
  }

  SUBCASE("builder produces the hand-built log") {
    manifest_builder b;
    b.update_mapping(page_id(3), file_page_id(500));
    b.update_mapping(page_id(6), file_page_id(5));
    b.delete_mapping(page_id(0));
    CHECK(b.change_count() == 3);
    const term_mapping terms = {{0, 3}, {1, 4}, {manifest_fid, 4}};
    const std::string_view rec = b.finish_log(page_id(9), page_id(2), terms);
    check_same_bytes(rec, log);
  }

  SUBCASE("replay of the snapshot alone") {
    replay_result r;
    REQUIRE(replay_manifest(view(snapshot), r) == error::ok);
    CHECK(r.root == page_id(5));
    CHECK(r.ttl_root.is_none());
    CHECK(r.mapping == snapshot_mapping);
    CHECK(r.max_fp_id == 400);
    CHECK(r.dictionary == "dic");
    CHECK(r.terms == term_mapping{{0, 3}, {manifest_fid, 3}});
    CHECK(r.append_offset == 4096);
    CHECK(r.log_count == 0);
    CHECK_FALSE(r.torn_tail);
  }

  SUBCASE("replay of snapshot + log") {
    std::vector<char> file = snapshot;
    file.insert(file.end(), log.begin(), log.end());
    replay_result r;
    REQUIRE(replay_manifest(view(file), r) == error::ok);
    CHECK(r.root == page_id(9));
    CHECK(r.ttl_root == page_id(2));
    CHECK(r.mapping == std::vector<std::uint64_t>{7, 2401, 34, 4001, 7, 17, 41});
    CHECK(r.max_fp_id == 501);  // raised past fp 500 by the log
    CHECK(r.dictionary == "dic");
    CHECK(r.terms == term_mapping{{0, 3}, {1, 4}, {manifest_fid, 4}});
    CHECK(r.append_offset == 8192);
    CHECK(r.log_count == 1);
    CHECK_FALSE(r.torn_tail);
  }

  SUBCASE("replay accepts a last record whose padding is cut off") {
    std::vector<char> file = snapshot;
    file.insert(file.end(), log.begin(), log.begin() + 50);  // header + payload, no padding
    replay_result r;
    REQUIRE(replay_manifest(view(file), r) == error::ok);
    CHECK(r.root == page_id(9));
    CHECK(r.log_count == 1);
    CHECK_FALSE(r.torn_tail);
    CHECK(r.append_offset == 8192);
  }
}
