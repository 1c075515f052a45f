// The golden vectors of the on-disk formats: pages and manifest records written out by hand
// from the specification (reference-engine.md sections 3 and 4, docs/format.md), never by
// our encoders. tests/unit/golden_test.cpp checks our builders and decoders against them; the
// fuzz targets (tests/fuzz) start their corpora from them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/golden_bytes.hpp"

namespace eloqstore::test {

// A hand count that does not add up is a broken vector, whoever uses it.
inline void golden_size_is(bool ok) {
  if (!ok) {
    throw std::logic_error("a golden vector's length is not the one written beside it");
  }
}

inline constexpr std::size_t data_golden_page_size = 512;

// The data page of "golden: data page", written out by hand. Restart interval 2, 5 entries,
// so regions start at entries 0, 2 and 4. prev = 7, next = 258.
// clang-format off
inline std::vector<char> golden_data_page() {
  std::vector<char> page;
  append(page, {
                   // offset 0: checksum, set below from the finished page
                   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                   // offset 8: page type 2 = data
                   0x02,
                   // offset 9: content length 94 = 0x5e (u16 LE)
                   0x5e, 0x00,
                   // offset 11: previous leaf = 7 (u32 LE)
                   0x07, 0x00, 0x00, 0x00,
                   // offset 15: next leaf = 258 = 0x0102 (u32 LE)
                   0x02, 0x01, 0x00, 0x00,
               });
  // Entry 0 at offset 19 (restart 0): "apple" -> "red", ts 100. 13 bytes, 19..31.
  append(page, {
                   0x00,                          // shared = 0 (restart point)
                   0x05,                          // non_shared = 5
                   0x30,                          // vfield = (3 << 4) | 0
                   0x61, 0x70, 0x70, 0x6c, 0x65,  // "apple"
                   0x72, 0x65, 0x64,              // "red"
                   0xc8, 0x01,                    // ts delta +100 -> 200 = varint c8 01
               });
  // Entry 1 at offset 32: "apricot" -> "xy", expire 74565, ts 90. 14 bytes, 32..45.
  append(page, {
                   0x02,                          // shared = 2 ("ap")
                   0x05,                          // non_shared = 5
                   0x22,                          // vfield = (2 << 4) | 2 (expire flag)
                   0x72, 0x69, 0x63, 0x6f, 0x74,  // "ricot"
                   0x78, 0x79,                    // "xy"
                   0xc5, 0xc6, 0x04,              // expire_ts 74565 = 0x12345: 45|80, 46|80, 04
                   0x15,                          // ts delta 90 - 100 = -10 -> (10<<1)|1 = 21
               });
  // Entry 2 at offset 46 (restart 1): "banana" -> overflow pointers [10, 11], ts 200.
  // 20 bytes, 46..65.
  append(page, {
                   0x00,                                // shared = 0 (restart point)
                   0x06,                                // non_shared = 6
                   0x81, 0x01,                          // vfield = (8 << 4) | 1 = 129
                   0x62, 0x61, 0x6e, 0x61, 0x6e, 0x61,  // "banana"
                   0x0a, 0x00, 0x00, 0x00,              // overflow page id 10 (u32 LE)
                   0x0b, 0x00, 0x00, 0x00,              // overflow page id 11 (u32 LE)
                   0x90, 0x03,                          // ts delta +200 (vs 0) -> 400
               });
  // Entry 3 at offset 66: "bandana" -> "" (empty value), ts 150. 8 bytes, 66..73.
  append(page, {
                   0x03,                    // shared = 3 ("ban")
                   0x04,                    // non_shared = 4
                   0x00,                    // vfield = (0 << 4) | 0
                   0x64, 0x61, 0x6e, 0x61,  // "dana"
                   0x65,                    // ts delta 150 - 200 = -50 -> (50<<1)|1 = 101
               });
  // Entry 4 at offset 74 (restart 2): "cherry" -> "v", ts 1000. 12 bytes, 74..85.
  append(page, {
                   0x00,                                // shared = 0 (restart point)
                   0x06,                                // non_shared = 6
                   0x10,                                // vfield = (1 << 4) | 0
                   0x63, 0x68, 0x65, 0x72, 0x72, 0x79,  // "cherry"
                   0x76,                                // "v"
                   0xd0, 0x0f,                          // ts delta +1000 -> 2000 = d0 0f
               });
  append(page, {
                   0x13, 0x00,  // offset 86: restart[0] = 19
                   0x2e, 0x00,  // offset 88: restart[1] = 46
                   0x4a, 0x00,  // offset 90: restart[2] = 74
                   0x03, 0x00,  // offset 92: restart count 3; content ends at 94
               });
  golden_size_is(page.size() == 94);
  page.resize(data_golden_page_size, '\0');  // zero padding to the page end
  seal_page_by_hand(page);
  return page;
}
// clang-format on

inline constexpr std::size_t index_golden_page_size = 256;

// Leaf index page, restart interval 2: leftmost child 3, then ("b",10) ("bat",4) | ("c",300)
// ("cab",200). The children go down inside each region, so negative deltas appear.
// clang-format off
inline std::vector<char> golden_index_page() {
  std::vector<char> page;
  append(page, {
                   0, 0, 0, 0, 0, 0, 0, 0,  // offset 0: checksum, set below
                   0x01,                    // offset 8: type 1 = LeafIndex
                   0x29, 0x00,              // offset 9: content length 41
                   0x03, 0x00, 0x00, 0x00,  // offset 11: leftmost child 3
                   // offset 15 (restart 0): shared 0, non_shared 1, "b", delta +10 -> 20
                   0x00, 0x01, 0x62, 0x14,
                   // offset 19: shared 1, non_shared 2, "at", delta 4 - 10 = -6 -> 13
                   0x01, 0x02, 0x61, 0x74, 0x0d,
                   // offset 24 (restart 1): shared 0, non_shared 1, "c", delta +300 -> 600
                   // = 0x258: 0x58|0x80, 0x04
                   0x00, 0x01, 0x63, 0xd8, 0x04,
                   // offset 29: shared 1, non_shared 2, "ab", delta 200 - 300 = -100 -> 201
                   0x01, 0x02, 0x61, 0x62, 0xc9, 0x01,
                   0x0f, 0x00,  // offset 35: restart[0] = 15
                   0x18, 0x00,  // offset 37: restart[1] = 24
                   0x02, 0x00,  // offset 39: restart count 2; content ends at 41
               });
  golden_size_is(page.size() == 41);
  page.resize(index_golden_page_size, '\0');
  seal_page_by_hand(page);
  return page;
}
// clang-format on

inline constexpr std::size_t overflow_golden_page_size = 256;
// Page capacity 256 - 12 = 244; end-page capacity 244 - 4 * 2 = 236.
inline constexpr std::size_t overflow_golden_value_size = 244 + 236 + 100;

inline std::string golden_overflow_value() {
  std::string v(overflow_golden_value_size, '\0');
  for (std::size_t i = 0; i < v.size(); ++i) {
    v[i] = static_cast<char>('A' + (i * 7) % 53);
  }
  return v;
}

// The three pages of a 580-byte value with overflow_pointers = 2 and 256-byte pages:
//   group 1 = ids 10, 11: page 10 holds bytes [0, 244); page 11 is the end page, holding
//   [244, 480) and pointing at group 2 = id 12, which holds [480, 580).
// The checksum field is left zero (write_overflow_value hands pages over unsealed).
// clang-format off
inline std::map<std::uint32_t, std::vector<char>> golden_overflow_pages(const std::string& value) {
  std::map<std::uint32_t, std::vector<char>> pages;
  auto page_with = [&](byte_list header, std::size_t from, std::size_t len,
                       byte_list tail) {
    std::vector<char> p;
    append(p, header);
    golden_size_is(p.size() == 11);
    p.insert(p.end(), value.begin() + static_cast<std::ptrdiff_t>(from),
             value.begin() + static_cast<std::ptrdiff_t>(from + len));
    p.resize(overflow_golden_page_size - tail.size(), '\0');  // zero gap
    append(p, tail);
    golden_size_is(p.size() == overflow_golden_page_size);
    return p;
  };
  pages[10] = page_with(
      {
          0, 0, 0, 0, 0, 0, 0, 0,  // offset 0: checksum (unset)
          0x03,                    // offset 8: type 3 = overflow
          0xf4, 0x00,              // offset 9: chunk length 244
      },
      0, 244,
      {
          0x00,  // offset 255: m = 0 pointers
      });
  pages[11] = page_with(
      {
          0, 0, 0, 0, 0, 0, 0, 0,  // checksum (unset)
          0x03,                    // type overflow
          0xec, 0x00,              // chunk length 236 (end page: 244 - 4 * 2)
      },
      244, 236,
      {
          0x0c, 0x00, 0x00, 0x00,  // offset 251 = 256 - 1 - 4*1: next-group pointer 12
          0x01,                    // offset 255: m = 1 pointer
      });
  pages[12] = page_with(
      {
          0, 0, 0, 0, 0, 0, 0, 0,  // checksum (unset)
          0x03,                    // type overflow
          0x64, 0x00,              // chunk length 100
      },
      480, 100,
      {
          0x00,  // m = 0: end of the chain
      });
  return pages;
}
// clang-format on

// Snapshot: root 5, no TTL tree, max_fp_id 400, dictionary "dic", mapping
//   id 0 -> fp 0, id 1 -> fp 300, id 2 -> free (next 4), id 3 -> invalid, id 4 -> invalid
//   (end of free list), id 5 -> fp 2
// and term mapping {file 0 -> term 3, manifest (2^64 - 2) -> term 3}.
// clang-format off
inline std::vector<char> golden_snapshot_record() {
  std::vector<char> rec;
  append(rec, {
                  0, 0, 0, 0, 0, 0, 0, 0,  // offset 0: checksum, set below
                  0x05, 0x00, 0x00, 0x00,  // offset 8: root 5
                  0xff, 0xff, 0xff, 0xff,  // offset 12: TTL root none
                  0x22, 0x00, 0x00, 0x00,  // offset 16: payload length 34
              });
  append(rec, {
                  0x90, 0x03,              // max_fp_id 400 = 0x190: 0x10|0x80, 0x03
                  0x03,                    // dict_len 3
                  0x64, 0x69, 0x63,        // dict "dic"
                  0x07, 0x00, 0x00, 0x00,  // mapping_bytes_len 7 (fixed32)
                  0x01,                    // id 0: (0 << 3) | 1
                  0xe1, 0x12,              // id 1: (300 << 3) | 1 = 2401 = 0x961
                  0x22,                    // id 2: (4 << 3) | 2 = 34, free link to id 4
                  0x07,                    // id 3: invalid
                  0x07,                    // id 4: invalid (end of the free list)
                  0x11,                    // id 5: (2 << 3) | 1 = 17
                  0x0d, 0x00, 0x00, 0x00,  // term mapping byte length 13
                  0x00, 0x03,              // file 0 -> term 3
                  // file 2^64 - 2 (the manifest): 0x7e|0x80, 8 x 0xff, 0x01
                  0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                  0x03,  // -> term 3
              });
  golden_size_is(rec.size() == 20 + 34);
  store_le64(rec.data(), spec_manifest_checksum(rec.data() + 8, rec.size() - 8));
  rec.resize(4096, '\0');  // padding to the 4 KiB alignment
  return rec;
}
// clang-format on

// Log: root 9, TTL root 2; updates id 3 -> fp 500 and id 6 -> fp 5 (growing the table),
// deletes id 0; term mapping {0 -> 3, 1 -> 4, manifest -> 4}.
// clang-format off
inline std::vector<char> golden_log_record() {
  std::vector<char> rec;
  append(rec, {
                  0, 0, 0, 0, 0, 0, 0, 0,  // offset 0: checksum, set below
                  0x09, 0x00, 0x00, 0x00,  // offset 8: root 9
                  0x02, 0x00, 0x00, 0x00,  // offset 12: TTL root 2
                  0x1e, 0x00, 0x00, 0x00,  // offset 16: payload length 30
              });
  append(rec, {
                  0x07, 0x00, 0x00, 0x00,  // mapping_bytes_len 7 (fixed32)
                  0x03, 0xa1, 0x1f,        // id 3 -> (500 << 3) | 1 = 4001 = 0xfa1
                  0x06, 0x29,              // id 6 -> (5 << 3) | 1 = 41
                  0x00, 0x07,              // id 0 -> 7 (deleted)
                  0x0f, 0x00, 0x00, 0x00,  // term mapping byte length 15
                  0x00, 0x03,              // file 0 -> term 3
                  0x01, 0x04,              // file 1 -> term 4
                  0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,  // manifest
                  0x04,                                                        // -> term 4
              });
  golden_size_is(rec.size() == 20 + 30);
  store_le64(rec.data(), spec_manifest_checksum(rec.data() + 8, rec.size() - 8));
  rec.resize(4096, '\0');
  return rec;
}
// clang-format on

}  // namespace eloqstore::test
