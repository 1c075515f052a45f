// Cloud mode against a real S3 server (cloud_traits: uring_io cache, s3_store, fiber tasks
// parked on their requests): a model of writes, deletes, reads and scans across restarts
// whose local cache is wiped each time, and two terms on one bucket. The server comes from
// the environment as in s3_test.cpp.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/cloud.hpp>
#include <eloqstore/eloqstore.hpp>

#include "support/page_store.hpp"

using namespace eloqstore;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

// Options for cloud mode on the environment's server, in a bucket of our own, or nullopt
// (skipped, or failed when a server is required).
std::optional<options> cloud_server(std::string_view what) {
  options o;
  o.cloud_endpoint = env("S3_ENDPOINT");
  if (o.cloud_endpoint.empty()) {
    REQUIRE_MESSAGE(env("ELOQSTORE_S3_REQUIRED") != "1",
                    "S3_ENDPOINT is not set: start a server with scripts/s3-server.sh");
    MESSAGE("skipped: S3_ENDPOINT is not set");
    return std::nullopt;
  }
  o.cloud_access_key = env("AWS_ACCESS_KEY_ID");
  o.cloud_secret_key = env("AWS_SECRET_ACCESS_KEY");
  o.cloud_store_path =
      "eloqstore-cloud-" + std::string(what) + "-" + std::to_string(::getpid()) + "/node";
  o.num_threads = 2;
  o.pages_per_file_shift = 5;  // small files: many uploads, compaction and GC
  o.coroutine_stack_size = 64 * 1024;
  return o;
}

// A cache directory of its own per process (a node that lost its disk starts empty).
struct cache_dir {
  std::string path;
  cache_dir() {
    static int n = 0;
    path = (std::filesystem::temp_directory_path() /
            ("eloqstore-cloud-cache-" + std::to_string(::getpid()) + "-" + std::to_string(n++)))
               .string();
    std::filesystem::remove_all(path);
  }
  ~cache_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

using store_type = EloqStore<cloud_traits>;

}  // namespace

TEST_CASE("cloud over S3: a model across restarts that lose the local cache") {
  auto base = cloud_server("model");
  if (!base) {
    return;
  }
  test::rng r(21);
  std::map<std::string, std::string> model[3];
  for (int life = 0; life < 4; ++life) {
    CAPTURE(life);
    cache_dir cache;
    options o = *base;
    o.store_path = {cache.path};
    store_type s(o);
    REQUIRE(s.start(1) == error::ok);
    // Everything written in earlier lives comes back from the bucket.
    for (std::uint32_t p = 0; p < 3; ++p) {
      const table_ident t{"model", p};
      std::size_t seen = 0;
      for (const auto& e : s.scan(t, "", "")) {
        REQUIRE(model[p].contains(e.key));
        CHECK(model[p].at(e.key) == e.value);
        ++seen;
      }
      CHECK(seen == model[p].size());
    }
    for (int round = 0; round < 6; ++round) {
      for (std::uint32_t p = 0; p < 3; ++p) {
        const table_ident t{"model", p};
        std::map<std::string, std::pair<std::string, bool>> kv;
        for (int i = 0; i < 40; ++i) {
          const std::string k = "k" + std::to_string(r.uniform(0, 500));
          kv[k] = {r.bytes(r.uniform(1, 3000), 26), r.chance(0.2)};
        }
        std::vector<write_entry> b;
        for (const auto& [k, v] : kv) {
          b.push_back(write_entry{k, v.first, static_cast<std::uint64_t>(life * 10 + round + 1),
                                  v.second ? write_op::erase : write_op::upsert, 0});
        }
        REQUIRE(s.write(t, b) == error::ok);
        for (const auto& [k, v] : kv) {
          if (v.second) {
            model[p].erase(k);
          } else {
            model[p][k] = v.first;
          }
        }
      }
    }
    for (std::uint32_t p = 0; p < 3; ++p) {
      const table_ident t{"model", p};
      for (int i = 0; i < 60; ++i) {
        const std::string k = "k" + std::to_string(r.uniform(0, 500));
        const auto got = s.get(t, k);
        if (model[p].contains(k)) {
          REQUIRE(got.ok());
          CHECK(got->value == model[p].at(k));
        } else {
          CHECK(got.status() == error::not_found);
        }
      }
    }
    s.stop();
  }
}

TEST_CASE("cloud over S3: term 2 takes over from term 1, whose writes then expire") {
  auto base = cloud_server("terms");
  if (!base) {
    return;
  }
  const table_ident t{"terms", 0};
  cache_dir cache1, cache2;
  options o1 = *base;
  o1.store_path = {cache1.path};
  options o2 = *base;
  o2.store_path = {cache2.path};
  store_type one(o1);
  REQUIRE(one.start(1) == error::ok);
  std::vector<write_entry> b;
  for (int i = 0; i < 200; ++i) {
    b.push_back(write_entry{"key" + std::to_string(1000 + i), std::string(500, 'a' + i % 26), 1,
                            write_op::upsert, 0});
  }
  REQUIRE(one.write(t, b) == error::ok);
  store_type two(o2);
  REQUIRE(two.start(2) == error::ok);
  const auto got = two.get(t, "key1007");
  REQUIRE(got.ok());
  CHECK(got->value == std::string(500, 'a' + 7));
  REQUIRE(two.put(t, "key1007", "term two", 2) == error::ok);
  CHECK(one.put(t, "key1007", "term one", 3) == error::expired_term);
  two.stop();
  one.stop();
  cache_dir cache3;
  options o3 = *base;
  o3.store_path = {cache3.path};
  store_type again(o3);
  REQUIRE(again.start(2) == error::ok);
  const auto after = again.get(t, "key1007");
  REQUIRE(after.ok());
  CHECK(after->value == "term two");
  again.stop();
}
