// Strict decimal parsing for names on disk. Unlike strtoull, these accept exactly the
// canonical form: one or more ASCII digits, no sign, no spaces, no leading zeros (except "0"),
// and no value above the type's maximum. They never read outside the given view.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>

namespace eloqstore::detail {

template <typename Uint>
[[nodiscard]] inline std::optional<Uint> parse_decimal(std::string_view s) noexcept {
  if (s.empty() || (s.size() > 1 && s.front() == '0')) {
    return std::nullopt;
  }
  Uint v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
  if (ec != std::errc() || ptr != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

}  // namespace eloqstore::detail
