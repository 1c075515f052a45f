// Test support: a seeded random source and an in-memory page store for overflow chains.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/detail/util/strong_id.hpp>
#include <eloqstore/error.hpp>

namespace eloqstore::test {

class rng {
 public:
  explicit rng(std::uint64_t seed) : gen_(seed) {}
  std::uint64_t uniform(std::uint64_t lo, std::uint64_t hi) {  // inclusive
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(gen_);
  }
  bool chance(double p) { return std::bernoulli_distribution(p)(gen_); }
  std::string bytes(std::size_t n, int alphabet = 256) {
    std::string s(n, '\0');
    for (auto& c : s) {
      c = static_cast<char>(uniform(0, static_cast<std::uint64_t>(alphabet - 1)));
    }
    return s;
  }
  std::mt19937_64& engine() { return gen_; }

 private:
  std::mt19937_64 gen_;
};

// Logical page id -> page bytes; stands in for the mapping + files in overflow tests.
struct page_store {
  std::map<std::uint32_t, std::vector<char>> pages;
  std::uint32_t next_id = 0;

  detail::page_id alloc() { return detail::page_id(next_id++); }
  error write(detail::page_id id, std::span<const char> page) {
    pages[id.value()].assign(page.begin(), page.end());
    return error::ok;
  }
  error read(detail::page_id id, std::span<const char>& out) const {
    const auto it = pages.find(id.value());
    if (it == pages.end()) {
      return error::not_found;
    }
    out = it->second;
    return error::ok;
  }
};

}  // namespace eloqstore::test

// Lets doctest print strong ids in failed assertions.
namespace doctest {
template <typename Tag, typename Rep>
struct StringMaker<eloqstore::detail::strong_id<Tag, Rep>> {
  static String convert(eloqstore::detail::strong_id<Tag, Rep> id) {
    return id.is_none() ? String("none") : String(std::to_string(id.value()).c_str());
  }
};
}  // namespace doctest
