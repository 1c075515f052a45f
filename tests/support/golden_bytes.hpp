// Hand-written bytes of the on-disk formats (reference-engine.md sections 3 and 4): appending
// literal bytes, little-endian stores written out byte by byte, and the page and manifest
// checksums computed with XXH3_64bits directly, so that tests that build files by hand from
// the specification never go through the library's own encoders.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <vector>

#include <xxhash.h>

namespace eloqstore::test {

using byte_list = std::initializer_list<std::uint8_t>;

inline constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();

// Appends hand-written bytes.
inline void append(std::vector<char>& out, byte_list bytes) {
  for (const std::uint8_t b : bytes) {
    out.push_back(static_cast<char>(b));
  }
}

inline std::vector<char> to_chars(byte_list bytes) {
  std::vector<char> out;
  append(out, bytes);
  return out;
}

// Stores `v` little-endian at `dst`, byte by byte (independent of encode_fixed64).
inline void store_le64(char* dst, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    dst[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  }
}

// Page checksum as the spec defines it: XXH3-64 (seed 0) of bytes [8, size), stored LE at 0.
inline void seal_page_by_hand(std::vector<char>& page) {
  store_le64(page.data(), XXH3_64bits(page.data() + 8, page.size() - 8));
}

// The manifest record checksum of spec 4.1, written out: 1 MiB chunks, agg = 0, per chunk
// agg = rotl64(agg, 1) ^ XXH3_64(chunk), agg *= 0x9E3779B97F4A7C15 (wrapping).
inline std::uint64_t spec_manifest_checksum(const char* p, std::size_t n) {
  constexpr std::size_t chunk = std::size_t{1} << 20;
  std::uint64_t agg = 0;
  for (std::size_t off = 0; off < n; off += chunk) {
    const std::size_t len = n - off < chunk ? n - off : chunk;
    const std::uint64_t h = XXH3_64bits(p + off, len);
    agg = ((agg << 1) | (agg >> 63)) ^ h;
    agg *= 0x9E3779B97F4A7C15ULL;
  }
  return agg;
}

// Seals a hand-built manifest record (20-byte header + payload): its checksum over
// [8, size), then zero padding to the 4 KiB alignment of spec 4.1.
inline void seal_record_by_hand(std::vector<char>& rec) {
  store_le64(rec.data(), spec_manifest_checksum(rec.data() + 8, rec.size() - 8));
  rec.resize((rec.size() + 4095) / 4096 * 4096, '\0');
}

}  // namespace eloqstore::test
