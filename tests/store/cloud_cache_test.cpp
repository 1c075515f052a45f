// Cloud mode's bounded local cache (io/cloud.hpp, detail/cloud/local_cache.hpp): a budget
// of a few files that the cache directory never exceeds (its real sizes checked, over
// memory_io and over uring_io on a real directory), readers of files being evicted, files
// that cannot be evicted, a cache adopted at start (allow_reuse_local_caches), and prewarm.
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/io/cloud.hpp>
#include <eloqstore/object/memory.hpp>

#include "support/object_listing.hpp"
#include "support/page_store.hpp"
#include "support/store_fixture.hpp"

using namespace eloqstore;

namespace {

// Cloud mode over uring_io on a real directory (fibers), with the bucket in memory.
struct cloud_uring_traits : default_traits {
  using io_type = cloud_io<uring_io, memory_object_store>;
  static std::unique_ptr<io_type> make_io(const options&) { return nullptr; }
};

// Small geometry: 128 KiB data files, 32 KiB manifests (charged at their limit).
options cache_options(std::uint64_t files_in_budget) {
  options o;
  o.num_threads = 1;
  o.coroutine_stack_size = test::test_stack_bytes();
  o.cloud_store_path = "bucket/prefix";
  o.data_append_mode = true;
  o.pages_per_file_shift = test::append_test_pages_per_file_shift;
  o.manifest_limit = 32 * 1024;
  o.local_space_limit = files_in_budget * o.data_file_size();
  o.reserve_space_ratio = 4;  // evict in batches of a quarter of the budget
  return o;
}

// The bytes a memory cache holds: the sum of its files' sizes. (Background work of the shard
// may remove a file between the listing and its read.)
std::uint64_t cache_bytes(memory_io& io) {
  std::uint64_t total = 0;
  std::vector<table_ident> parts;
  if (io.list_partitions(parts) != error::ok) {
    return 0;
  }
  for (const table_ident& t : parts) {
    std::vector<std::string> names;
    if (io.list(t, names) != error::ok) {
      continue;
    }
    for (const std::string& n : names) {
      std::string body;
      const error e = io.read_file(t, n, body);
      REQUIRE((e == error::ok || e == error::not_found));
      total += body.size();
    }
  }
  return total;
}

// The bytes the partition directories of a cache take on disk: every file's allocated blocks
// (what fallocate reserved counts too), or its size when larger. (The store's own files, in
// .eloqstore/, are not cache.)
std::uint64_t cache_bytes(const std::string& dir) {
  std::uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    const std::string parent = e.path().parent_path().filename().string();
    if (e.is_regular_file(ec) && table_ident::parse(parent).has_value()) {
      struct stat st {};
      if (::stat(e.path().c_str(), &st) != 0) {
        continue;  // removed meanwhile
      }
      total += std::max<std::uint64_t>(static_cast<std::uint64_t>(st.st_blocks) * 512,
                                       static_cast<std::uint64_t>(st.st_size));
    }
  }
  return total;
}

template <typename Store>
void write_rounds(Store& s, test::rng& r, int rounds, int partitions,
                  std::map<std::pair<int, std::string>, std::string>& model,
                  const std::function<void()>& after_each) {
  for (int i = 0; i < rounds; ++i) {
    const int part = static_cast<int>(r.uniform(0, partitions - 1));
    std::map<std::string, std::string> kv;
    for (int j = 0; j < 24; ++j) {
      kv["k" + std::to_string(r.uniform(0, 600))] = r.bytes(r.uniform(200, 3000), 26);
    }
    std::vector<write_entry> b;
    for (auto& [k, v] : kv) {
      model[{part, k}] = v;
      b.push_back(write_entry{k, v, 1, write_op::upsert, 0});
    }
    REQUIRE(s.write(table_ident{"tbl", static_cast<std::uint32_t>(part)}, b) == error::ok);
    after_each();
  }
}

template <typename Store>
void check_all(Store& s, const std::map<std::pair<int, std::string>, std::string>& model,
               const std::function<void()>& after_each) {
  for (const auto& [key, v] : model) {
    const auto got = s.get(table_ident{"tbl", static_cast<std::uint32_t>(key.first)}, key.second);
    REQUIRE(got.ok());
    CHECK(got->value == v);
    after_each();
  }
}

}  // namespace

TEST_CASE("cloud cache: a budget of a few files is never exceeded (memory_io)") {
  using cache_type = test::cloud_memory_traits::io_type;
  auto bucket = std::make_shared<memory_object_store>();
  options o = cache_options(6);
  o.store_path = {"/cache"};
  cache_type cache(bucket, "prefix");
  EloqStore<test::cloud_memory_traits> store(o, cache);
  REQUIRE(store.start(1) == error::ok);
  test::rng r(21);
  std::map<std::pair<int, std::string>, std::string> model;
  const std::uint64_t limit = o.local_space_limit;
  std::uint64_t peak = 0;
  const auto bounded = [&] {
    const std::uint64_t now = cache_bytes(cache.local());
    peak = std::max(peak, now);
    REQUIRE(now <= limit);
    REQUIRE(cache.cache_used().used <= limit);
  };
  write_rounds(store, r, 120, 4, model, bounded);
  check_all(store, model, bounded);
  const auto used = cache.cache_used();
  MESSAGE("peak " << peak << " of " << limit << " bytes; " << used.evictions << " evictions, "
                  << bucket->stats().gets << " GETs");
  CHECK(used.evictions > 0);
  CHECK(bucket->stats().gets > 0);
  store.stop();

  // Everything again from a fresh empty cache (another node), under the same budget.
  cache_type fresh(bucket, "prefix");
  EloqStore<test::cloud_memory_traits> again(o, fresh);
  REQUIRE(again.start(1) == error::ok);
  check_all(again, model, [&] { REQUIRE(cache_bytes(fresh.local()) <= limit); });
  again.stop();
}

TEST_CASE("cloud cache: readers of evicted files get their values (uring_io, fibers)") {
  const std::string dir = test::fresh_temp_dir("cloud-cache");
  auto bucket = std::make_shared<memory_object_store>();
  options o = cache_options(5);
  o.store_path = {dir};
  std::map<std::pair<int, std::string>, std::string> model;
  const std::uint64_t limit = o.local_space_limit;
  {
    cloud_uring_traits::io_type cache(bucket, "prefix", o.store_path,
                                      default_traits::uring_config(o));
    EloqStore<cloud_uring_traits> store(o, cache);
    REQUIRE(store.start(1) == error::ok);
    test::rng r(22);
    write_rounds(store, r, 80, 3, model, [&] { REQUIRE(cache_bytes(dir) <= limit); });

    // Four client threads read at random at once: their reads are tasks of the one shard,
    // parked on their I/O while others evict the files they read.
    std::vector<std::pair<int, std::string>> keys;
    for (const auto& [k, v] : model) {
      keys.push_back(k);
    }
    std::atomic<int> wrong{0};
    std::vector<std::thread> readers;
    for (int i = 0; i < 4; ++i) {
      readers.emplace_back([&, i] {
        test::rng rr(100 + i);
        for (int j = 0; j < 400; ++j) {
          const auto& k = keys[rr.uniform(0, keys.size() - 1)];
          const auto got =
              store.get(table_ident{"tbl", static_cast<std::uint32_t>(k.first)}, k.second);
          if (!got.ok() || got->value != model.at(k)) {
            ++wrong;
          }
        }
      });
    }
    for (auto& t : readers) {
      t.join();
    }
    CHECK(wrong.load() == 0);
    CHECK(cache_bytes(dir) <= limit);
    CHECK(cache.cache_used().evictions > 0);
    store.stop();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_CASE("cloud cache: a cache directory is adopted only when allowed, then trimmed") {
  const std::string dir = test::fresh_temp_dir("cloud-reuse");
  auto bucket = std::make_shared<memory_object_store>();
  options o = cache_options(8);
  o.store_path = {dir};
  std::map<std::pair<int, std::string>, std::string> model;
  const auto make_cache = [&](const options& opts) {
    return std::make_unique<cloud_uring_traits::io_type>(bucket, "prefix", opts.store_path,
                                                         default_traits::uring_config(opts));
  };
  {
    auto cache = make_cache(o);
    EloqStore<cloud_uring_traits> store(o, *cache);
    REQUIRE(store.start(1) == error::ok);
    test::rng r(23);
    write_rounds(store, r, 40, 2, model, [] {});
    store.stop();
  }
  REQUIRE(cache_bytes(dir) > 0);
  // An interrupted download left behind.
  const std::string stale = dir + "/tbl.0/data_99_1.tmp";
  std::ofstream(stale) << "partial";

  {
    // Not allowed: a non-empty cache is refused, and left as it is.
    auto cache = make_cache(o);
    EloqStore<cloud_uring_traits> store(o, *cache);
    CHECK(store.start(1) == error::invalid_args);
    CHECK(std::filesystem::exists(stale));
  }
  {
    // Allowed, with a smaller budget: the cache is trimmed to it at start, the temporary file
    // goes, and the files kept serve reads without a GET.
    options small = o;
    small.allow_reuse_local_caches = true;
    small.local_space_limit = 3 * o.data_file_size();
    auto cache = make_cache(small);
    EloqStore<cloud_uring_traits> store(small, *cache);
    REQUIRE(store.start(1) == error::ok);
    CHECK_FALSE(std::filesystem::exists(stale));
    CHECK(cache_bytes(dir) <= small.local_space_limit);
    CHECK(cache->cache_used().files > 0);
    check_all(store, model, [&] { REQUIRE(cache_bytes(dir) <= small.local_space_limit); });
    store.stop();
  }
  {
    // Allowed with room for everything: a second read pass asks the bucket for nothing.
    options roomy = o;
    roomy.allow_reuse_local_caches = true;
    roomy.local_space_limit = 64 * o.data_file_size();
    auto cache = make_cache(roomy);
    EloqStore<cloud_uring_traits> store(roomy, *cache);
    REQUIRE(store.start(1) == error::ok);
    check_all(store, model, [] {});
    const auto gets = bucket->stats().gets;
    check_all(store, model, [] {});
    CHECK(bucket->stats().gets == gets);
    store.stop();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_CASE("cloud cache: files not yet uploaded are never evicted; out_of_space instead") {
  using cache_type = test::cloud_memory_traits::io_type;
  auto bucket = std::make_shared<memory_object_store>();
  options o = cache_options(2);
  cache_type cache(bucket, "prefix");
  cache.configure_cache(o);
  REQUIRE(cache.open() == error::ok);
  const table_ident t{"tbl", 0};
  // Claim the partition (a new one: no manifest anywhere).
  std::string manifest;
  REQUIRE(cache.read_file(t, "manifest_1", manifest) == error::not_found);

  const std::string page(4096, 'x');
  REQUIRE(cache.write(t, "data_0_1", 0, page) == error::ok);
  REQUIRE(cache.write(t, "data_1_1", 0, page) == error::ok);
  // Two dirty files fill the budget: a third cannot be placed, and nothing changed.
  CHECK(cache.write(t, "data_2_1", 0, page) == error::out_of_space);
  std::vector<std::string> names;
  REQUIRE(cache.local().list(t, names) == error::ok);
  CHECK(names == std::vector<std::string>{"data_0_1", "data_1_1"});
  CHECK(bucket->stats().puts == 0 + 1);  // CURRENT_TERM only

  // A sync keeps them dirty (the upload goes with the manifest's); once uploaded (a flush),
  // they may go to make room (down to the low mark), and come back on a read.
  REQUIRE(cache.sync(t, "data_0_1") == error::ok);
  CHECK(cache.write(t, "data_2_1", 0, page) == error::out_of_space);
  REQUIRE(cache.flush(t) == error::ok);
  REQUIRE(cache.write(t, "data_2_1", 0, page) == error::ok);
  names.clear();
  REQUIRE(cache.local().list(t, names) == error::ok);
  CHECK(names == std::vector<std::string>{"data_2_1"});
  std::vector<char> buf(4096);
  CHECK(cache.read(t, "data_1_1", 0, buf) == error::ok);  // downloaded again
  CHECK(std::string(buf.begin(), buf.end()) == page);
  CHECK(cache.read(t, "data_0_1", 0, buf) == error::ok);  // evicts data_1_1, not dirty data_2_1
  CHECK(std::string(buf.begin(), buf.end()) == page);
  names.clear();
  REQUIRE(cache.local().list(t, names) == error::ok);
  CHECK(names == std::vector<std::string>{"data_0_1", "data_2_1"});
  CHECK(cache.cache_used().evictions == 3);
  cache.close();
}

namespace {

// Waits (at most a minute) for the store's prewarm to end.
template <typename Store>
prewarm_progress prewarm_ended(Store& s) {
  for (int i = 0; i < 6000; ++i) {
    const prewarm_progress p = s.prewarm_status();
    if (p.done) {
      return p;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL("prewarm did not end");
  return {};
}

}  // namespace

TEST_CASE("cloud cache: prewarm fills the cache up to its budget, then stops") {
  auto bucket = std::make_shared<memory_object_store>();
  std::map<std::pair<int, std::string>, std::string> model;
  const auto make_cache = [&](const options& opts) {
    return std::make_unique<cloud_uring_traits::io_type>(bucket, "prefix", opts.store_path,
                                                         default_traits::uring_config(opts));
  };
  options base = cache_options(64);
  std::size_t data_files = 0;
  {
    const std::string dir = test::fresh_temp_dir("prewarm-src");
    options o = base;
    o.store_path = {dir};
    auto cache = make_cache(o);
    EloqStore<cloud_uring_traits> store(o, *cache);
    REQUIRE(store.start(1) == error::ok);
    CHECK_FALSE(store.prewarm_status().started);
    test::rng r(24);
    write_rounds(store, r, 60, 3, model, [] {});
    store.stop();
    std::filesystem::remove_all(dir);
    for (const std::string& key : test::list_all(*bucket, "", "", list_page_max)) {
      data_files += key.find("/data_") != std::string::npos ? 1 : 0;
    }
  }
  REQUIRE(data_files > 6);

  SUBCASE("a budget smaller than the bucket: filled, never exceeded, reads still right") {
    const std::string dir = test::fresh_temp_dir("prewarm-small");
    options o = base;
    o.store_path = {dir};
    o.local_space_limit = 4 * o.data_file_size();
    o.prewarm_cloud_cache = true;
    o.prewarm_task_count = 2;
    auto cache = make_cache(o);
    EloqStore<cloud_uring_traits> store(o, *cache);
    REQUIRE(store.start(1) == error::ok);
    const prewarm_progress p = prewarm_ended(store);
    CHECK(p.started);
    CHECK(p.reason == error::out_of_space);
    CHECK(p.listed == data_files);
    CHECK(p.pulled == 4);  // exactly what fits: prewarm never evicts
    CHECK(cache->cache_used().files == 4);
    CHECK(cache->cache_used().evictions == 0);
    CHECK(cache_bytes(dir) <= o.local_space_limit);
    check_all(store, model, [&] { REQUIRE(cache_bytes(dir) <= o.local_space_limit); });
    store.stop();
    std::filesystem::remove_all(dir);
  }
  SUBCASE("room for everything: reads afterwards fetch no data file") {
    const std::string dir = test::fresh_temp_dir("prewarm-all");
    options o = base;
    o.store_path = {dir};
    o.prewarm_cloud_cache = true;
    auto cache = make_cache(o);
    EloqStore<cloud_uring_traits> store(o, *cache);
    REQUIRE(store.start(1) == error::ok);
    const prewarm_progress p = prewarm_ended(store);
    CHECK(p.reason == error::ok);
    CHECK(p.listed == data_files);
    CHECK(p.pulled == data_files);
    const auto before = bucket->stats();
    check_all(store, model, [] {});
    // Per partition, its first open: CURRENT_TERM and the manifest (no data file).
    CHECK(bucket->stats().gets - before.gets <= 3 * 2);
    store.stop();
    std::filesystem::remove_all(dir);
  }
  SUBCASE("partition_filter: only the partitions it accepts") {
    const std::string dir = test::fresh_temp_dir("prewarm-filter");
    options o = base;
    o.store_path = {dir};
    o.prewarm_cloud_cache = true;
    o.partition_filter = [](const table_ident& t) { return t.partition == 1; };
    auto cache = make_cache(o);
    EloqStore<cloud_uring_traits> store(o, *cache);
    REQUIRE(store.start(1) == error::ok);
    const prewarm_progress p = prewarm_ended(store);
    CHECK(p.reason == error::ok);
    CHECK(p.listed > 0);
    CHECK(p.listed < data_files);
    std::vector<table_ident> parts;
    REQUIRE(cache->local().list_partitions(parts) == error::ok);
    REQUIRE(parts.size() == 1);
    CHECK(parts[0] == table_ident{"tbl", 1});
    store.stop();
    std::filesystem::remove_all(dir);
  }
}

TEST_CASE("cloud cache: prewarm on run-to-completion shards (memory_io)") {
  auto bucket = std::make_shared<memory_object_store>();
  std::map<std::pair<int, std::string>, std::string> model;
  options o = cache_options(64);
  o.store_path = {"/cache"};
  {
    test::cloud_memory_traits::io_type cache(bucket, "prefix");
    EloqStore<test::cloud_memory_traits> store(o, cache);
    REQUIRE(store.start(1) == error::ok);
    test::rng r(25);
    write_rounds(store, r, 30, 2, model, [] {});
    store.stop();
  }
  o.prewarm_cloud_cache = true;
  o.local_space_limit = 3 * o.data_file_size();
  test::cloud_memory_traits::io_type cache(bucket, "prefix");
  EloqStore<test::cloud_memory_traits> store(o, cache);
  REQUIRE(store.start(1) == error::ok);
  const prewarm_progress p = prewarm_ended(store);
  CHECK(p.reason == error::out_of_space);
  CHECK(p.pulled == 3);
  CHECK(cache_bytes(cache.local()) <= o.local_space_limit);
  check_all(store, model, [&] { REQUIRE(cache_bytes(cache.local()) <= o.local_space_limit); });
  store.stop();
  CHECK(store.prewarm_status().done);
}
