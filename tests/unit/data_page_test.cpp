// Data pages: builder/iterator round trips against a std::map model, seek and seek_floor,
// the fit rule and the overflow-KV rule.
#include <cstdint>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/comparator.hpp>
#include <eloqstore/detail/codec/checksum.hpp>
#include <eloqstore/detail/page/data_page.hpp>

#include "support/page_store.hpp"

using namespace eloqstore;
using namespace eloqstore::detail;

namespace {

struct record {
  std::string value;
  std::uint64_t ts = 0;
  std::uint64_t expire_ts = 0;
  bool overflow = false;
  compression_kind compression = compression_kind::none;
};
using model = std::map<std::string, record>;

// Fills one page from random records; returns the records that went in.
model fill_random_page(test::rng& r, data_page_builder& b, std::size_t page_size, int alphabet) {
  model candidates;
  const std::size_t n = r.uniform(1, 400);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t key_len = r.chance(0.05) ? r.uniform(1, page_size / 2) : r.uniform(1, 24);
    record rec;
    rec.value = r.bytes(r.chance(0.1) ? r.uniform(0, page_size / 3) : r.uniform(0, 40));
    rec.ts = r.chance(0.05) ? std::numeric_limits<std::int64_t>::max() - r.uniform(0, 5)
                            : r.uniform(0, 1u << 30);
    rec.expire_ts = r.chance(0.3) ? r.uniform(1, std::uint64_t{1} << 45) : 0;
    rec.overflow = r.chance(0.05);
    rec.compression = static_cast<compression_kind>(r.uniform(0, 2));
    candidates.emplace(r.bytes(key_len, alphabet), std::move(rec));
  }
  model in_page;
  b.reset();
  for (const auto& [k, rec] : candidates) {
    if (!b.add(k, rec.value, rec.ts, rec.expire_ts, rec.overflow, rec.compression)) {
      break;
    }
    in_page.emplace(k, rec);
  }
  return in_page;
}

void check_entry(const data_page_iter& it, const std::string& key, const record& rec) {
  REQUIRE(it.valid());
  CHECK(it.key() == key);
  CHECK(it.value() == rec.value);
  CHECK(it.timestamp() == rec.ts);
  CHECK(it.expire_ts() == rec.expire_ts);
  CHECK(it.is_overflow() == rec.overflow);
  CHECK(it.compression() == rec.compression);
}

}  // namespace

TEST_CASE("data page: random pages round trip and agree with std::map") {
  const bytewise_comparator cmp;
  for (const std::size_t page_size : {std::size_t{4096}, std::size_t{512}, std::size_t{16384}}) {
    for (const std::uint16_t interval : {std::uint16_t{1}, std::uint16_t{3}, std::uint16_t{16}}) {
      const std::uint64_t seed = page_size * 131 + interval;
      CAPTURE(seed);
      test::rng r(seed);
      data_page_builder b(page_size, interval);
      const int pages = page_size == 16384 ? 150 : 700;
      for (int p = 0; p < pages; ++p) {
        const int alphabet = r.chance(0.5) ? 3 : 256;  // small alphabets give long shared prefixes
        const model m = fill_random_page(r, b, page_size, alphabet);
        CHECK(b.current_size_bytes() <= page_size);
        std::span<char> bytes = b.finish(page_id(p), page_id(p + 1));
        set_page_checksum(bytes);
        REQUIRE(verify_page_checksum(bytes));
        data_page page;
        REQUIRE(data_page::open(bytes, page) == error::ok);
        CHECK(page.prev() == page_id(p));
        CHECK(page.next() == page_id(p + 1));
        CHECK(decode_fixed16(bytes.data() + content_length_offset) == b.current_size_bytes());

        data_page_iter it(page);
        it.seek_to_first();
        for (const auto& [k, rec] : m) {
          check_entry(it, k, rec);
          it.next();
        }
        CHECK_FALSE(it.valid());
        CHECK(it.status() == error::ok);
        if (!m.empty()) {
          it.seek_to_last();
          check_entry(it, std::prev(m.end())->first, std::prev(m.end())->second);
        }

        // Seeks for present keys, absent keys and keys off both ends.
        for (int q = 0; q < 30; ++q) {
          std::string target =
              r.chance(0.5) && !m.empty()
                  ? std::next(m.begin(), static_cast<std::ptrdiff_t>(r.uniform(0, m.size() - 1)))
                        ->first
                  : r.bytes(r.uniform(0, 6), alphabet);
          if (r.chance(0.3)) {
            target.push_back('\0');
          }
          CAPTURE(target);
          it.seek(target, cmp);
          const auto lb = m.lower_bound(target);
          if (lb == m.end()) {
            CHECK_FALSE(it.valid());
          } else {
            check_entry(it, lb->first, lb->second);
          }
          const bool found = it.seek_floor(target, cmp);
          auto ub = m.upper_bound(target);
          if (ub == m.begin()) {
            CHECK_FALSE(found);
            CHECK_FALSE(it.valid());
          } else {
            --ub;
            CHECK(found);
            check_entry(it, ub->first, ub->second);
            // The cursor stepped back onto the floor entry: iterating on from it decodes
            // every later entry (keys, delta-coded timestamps) as a scan from the start does.
            for (auto rest = std::next(ub); rest != m.end(); ++rest) {
              it.next();
              check_entry(it, rest->first, rest->second);
            }
            it.next();
            CHECK_FALSE(it.valid());
          }
          CHECK(it.status() == error::ok);
        }
      }
    }
  }
}

TEST_CASE("data page: restart regions copied into a new page keep every entry") {
  // A page made of whole regions of other pages with new entries between them (what the
  // writer's region-by-region patch does) decodes to exactly those entries: keys, values,
  // delta-coded timestamps and expiry, with seeks that land in copied and in added regions.
  const bytewise_comparator cmp;
  for (const std::uint16_t interval : {std::uint16_t{1}, std::uint16_t{4}, std::uint16_t{16}}) {
    CAPTURE(interval);
    test::rng r(interval);
    data_page_builder src(4096, interval);
    data_page_builder out(4096, interval);
    for (int round = 0; round < 200; ++round) {
      const model m = fill_random_page(r, src, 4096, 256);
      if (m.empty()) {
        continue;
      }
      const std::span<char> bytes = src.finish();
      data_page page;
      REQUIRE(data_page::open(bytes, page) == error::ok);
      // Each region either copied whole or (chance 1/3) added entry by entry, so copied
      // regions follow added entries and added entries follow copied regions.
      std::vector<std::vector<std::pair<std::string, record>>> regions(page.restart_count());
      data_page_iter it(page);
      for (it.seek_to_first(); it.valid(); it.next()) {
        regions[it.region()].emplace_back(
            std::string(it.key()), record{std::string(it.value()), it.timestamp(), it.expire_ts(),
                                          it.is_overflow(), it.compression()});
      }
      REQUIRE(it.status() == error::ok);
      for (std::size_t k = 0; k < regions.size(); ++k) {
        std::string_view first;
        REQUIRE(it.region_first_key(k, first));
        CHECK(first == regions[k].front().first);
        it.seek_to_region(k);
        REQUIRE(it.valid());
        CHECK(it.key() == regions[k].front().first);
        CHECK(it.region() == k);
      }
      model expect;
      out.reset();
      bool fits = true;
      for (std::size_t k = 0; fits && k < regions.size(); ++k) {
        if (r.chance(1.0 / 3)) {
          for (const auto& [key, rec] : regions[k]) {
            fits = out.add(key, rec.value, rec.ts, rec.expire_ts, rec.overflow, rec.compression);
            if (!fits) {
              break;
            }
            expect.emplace(key, rec);
          }
          continue;
        }
        const std::size_t begin = page.restart_offset(k);
        const std::size_t end =
            k + 1 < regions.size() ? page.restart_offset(k + 1) : page.entries_end();
        fits = out.append_region(std::span<const char>(bytes.data() + begin, end - begin),
                                 regions[k].size());
        if (fits) {
          expect.insert(regions[k].begin(), regions[k].end());
        }
      }
      CHECK(out.entry_count() == expect.size());
      CHECK(out.current_size_bytes() <= 4096);
      const std::span<char> built = out.finish();
      data_page copy;
      REQUIRE(data_page::open(built, copy) == error::ok);
      data_page_iter ci(copy);
      ci.seek_to_first();
      for (const auto& [key, rec] : expect) {
        check_entry(ci, key, rec);
        ci.next();
      }
      CHECK_FALSE(ci.valid());
      CHECK(ci.status() == error::ok);
      for (int q = 0; q < 10 && !expect.empty(); ++q) {
        const auto at =
            std::next(expect.begin(), static_cast<std::ptrdiff_t>(r.uniform(0, expect.size() - 1)));
        ci.seek(at->first, cmp);
        check_entry(ci, at->first, at->second);
      }
    }
  }
}

TEST_CASE("data page: regions longer than the builder's interval are copied whole") {
  // A page written with restart interval 16 (another option value, or another engine),
  // copied region by region into a builder with interval 4 and followed by added entries.
  data_page_builder src(4096, 16);
  model m;
  for (int i = 0; i < 40; ++i) {
    char key[8];
    std::snprintf(key, sizeof key, "k%03d", i);
    REQUIRE(src.add(key, std::string(5, static_cast<char>('a' + i % 26)), 100 + i));
    m.emplace(key, record{std::string(5, static_cast<char>('a' + i % 26)), 100u + i});
  }
  const std::span<char> bytes = src.finish();
  data_page page;
  REQUIRE(data_page::open(bytes, page) == error::ok);
  REQUIRE(page.restart_count() == 3);  // 16 + 16 + 8 entries
  data_page_builder out(4096, 4);
  for (std::size_t k = 0; k < page.restart_count(); ++k) {
    const std::size_t begin = page.restart_offset(k);
    const std::size_t end =
        k + 1 < page.restart_count() ? page.restart_offset(k + 1) : page.entries_end();
    REQUIRE(out.append_region(std::span<const char>(bytes.data() + begin, end - begin),
                              k < 2 ? 16 : 8));
  }
  for (int i = 40; i < 46; ++i) {
    char key[8];
    std::snprintf(key, sizeof key, "k%03d", i);
    REQUIRE(out.add(key, "new", 7));
    m.emplace(key, record{"new", 7});
  }
  CHECK(out.entry_count() == 46);
  const std::span<char> built = out.finish();
  data_page copy;
  REQUIRE(data_page::open(built, copy) == error::ok);
  CHECK(copy.restart_count() == 3 + 2);  // the 6 added entries: regions of 4 and 2
  data_page_iter it(copy);
  it.seek_to_first();
  for (const auto& [key, rec] : m) {
    check_entry(it, key, rec);
    it.next();
  }
  CHECK_FALSE(it.valid());
  const bytewise_comparator cmp;
  it.seek("k020", cmp);  // inside the second copied region, past its restart point
  check_entry(it, "k020", m.at("k020"));
}

TEST_CASE("data page: a region that does not fit is refused and changes nothing") {
  data_page_builder src(512, 2);
  for (char c = 'a'; c <= 'f'; ++c) {
    REQUIRE(src.add(std::string(1, c), std::string(60, c), 5));
  }
  const std::span<char> bytes = src.finish();
  data_page page;
  REQUIRE(data_page::open(bytes, page) == error::ok);
  REQUIRE(page.restart_count() == 3);
  const std::span<const char> region(bytes.data() + page.restart_offset(1),
                                     page.restart_offset(2) - page.restart_offset(1));
  data_page_builder out(512, 2);
  REQUIRE(out.add("A", std::string(400, 'v'), 1));
  const std::size_t before = out.current_size_bytes();
  CHECK_FALSE(out.append_region(region, 2));
  CHECK(out.current_size_bytes() == before);
  CHECK(out.entry_count() == 1);
  out.reset();
  REQUIRE(out.append_region(region, 2));
  REQUIRE(out.add("z", "last", 9));  // starts its own region after the copied one
  const std::span<char> built = out.finish();
  data_page copy;
  REQUIRE(data_page::open(built, copy) == error::ok);
  CHECK(copy.restart_count() == 2);
  data_page_iter it(copy);
  it.seek_to_first();
  CHECK(it.key() == "c");
  CHECK(it.timestamp() == 5);
  it.next();
  CHECK(it.key() == "d");
  it.next();
  CHECK(it.key() == "z");
  CHECK(it.value() == "last");
  CHECK(it.timestamp() == 9);
  it.next();
  CHECK_FALSE(it.valid());
}

TEST_CASE("data page: fit rule counts header, restart slots and the restart count") {
  data_page_builder b(4096, 16);
  CHECK(b.current_size_bytes() == 19 + 2 + 2);
  // Find the longest value that fits exactly by search; the builder must accept it and reject
  // one byte more.
  std::size_t lo = 0;
  std::size_t hi = 4096;
  while (lo < hi) {
    const std::size_t mid = (lo + hi + 1) / 2;
    b.reset();
    if (b.add("k", std::string(mid, 'v'), 0)) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  b.reset();
  REQUIRE(b.add("k", std::string(lo, 'v'), 0));
  CHECK(b.current_size_bytes() == 4096);  // the largest fitting value fills the page exactly
  b.reset();
  CHECK_FALSE(b.add("k", std::string(lo + 1, 'v'), 0));
  CHECK(data_page_builder::is_overflow_kv(4096, "k", lo + 1, 0, 0));
  CHECK_FALSE(data_page_builder::is_overflow_kv(4096, "k", lo, 0, 0));
  // The builder accepts exactly what the overflow rule says fits an empty page.
  CHECK(lo == 4096 - 23 - (1 + 1 + varint_length(lo << 4) + 1 + 1));
}

TEST_CASE("data page: a new restart region costs two more bytes") {
  data_page_builder b(512, 2);
  REQUIRE(b.add("a", "", 1));
  REQUIRE(b.add("b", "", 1));
  const std::size_t before = b.current_size_bytes();
  REQUIRE(b.add("c", "", 1));  // third entry opens region 2
  // entry: shared(1) non_shared(1) vfield(1) key(1) ts(1) = 5, plus one restart slot.
  CHECK(b.current_size_bytes() == before + 5 + 2);
}

TEST_CASE("data page: timestamps above INT64_MAX are clamped") {
  data_page_builder b(4096, 16);
  REQUIRE(b.add("a", "x", std::numeric_limits<std::uint64_t>::max()));
  REQUIRE(b.add("b", "y", 0));
  const auto bytes = b.finish();
  data_page page;
  REQUIRE(data_page::open(bytes, page) == error::ok);
  data_page_iter it(page);
  it.seek_to_first();
  CHECK(it.timestamp() == timestamp_max);
  it.next();
  CHECK(it.timestamp() == 0);
}

TEST_CASE("data page: an empty page opens and iterates nothing") {
  data_page_builder b(4096, 16);
  const auto bytes = b.finish();
  data_page page;
  REQUIRE(data_page::open(bytes, page) == error::ok);
  CHECK(page.empty());
  data_page_iter it(page);
  it.seek_to_first();
  CHECK_FALSE(it.valid());
  it.seek("a", bytewise_comparator{});
  CHECK_FALSE(it.valid());
  CHECK_FALSE(it.seek_floor("a", bytewise_comparator{}));
  CHECK(it.status() == error::ok);
}
