// Fuzz target: the page decoders (data, index and overflow pages, the paired page check and
// the overflow chain reader) on arbitrary bytes.
//
// Input: byte 0 picks the page size (256 B .. 32 KiB), the next page-size bytes are the page
// (zero-filled when the input is shorter), and what follows is a key to seek.
//
// Beyond "never reads outside the page" (ASan) and "never overflows" (UBSan), a page that
// decodes must behave like one:
// * a data or index page that passes check_page() iterates the same forwards as its
//   restart regions list it, seek() and seek_floor() find every key it holds, and the seek
//   key lands between its neighbours;
// * rebuilt with our builders from what was decoded, it decodes to the same records;
// * an overflow page's chunk and pointers lie inside it, and a chain that points back at
//   itself is refused, not followed forever.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <eloqstore/comparator.hpp>
#include <eloqstore/detail/page/data_page.hpp>
#include <eloqstore/detail/page/index_page.hpp>
#include <eloqstore/detail/page/overflow_page.hpp>
#include <eloqstore/detail/page/page_check.hpp>

#include "fuzz/fuzz_input.hpp"

using namespace eloqstore;
using namespace eloqstore::detail;

namespace {

const bytewise_comparator cmp;

int compare(std::string_view a, std::string_view b) {
  const auto c = cmp.compare(a, b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

struct data_record {
  std::string key;
  std::string value;
  std::uint64_t ts;
  std::uint64_t expire_ts;
  bool overflow;
  compression_kind compression;
  bool operator==(const data_record&) const = default;
};

// Every record of a data page in iteration order; false if the iteration stopped on
// corruption.
bool read_records(std::span<const char> bytes, std::vector<data_record>& out) {
  data_page page;
  if (data_page::open(bytes, page) != error::ok) {
    return false;
  }
  data_page_iter it(page);
  for (it.seek_to_first(); it.valid(); it.next()) {
    out.push_back(data_record{std::string(it.key()), std::string(it.value()), it.timestamp(),
                              it.expire_ts(), it.is_overflow(), it.compression()});
  }
  return it.status() == error::ok;
}

void check_data_page_behaves(std::span<const char> bytes, std::string_view target) {
  std::vector<data_record> recs;
  const bool whole = read_records(bytes, recs);
  if (check_data_page(bytes, [](auto a, auto b) { return compare(a, b); }) != error::ok) {
    return;
  }
  FUZZ_CHECK(whole && !recs.empty());
  data_page page;
  FUZZ_CHECK(data_page::open(bytes, page) == error::ok);

  // seek_to_last lands on the last record; every key is found by seek and seek_floor.
  data_page_iter it(page);
  it.seek_to_last();
  FUZZ_CHECK(it.valid() && it.key() == recs.back().key);
  for (const data_record& r : recs) {
    it.seek(r.key, cmp);
    FUZZ_CHECK(it.valid() && it.key() == r.key && it.value() == r.value);
    FUZZ_CHECK(it.seek_floor(r.key, cmp) && it.key() == r.key);
  }
  // The seek key: seek gives the first key >= target, seek_floor the last key <= target.
  std::size_t lower = 0;
  while (lower < recs.size() && compare(recs[lower].key, target) < 0) {
    ++lower;
  }
  it.seek(target, cmp);
  FUZZ_CHECK(it.valid() == (lower < recs.size()));
  if (lower < recs.size()) {
    FUZZ_CHECK(it.key() == recs[lower].key);
  }
  const bool exact = lower < recs.size() && recs[lower].key == target;
  const std::size_t floor_at = exact ? lower + 1 : lower;  // one past the floor
  const bool has_floor = it.seek_floor(target, cmp);
  FUZZ_CHECK(has_floor == (floor_at > 0));
  if (has_floor) {
    FUZZ_CHECK(it.key() == recs[floor_at - 1].key);
  }

  // Rebuilt by our builder (when the records fit its encoding), the page decodes the same.
  data_page_builder b(bytes.size(), 1 + static_cast<std::uint16_t>(recs.size() % 7));
  for (const data_record& r : recs) {
    if (!b.add(r.key, r.value, r.ts, r.expire_ts, r.overflow, r.compression)) {
      return;  // another restart layout can need more bytes (larger deltas)
    }
  }
  const std::span<char> rebuilt = b.finish(page.prev(), page.next());
  std::vector<data_record> again;
  FUZZ_CHECK(read_records(rebuilt, again));
  FUZZ_CHECK(again == recs);
}

struct index_record {
  std::string key;
  std::uint32_t child;
  bool operator==(const index_record&) const = default;
};

bool read_index(std::span<const char> bytes, std::vector<index_record>& out, bool& leaf) {
  index_page page;
  if (index_page::open(bytes, page) != error::ok) {
    return false;
  }
  leaf = page.is_leaf_index();
  index_page_iter it(page);
  for (it.seek_to_first(); it.valid(); it.next()) {
    out.push_back(index_record{std::string(it.key()), it.child().value()});
  }
  return it.status() == error::ok;
}

void check_index_page_behaves(std::span<const char> bytes, std::string_view target) {
  std::vector<index_record> recs;
  bool leaf = false;
  const bool whole = read_index(bytes, recs, leaf);
  if (check_index_page(bytes, [](auto a, auto b) { return compare(a, b); }) != error::ok) {
    return;
  }
  FUZZ_CHECK(whole && !recs.empty());
  index_page page;
  FUZZ_CHECK(index_page::open(bytes, page) == error::ok);
  index_page_iter it(page);
  // seek_floor picks the child whose range holds the key: the last separator <= key.
  const auto expect_child = [&](std::string_view key) {
    std::size_t at = 0;
    for (std::size_t i = 1; i < recs.size(); ++i) {
      if (compare(recs[i].key, key) <= 0) {
        at = i;
      }
    }
    return recs[at].child;
  };
  for (std::size_t i = 1; i < recs.size(); ++i) {
    FUZZ_CHECK(it.seek_floor(recs[i].key, cmp) && it.child().value() == recs[i].child);
  }
  FUZZ_CHECK(it.seek_floor(target, cmp) && it.child().value() == expect_child(target));

  index_page_builder b(bytes.size(), 1 + static_cast<std::uint16_t>(recs.size() % 5));
  for (const index_record& r : recs) {
    if (!b.add(r.key, page_id(r.child), leaf)) {
      return;
    }
  }
  std::vector<index_record> again;
  bool leaf_again = false;
  FUZZ_CHECK(read_index(b.finish(), again, leaf_again));
  FUZZ_CHECK(again == recs && leaf_again == leaf);
}

void check_overflow_page_behaves(std::span<const char> bytes) {
  overflow_page page;
  if (overflow_page::open(bytes, page) != error::ok) {
    return;
  }
  const std::string_view chunk = page.chunk();
  FUZZ_CHECK(chunk.data() >= bytes.data() &&
             chunk.data() + chunk.size() <= bytes.data() + bytes.size());
  FUZZ_CHECK(page.pointer_count() <= overflow_pointers_max);
  for (std::size_t i = 0; i < page.pointer_count(); ++i) {
    (void)page.pointer(i);
  }
  // A chain whose every page is this one: its pointers lead back to it, so the reader must
  // stop at the page budget (or on the page's shape), never loop or grow without bound.
  std::array<char, 4 * 3> head{};  // ids 0, 0, 0
  std::string value;
  std::size_t reads = 0;
  const error e = read_overflow_value(
      std::string_view(head.data(), head.size()),
      [&](page_id, std::span<const char>& out) {
        ++reads;
        out = bytes;
        return error::ok;
      },
      value, 64);
  FUZZ_CHECK(reads <= 64);
  FUZZ_CHECK(e == error::ok || e == error::corrupted);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::input in(data, size);
  const std::size_t page_size = page_size_min << (in.byte() % 8);  // 256 B .. 32 KiB
  std::vector<char> page(page_size, '\0');
  const std::string_view body = in.bytes(page_size);
  std::copy(body.begin(), body.end(), page.begin());
  const std::string_view target = in.rest();
  const std::span<const char> bytes(page);

  // The check of the page's own type never crashes, whatever the bytes.
  (void)check_page(bytes, [](auto a, auto b) { return compare(a, b); });
  check_data_page_behaves(bytes, target);
  check_index_page_behaves(bytes, target);
  check_overflow_page_behaves(bytes);
  return 0;
}
