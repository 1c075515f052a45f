// Hostile input: the decoders of every on-disk structure meet corrupted bytes.
//
// Valid pages and manifests are built with our encoders from a fixed seed, then mutated
// thousands of times (flipped bytes and bits, truncation, random content length, restart
// count and restart offsets, runs of 0xff that make varints overrun, lengths pointing past the
// end). Every mutated input is copied into a heap block of exactly its size, so that
// AddressSanitizer reports any read past the end, and then fully decoded: open, iterate, seek.
// A decoder must return error::corrupted or succeed with values inside the buffer; it must
// never read out of bounds, loop forever or trip UndefinedBehaviorSanitizer.
//
// Each test prints its seed (and the iteration and mutations on failure) for reproduction.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

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

#include "support/page_store.hpp"

using namespace eloqstore;
using namespace eloqstore::detail;

namespace {

// Upper bound on iterator steps; a page has far fewer entries, so reaching it means a loop.
constexpr std::size_t step_limit = 100000;

// A copy in a heap block of exactly `bytes.size()` bytes (the range constructor allocates
// exactly that much), so AddressSanitizer's redzone sits right after the last byte.
std::vector<char> exact_copy(std::span<const char> bytes) {
  return std::vector<char>(bytes.begin(), bytes.end());
}

// True if `v` lies inside [begin, end).
bool inside(std::string_view v, const char* begin, const char* end) {
  const auto b = reinterpret_cast<std::uintptr_t>(begin);
  const auto e = reinterpret_cast<std::uintptr_t>(end);
  const auto p = reinterpret_cast<std::uintptr_t>(v.data());
  return p >= b && p <= e && e - p >= v.size();
}

std::size_t page_page_size(test::rng& r) {
  static constexpr std::size_t sizes[] = {256, 512, 4096};
  return sizes[r.uniform(0, 2)];
}

// Sorted unique keys over a small alphabet, so neighbours share prefixes.
std::vector<std::string> random_keys(test::rng& r, std::size_t n) {
  std::set<std::string> keys;
  const int alphabet = r.chance(0.7) ? 3 : 256;
  for (std::size_t i = 0; i < n; ++i) {
    std::string k = r.bytes(r.uniform(0, 12), alphabet);
    if (alphabet == 3) {
      for (auto& c : k) {
        c = static_cast<char>('a' + c);
      }
    }
    keys.insert(std::move(k));
  }
  return {keys.begin(), keys.end()};
}

// ---- page mutations -----------------------------------------------------------------------

// Applies 1..3 random mutations to a data or index page and describes them in `log`.
class page_mutator {
 public:
  page_mutator(test::rng& r, std::size_t header_bytes) : r_(r), header_(header_bytes) {}

  std::vector<char> mutate(std::vector<char> p, std::string& log) {
    std::ostringstream os;
    const std::size_t n = r_.uniform(1, 3);
    for (std::size_t i = 0; i < n && !p.empty(); ++i) {
      one(p, os);
    }
    log = os.str();
    return p;
  }

 private:
  // The content length as stored, clamped to the buffer.
  std::size_t content(const std::vector<char>& p) const {
    if (p.size() < content_length_offset + 2) {
      return p.size();
    }
    return std::min<std::size_t>(decode_fixed16(p.data() + content_length_offset), p.size());
  }
  // A random offset, biased into the used part of the page.
  std::size_t offset(const std::vector<char>& p) {
    const std::size_t c = content(p);
    if (c > header_ && r_.chance(0.8)) {
      return r_.uniform(header_, c - 1);
    }
    return r_.uniform(0, p.size() - 1);
  }
  void put16(std::vector<char>& p, std::size_t at, std::uint16_t v) {
    if (at + 2 <= p.size()) {
      encode_fixed16(p.data() + at, v);
    }
  }
  std::uint16_t near_or_any(std::size_t v) {
    if (r_.chance(0.5)) {
      return static_cast<std::uint16_t>(r_.uniform(0, 0xffff));
    }
    return static_cast<std::uint16_t>(v + r_.uniform(0, 12) - 6);
  }

  void one(std::vector<char>& p, std::ostringstream& os) {
    const std::size_t c = content(p);
    switch (r_.uniform(0, 11)) {
      case 0: {
        const std::size_t at = offset(p);
        const auto x = static_cast<char>(r_.uniform(1, 255));
        p[at] = static_cast<char>(p[at] ^ x);
        os << "flip_byte@" << at << ';';
        break;
      }
      case 1: {
        const std::size_t at = offset(p);
        const unsigned bit = static_cast<unsigned>(r_.uniform(0, 7));
        p[at] = static_cast<char>(p[at] ^ (1 << bit));
        os << "flip_bit@" << at << '.' << bit << ';';
        break;
      }
      case 2: {
        const std::size_t lo = r_.chance(0.2) ? 0 : std::min<std::size_t>(page_size_min, p.size());
        const std::size_t n = r_.uniform(std::min(lo, p.size() - 1), p.size() - 1);
        p.resize(n);
        os << "truncate=" << n << ';';
        break;
      }
      case 3: {
        const std::size_t n = r_.uniform(1, 64);
        const std::string extra = r_.bytes(n);
        p.insert(p.end(), extra.begin(), extra.end());
        os << "grow+" << n << ';';
        break;
      }
      case 4: {
        const std::uint16_t v = near_or_any(c);
        put16(p, content_length_offset, v);
        os << "content_length=" << v << ';';
        break;
      }
      case 5: {
        if (c >= 2) {
          const auto v =
              static_cast<std::uint16_t>(r_.chance(0.5) ? r_.uniform(0, 8) : r_.uniform(0, 0xffff));
          put16(p, c - 2, v);
          os << "restart_count=" << v << ';';
        }
        break;
      }
      case 6: {
        if (c >= header_ + 2) {
          const std::size_t count = decode_fixed16(p.data() + c - 2);
          if (count > 0 && 2 * count + 2 <= c) {
            const std::size_t slot = c - 2 - 2 * count + 2 * r_.uniform(0, count - 1);
            const std::uint16_t v = near_or_any(decode_fixed16(p.data() + slot));
            put16(p, slot, v);
            os << "restart_offset@" << slot << '=' << v << ';';
          }
        }
        break;
      }
      case 7: {
        const std::size_t at = offset(p);
        const std::size_t n = std::min<std::size_t>(r_.uniform(1, 12), p.size() - at);
        std::fill_n(p.begin() + static_cast<std::ptrdiff_t>(at), n, static_cast<char>(0xff));
        os << "ff_run@" << at << 'x' << n << ';';
        break;
      }
      case 8: {
        // A large varint where a length, a vfield or a delta was: points past the end.
        const std::size_t at = offset(p);
        const std::uint64_t v = (std::uint64_t{1} << r_.uniform(7, 40)) + r_.uniform(0, 127);
        char buf[varint64_bytes_max];
        const std::size_t n = std::min<std::size_t>(encode_varint64(buf, v) - buf, p.size() - at);
        std::copy_n(buf, n, p.begin() + static_cast<std::ptrdiff_t>(at));
        os << "varint@" << at << '=' << v << ';';
        break;
      }
      case 9: {
        const std::size_t at = offset(p);
        const std::size_t n = std::min<std::size_t>(r_.uniform(1, 16), p.size() - at);
        const std::string run = r_.bytes(n);
        std::copy_n(run.begin(), n, p.begin() + static_cast<std::ptrdiff_t>(at));
        os << "random_run@" << at << 'x' << n << ';';
        break;
      }
      case 10: {
        const std::size_t at = offset(p);
        const std::size_t n = std::min<std::size_t>(r_.uniform(1, 16), p.size() - at);
        std::fill_n(p.begin() + static_cast<std::ptrdiff_t>(at), n, char{0});
        os << "zero_run@" << at << 'x' << n << ';';
        break;
      }
      default: {
        if (p.size() > page_type_offset) {
          static constexpr std::uint8_t types[] = {0, 1, 2, 3, 255, 7};
          const std::uint8_t t = types[r_.uniform(0, 5)];
          p[page_type_offset] = static_cast<char>(t);
          os << "type=" << unsigned{t} << ';';
        }
        break;
      }
    }
  }

  test::rng& r_;
  std::size_t header_;
};

struct outcome_counts {
  std::size_t rejected = 0;  // open() returned corrupted
  std::size_t opened = 0;    // open() accepted the page
  std::size_t corrupt = 0;   // an iterator later reported corrupted
};

// ---- data pages ---------------------------------------------------------------------------

struct data_record {
  std::string key;
  std::string value;
  std::uint64_t ts;
  std::uint64_t expire_ts;
  bool overflow;
  compression_kind compression;
};

struct built_data_page {
  std::vector<char> bytes;
  std::vector<data_record> records;
};

// A random timestamp: mostly small, some near INT64_MAX (so damaged deltas can push the sum
// past it), some above it (clamped to INT64_MAX by the builder).
std::uint64_t random_ts(test::rng& r) {
  if (r.chance(0.6)) {
    return r.uniform(0, std::uint64_t{1} << 40);
  }
  if (r.chance(0.75)) {
    return r.uniform(0, timestamp_max);
  }
  return r.uniform(timestamp_max, std::numeric_limits<std::uint64_t>::max());
}

// A random valid data page.
built_data_page random_data_page(test::rng& r) {
  const std::size_t page_size = page_page_size(r);
  data_page_builder b(page_size, static_cast<std::uint16_t>(r.uniform(1, 5)));
  built_data_page out;
  for (std::string& key : random_keys(r, r.uniform(0, 80))) {
    data_record rec{std::move(key), {}, random_ts(r), 0, false, compression_kind::none};
    if (r.chance(0.3)) {
      rec.expire_ts = r.uniform(1, std::numeric_limits<std::uint64_t>::max());
    }
    if (r.chance(0.15)) {
      rec.overflow = true;
      rec.value = r.bytes(4 * r.uniform(1, 4));
    } else {
      rec.value = r.bytes(r.uniform(0, 40));
      rec.compression = static_cast<compression_kind>(r.uniform(0, 2));
    }
    if (!b.add(rec.key, rec.value, rec.ts, rec.expire_ts, rec.overflow, rec.compression)) {
      break;
    }
    rec.ts = std::min(rec.ts, timestamp_max);  // what the page stores
    out.records.push_back(std::move(rec));
  }
  const std::span<char> page =
      b.finish(page_id(static_cast<std::uint32_t>(r.uniform(0, 0xffffffff))),
               page_id(static_cast<std::uint32_t>(r.uniform(0, 0xffffffff))));
  set_page_checksum(page);
  out.bytes.assign(page.begin(), page.end());
  return out;
}

// The unmutated page must decode to exactly what was added (the control for the mutations).
void check_data_page_control(const built_data_page& built) {
  data_page page;
  REQUIRE(data_page::open(built.bytes, page) == error::ok);
  data_page_iter it(page);
  it.seek_to_first();
  for (const data_record& rec : built.records) {
    REQUIRE(it.valid());
    CHECK(it.key() == rec.key);
    CHECK(it.value() == rec.value);
    CHECK(it.timestamp() == rec.ts);
    CHECK(it.expire_ts() == rec.expire_ts);
    CHECK(it.is_overflow() == rec.overflow);
    CHECK(it.compression() == rec.compression);
    it.next();
  }
  CHECK_FALSE(it.valid());
  CHECK(it.status() == error::ok);
}

// Decodes a (possibly corrupt) data page every way the engine does. Only structural checks:
// with corrupt input, any well-formed answer is acceptable.
void exercise_data_page(std::span<const char> bytes, const std::vector<std::string>& probes,
                        outcome_counts& counts) {
  data_page page;
  const error e = data_page::open(bytes, page);
  if (e != error::ok) {
    CHECK(e == error::corrupted);
    ++counts.rejected;
    return;
  }
  ++counts.opened;
  REQUIRE(page.entries_end() <= bytes.size());
  REQUIRE(page.restart_count() >= 1);
  const char* area_begin = bytes.data() + data_page_header_bytes;
  const char* area_end = bytes.data() + page.entries_end();
  const bytewise_comparator cmp;
  bool corrupt = false;

  // Checks the current entry (if any) and walks on from it for at most `steps` entries.
  auto walk = [&](data_page_iter& it, std::size_t steps) {
    std::size_t n = 0;
    for (; it.valid() && n < steps; ++n) {
      CHECK(inside(it.value(), area_begin, area_end));
      CHECK(it.timestamp() <= timestamp_max);
      CHECK(static_cast<unsigned>(it.compression()) <= 2);
      it.next();
    }
    if (!it.valid()) {
      CHECK((it.status() == error::ok || it.status() == error::corrupted));
      corrupt = corrupt || it.status() == error::corrupted;
    }
    return n;
  };

  {
    data_page_iter it(page);
    it.seek_to_first();
    CHECK(walk(it, step_limit) < step_limit);
  }
  {
    data_page_iter it(page);
    it.seek_to_last();
    walk(it, 1);
  }
  for (const std::string& probe : probes) {
    data_page_iter it(page);
    it.seek(probe, cmp);
    if (it.valid()) {
      CHECK(it.key() >= probe);
    }
    walk(it, 4);
    data_page_iter floor(page);
    if (floor.seek_floor(probe, cmp)) {
      REQUIRE(floor.valid());
      CHECK(floor.key() <= probe);
    }
    walk(floor, 4);
  }
  counts.corrupt += corrupt ? 1 : 0;
}

// Probe keys: some from the page, some random, the empty key.
std::vector<std::string> probes_for(test::rng& r, const std::vector<std::string>& keys) {
  std::vector<std::string> probes{""};
  for (int i = 0; i < 3 && !keys.empty(); ++i) {
    probes.push_back(keys[r.uniform(0, keys.size() - 1)]);
  }
  for (std::string& k : random_keys(r, 3)) {
    probes.push_back(std::move(k));
  }
  probes.emplace_back("\xff\xff\xff");
  return probes;
}

// ---- index pages --------------------------------------------------------------------------

struct built_index_page {
  std::vector<char> bytes;
  std::vector<std::pair<std::string, std::uint32_t>> children;  // [0] is the leftmost
};

built_index_page random_index_page(test::rng& r) {
  const std::size_t page_size = page_page_size(r);
  index_page_builder b(page_size, static_cast<std::uint16_t>(r.uniform(1, 5)));
  const bool leaf = r.chance(0.5);
  built_index_page out;
  auto random_child = [&] {
    return static_cast<std::uint32_t>(r.chance(0.7) ? r.uniform(0, 1000)
                                                    : r.uniform(0, child_page_id_max));
  };
  const std::uint32_t leftmost = random_child();
  REQUIRE(b.add("unused", page_id(leftmost), leaf));
  out.children.emplace_back("", leftmost);
  for (std::string& key : random_keys(r, r.uniform(0, 80))) {
    if (key.empty()) {
      continue;  // separators are never empty
    }
    const std::uint32_t child = random_child();
    if (!b.add(key, page_id(child), leaf)) {
      break;
    }
    out.children.emplace_back(std::move(key), child);
  }
  const std::span<char> page = b.finish();
  set_page_checksum(page);
  out.bytes.assign(page.begin(), page.end());
  return out;
}

void check_index_page_control(const built_index_page& built) {
  index_page page;
  REQUIRE(index_page::open(built.bytes, page) == error::ok);
  index_page_iter it(page);
  it.seek_to_first();
  for (const auto& [key, child] : built.children) {
    REQUIRE(it.valid());
    CHECK(it.key() == key);
    CHECK(it.child() == page_id(child));
    it.next();
  }
  CHECK_FALSE(it.valid());
  CHECK(it.status() == error::ok);
}

void exercise_index_page(std::span<const char> bytes, const std::vector<std::string>& probes,
                         outcome_counts& counts) {
  index_page page;
  const error e = index_page::open(bytes, page);
  if (e != error::ok) {
    CHECK(e == error::corrupted);
    ++counts.rejected;
    return;
  }
  ++counts.opened;
  REQUIRE(page.area().entries_end <= bytes.size());
  CHECK(page.leftmost().value() <= child_page_id_max);
  const bytewise_comparator cmp;
  bool corrupt = false;
  auto walk = [&](index_page_iter& it, std::size_t steps) {
    std::size_t n = 0;
    for (; it.valid() && n < steps; ++n) {
      CHECK(it.child().value() <= child_page_id_max);
      it.next();
    }
    if (!it.valid()) {
      CHECK((it.status() == error::ok || it.status() == error::corrupted));
      corrupt = corrupt || it.status() == error::corrupted;
    }
    return n;
  };
  {
    index_page_iter it(page);
    it.seek_to_first();
    CHECK(walk(it, step_limit) < step_limit);
  }
  {
    index_page_iter it(page);
    it.seek_to_last();
    walk(it, 1);
  }
  for (const std::string& probe : probes) {
    index_page_iter it(page);
    if (it.seek_floor(probe, cmp)) {
      REQUIRE(it.valid());
      CHECK((it.at_leftmost() || it.key() <= probe));
      walk(it, 4);
    } else {
      CHECK(it.status() == error::corrupted);
      corrupt = true;
    }
  }
  counts.corrupt += corrupt ? 1 : 0;
}

// ---- overflow chains ----------------------------------------------------------------------

struct built_chain {
  std::size_t page_size = 0;
  std::size_t overflow_pointers = 0;
  std::string value;
  std::string head;
  std::map<std::uint32_t, std::vector<char>> pages;  // sealed
};

built_chain random_chain(test::rng& r) {
  built_chain c;
  c.page_size = r.chance(0.8) ? 256 : 512;
  c.overflow_pointers = r.uniform(1, 4);
  c.value = r.bytes(r.uniform(1, 3000));
  std::uint32_t next = static_cast<std::uint32_t>(r.uniform(0, 100));
  std::vector<char> scratch(c.page_size);
  const error e = write_overflow_value(
      c.value, c.overflow_pointers, scratch, [&] { return page_id(next++); },
      [&](page_id id, std::span<const char> page) {
        std::vector<char>& stored = c.pages[id.value()];
        stored.assign(page.begin(), page.end());
        set_page_checksum(stored);
        return error::ok;
      },
      c.head);
  REQUIRE(e == error::ok);
  return c;
}

// Mutates one overflow page: generic damage plus the overflow-specific fields.
std::vector<char> mutate_overflow_page(test::rng& r, std::vector<char> p,
                                       const std::vector<std::uint32_t>& ids, std::string& log) {
  std::ostringstream os;
  const std::size_t n = p.size();
  switch (r.uniform(0, 8)) {
    case 0: {
      const std::size_t at = r.uniform(0, n - 1);
      p[at] = static_cast<char>(p[at] ^ static_cast<char>(r.uniform(1, 255)));
      os << "flip_byte@" << at;
      break;
    }
    case 1: {
      const std::size_t at = r.uniform(0, n - 1);
      p[at] = static_cast<char>(p[at] ^ (1 << r.uniform(0, 7)));
      os << "flip_bit@" << at;
      break;
    }
    case 2: {
      const std::size_t to = r.uniform(0, n - 1);
      p.resize(to);
      os << "truncate=" << to;
      break;
    }
    case 3: {
      // Chunk length: anything, or just past what the page can hold.
      const auto v = static_cast<std::uint16_t>(r.chance(0.5) ? r.uniform(0, 0xffff)
                                                              : r.uniform(n - 16, n + 4));
      encode_fixed16(p.data() + overflow_chunk_length_offset, v);
      os << "chunk_len=" << v;
      break;
    }
    case 4: {
      const auto m = static_cast<std::uint8_t>(r.uniform(0, 255));
      p[n - 1] = static_cast<char>(m);
      os << "pointer_count=" << unsigned{m};
      break;
    }
    case 5: {
      // A pointer slot: an id of this chain (possibly making a cycle) or any id.
      const std::size_t m = static_cast<unsigned char>(p[n - 1]);
      const std::size_t slot = m == 0 ? r.uniform(1, 8) : r.uniform(1, m);
      const std::uint32_t v = r.chance(0.7) ? ids[r.uniform(0, ids.size() - 1)]
                                            : static_cast<std::uint32_t>(r.uniform(0, 0xffffffff));
      if (4 * slot + 1 <= n) {
        encode_fixed32(p.data() + n - 1 - 4 * slot, v);
      }
      os << "pointer_slot" << slot << '=' << v;
      break;
    }
    case 6: {
      p[page_type_offset] = static_cast<char>(r.uniform(0, 255));
      os << "type";
      break;
    }
    case 7: {
      const std::size_t at = r.uniform(0, n - 1);
      const std::size_t len = std::min<std::size_t>(r.uniform(1, 12), n - at);
      std::fill_n(p.begin() + static_cast<std::ptrdiff_t>(at), len, static_cast<char>(0xff));
      os << "ff_run@" << at << 'x' << len;
      break;
    }
    default: {
      const std::size_t extra = r.uniform(1, 64);
      const std::string tail = r.bytes(extra);
      p.insert(p.end(), tail.begin(), tail.end());
      os << "grow+" << extra;
      break;
    }
  }
  log = os.str();
  return p;
}

std::string mutate_head(test::rng& r, std::string head, std::string& log) {
  std::ostringstream os;
  switch (r.uniform(0, 3)) {
    case 0:
      head.resize(r.uniform(0, head.size()));
      os << "head_truncate=" << head.size();
      break;
    case 1:
      head += r.bytes(r.uniform(1, 7));
      os << "head_grow=" << head.size();
      break;
    case 2:
      head = r.bytes(4 * r.uniform(0, 140));
      os << "head_random=" << head.size();
      break;
    default: {
      const std::size_t at = r.uniform(0, head.size() - 1);
      head[at] = static_cast<char>(head[at] ^ static_cast<char>(r.uniform(1, 255)));
      os << "head_flip@" << at;
      break;
    }
  }
  log = os.str();
  return head;
}

// ---- manifests ----------------------------------------------------------------------------

struct manifest_state {
  page_id root = page_id::none();
  page_id ttl_root = page_id::none();
  std::vector<std::uint64_t> mapping;
  std::uint64_t max_fp_id = 0;
  std::string dictionary;
  term_mapping terms;
};

struct built_manifest {
  std::string file;
  std::vector<std::size_t> offsets;    // start of each record; [0] is the snapshot
  std::vector<std::size_t> used;       // header + payload bytes of each record
  std::vector<manifest_state> states;  // state after each record
};

term_mapping random_terms(test::rng& r) {
  std::map<std::uint64_t, std::uint64_t> m;
  const std::size_t n = r.uniform(0, 4);
  for (std::size_t i = 0; i < n; ++i) {
    m[r.uniform(0, 50)] = r.uniform(0, 1000);
  }
  m[manifest_file_id.value()] = r.uniform(0, 1000);
  return {m.begin(), m.end()};
}

page_id random_root(test::rng& r) {
  return r.chance(0.2) ? page_id::none() : page_id(static_cast<std::uint32_t>(r.uniform(0, 5000)));
}

std::uint64_t random_fp(test::rng& r) {
  return r.chance(0.7) ? r.uniform(0, 5000) : r.uniform(0, std::uint64_t{1} << 40);
}

void add_record(built_manifest& m, std::string_view rec, const manifest_state& s) {
  m.offsets.push_back(m.file.size());
  m.used.push_back(manifest_header_bytes +
                   decode_fixed32(rec.data() + manifest_payload_length_offset));
  m.file.append(rec);
  m.states.push_back(s);
}

// A snapshot (sometimes spanning several 4 KiB blocks) followed by `logs` log records.
built_manifest random_manifest(test::rng& r, std::size_t logs) {
  built_manifest m;
  manifest_builder b;
  manifest_state s;
  const std::size_t n = r.chance(0.2) ? r.uniform(1200, 2500) : r.uniform(0, 40);
  for (std::size_t i = 0; i < n; ++i) {
    switch (r.uniform(0, 2)) {
      case 0:
        s.mapping.push_back(encode_file_page(file_page_id(random_fp(r))));
        break;
      case 1:
        s.mapping.push_back(encode_free_link(page_id(static_cast<std::uint32_t>(r.uniform(0, n)))));
        break;
      default:
        s.mapping.push_back(mapping_invalid_value);
        break;
    }
  }
  const std::uint64_t snapshot_max_fp = r.uniform(0, 6000);
  s.dictionary = r.bytes(r.chance(0.1) ? r.uniform(100, 300) : r.uniform(0, 8));
  s.terms = random_terms(r);
  s.root = random_root(r);
  s.ttl_root = random_root(r);
  s.max_fp_id = snapshot_max_fp;
  for (const std::uint64_t v : s.mapping) {
    if (tag_of(v) == mapping_tag::file_page) {
      s.max_fp_id = std::max(s.max_fp_id, decode_file_page(v).value() + 1);
    }
  }
  add_record(m, b.snapshot(s.root, s.ttl_root, s.mapping, snapshot_max_fp, s.dictionary, s.terms),
             s);
  for (std::size_t l = 0; l < logs; ++l) {
    b.reset();
    const std::size_t changes = r.uniform(0, 6);
    for (std::size_t i = 0; i < changes; ++i) {
      const auto id = static_cast<std::uint32_t>(r.uniform(0, s.mapping.size()));
      if (id >= s.mapping.size()) {
        s.mapping.resize(id + 1, mapping_invalid_value);
      }
      if (r.chance(0.7)) {
        const std::uint64_t fp = random_fp(r);
        b.update_mapping(page_id(id), file_page_id(fp));
        s.mapping[id] = encode_file_page(file_page_id(fp));
        s.max_fp_id = std::max(s.max_fp_id, fp + 1);
      } else {
        b.delete_mapping(page_id(id));
        s.mapping[id] = mapping_invalid_value;
      }
    }
    s.root = random_root(r);
    s.ttl_root = random_root(r);
    s.terms = random_terms(r);
    add_record(m, b.finish_log(s.root, s.ttl_root, s.terms), s);
  }
  return m;
}

void check_state(const replay_result& got, const manifest_state& want) {
  CHECK(got.root == want.root);
  CHECK(got.ttl_root == want.ttl_root);
  CHECK(got.mapping == want.mapping);
  CHECK(got.max_fp_id == want.max_fp_id);
  CHECK(got.dictionary == want.dictionary);
  CHECK(got.terms == want.terms);
}

// Replays `file` from an exactly-sized heap copy.
error replay_exact(std::string_view file, replay_result& out) {
  const std::vector<char> copy = exact_copy(std::span<const char>(file.data(), file.size()));
  return replay_manifest(std::string_view(copy.data(), copy.size()), out);
}

// Recomputes the checksum of the record at `offset` after its content was changed, so the
// damage reaches the payload decoders instead of being stopped by the checksum.
void reseal_record(std::string& file, std::size_t offset) {
  const std::size_t payload = decode_fixed32(file.data() + offset + manifest_payload_length_offset);
  const std::size_t used = manifest_header_bytes + payload;
  if (offset + used > file.size()) {
    return;
  }
  encode_fixed64(file.data() + offset,
                 manifest_checksum(std::string_view(file).substr(offset + 8, used - 8)));
}

}  // namespace

// ---- tests --------------------------------------------------------------------------------

TEST_CASE("hostile: data pages survive random mutations") {
  const std::uint64_t seed = 0x5eed0001;
  CAPTURE(seed);
  test::rng r(seed);
  outcome_counts counts;
  std::size_t iteration = 0;
  for (int p = 0; p < 120; ++p) {
    const built_data_page built = random_data_page(r);
    check_data_page_control(built);
    std::vector<std::string> keys;
    for (const auto& rec : built.records) {
      keys.push_back(rec.key);
    }
    page_mutator mutator(r, data_page_header_bytes);
    for (int m = 0; m < 40; ++m, ++iteration) {
      CAPTURE(iteration);
      std::string log;
      const std::vector<char> mutated = exact_copy(mutator.mutate(built.bytes, log));
      CAPTURE(log);
      exercise_data_page(mutated, probes_for(r, keys), counts);
    }
  }
  MESSAGE("data pages: ", iteration, " mutations, ", counts.rejected, " rejected by open, ",
          counts.opened, " opened, ", counts.corrupt, " found corrupt while iterating");
  // Both outcomes must occur, or the mutations are not reaching the decoders.
  CHECK(counts.rejected > 100);
  CHECK(counts.opened > 100);
  CHECK(counts.corrupt > 100);
}

TEST_CASE("hostile: index pages survive random mutations") {
  const std::uint64_t seed = 0x5eed0002;
  CAPTURE(seed);
  test::rng r(seed);
  outcome_counts counts;
  std::size_t iteration = 0;
  for (int p = 0; p < 120; ++p) {
    const built_index_page built = random_index_page(r);
    check_index_page_control(built);
    std::vector<std::string> keys;
    for (const auto& [key, child] : built.children) {
      keys.push_back(key);
    }
    page_mutator mutator(r, index_page_header_bytes);
    for (int m = 0; m < 40; ++m, ++iteration) {
      CAPTURE(iteration);
      std::string log;
      const std::vector<char> mutated = exact_copy(mutator.mutate(built.bytes, log));
      CAPTURE(log);
      exercise_index_page(mutated, probes_for(r, keys), counts);
    }
  }
  MESSAGE("index pages: ", iteration, " mutations, ", counts.rejected, " rejected by open, ",
          counts.opened, " opened, ", counts.corrupt, " found corrupt while iterating");
  CHECK(counts.rejected > 100);
  CHECK(counts.opened > 100);
  CHECK(counts.corrupt > 100);
}

TEST_CASE("hostile: overflow pages and chains survive random mutations") {
  const std::uint64_t seed = 0x5eed0003;
  CAPTURE(seed);
  test::rng r(seed);
  std::size_t iteration = 0;
  std::size_t detected_by_checksum = 0;
  std::size_t structural_ok = 0;
  std::size_t structural_corrupt = 0;
  std::size_t read_budget_hits = 0;
  for (int c = 0; c < 150; ++c) {
    const built_chain chain = random_chain(r);
    std::vector<std::uint32_t> ids;
    for (const auto& [id, page] : chain.pages) {
      ids.push_back(id);
    }
    for (int m = 0; m < 30; ++m, ++iteration) {
      CAPTURE(iteration);
      std::map<std::uint32_t, std::vector<char>> pages;
      for (const auto& [id, page] : chain.pages) {
        pages[id] = exact_copy(page);
      }
      std::string head = chain.head;
      std::string log;
      const std::uint32_t victim = ids[r.uniform(0, ids.size() - 1)];
      if (r.chance(0.15)) {
        head = mutate_head(r, head, log);
      } else {
        pages[victim] = exact_copy(mutate_overflow_page(r, pages[victim], ids, log));
      }
      CAPTURE(victim);
      CAPTURE(log);

      // The page decoder alone, on the damaged page.
      overflow_page op;
      const std::vector<char>& damaged = pages[victim];
      if (overflow_page::open(damaged, op) == error::ok) {
        CHECK(inside(op.chunk(), damaged.data() + overflow_chunk_offset,
                     damaged.data() + damaged.size()));
        for (std::size_t i = 0; i < op.pointer_count(); ++i) {
          (void)op.pointer(i);  // reads inside the page (ASan checks)
        }
      }

      // 1. As the store reads: every page's checksum is verified, so damage to a page the
      //    chain reaches must come back as corrupted.
      bool damaged_page_read = false;
      std::size_t reads = 0;
      std::string out;
      const error sealed = read_overflow_value(
          head,
          [&](page_id id, std::span<const char>& bytes) {
            const auto it = pages.find(id.value());
            if (it == pages.end()) {
              return error::not_found;
            }
            if (++reads > 4 * pages.size() + 8) {
              return error::io_fail;  // a cycle: more reads than the chain has pages
            }
            damaged_page_read = damaged_page_read || id.value() == victim;
            if (!verify_page_checksum(it->second)) {
              return error::corrupted;
            }
            bytes = it->second;
            return error::ok;
          },
          out);
      CHECK((sealed == error::ok || sealed == error::corrupted || sealed == error::not_found));
      if (sealed == error::ok) {
        CHECK(out.size() <= 4 * pages.size() * chain.page_size);
        if (head == chain.head) {
          CHECK(out == chain.value);
        }
      }
      if (damaged_page_read && pages[victim] != chain.pages.at(victim)) {
        CHECK(sealed == error::corrupted);
        ++detected_by_checksum;
      }

      // 2. Structure only (no checksum): the chain decoder must not read out of bounds and
      //    must stop; a read budget stands in for the 4 GiB bound on cycles.
      reads = 0;
      const error raw = read_overflow_value(
          head,
          [&](page_id id, std::span<const char>& bytes) {
            const auto it = pages.find(id.value());
            if (it == pages.end()) {
              return error::not_found;
            }
            if (++reads > 4 * pages.size() + 8) {
              return error::io_fail;
            }
            bytes = it->second;
            return error::ok;
          },
          out);
      CHECK((raw == error::ok || raw == error::corrupted || raw == error::not_found ||
             raw == error::io_fail));
      if (raw == error::io_fail) {
        ++read_budget_hits;
      } else if (raw == error::ok) {
        ++structural_ok;
        std::size_t largest = 0;
        for (const auto& entry : pages) {
          largest = std::max(largest, entry.second.size());
        }
        CHECK(out.size() <= reads * largest);
      } else {
        ++structural_corrupt;
      }
    }
  }
  MESSAGE("overflow: ", iteration, " mutations, ", detected_by_checksum,
          " caught by page checksums, structurally ", structural_ok, " ok / ", structural_corrupt,
          " rejected, ", read_budget_hits,
          " followed a pointer cycle until the test's read budget");
  CHECK(detected_by_checksum > 100);
  CHECK(structural_ok > 100);
  CHECK(structural_corrupt > 100);
}

TEST_CASE("hostile: page checksum detects every single flipped byte") {
  const std::uint64_t seed = 0x5eed0004;
  CAPTURE(seed);
  test::rng r(seed);
  std::vector<std::vector<char>> pages;
  for (int i = 0; i < 3; ++i) {
    pages.push_back(random_data_page(r).bytes);
    pages.push_back(random_index_page(r).bytes);
  }
  const built_chain chain = random_chain(r);
  for (const auto& [id, page] : chain.pages) {
    pages.push_back(page);
  }
  for (std::size_t p = 0; p < pages.size(); ++p) {
    CAPTURE(p);
    std::vector<char> page = pages[p];
    REQUIRE(verify_page_checksum(page));
    std::size_t missed = 0;
    for (std::size_t at = 0; at < page.size(); ++at) {
      const auto x = static_cast<char>(r.uniform(1, 255));
      page[at] = static_cast<char>(page[at] ^ x);
      if (verify_page_checksum(page)) {
        ++missed;
        CAPTURE(at);
        FAIL_CHECK("flipped byte not detected");
      }
      page[at] = static_cast<char>(page[at] ^ x);
    }
    CHECK(missed == 0);
    CHECK(verify_page_checksum(page));
  }
}

TEST_CASE("hostile: manifest torn tails and corruption in the middle") {
  for (const std::uint64_t seed : {0x5eed0005ULL, 0x5eed0006ULL, 0x5eed0007ULL}) {
    CAPTURE(seed);
    test::rng r(seed);
    const std::size_t logs = r.uniform(3, 5);
    const built_manifest m = random_manifest(r, logs);
    const std::size_t last = logs;  // index of the last record
    REQUIRE(m.offsets.size() == logs + 1);

    replay_result res;
    REQUIRE(replay_exact(m.file, res) == error::ok);
    check_state(res, m.states[last]);
    CHECK(res.log_count == logs);
    CHECK_FALSE(res.torn_tail);
    CHECK(res.append_offset == m.file.size());

    SUBCASE("a flipped byte in the last record: torn tail, previous state") {
      const std::size_t start = m.offsets[last];
      for (std::size_t at = start; at < start + m.used[last]; ++at) {
        CAPTURE(at);
        std::string file = m.file;
        file[at] = static_cast<char>(file[at] ^ static_cast<char>(r.uniform(1, 255)));
        REQUIRE(replay_exact(file, res) == error::ok);
        CHECK(res.torn_tail);
        CHECK(res.append_offset == start);
        CHECK(res.log_count == logs - 1);
        check_state(res, m.states[last - 1]);
      }
    }

    SUBCASE("the last record cut short: torn tail, or accepted once the payload is whole") {
      const std::size_t start = m.offsets[last];
      const std::size_t used_end = start + m.used[last];
      for (std::size_t cut = start; cut <= m.file.size(); cut += cut < used_end + 8 ? 1 : 97) {
        CAPTURE(cut);
        REQUIRE(replay_exact(std::string_view(m.file).substr(0, cut), res) == error::ok);
        if (cut == start) {
          // The file ends exactly where the last record would start: nothing is torn.
          CHECK_FALSE(res.torn_tail);
          CHECK(res.append_offset == start);
          check_state(res, m.states[last - 1]);
        } else if (cut < used_end) {
          CHECK(res.torn_tail);
          CHECK(res.append_offset == start);
          CHECK(res.log_count == logs - 1);
          check_state(res, m.states[last - 1]);
        } else {
          // Header and payload complete: accepted even with the padding cut off.
          CHECK_FALSE(res.torn_tail);
          CHECK(res.log_count == logs);
          CHECK(res.append_offset == m.file.size());
          check_state(res, m.states[last]);
        }
      }
    }

    SUBCASE("the last two records damaged: both skipped as the torn tail") {
      std::string file = m.file;
      file[m.offsets[last - 1] + 20] = static_cast<char>(file[m.offsets[last - 1] + 20] ^ 0x40);
      file[m.offsets[last] + 3] = static_cast<char>(file[m.offsets[last] + 3] ^ 0x01);
      REQUIRE(replay_exact(file, res) == error::ok);
      CHECK(res.torn_tail);
      CHECK(res.append_offset == m.offsets[last - 1]);
      check_state(res, m.states[last - 2]);
    }

    SUBCASE("a flipped byte in a middle record with valid records after it: corrupted") {
      for (std::size_t k = 1; k < last; ++k) {
        CAPTURE(k);
        for (std::size_t at = m.offsets[k]; at < m.offsets[k] + m.used[k]; ++at) {
          CAPTURE(at);
          std::string file = m.file;
          file[at] = static_cast<char>(file[at] ^ static_cast<char>(r.uniform(1, 255)));
          CHECK(replay_exact(file, res) == error::corrupted);
        }
      }
    }

    SUBCASE("a flipped byte in the snapshot: corrupted") {
      for (std::size_t at = 0; at < m.used[0]; ++at) {
        CAPTURE(at);
        std::string file = m.file;
        file[at] = static_cast<char>(file[at] ^ static_cast<char>(r.uniform(1, 255)));
        CHECK(replay_exact(file, res) == error::corrupted);
      }
      // And a file too short to hold the snapshot.
      for (const std::size_t cut :
           {std::size_t{0}, std::size_t{7}, std::size_t{19}, m.used[0] - 1}) {
        CAPTURE(cut);
        CHECK(replay_exact(std::string_view(m.file).substr(0, cut), res) == error::corrupted);
      }
    }

    SUBCASE("garbage in the padding is ignored") {
      std::string file = m.file;
      for (std::size_t k = 0; k <= last; ++k) {
        const std::size_t end = k == last ? file.size() : m.offsets[k + 1];
        for (std::size_t at = m.offsets[k] + m.used[k]; at < end; ++at) {
          file[at] = static_cast<char>(r.uniform(0, 255));
        }
      }
      REQUIRE(replay_exact(file, res) == error::ok);
      CHECK_FALSE(res.torn_tail);
      CHECK(res.log_count == logs);
      check_state(res, m.states[last]);
    }
  }
}

TEST_CASE("hostile: manifests survive random mutations") {
  const std::uint64_t seed = 0x5eed0008;
  CAPTURE(seed);
  test::rng r(seed);
  std::size_t iteration = 0;
  std::size_t ok = 0;
  std::size_t corrupted = 0;
  std::size_t resealed_ok = 0;
  std::size_t resealed_corrupted = 0;
  for (int f = 0; f < 60; ++f) {
    const built_manifest m = random_manifest(r, r.uniform(0, 6));
    const std::size_t records = m.offsets.size();
    for (int i = 0; i < 60; ++i, ++iteration) {
      CAPTURE(iteration);
      std::string file = m.file;
      std::ostringstream os;
      const std::size_t k = r.uniform(0, records - 1);
      const std::size_t start = m.offsets[k];
      const std::size_t used = m.used[k];
      bool resealed = false;
      switch (r.uniform(0, 8)) {
        case 0: {
          const std::size_t at = r.uniform(0, file.size() - 1);
          file[at] = static_cast<char>(file[at] ^ static_cast<char>(r.uniform(1, 255)));
          os << "flip@" << at;
          break;
        }
        case 1: {
          file.resize(r.uniform(0, file.size() - 1));
          os << "truncate=" << file.size();
          break;
        }
        case 2: {
          // Payload bytes changed and the checksum fixed up: reaches the payload decoders.
          const std::size_t n = r.uniform(1, 4);
          for (std::size_t j = 0; j < n && used > manifest_header_bytes; ++j) {
            const std::size_t at = start + r.uniform(manifest_header_bytes, used - 1);
            file[at] = static_cast<char>(file[at] ^ static_cast<char>(r.uniform(1, 255)));
            os << "payload_flip@" << at << ';';
          }
          resealed = true;
          break;
        }
        case 3: {
          // A run of 0xff in the payload: varints that run on past their field.
          if (used > manifest_header_bytes) {
            const std::size_t at = start + r.uniform(manifest_header_bytes, used - 1);
            const std::size_t n = std::min<std::size_t>(r.uniform(1, 12), start + used - at);
            std::fill_n(file.begin() + static_cast<std::ptrdiff_t>(at), n, static_cast<char>(0xff));
            os << "ff_run@" << at << 'x' << n;
          }
          resealed = true;
          break;
        }
        case 4: {
          // A fixed32 length inside the payload (mapping or term bytes) set to anything.
          if (used >= manifest_header_bytes + 4) {
            const std::size_t at = start + r.uniform(manifest_header_bytes, used - 4);
            const auto v = static_cast<std::uint32_t>(r.chance(0.5) ? r.uniform(0, 0xffffffff)
                                                                    : r.uniform(0, used + 8));
            encode_fixed32(file.data() + at, v);
            os << "fixed32@" << at << '=' << v;
          }
          resealed = true;
          break;
        }
        case 5: {
          // payload_len changed (shorter, longer or past the end), then resealed.
          const auto v = static_cast<std::uint32_t>(r.chance(0.7) ? r.uniform(0, used + 64)
                                                                  : r.uniform(0, 0xffffffff));
          encode_fixed32(file.data() + start + manifest_payload_length_offset, v);
          os << "payload_len=" << v;
          resealed = true;
          break;
        }
        case 6: {
          // A varint-encoded large number dropped into the payload.
          if (used > manifest_header_bytes) {
            const std::size_t at = start + r.uniform(manifest_header_bytes, used - 1);
            char buf[varint64_bytes_max];
            const std::uint64_t v = r.uniform(0, std::numeric_limits<std::uint64_t>::max());
            const std::size_t n =
                std::min<std::size_t>(encode_varint64(buf, v) - buf, start + used - at);
            std::copy_n(buf, n, file.begin() + static_cast<std::ptrdiff_t>(at));
            os << "varint@" << at << '=' << v;
          }
          resealed = true;
          break;
        }
        case 7: {
          const std::size_t n = r.uniform(1, 5000);
          file += r.bytes(n);
          os << "append_garbage+" << n;
          break;
        }
        default: {
          // Payload truncated inside the record: shorter payload_len, resealed.
          if (used > manifest_header_bytes) {
            const auto v =
                static_cast<std::uint32_t>(r.uniform(0, used - manifest_header_bytes - 1));
            encode_fixed32(file.data() + start + manifest_payload_length_offset, v);
            os << "payload_cut=" << v;
          }
          resealed = true;
          break;
        }
      }
      if (resealed) {
        reseal_record(file, start);
      }
      const std::string log = os.str();
      CAPTURE(k);
      CAPTURE(log);
      replay_result res;
      const error e = replay_exact(file, res);
      if (e != error::ok) {
        CHECK(e == error::corrupted);
        ++corrupted;
        resealed_corrupted += resealed ? 1 : 0;
        continue;
      }
      ++ok;
      resealed_ok += resealed ? 1 : 0;
      // Whatever was accepted must be a well-formed state.
      CHECK(res.append_offset % manifest_alignment_bytes == 0);
      CHECK(res.append_offset <= manifest_padded_bytes(file.size()));
      CHECK(res.log_count < records + 1);
      CHECK(res.mapping.size() <= file.size());
      for (const std::uint64_t v : res.mapping) {
        const mapping_tag t = tag_of(v);
        CHECK((t == mapping_tag::file_page || t == mapping_tag::free_link ||
               t == mapping_tag::invalid));
        if (t == mapping_tag::file_page) {
          CHECK(res.max_fp_id > decode_file_page(v).value());
        }
      }
      CHECK(std::is_sorted(res.terms.begin(), res.terms.end()));
    }
  }
  MESSAGE("manifests: ", iteration, " mutations, ", ok, " replayed, ", corrupted,
          " corrupted; resealed: ", resealed_ok, " replayed, ", resealed_corrupted, " corrupted");
  CHECK(resealed_ok > 50);
  CHECK(resealed_corrupted > 50);
  CHECK(ok > 100);
  CHECK(corrupted > 100);
}

TEST_CASE("hostile: term mapping with lengths past the end") {
  const std::uint64_t seed = 0x5eed0009;
  CAPTURE(seed);
  test::rng r(seed);
  for (int i = 0; i < 3000; ++i) {
    CAPTURE(i);
    std::string enc;
    term_mapping terms = random_terms(r);
    encode_term_mapping(terms, enc);
    // Damage: cut, overwrite the length, or run a varint on with 0xff bytes.
    switch (r.uniform(0, 2)) {
      case 0:
        enc.resize(r.uniform(0, enc.size() - 1));
        break;
      case 1:
        encode_fixed32(enc.data(),
                       static_cast<std::uint32_t>(r.uniform(enc.size() - 3, 0xffffffff)));
        break;
      default:
        std::fill(enc.begin() + static_cast<std::ptrdiff_t>(r.uniform(4, enc.size() - 1)),
                  enc.end(), static_cast<char>(0xff));
        break;
    }
    const std::vector<char> copy = exact_copy(std::span<const char>(enc.data(), enc.size()));
    byte_reader in(copy.data(), copy.data() + copy.size());
    term_mapping out = {{1, 1}};
    const bool decoded = decode_term_mapping(in, out);
    if (!decoded) {
      CHECK(out.empty());
    } else {
      CHECK(out.size() <= copy.size() / 2);
    }
  }
}

// A valid encoder never stores a timestamp above INT64_MAX, so a delta that takes the sum
// past it is corruption. Rebuilding the timestamp as int64(prev.ts) + delta must not overflow
// (UndefinedBehaviorSanitizer would abort the process).
TEST_CASE("hostile: timestamp deltas that overflow int64 are corruption") {
  // Entry 0 (restart): key "a", ts INT64_MAX. Entry 1: key "b", delta +INT64_MAX.
  std::vector<char> page(512, '\0');
  std::vector<char> body;
  auto put = [&](std::initializer_list<std::uint8_t> b) {
    for (const std::uint8_t x : b) {
      body.push_back(static_cast<char>(x));
    }
  };
  // shared 0, non_shared 1, vfield 0, "a", delta INT64_MAX -> 2^64 - 2
  put({0x00, 0x01, 0x00, 0x61, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01});
  // shared 0, non_shared 1, vfield 0, "b", delta +INT64_MAX again
  put({0x00, 0x01, 0x00, 0x62, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01});
  put({0x13, 0x00, 0x01, 0x00});  // restart[0] = 19, count 1
  page[8] = 2;
  const std::size_t content = 19 + body.size();
  page[9] = static_cast<char>(content & 0xff);
  page[10] = static_cast<char>(content >> 8);
  std::copy(body.begin(), body.end(), page.begin() + 19);
  data_page p;
  REQUIRE(data_page::open(page, p) == error::ok);
  data_page_iter it(p);
  it.seek_to_first();
  REQUIRE(it.valid());
  CHECK(it.timestamp() == timestamp_max);
  it.next();
  CHECK_FALSE(it.valid());
  CHECK(it.status() == error::corrupted);
}
