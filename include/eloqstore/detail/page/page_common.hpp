// What every page kind shares: the page types, the common header and the size limits.
//
// Every page is exactly `page_size` bytes and begins with
//
//   offset 0  u64  checksum: XXH3-64 of bytes [8, page_size), little-endian
//   offset 8  u8   page type (see page_type)
//
// Data and index pages continue with a u16 "content length" at offset 9: the number of bytes
// in use counted from the start of the page (header, entries, restart array and its count).
// Everything past the content length is zero in pages we write.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include <eloqstore/detail/codec/coding.hpp>
#include <eloqstore/error.hpp>

namespace eloqstore::detail {

enum class page_type : std::uint8_t {
  non_leaf_index = 0,
  leaf_index = 1,
  data = 2,
  overflow = 3,
  deleted = 255,
};

inline constexpr std::size_t page_type_offset = 8;
inline constexpr std::size_t content_length_offset = 9;

// Page sizes the codecs accept. The store itself uses powers of two from 4 KiB to 32 KiB; the
// codecs also accept smaller pages so tests can build deep trees from few keys.
inline constexpr std::size_t page_size_min = 256;
inline constexpr std::size_t page_size_max = 32768;

[[nodiscard]] constexpr bool valid_page_size(std::size_t n) noexcept {
  return n >= page_size_min && n <= page_size_max && (n & (n - 1)) == 0;
}

[[nodiscard]] inline page_type read_page_type(std::span<const char> page) noexcept {
  return static_cast<page_type>(static_cast<std::uint8_t>(page[page_type_offset]));
}

// How a data-page value is stored (bits 0..3 of the entry's value field).
enum class compression_kind : std::uint8_t { none = 0, dictionary = 1, standalone = 2 };

inline constexpr unsigned value_flag_overflow = 1u << 0;
inline constexpr unsigned value_flag_expire = 1u << 1;
inline constexpr unsigned value_flag_compression_shift = 2;
inline constexpr unsigned value_flag_compression_mask = 3u << value_flag_compression_shift;
inline constexpr unsigned value_flag_bits = 4;

// Reads the restart array that closes data and index pages and checks it against the page:
//   restart offsets are strictly increasing, the first equals `header_bytes`, and all lie
//   inside the entry area [header_bytes, entries_end).
// On success sets `entries_end` (where the restart array begins) and `restart_count`.
[[nodiscard]] inline error check_restart_array(std::span<const char> page, std::size_t header_bytes,
                                               std::size_t& entries_end,
                                               std::size_t& restart_count) noexcept {
  const std::size_t content = decode_fixed16(page.data() + content_length_offset);
  if (content > page.size() || content < header_bytes + 2) {
    return error::corrupted;
  }
  const std::size_t count = decode_fixed16(page.data() + content - 2);
  if (header_bytes + 2 + 2 * count > content) {
    return error::corrupted;
  }
  const std::size_t end = content - 2 - 2 * count;
  std::size_t prev = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t off = decode_fixed16(page.data() + end + 2 * i);
    const bool first_ok = i != 0 || off == header_bytes;
    // The only restart allowed at `end` is the first one of a page without entries.
    const bool in_range = off < end || (count == 1 && off == end);
    if (!first_ok || !in_range || (i > 0 && off <= prev)) {
      return error::corrupted;
    }
    prev = off;
  }
  entries_end = end;
  restart_count = count;
  return error::ok;
}

}  // namespace eloqstore::detail
