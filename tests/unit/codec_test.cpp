// Round trips and edge cases of the byte-level codecs and checksums.
#include <bit>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <xxhash.h>

#include <eloqstore/detail/codec/checksum.hpp>
#include <eloqstore/detail/codec/coding.hpp>
#include <eloqstore/detail/codec/compression.hpp>
#include <eloqstore/detail/util/string_arena.hpp>
#include <eloqstore/error.hpp>

#include "support/page_store.hpp"

using namespace eloqstore;
using namespace eloqstore::detail;

TEST_CASE("codec: varint64 round trip at every length boundary") {
  for (unsigned bits = 0; bits <= 64; ++bits) {
    for (const std::int64_t adjust : {-1, 0, 1}) {
      const std::uint64_t base = bits == 64 ? 0 : (std::uint64_t{1} << bits);
      const std::uint64_t v = base + static_cast<std::uint64_t>(adjust);
      std::string buf;
      put_varint64(buf, v);
      CHECK(buf.size() == varint_length(v));
      std::uint64_t out = 0;
      const char* end = get_varint64(buf.data(), buf.data() + buf.size(), &out);
      REQUIRE(end == buf.data() + buf.size());
      CHECK(out == v);
      // Every strict prefix is truncated input.
      for (std::size_t cut = 0; cut < buf.size(); ++cut) {
        CHECK(get_varint64(buf.data(), buf.data() + cut, &out) == nullptr);
      }
    }
  }
}

TEST_CASE("codec: varint32 rejects overflow and over-long encodings") {
  std::uint32_t out = 0;
  const std::string max32 = "\xff\xff\xff\xff\x0f";
  CHECK(get_varint32(max32.data(), max32.data() + 5, &out) == max32.data() + 5);
  CHECK(out == std::numeric_limits<std::uint32_t>::max());
  const std::string too_big = "\xff\xff\xff\xff\x1f";  // 2^32 + ...
  CHECK(get_varint32(too_big.data(), too_big.data() + 5, &out) == nullptr);
  const std::string too_long = "\x80\x80\x80\x80\x80\x00";
  CHECK(get_varint32(too_long.data(), too_long.data() + 6, &out) == nullptr);
  std::uint64_t out64 = 0;
  const std::string too_big64 = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02";
  CHECK(get_varint64(too_big64.data(), too_big64.data() + 10, &out64) == nullptr);
  const std::string max64 = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01";
  CHECK(get_varint64(max64.data(), max64.data() + 10, &out64) == max64.data() + 10);
  CHECK(out64 == std::numeric_limits<std::uint64_t>::max());
}

TEST_CASE("codec: sign-magnitude deltas") {
  CHECK(encode_delta64(0) == 0);
  CHECK(encode_delta64(1) == 2);
  CHECK(encode_delta64(-1) == 3);
  CHECK(encode_delta64(-5) == 11);
  CHECK(encode_delta32(-2) == 5);
  test::rng r(7);
  for (int i = 0; i < 10000; ++i) {
    const auto v = static_cast<std::int64_t>(
        r.uniform(0, std::numeric_limits<std::uint64_t>::max() - 1) + 1);  // never INT64_MIN
    CHECK(decode_delta64(encode_delta64(v)) == v);
    const auto w = static_cast<std::int32_t>(v);
    CHECK(decode_delta32(encode_delta32(w)) == w);
  }
  // INT64_MIN has no sign-magnitude form in 64 bits; deltas of clamped timestamps
  // (0..INT64_MAX) never reach it.
  CHECK(decode_delta64(encode_delta64(std::numeric_limits<std::int64_t>::min() + 1)) ==
        std::numeric_limits<std::int64_t>::min() + 1);
  CHECK(decode_delta64(encode_delta64(std::numeric_limits<std::int64_t>::max())) ==
        std::numeric_limits<std::int64_t>::max());
}

TEST_CASE("codec: fixed little-endian and big-endian") {
  char buf[8];
  encode_fixed32(buf, 0x04030201u);
  CHECK(std::string(buf, 4) == std::string("\x01\x02\x03\x04", 4));
  encode_fixed16(buf, 0xbeef);
  CHECK(decode_fixed16(buf) == 0xbeef);
  encode_fixed64(buf, 0x0807060504030201ull);
  CHECK(std::string(buf, 8) == std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  encode_be64(buf, 0x0102030405060708ull);
  CHECK(std::string(buf, 8) == std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  CHECK(decode_be64(buf) == 0x0102030405060708ull);
  // Big-endian order is numeric order.
  char a[8];
  char b[8];
  encode_be64(a, 255);
  encode_be64(b, 256);
  CHECK(std::string_view(a, 8) < std::string_view(b, 8));
}

TEST_CASE("codec: byte_reader stops at the end and stays failed") {
  const std::string in = std::string("\x05", 1) + "abc";
  byte_reader r(in);
  CHECK(r.varint32() == 5);
  CHECK(r.bytes(3) == "abc");
  CHECK(r.ok());
  CHECK(r.remaining() == 0);
  CHECK(r.fixed32() == 0);
  CHECK_FALSE(r.ok());
  CHECK(r.bytes(0).empty());
  CHECK_FALSE(r.ok());
}

TEST_CASE("checksum: page checksum covers everything after the first 8 bytes") {
  test::rng r(11);
  std::vector<char> page(4096);
  for (auto& c : page) {
    c = static_cast<char>(r.uniform(0, 255));
  }
  set_page_checksum(page);
  CHECK(verify_page_checksum(page));
  CHECK(decode_fixed64(page.data()) == XXH3_64bits(page.data() + 8, page.size() - 8));
  for (int i = 0; i < 200; ++i) {
    const std::size_t at = r.uniform(0, page.size() - 1);
    const char bit = static_cast<char>(1 << r.uniform(0, 7));
    page[at] ^= bit;
    CHECK_FALSE(verify_page_checksum(page));
    page[at] ^= bit;
  }
  CHECK(verify_page_checksum(page));
}

TEST_CASE("checksum: manifest checksum is chunked per MiB") {
  CHECK(manifest_checksum("") == 0);
  test::rng r(3);
  const std::string content = r.bytes((std::size_t{5} << 19) + 17);  // 2.5 MiB + 17 bytes
  std::uint64_t agg = 0;
  for (std::size_t off = 0; off < content.size(); off += std::size_t{1} << 20) {
    const std::size_t n = std::min(std::size_t{1} << 20, content.size() - off);
    agg = std::rotl(agg, 1) ^ XXH3_64bits(content.data() + off, n);
    agg *= 0x9E3779B97F4A7C15ULL;
  }
  CHECK(manifest_checksum(content) == agg);
  // A single small chunk: one round of the mix.
  CHECK(manifest_checksum("abc") == XXH3_64bits("abc", 3) * 0x9E3779B97F4A7C15ULL);
}

TEST_CASE("error: messages, retryability and std::error_code") {
  for (std::uint8_t i = 0; i < error_count; ++i) {
    const auto e = static_cast<error>(i);
    CHECK_FALSE(error_message(e).empty());
    CHECK(error_message(e) != "unknown error");
    const std::error_code ec = e;
    CHECK(ec.value() == i);
    CHECK(ec.message() == std::string(error_message(e)));
  }
  CHECK(is_retryable(error::busy));
  CHECK(is_retryable(error::try_again));
  CHECK(is_retryable(error::open_file_limit));
  CHECK_FALSE(is_retryable(error::io_fail));
  CHECK_FALSE(is_retryable(error::corrupted));
  CHECK(error_from_errno(ENOSPC) == error::out_of_space);
  CHECK(error_from_errno(EAGAIN) == error::try_again);
  CHECK(error_from_errno(EIO) == error::io_fail);
  CHECK(error_from_errno(EACCES) == error::no_permission);
  CHECK(error_from_errno(EROFS) == error::no_permission);
  CHECK(static_cast<int>(error::cloud_no_manifest) == 16);
  CHECK(static_cast<int>(error::store_locked) == 17);  // ours, past the reference's codes
}

TEST_CASE("string_arena: copies stay valid and unchanged while the arena grows") {
  eloqstore::detail::string_arena arena;
  std::vector<std::pair<std::string, std::string_view>> kept;
  std::mt19937 g(7);
  for (int i = 0; i < 5000; ++i) {
    // Mostly key-sized strings, some past a quarter block (own block), some empty.
    const std::size_t n = i % 97 == 0 ? 6000 + g() % 3000 : i % 31 == 0 ? 0 : 1 + g() % 40;
    std::string s(n, '\0');
    for (char& c : s) {
      c = static_cast<char>('a' + g() % 26);
    }
    kept.emplace_back(s, arena.keep(s));
  }
  for (const auto& [copy, view] : kept) {
    CHECK(view == copy);
  }
  // Small strings share blocks: far fewer blocks than strings.
  CHECK(arena.block_count() < 200);
}

// ---- value compression (detail/codec/compression.hpp) --------------------------------------

namespace {

// Text-like values: words from a small vocabulary, so zstd and a dictionary find structure.
std::string wordy(test::rng& r, std::size_t n) {
  static const char* const words[] = {"order",   "user", "item",  "price",   "status", "shipped",
                                      "pending", "name", "email", "address", "city",   "zip"};
  std::string s;
  while (s.size() < n) {
    s.append("\"").append(words[r.uniform(0, 11)]).append("\":");
    s.append(std::to_string(r.uniform(0, 99999))).append(",");
  }
  s.resize(n);
  return s;
}

}  // namespace

TEST_CASE("compression: kinds by size, round trips, and only when smaller") {
  CHECK(compression_for(99, true) == compression_kind::none);
  CHECK(compression_for(100, true) == compression_kind::dictionary);
  CHECK(compression_for(100, false) == compression_kind::none);
  CHECK(compression_for(dictionary_value_max, true) == compression_kind::dictionary);
  CHECK(compression_for(dictionary_value_max + 1, false) == compression_kind::standalone);

  test::rng r(11);
  std::vector<std::string> samples;
  for (int i = 0; i < 2000; ++i) {
    samples.push_back(wordy(r, r.uniform(100, 1500)));
  }
  const std::string trained = train_dictionary(samples);
  REQUIRE_FALSE(trained.empty());
  CHECK(trained.size() <= dictionary_bytes_max);
  const zstd_dictionary dict(trained);
  REQUIRE(dict.valid());

  for (const std::size_t n : {std::size_t{100}, std::size_t{1000}, std::size_t{100000}}) {
    CAPTURE(n);
    const std::string value = wordy(r, n);
    std::string packed;
    REQUIRE(compress_value(value, compression_kind::dictionary, &dict, packed));
    CHECK(packed.size() < value.size());
    std::string back;
    REQUIRE(decompress_value(packed, compression_kind::dictionary, &dict, back) == error::ok);
    CHECK(back == value);
    // Without its dictionary, or with a damaged frame, it is corrupt, never wrong bytes.
    CHECK(decompress_value(packed, compression_kind::dictionary, nullptr, back) ==
          error::corrupted);
    std::string damaged = packed;
    damaged[damaged.size() / 2] ^= 0x5a;
    const error e = decompress_value(damaged, compression_kind::dictionary, &dict, back);
    CHECK((e == error::corrupted || back == value));
    std::string short_prefix = packed;
    short_prefix[0] = static_cast<char>(short_prefix[0] ^ 1);  // the length says otherwise
    CHECK(decompress_value(short_prefix, compression_kind::dictionary, &dict, back) ==
          error::corrupted);
  }
  // A value above 10 MiB: a standalone frame.
  const std::string big = wordy(r, dictionary_value_max + 4096);
  std::string packed;
  REQUIRE(compress_value(big, compression_kind::standalone, nullptr, packed));
  std::string back;
  REQUIRE(decompress_value(packed, compression_kind::standalone, nullptr, back) == error::ok);
  CHECK(back == big);
  // Random bytes do not shrink: not compressed.
  CHECK_FALSE(compress_value(r.bytes(5000), compression_kind::standalone, nullptr, packed));
  // Too few samples train nothing.
  CHECK(train_dictionary({"a", "b"}).empty());
  // An unknown kind is corruption.
  CHECK(decompress_value(packed, static_cast<compression_kind>(3), &dict, back) ==
        error::corrupted);
}

TEST_CASE("compression: the sampler gathers enough values to train and picks at random") {
  test::rng r(12);
  const auto upsert = [](std::string value) {
    return write_entry{"k", std::move(value), 1, write_op::upsert, 0};
  };
  dictionary_sampler s;
  // Small values, deletes and values above 10 MiB are not sampled; large ones count only
  // their first dictionary_bytes_max bytes.
  std::vector<write_entry> b{upsert(std::string(99, 'x')), upsert(wordy(r, 100)),
                             upsert(wordy(r, 1 << 20)),
                             write_entry{"d", wordy(r, 500), 1, write_op::erase, 0},
                             upsert(std::string(dictionary_value_max + 1, 'y'))};
  CHECK_FALSE(s.offer(b, 1));
  CHECK(s.bytes() == 100 + dictionary_bytes_max);
  // A batch holding more than is still needed gives as much as needed, chosen at random:
  // two seeds choose different values.
  std::vector<write_entry> many;
  for (int i = 0; i < 3000; ++i) {
    many.push_back(upsert(std::to_string(i) + wordy(r, 1000)));
  }
  dictionary_sampler a;
  dictionary_sampler c;
  REQUIRE(a.offer(many, 1));
  REQUIRE(c.offer(many, 2));
  CHECK(a.bytes() >= dictionary_sample_bytes);
  CHECK(a.bytes() < dictionary_sample_bytes + 1100);
  CHECK(a.offer({}, 3));  // stays ready until trained
  const std::string da = a.train();
  const std::string dc = c.train();
  CHECK_FALSE(da.empty());
  CHECK(da != dc);
  CHECK(a.bytes() == 0);
  CHECK_FALSE(a.ready());
  // Values all alike still train (a small dictionary): a hundred samples or more are enough.
  dictionary_sampler f;
  const std::vector<write_entry> same(dictionary_sample_bytes / 1000 + 1,
                                      upsert(std::string(1000, 'z')));
  REQUIRE(f.offer(same, 1));
  CHECK_FALSE(f.train().empty());
}
