// Cloud mode against a real S3 server (scripts/s3-server.sh starts RGW or s3rver and exports
// S3_ENDPOINT, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), beside the server's own
// throughput for the same objects measured through libcurl (s3_store, no engine):
//   raw put    the server's PUT MB/s for objects of one data file's size, 4 clients
//   load       EloqStore<cloud_traits> bulk load: 1 KB values in batches of 1000, one client
//              thread per partition, durable (uploaded) per batch; MB/s of values, MB uploaded
//              and requests per 1000 writes
//   load bg    the same load with durability::local (acknowledged after the local fdatasync,
//              uploaded in the background), into a prefix of its own: MB/s until the last
//              acknowledgement and until wait_uploaded() of every partition returned
//   load local the same load in local append mode (EloqStore<default_traits>, no bucket)
//   raw get    the server's GET MB/s for the data files the load wrote, 4 clients
//   cold read  random point reads with an empty cache (every first touch of a file downloads
//              it): reads/s, GETs per 1000 reads
//   prewarm    a new node with prewarm_cloud_cache: MB/s until the cache holds every data file
//   warm read  the same reads after prewarm: reads/s, GETs per 1000 reads
//
// Usage: scripts/s3-server.sh with build/bench/cloud_bench [megabytes=128] [partitions=4]
//                                                          [reads=20000] [file_shift=11]
// file_shift: pages per data file = 2^file_shift (11: 8 MiB files, the reference's advice
// for cloud mode).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include <eloqstore/cloud.hpp>
#include <eloqstore/default_store.hpp>  // (EloqStore<default_traits> compiled once)
#include <eloqstore/eloqstore.hpp>

namespace {

using namespace eloqstore;
using bench_clock = std::chrono::steady_clock;
using store_type = EloqStore<cloud_traits>;

double since(bench_clock::time_point t) {
  return std::chrono::duration<double>(bench_clock::now() - t).count();
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

std::string key_of(std::uint64_t i) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "key%012llu", static_cast<unsigned long long>(i));
  return buf;
}

struct node {
  std::string dir;
  std::unique_ptr<store_type> store;
  explicit node(const options& base, const std::string& tag) {
    dir = (std::filesystem::temp_directory_path() /
           ("eloqstore-cloud-bench-" + tag + "-" + std::to_string(::getpid())))
              .string();
    std::filesystem::remove_all(dir);
    options o = base;
    o.store_path = {dir};
    store = std::make_unique<store_type>(o);
  }
  ~node() {
    store->stop();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  cloud_traits::io_type& io() { return store->io(); }
};

void print_requests(const char* what, const object_requests& r, double per, const char* unit) {
  std::printf(
      "  %-10s GET %.2f  PUT %.2f  LIST %.2f  DELETE %.2f per 1000 %s; %.1f MB up, "
      "%.1f MB down, %llu retries, $%.5f per 1000 %s (S3 Standard prices)\n",
      what, 1000.0 * r.gets / per, 1000.0 * r.puts / per, 1000.0 * r.lists / per,
      1000.0 * r.removes / per, unit, r.bytes_up / 1e6, r.bytes_down / 1e6,
      static_cast<unsigned long long>(r.retries), 1000.0 * r.cost() / per, unit);
}

// `clients` threads each doing `op(i)` for their share of [0, n); returns seconds.
template <typename Op>
double in_parallel(std::size_t clients, std::size_t n, Op op) {
  const auto t0 = bench_clock::now();
  std::vector<std::thread> threads;
  for (std::size_t c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (std::size_t i = c; i < n; i += clients) {
        op(i);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  return since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t megabytes = 128;
  std::uint32_t partitions = 4;
  std::uint64_t reads = 20000;
  unsigned file_shift = 11;
  CLI::App app{"cloud_bench: cloud mode against the S3 server of S3_ENDPOINT"};
  app.add_option("megabytes", megabytes, "MB of values to load")->check(CLI::Range(1, 1 << 20));
  app.add_option("partitions", partitions, "partitions")->check(CLI::Range(1, 4096));
  app.add_option("reads", reads, "point reads after the load");
  app.add_option("file_shift", file_shift, "log2 of pages per data file")->check(CLI::Range(1, 20));
  CLI11_PARSE(app, argc, argv);
  if (env("S3_ENDPOINT").empty()) {
    std::fprintf(stderr, "S3_ENDPOINT is not set: run through scripts/s3-server.sh with\n");
    return 2;
  }
  options base;
  base.cloud_endpoint = env("S3_ENDPOINT");
  base.cloud_access_key = env("AWS_ACCESS_KEY_ID");
  base.cloud_secret_key = env("AWS_SECRET_ACCESS_KEY");
  base.cloud_store_path = "eloqstore-bench-" + std::to_string(::getpid()) + "/node";
  base.num_threads = 2;
  base.pages_per_file_shift = static_cast<std::uint8_t>(file_shift);
  base.coroutine_stack_size = 64 * 1024;
  const std::uint64_t file_bytes = base.data_file_size();
  std::printf("cloud_bench: %s (%s), %llu MB of 1 KB values, %u partitions, %llu KiB files\n",
              base.cloud_endpoint.c_str(), env("S3_FLAVOR").c_str(),
              static_cast<unsigned long long>(megabytes), partitions,
              static_cast<unsigned long long>(file_bytes >> 10));

  // ---- the server alone -----------------------------------------------------------------
  s3_config raw_cfg = s3_config::from(base);
  raw_cfg.bucket = "eloqstore-bench-raw-" + std::to_string(::getpid());
  s3_store raw(raw_cfg);
  if (raw.start() != error::ok) {
    std::fprintf(stderr, "cannot reach the server: %s\n", raw.last_failure().c_str());
    return 1;
  }
  const std::string blob(file_bytes, 'x');
  const std::size_t raw_objects = std::max<std::size_t>(8, (32ULL << 20) / file_bytes);
  const double put_s = in_parallel(4, raw_objects, [&](std::size_t i) {
    object_meta m;
    if (raw.put("raw/" + std::to_string(i), blob, put_condition::always(), m) !=
        object_status::ok) {
      std::fprintf(stderr, "raw put failed\n");
      std::exit(1);
    }
  });
  std::printf("raw put    %.1f MB/s (%zu objects of %llu KiB, 4 clients)\n",
              raw_objects * file_bytes / 1e6 / put_s, raw_objects,
              static_cast<unsigned long long>(file_bytes >> 10));

  // ---- load ------------------------------------------------------------------------------
  const std::uint64_t keys = megabytes * 1000;
  const std::uint64_t per_part = keys / partitions;
  const std::string value(1000, 'v');
  // The load into `store`, each batch acknowledged as `d` says; seconds.
  const auto load = [&](auto& store, durability d) {
    return in_parallel(partitions, partitions, [&](std::size_t p) {
      const table_ident t{"bench", static_cast<std::uint32_t>(p)};
      for (std::uint64_t b = 0; b < per_part; b += 1000) {
        std::vector<write_entry> batch;
        for (std::uint64_t i = b; i < std::min(per_part, b + 1000); ++i) {
          batch.push_back(write_entry{key_of(i), value, 1, write_op::upsert, 0});
        }
        if (const error e = store.write(t, batch, d); e != error::ok) {
          std::fprintf(stderr, "write failed: %s\n", std::string(error_message(e)).c_str());
          std::exit(1);
        }
      }
    });
  };
  {
    node n(base, "load");
    if (n.store->start(1) != error::ok) {
      std::fprintf(stderr, "start failed: %s\n", n.store->last_message().c_str());
      return 1;
    }
    const double s = load(*n.store, durability::uploaded);
    const object_requests r = n.io().requests();
    std::printf("load       %.1f MB/s of values (%.1f s), uploads %.1f MB/s\n",
                keys * 1000 / 1e6 / s, s, r.bytes_up / 1e6 / s);
    print_requests("load", r, static_cast<double>(keys), "writes");
  }
  {
    options o = base;
    o.cloud_store_path += "-bg";
    node n(o, "load-bg");
    if (n.store->start(1) != error::ok) {
      return 1;
    }
    const auto t0 = bench_clock::now();
    const double acked = load(*n.store, durability::local);
    for (std::uint32_t p = 0; p < partitions; ++p) {
      if (const error e = n.store->wait_uploaded({"bench", p}); e != error::ok) {
        std::fprintf(stderr, "upload failed: %s\n", std::string(error_message(e)).c_str());
        return 1;
      }
    }
    const double s = since(t0);
    const object_requests r = n.io().requests();
    std::printf(
        "load bg    %.1f MB/s of values acknowledged (%.1f s), %.1f MB/s uploaded "
        "(%.1f s), uploads %.1f MB/s\n",
        keys * 1000 / 1e6 / acked, acked, keys * 1000 / 1e6 / s, s, r.bytes_up / 1e6 / s);
    print_requests("load bg", r, static_cast<double>(keys), "writes");
  }
  {
    const std::string dir = (std::filesystem::temp_directory_path() /
                             ("eloqstore-cloud-bench-local-" + std::to_string(::getpid())))
                                .string();
    std::filesystem::remove_all(dir);
    options o;
    o.store_path = {dir};
    o.num_threads = base.num_threads;
    o.pages_per_file_shift = base.pages_per_file_shift;
    o.coroutine_stack_size = base.coroutine_stack_size;
    o.data_append_mode = true;
    {
      EloqStore<default_traits> local(o);
      if (local.start() != error::ok) {
        return 1;
      }
      const double s = load(local, durability::uploaded);
      std::printf("load local %.1f MB/s of values (%.1f s), local append mode, no bucket\n",
                  keys * 1000 / 1e6 / s, s);
      local.stop();
    }
    std::filesystem::remove_all(dir);
  }

  // ---- the server's GET of what the load wrote ---------------------------------------------
  std::vector<std::string> data_keys;
  {
    const std::string root = base.cloud_store_path.substr(base.cloud_store_path.find('/') + 1);
    s3_config cfg = s3_config::from(base);
    s3_store bucket(cfg);
    (void)bucket.start();
    std::string after;
    list_page page;
    do {
      if (bucket.list(root + "/", "", after, list_page_max, page) != object_status::ok) {
        break;
      }
      for (const object_meta& m : page.objects) {
        if (m.key.find("/data_") != std::string::npos) {
          data_keys.push_back(m.key);
        }
      }
      after = page.next;
    } while (!after.empty());
    std::atomic<std::uint64_t> got{0};
    const double s = in_parallel(4, data_keys.size(), [&](std::size_t i) {
      std::string body;
      object_meta m;
      if (bucket.get(data_keys[i], body, m) == object_status::ok) {
        got += body.size();
      }
    });
    std::printf("raw get    %.1f MB/s (%zu data files, 4 clients)\n", got / 1e6 / s,
                data_keys.size());
    bucket.stop();
  }

  // ---- reads -------------------------------------------------------------------------------
  const auto random_reads = [&](store_type& s) {
    return in_parallel(8, reads, [&](std::size_t) {
      thread_local std::mt19937_64 r(std::hash<std::thread::id>{}(std::this_thread::get_id()));
      const table_ident t{"bench", static_cast<std::uint32_t>(r() % partitions)};
      const auto got = s.get(t, key_of(r() % per_part));
      if (!got.ok() || got->value != value) {
        std::fprintf(stderr, "read failed\n");
        std::exit(1);
      }
    });
  };
  {
    node n(base, "cold");
    if (n.store->start(1) != error::ok) {
      return 1;
    }
    const double s = random_reads(*n.store);
    std::printf("cold read  %.0f reads/s (%llu reads, 8 clients, empty cache)\n", reads / s,
                static_cast<unsigned long long>(reads));
    print_requests("cold read", n.io().requests(), static_cast<double>(reads), "reads");
  }
  {
    options o = base;
    o.prewarm_cloud_cache = true;
    node n(o, "warm");
    const auto t0 = bench_clock::now();
    if (n.store->start(1) != error::ok) {
      return 1;
    }
    prewarm_progress p;
    while (!(p = n.store->prewarm_status()).done) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const double s = since(t0);
    const object_requests r = n.io().requests();
    std::printf("prewarm    %.1f MB/s (%llu files, %.1f MB in %.2f s, ended: %s)\n",
                r.bytes_down / 1e6 / s, static_cast<unsigned long long>(p.pulled),
                r.bytes_down / 1e6, s, std::string(error_message(p.reason)).c_str());
    const double rs = random_reads(*n.store);
    const object_requests after = n.io().requests();
    object_requests reads_only = after;
    reads_only.gets -= r.gets;
    reads_only.puts -= r.puts;
    reads_only.lists -= r.lists;
    reads_only.removes -= r.removes;
    reads_only.bytes_down -= r.bytes_down;
    reads_only.bytes_up -= r.bytes_up;
    reads_only.retries -= r.retries;
    std::printf("warm read  %.0f reads/s (after prewarm)\n", reads / rs);
    print_requests("warm read", reads_only, static_cast<double>(reads), "reads");
  }
  raw.stop();
  return 0;
}
