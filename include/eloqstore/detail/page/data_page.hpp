// Data pages: the leaves of a partition's B+tree.
//
// Layout (all integers little-endian):
//
//   offset 0   u64  checksum
//   offset 8   u8   page type = 2
//   offset 9   u16  content length (bytes in use from offset 0, restart array included)
//   offset 11  u32  previous leaf's logical page id (0xFFFFFFFF = none)
//   offset 15  u32  next leaf's logical page id (0xFFFFFFFF = none)
//   offset 19  entries ...
//              u16 restart offsets[restart_count], u16 restart_count
//              zero padding to the page end
//
// Entry:
//   varint32 shared       bytes shared with the previous key (0 at a restart point)
//   varint32 non_shared   length of the key suffix
//   varint32 vfield       (value_len << 4) | flags   (flags: see page_common.hpp)
//   key suffix, value bytes
//   varint64 expire_ts    only if the expire flag is set (Unix epoch milliseconds)
//   varint64 ts_delta     sign-magnitude delta against the previous entry's timestamp in the
//                         same restart region; against 0 at a restart point
//
// A new restart region starts after every `restart_interval` entries. Builders and iterators
// are single-threaded objects; the iterator holds a view of the page and must not outlive it.
#pragma once

#include <algorithm>
#include <cassert>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
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

inline constexpr std::size_t data_page_prev_offset = 11;
inline constexpr std::size_t data_page_next_offset = 15;
inline constexpr std::size_t data_page_header_bytes = 19;
// Timestamps are stored as signed deltas; larger values are clamped.
inline constexpr std::uint64_t timestamp_max = std::numeric_limits<std::int64_t>::max();

inline void set_data_page_links(std::span<char> page, page_id prev, page_id next) noexcept {
  encode_fixed32(page.data() + data_page_prev_offset, prev.value());
  encode_fixed32(page.data() + data_page_next_offset, next.value());
}

// Builds one data page in an internal, page-sized buffer. Memory is reserved at construction;
// adding entries does not allocate.
class data_page_builder {
 public:
  // REQUIRES: valid_page_size(page_size), restart_interval >= 1.
  data_page_builder(std::size_t page_size, std::uint16_t restart_interval)
      : buf_(page_size, 0), interval_(restart_interval) {
    assert(valid_page_size(page_size) && restart_interval >= 1);
    restarts_.reserve(page_size / 4);
    last_key_.reserve(page_size);
    reset();
  }

  // Starts a new, empty page.
  void reset() noexcept {
    std::fill(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(std::max(end_, tail_end_)),
              char{0});
    buf_[page_type_offset] = static_cast<char>(page_type::data);
    end_ = data_page_header_bytes;
    tail_end_ = 0;
    restarts_.clear();
    restarts_.push_back(static_cast<std::uint16_t>(end_));
    region_entries_ = 0;
    entry_count_ = 0;
    last_key_.clear();
    last_ts_ = 0;
    finished_ = false;
  }

  // Bytes the page would occupy if finished now.
  [[nodiscard]] std::size_t current_size_bytes() const noexcept {
    return end_ + 2 * restarts_.size() + 2;
  }
  [[nodiscard]] bool empty() const noexcept { return entry_count_ == 0; }
  [[nodiscard]] std::size_t entry_count() const noexcept { return entry_count_; }
  [[nodiscard]] std::string_view last_key() const noexcept { return last_key_; }

  // Appends an entry if it fits; returns false (page unchanged) if it does not.
  // REQUIRES: key greater than the previous key in the comparator's order; !finished.
  [[nodiscard]] bool add(std::string_view key, std::string_view value, std::uint64_t ts,
                         std::uint64_t expire_ts = 0, bool overflow = false,
                         compression_kind compression = compression_kind::none) noexcept {
    assert(!finished_);
    ts = std::min(ts, timestamp_max);
    const bool restart = region_entries_ >= interval_;
    const std::uint64_t base_ts = restart ? 0 : last_ts_;
    const std::size_t shared = restart ? 0 : common_prefix(last_key_, key);
    const std::uint64_t vfield = value_field(value.size(), expire_ts, overflow, compression);
    if (vfield > std::numeric_limits<std::uint32_t>::max()) {
      return false;  // value too long for an inline entry: the caller must use overflow pages
    }
    const std::uint64_t ts_delta =
        encode_delta64(static_cast<std::int64_t>(ts) - static_cast<std::int64_t>(base_ts));
    const std::size_t bytes =
        entry_bytes(shared, key.size() - shared, vfield, value.size(), expire_ts, ts_delta);
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
    p = encode_varint32(p, static_cast<std::uint32_t>(vfield));
    std::memcpy(p, key.data() + shared, key.size() - shared);
    p += key.size() - shared;
    std::memcpy(p, value.data(), value.size());
    p += value.size();
    if (expire_ts != 0) {
      p = encode_varint64(p, expire_ts);
    }
    p = encode_varint64(p, ts_delta);
    assert(static_cast<std::size_t>(p - (buf_.data() + end_)) == bytes);
    end_ += bytes;
    last_key_.assign(key);
    last_ts_ = ts;
    ++region_entries_;
    ++entry_count_;
    return true;
  }

  // Appends a whole restart region of another data page as it is: `bytes` starts at a
  // restart point (its first entry shares nothing) and holds `entries` complete entries. The
  // next add() starts a new region. Returns false (page unchanged) if it does not fit.
  // REQUIRES: !bytes.empty(), entries >= 1; !finished.
  [[nodiscard]] bool append_region(std::span<const char> bytes, std::size_t entries) noexcept {
    assert(!finished_ && !bytes.empty() && entries >= 1);
    const bool first = end_ == data_page_header_bytes;  // the first restart is in place
    if (current_size_bytes() + bytes.size() + (first ? 0 : 2) > buf_.size()) {
      return false;
    }
    if (!first) {
      restarts_.push_back(static_cast<std::uint16_t>(end_));
    }
    std::memcpy(buf_.data() + end_, bytes.data(), bytes.size());
    end_ += bytes.size();
    region_entries_ = interval_;  // full: the next entry is a restart point
    entry_count_ += entries;
    last_key_.clear();
    last_ts_ = 0;
    return true;
  }

  // Writes the restart array, the content length and the sibling links. The checksum is not
  // set: links may still change, so the checksum is set just before the page is written.
  // The returned span stays valid until the next reset().
  std::span<char> finish(page_id prev = page_id::none(), page_id next = page_id::none()) noexcept {
    assert(!finished_);
    std::size_t off = end_;
    for (const std::uint16_t r : restarts_) {
      encode_fixed16(buf_.data() + off, r);
      off += 2;
    }
    encode_fixed16(buf_.data() + off, static_cast<std::uint16_t>(restarts_.size()));
    off += 2;
    encode_fixed16(buf_.data() + content_length_offset, static_cast<std::uint16_t>(off));
    set_data_page_links(buf_, prev, next);
    tail_end_ = off;
    finished_ = true;
    return buf_;
  }

  // True if the entry cannot fit even alone in an empty page: its value must then be moved to
  // overflow pages and the page stores the pointer list instead (spec 3.3).
  [[nodiscard]] static bool is_overflow_kv(std::size_t page_size, std::string_view key,
                                           std::size_t value_size, std::uint64_t ts,
                                           std::uint64_t expire_ts) noexcept {
    const std::size_t reserved = data_page_header_bytes + 2 * sizeof(std::uint16_t);
    if (reserved + value_size > page_size) {
      return true;
    }
    const std::uint64_t vfield = value_field(value_size, expire_ts, false, compression_kind::none);
    const std::uint64_t ts_delta =
        encode_delta64(static_cast<std::int64_t>(std::min(ts, timestamp_max)));
    return reserved + entry_bytes(0, key.size(), vfield, value_size, expire_ts, ts_delta) >
           page_size;
  }

 private:
  static std::size_t common_prefix(std::string_view a, std::string_view b) noexcept {
    const std::size_t n = std::min(a.size(), b.size());
    std::size_t i = 0;
    while (i < n && a[i] == b[i]) {
      ++i;
    }
    return i;
  }
  static std::uint64_t value_field(std::size_t value_size, std::uint64_t expire_ts, bool overflow,
                                   compression_kind compression) noexcept {
    std::uint64_t v = static_cast<std::uint64_t>(value_size) << value_flag_bits;
    v |= overflow ? value_flag_overflow : 0u;
    v |= expire_ts != 0 ? value_flag_expire : 0u;
    v |= static_cast<std::uint64_t>(compression) << value_flag_compression_shift;
    return v;
  }
  static std::size_t entry_bytes(std::size_t shared, std::size_t non_shared, std::uint64_t vfield,
                                 std::size_t value_size, std::uint64_t expire_ts,
                                 std::uint64_t ts_delta) noexcept {
    return varint_length(shared) + varint_length(non_shared) + varint_length(vfield) + non_shared +
           value_size + (expire_ts != 0 ? varint_length(expire_ts) : 0) + varint_length(ts_delta);
  }

  std::vector<char> buf_;
  std::vector<std::uint16_t> restarts_;
  std::string last_key_;
  std::size_t end_ = 0;       // one past the last entry
  std::size_t tail_end_ = 0;  // one past the restart count after finish(), for reset()
  std::size_t entry_count_ = 0;
  std::uint64_t last_ts_ = 0;
  std::uint16_t interval_;
  std::uint16_t region_entries_ = 0;
  bool finished_ = false;
};

// A validated, read-only view of a data page. Construction checks the structure (type,
// content length, restart array), not the checksum: verify_page_checksum() is the caller's
// first step after a read.
class data_page {
 public:
  // Returns error::corrupted if `bytes` is not a structurally sound data page.
  [[nodiscard]] static error open(std::span<const char> bytes, data_page& out) noexcept {
    if (bytes.size() < page_size_min || read_page_type(bytes) != page_type::data) {
      return error::corrupted;
    }
    std::size_t entries_end = 0;
    std::size_t restart_count = 0;
    const error e = check_restart_array(bytes, data_page_header_bytes, entries_end, restart_count);
    if (e != error::ok || restart_count == 0) {
      return error::corrupted;
    }
    out.bytes_ = bytes;
    out.entries_end_ = entries_end;
    out.restart_count_ = restart_count;
    return error::ok;
  }

  [[nodiscard]] page_id prev() const noexcept {
    return page_id(decode_fixed32(bytes_.data() + data_page_prev_offset));
  }
  [[nodiscard]] page_id next() const noexcept {
    return page_id(decode_fixed32(bytes_.data() + data_page_next_offset));
  }
  [[nodiscard]] bool empty() const noexcept { return entries_end_ == data_page_header_bytes; }
  [[nodiscard]] std::size_t restart_count() const noexcept { return restart_count_; }
  [[nodiscard]] std::size_t restart_offset(std::size_t i) const noexcept {
    return decode_fixed16(bytes_.data() + entries_end_ + 2 * i);
  }
  [[nodiscard]] std::size_t entries_end() const noexcept { return entries_end_; }
  [[nodiscard]] std::span<const char> bytes() const noexcept { return bytes_; }

 private:
  std::span<const char> bytes_;
  std::size_t entries_end_ = 0;
  std::size_t restart_count_ = 0;
};

// Decodes the kind-specific parts of a data-page entry for block_cursor.
struct data_entry_codec {
  struct fields {
    std::string_view value;
    std::uint64_t ts = 0;
    std::uint64_t expire_ts = 0;
    unsigned flags = 0;
    std::uint32_t value_len = 0;
  };
  static const char* head(const char* p, const char* end, std::uint32_t& shared,
                          std::uint32_t& non_shared, fields& f) noexcept {
    std::uint32_t vfield = 0;
    p = get_varint32(p, end, &shared);
    p = p == nullptr ? nullptr : get_varint32(p, end, &non_shared);
    p = p == nullptr ? nullptr : get_varint32(p, end, &vfield);
    f.value_len = vfield >> value_flag_bits;
    f.flags = vfield & ((1u << value_flag_bits) - 1);
    return p;
  }
  static const char* tail(const char* p, const char* end, const fields& prev, fields& f) noexcept {
    if ((f.flags & value_flag_compression_mask) == value_flag_compression_mask ||
        static_cast<std::size_t>(end - p) < f.value_len) {
      return nullptr;  // compression kind 3 does not exist, or the value overruns the page
    }
    f.value = std::string_view(p, f.value_len);
    p += f.value_len;
    if ((f.flags & value_flag_expire) != 0) {
      p = get_varint64(p, end, &f.expire_ts);
    }
    std::uint64_t delta = 0;
    p = p == nullptr ? nullptr : get_varint64(p, end, &delta);
    // prev.ts <= INT64_MAX always; a corrupt delta must not overflow the sum.
    std::int64_t ts = 0;
    if (p == nullptr ||
        __builtin_add_overflow(static_cast<std::int64_t>(prev.ts), decode_delta64(delta), &ts) ||
        ts < 0) {
      return nullptr;
    }
    f.ts = static_cast<std::uint64_t>(ts);
    return p;
  }
};

// Iterates the entries of a data page in key order. Any malformed entry stops the iterator
// with status() == error::corrupted; it never reads outside the page. The iterator refers to
// the page bytes, which must outlive it.
class data_page_iter {
 public:
  explicit data_page_iter(const data_page& page)
      : cursor_(block_area{page.bytes().data(), data_page_header_bytes, page.entries_end(),
                           page.restart_count()}) {}

  [[nodiscard]] bool valid() const noexcept { return cursor_.valid(); }
  [[nodiscard]] error status() const noexcept { return cursor_.status(); }

  [[nodiscard]] std::string_view key() const noexcept { return cursor_.key(); }
  [[nodiscard]] std::string_view value() const noexcept { return cursor_.entry().value; }
  [[nodiscard]] std::uint64_t timestamp() const noexcept { return cursor_.entry().ts; }
  [[nodiscard]] std::uint64_t expire_ts() const noexcept { return cursor_.entry().expire_ts; }
  [[nodiscard]] bool is_overflow() const noexcept {
    return (cursor_.entry().flags & value_flag_overflow) != 0;
  }
  [[nodiscard]] compression_kind compression() const noexcept {
    return static_cast<compression_kind>((cursor_.entry().flags & value_flag_compression_mask) >>
                                         value_flag_compression_shift);
  }

  void seek_to_first() noexcept { cursor_.seek_to_first(); }
  void seek_to_last() noexcept { cursor_.seek_to_last(); }
  void next() noexcept { cursor_.next(); }

  // Restart regions (see block_cursor): the region of the current entry, the first entry of
  // region r, and region r's first key.
  [[nodiscard]] std::size_t region() const noexcept { return cursor_.region(); }
  void seek_to_region(std::size_t r) noexcept { cursor_.seek_to_region(r); }
  [[nodiscard]] bool region_first_key(std::size_t r, std::string_view& out) const noexcept {
    return cursor_.region_first_key(r, out);
  }

  // Positions on the first key >= target; invalid if every key is smaller.
  template <key_comparator Cmp>
  void seek(std::string_view target, const Cmp& cmp) noexcept {
    cursor_.seek(target, cmp);
  }
  // Positions on the last key <= target; false if every key is greater (or on corruption).
  template <key_comparator Cmp>
  bool seek_floor(std::string_view target, const Cmp& cmp) noexcept {
    return cursor_.seek_floor(target, cmp);
  }

 private:
  block_cursor<data_entry_codec> cursor_;
};

}  // namespace eloqstore::detail
