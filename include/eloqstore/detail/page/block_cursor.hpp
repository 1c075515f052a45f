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

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
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

// The key a cursor stands on: inline up to `inline_bytes` (a lookup allocates nothing for
// ordinary keys), on the heap beyond. Growth is the only allocation; it reports failure
// instead of throwing, so cursor steps stay noexcept.
class key_buffer {
 public:
  static constexpr std::size_t inline_bytes = 128;

  key_buffer() = default;
  key_buffer(const key_buffer& o) {
    if (!assign(o.view())) {
      throw std::bad_alloc();
    }
  }
  key_buffer& operator=(const key_buffer& o) {
    if (this != &o && !assign(o.view())) {
      throw std::bad_alloc();
    }
    return *this;
  }
  ~key_buffer() = default;

  [[nodiscard]] std::string_view view() const noexcept { return {data(), size_}; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  void clear() noexcept { size_ = 0; }

  // Keeps the first `keep` bytes (<= size()) and appends `suffix`. False if out of memory
  // (the buffer is then empty).
  [[nodiscard]] bool rebuild(std::size_t keep, std::string_view suffix) noexcept {
    const std::size_t n = keep + suffix.size();
    if (n > capacity() && !grow(n, keep)) {
      return false;
    }
    std::memcpy(data() + keep, suffix.data(), suffix.size());
    size_ = n;
    return true;
  }
  [[nodiscard]] bool assign(std::string_view k) noexcept {
    size_ = 0;
    return rebuild(0, k);
  }

 private:
  [[nodiscard]] char* data() noexcept { return heap_ ? heap_.get() : inline_; }
  [[nodiscard]] const char* data() const noexcept { return heap_ ? heap_.get() : inline_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return heap_ ? heap_cap_ : inline_bytes; }

  bool grow(std::size_t n, std::size_t keep) noexcept {
    const std::size_t cap = std::max(n, 2 * capacity());
    std::unique_ptr<char[]> bigger(new (std::nothrow) char[cap]);
    if (!bigger) {
      size_ = 0;
      return false;
    }
    std::memcpy(bigger.get(), data(), keep);
    heap_ = std::move(bigger);
    heap_cap_ = cap;
    return true;
  }

  char inline_[inline_bytes];
  std::unique_ptr<char[]> heap_;
  std::size_t heap_cap_ = 0;
  std::size_t size_ = 0;
};

template <typename Codec>
class block_cursor {
 public:
  using fields = typename Codec::fields;

  block_cursor() = default;
  explicit block_cursor(block_area area) noexcept : area_(area) {}

  [[nodiscard]] bool valid() const noexcept { return valid_; }
  [[nodiscard]] error status() const noexcept { return status_; }
  [[nodiscard]] std::string_view key() const noexcept { return key_.view(); }
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
    while (valid_ && cmp.compare(key_.view(), target) < 0) {
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
    // One pass over the region: each step remembers the entry it leaves, and the cursor
    // steps back onto it when the next key is greater than target (or the region ends).
    start_region(region);
    parse_next();
    while (valid_) {
      const std::size_t offset = next_offset_;
      const std::size_t at_region = region_;
      const fields f = fields_;
      if (!prev_key_.assign(key_.view())) {
        return fail(error::out_of_mem);
      }
      parse_next();
      if (status_ != error::ok) {
        return false;
      }
      if (!valid_ || cmp.compare(key_.view(), target) > 0) {
        next_offset_ = offset;
        region_ = at_region;
        fields_ = f;
        if (!key_.assign(prev_key_.view())) {
          return fail(error::out_of_mem);
        }
        valid_ = true;
        return true;
      }
    }
    return false;
  }

  // The first key of the page, decoded without moving the cursor. False if empty or corrupt.
  [[nodiscard]] bool first_key(std::string_view& out) const noexcept {
    return !empty() && restart_key(0, out);
  }

  // Restart regions: the cursor's entry lies in region(); seek_to_region(r) positions on the
  // first entry of region r (< restart_count of a non-empty area); region_first_key(r) decodes
  // that key without moving the cursor (false if corrupt).
  [[nodiscard]] std::size_t region() const noexcept { return region_; }
  void seek_to_region(std::size_t region) noexcept {
    assert(!empty() && region < area_.restart_count);
    start_region(region);
    parse_next();
  }
  [[nodiscard]] bool region_first_key(std::size_t region, std::string_view& out) const noexcept {
    return !empty() && region < area_.restart_count && restart_key(region, out);
  }

 private:
  bool fail(error why = error::corrupted) noexcept {
    status_ = why;
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
    // An entry ends at or before the next restart point: one that runs across it would read
    // differently in a scan (from here) and in a seek (from the restart point).
    const auto entry_end = static_cast<std::size_t>(p - area_.base);
    if (region_ + 1 < area_.restart_count && entry_end > area_.restart_offset(region_ + 1)) {
      fail();
      return;
    }
    if (!key_.rebuild(shared, std::string_view(suffix, non_shared))) {
      fail(error::out_of_mem);
      return;
    }
    fields_ = f;
    next_offset_ = entry_end;
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
    while (valid_ && pred(key_.view())) {
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
  key_buffer key_;
  key_buffer prev_key_;  // seek_floor's step back
  fields fields_{};
  std::size_t next_offset_ = 0;
  std::size_t region_ = 0;
  bool valid_ = false;
  error status_ = error::ok;
};

}  // namespace eloqstore::detail
