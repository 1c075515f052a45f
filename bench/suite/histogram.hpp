// A log-linear latency histogram (HdrHistogram's layout, 64 sub-buckets per power of two, so a
// recorded value is known to within 1/64 = 1.6%), and the summary the report prints.
//
// Thread affinity: none; each client thread records into its own histogram and the driver
// merges them after the threads are joined.
#pragma once

#include <array>
#include <bit>
#include <cstdint>

namespace bench {

struct latency_summary {
  std::uint64_t count = 0;
  double mean_us = 0;
  double p50_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  double max_us = 0;
};

class histogram {
 public:
  static constexpr unsigned sub_bits = 6;
  static constexpr std::uint64_t sub_count = std::uint64_t{1} << sub_bits;  // 64
  // Values below 2 * sub_count are exact; above, each power of two has sub_count buckets.
  static constexpr std::size_t bucket_count = 2 * sub_count + (64 - sub_bits - 1) * sub_count;

  void record(std::uint64_t ns) noexcept {
    ++buckets_[index_of(ns)];
    ++count_;
    sum_ns_ += ns;
    max_ns_ = ns > max_ns_ ? ns : max_ns_;
  }

  void merge(const histogram& o) noexcept {
    for (std::size_t i = 0; i < bucket_count; ++i) {
      buckets_[i] += o.buckets_[i];
    }
    count_ += o.count_;
    sum_ns_ += o.sum_ns_;
    max_ns_ = o.max_ns_ > max_ns_ ? o.max_ns_ : max_ns_;
  }

  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }

  // The value at quantile q (0 < q <= 1), as the midpoint of its bucket, in nanoseconds.
  [[nodiscard]] double quantile_ns(double q) const noexcept {
    if (count_ == 0) {
      return 0;
    }
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count_) + 0.5);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < bucket_count; ++i) {
      seen += buckets_[i];
      if (seen >= (rank == 0 ? 1 : rank)) {
        return midpoint_of(i);
      }
    }
    return static_cast<double>(max_ns_);
  }

  [[nodiscard]] latency_summary summary() const noexcept {
    latency_summary s;
    s.count = count_;
    if (count_ == 0) {
      return s;
    }
    s.mean_us = static_cast<double>(sum_ns_) / static_cast<double>(count_) / 1e3;
    s.p50_us = quantile_ns(0.50) / 1e3;
    s.p99_us = quantile_ns(0.99) / 1e3;
    s.p999_us = quantile_ns(0.999) / 1e3;
    s.max_us = static_cast<double>(max_ns_) / 1e3;
    return s;
  }

 private:
  static std::size_t index_of(std::uint64_t v) noexcept {
    if (v < 2 * sub_count) {
      return static_cast<std::size_t>(v);
    }
    const unsigned msb = 63U - static_cast<unsigned>(std::countl_zero(v));  // >= sub_bits + 1
    const unsigned shift = msb - sub_bits;
    return static_cast<std::size_t>(2 * sub_count + (msb - sub_bits - 1) * sub_count +
                                    ((v >> shift) - sub_count));
  }

  static double midpoint_of(std::size_t i) noexcept {
    if (i < 2 * sub_count) {
      return static_cast<double>(i);
    }
    const std::size_t k = i - 2 * sub_count;
    const unsigned shift = static_cast<unsigned>(k / sub_count) + 1;
    const std::uint64_t low = (sub_count + k % sub_count) << shift;
    return static_cast<double>(low) + static_cast<double>(std::uint64_t{1} << shift) / 2.0;
  }

  std::array<std::uint64_t, bucket_count> buckets_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_ns_ = 0;
  std::uint64_t max_ns_ = 0;
};

}  // namespace bench
