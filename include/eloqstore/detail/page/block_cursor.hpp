// A cursor over the prefix-compressed entry area shared by data and index pages.
//
// Both page kinds store entries as `varint32 shared, varint32 non_shared, ..., key suffix, ...`
// grouped into restart regions whose offsets form the restart array at the end of the page.
// At a restart point `shared` is 0 and per-region deltas (timestamps, child ids) restart from
// 0. This cursor owns the region bookkeeping, key reconstruction and the restart-array binary
// search; a `Codec` decodes the parts of an entry that differ between page kinds:
//
//   struct Codec {
//     struct fields { ... };   // decoded non-key data; value-initialised at a region start
//     // Reads the entry head up to the key suffix: shared, non_shared, kind-specific fields.
//     static const char* head(const char* p, const char* end, std::uint32_t& shared,
//                             std::uint32_t& non_shared, fields& f) noexcept;
//     // Reads what follows the key suffix; `prev` holds the previous entry of the region
//     // (value-initialised at a restart point). Returns nullptr if malformed.
//     static const char* tail(const char* p, const char* end, const fields& prev,
//                             fields& f) noexcept;
//   };
//
// Every read is bounded by the entry area's end; malformed input sets status() to corrupted.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <eloqstore/comparator.hpp>
#include <eloqstore/detail/codec/coding.hpp>
#include <eloqstore/error.hpp>

namespace eloqstore::detail {

// The entry area of a page: [header_bytes, entries_end) plus the restart array after it.
struct block_area {
  const char* base = nullptr;  // page start
  std::size_t header_bytes = 0;
  std::size_t entries_end = 0;
  std::size_t restart_count = 0;

  [[nodiscard]] std::size_t restart_offset(std::size_t i) const noexcept {
    return decode_fixed16(base + entries_end + 2 * i);
  }
  [[nodiscard]] bool empty() const noexcept { return entries_end == header_bytes; }
};

template <typename Codec>
class block_cursor {
 public:
  using fields = typename Codec::fields;

  block_cursor() = default;
  block_cursor(block_area area, std::size_t key_capacity) : area_(area) {
    key_.reserve(key_capacity);
  }

  [[nodiscard]] bool valid() const noexcept { return valid_; }
  [[nodiscard]] error status() const noexcept { return status_; }
  [[nodiscard]] std::string_view key() const noexcept { return key_; }
  [[nodiscard]] const fields& entry() const noexcept { return fields_; }
  [[nodiscard]] bool empty() const noexcept { return area_.empty() || area_.restart_count == 0; }

  void seek_to_first() noexcept {
    if (empty()) {
      valid_ = false;
      return;
    }
    start_region(0);
    parse_next();
  }

  void next() noexcept {
    assert(valid_);
    parse_next();
  }

  // Positions on the last entry (invalid if there is none).
  void seek_to_last() noexcept {
    if (empty()) {
      valid_ = false;
      return;
    }
    const std::size_t last = area_.restart_count - 1;
    start_region(last);
    reposition(last, count_while([](std::string_view) { return true; }));
  }

  // Positions on the first key >= target; invalid if every key is smaller.
  template <key_comparator Cmp>
  void seek(std::string_view target, const Cmp& cmp) noexcept {
    std::size_t region = 0;
    if (!last_restart_where(target, cmp, /*or_equal=*/false, region)) {
      return;
    }
    start_region(region);
    parse_next();
    while (valid_ && cmp.compare(key_, target) < 0) {
      parse_next();
    }
  }

  // Positions on the last key <= target; false (invalid) if every key is greater or on
  // corruption (check status()).
  template <key_comparator Cmp>
  bool seek_floor(std::string_view target, const Cmp& cmp) noexcept {
    std::size_t region = 0;
    if (!last_restart_where(target, cmp, /*or_equal=*/true, region)) {
      return false;
    }
    std::string_view first;
    if (!restart_key(region, first)) {
      return fail();
    }
    if (cmp.compare(first, target) > 0) {
      valid_ = false;  // region 0 already starts above target
      return false;
    }
    start_region(region);
    const std::size_t n =
        count_while([&](std::string_view k) { return cmp.compare(k, target) <= 0; });
    return reposition(region, n);
  }

  // The first key of the page, decoded without moving the cursor. False if empty or corrupt.
  [[nodiscard]] bool first_key(std::string_view& out) const noexcept {
    return !empty() && restart_key(0, out);
  }

 private:
  bool fail() noexcept {
    status_ = error::corrupted;
    valid_ = false;
    return false;
  }

  void start_region(std::size_t region) noexcept {
    region_ = region;
    next_offset_ = area_.restart_offset(region);
    key_.clear();
    fields_ = fields{};
    valid_ = false;
  }

  void parse_next() noexcept {
    if (next_offset_ >= area_.entries_end) {
      valid_ = false;
      return;
    }
    bool at_restart = next_offset_ == area_.restart_offset(region_);
    if (region_ + 1 < area_.restart_count) {
      const std::size_t next_restart = area_.restart_offset(region_ + 1);
      if (next_offset_ > next_restart) {
        fail();  // entries do not line up with the restart array
        return;
      }
      if (next_offset_ == next_restart) {
        ++region_;
        at_restart = true;
      }
    }
    const char* end = area_.base + area_.entries_end;
    std::uint32_t shared = 0;
    std::uint32_t non_shared = 0;
    fields f{};
    const char* p = Codec::head(area_.base + next_offset_, end, shared, non_shared, f);
    if (p == nullptr || shared > key_.size() || (at_restart && shared != 0) ||
        static_cast<std::size_t>(end - p) < non_shared) {
      fail();
      return;
    }
    const char* suffix = p;
    p = Codec::tail(p + non_shared, end, at_restart ? fields{} : fields_, f);
    if (p == nullptr) {
      fail();
      return;
    }
    key_.resize(shared);
    key_.append(suffix, non_shared);
    fields_ = f;
    next_offset_ = static_cast<std::size_t>(p - area_.base);
    valid_ = true;
  }

  // The full key at restart point `region` (where shared must be 0).
  bool restart_key(std::size_t region, std::string_view& out) const noexcept {
    const char* end = area_.base + area_.entries_end;
    std::uint32_t shared = 0;
    std::uint32_t non_shared = 0;
    fields f{};
    const char* p =
        Codec::head(area_.base + area_.restart_offset(region), end, shared, non_shared, f);
    if (p == nullptr || shared != 0 || static_cast<std::size_t>(end - p) < non_shared) {
      return false;
    }
    out = std::string_view(p, non_shared);
    return true;
  }

  // Binary search for the last region whose first key is < target (<= with or_equal); region
  // 0 when none qualifies. False when empty or corrupt.
  template <key_comparator Cmp>
  bool last_restart_where(std::string_view target, const Cmp& cmp, bool or_equal,
                          std::size_t& region) noexcept {
    valid_ = false;
    if (empty()) {
      return false;
    }
    std::size_t lo = 0;
    std::size_t hi = area_.restart_count - 1;
    while (lo < hi) {
      const std::size_t mid = (lo + hi + 1) / 2;
      std::string_view k;
      if (!restart_key(mid, k)) {
        return fail();
      }
      const auto c = cmp.compare(k, target);
      if (c < 0 || (or_equal && c == 0)) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    region = lo;
    return true;
  }

  // From the start of the current region, counts entries while pred(key) holds.
  template <typename Pred>
  std::size_t count_while(Pred pred) noexcept {
    std::size_t n = 0;
    parse_next();
    while (valid_ && pred(std::string_view(key_))) {
      ++n;
      parse_next();
    }
    return n;
  }

  // Moves to the n-th entry (1-based) counted from the start of `region`.
  bool reposition(std::size_t region, std::size_t n) noexcept {
    if (status_ != error::ok || n == 0) {
      valid_ = false;
      return false;
    }
    start_region(region);
    for (std::size_t i = 0; i < n; ++i) {
      parse_next();
    }
    return valid_;
  }

  block_area area_;
  std::string key_;
  fields fields_{};
  std::size_t next_offset_ = 0;
  std::size_t region_ = 0;
  bool valid_ = false;
  error status_ = error::ok;
};

}  // namespace eloqstore::detail
