// Micro-benchmark of the page formats: page builds, point seeks and full iterations per second
// for 4 KiB data pages with 16-byte and 100-byte keys, and checksum throughput.
//
// Usage: format_bench [seconds_per_case=1]
// Prints one line per case: name, operations per second (or GB/s), and the work per operation.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <eloqstore/comparator.hpp>
#include <eloqstore/detail/codec/checksum.hpp>
#include <eloqstore/detail/page/data_page.hpp>

namespace {

using namespace eloqstore;
using namespace eloqstore::detail;
using bench_clock = std::chrono::steady_clock;

constexpr std::size_t page_size = 4096;
constexpr std::size_t value_bytes = 32;

volatile std::uint64_t sink;  // keeps results alive past the optimizer

// Runs `op` repeatedly for about `seconds`; returns operations per second.
template <typename Op>
double rate(double seconds, Op&& op) {
  const auto start = bench_clock::now();
  std::uint64_t ops = 0;
  double elapsed = 0;
  do {
    for (int i = 0; i < 64; ++i) {
      op();
    }
    ops += 64;
    elapsed = std::chrono::duration<double>(bench_clock::now() - start).count();
  } while (elapsed < seconds);
  return static_cast<double>(ops) / elapsed;
}

std::vector<std::string> sorted_keys(std::size_t key_bytes, std::size_t count, std::mt19937_64& g) {
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < count; ++i) {
    std::string k(key_bytes, 'k');
    // A common prefix then a big-endian counter, as typical composite keys look.
    for (std::size_t b = 0; b < 8 && b < key_bytes; ++b) {
      k[key_bytes - 1 - b] = static_cast<char>((i * 2654435761u + g() % 3) >> (8 * b));
    }
    keys.push_back(std::move(k));
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

void bench_pages(std::size_t key_bytes, double seconds) {
  std::mt19937_64 g(key_bytes);
  const std::vector<std::string> keys = sorted_keys(key_bytes, 200, g);
  const std::string value(value_bytes, 'v');
  data_page_builder b(page_size, 16);
  std::size_t per_page = 0;
  std::span<char> last;
  auto build = [&] {
    b.reset();
    per_page = 0;
    for (const auto& k : keys) {
      if (!b.add(k, value, 1700000000000000 + per_page)) {
        break;
      }
      ++per_page;
    }
    last = b.finish();
    set_page_checksum(last);
    sink = sink + static_cast<std::uint64_t>(last[20]);
  };
  const double builds = rate(seconds, build);
  build();
  const std::vector<char> page(last.begin(), last.end());
  data_page view;
  if (data_page::open(page, view) != error::ok) {
    std::fprintf(stderr, "bench page did not open\n");
    std::exit(1);
  }
  const bytewise_comparator cmp;
  std::size_t q = 0;
  const double seeks = rate(seconds, [&] {
    data_page_iter it(view);
    it.seek(keys[(q++ * 7) % per_page], cmp);
    sink = sink + it.timestamp();
  });
  const double scans = rate(seconds, [&] {
    data_page_iter it(view);
    std::uint64_t n = 0;
    for (it.seek_to_first(); it.valid(); it.next()) {
      n += it.value().size();
    }
    sink = sink + n;
  });
  std::printf("key %3zu B, value %zu B: %zu entries/page\n", key_bytes, value_bytes, per_page);
  std::printf("  page build (+checksum)  %12.0f pages/s  %12.0f entries/s\n", builds,
              builds * static_cast<double>(per_page));
  std::printf("  point seek              %12.0f seeks/s\n", seeks);
  std::printf("  full iteration          %12.0f pages/s  %12.0f entries/s\n", scans,
              scans * static_cast<double>(per_page));
}

void bench_checksums(double seconds) {
  std::vector<char> page(page_size, 'x');
  const double pages = rate(seconds, [&] {
    page[100] = static_cast<char>(sink);
    sink = sink + compute_page_checksum(page);
  });
  std::printf("page checksum (XXH3-64)   %12.2f GB/s\n", pages * page_size / 1e9);
  const std::string big(std::size_t{64} << 20, 'm');
  const double manifests = rate(seconds, [&] { sink = sink + manifest_checksum(big); });
  std::printf("manifest checksum (64 MiB chunked) %5.2f GB/s\n", manifests * big.size() / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  std::printf("eloqstore format_bench: 4 KiB pages, restart interval 16, %.2f s per case\n",
              seconds);
  bench_pages(16, seconds);
  bench_pages(100, seconds);
  bench_checksums(seconds);
  return 0;
}
