// Test fixtures: a store over memory_io (one backend kept across restarts), stores over
// local files (pread_io; uring_io with fibers, one and four shards) in a fresh temporary
// directory removed afterwards, and cloud mode over a memory bucket.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <eloqstore/eloqstore.hpp>
#include <eloqstore/io/cloud.hpp>
#include <eloqstore/object/memory.hpp>

namespace eloqstore::test {

struct memory_fixture {
  using store_type = EloqStore<memory_traits>;
  options opts;
  memory_io io;

  memory_fixture() { opts.num_threads = 1; }
  std::unique_ptr<store_type> make() { return std::make_unique<store_type>(opts, io); }
};

inline std::string fresh_temp_dir(const char* tag) {
  static std::atomic<int> counter{0};
  const auto dir = std::filesystem::temp_directory_path() /
                   ("eloqstore-" + std::string(tag) + "-" + std::to_string(::getpid()) + "-" +
                    std::to_string(counter++));
  std::filesystem::remove_all(dir);
  return dir.string();
}

// Bytes of stack per fiber task in the tests: ELOQSTORE_TEST_STACK_BYTES when set (a ctest
// entry runs the engine suites at the smallest size the options accept), else 1 MiB.
// Debug and sanitizer builds run about ten times slower: the long randomized cases run fewer
// rounds there (the default build runs them all).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(NDEBUG)
inline constexpr bool slow_build = true;
#else
inline constexpr bool slow_build = false;
#endif
inline constexpr int rounds(int n) {
  return slow_build ? (n + 1) / 2 : n;
}

inline std::uint32_t test_stack_bytes() {
  const char* env = std::getenv("ELOQSTORE_TEST_STACK_BYTES");
  return env != nullptr ? static_cast<std::uint32_t>(std::strtoul(env, nullptr, 10)) : 1024 * 1024;
}

// A store over local files in a fresh temporary directory, with `Shards` shard threads.
template <typename Traits, std::uint16_t Shards>
struct file_fixture {
  using store_type = EloqStore<Traits>;
  options opts;
  std::string dir = fresh_temp_dir("store");

  file_fixture() {
    opts.num_threads = Shards;
    opts.coroutine_stack_size = test_stack_bytes();
    opts.store_path = {dir};
  }
  ~file_fixture() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::unique_ptr<store_type> make() { return std::make_unique<store_type>(opts); }
};

// pread_io, run-to-completion shards.
struct pread_fixture : file_fixture<pread_traits, 1> {};
// The default traits: uring_io (O_DIRECT) and fiber tasks, one shard and four.
struct uring_fixture : file_fixture<default_traits, 1> {};
struct uring4_fixture : file_fixture<default_traits, 4> {};

// Append mode (every page written at the tail, compaction and file GC) with small data files
// (32 pages), so that the engine tests compact and delete files often.
inline constexpr std::uint8_t append_test_pages_per_file_shift = 5;
template <typename Base>
struct append_mode : Base {
  append_mode() {
    this->opts.data_append_mode = true;
    this->opts.pages_per_file_shift = append_test_pages_per_file_shift;
  }
};
struct memory_append_fixture : append_mode<memory_fixture> {};
struct uring_append_fixture : append_mode<uring_fixture> {};

// Cloud mode over memory: the partitions' files in a memory_object_store that outlives every
// store made, behind a memory_io cache that each store starts with empty (a node that lost
// its disk: everything must come back from the bucket).
struct cloud_memory_traits : memory_traits {
  using io_type = cloud_io<memory_io, memory_object_store>;
  static std::unique_ptr<io_type> make_io(const options&) {
    return std::make_unique<io_type>(std::make_shared<memory_object_store>(), "");
  }
};
struct cloud_memory_fixture {
  using store_type = EloqStore<cloud_memory_traits>;
  using io_type = cloud_memory_traits::io_type;
  options opts;
  std::shared_ptr<memory_object_store> bucket = std::make_shared<memory_object_store>();
  std::vector<std::unique_ptr<io_type>> caches;  // one per store made, kept while it may run

  cloud_memory_fixture() {
    opts.num_threads = 1;
    opts.store_path = {"/cache"};  // memory_io's: a name, not a directory
    opts.cloud_store_path = "bucket/prefix";
    // A store restarted (stop, start) keeps its cache, which it must then be allowed to adopt.
    opts.allow_reuse_local_caches = true;
    opts.data_append_mode = true;
    opts.pages_per_file_shift = append_test_pages_per_file_shift;
  }
  std::unique_ptr<store_type> make() {
    caches.push_back(std::make_unique<io_type>(bucket, "prefix"));
    return std::make_unique<store_type>(opts, *caches.back());
  }
};

// Every fixture the engine tests run over: both page placements (in place and append) over
// memory_io and uring_io, and in place over pread_io and four uring shards.
#define ELOQSTORE_ALL_FIXTURES                                                          \
  test::memory_fixture, test::pread_fixture, test::uring_fixture, test::uring4_fixture, \
      test::memory_append_fixture, test::uring_append_fixture, test::cloud_memory_fixture

}  // namespace eloqstore::test
