// The fuzz targets' view of their input: a cursor over the bytes libFuzzer hands over, from
// which a target draws the numbers and strings that make up a structured case. Drawing past
// the end yields zeros and empty strings, so every input, however short, is a whole case;
// libFuzzer's mutations then change the case's structure, not only its payload bytes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace eloqstore::fuzz {

class input {
 public:
  input(const std::uint8_t* data, std::size_t size) noexcept
      : p_(reinterpret_cast<const char*>(data)), n_(size) {}

  [[nodiscard]] bool empty() const noexcept { return n_ == 0; }
  [[nodiscard]] std::size_t remaining() const noexcept { return n_; }

  [[nodiscard]] std::uint8_t byte() noexcept {
    if (n_ == 0) {
      return 0;
    }
    --n_;
    return static_cast<std::uint8_t>(*p_++);
  }
  [[nodiscard]] bool flag() noexcept { return (byte() & 1) != 0; }

  // A number in [0, most], from as few bytes as `most` needs (little-endian).
  [[nodiscard]] std::uint64_t below_or(std::uint64_t most) noexcept {
    std::uint64_t v = 0;
    for (std::uint64_t span = most, shift = 0; span != 0; span >>= 8, shift += 8) {
      v |= std::uint64_t{byte()} << shift;
    }
    return most == UINT64_MAX ? v : v % (most + 1);
  }

  // Up to `most` bytes, as many as the input still has.
  [[nodiscard]] std::string_view bytes(std::size_t most) noexcept {
    const std::size_t k = std::min(most, n_);
    const std::string_view out(p_, k);
    p_ += k;
    n_ -= k;
    return out;
  }
  // A string whose length (up to `most`) is drawn first.
  [[nodiscard]] std::string text(std::size_t most) {
    return std::string(bytes(static_cast<std::size_t>(below_or(most))));
  }
  // Everything not drawn yet.
  [[nodiscard]] std::string_view rest() noexcept { return bytes(n_); }

 private:
  const char* p_;
  std::size_t n_;
};

// A broken property: print what broke and abort, which libFuzzer reports as a crash (and
// saves the input that caused it).
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz property violated: %s\n", what);
  std::abort();
}

}  // namespace eloqstore::fuzz

#define FUZZ_CHECK(cond)                                                  \
  do {                                                                    \
    if (!(cond)) {                                                        \
      ::eloqstore::fuzz::fail(#cond " (" __FILE__ ":" FUZZ_LINE_STR ")"); \
    }                                                                     \
  } while (false)
#define FUZZ_STR2(x) #x
#define FUZZ_STR(x) FUZZ_STR2(x)
#define FUZZ_LINE_STR FUZZ_STR(__LINE__)
