// Test fixtures: a store over memory_io (one backend kept across restarts) and a store over
// pread_io in a fresh temporary directory removed afterwards.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include <eloqstore/eloqstore.hpp>

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

struct pread_fixture {
  using store_type = EloqStore<default_traits>;
  options opts;
  std::string dir = fresh_temp_dir("pread");

  pread_fixture() {
    opts.num_threads = 1;
    opts.store_path = {dir};
  }
  ~pread_fixture() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::unique_ptr<store_type> make() { return std::make_unique<store_type>(opts); }
};

}  // namespace eloqstore::test
