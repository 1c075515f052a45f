// Value compression as the reference stores it (spec 10.1), zstd at its default level:
//
//   stored value = varint32(original length) || zstd frame
//
// with the kind in the record's value flags (page_common.hpp): dictionary (1), a frame made
// with the partition's dictionary, for values of 100 B to 10 MiB when the partition has one;
// standalone (2), a plain frame, for values above 10 MiB. Values below 100 B are never
// compressed, and a compressed form is kept only when strictly smaller than the value. Any
// zstd frame of the right content decodes, so reading does not depend on how the writer's
// zstd version laid the frame out.
//
// The dictionary (at most 16 KiB per partition) is trained from sampled values
// (train_dictionary). The store does not use this codec yet: compression is not wired into
// the write and read paths (enable_compression is refused at start()).
//
// Thread safety: the functions are reentrant; a zstd_dictionary may be shared by threads
// once built.
#pragma once

#include <zdict.h>
#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <eloqstore/detail/codec/coding.hpp>
#include <eloqstore/detail/page/page_common.hpp>
#include <eloqstore/error.hpp>

namespace eloqstore::detail {

inline constexpr std::size_t compress_min_bytes = 100;  // smaller values stay as they are
inline constexpr std::size_t dictionary_value_max = std::size_t{10} << 20;  // above: standalone
inline constexpr std::size_t dictionary_bytes_max = std::size_t{16} << 10;
// Sampling: a dictionary is trained once this many sample bytes and samples are gathered.
inline constexpr std::size_t dictionary_sample_bytes = 100 * dictionary_bytes_max;
inline constexpr std::size_t dictionary_samples_min = 5;

// The kind a value of `n` bytes is compressed as (before checking that it shrinks).
[[nodiscard]] constexpr compression_kind compression_for(std::size_t n,
                                                         bool have_dictionary) noexcept {
  if (n < compress_min_bytes) {
    return compression_kind::none;
  }
  if (n > dictionary_value_max) {
    return compression_kind::standalone;
  }
  return have_dictionary ? compression_kind::dictionary : compression_kind::none;
}

// A partition's dictionary, digested once for compressing and for decompressing.
class zstd_dictionary {
 public:
  explicit zstd_dictionary(std::string bytes)
      : bytes_(std::move(bytes)),
        cdict_(ZSTD_createCDict(bytes_.data(), bytes_.size(), ZSTD_CLEVEL_DEFAULT)),
        ddict_(ZSTD_createDDict(bytes_.data(), bytes_.size())) {}
  [[nodiscard]] bool valid() const noexcept {
    return !bytes_.empty() && cdict_ != nullptr && ddict_ != nullptr;
  }
  [[nodiscard]] const std::string& bytes() const noexcept { return bytes_; }
  [[nodiscard]] const ZSTD_CDict* cdict() const noexcept { return cdict_.get(); }
  [[nodiscard]] const ZSTD_DDict* ddict() const noexcept { return ddict_.get(); }

 private:
  struct free_cdict {
    void operator()(ZSTD_CDict* d) const noexcept { ZSTD_freeCDict(d); }
  };
  struct free_ddict {
    void operator()(ZSTD_DDict* d) const noexcept { ZSTD_freeDDict(d); }
  };
  std::string bytes_;
  std::unique_ptr<ZSTD_CDict, free_cdict> cdict_;
  std::unique_ptr<ZSTD_DDict, free_ddict> ddict_;
};

// Compresses `value` as `kind` (dictionary needs a valid `dict`) into `out`. False, with
// `out` unspecified, when the result would not be strictly smaller, the value is longer
// than a varint32 can say, or zstd fails: the value is then stored as it is.
[[nodiscard]] inline bool compress_value(std::string_view value, compression_kind kind,
                                         const zstd_dictionary* dict, std::string& out) {
  if (kind == compression_kind::none || value.size() > UINT32_MAX ||
      (kind == compression_kind::dictionary && (dict == nullptr || !dict->valid()))) {
    return false;
  }
  out.clear();
  put_varint32(out, static_cast<std::uint32_t>(value.size()));
  const std::size_t head = out.size();
  out.resize(head + ZSTD_compressBound(value.size()));
  std::size_t n = 0;
  if (kind == compression_kind::dictionary) {
    const std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> cctx(ZSTD_createCCtx(),
                                                                    &ZSTD_freeCCtx);
    if (cctx == nullptr) {
      return false;
    }
    n = ZSTD_compress_usingCDict(cctx.get(), out.data() + head, out.size() - head, value.data(),
                                 value.size(), dict->cdict());
  } else {
    n = ZSTD_compress(out.data() + head, out.size() - head, value.data(), value.size(),
                      ZSTD_CLEVEL_DEFAULT);
  }
  if (ZSTD_isError(n) != 0 || head + n >= value.size()) {
    return false;
  }
  out.resize(head + n);
  return true;
}

// Decodes a stored value of kind `kind` (none: copied). error::corrupted when the length
// prefix, the frame or its size does not hold up, or a dictionary value meets no valid
// dictionary; the reference reports the same.
[[nodiscard]] inline error decompress_value(std::string_view stored, compression_kind kind,
                                            const zstd_dictionary* dict, std::string& out) {
  if (kind == compression_kind::none) {
    out.assign(stored);
    return error::ok;
  }
  if (kind != compression_kind::dictionary && kind != compression_kind::standalone) {
    return error::corrupted;
  }
  std::uint32_t length = 0;
  const char* p = get_varint32(stored.data(), stored.data() + stored.size(), &length);
  if (p == nullptr) {
    return error::corrupted;
  }
  const std::size_t head = static_cast<std::size_t>(p - stored.data());
  // A frame that states its size must state the prefix's (a damaged prefix never makes us
  // allocate what the frame does not hold).
  const unsigned long long stated =
      ZSTD_getFrameContentSize(stored.data() + head, stored.size() - head);
  if (stated == ZSTD_CONTENTSIZE_ERROR ||
      (stated != ZSTD_CONTENTSIZE_UNKNOWN && stated != length)) {
    return error::corrupted;
  }
  out.resize(length);
  std::size_t n = 0;
  if (kind == compression_kind::dictionary) {
    if (dict == nullptr || !dict->valid()) {
      return error::corrupted;
    }
    const std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> dctx(ZSTD_createDCtx(),
                                                                    &ZSTD_freeDCtx);
    if (dctx == nullptr) {
      return error::out_of_mem;
    }
    n = ZSTD_decompress_usingDDict(dctx.get(), out.data(), out.size(), stored.data() + head,
                                   stored.size() - head, dict->ddict());
  } else {
    n = ZSTD_decompress(out.data(), out.size(), stored.data() + head, stored.size() - head);
  }
  if (ZSTD_isError(n) != 0 || n != length) {
    return error::corrupted;
  }
  return error::ok;
}

// Trains a dictionary of at most dictionary_bytes_max bytes from `samples` (ZDICT's default
// parameters); empty when training fails (too few or too uniform samples).
[[nodiscard]] inline std::string train_dictionary(const std::vector<std::string>& samples) {
  std::string joined;
  std::vector<std::size_t> sizes;
  sizes.reserve(samples.size());
  for (const std::string& s : samples) {
    joined.append(s);
    sizes.push_back(s.size());
  }
  std::string dict(dictionary_bytes_max, '\0');
  const std::size_t n = ZDICT_trainFromBuffer(dict.data(), dict.size(), joined.data(), sizes.data(),
                                              static_cast<unsigned>(sizes.size()));
  if (ZDICT_isError(n) != 0) {
    return {};
  }
  dict.resize(n);
  return dict;
}

}  // namespace eloqstore::detail
