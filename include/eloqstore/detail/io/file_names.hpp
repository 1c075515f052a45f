// File names inside a partition directory `<root>/<table>.<partition>/` (and the same names
// under `[<prefix>/]<table>.<partition>/` in a bucket):
//
//   data_<file_id>_<term>      a data file, created by process term <term> (0 when local)
//   manifest_<term>            the current manifest of that term
//   manifest_<term>_<ts>       an archive: a manifest snapshot taken at <ts> (microseconds)
//   CURRENT_TERM               object-store only: decimal text of the owning term
//   <anything>.tmp             an unfinished atomic write, ignored by listing and GC
//
// Numbers are canonical decimals (see parse_decimal). The pre-term names `data_<id>` and
// `manifest` are rejected as `unknown`. (A pre-term `manifest_<ts>` cannot be told apart from
// `manifest_<term>` by its shape; it parses as a manifest of term <ts>.)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <eloqstore/detail/util/parse.hpp>
#include <eloqstore/detail/util/strong_id.hpp>

namespace eloqstore::detail {

inline constexpr std::string_view data_file_prefix = "data";
inline constexpr std::string_view manifest_file_prefix = "manifest";
inline constexpr std::string_view current_term_file_name = "CURRENT_TERM";
inline constexpr std::string_view temporary_file_suffix = ".tmp";
inline constexpr char file_name_separator = '_';

enum class file_kind : std::uint8_t { data, manifest, archive, current_term, temporary, unknown };

struct parsed_file_name {
  file_kind kind = file_kind::unknown;
  file_id id;                   // data files only
  std::uint64_t term = 0;       // data, manifest, archive
  std::uint64_t timestamp = 0;  // archive only
};

[[nodiscard]] inline std::string data_file_name(file_id id, std::uint64_t term) {
  return std::string(data_file_prefix) + file_name_separator + std::to_string(id.value()) +
         file_name_separator + std::to_string(term);
}
[[nodiscard]] inline std::string manifest_file_name(std::uint64_t term) {
  return std::string(manifest_file_prefix) + file_name_separator + std::to_string(term);
}
[[nodiscard]] inline std::string archive_file_name(std::uint64_t term, std::uint64_t ts) {
  return manifest_file_name(term) + file_name_separator + std::to_string(ts);
}
[[nodiscard]] inline std::string temporary_file_name(std::string_view final_name) {
  return std::string(final_name) + std::string(temporary_file_suffix);
}

[[nodiscard]] inline parsed_file_name parse_file_name(std::string_view name) {
  parsed_file_name out;
  if (name == current_term_file_name) {
    out.kind = file_kind::current_term;
    return out;
  }
  if (name.size() > temporary_file_suffix.size() && name.ends_with(temporary_file_suffix)) {
    out.kind = file_kind::temporary;
    return out;
  }
  const std::size_t sep = name.find(file_name_separator);
  if (sep == std::string_view::npos) {
    return out;  // includes the legacy plain "manifest"
  }
  const std::string_view type = name.substr(0, sep);
  const std::string_view rest = name.substr(sep + 1);
  const std::size_t sep2 = rest.find(file_name_separator);
  const std::string_view first = rest.substr(0, sep2);
  const std::string_view second =
      sep2 == std::string_view::npos ? std::string_view{} : rest.substr(sep2 + 1);

  if (type == data_file_prefix) {
    const auto id = parse_decimal<std::uint64_t>(first);
    const auto term = parse_decimal<std::uint64_t>(second);
    if (sep2 == std::string_view::npos || !id || !term || *id > data_file_id_max) {
      return out;  // includes the legacy "data_<id>"
    }
    out = {file_kind::data, file_id(*id), *term, 0};
    return out;
  }
  if (type == manifest_file_prefix) {
    const auto term = parse_decimal<std::uint64_t>(first);
    if (!term) {
      return out;
    }
    if (sep2 == std::string_view::npos) {
      out = {file_kind::manifest, file_id(), *term, 0};
      return out;
    }
    const auto ts = parse_decimal<std::uint64_t>(second);
    if (ts) {
      out = {file_kind::archive, file_id(), *term, *ts};
    }
    return out;
  }
  return out;
}

}  // namespace eloqstore::detail
