// The tree's bounds, derived from the formats and the traits' page size, with the relations
// between them checked where they are defined.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>

#include <eloqstore/detail/codec/coding.hpp>
#include <eloqstore/detail/page/data_page.hpp>
#include <eloqstore/detail/page/index_page.hpp>
#include <eloqstore/detail/page/overflow_page.hpp>
#include <eloqstore/detail/util/strong_id.hpp>

namespace eloqstore::detail {

// Index levels above the leaves. With keys at most half a page (tree_limits), an index page
// that overflows holds at least two separators, so a tree that only grows has at least two
// children per index page on all but its last page per level and needs about 2^levels leaves,
// more than its u32 page ids can name past this bound. Deletes never merge pages, so a tree
// that shrank could in principle keep a height its pages no longer justify: the writer
// therefore enforces the bound where the root grows (error::out_of_space), and a reader or
// writer that descends further has met a cycle or a corrupted page. Real trees stay far
// below it (4 KiB pages and 16-byte keys: about 200 children per index page, 5 levels for
// 10^11 records).
inline constexpr std::size_t index_levels_max = std::numeric_limits<page_id::rep_type>::digits;

template <std::size_t PageSize>
struct tree_limits {
  // The longest key a write accepts (the reference's bound).
  static constexpr std::size_t key_bytes_max = PageSize / 2;

  // An index page holds its leftmost child and one separator of the longest key: every
  // split makes progress. (Header, the entry's three varints, a restart offset and count.)
  static_assert(index_page_header_bytes + 3 * varint32_bytes_max + key_bytes_max +
                        2 * sizeof(std::uint16_t) <=
                    PageSize,
                "an index page must hold a separator of the longest key");
  // A data page holds one record of the longest key whose value is the largest overflow
  // pointer group: a record never needs more than one leaf. (Header; shared, key and value
  // lengths; flags, timestamp and expiry; the group; a restart offset and count.)
  static_assert(data_page_header_bytes + 3 * varint32_bytes_max + 1 + 2 * varint64_bytes_max +
                        key_bytes_max + 4 * overflow_pointers_max + 2 * sizeof(std::uint16_t) <=
                    PageSize,
                "a data page must hold a record of the longest key with an overflow value");
  static constexpr bool ok = true;
};

}  // namespace eloqstore::detail
