// The tagged u64 values of a partition's mapping table (indexed by logical page id).
//
//   low 3 bits  meaning                                  encoding
//   0           pointer to a cached index page           raw pointer (8-byte aligned)
//   1           file page id                             (fp << 3) | 1
//   2           free-list link to the next free id       (next << 3) | 2
//   7           invalid / end of free list / unmapped    7
//
// Tags 3..6 never appear; a decoder treats them as corruption. Swizzled pointers exist only
// in memory: before a mapping is serialized they are replaced by their file page id.
#pragma once

#include <cstdint>

#include <eloqstore/detail/util/strong_id.hpp>

namespace eloqstore::detail {

enum class mapping_tag : std::uint8_t { swizzled = 0, file_page = 1, free_link = 2, invalid = 7 };

inline constexpr std::uint64_t mapping_tag_mask = 0x7;
inline constexpr std::uint64_t mapping_invalid_value = 7;
// File page ids must fit in 61 bits to be tagged.
inline constexpr std::uint64_t file_page_id_max = (std::uint64_t{1} << 61) - 1;

[[nodiscard]] constexpr mapping_tag tag_of(std::uint64_t v) noexcept {
  return static_cast<mapping_tag>(v & mapping_tag_mask);
}
[[nodiscard]] constexpr bool is_known_tag(std::uint64_t v) noexcept {
  const auto t = v & mapping_tag_mask;
  return t == 0 || t == 1 || t == 2 || t == 7;
}
[[nodiscard]] constexpr std::uint64_t encode_file_page(file_page_id fp) noexcept {
  return (fp.value() << 3) | 1;
}
[[nodiscard]] constexpr file_page_id decode_file_page(std::uint64_t v) noexcept {
  return file_page_id(v >> 3);
}
[[nodiscard]] constexpr std::uint64_t encode_free_link(page_id next) noexcept {
  return (std::uint64_t{next.value()} << 3) | 2;
}
[[nodiscard]] constexpr page_id decode_free_link(std::uint64_t v) noexcept {
  return page_id(static_cast<std::uint32_t>(v >> 3));
}

}  // namespace eloqstore::detail
