// Micro-benchmarks of the page formats (Google Benchmark): data page builds, point seeks and
// full iterations for 4 KiB pages with 16-byte and 100-byte keys, and checksum throughput.
//
// Usage: format_bench [--benchmark_min_time=1] [--benchmark_filter=seek] [--benchmark_format=json]
// Counters: entries per page, and entries/s or bytes/s where they mean something.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <eloqstore/comparator.hpp>
#include <eloqstore/detail/codec/checksum.hpp>
#include <eloqstore/detail/page/data_page.hpp>

namespace {

using namespace eloqstore;
using namespace eloqstore::detail;

constexpr std::size_t page_size = 4096;
constexpr std::size_t value_bytes = 32;
constexpr std::size_t restart_interval = 16;

std::vector<std::string> sorted_keys(std::size_t key_bytes, std::size_t count) {
  std::mt19937_64 g(key_bytes);
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

// A full data page of `key_bytes` keys: its bytes and how many entries it holds.
struct built_page {
  std::vector<std::string> keys;
  std::vector<char> bytes;
  std::size_t entries = 0;
};

std::size_t fill(data_page_builder& b, const std::vector<std::string>& keys,
                 const std::string& value) {
  b.reset();
  std::size_t n = 0;
  for (const auto& k : keys) {
    if (!b.add(k, value, 1700000000000000 + n)) {
      break;
    }
    ++n;
  }
  return n;
}

built_page make_page(std::size_t key_bytes) {
  built_page p;
  p.keys = sorted_keys(key_bytes, 200);
  data_page_builder b(page_size, restart_interval);
  p.entries = fill(b, p.keys, std::string(value_bytes, 'v'));
  const std::span<char> page = b.finish();
  set_page_checksum(page);
  p.bytes.assign(page.begin(), page.end());
  return p;
}

void page_build(benchmark::State& state) {
  const auto key_bytes = static_cast<std::size_t>(state.range(0));
  const std::vector<std::string> keys = sorted_keys(key_bytes, 200);
  const std::string value(value_bytes, 'v');
  data_page_builder b(page_size, restart_interval);
  std::size_t entries = 0;
  for (auto _ : state) {
    entries = fill(b, keys, value);
    const std::span<char> page = b.finish();
    set_page_checksum(page);
    benchmark::DoNotOptimize(page.data());
  }
  state.counters["entries/page"] = static_cast<double>(entries);
  state.counters["entries/s"] = benchmark::Counter(static_cast<double>(entries),
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

void page_seek(benchmark::State& state) {
  const built_page p = make_page(static_cast<std::size_t>(state.range(0)));
  data_page view;
  if (data_page::open(p.bytes, view) != error::ok) {
    state.SkipWithError("the page did not open");
    return;
  }
  const bytewise_comparator cmp;
  std::size_t q = 0;
  for (auto _ : state) {
    data_page_iter it(view);
    it.seek(p.keys[(q++ * 7) % p.entries], cmp);
    benchmark::DoNotOptimize(it.timestamp());
  }
  state.counters["entries/page"] = static_cast<double>(p.entries);
}

void page_iterate(benchmark::State& state) {
  const built_page p = make_page(static_cast<std::size_t>(state.range(0)));
  data_page view;
  if (data_page::open(p.bytes, view) != error::ok) {
    state.SkipWithError("the page did not open");
    return;
  }
  for (auto _ : state) {
    data_page_iter it(view);
    std::uint64_t n = 0;
    for (it.seek_to_first(); it.valid(); it.next()) {
      n += it.value().size();
    }
    benchmark::DoNotOptimize(n);
  }
  state.counters["entries/page"] = static_cast<double>(p.entries);
  state.counters["entries/s"] = benchmark::Counter(static_cast<double>(p.entries),
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

void page_checksum(benchmark::State& state) {
  std::vector<char> page(page_size, 'x');
  for (auto _ : state) {
    page[100] = static_cast<char>(page[100] + 1);
    benchmark::DoNotOptimize(compute_page_checksum(page));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * page_size));
}

void manifest_checksum_64mib(benchmark::State& state) {
  const std::string big(std::size_t{64} << 20, 'm');
  for (auto _ : state) {
    benchmark::DoNotOptimize(manifest_checksum(big));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * big.size()));
}

BENCHMARK(page_build)->Arg(16)->Arg(100);
BENCHMARK(page_seek)->Arg(16)->Arg(100);
BENCHMARK(page_iterate)->Arg(16)->Arg(100);
BENCHMARK(page_checksum);
BENCHMARK(manifest_checksum_64mib)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
