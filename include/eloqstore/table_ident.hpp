// table_ident: the identity of one partition, a table name plus a 32-bit partition id.
//
// Text form `<name>.<partition>`, split at the LAST dot, so table names may contain dots.
// It is also the partition's directory name under a store path and its prefix in the bucket.
// Routing: shard = partition % shard_count; disk = partition % store_path_count (the table
// name takes no part in routing, as in the reference engine).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <eloqstore/detail/util/parse.hpp>

namespace eloqstore {

struct table_ident {
  // Directory names are limited to 255 bytes; keep room for ".<u32>".
  static constexpr std::size_t name_bytes_max = 255 - 11;

  std::string name;
  std::uint32_t partition = 0;

  // A name is valid when it is 1..name_bytes_max bytes and holds no '/', no NUL and no other
  // control character, so that `<name>.<partition>` is always one safe directory entry.
  [[nodiscard]] static bool valid_name(std::string_view n) noexcept {
    if (n.empty() || n.size() > name_bytes_max) {
      return false;
    }
    for (const char c : n) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '/' || u < 0x20 || u == 0x7f) {
        return false;
      }
    }
    return true;
  }
  [[nodiscard]] bool valid() const noexcept { return valid_name(name); }

  [[nodiscard]] std::string to_string() const { return name + '.' + std::to_string(partition); }

  // Parses `<name>.<partition>`; nullopt when there is no dot, the partition is not a
  // canonical u32, or the name is not valid.
  [[nodiscard]] static std::optional<table_ident> parse(std::string_view text) {
    const std::size_t dot = text.rfind('.');
    if (dot == std::string_view::npos) {
      return std::nullopt;
    }
    const auto id = detail::parse_decimal<std::uint32_t>(text.substr(dot + 1));
    table_ident t{std::string(text.substr(0, dot)), id.value_or(0)};
    if (!id || !t.valid()) {
      return std::nullopt;
    }
    return t;
  }

  // REQUIRES: shard_count > 0.
  [[nodiscard]] std::size_t shard_index(std::size_t shard_count) const noexcept {
    return partition % shard_count;
  }
  // REQUIRES: disk_count > 0.
  [[nodiscard]] std::size_t disk_index(std::size_t disk_count) const noexcept {
    return partition % disk_count;
  }

  friend bool operator==(const table_ident&, const table_ident&) = default;
};

}  // namespace eloqstore

template <>
struct std::hash<eloqstore::table_ident> {
  std::size_t operator()(const eloqstore::table_ident& t) const noexcept {
    const std::size_t h = std::hash<std::string>{}(t.name);
    return h ^
           (std::hash<std::uint32_t>{}(t.partition) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  }
};
