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
// The dictionary (at most 16 KiB per partition) is trained once from values sampled out of
// the partition's incoming batches (dictionary_sampler, train_dictionary) and then stays: it
// is stored in the manifest's snapshots, and every version of the partition carries it
// (commit/partition.hpp) so that readers decode with the dictionary of the version they
// read. The tree writer compresses new values when enable_compression is set; readers
// decode by the stored kind whatever the option says, so toggling it across restarts reads
// everything written either way.
//
// Thread safety: the functions are reentrant; a zstd_dictionary may be shared by threads
// once built.
#pragma once

#include <zdict.h>
#include <zstd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <eloqstore/detail/codec/coding.hpp>
#include <eloqstore/detail/page/page_common.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/types.hpp>

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

// The zstd contexts of the calling thread, made on first use and reused by every value it
// compresses or decompresses (a context is costly to make, and its tables live on the heap,
// not on a task's small stack). The calls that use them never suspend, so tasks of one
// shard thread never share one at once. nullptr when zstd cannot allocate.
struct zstd_contexts {
  static ZSTD_CCtx* compressor() {
    thread_local const std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> c(ZSTD_createCCtx(),
                                                                              &ZSTD_freeCCtx);
    return c.get();
  }
  static ZSTD_DCtx* decompressor() {
    thread_local const std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> d(ZSTD_createDCtx(),
                                                                              &ZSTD_freeDCtx);
    return d.get();
  }
};

// A version's dictionary, or none (a snapshot with an empty dictionary).
[[nodiscard]] inline std::shared_ptr<const zstd_dictionary> make_dictionary(std::string bytes) {
  if (bytes.empty()) {
    return nullptr;
  }
  return std::make_shared<const zstd_dictionary>(std::move(bytes));
}

// The bytes a snapshot stores for dictionary `d` (none: empty).
[[nodiscard]] inline std::string_view dictionary_bytes(const zstd_dictionary* d) noexcept {
  return d == nullptr ? std::string_view() : std::string_view(d->bytes());
}

// Compresses `value` as `kind` (dictionary needs a valid `dict`) into `out`. False, with
// `out` unspecified, when the result would not be strictly smaller, the value is longer
// than a varint32 can say, or zstd fails: the value is then stored as it is.
[[nodiscard]] inline bool compress_value(std::string_view value, compression_kind kind,
                                         const zstd_dictionary* dict, std::string& out) {
  if (kind == compression_kind::none || value.size() > UINT32_MAX ||
      (kind == compression_kind::dictionary && (dict == nullptr || !dict->valid()))) {
    return false;
  }
  ZSTD_CCtx* const cctx = zstd_contexts::compressor();
  if (cctx == nullptr) {
    return false;
  }
  out.clear();
  put_varint32(out, static_cast<std::uint32_t>(value.size()));
  const std::size_t head = out.size();
  out.resize(head + ZSTD_compressBound(value.size()));
  const std::size_t n = kind == compression_kind::dictionary
                            ? ZSTD_compress_usingCDict(cctx, out.data() + head, out.size() - head,
                                                       value.data(), value.size(), dict->cdict())
                            : ZSTD_compressCCtx(cctx, out.data() + head, out.size() - head,
                                                value.data(), value.size(), ZSTD_CLEVEL_DEFAULT);
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
  if (kind == compression_kind::dictionary && (dict == nullptr || !dict->valid())) {
    return error::corrupted;
  }
  ZSTD_DCtx* const dctx = zstd_contexts::decompressor();
  if (dctx == nullptr) {
    return error::out_of_mem;
  }
  out.resize(length);
  const std::size_t n =
      kind == compression_kind::dictionary
          ? ZSTD_decompress_usingDDict(dctx, out.data(), out.size(), stored.data() + head,
                                       stored.size() - head, dict->ddict())
          : ZSTD_decompressDCtx(dctx, out.data(), out.size(), stored.data() + head,
                                stored.size() - head);
  if (ZSTD_isError(n) != 0 || n != length) {
    return error::corrupted;
  }
  return error::ok;
}

// Trains a dictionary of at most dictionary_bytes_max bytes from `samples` (ZDICT's default
// parameters); empty when training fails (too few or too uniform samples, or no thread).
//
// ZDICT's trainer uses far more stack than a task has (its entropy tables are locals), so it
// runs on a thread of its own while the caller waits, blocking its shard as the reference's
// writing task does for the tens of milliseconds a 1.6 MB training takes, once per partition.
[[nodiscard]] inline std::string train_dictionary(const std::vector<std::string>& samples) {
  std::string joined;
  std::vector<std::size_t> sizes;
  sizes.reserve(samples.size());
  for (const std::string& s : samples) {
    joined.append(s);
    sizes.push_back(s.size());
  }
  std::string dict(dictionary_bytes_max, '\0');
  std::size_t n = 0;
  try {
    std::thread trainer([&] {
      n = ZDICT_trainFromBuffer(dict.data(), dict.size(), joined.data(), sizes.data(),
                                static_cast<unsigned>(sizes.size()));
    });
    trainer.join();
  } catch (const std::system_error&) {
    return {};
  }
  if (ZDICT_isError(n) != 0) {
    return {};
  }
  dict.resize(n);
  return dict;
}

// The values a partition without a dictionary gathers to train one (spec 10.1): upserted
// values of 100 B to 10 MiB, until dictionary_sample_bytes bytes and dictionary_samples_min
// values are held. A batch holding more than is still needed gives a random choice of its
// values, so one large batch does not sample only its first keys.
//
// Unlike the reference, a sample is at most the first dictionary_bytes_max bytes of its
// value, so the samples are always a hundred or more: ZDICT's trainer refuses a handful of
// large ones (fewer than 7), which would leave a partition whose first values are a few
// large ones without a dictionary. A failed training (not seen with that many samples, even
// all alike) starts sampling again.
class dictionary_sampler {
 public:
  // Samples `batch`; true once enough is held to train (ready()).
  bool offer(std::span<const write_entry> batch, std::uint64_t seed) {
    if (ready()) {
      return true;
    }
    std::vector<std::size_t> picks;
    std::size_t offered = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const std::size_t n = batch[i].value.size();
      if (batch[i].op == write_op::upsert && n >= compress_min_bytes && n <= dictionary_value_max) {
        picks.push_back(i);
        offered += std::min(n, dictionary_bytes_max);
      }
    }
    if (offered > dictionary_sample_bytes - bytes_) {
      std::mt19937_64 rng(seed);
      std::shuffle(picks.begin(), picks.end(), rng);
    }
    for (const std::size_t i : picks) {
      if (ready()) {
        break;
      }
      const std::string_view v = batch[i].value;
      samples_.emplace_back(v.substr(0, dictionary_bytes_max));
      bytes_ += samples_.back().size();
    }
    return ready();
  }

  [[nodiscard]] bool ready() const noexcept {
    return bytes_ >= dictionary_sample_bytes && samples_.size() >= dictionary_samples_min;
  }
  // Bytes held (the partition's memory accounting counts them).
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }

  // Trains from the samples and lets them go; empty when training fails.
  [[nodiscard]] std::string train() {
    std::string dict = train_dictionary(samples_);
    samples_ = {};
    bytes_ = 0;
    return dict;
  }

 private:
  std::vector<std::string> samples_;
  std::size_t bytes_ = 0;  // below dictionary_sample_bytes unless ready()
};

}  // namespace eloqstore::detail
