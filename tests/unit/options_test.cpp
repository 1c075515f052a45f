// Options: defaults from the spec table, strict validation, cloud-mode normalization, and the
// INI option-file loader.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include <doctest/doctest.h>

#include <eloqstore/options.hpp>
#include <eloqstore/options_file.hpp>

using namespace eloqstore;

namespace {

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

options cloud_options() {
  options o;
  o.store_path = {"/var/cache/eloq"};
  o.cloud_store_path = "bucket/prefix";
  return o;
}

// The change must make validation fail with invalid_args and a message naming `option`.
void check_rejected(const options& base, const std::function<void(options&)>& change,
                    std::string_view option) {
  options o = base;
  change(o);
  const validation_result r = o.validate();
  INFO("option: ", option, "; message: ", r.message);
  CHECK(r.code == error::invalid_args);
  CHECK_FALSE(r.ok());
  CHECK(contains(r.message, option));
}

void check_accepted(const options& base, const std::function<void(options&)>& change) {
  options o = base;
  change(o);
  const validation_result r = o.validate();
  INFO("message: ", r.message);
  CHECK(r.ok());
  CHECK(r.code == error::ok);
}

// Loads `text` into default options and expects success.
options load_ok(std::string_view text) {
  options o;
  const validation_result r = load_options_string(text, o);
  INFO("text:\n", text, "\nmessage: ", r.message);
  CHECK(r.ok());
  return o;
}

// Loads `text` and expects invalid_args with every needle in the message.
void load_fails(std::string_view text, std::initializer_list<std::string_view> needles) {
  options o;
  o.num_threads = 7;  // a marker: a failed load must not touch `out`
  const validation_result r = load_options_string(text, o);
  INFO("text:\n", text, "\nmessage: ", r.message);
  CHECK(r.code == error::invalid_args);
  for (const std::string_view n : needles) {
    CHECK(contains(r.message, n));
  }
  CHECK(o.num_threads == 7);
}

std::string run_only(std::string_view run_lines) {
  return "[run]\n" + std::string(run_lines) + "\n[permanent]\n";
}

std::string permanent_only(std::string_view permanent_lines) {
  return "[run]\n[permanent]\n" + std::string(permanent_lines) + "\n";
}

}  // namespace

// ---- defaults --------------------------------------------------------------------------------

TEST_CASE("options: defaults match the spec table") {
  const options o;
  CHECK(o.num_threads == 1);
  CHECK(o.data_page_restart_interval == 16);
  CHECK(o.index_page_restart_interval == 16);
  CHECK(o.init_page_count == 32768);
  CHECK(o.skip_verify_checksum == false);
  CHECK(o.buffer_pool_size == 32ull << 20);
  CHECK(o.root_meta_cache_size == 1ull << 30);
  CHECK(o.manifest_limit == 8u << 20);
  CHECK(o.fd_limit == 10000);
  CHECK(o.io_queue_size == 4096);
  CHECK(o.max_inflight_write == 32768);
  CHECK(o.max_write_batch_pages == 256);
  CHECK(o.buf_ring_size == 4096);
  CHECK(o.coroutine_stack_size == 32 * 1024);
  CHECK(o.num_retained_archives == 0);
  CHECK(o.archive_interval_secs == 86400);
  CHECK(o.max_archive_tasks == 256);
  CHECK(o.file_amplify_factor == 2);
  CHECK(o.local_space_limit == 1ull << 40);
  CHECK(o.reserve_space_ratio == 100);
  CHECK(o.max_upload_batch == 5);
  CHECK(o.max_cloud_concurrency == 20);
  CHECK(o.cloud_request_threads == 1);
  CHECK(o.direct_io_buffer_pool_size == 4);
  CHECK(o.allow_reuse_local_caches == false);
  CHECK(o.store_path.empty());
  CHECK(o.cloud_store_path.empty());
  CHECK(o.cloud_provider == "aws");
  CHECK(o.cloud_endpoint.empty());
  CHECK(o.cloud_region == "us-east-1");
  CHECK(o.cloud_access_key == "minioadmin");
  CHECK(o.cloud_secret_key == "minioadmin");
  CHECK(o.cloud_verify_ssl == false);
  CHECK(o.data_page_size == 4096);
  CHECK(o.pages_per_file_shift == 18);
  CHECK(o.overflow_pointers == 16);
  CHECK(o.data_append_mode == false);
  CHECK(o.enable_compression == false);
  CHECK(o.prewarm_cloud_cache == false);
  CHECK(o.prewarm_task_count == 3);
  CHECK(o.mapping_arena_size == 128);
  CHECK_FALSE(o.partition_filter);
  CHECK_FALSE(o.cloud_mode());
}

TEST_CASE("options: field types match the spec table") {
  const options o;
  CHECK(sizeof(o.num_threads) == 2);
  CHECK(sizeof(o.init_page_count) == 4);
  CHECK(sizeof(o.buffer_pool_size) == 8);
  CHECK(sizeof(o.manifest_limit) == 4);
  CHECK(sizeof(o.buf_ring_size) == 2);
  CHECK(sizeof(o.max_archive_tasks) == 2);
  CHECK(sizeof(o.file_amplify_factor) == 1);
  CHECK(sizeof(o.reserve_space_ratio) == 2);
  CHECK(sizeof(o.cloud_request_threads) == 2);
  CHECK(sizeof(o.data_page_size) == 2);
  CHECK(sizeof(o.pages_per_file_shift) == 1);
  CHECK(sizeof(o.overflow_pointers) == 1);
  CHECK(sizeof(o.prewarm_task_count) == 2);
  CHECK(sizeof(o.local_space_limit) == sizeof(std::size_t));
}

TEST_CASE("options: derived sizes") {
  options o;
  CHECK(o.data_file_size() == 1ull << 30);
  CHECK(o.file_page_offset_mask() == (1ull << 18) - 1);
  o.data_page_size = 32768;
  o.pages_per_file_shift = 32;
  CHECK(o.data_file_size() == 1ull << 47);
  CHECK(o.file_page_offset_mask() == 0xffffffffull);
  o.pages_per_file_shift = 200;  // invalid, but the helpers stay defined
  CHECK(o.data_file_size() == 0);
  CHECK(o.file_page_offset_mask() == ~0ull);
}

TEST_CASE("options: partition_filter is a plain std::function member") {
  options o;
  o.partition_filter = [](const table_ident& t) { return t.partition % 2 == 0; };
  CHECK(o.partition_filter(table_ident{"t", 4}));
  CHECK_FALSE(o.partition_filter(table_ident{"t", 5}));
  CHECK(o.validate().ok());
}

// ---- validation ------------------------------------------------------------------------------

TEST_CASE("options: defaults and a default cloud setup are valid") {
  CHECK(options{}.validate().ok());
  CHECK(cloud_options().validate().ok());
  options with_dirs;
  with_dirs.store_path = {"/d0", "/d1"};
  CHECK(with_dirs.validate().ok());
}

TEST_CASE("options: page and file geometry rules") {
  const options b;
  for (const std::uint16_t bad : {0, 1, 2048, 4095, 5000, 12288, 65535}) {
    check_rejected(
        b, [bad](options& o) { o.data_page_size = bad; }, "data_page_size");
  }
  for (const std::uint16_t good : {4096, 8192, 16384, 32768}) {
    check_accepted(b, [good](options& o) {
      o.data_page_size = good;
      o.buffer_pool_size = good;
    });
  }
  for (const std::uint8_t bad : {0, 33, 64, 255}) {
    check_rejected(
        b, [bad](options& o) { o.pages_per_file_shift = bad; }, "pages_per_file_shift");
  }
  for (const std::uint8_t good : {1, 32}) {
    check_accepted(b, [good](options& o) { o.pages_per_file_shift = good; });
  }
  for (const std::uint8_t bad : {0, 129, 255}) {
    check_rejected(
        b, [bad](options& o) { o.overflow_pointers = bad; }, "overflow_pointers");
  }
  for (const std::uint8_t good : {1, 128}) {
    check_accepted(b, [good](options& o) { o.overflow_pointers = good; });
  }
  // 4 * 128 = 512 < 4096 - 12: with legal page sizes the end-page rule never binds; the
  // smallest page still fits the largest group.
  check_accepted(b, [](options& o) {
    o.overflow_pointers = 128;
    o.data_page_size = 4096;
  });
  check_rejected(
      b, [](options& o) { o.data_page_restart_interval = 0; }, "data_page_restart_interval");
  check_rejected(
      b, [](options& o) { o.index_page_restart_interval = 0; }, "index_page_restart_interval");
  check_accepted(b, [](options& o) {
    o.data_page_restart_interval = 1;
    o.index_page_restart_interval = 1;
  });
}

TEST_CASE("options: store_path entries") {
  const options b;
  check_rejected(
      b,
      [](options& o) {
        o.store_path = {"/a", ""};
      },
      "store_path");
  check_rejected(
      b,
      [](options& o) {
        o.store_path = {"/a", "/b", "/a"};
      },
      "store_path");
  check_accepted(b, [](options& o) { o.store_path = {"/a", "/b"}; });
}

TEST_CASE("options: runtime rules") {
  const options b;
  check_rejected(
      b, [](options& o) { o.num_threads = 0; }, "num_threads");
  check_rejected(
      b, [](options& o) { o.buffer_pool_size = 0; }, "buffer_pool_size");
  check_rejected(
      b, [](options& o) { o.buffer_pool_size = 4095; }, "buffer_pool_size");
  check_accepted(b, [](options& o) { o.buffer_pool_size = 4096; });
  check_rejected(
      b,
      [](options& o) {
        o.data_page_size = 32768;
        o.buffer_pool_size = 32767;
      },
      "buffer_pool_size");
  for (const std::uint32_t bad : {0u, 4096u, 12288u, 20000u, 16385u}) {
    check_rejected(
        b, [bad](options& o) { o.coroutine_stack_size = bad; }, "coroutine_stack_size");
  }
  for (const std::uint32_t good : {16384u, 20480u, 1u << 20}) {
    check_accepted(b, [good](options& o) { o.coroutine_stack_size = good; });
  }
  for (const std::uint32_t bad : {0u, 32769u, 1u << 20}) {
    check_rejected(
        b, [bad](options& o) { o.io_queue_size = bad; }, "io_queue_size");
  }
  for (const std::uint32_t good : {1u, 100u, 32768u}) {
    check_accepted(b, [good](options& o) { o.io_queue_size = good; });
  }
  for (const std::uint16_t bad : {0, 3, 3000, 32769, 65535}) {
    check_rejected(
        b, [bad](options& o) { o.buf_ring_size = bad; }, "buf_ring_size");
  }
  for (const std::uint16_t good : {1, 2, 512, 32768}) {
    check_accepted(b, [good](options& o) { o.buf_ring_size = good; });
  }
  check_rejected(
      b, [](options& o) { o.max_inflight_write = 0; }, "max_inflight_write");
  check_rejected(
      b, [](options& o) { o.max_write_batch_pages = 0; }, "max_write_batch_pages");
  check_rejected(
      b, [](options& o) { o.max_archive_tasks = 0; }, "max_archive_tasks");
  check_accepted(b, [](options& o) {
    o.max_inflight_write = 1;
    o.max_write_batch_pages = 1;
    o.max_archive_tasks = 1;
    o.file_amplify_factor = 0;    // disables compaction
    o.archive_interval_secs = 0;  // disables the cron
    o.root_meta_cache_size = 0;   // the cache always keeps its one entry
    o.mapping_arena_size = 0;
    o.manifest_limit = 0;
  });
}

TEST_CASE("options: fd budget of a store with directories") {
  options b;
  b.store_path = {"/d"};
  check_rejected(
      b, [](options& o) { o.fd_limit = 100; }, "fd_limit");
  check_accepted(b, [](options& o) { o.fd_limit = 101; });
  check_rejected(
      b,
      [](options& o) {
        o.num_threads = 4;
        o.fd_limit = 103;
      },
      "fd_limit");
  check_accepted(b, [](options& o) {
    o.num_threads = 4;
    o.fd_limit = 104;
  });
  // An in-memory store opens no files.
  check_accepted(options{}, [](options& o) { o.fd_limit = 0; });
}

TEST_CASE("options: cloud rules") {
  const options b = cloud_options();
  check_rejected(
      b, [](options& o) { o.cloud_store_path = ":bucket"; }, "cloud_store_path");
  check_rejected(
      b, [](options& o) { o.cloud_store_path = "/bucket"; }, "cloud_store_path");
  check_rejected(
      b, [](options& o) { o.store_path.clear(); }, "store_path");
  check_rejected(
      b, [](options& o) { o.max_cloud_concurrency = 0; }, "max_cloud_concurrency");
  check_rejected(
      b, [](options& o) { o.cloud_request_threads = 0; }, "cloud_request_threads");
  check_rejected(
      b, [](options& o) { o.max_upload_batch = 0; }, "max_upload_batch");
  check_rejected(
      b, [](options& o) { o.max_upload_batch = 20; }, "max_upload_batch");
  check_rejected(
      b, [](options& o) { o.max_upload_batch = 21; }, "max_upload_batch");
  check_accepted(b, [](options& o) { o.max_upload_batch = 19; });
  check_accepted(b, [](options& o) {
    o.max_upload_batch = 1;
    o.max_cloud_concurrency = 2;
  });
  check_rejected(
      b, [](options& o) { o.reserve_space_ratio = 0; }, "reserve_space_ratio");
  check_rejected(
      b,
      [](options& o) {
        o.prewarm_cloud_cache = true;
        o.prewarm_task_count = 0;
      },
      "prewarm_task_count");
  check_accepted(b, [](options& o) {
    o.prewarm_cloud_cache = true;
    o.prewarm_task_count = 1;
  });
  // What normalized() repairs is accepted.
  check_accepted(b, [](options& o) {
    o.local_space_limit = 0;
    o.data_append_mode = false;
  });
  // The cloud-only rules do not apply in local mode.
  check_accepted(options{}, [](options& o) {
    o.max_cloud_concurrency = 0;
    o.cloud_request_threads = 0;
    o.max_upload_batch = 0;
    o.reserve_space_ratio = 0;
  });
}

TEST_CASE("options: prewarm without cloud is an error") {
  check_rejected(
      options{}, [](options& o) { o.prewarm_cloud_cache = true; }, "prewarm_cloud_cache");
}

TEST_CASE("options: cloud fd budget is checked after clamping") {
  options b = cloud_options();
  b.local_space_limit = 1ull << 30;  // one 1 GiB data file -> fd_limit 101
  check_accepted(b, [](options&) {});
  check_rejected(
      b, [](options& o) { o.num_threads = 2; }, "fd_limit");
  check_accepted(b, [](options& o) {
    o.num_threads = 2;
    o.local_space_limit = 2ull << 30;
  });
}

TEST_CASE("options: normalized leaves local options alone") {
  options o;
  o.local_space_limit = 0;
  o.fd_limit = 5;
  const options n = o.normalized();
  CHECK(n.local_space_limit == 0);
  CHECK(n.fd_limit == 5);
  CHECK(n.data_append_mode == false);
}

TEST_CASE("options: normalized applies the cloud fixes") {
  options o = cloud_options();
  o.local_space_limit = 0;
  options n = o.normalized();
  CHECK(n.local_space_limit == 1ull << 40);
  CHECK(n.data_append_mode == true);
  CHECK(n.fd_limit == 1024 + 100);  // 1 TiB / 1 GiB files + reserved
  CHECK(n.validate().ok());

  o.local_space_limit = 1 << 20;  // below one data file: raised to one
  n = o.normalized();
  CHECK(n.local_space_limit == 1ull << 30);
  CHECK(n.fd_limit == 101);

  o.local_space_limit = 64ull << 30;
  o.fd_limit = 150;  // below the cap: kept
  n = o.normalized();
  CHECK(n.local_space_limit == 64ull << 30);
  CHECK(n.fd_limit == 150);

  o.pages_per_file_shift = 200;  // invalid geometry: no clamping, no overflow
  n = o.normalized();
  CHECK(n.fd_limit == 150);
  CHECK_FALSE(n.validate().ok());
}

TEST_CASE("options: validate and normalized agree") {
  const options cloud = cloud_options();
  CHECK(cloud.validate().ok());
  CHECK(cloud.normalized().validate().ok());
  CHECK(cloud.normalized().normalized().fd_limit == cloud.normalized().fd_limit);
}

// ---- option files ----------------------------------------------------------------------------

TEST_CASE("options: empty sections load the defaults") {
  const options o = load_ok("[run]\n[permanent]\n");
  CHECK(o.num_threads == 1);
  CHECK(o.pages_per_file_shift == 18);
  CHECK(o.store_path.empty());
}

TEST_CASE("options: every key loads") {
  const std::string text = R"(; a complete option file
[run]
num_threads = 4
data_page_restart_interval = 8
index_page_restart_interval = 32
init_page_count = 1000
skip_verify_checksum = true
buffer_pool_size = 400MB
root_meta_cache_size = 2GB
manifest_limit = 1048576
fd_limit = 5000
io_queue_size = 2048
max_inflight_write = 2048
max_write_batch_pages = 64
buf_ring_size = 1024
coroutine_stack_size = 65536
num_retained_archives = 3
archive_interval_secs = 3600
max_archive_tasks = 16
file_amplify_factor = 4
local_space_limit = 21474836480
reserve_space_ratio = 50
max_upload_batch = 8
max_cloud_concurrency = 32
cloud_request_threads = 2
direct_io_buffer_pool_size = 6
allow_reuse_local_caches = yes
cloud_provider = gcs
cloud_endpoint = http://127.0.0.1:7480
cloud_region = auto
cloud_access_key = AKIA
cloud_secret_key = s3cr3t
cloud_verify_ssl = 1
prewarm_cloud_cache = on
prewarm_task_count = 5
mapping_arena_size = 64

[permanent]
store_path = /disk0/eloq:/disk1/eloq
cloud_store_path = bucket/prefix
data_page_size = 8KB
data_file_size = 8MB
overflow_pointers = 32
data_append_mode = true
)";
  const options o = load_ok(text);
  CHECK(o.num_threads == 4);
  CHECK(o.data_page_restart_interval == 8);
  CHECK(o.index_page_restart_interval == 32);
  CHECK(o.init_page_count == 1000);
  CHECK(o.skip_verify_checksum == true);
  CHECK(o.buffer_pool_size == 400ull << 20);
  CHECK(o.root_meta_cache_size == 2ull << 30);
  CHECK(o.manifest_limit == 1048576);
  CHECK(o.fd_limit == 5000);
  CHECK(o.io_queue_size == 2048);
  CHECK(o.max_inflight_write == 2048);
  CHECK(o.max_write_batch_pages == 64);
  CHECK(o.buf_ring_size == 1024);
  CHECK(o.coroutine_stack_size == 65536);
  CHECK(o.num_retained_archives == 3);
  CHECK(o.archive_interval_secs == 3600);
  CHECK(o.max_archive_tasks == 16);
  CHECK(o.file_amplify_factor == 4);
  CHECK(o.local_space_limit == 20ull << 30);
  CHECK(o.reserve_space_ratio == 50);
  CHECK(o.max_upload_batch == 8);
  CHECK(o.max_cloud_concurrency == 32);
  CHECK(o.cloud_request_threads == 2);
  CHECK(o.direct_io_buffer_pool_size == 6);
  CHECK(o.allow_reuse_local_caches == true);
  CHECK(o.cloud_provider == "gcs");
  CHECK(o.cloud_endpoint == "http://127.0.0.1:7480");
  CHECK(o.cloud_region == "auto");
  CHECK(o.cloud_access_key == "AKIA");
  CHECK(o.cloud_secret_key == "s3cr3t");
  CHECK(o.cloud_verify_ssl == true);
  CHECK(o.prewarm_cloud_cache == true);
  CHECK(o.prewarm_task_count == 5);
  CHECK(o.mapping_arena_size == 64);
  CHECK(o.store_path == std::vector<std::string>{"/disk0/eloq", "/disk1/eloq"});
  CHECK(o.cloud_store_path == "bucket/prefix");
  CHECK(o.data_page_size == 8192);
  CHECK(o.pages_per_file_shift == 10);  // 8 MiB / 8 KiB = 1024 pages
  CHECK(o.data_file_size() == 8ull << 20);
  CHECK(o.overflow_pointers == 32);
  CHECK(o.data_append_mode == true);
}

TEST_CASE("options: the reference's benchmark option file loads") {
  const options o = load_ok(R"([run]
num_threads = 4
buffer_pool_size = 400MB
fd_limit = 5000
num_retained_archives = 0
skip_verify_checksum = true
[permanent]
store_path = /tmp/eloq_bench
data_page_size = 4KB
data_file_size = 8MB
data_append_mode = true
)");
  CHECK(o.pages_per_file_shift == 11);
  CHECK(o.data_append_mode);
}

TEST_CASE("options: size suffixes") {
  CHECK(load_ok(run_only("buffer_pool_size = 32MB")).buffer_pool_size == 32ull << 20);
  CHECK(load_ok(run_only("buffer_pool_size = 32mb")).buffer_pool_size == 32ull << 20);
  CHECK(load_ok(run_only("buffer_pool_size = 32Mb")).buffer_pool_size == 32ull << 20);
  CHECK(load_ok(run_only("buffer_pool_size = 64 KB")).buffer_pool_size == 64ull << 10);
  CHECK(load_ok(run_only("buffer_pool_size = 1GB")).buffer_pool_size == 1ull << 30);
  CHECK(load_ok(run_only("buffer_pool_size = 1tb")).buffer_pool_size == 1ull << 40);
  CHECK(load_ok(run_only("buffer_pool_size = 65536")).buffer_pool_size == 65536);
  CHECK(load_ok(run_only("root_meta_cache_size = 3gB")).root_meta_cache_size == 3ull << 30);
  CHECK(load_ok(permanent_only("data_page_size = 16kb")).data_page_size == 16384);
  CHECK(load_ok(permanent_only("data_page_size = 32KB")).data_page_size == 32768);
  load_fails(permanent_only("data_page_size = 64KB"), {"data_page_size", "out of range"});
  load_fails(run_only("buffer_pool_size = 10XB"), {"buffer_pool_size", "unit", "line 2"});
  load_fails(run_only("buffer_pool_size = 10 K"), {"buffer_pool_size", "unit"});
  load_fails(run_only("buffer_pool_size = 10KiB"), {"buffer_pool_size", "unit"});
  load_fails(run_only("buffer_pool_size = 1.5GB"), {"buffer_pool_size"});
  load_fails(run_only("buffer_pool_size = MB"), {"buffer_pool_size", "not a decimal"});
  load_fails(run_only("buffer_pool_size = 16777216TB"), {"buffer_pool_size", "out of range"});
  // Options without (units) in the table take plain numbers only.
  load_fails(run_only("manifest_limit = 8MB"), {"manifest_limit", "not a decimal"});
  load_fails(run_only("local_space_limit = 1TB"), {"local_space_limit"});
  load_fails(run_only("coroutine_stack_size = 32KB"), {"coroutine_stack_size"});
}

TEST_CASE("options: missing sections") {
  load_fails("[run]\nnum_threads = 2\n", {"[permanent]", "missing"});
  load_fails("[permanent]\ndata_append_mode = true\n", {"[run]", "missing"});
  load_fails("", {"[run]", "[permanent]"});
  load_fails("; only a comment\n", {"[run]", "[permanent]"});
  // Section order does not matter.
  CHECK(load_ok("[permanent]\n[run]\nnum_threads = 3\n").num_threads == 3);
}

TEST_CASE("options: unknown and misplaced keys and sections") {
  load_fails(run_only("num_thread = 4"), {"num_thread", "line 2", "unknown key"});
  load_fails("[run]\n\n; comment\nfd_limit = 100\nbogus = 1\n[permanent]\n", {"bogus", "line 5"});
  load_fails(run_only("store_path = /a"), {"store_path", "[permanent]", "line 2"});
  load_fails(permanent_only("num_threads = 2"), {"num_threads", "[run]", "line 3"});
  load_fails("num_threads = 2\n[run]\n[permanent]\n", {"num_threads", "outside", "line 1"});
  load_fails("[run]\n[permanent]\n[extra]\nx = 1\n", {"[extra]", "line 3"});
  load_fails("[run]\n[permanent]\n[extra]\n", {"[extra]", "line 3"});
  load_fails(run_only("enable_compression = true"), {"enable_compression", "line 2"});
  load_fails(permanent_only("pages_per_file_shift = 10"),
             {"pages_per_file_shift", "data_file_size"});
  load_fails(run_only("index_buffer_pool_size = 1MB"), {"index_buffer_pool_size"});
}

TEST_CASE("options: a key given twice is an error") {
  load_fails(run_only("num_threads = 2\nfd_limit = 500\nnum_threads = 3"),
             {"num_threads", "line 4", "line 2"});
}

TEST_CASE("options: names are case-insensitive, indentation and comments are ignored") {
  const options o = load_ok(R"(
  ; leading comment
  # another comment
  [RUN]
    Num_Threads = 2   ; inline comment
    FD_LIMIT=300
  [Permanent]
    data_append_mode = TRUE
)");
  CHECK(o.num_threads == 2);
  CHECK(o.fd_limit == 300);
  CHECK(o.data_append_mode);
}

TEST_CASE("options: CRLF line endings and a UTF-8 BOM") {
  const options o =
      load_ok("\xEF\xBB\xBF[run]\r\nnum_threads = 5\r\n[permanent]\r\noverflow_pointers = 8\r\n");
  CHECK(o.num_threads == 5);
  CHECK(o.overflow_pointers == 8);
}

TEST_CASE("options: bad numbers") {
  for (const std::string_view bad :
       {"abc", "-1", "+1", "0x10", "1 2", "4 # four", "1e3", "3.0", "", " ", "12abc"}) {
    const std::string text = run_only("num_threads = " + std::string(bad));
    load_fails(text, {"num_threads", "line 2"});
  }
  CHECK(load_ok(run_only("num_threads = 007")).num_threads == 7);
}

TEST_CASE("options: numbers must fit the option's type") {
  load_fails(run_only("num_threads = 65536"), {"num_threads", "out of range", "65535"});
  CHECK(load_ok(run_only("num_threads = 65535\nfd_limit = 4294967295")).num_threads == 65535);
  load_fails(run_only("file_amplify_factor = 256"), {"file_amplify_factor", "255"});
  CHECK(load_ok(run_only("file_amplify_factor = 255")).file_amplify_factor == 255);
  load_fails(run_only("fd_limit = 4294967296"), {"fd_limit", "4294967295"});
  load_fails(run_only("manifest_limit = 99999999999999999999999"),
             {"manifest_limit", "out of range"});
  load_fails(permanent_only("overflow_pointers = 256"), {"overflow_pointers", "255"});
  load_fails(run_only("buf_ring_size = 65536"), {"buf_ring_size", "65535"});
  CHECK(load_ok(run_only("buffer_pool_size = 18446744073709551615")).buffer_pool_size ==
        18446744073709551615ull);
  load_fails(run_only("buffer_pool_size = 18446744073709551616"),
             {"buffer_pool_size", "out of range"});
}

TEST_CASE("options: booleans") {
  for (const std::string_view t : {"true", "TRUE", "yes", "Yes", "on", "1"}) {
    CHECK(load_ok(run_only("skip_verify_checksum = " + std::string(t))).skip_verify_checksum);
  }
  for (const std::string_view f : {"false", "False", "no", "NO", "off", "0"}) {
    options o;
    o.skip_verify_checksum = true;
    const std::string text = run_only("skip_verify_checksum = " + std::string(f));
    REQUIRE(load_options_string(text, o).ok());
    CHECK_FALSE(o.skip_verify_checksum);
  }
  for (const std::string_view bad : {"maybe", "2", "tru", "", "y"}) {
    load_fails(run_only("cloud_verify_ssl = " + std::string(bad)), {"cloud_verify_ssl"});
  }
}

TEST_CASE("options: data_file_size sets pages_per_file_shift") {
  CHECK(load_ok(permanent_only("data_file_size = 8MB")).pages_per_file_shift == 11);
  CHECK(load_ok(permanent_only("data_file_size = 1GB")).pages_per_file_shift == 18);
  CHECK(load_ok(permanent_only("data_file_size = 8192")).pages_per_file_shift == 1);
  // Not a power-of-two number of pages: rounded down.
  CHECK(load_ok(permanent_only("data_file_size = 12MB")).pages_per_file_shift == 11);
  // Order does not matter: the final data_page_size is used.
  const options a = load_ok(permanent_only("data_file_size = 8MB\ndata_page_size = 16KB"));
  CHECK(a.data_page_size == 16384);
  CHECK(a.pages_per_file_shift == 9);
  const options b = load_ok(permanent_only("data_page_size = 16KB\ndata_file_size = 8MB"));
  CHECK(b.pages_per_file_shift == 9);
  // Fewer than two pages or more than 2^32 pages.
  load_fails(permanent_only("data_file_size = 4KB"), {"data_file_size", "line 3"});
  load_fails(permanent_only("data_file_size = 0"), {"data_file_size"});
  load_fails(permanent_only("data_file_size = 32TB"), {"data_file_size"});
  CHECK(load_ok(permanent_only("data_file_size = 16TB")).pages_per_file_shift == 32);
  // An invalid page size is reported as such, not as a file size problem.
  load_fails(permanent_only("data_page_size = 5000\ndata_file_size = 8MB"), {"data_page_size"});
}

TEST_CASE("options: store_path splitting") {
  CHECK(load_ok(permanent_only("store_path = /a")).store_path == std::vector<std::string>{"/a"});
  CHECK(load_ok(permanent_only("store_path = /a:/b:/c")).store_path ==
        std::vector<std::string>{"/a", "/b", "/c"});
  CHECK(load_ok(permanent_only("store_path = /a /b:/c")).store_path ==
        std::vector<std::string>{"/a", "/b", "/c"});
  CHECK(load_ok(permanent_only("store_path = /a::/b  /c:")).store_path ==
        std::vector<std::string>{"/a", "/b", "/c"});
  options o;
  o.store_path = {"/old"};
  REQUIRE(load_options_string(permanent_only("store_path ="), o).ok());
  CHECK(o.store_path.empty());
  load_fails(permanent_only("store_path = /a:/a"), {"store_path"});
}

TEST_CASE("options: loaded options are validated") {
  load_fails(run_only("num_threads = 0"), {"num_threads"});
  load_fails(run_only("buf_ring_size = 3000"), {"buf_ring_size"});
  load_fails(run_only("prewarm_cloud_cache = true"), {"prewarm_cloud_cache"});
  load_fails(permanent_only("cloud_store_path = :remote\nstore_path = /c"), {"cloud_store_path"});
  // Local mode: the cloud rules do not apply.
  CHECK(load_ok(run_only("max_upload_batch = 20")).max_upload_batch == 20);
}

TEST_CASE("options: keys the text omits keep the caller's values; failures change nothing") {
  options o;
  o.fd_limit = 777;
  o.cloud_region = "eu-west-1";
  o.partition_filter = [](const table_ident&) { return false; };
  REQUIRE(load_options_string(run_only("num_threads = 2"), o).ok());
  CHECK(o.num_threads == 2);
  CHECK(o.fd_limit == 777);
  CHECK(o.cloud_region == "eu-west-1");
  CHECK(o.partition_filter);

  const validation_result r = load_options_string(run_only("num_threads = 3\nfd_limit = x"), o);
  CHECK_FALSE(r.ok());
  CHECK(o.num_threads == 2);
  CHECK(o.fd_limit == 777);
}

TEST_CASE("options: syntax errors report their line") {
  load_fails("[run]\nnum_threads 4\n[permanent]\n", {"line 2", "syntax"});
  load_fails("[run]\n[permanent\n", {"line 2"});
  // The first error wins, whether ours or inih's.
  load_fails("[run]\nbogus = 1\nnot a pair\n[permanent]\n", {"line 2", "bogus"});
  load_fails("[run]\nnot a pair\nbogus = 1\n[permanent]\n", {"line 2", "syntax"});
}

TEST_CASE("options: over-long lines are rejected, not split") {
  // inih's usual line buffer holds 199 bytes; "cloud_endpoint = " is 17 of them.
  const std::string fits = "cloud_endpoint = " + std::string(182, 'x');
  CHECK(load_ok(run_only(fits)).cloud_endpoint == std::string(182, 'x'));
  load_fails(run_only(fits + "x"), {"line 2", "longer"});
  load_fails(run_only("cloud_endpoint = " + std::string(300, 'x') + "\nfd_limit = 500"),
             {"line 2", "longer"});
}

TEST_CASE("options: NUL bytes are rejected") {
  options o;
  const std::string text("[run]\nnum_threads = 2\0\n[permanent]\n", 35);
  const validation_result r = load_options_string(text, o);
  CHECK(r.code == error::invalid_args);
  CHECK(contains(r.message, "NUL"));
}

TEST_CASE("options: load from a file on disk") {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() /
      ("eloqstore_options_test_" + std::to_string(::getpid()) + ".ini");
  {
    std::ofstream f(path);
    f << "[run]\nnum_threads = 3\nbuffer_pool_size = 64MB\n"
         "[permanent]\nstore_path = /data/a /data/b\ndata_file_size = 256MB\n";
  }
  options o;
  const validation_result r = load_options_file(path.string(), o);
  INFO(r.message);
  CHECK(r.ok());
  CHECK(o.num_threads == 3);
  CHECK(o.buffer_pool_size == 64ull << 20);
  CHECK(o.store_path == std::vector<std::string>{"/data/a", "/data/b"});
  CHECK(o.pages_per_file_shift == 16);

  {
    std::ofstream f(path, std::ios::trunc);
    f << "[run]\nnum_threads = many\n[permanent]\n";
  }
  const validation_result bad = load_options_file(path.string(), o);
  CHECK(bad.code == error::invalid_args);
  CHECK(contains(bad.message, path.string()));
  CHECK(contains(bad.message, "line 2"));
  CHECK(o.num_threads == 3);

  std::filesystem::remove(path);
  const validation_result missing = load_options_file(path.string(), o);
  CHECK(missing.code == error::not_found);
  CHECK(contains(missing.message, path.string()));
}

TEST_CASE("options: an oversized file is rejected") {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() /
      ("eloqstore_options_big_" + std::to_string(::getpid()) + ".ini");
  {
    std::ofstream f(path);
    f << "[run]\n[permanent]\n";
    const std::string comment = "; " + std::string(100, 'c') + "\n";
    for (int i = 0; i < 12000; ++i) {
      f << comment;
    }
  }
  options o;
  const validation_result r = load_options_file(path.string(), o);
  CHECK(r.code == error::invalid_args);
  CHECK(contains(r.message, "1 MiB"));
  std::filesystem::remove(path);
}

TEST_CASE("options: one option set by name, as a file spells it") {
  options o;
  CHECK(set_option("num_threads", "3", o).ok());
  CHECK(o.num_threads == 3);
  CHECK(set_option("Buffer_Pool_Size", "8MB", o).ok());  // case-insensitive, with a suffix
  CHECK(o.buffer_pool_size == 8u << 20);
  CHECK(set_option("store_path", "/a:/b", o).ok());  // a [permanent] key
  CHECK(o.store_path == std::vector<std::string>{"/a", "/b"});
  CHECK(set_option("data_file_size", "1MB", o).ok());  // sets the shift from the page size
  CHECK(o.pages_per_file_shift == 8);
  CHECK(set_option("data_append_mode", "on", o).ok());
  CHECK(o.data_append_mode);

  const options before = o;
  const auto check_refused = [&](std::string_view key, std::string_view value,
                                 std::string_view says) {
    const validation_result r = set_option(key, value, o);
    CHECK(r.code == error::invalid_args);
    CHECK_MESSAGE(contains(r.message, says), r.message);
    CHECK(!contains(r.message, "line 2"));  // no line the caller never wrote
    CHECK(o.num_threads == before.num_threads);
    CHECK(o.store_path == before.store_path);
    CHECK(o.pages_per_file_shift == before.pages_per_file_shift);
  };
  check_refused("no_such_option", "1", "unknown option 'no_such_option'");
  check_refused("num_threads", "abc", "not a decimal number");
  check_refused("num_threads", "2\n[permanent]\nstore_path = /x", "line break");
  check_refused("data_file_size", "3", "data_file_size");
  check_refused("pages_per_file_shift", "4", "unknown option");
}

TEST_CASE("options: saved as an option file, read back the same") {
  options o;
  o.num_threads = 3;
  o.buffer_pool_size = 123456;
  o.skip_verify_checksum = true;
  o.cloud_endpoint = "http://127.0.0.1:9000";
  o.store_path = {"/data/a", "/data/b"};
  o.data_page_size = 16384;
  o.pages_per_file_shift = 10;
  o.data_append_mode = true;
  std::string text;
  const validation_result saved = save_options_string(o, text);
  INFO("save: " << saved.message);
  REQUIRE(saved.ok());
  CHECK(contains(text, "[run]\nnum_threads = 3\n"));
  CHECK(contains(text, "store_path = /data/a:/data/b\n"));
  CHECK(contains(text, "data_file_size = 16777216\n"));  // 16 KiB << 10

  options back;
  REQUIRE(load_options_string(text, back).ok());
  CHECK(back.num_threads == 3);
  CHECK(back.buffer_pool_size == 123456);
  CHECK(back.skip_verify_checksum);
  CHECK(back.cloud_endpoint == o.cloud_endpoint);
  CHECK(back.store_path == o.store_path);
  CHECK(back.data_page_size == 16384);
  CHECK(back.pages_per_file_shift == 10);
  CHECK(back.data_append_mode);
  std::string again;
  REQUIRE(save_options_string(back, again).ok());
  CHECK(again == text);

  // Values an option file would read differently, and invalid options: refused, naming the
  // key, with the output untouched.
  const auto check_refused = [](const std::function<void(options&)>& change,
                                std::string_view says) {
    options bad;
    change(bad);
    std::string out = "untouched";
    const validation_result r = save_options_string(bad, out);
    CHECK(r.code == error::invalid_args);
    CHECK_MESSAGE(contains(r.message, says), r.message);
    CHECK(out == "untouched");
  };
  check_refused([](options& x) { x.cloud_region = " padded"; }, "cloud_region");
  check_refused([](options& x) { x.cloud_endpoint = "http://h ;comment"; }, "cloud_endpoint");
  check_refused([](options& x) { x.store_path = {"/with space"}; }, "store_path");
  check_refused([](options& x) { x.cloud_secret_key = std::string(300, 's'); }, "longer");
  check_refused([](options& x) { x.cloud_secret_key = std::string(300, 's'); }, "cloud_secret_key");
  check_refused([](options& x) { x.num_threads = 0; }, "num_threads");
  check_refused([](options& x) { x.store_path = {"", "/a"}; }, "store_path");  // (invalid)
  // A line break: refused by name, and the message quotes no other option's value.
  options broken;
  broken.cloud_access_key = "key\n";
  broken.cloud_secret_key = "do-not-print";
  std::string out;
  const validation_result r = save_options_string(broken, out);
  CHECK(r.code == error::invalid_args);
  CHECK_MESSAGE(contains(r.message, "cloud_access_key"), r.message);
  CHECK_MESSAGE(!contains(r.message, "do-not-print"), r.message);
}
