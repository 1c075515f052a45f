// Strong identity types: a logical page id, a file page id and a file id are all integers on
// disk, but mixing them up is a bug the compiler should catch. `strong_id<Tag, Rep>` wraps the
// integer, compares, hashes, and converts back only through `value()`.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>

namespace eloqstore::detail {

template <typename Tag, typename Rep>
class strong_id {
 public:
  using rep_type = Rep;

  constexpr strong_id() noexcept = default;
  constexpr explicit strong_id(Rep v) noexcept : v_(v) {}

  [[nodiscard]] constexpr Rep value() const noexcept { return v_; }
  // The all-ones value is "none" for every identity kind of the formats.
  [[nodiscard]] static constexpr strong_id none() noexcept {
    return strong_id(std::numeric_limits<Rep>::max());
  }
  [[nodiscard]] constexpr bool is_none() const noexcept {
    return v_ == std::numeric_limits<Rep>::max();
  }

  friend constexpr auto operator<=>(strong_id, strong_id) noexcept = default;

 private:
  Rep v_ = std::numeric_limits<Rep>::max();
};

struct page_id_tag;
struct file_page_id_tag;
struct file_id_tag;

// Logical page id (u32): the index into a partition's mapping table. none() = 0xFFFFFFFF.
using page_id = strong_id<page_id_tag, std::uint32_t>;
// Physical page address (u64): file_id = fp >> pages_per_file_shift. none() = UINT64_MAX.
using file_page_id = strong_id<file_page_id_tag, std::uint64_t>;
// Data file id (u64). none() = UINT64_MAX stands for the partition directory, and
// UINT64_MAX - 1 for the manifest; data files are <= UINT64_MAX - 2.
using file_id = strong_id<file_id_tag, std::uint64_t>;

inline constexpr file_id directory_file_id = file_id::none();
inline constexpr file_id manifest_file_id{std::numeric_limits<std::uint64_t>::max() - 1};
inline constexpr std::uint64_t data_file_id_max = std::numeric_limits<std::uint64_t>::max() - 2;

// Index pages store child ids as signed 32-bit deltas: child ids must not exceed INT32_MAX.
inline constexpr std::uint32_t child_page_id_max = std::numeric_limits<std::int32_t>::max();

[[nodiscard]] constexpr file_id file_of(file_page_id fp, unsigned pages_per_file_shift) noexcept {
  return file_id(fp.value() >> pages_per_file_shift);
}
[[nodiscard]] constexpr std::uint64_t file_offset_bytes(file_page_id fp,
                                                        unsigned pages_per_file_shift,
                                                        std::size_t page_size) noexcept {
  const std::uint64_t mask = (std::uint64_t{1} << pages_per_file_shift) - 1;
  return (fp.value() & mask) * page_size;
}

}  // namespace eloqstore::detail

template <typename Tag, typename Rep>
struct std::hash<eloqstore::detail::strong_id<Tag, Rep>> {
  std::size_t operator()(eloqstore::detail::strong_id<Tag, Rep> id) const noexcept {
    return std::hash<Rep>{}(id.value());
  }
};
