// Overflow pages: values too large for a data page live in chains of overflow pages.
//
// Page layout (little-endian):
//
//   offset 0                     u64  checksum
//   offset 8                     u8   page type = 3
//   offset 9                     u16  chunk length n
//   offset 11                    n    value chunk
//   offset page_size - 1 - 4m    4m   m next-group pointers (u32 logical page ids)
//   offset page_size - 1         u8   m (0 when the page points nowhere)
//
// A value is cut into groups of at most `overflow_pointers` pages. The data page stores the
// first group's ids (u32 each). When more data remains after a full group, the group's last
// page is an "end page": it carries a shorter chunk plus the ids of the next group. Capacity
// of a normal page is page_size - 12; an end page also reserves 4 * overflow_pointers bytes.
#pragma once

#include <algorithm>
#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <eloqstore/detail/codec/coding.hpp>
#include <eloqstore/detail/page/page_common.hpp>
#include <eloqstore/detail/util/strong_id.hpp>
#include <eloqstore/error.hpp>

namespace eloqstore::detail {

inline constexpr std::size_t overflow_chunk_length_offset = 9;
inline constexpr std::size_t overflow_chunk_offset = 11;
inline constexpr std::size_t overflow_pointers_max = 128;
// Values are read into memory whole; this bounds what a corrupt chain can make us allocate.
inline constexpr std::size_t overflow_value_bytes_max = std::size_t{1} << 32;

[[nodiscard]] constexpr std::size_t overflow_capacity(std::size_t page_size) noexcept {
  return page_size - overflow_chunk_offset - 1;
}
[[nodiscard]] constexpr std::size_t overflow_end_capacity(std::size_t page_size,
                                                          std::size_t overflow_pointers) noexcept {
  return overflow_capacity(page_size) - 4 * overflow_pointers;
}

// Fills `page` with one overflow page. REQUIRES: the chunk and pointers fit.
inline void build_overflow_page(std::span<char> page, std::string_view chunk,
                                std::span<const page_id> next_group) noexcept {
  assert(chunk.size() + 4 * next_group.size() <= overflow_capacity(page.size()));
  assert(next_group.size() <= overflow_pointers_max);
  std::fill(page.begin(), page.end(), char{0});
  page[page_type_offset] = static_cast<char>(page_type::overflow);
  encode_fixed16(page.data() + overflow_chunk_length_offset,
                 static_cast<std::uint16_t>(chunk.size()));
  std::memcpy(page.data() + overflow_chunk_offset, chunk.data(), chunk.size());
  char* ptrs = page.data() + page.size() - 1 - 4 * next_group.size();
  for (std::size_t i = 0; i < next_group.size(); ++i) {
    encode_fixed32(ptrs + 4 * i, next_group[i].value());
  }
  page[page.size() - 1] = static_cast<char>(next_group.size());
}

// A validated view of an overflow page.
class overflow_page {
 public:
  [[nodiscard]] static error open(std::span<const char> bytes, overflow_page& out) noexcept {
    if (bytes.size() < page_size_min || read_page_type(bytes) != page_type::overflow) {
      return error::corrupted;
    }
    const std::size_t m = static_cast<unsigned char>(bytes[bytes.size() - 1]);
    const std::size_t n = decode_fixed16(bytes.data() + overflow_chunk_length_offset);
    if (m > overflow_pointers_max || n + 4 * m > overflow_capacity(bytes.size())) {
      return error::corrupted;
    }
    out.bytes_ = bytes;
    return error::ok;
  }

  [[nodiscard]] std::string_view chunk() const noexcept {
    return {bytes_.data() + overflow_chunk_offset,
            decode_fixed16(bytes_.data() + overflow_chunk_length_offset)};
  }
  [[nodiscard]] std::size_t pointer_count() const noexcept {
    return static_cast<unsigned char>(bytes_[bytes_.size() - 1]);
  }
  [[nodiscard]] page_id pointer(std::size_t i) const noexcept {
    return page_id(decode_fixed32(bytes_.data() + bytes_.size() - 1 - 4 * pointer_count() + 4 * i));
  }

 private:
  std::span<const char> bytes_;
};

// Writes `value` as an overflow chain (spec 3.5).
//   alloc()                   -> page_id   a fresh logical page id
//   write(page_id, span page) -> error     persists one finished page (checksum unset)
// On success `head` holds the first group's ids as u32 little-endian, the data-page value.
// `scratch` is one page-sized buffer. Returns the first error of `write`.
// error::invalid_args unless 1 <= overflow_pointers <= 128 and an end page has room for the
// pointers and at least one byte (4 * overflow_pointers < page capacity).
template <typename Alloc, typename Write>
[[nodiscard]] error write_overflow_value(std::string_view value, std::size_t overflow_pointers,
                                         std::span<char> scratch, Alloc&& alloc, Write&& write,
                                         std::string& head) {
  if (overflow_pointers < 1 || overflow_pointers > overflow_pointers_max ||
      4 * overflow_pointers >= overflow_capacity(scratch.size())) {
    return error::invalid_args;
  }
  const std::size_t cap = overflow_capacity(scratch.size());
  const std::size_t end_cap = overflow_end_capacity(scratch.size(), overflow_pointers);
  std::array<page_id, overflow_pointers_max> group{};
  page_id end_page = page_id::none();
  std::string_view end_chunk;
  head.clear();
  while (!value.empty()) {
    const std::size_t n = std::min((value.size() + cap - 1) / cap, overflow_pointers);
    for (std::size_t i = 0; i < n; ++i) {
      group[i] = alloc();
    }
    const std::span<const page_id> ids(group.data(), n);
    if (end_page.is_none()) {
      for (const page_id id : ids) {
        put_fixed32(head, id.value());
      }
    } else {
      build_overflow_page(scratch, end_chunk, ids);
      if (const error e = write(end_page, std::span<const char>(scratch)); e != error::ok) {
        return e;
      }
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (i + 1 == overflow_pointers && value.size() > cap) {
        // This group's last page cannot take the rest: it becomes the end page, written once
        // the next group's ids are known.
        end_page = ids[i];
        end_chunk = value.substr(0, end_cap);
        value.remove_prefix(end_chunk.size());
        break;
      }
      const std::string_view chunk = value.substr(0, cap);
      value.remove_prefix(chunk.size());
      build_overflow_page(scratch, chunk, {});
      if (const error e = write(ids[i], std::span<const char>(scratch)); e != error::ok) {
        return e;
      }
    }
  }
  return error::ok;
}

// Decodes the head pointer list stored in a data page. Returns false if it is not a non-empty
// multiple of 4 bytes holding at most 128 ids.
[[nodiscard]] inline bool decode_overflow_head(std::string_view head,
                                               std::array<page_id, overflow_pointers_max>& ids,
                                               std::size_t& count) noexcept {
  if (head.empty() || head.size() % 4 != 0 || head.size() / 4 > overflow_pointers_max) {
    return false;
  }
  count = head.size() / 4;
  for (std::size_t i = 0; i < count; ++i) {
    ids[i] = page_id(decode_fixed32(head.data() + 4 * i));
  }
  return true;
}

// Reads an overflow chain back into `out`, a pointer group at a time (as the reference
// does): the pages of a group are named together (the head, or the group's last page before
// it), so they are read together, and the reads of a group overlap where the backend can.
//   read_group(std::span<const page_id> ids, std::span<std::span<const char>> pages) -> error
//   yields the bytes of page ids[i] in pages[i] (ids.size() == pages.size() <= 128), valid
//   until the next call; the checksums are the reader's business.
// Returns error::corrupted for a malformed head, page or chain (one that reads more than
// `pages_max` pages or grows past overflow_value_bytes_max, as a cycle would), or the first
// error of `read_group`. Callers pass the number of pages the partition maps as `pages_max`.
template <typename ReadGroup>
[[nodiscard]] error read_overflow_groups(std::string_view head, ReadGroup&& read_group,
                                         std::string& out, std::size_t pages_max = SIZE_MAX) {
  std::array<page_id, overflow_pointers_max> ids{};
  std::array<std::span<const char>, overflow_pointers_max> pages{};
  std::size_t count = 0;
  if (!decode_overflow_head(head, ids, count)) {
    return error::corrupted;
  }
  out.clear();
  std::size_t pages_read = 0;
  while (count > 0) {
    std::size_t next_count = 0;
    if (count > pages_max - std::min(pages_max, pages_read)) {
      return error::corrupted;
    }
    pages_read += count;
    if (const error e = read_group(std::span<const page_id>(ids.data(), count),
                                   std::span<std::span<const char>>(pages.data(), count));
        e != error::ok) {
      return e;
    }
    for (std::size_t i = 0; i < count; ++i) {
      const std::span<const char> bytes = pages[i];
      overflow_page page;
      if (overflow_page::open(bytes, page) != error::ok) {
        return error::corrupted;
      }
      const bool last = i + 1 == count;
      if (page.pointer_count() > 0 && !last) {
        return error::corrupted;  // only a group's last page may point onwards
      }
      // Every page but the chain's final one is full, so a cycle cannot spin in place.
      const std::size_t cap = overflow_capacity(bytes.size());
      const bool is_final = last && page.pointer_count() == 0;
      const std::size_t expected = last ? cap - 4 * count : cap;
      const std::size_t n = page.chunk().size();
      if ((is_final && n == 0) || (!is_final && n != expected) ||
          out.size() + n > overflow_value_bytes_max) {
        return error::corrupted;
      }
      out.append(page.chunk());
      if (last) {
        next_count = page.pointer_count();
        for (std::size_t j = 0; j < next_count; ++j) {
          ids[j] = page.pointer(j);
        }
      }
    }
    count = next_count;
  }
  return error::ok;
}

// The same with one page read at a time:
//   read(page_id, std::span<const char>& page) -> error   yields the bytes of one page, which
//   stay valid until the next call.
// (Each page is copied, a group at a time: for tests and tools, not the read path.)
template <typename Read>
[[nodiscard]] error read_overflow_value(std::string_view head, Read&& read, std::string& out,
                                        std::size_t pages_max = SIZE_MAX) {
  std::vector<std::vector<char>> copies;
  return read_overflow_groups(
      head,
      [&](std::span<const page_id> ids, std::span<std::span<const char>> pages) {
        copies.resize(ids.size());
        for (std::size_t i = 0; i < ids.size(); ++i) {
          std::span<const char> bytes;
          if (const error e = read(ids[i], bytes); e != error::ok) {
            return e;
          }
          copies[i].assign(bytes.begin(), bytes.end());
          pages[i] = copies[i];
        }
        return error::ok;
      },
      out, pages_max);
}

}  // namespace eloqstore::detail
