// Key order: the default `bytewise_comparator` (the key_comparator concept and its contract
// are in concepts.hpp).
#pragma once

#include <algorithm>
#include <compare>
#include <concepts>
#include <cstddef>
#include <string>
#include <string_view>

#include <eloqstore/concepts.hpp>

namespace eloqstore {

// Unsigned lexicographic byte order (memcmp, shorter prefix first). This is the reference
// engine's default order and the only one whose files the reference can read.
struct bytewise_comparator {
  [[nodiscard]] std::weak_ordering compare(std::string_view a, std::string_view b) const noexcept {
    // std::string_view::compare uses char_traits<char>, which compares as unsigned char.
    const int c = a.compare(b);
    return c < 0 ? std::weak_ordering::less
                 : (c > 0 ? std::weak_ordering::greater : std::weak_ordering::equivalent);
  }

  [[nodiscard]] static constexpr std::string_view name() noexcept { return "eloqstore.bytewise"; }

  // The shortest prefix of `b` that is strictly greater than `a`: `b` up to and including the
  // first byte where the two differ. If `a` is a prefix of `b`, that is `a` plus one more byte
  // of `b`. REQUIRES: a < b.
  [[nodiscard]] std::string shortest_separator(std::string_view a, std::string_view b) const {
    const std::size_t common = static_cast<std::size_t>(
        std::mismatch(a.begin(), a.begin() + std::min(a.size(), b.size()), b.begin()).first -
        a.begin());
    return std::string(b.substr(0, std::min(b.size(), common + 1)));
  }
};

static_assert(key_comparator<bytewise_comparator>);

}  // namespace eloqstore
