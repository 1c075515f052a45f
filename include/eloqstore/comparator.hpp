// Key order: the `key_comparator` policy and the default `bytewise_comparator`.
//
// Contract of a key_comparator (what the concept cannot check):
// * `compare(a, b)` is a strict weak order, pure, noexcept, and callable from any thread.
// * `name()` is stable across releases: it names the order data was written in.
// * The empty key is never a stored key (writes refuse it). Where the API takes a range, an
//   empty begin or end means unbounded on that side (-inf, +inf), whatever the comparator
//   says about "": the engine never hands a bound of "" to `compare`. So a comparator need
//   not order "" first (a descending order puts it last).
// * `shortest_separator(a, b)`, REQUIRES compare(a, b) < 0, returns a key s with
//   a < s <= b that is as short as the comparator can make it. It becomes an index-page
//   separator, so shorter means more fan-out per index page.
#pragma once

#include <algorithm>
#include <compare>
#include <concepts>
#include <cstddef>
#include <string>
#include <string_view>

namespace eloqstore {

template <typename C>
concept key_comparator = requires(const C& c, std::string_view a, std::string_view b) {
  { c.compare(a, b) }
  noexcept->std::convertible_to<std::weak_ordering>;
  { C::name() }
  noexcept->std::convertible_to<std::string_view>;
  { c.shortest_separator(a, b) } -> std::convertible_to<std::string>;
};

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
