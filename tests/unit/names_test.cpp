// Identities and names: table_ident, file names, mapping tags, strong ids, separators.
#include <cstdint>
#include <limits>
#include <string>
#include <unordered_set>

#include <doctest/doctest.h>

#include <eloqstore/comparator.hpp>
#include <eloqstore/detail/io/file_names.hpp>
#include <eloqstore/detail/mapping/mapping_entry.hpp>
#include <eloqstore/detail/util/strong_id.hpp>
#include <eloqstore/table_ident.hpp>

#include "support/page_store.hpp"

using namespace eloqstore;
using namespace eloqstore::detail;

TEST_CASE("names: table_ident text form splits at the last dot") {
  const table_ident t{"orders.eu", 42};
  CHECK(t.to_string() == "orders.eu.42");
  const auto p = table_ident::parse("orders.eu.42");
  REQUIRE(p.has_value());
  CHECK(*p == t);
  CHECK(table_ident::parse("t.0")->partition == 0);
  CHECK(table_ident::parse("t.4294967295")->partition == 4294967295u);
  CHECK_FALSE(table_ident::parse("t.4294967296"));  // over u32
  CHECK_FALSE(table_ident::parse("noparts"));
  CHECK_FALSE(table_ident::parse(".5"));    // empty name
  CHECK_FALSE(table_ident::parse("t."));    // empty partition
  CHECK_FALSE(table_ident::parse("t.05"));  // not canonical
  CHECK_FALSE(table_ident::parse("t.+5"));
  CHECK_FALSE(table_ident::parse("t.5x"));
  CHECK_FALSE(table_ident::parse("a/b.1"));
}

TEST_CASE("names: table name validity, routing and hashing") {
  CHECK(table_ident::valid_name("users"));
  CHECK(table_ident::valid_name("a.b.c"));
  CHECK_FALSE(table_ident::valid_name(""));
  CHECK_FALSE(table_ident::valid_name("a/b"));
  CHECK_FALSE(table_ident::valid_name(std::string("a\0b", 3)));
  CHECK_FALSE(table_ident::valid_name("tab\there"));
  CHECK(table_ident::valid_name(std::string(table_ident::name_bytes_max, 'x')));
  CHECK_FALSE(table_ident::valid_name(std::string(table_ident::name_bytes_max + 1, 'x')));
  const table_ident t{"x", 10};
  CHECK(t.shard_index(4) == 2);
  CHECK(t.disk_index(3) == 1);
  CHECK(table_ident{"other", 10}.shard_index(4) == 2);  // the name does not route
  std::unordered_set<table_ident> set{{"a", 1}, {"a", 2}, {"b", 1}};
  CHECK(set.size() == 3);
  CHECK(set.count({"a", 2}) == 1);
}

TEST_CASE("names: file names round trip and legacy names are rejected") {
  CHECK(data_file_name(file_id(3), 0) == "data_3_0");
  CHECK(manifest_file_name(7) == "manifest_7");
  CHECK(archive_file_name(7, 1700000000123456) == "manifest_7_1700000000123456");
  CHECK(temporary_file_name("manifest_7") == "manifest_7.tmp");

  test::rng r(5);
  for (int i = 0; i < 2000; ++i) {
    const std::uint64_t id = r.uniform(0, data_file_id_max);
    const std::uint64_t term = r.uniform(0, std::numeric_limits<std::uint64_t>::max());
    const auto d = parse_file_name(data_file_name(file_id(id), term));
    CHECK(d.kind == file_kind::data);
    CHECK(d.id == file_id(id));
    CHECK(d.term == term);
    const auto m = parse_file_name(manifest_file_name(term));
    CHECK(m.kind == file_kind::manifest);
    CHECK(m.term == term);
    const auto a = parse_file_name(archive_file_name(term, id));
    CHECK(a.kind == file_kind::archive);
    CHECK(a.term == term);
    CHECK(a.timestamp == id);
  }
  CHECK(parse_file_name("CURRENT_TERM").kind == file_kind::current_term);
  CHECK(parse_file_name("manifest_3.tmp").kind == file_kind::temporary);
  CHECK(parse_file_name("data_1_2.tmp").kind == file_kind::temporary);
  for (const char* bad :
       {"data_5", "manifest", "data", "data_", "data__1", "data_1_", "data_x_1", "data_1_2_3",
        "data_01_2", "data_18446744073709551615_0", "manifest_", "manifest_a", "manifest_1_",
        "manifest_1_2_3", "data_-1_0", "junk", ".tmp", "", "data_1_99999999999999999999"}) {
    CAPTURE(bad);
    CHECK(parse_file_name(bad).kind == file_kind::unknown);
  }
}

TEST_CASE("names: mapping tags") {
  const file_page_id fp(123456789);
  const std::uint64_t v = encode_file_page(fp);
  CHECK(v == (123456789ull << 3 | 1));
  CHECK(tag_of(v) == mapping_tag::file_page);
  CHECK(decode_file_page(v) == fp);
  const std::uint64_t link = encode_free_link(page_id(77));
  CHECK(tag_of(link) == mapping_tag::free_link);
  CHECK(decode_free_link(link) == page_id(77));
  CHECK(tag_of(mapping_invalid_value) == mapping_tag::invalid);
  CHECK(is_known_tag(0));
  CHECK_FALSE(is_known_tag(3));
  CHECK_FALSE(is_known_tag(6));
  CHECK(decode_file_page(encode_file_page(file_page_id(file_page_id_max))).value() ==
        file_page_id_max);
}

TEST_CASE("names: strong ids and file addressing") {
  CHECK(page_id::none().value() == 0xFFFFFFFFu);
  CHECK(page_id().is_none());
  CHECK(page_id(1) < page_id(2));
  CHECK(manifest_file_id.value() == std::numeric_limits<std::uint64_t>::max() - 1);
  const file_page_id fp((std::uint64_t{5} << 18) | 3);
  CHECK(file_of(fp, 18) == file_id(5));
  CHECK(file_offset_bytes(fp, 18, 4096) == 3 * 4096);
}

TEST_CASE("names: bytewise shortest separator") {
  const bytewise_comparator cmp;
  CHECK(cmp.shortest_separator("abc", "abd") == "abd");
  CHECK(cmp.shortest_separator("abc", "abzzz") == "abz");
  CHECK(cmp.shortest_separator("ab", "abcd") == "abc");
  CHECK(cmp.shortest_separator("", "b") == "b");
  CHECK(cmp.compare("\xff", "\x01") > 0);  // unsigned order
  test::rng r(9);
  for (int i = 0; i < 20000; ++i) {
    std::string a = r.bytes(r.uniform(0, 8), 4);
    std::string b = r.bytes(r.uniform(1, 8), 4);
    if (a == b) {
      continue;
    }
    if (a > b) {
      std::swap(a, b);
    }
    const std::string s = cmp.shortest_separator(a, b);
    CAPTURE(a);
    CAPTURE(b);
    CHECK(cmp.compare(a, s) < 0);
    CHECK(cmp.compare(s, b) <= 0);
    CHECK(b.starts_with(s));
  }
}
