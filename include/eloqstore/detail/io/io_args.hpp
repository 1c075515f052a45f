// Argument checks shared by the I/O backends: every call names a partition and, mostly, a
// file inside its directory; both must be safe to turn into a path.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>

#include <eloqstore/error.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore::detail {

// A file name is one directory entry: not empty, not "." or "..", no '/' and no NUL.
[[nodiscard]] inline bool valid_file_name(std::string_view name) noexcept {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string_view("/\0", 2)) == std::string_view::npos;
}

// not_running before open(), invalid_args for a bad partition, else ok.
[[nodiscard]] inline error check_io_args(bool open, const table_ident& t) noexcept {
  if (!open) {
    return error::not_running;
  }
  return t.valid() ? error::ok : error::invalid_args;
}

// As above, and the file name must be a single directory entry.
[[nodiscard]] inline error check_io_args(bool open, const table_ident& t,
                                         std::string_view name) noexcept {
  if (const error e = check_io_args(open, t); e != error::ok) {
    return e;
  }
  return valid_file_name(name) ? error::ok : error::invalid_args;
}

// invalid_args unless the byte range [offset, offset + size) fits in off_t.
[[nodiscard]] inline error check_file_range(std::uint64_t offset, std::size_t size) noexcept {
  constexpr auto off_max = static_cast<std::uint64_t>(std::numeric_limits<off_t>::max());
  return offset > off_max || size > off_max - offset ? error::invalid_args : error::ok;
}

}  // namespace eloqstore::detail
