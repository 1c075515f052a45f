// Error codes of eloqstore, numerically identical to the reference engine's KvError.
//
// Errors are values: fallible functions return `eloqstore::error` (or a result carrying one)
// and never throw from the core. A missing key is `not_found`, which callers usually treat as
// an answer rather than a failure. `std::error_code` interop is provided through
// `make_error_code` and `eloqstore::error_category()`.
//
// Thread affinity: none.
#pragma once

#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace eloqstore {

enum class error : std::uint8_t {
  ok = 0,                  // NoError
  invalid_args = 1,        // bad input: key, batch, table name, options, path
  not_found = 2,           // key, partition or file absent
  not_running = 3,         // request submitted to a stopped store
  corrupted = 4,           // checksum mismatch or a structure that does not decode
  end_of_file = 5,         // internal: iterator end, short read at end of file
  out_of_space = 6,        // ENOSPC, or the local cache cannot reserve space
  out_of_mem = 7,          // ENOMEM, or a bounded cache has every entry pinned
  open_file_limit = 8,     // EMFILE
  try_again = 9,           // EINTR, EAGAIN, ENOBUFS, short writes
  busy = 10,               // EBUSY
  timeout = 11,            // object store: 408/429/5xx after retries
  no_permission = 12,      // EPERM
  cloud_error = 13,        // object store: other HTTP or transport failures
  io_fail = 14,            // any other errno
  expired_term = 15,       // a newer process term owns the partition
  cloud_no_manifest = 16,  // bucket has objects of the partition but no usable manifest
  // Ours, beyond the reference's codes:
  store_locked = 17,  // another store (process or object) holds the store path
};

inline constexpr std::uint8_t error_count = 18;

[[nodiscard]] constexpr std::string_view error_message(error e) noexcept {
  switch (e) {
    case error::ok:
      return "ok";
    case error::invalid_args:
      return "invalid arguments";
    case error::not_found:
      return "not found";
    case error::not_running:
      return "store is not running";
    case error::corrupted:
      return "data corrupted";
    case error::end_of_file:
      return "end of file";
    case error::out_of_space:
      return "out of space";
    case error::out_of_mem:
      return "out of memory";
    case error::open_file_limit:
      return "open file limit reached";
    case error::try_again:
      return "try again";
    case error::busy:
      return "device or resource busy";
    case error::timeout:
      return "timed out";
    case error::no_permission:
      return "permission denied";
    case error::cloud_error:
      return "object store error";
    case error::io_fail:
      return "I/O failure";
    case error::expired_term:
      return "term expired: a newer owner holds the partition";
    case error::cloud_no_manifest:
      return "object store holds no usable manifest";
    case error::store_locked:
      return "store path is in use by another store";
  }
  return "unknown error";
}

// The errors a caller may retry unchanged (the reference's IsRetryableErr).
[[nodiscard]] constexpr bool is_retryable(error e) noexcept {
  return e == error::open_file_limit || e == error::busy || e == error::try_again;
}

// Maps an errno value to the engine's error, as the reference does.
[[nodiscard]] constexpr error error_from_errno(int err) noexcept {
  switch (err) {
    case 0:
      return error::ok;
    case ENOENT:
      return error::not_found;
    case ENOSPC:
      return error::out_of_space;
    case ENOMEM:
      return error::out_of_mem;
    case EMFILE:
      return error::open_file_limit;
    case EINTR:
    case EAGAIN:
    case ENOBUFS:
      return error::try_again;
    case EBUSY:
      return error::busy;
    case EPERM:
    case EACCES:
    case EROFS:
      return error::no_permission;
    default:
      return error::io_fail;
  }
}

namespace detail {
class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "eloqstore"; }
  std::string message(int ev) const override {
    return std::string(error_message(static_cast<error>(ev)));
  }
};
}  // namespace detail

inline const std::error_category& error_category() noexcept {
  static const detail::error_category_impl category;
  return category;
}

inline std::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace eloqstore

template <>
struct std::is_error_code_enum<eloqstore::error> : std::true_type {};
