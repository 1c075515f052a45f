// The engine suites in cloud mode against a real S3 server (cloud_traits: s3_store behind a
// uring_io cache, fiber tasks). The server comes from the environment scripts/s3-server.sh
// prints (S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); ctest's engine_tests_s3
// starts Ceph RGW for it. Each fixture writes under a prefix of its own in one bucket per
// process, and every store it makes starts on an empty cache directory of its own: a restart
// is a node that lost its disk, so everything it reads comes back from the bucket.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <doctest/doctest.h>

#include <eloqstore/cloud.hpp>
#include <eloqstore/eloqstore.hpp>

#include "support/store_fixture.hpp"

namespace eloqstore::test {

struct cloud_s3_fixture {
  using store_type = EloqStore<cloud_traits>;
  options opts;
  std::string dir = fresh_temp_dir("cloud-s3");
  int made = 0;

  cloud_s3_fixture() {
    static std::atomic<int> counter{0};
    const auto env = [](const char* name) {
      const char* v = std::getenv(name);
      return v == nullptr ? std::string() : std::string(v);
    };
    opts.cloud_endpoint = env("S3_ENDPOINT");
    REQUIRE_MESSAGE(!opts.cloud_endpoint.empty(),
                    "S3_ENDPOINT is not set: run under scripts/s3-server.sh (ctest -L s3)");
    opts.cloud_access_key = env("AWS_ACCESS_KEY_ID");
    opts.cloud_secret_key = env("AWS_SECRET_ACCESS_KEY");
    opts.cloud_store_path =
        "eloqstore-engine-" + std::to_string(::getpid()) + "/f" + std::to_string(counter++);
    opts.num_threads = 1;
    opts.coroutine_stack_size = test_stack_bytes();
    // A store restarted (stop, start) keeps its cache, which it must then be allowed to adopt.
    opts.allow_reuse_local_caches = true;
    opts.data_append_mode = true;
    opts.pages_per_file_shift = append_test_pages_per_file_shift;
  }
  ~cloud_s3_fixture() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::unique_ptr<store_type> make() {
    opts.store_path = {dir + "/cache-" + std::to_string(made++)};
    return std::make_unique<store_type>(opts);
  }
};

}  // namespace eloqstore::test
