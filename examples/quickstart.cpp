// quickstart: the first program to read.
//
// Opens a store in a local directory, writes a million keys in batches (each batch durable
// when write() returns), reads some back, scans them all, stops the store, reopens it and
// verifies every key, printing what it did with throughput figures.
//
// Usage: quickstart [directory=./eloqstore-data] [keys=1000000] [value_bytes=100]
// (arguments are checked: `quickstart DIR abc` is refused and writes nothing)
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <range/v3/algorithm/for_each.hpp>

#include <eloqstore/default_store.hpp>  // (EloqStore<default_traits> compiled in the library)

namespace {

using bench_clock = std::chrono::steady_clock;

double seconds_since(bench_clock::time_point start) {
  return std::chrono::duration<double>(bench_clock::now() - start).count();
}

std::string key_of(std::uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "user%012llu", static_cast<unsigned long long>(i));
  return buf;
}

std::string value_of(std::uint64_t i, std::size_t bytes) {
  std::string v = std::to_string(i * 2654435761u);
  v.resize(bytes, static_cast<char>('a' + i % 26));
  return v;
}

// Reads every key back through a full scan; returns how many matched.
template <typename Store>
std::uint64_t verify_all(Store& store, const eloqstore::table_ident& t, std::uint64_t keys,
                         std::size_t value_bytes) {
  std::uint64_t next = 0;
  std::uint64_t good = 0;
  ranges::for_each(store.scan(t, {}, {}, 2000), [&](const eloqstore::kv_entry& e) {
    good += e.key == key_of(next) && e.value == value_of(next, value_bytes) ? 1 : 0;
    ++next;
  });
  return next == keys ? good : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "./eloqstore-data";
  std::uint64_t keys = 1000000;
  std::size_t value_bytes = 100;
  CLI::App app{"quickstart: write, read, scan and reopen a store in a local directory"};
  app.add_option("directory", dir, "the store's directory (created if missing)");
  app.add_option("keys", keys, "keys to write")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32));
  app.add_option("value_bytes", value_bytes, "bytes per value")->check(CLI::Range(1, 1 << 20));
  CLI11_PARSE(app, argc, argv);
  constexpr std::uint64_t batch_keys = 10000;

  eloqstore::options opts;
  opts.store_path = {dir};
  opts.num_threads = 1;
  const eloqstore::table_ident table{"quickstart", 0};

  eloqstore::EloqStore<eloqstore::default_traits> store(opts);
  if (const auto e = store.start(); e != eloqstore::error::ok) {
    std::fprintf(stderr, "start failed: %s (%s)\n",
                 std::string(eloqstore::error_message(e)).c_str(), store.last_message().c_str());
    return 1;
  }
  if (const auto e = store.truncate(table); e != eloqstore::error::ok) {
    std::fprintf(stderr, "truncate failed: %s\n", std::string(eloqstore::error_message(e)).c_str());
    return 1;
  }

  // 1. Load in batches; each write() is durable when it returns.
  auto start = bench_clock::now();
  for (std::uint64_t first = 0; first < keys; first += batch_keys) {
    std::vector<eloqstore::write_entry> batch;
    for (std::uint64_t i = first; i < std::min(keys, first + batch_keys); ++i) {
      batch.push_back({key_of(i), value_of(i, value_bytes), 1, eloqstore::write_op::upsert, 0});
    }
    if (const auto e = store.write(table, std::move(batch)); e != eloqstore::error::ok) {
      std::fprintf(stderr, "write failed: %s\n", std::string(eloqstore::error_message(e)).c_str());
      return 1;
    }
  }
  double s = seconds_since(start);
  const double mb = static_cast<double>(keys * (16 + value_bytes)) / 1e6;
  std::printf("wrote %llu keys (%.1f MB) in batches of %llu: %.2f s, %.0f keys/s, %.1f MB/s\n",
              static_cast<unsigned long long>(keys), mb,
              static_cast<unsigned long long>(batch_keys), s, static_cast<double>(keys) / s,
              mb / s);

  // 2. Point reads of a sample.
  start = bench_clock::now();
  std::uint64_t found = 0;
  const std::uint64_t reads = std::min<std::uint64_t>(keys, 100000);
  for (std::uint64_t n = 0; n < reads; ++n) {
    const std::uint64_t i = (n * 7919) % keys;
    const auto r = store.get(table, key_of(i));
    found += r.ok() && r->value == value_of(i, value_bytes) ? 1 : 0;
  }
  s = seconds_since(start);
  std::printf("read %llu random keys: %llu found, %.0f reads/s\n",
              static_cast<unsigned long long>(reads), static_cast<unsigned long long>(found),
              static_cast<double>(reads) / s);

  // 3. Full scan.
  start = bench_clock::now();
  const std::uint64_t scanned = verify_all(store, table, keys, value_bytes);
  s = seconds_since(start);
  std::printf("scanned %llu keys in order: %.0f entries/s\n",
              static_cast<unsigned long long>(scanned), static_cast<double>(scanned) / s);
  store.stop();

  // 4. Reopen and verify everything survived.
  eloqstore::EloqStore<eloqstore::default_traits> reopened(opts);
  if (reopened.start() != eloqstore::error::ok) {
    std::fprintf(stderr, "reopen failed\n");
    return 1;
  }
  start = bench_clock::now();
  const std::uint64_t after = verify_all(reopened, table, keys, value_bytes);
  std::printf("reopened %s and verified %llu/%llu keys in %.2f s\n", dir.c_str(),
              static_cast<unsigned long long>(after), static_cast<unsigned long long>(keys),
              seconds_since(start));
  reopened.stop();
  const bool ok = found == reads && scanned == keys && after == keys;
  std::printf("%s\n", ok ? "OK" : "MISMATCH");
  return ok ? 0 : 1;
}
