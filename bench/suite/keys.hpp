// Keys, values and request distributions of the workloads.
//
// Two key spaces:
//   db_keys    db_bench style: record i is the hex of i, zero-padded to key_size bytes, so key
//              order is record order (fillseq writes in key order, readseq reads in it).
//   ycsb_keys  YCSB style: record i is "user" + 16 hex digits of fnvhash64(i) (YCSB's hashed
//              insert order, fixed width so byte order is hash order), padded with '0' to
//              key_size bytes.
// Distributions follow YCSB's generators exactly where the workloads name them: the
// scrambled zipfian (constant 0.99 over 10^10 items, then fnvhash64 mod the record count)
// and skewed-latest (the newest record minus a zipfian offset).
//
// Thread affinity: generators are per thread; nothing here is shared.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

// xoshiro256** seeded through splitmix64: fast, and good enough for request streams.
class rng {
 public:
  explicit rng(std::uint64_t seed) noexcept {
    for (auto& s : s_) {
      seed += 0x9e3779b97f4a7c15ULL;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      s = z ^ (z >> 31);
    }
  }
  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, n). REQUIRES: n > 0.
  std::uint64_t below(std::uint64_t n) noexcept {
    __extension__ using u128 = unsigned __int128;  // Lemire's multiply-shift, no division
    return static_cast<std::uint64_t>((static_cast<u128>(next()) * n) >> 64);
  }
  // Uniform in [0, 1).
  double unit() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4]{};
};

// YCSB's Utils.fnvhash64: FNV-1a over the 8 bytes of `v`, low byte first, made non-negative.
inline std::uint64_t fnvhash64(std::uint64_t v) noexcept {
  std::uint64_t h = 0xCBF29CE484222325ULL;
  for (int i = 0; i < 8; ++i) {
    h ^= v & 0xff;
    h *= 1099511628211ULL;
    v >>= 8;
  }
  const auto s = static_cast<std::int64_t>(h);
  return s < 0 ? static_cast<std::uint64_t>(-(s + 1)) + 1 : static_cast<std::uint64_t>(s);
}

inline void put_hex(char* out, std::size_t digits, std::uint64_t v) noexcept {
  static constexpr char hex[] = "0123456789abcdef";
  for (std::size_t i = digits; i > 0; --i) {
    out[i - 1] = hex[v & 0xf];
    v >>= 4;
  }
}

enum class key_space { db, ycsb };

// Formats record ids as keys of one key space into a reusable buffer.
class key_format {
 public:
  static constexpr std::size_t ycsb_prefix_bytes = 4;  // "user"
  static constexpr std::size_t hash_digits = 16;

  key_format(key_space space, std::size_t key_size) : space_(space), buf_(key_size, '0') {
    if (space_ == key_space::ycsb) {
      buf_.resize(std::max(key_size, ycsb_prefix_bytes + hash_digits), '0');
      buf_.replace(0, ycsb_prefix_bytes, "user");
    }
  }

  // The key of record `id`; valid until the next call.
  std::string_view operator()(std::uint64_t id) noexcept {
    if (space_ == key_space::ycsb) {
      put_hex(buf_.data() + ycsb_prefix_bytes, hash_digits, fnvhash64(id));
    } else {
      const std::size_t digits = std::min(buf_.size(), hash_digits);
      put_hex(buf_.data() + buf_.size() - digits, digits, id);
    }
    return buf_;
  }

  [[nodiscard]] std::size_t size() const noexcept { return buf_.size(); }

  // parts - 1 sorted keys that cut the space into parts of equal expected traffic, for a
  // data set of `records` records.
  [[nodiscard]] std::vector<std::string> split_keys(std::size_t parts, std::uint64_t records) {
    std::vector<std::string> out;
    for (std::size_t i = 1; i < parts; ++i) {
      if (space_ == key_space::ycsb) {
        // fnvhash64 is uniform over [0, 2^63).
        const std::uint64_t h = (std::uint64_t{1} << 63) / parts * i;
        std::string k = buf_;
        put_hex(k.data() + ycsb_prefix_bytes, hash_digits, h);
        out.push_back(std::move(k));
      } else {
        out.emplace_back((*this)(records / parts * i));
      }
    }
    return out;
  }

 private:
  key_space space_;
  std::string buf_;
};

// Random value bytes: a buffer of incompressible bytes, values are windows into it (as
// db_bench's RandomGenerator does), so producing a value costs nothing.
class value_source {
 public:
  static constexpr std::size_t pool_bytes = std::size_t{1} << 20;

  value_source(std::size_t value_size, std::uint64_t seed) : size_(value_size) {
    rng r(seed);
    pool_.resize(pool_bytes + value_size);
    for (char& c : pool_) {
      c = static_cast<char>(r.next() >> 56);
    }
  }
  std::string_view next(rng& r) const noexcept {
    return {pool_.data() + r.below(pool_bytes), size_};
  }

 private:
  std::size_t size_;
  std::string pool_;
};

// YCSB's ZipfianGenerator over [0, items): P(i) proportional to 1 / (i + 1)^theta.
class zipfian {
 public:
  static constexpr double ycsb_constant = 0.99;

  // Computes zeta(items, theta): O(items) once.
  zipfian(std::uint64_t items, double theta = ycsb_constant)
      : zipfian(items, theta, zeta(items, theta)) {}

  zipfian(std::uint64_t items, double theta, double zetan)
      : items_(items), theta_(theta), zetan_(zetan) {
    alpha_ = 1.0 / (1.0 - theta_);
    const double zeta2 = zeta(2, theta_);
    eta_ = (1 - std::pow(2.0 / static_cast<double>(items_), 1 - theta_)) / (1 - zeta2 / zetan_);
    half_pow_theta_ = 1.0 + std::pow(0.5, theta_);
  }

  std::uint64_t next(rng& r) const noexcept {
    const double u = r.unit();
    const double uz = u * zetan_;
    if (uz < 1.0) {
      return 0;
    }
    if (uz < half_pow_theta_) {
      return 1;
    }
    const auto v = static_cast<std::uint64_t>(static_cast<double>(items_) *
                                              std::pow(eta_ * u - eta_ + 1, alpha_));
    return std::min(v, items_ - 1);
  }

  static double zeta(std::uint64_t n, double theta) noexcept {
    double sum = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
      sum += 1 / std::pow(static_cast<double>(i + 1), theta);
    }
    return sum;
  }

 private:
  std::uint64_t items_;
  double theta_;
  double zetan_;
  double alpha_ = 0;
  double eta_ = 0;
  double half_pow_theta_ = 0;
};

// YCSB's ScrambledZipfianGenerator: a zipfian over 10^10 items (zeta precomputed by YCSB),
// hashed onto [0, records), so the popular records are scattered over the key space.
class scrambled_zipfian {
 public:
  static constexpr std::uint64_t item_count = 10000000000ULL;
  static constexpr double zetan = 26.46902820178302;  // YCSB's ZETAN for 10^10 items, 0.99

  explicit scrambled_zipfian(std::uint64_t records)
      : records_(records), gen_(item_count, zipfian::ycsb_constant, zetan) {}
  std::uint64_t next(rng& r) const noexcept { return fnvhash64(gen_.next(r)) % records_; }

 private:
  std::uint64_t records_;
  zipfian gen_;
};

}  // namespace bench
