// Byte-level encoding primitives shared by every on-disk structure.
//
// * Fixed-width integers are little-endian, except `be64`, used for TTL-tree keys so that the
//   byte order of the key equals the numeric order of the expiry.
// * Varints are LEB128: 7 payload bits per byte, high bit set on every byte but the last.
//   A varint32 is at most 5 bytes, a varint64 at most 10.
// * Signed deltas use sign-magnitude, NOT zig-zag: d >= 0 -> d << 1, d < 0 -> (|d| << 1) | 1.
//
// Decoders never read past the end they are given: every `get_*` takes the end pointer and
// fails (returns nullptr / false) on truncated or over-long input instead of reading on.
// Thread affinity: none; all functions are pure.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

namespace eloqstore::detail {

static_assert(std::endian::native == std::endian::little,
              "on-disk formats are little-endian; a big-endian port needs byte swaps here");

inline constexpr std::size_t varint32_bytes_max = 5;
inline constexpr std::size_t varint64_bytes_max = 10;

// ---- fixed width -------------------------------------------------------------------------

inline void encode_fixed16(char* dst, std::uint16_t v) noexcept {
  std::memcpy(dst, &v, 2);
}
inline void encode_fixed32(char* dst, std::uint32_t v) noexcept {
  std::memcpy(dst, &v, 4);
}
inline void encode_fixed64(char* dst, std::uint64_t v) noexcept {
  std::memcpy(dst, &v, 8);
}

inline std::uint16_t decode_fixed16(const char* src) noexcept {
  std::uint16_t v;
  std::memcpy(&v, src, 2);
  return v;
}
inline std::uint32_t decode_fixed32(const char* src) noexcept {
  std::uint32_t v;
  std::memcpy(&v, src, 4);
  return v;
}
inline std::uint64_t decode_fixed64(const char* src) noexcept {
  std::uint64_t v;
  std::memcpy(&v, src, 8);
  return v;
}

inline void put_fixed16(std::string& dst, std::uint16_t v) {
  char buf[2];
  encode_fixed16(buf, v);
  dst.append(buf, 2);
}
inline void put_fixed32(std::string& dst, std::uint32_t v) {
  char buf[4];
  encode_fixed32(buf, v);
  dst.append(buf, 4);
}
inline void put_fixed64(std::string& dst, std::uint64_t v) {
  char buf[8];
  encode_fixed64(buf, v);
  dst.append(buf, 8);
}

// Big-endian u64, used as the first 8 bytes of TTL-tree keys.
inline void encode_be64(char* dst, std::uint64_t v) noexcept {
  const std::uint64_t be = __builtin_bswap64(v);
  std::memcpy(dst, &be, 8);
}
inline std::uint64_t decode_be64(const char* src) noexcept {
  return __builtin_bswap64(decode_fixed64(src));
}

// ---- varints -----------------------------------------------------------------------------

[[nodiscard]] constexpr std::size_t varint_length(std::uint64_t v) noexcept {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Writes `v` at `dst` (which must have room for varint_length(v) bytes); returns one past.
inline char* encode_varint64(char* dst, std::uint64_t v) noexcept {
  auto* p = reinterpret_cast<unsigned char*>(dst);
  while (v >= 0x80) {
    *p++ = static_cast<unsigned char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<unsigned char>(v);
  return reinterpret_cast<char*>(p);
}
inline char* encode_varint32(char* dst, std::uint32_t v) noexcept {
  return encode_varint64(dst, v);
}

inline void put_varint64(std::string& dst, std::uint64_t v) {
  char buf[varint64_bytes_max];
  dst.append(buf, static_cast<std::size_t>(encode_varint64(buf, v) - buf));
}
inline void put_varint32(std::string& dst, std::uint32_t v) {
  put_varint64(dst, v);
}

// Decodes a varint from [p, end). Returns one past the varint, or nullptr when the input ends
// inside the varint, when it is longer than `max_bytes`, or when it overflows the type.
template <typename Int, std::size_t MaxBytes>
[[nodiscard]] inline const char* get_varint(const char* p, const char* end, Int* out) noexcept {
  Int result = 0;
  for (std::size_t i = 0; i < MaxBytes && p < end; ++i) {
    const auto byte = static_cast<unsigned char>(*p++);
    const unsigned shift = static_cast<unsigned>(7 * i);
    const Int bits = static_cast<Int>(byte & 0x7f);
    // The last permitted byte may only carry the bits that remain in the type.
    if (i == MaxBytes - 1 && (bits >> (std::numeric_limits<Int>::digits - shift)) != 0) {
      return nullptr;
    }
    result |= bits << shift;
    if ((byte & 0x80) == 0) {
      *out = result;
      return p;
    }
  }
  return nullptr;
}

[[nodiscard]] inline const char* get_varint32(const char* p, const char* end,
                                              std::uint32_t* out) noexcept {
  return get_varint<std::uint32_t, varint32_bytes_max>(p, end, out);
}
[[nodiscard]] inline const char* get_varint64(const char* p, const char* end,
                                              std::uint64_t* out) noexcept {
  return get_varint<std::uint64_t, varint64_bytes_max>(p, end, out);
}

// ---- signed deltas (sign-magnitude) ------------------------------------------------------

[[nodiscard]] constexpr std::uint64_t encode_delta64(std::int64_t d) noexcept {
  if (d >= 0) {
    return static_cast<std::uint64_t>(d) << 1;
  }
  // Negate in unsigned arithmetic so INT64_MIN does not overflow.
  const std::uint64_t magnitude = std::uint64_t{0} - static_cast<std::uint64_t>(d);
  return (magnitude << 1) | 1;
}
[[nodiscard]] constexpr std::int64_t decode_delta64(std::uint64_t v) noexcept {
  const std::uint64_t magnitude = v >> 1;
  return (v & 1) != 0 ? static_cast<std::int64_t>(std::uint64_t{0} - magnitude)
                      : static_cast<std::int64_t>(magnitude);
}
[[nodiscard]] constexpr std::uint32_t encode_delta32(std::int32_t d) noexcept {
  if (d >= 0) {
    return static_cast<std::uint32_t>(d) << 1;
  }
  const std::uint32_t magnitude = std::uint32_t{0} - static_cast<std::uint32_t>(d);
  return (magnitude << 1) | 1;
}
[[nodiscard]] constexpr std::int32_t decode_delta32(std::uint32_t v) noexcept {
  const std::uint32_t magnitude = v >> 1;
  return (v & 1) != 0 ? static_cast<std::int32_t>(std::uint32_t{0} - magnitude)
                      : static_cast<std::int32_t>(magnitude);
}

// ---- a bounds-checked cursor over a byte range ------------------------------------------

// Reads structured fields from [begin, end). Every read either succeeds completely or leaves
// the reader in the failed state (`ok() == false`), after which all reads fail. Callers check
// `ok()` once after a group of reads instead of after each one.
class byte_reader {
 public:
  byte_reader(const char* begin, const char* end) noexcept : p_(begin), end_(end) {}
  explicit byte_reader(std::string_view s) noexcept : byte_reader(s.data(), s.data() + s.size()) {}

  [[nodiscard]] bool ok() const noexcept { return p_ != nullptr; }
  [[nodiscard]] std::size_t remaining() const noexcept {
    return p_ == nullptr ? 0 : static_cast<std::size_t>(end_ - p_);
  }
  [[nodiscard]] const char* position() const noexcept { return p_; }

  std::uint32_t varint32() noexcept {
    std::uint32_t v = 0;
    p_ = p_ == nullptr ? nullptr : get_varint32(p_, end_, &v);
    return v;
  }
  std::uint64_t varint64() noexcept {
    std::uint64_t v = 0;
    p_ = p_ == nullptr ? nullptr : get_varint64(p_, end_, &v);
    return v;
  }
  std::uint32_t fixed32() noexcept {
    if (remaining() < 4) {
      p_ = nullptr;
      return 0;
    }
    const std::uint32_t v = decode_fixed32(p_);
    p_ += 4;
    return v;
  }
  std::string_view bytes(std::size_t n) noexcept {
    if (remaining() < n) {
      p_ = nullptr;
      return {};
    }
    const std::string_view v(p_, n);
    p_ += n;
    return v;
  }
  void fail() noexcept { p_ = nullptr; }

 private:
  const char* p_;
  const char* end_;
};

}  // namespace eloqstore::detail
