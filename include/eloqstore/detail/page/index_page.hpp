// Index pages: the inner nodes of a partition's B+tree.
//
// Layout (little-endian):
//
//   offset 0   u64  checksum
//   offset 8   u8   page type: 1 = leaf index (children are data pages), 0 = non-leaf index
//   offset 9   u16  content length (bytes in use from offset 0)
//   offset 11  u32  leftmost child: covers every key below the first separator
//   offset 15  entries ...
//              u16 restart offsets[restart_count], u16 restart_count
//              zero padding
//
// Entry: varint32 shared, varint32 non_shared, key suffix, varint32 child_delta, where the
// delta is the sign-magnitude difference to the previous entry's child id in the same restart
// region (to 0 at a restart point and for the first entry). Entry (k_i, c_i) covers keys in
// [k_i, k_{i+1}); lookup is a floor search that falls back to the leftmost child. A page
// holding only its leftmost child has restart_count 0 and content length 17. Child ids are at
// most INT32_MAX.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <eloqstore/comparator.hpp>
#include <eloqstore/detail/codec/coding.hpp>
#include <eloqstore/detail/page/block_cursor.hpp>
#include <eloqstore/detail/page/page_common.hpp>
#include <eloqstore/detail/util/strong_id.hpp>
#include <eloqstore/error.hpp>

namespace eloqstore::detail {

inline constexpr std::size_t index_page_leftmost_offset = 11;
inline constexpr std::size_t index_page_header_bytes = 15;

// Builds one index page in an internal, page-sized buffer; no allocation after construction.
class index_page_builder {
 public:
  // REQUIRES: valid_page_size(page_size), restart_interval >= 1.
  index_page_builder(std::size_t page_size, std::uint16_t restart_interval)
      : buf_(page_size, 0), interval_(restart_interval) {
    assert(valid_page_size(page_size) && restart_interval >= 1);
    restarts_.reserve(page_size / 4);
    last_key_.reserve(page_size);
    reset();
  }

  void reset() noexcept {
    std::fill(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(std::max(end_, tail_end_)),
              char{0});
    end_ = index_page_header_bytes;
    tail_end_ = 0;
    restarts_.clear();
    restarts_.push_back(static_cast<std::uint16_t>(end_));
    region_entries_ = 0;
    child_count_ = 0;
    last_key_.clear();
    last_child_ = 0;
    finished_ = false;
  }

  [[nodiscard]] std::size_t current_size_bytes() const noexcept {
    return end_ + 2 * restarts_.size() + 2;
  }
  [[nodiscard]] bool empty() const noexcept { return child_count_ == 0; }
  // Children added so far, the leftmost included.
  [[nodiscard]] std::size_t child_count() const noexcept { return child_count_; }

  // Adds a child. The first child becomes the leftmost pointer and its key is not stored (the
  // parent holds it). Returns false (page unchanged) if the entry does not fit.
  // REQUIRES: child.value() <= child_page_id_max; keys increasing; same `leaf_index` for every
  //           child of a page; !finished.
  [[nodiscard]] bool add(std::string_view key, page_id child, bool leaf_index) noexcept {
    assert(!finished_ && child.value() <= child_page_id_max);
    if (child_count_ == 0) {
      buf_[page_type_offset] =
          static_cast<char>(leaf_index ? page_type::leaf_index : page_type::non_leaf_index);
      encode_fixed32(buf_.data() + index_page_leftmost_offset, child.value());
      child_count_ = 1;
      return true;
    }
    assert(read_page_type(buf_) ==
           (leaf_index ? page_type::leaf_index : page_type::non_leaf_index));
    const bool restart = region_entries_ >= interval_;
    const std::size_t shared = restart ? 0 : common_prefix(last_key_, key);
    const std::int32_t base = restart ? 0 : static_cast<std::int32_t>(last_child_);
    const std::uint32_t delta = encode_delta32(static_cast<std::int32_t>(child.value()) - base);
    const std::size_t bytes = varint_length(shared) + varint_length(key.size() - shared) +
                              (key.size() - shared) + varint_length(delta);
    if (current_size_bytes() + bytes + (restart ? 2 : 0) > buf_.size()) {
      return false;
    }
    if (restart) {
      restarts_.push_back(static_cast<std::uint16_t>(end_));
      region_entries_ = 0;
    }
    char* p = buf_.data() + end_;
    p = encode_varint32(p, static_cast<std::uint32_t>(shared));
    p = encode_varint32(p, static_cast<std::uint32_t>(key.size() - shared));
    std::memcpy(p, key.data() + shared, key.size() - shared);
    p += key.size() - shared;
    p = encode_varint32(p, delta);
    assert(static_cast<std::size_t>(p - (buf_.data() + end_)) == bytes);
    end_ += bytes;
    last_key_.assign(key);
    last_child_ = child.value();
    ++region_entries_;
    ++child_count_;
    return true;
  }

  // Writes the restart array and content length; the checksum is set at write time.
  // REQUIRES: !empty().
  std::span<char> finish() noexcept {
    assert(!finished_ && !empty());
    std::size_t off = end_;
    if (child_count_ > 1) {
      for (const std::uint16_t r : restarts_) {
        encode_fixed16(buf_.data() + off, r);
        off += 2;
      }
    }
    encode_fixed16(buf_.data() + off,
                   static_cast<std::uint16_t>(child_count_ > 1 ? restarts_.size() : 0));
    off += 2;
    encode_fixed16(buf_.data() + content_length_offset, static_cast<std::uint16_t>(off));
    tail_end_ = off;
    finished_ = true;
    return buf_;
  }

 private:
  static std::size_t common_prefix(std::string_view a, std::string_view b) noexcept {
    return static_cast<std::size_t>(
        std::mismatch(a.begin(), a.begin() + std::min(a.size(), b.size()), b.begin()).first -
        a.begin());
  }

  std::vector<char> buf_;
  std::vector<std::uint16_t> restarts_;
  std::string last_key_;
  std::size_t end_ = 0;
  std::size_t tail_end_ = 0;
  std::size_t child_count_ = 0;
  std::uint32_t last_child_ = 0;
  std::uint16_t interval_;
  std::uint16_t region_entries_ = 0;
  bool finished_ = false;
};

// A validated, read-only view of an index page (structure only; the checksum is checked by
// the caller after the read).
class index_page {
 public:
  [[nodiscard]] static error open(std::span<const char> bytes, index_page& out) noexcept {
    if (bytes.size() < page_size_min) {
      return error::corrupted;
    }
    const page_type t = read_page_type(bytes);
    if (t != page_type::leaf_index && t != page_type::non_leaf_index) {
      return error::corrupted;
    }
    std::size_t entries_end = 0;
    std::size_t restart_count = 0;
    if (check_restart_array(bytes, index_page_header_bytes, entries_end, restart_count) !=
        error::ok) {
      return error::corrupted;
    }
    // Entries exist exactly when the restart array is non-empty.
    const bool has_entries = entries_end > index_page_header_bytes;
    if (has_entries != (restart_count > 0) ||
        decode_fixed32(bytes.data() + index_page_leftmost_offset) > child_page_id_max) {
      return error::corrupted;
    }
    out.bytes_ = bytes;
    out.entries_end_ = entries_end;
    out.restart_count_ = restart_count;
    return error::ok;
  }

  [[nodiscard]] bool is_leaf_index() const noexcept {
    return read_page_type(bytes_) == page_type::leaf_index;
  }
  [[nodiscard]] page_id leftmost() const noexcept {
    return page_id(decode_fixed32(bytes_.data() + index_page_leftmost_offset));
  }
  [[nodiscard]] std::span<const char> bytes() const noexcept { return bytes_; }
  [[nodiscard]] block_area area() const noexcept {
    return {bytes_.data(), index_page_header_bytes, entries_end_, restart_count_};
  }

 private:
  std::span<const char> bytes_;
  std::size_t entries_end_ = 0;
  std::size_t restart_count_ = 0;
};

// Decodes the child-id delta of an index entry for block_cursor.
struct index_entry_codec {
  struct fields {
    std::uint32_t child = 0;
  };
  static const char* head(const char* p, const char* end, std::uint32_t& shared,
                          std::uint32_t& non_shared, fields&) noexcept {
    p = get_varint32(p, end, &shared);
    return p == nullptr ? nullptr : get_varint32(p, end, &non_shared);
  }
  static const char* tail(const char* p, const char* end, const fields& prev, fields& f) noexcept {
    std::uint32_t delta = 0;
    p = get_varint32(p, end, &delta);
    const std::int64_t child = std::int64_t{prev.child} + decode_delta32(delta);
    if (p == nullptr || child < 0 || child > std::int64_t{child_page_id_max}) {
      return nullptr;
    }
    f.child = static_cast<std::uint32_t>(child);
    return p;
  }
};

// Iterates an index page's children in key order: first the leftmost child (with an empty
// key, standing for "below the first separator"), then each (separator, child) entry.
class index_page_iter {
 public:
  explicit index_page_iter(const index_page& page)
      : leftmost_(page.leftmost()), cursor_(page.area()) {}

  [[nodiscard]] bool valid() const noexcept { return at_leftmost_ || cursor_.valid(); }
  [[nodiscard]] error status() const noexcept { return cursor_.status(); }
  [[nodiscard]] bool at_leftmost() const noexcept { return at_leftmost_; }
  // The separator of the current child; empty for the leftmost child.
  [[nodiscard]] std::string_view key() const noexcept {
    return at_leftmost_ ? std::string_view{} : cursor_.key();
  }
  [[nodiscard]] page_id child() const noexcept {
    return at_leftmost_ ? leftmost_ : page_id(cursor_.entry().child);
  }

  void seek_to_first() noexcept { at_leftmost_ = true; }

  void next() noexcept {
    if (at_leftmost_) {
      at_leftmost_ = false;
      cursor_.seek_to_first();
    } else {
      cursor_.next();
    }
  }

  void seek_to_last() noexcept {
    cursor_.seek_to_last();
    at_leftmost_ = !cursor_.valid() && cursor_.status() == error::ok;
  }

  // Positions on the child whose range holds `target`: the last separator <= target, else the
  // leftmost child. Returns false only on corruption.
  template <key_comparator Cmp>
  bool seek_floor(std::string_view target, const Cmp& cmp) noexcept {
    at_leftmost_ = !cursor_.seek_floor(target, cmp);
    if (cursor_.status() != error::ok) {
      at_leftmost_ = false;
      return false;
    }
    return true;
  }

 private:
  page_id leftmost_;
  block_cursor<index_entry_codec> cursor_;
  bool at_leftmost_ = true;
};

}  // namespace eloqstore::detail
