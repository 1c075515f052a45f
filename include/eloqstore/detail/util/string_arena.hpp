// An append-only arena of byte strings: copies handed out as string_views stay valid (and
// never move) until the arena is destroyed. The tree writer keeps the keys it decodes from
// pages here: one allocation per block of keys instead of one per key (a 16-byte key is
// past std::string's inline capacity, so a leaf of 180 records cost 180 mallocs).
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace eloqstore::detail {

class string_arena {
 public:
  static constexpr std::size_t block_bytes = 16 * 1024;

  string_arena() = default;
  string_arena(const string_arena&) = delete;
  string_arena& operator=(const string_arena&) = delete;
  // Not movable either: the views it handed out point into its blocks, and its owner (the
  // tree writer) never moves.
  string_arena(string_arena&&) = delete;
  string_arena& operator=(string_arena&&) = delete;

  // A stable copy of `s`. Strings over a quarter of a block get a block of their own, so a
  // large one never wastes the rest of the current block.
  [[nodiscard]] std::string_view keep(std::string_view s) {
    if (s.empty()) {
      return {};
    }
    if (s.size() > block_bytes / 4) {
      char* big = add_block(s.size());
      std::memcpy(big, s.data(), s.size());
      return {big, s.size()};
    }
    if (block_bytes - used_ < s.size() || current_ == nullptr) {
      current_ = add_block(block_bytes);
      used_ = 0;
    }
    char* at = current_ + used_;
    std::memcpy(at, s.data(), s.size());
    used_ += s.size();
    return {at, s.size()};
  }

  // Blocks allocated so far (for tests).
  [[nodiscard]] std::size_t block_count() const noexcept { return blocks_.size(); }

 private:
  // Owned before it is listed: if listing it fails (std::bad_alloc), it is freed.
  char* add_block(std::size_t n) {
    auto block = std::make_unique_for_overwrite<char[]>(n);
    char* p = block.get();
    blocks_.push_back(std::move(block));
    return p;
  }

  std::vector<std::unique_ptr<char[]>> blocks_;
  char* current_ = nullptr;  // the block small strings go to
  std::size_t used_ = 0;     // bytes of current_ in use
};

}  // namespace eloqstore::detail
