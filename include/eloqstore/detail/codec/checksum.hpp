// Checksums of the on-disk formats.
//
// * Pages: XXH3-64 (seed 0) of bytes [8, page_size), stored little-endian in bytes [0, 8).
//   The whole page is covered, zero padding included.
// * Manifest records: the content is cut into 1 MiB chunks; agg = 0; for each chunk
//   agg = (rotl(agg, 1) ^ XXH3_64(chunk)) * 0x9E3779B97F4A7C15 (wrapping). Empty content -> 0.
//
// Thread affinity: none; pure functions.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include <xxhash.h>

#include <eloqstore/detail/codec/coding.hpp>

namespace eloqstore::detail {

inline constexpr std::size_t page_checksum_bytes = 8;
inline constexpr std::size_t manifest_checksum_chunk_bytes = std::size_t{1} << 20;
inline constexpr std::uint64_t manifest_checksum_mixer = 0x9E3779B97F4A7C15ULL;

// REQUIRES: page.size() > page_checksum_bytes.
[[nodiscard]] inline std::uint64_t compute_page_checksum(std::span<const char> page) noexcept {
  return XXH3_64bits(page.data() + page_checksum_bytes, page.size() - page_checksum_bytes);
}

inline void set_page_checksum(std::span<char> page) noexcept {
  encode_fixed64(page.data(), compute_page_checksum(page));
}

[[nodiscard]] inline bool verify_page_checksum(std::span<const char> page) noexcept {
  if (page.size() <= page_checksum_bytes) {
    return false;
  }
  return decode_fixed64(page.data()) == compute_page_checksum(page);
}

[[nodiscard]] inline std::uint64_t manifest_checksum(std::string_view content) noexcept {
  std::uint64_t agg = 0;
  for (std::size_t off = 0; off < content.size(); off += manifest_checksum_chunk_bytes) {
    const std::size_t n = std::min(manifest_checksum_chunk_bytes, content.size() - off);
    agg = (std::rotl(agg, 1) ^ XXH3_64bits(content.data() + off, n)) * manifest_checksum_mixer;
  }
  return agg;
}

}  // namespace eloqstore::detail
