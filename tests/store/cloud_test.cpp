// Cloud mode (io/cloud.hpp) beyond what the engine suites check over cloud_memory_fixture:
// terms taking partitions over from each other on one bucket, GC across terms, what a commit
// asks of the bucket, and injected object-store faults against a model.
#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/detail/manifest/replay.hpp>
#include <eloqstore/io/cloud.hpp>
#include <eloqstore/io/faulty.hpp>
#include <eloqstore/object/faulty.hpp>
#include <eloqstore/object/memory.hpp>

#include "support/golden_bytes.hpp"
#include "support/object_listing.hpp"
#include "support/page_store.hpp"
#include "support/store_fixture.hpp"

using namespace eloqstore;

namespace {

using cloud_store = EloqStore<test::cloud_memory_traits>;
using cloud_cache = test::cloud_memory_traits::io_type;

// One process of a test: its own (empty) cache over the shared bucket, started as `term`.
struct process {
  std::unique_ptr<cloud_cache> cache;
  std::unique_ptr<cloud_store> store;
};

options cloud_options() {
  options o;
  o.num_threads = 1;
  o.store_path = {"/cache"};
  o.cloud_store_path = "bucket/prefix";
  o.data_append_mode = true;
  o.pages_per_file_shift = test::append_test_pages_per_file_shift;
  return o;
}

process start_process(std::shared_ptr<memory_object_store> bucket, std::uint64_t term,
                      options o = cloud_options()) {
  process p;
  p.cache = std::make_unique<cloud_cache>(std::move(bucket), "prefix");
  p.store = std::make_unique<cloud_store>(o, *p.cache);
  REQUIRE(p.store->start(term) == error::ok);
  return p;
}

// Every object of the bucket: key -> (ETag, body). (Take it while no store that may write
// runs: a store's background compaction changes the bucket.)
std::map<std::string, std::pair<std::string, std::string>> snapshot(memory_object_store& b) {
  std::map<std::string, std::pair<std::string, std::string>> out;
  for (const std::string& key : test::list_all(b, "", "", list_page_max)) {
    std::string body;
    object_meta m;
    REQUIRE(b.get(key, body, m) == object_status::ok);
    out[key] = {m.etag, body};
  }
  return out;
}

// The objects of `before` that belong to term `from` or newer (and CURRENT_TERM) are in
// `after` unchanged, and `after` has no such object `before` lacks.
void check_untouched(const std::map<std::string, std::pair<std::string, std::string>>& before,
                     const std::map<std::string, std::pair<std::string, std::string>>& after,
                     std::uint64_t from) {
  const auto guarded = [&](const std::string& key) {
    const auto f = detail::parse_file_name(key.substr(key.rfind('/') + 1));
    return f.kind == detail::file_kind::current_term || f.term >= from;
  };
  for (const auto& [key, v] : before) {
    if (guarded(key)) {
      CAPTURE(key);
      REQUIRE(after.contains(key));
      CHECK(after.at(key) == v);  // same ETag, same bytes
    }
  }
  for (const auto& [key, v] : after) {
    if (guarded(key) && !before.contains(key)) {
      FAIL_CHECK("an expired term created " << key);
    }
  }
}

std::vector<write_entry> batch(test::rng& r, int n, std::uint64_t ts, std::size_t value_max,
                               std::map<std::string, std::string>* model) {
  std::map<std::string, std::string> kv;
  for (int i = 0; i < n; ++i) {
    kv["k" + std::to_string(r.uniform(0, 2000))] = r.bytes(r.uniform(1, value_max), 26);
  }
  std::vector<write_entry> b;
  for (auto& [k, v] : kv) {
    if (model != nullptr) {
      (*model)[k] = v;
    }
    b.push_back(write_entry{k, v, ts, write_op::upsert, 0});
  }
  return b;
}

void check_model(cloud_store& s, const table_ident& t,
                 const std::map<std::string, std::string>& model) {
  for (const auto& [k, v] : model) {
    const auto got = s.get(t, k);
    REQUIRE(got.ok());
    CHECK(got->value == v);
  }
}

}  // namespace

TEST_CASE("cloud: a newer term takes a partition over; the older term's writes expire") {
  auto bucket = std::make_shared<memory_object_store>();
  const table_ident t{"tbl", 0};
  test::rng r(11);
  std::map<std::string, std::string> model;

  process one = start_process(bucket, 1);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(one.store->write(t, batch(r, 40, 1, 2000, &model)) == error::ok);
  }
  // Term 2 (another node, empty cache) claims the partition and reads term 1's data.
  process two = start_process(bucket, 2);
  check_model(*two.store, t, model);
  REQUIRE(two.store->write(t, batch(r, 40, 2, 2000, &model)) == error::ok);
  std::string term_body;
  object_meta m;
  REQUIRE(bucket->get("prefix/tbl.0/CURRENT_TERM", term_body, m) == object_status::ok);
  CHECK(term_body == "2");
  two.store->stop();

  // Term 1 writes again: refused, and nothing of term 2's is touched.
  const auto before = snapshot(*bucket);
  CHECK(one.store->write(t, batch(r, 40, 1, 2000, nullptr)) == error::expired_term);
  CHECK(one.store->write(t, batch(r, 5, 1, 100, nullptr)) == error::expired_term);
  one.store->stop();
  check_untouched(before, snapshot(*bucket), 2);

  // Term 2 again after a restart with an empty cache: everything from the bucket.
  process two_again = start_process(bucket, 2);
  check_model(*two_again.store, t, model);
  two_again.store->stop();

  // A process started with an older term than the bucket's gets expired_term.
  process old = start_process(bucket, 1);
  CHECK(old.store->get(t, model.begin()->first).status() == error::expired_term);
  CHECK(old.store->write(t, batch(r, 3, 1, 10, nullptr)) == error::expired_term);
  old.store->stop();
}

TEST_CASE("cloud: GC in a newer term keeps what it references and spares newer terms") {
  auto bucket = std::make_shared<memory_object_store>();
  const table_ident t{"tbl", 1};
  test::rng r(12);
  std::map<std::string, std::string> model;

  process one = start_process(bucket, 1);
  for (int i = 0; i < 20; ++i) {
    REQUIRE(one.store->write(t, batch(r, 50, 1, 1500, &model)) == error::ok);
  }
  one.store->stop();
  // Term 2 overwrites much of it: compaction moves live pages and GC deletes files, but the
  // term-1 files its mapping still references stay in the bucket. Checked from an empty
  // cache while term-1 files are still referenced, and after most have been collected.
  const auto term1_files = [&] {
    std::size_t n = 0;
    for (const auto& [key, v] : snapshot(*bucket)) {
      const auto f = detail::parse_file_name(key.substr(key.rfind('/') + 1));
      n += f.kind == detail::file_kind::data && f.term == 1 ? 1 : 0;
    }
    return n;
  };
  const std::size_t written_by_one = term1_files();
  for (const int writes : {3, 30}) {
    process two = start_process(bucket, 2);
    for (int i = 0; i < writes; ++i) {
      REQUIRE(two.store->write(t, batch(r, 50, 2, 1500, &model)) == error::ok);
    }
    two.store->stop();
    const std::size_t left = term1_files();
    MESSAGE("term-1 data files: " << written_by_one << " written, " << left << " left after "
                                  << writes << " term-2 writes");
    if (writes == 3) {
      CHECK(left > 0);
    }
    process fresh = start_process(bucket, 2);
    check_model(*fresh.store, t, model);
    fresh.store->stop();
    // Term 1's manifest went with the first GC of term 2 (spec 8: older terms' manifests).
    for (const auto& [key, v] : snapshot(*bucket)) {
      const auto f = detail::parse_file_name(key.substr(key.rfind('/') + 1));
      CHECK_MESSAGE(!(f.kind == detail::file_kind::manifest && f.term < 2), key);
    }
  }
  process two_again = start_process(bucket, 2);

  // Term 3 takes over while term 2 is still running; term 2's writes (and their GC) expire,
  // and term 3's files stay whole.
  process three = start_process(bucket, 3);
  REQUIRE(three.store->write(t, batch(r, 50, 3, 1500, &model)) == error::ok);
  three.store->stop();
  const auto before = snapshot(*bucket);
  for (int i = 0; i < 5; ++i) {
    CHECK(two_again.store->write(t, batch(r, 50, 2, 1500, nullptr)) == error::expired_term);
  }
  two_again.store->stop();
  check_untouched(before, snapshot(*bucket), 3);
  process three_again = start_process(bucket, 3);
  check_model(*three_again.store, t, model);
}

TEST_CASE("cloud: archives come back from the bucket, in this term and the next") {
  auto bucket = std::make_shared<memory_object_store>();
  const table_ident t{"arch", 4};
  test::rng r(14);
  std::map<std::string, std::string> model;
  options o = cloud_options();
  o.num_retained_archives = 4;
  process one = start_process(bucket, 1, o);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(one.store->write(t, batch(r, 50, 1, 1500, &model)) == error::ok);
  }
  std::uint64_t first = 0;
  REQUIRE(one.store->archive(t, 0, &first) == error::ok);
  const auto at_first = model;
  for (int i = 0; i < 30; ++i) {  // compaction and GC run; the archive's pages must stay
    REQUIRE(one.store->write(t, batch(r, 50, 2, 1500, &model)) == error::ok);
  }
  one.store->stop();

  // Nodes with empty caches: the archive, its pages and the list come from the bucket.
  process two = start_process(bucket, 2, o);
  std::vector<std::uint64_t> listed;
  REQUIRE(two.store->list_archives(t, listed) == error::ok);
  CHECK(listed == std::vector<std::uint64_t>{first});
  check_model(*two.store, t, model);
  std::uint64_t saved = 0;
  REQUIRE(two.store->restore(t, first, &saved) == error::ok);
  check_model(*two.store, t, at_first);
  for (const auto& [k, v] : model) {
    if (!at_first.contains(k)) {
      CHECK(two.store->get(t, k).status() == error::not_found);
    }
  }
  two.store->stop();
  process three = start_process(bucket, 3, o);
  check_model(*three.store, t, at_first);
  REQUIRE(three.store->restore(t, saved) == error::ok);  // roll forward, from the bucket
  check_model(*three.store, t, model);
  three.store->stop();
}

TEST_CASE("cloud: what a commit asks of the bucket") {
  auto bucket = std::make_shared<memory_object_store>();
  const table_ident t{"tbl", 2};
  test::rng r(13);
  options o = cloud_options();
  o.pages_per_file_shift = 11;  // 8 MiB files: no commit below crosses into a new file
  process p = start_process(bucket, 5, o);
  REQUIRE(p.store->write(t, batch(r, 10, 1, 100, nullptr)) == error::ok);
  const auto base = bucket->stats();
  constexpr int commits = 20;
  for (int i = 0; i < commits; ++i) {
    REQUIRE(p.store->write(t, batch(r, 10, 1, 100, nullptr)) == error::ok);
  }
  const auto now = bucket->stats();
  // Each small commit: its data file and the manifest uploaded, CURRENT_TERM read once.
  CHECK(now.puts - base.puts == 2 * commits);
  CHECK(now.gets - base.gets == commits);
  // (File GC lists the partition when it runs, which depends on timing: reported only.)
  MESSAGE("per commit: " << double(now.puts - base.puts) / commits << " PUT, "
                         << double(now.gets - base.gets) / commits << " GET, "
                         << double(now.lists - base.lists) / commits << " LIST");
  // Reads served by the cache ask nothing.
  const auto before_reads = bucket->stats();
  for (int i = 0; i < 100; ++i) {
    (void)p.store->get(t, "k" + std::to_string(i));
  }
  CHECK(bucket->stats().gets == before_reads.gets);
  // The cache counted every request it made (all of the bucket's), and what they cost.
  const object_requests seen = p.cache->requests();
  const auto all = bucket->stats();
  CHECK(seen.gets == all.gets);
  CHECK(seen.puts == all.puts);
  CHECK(seen.removes == all.removes);
  CHECK(seen.lists == all.lists);
  CHECK(seen.bytes_up == all.bytes_up);
  CHECK(seen.bytes_down == all.bytes_down);
  CHECK(seen.failures == 0);
  REQUIRE(p.cache->request_shards() == 1);
  object_requests parts = p.cache->requests_of_shard(0);
  parts += p.cache->requests_of_no_shard();
  CHECK(parts.puts == seen.puts);
  CHECK(p.cache->requests_of_shard(0).puts >= 2 * commits);
  CHECK(seen.cost() > 0.0);
  MESSAGE("$" << seen.cost() << " for " << commits + 1 << " commits and 100 reads");
  p.store->stop();
}

TEST_CASE("cloud: injected object-store faults never lose an acknowledged write") {
  for (const std::uint64_t seed : {1, 2, 3}) {
    CAPTURE(seed);
    memory_object_store truth;
    object_faults faults;
    faults.fail_before = 0.05;
    faults.fail_after = 0.05;
    faults.cut_get = 0.05;
    faults.short_list = 0.3;
    using faulty = faulty_object_store<memory_object_store>;
    auto bucket = std::make_shared<faulty>(truth, seed, faults);
    using faulty_cache = cloud_io<memory_io, faulty>;
    struct faulty_traits : test::cloud_memory_traits {
      using io_type = faulty_cache;
      static std::unique_ptr<io_type> make_io(const options&) { return nullptr; }
    };
    const table_ident t{"tbl", 3};
    test::rng r(seed);
    // Per key, the values it may hold: the acknowledged one, and those of failed writes
    // since (a failed write may or may not have taken effect).
    struct key_state {
      std::set<std::string> values;
      bool acked = false;
    };
    std::map<std::string, key_state> allowed;
    std::size_t ok = 0, failed = 0;
    for (int round = 0; round < 6; ++round) {
      faulty_cache cache(bucket, "prefix");
      EloqStore<faulty_traits> s(cloud_options(), cache);
      REQUIRE(s.start(1) == error::ok);
      for (int i = 0; i < 15; ++i) {
        std::map<std::string, std::string> kv;
        auto b = batch(r, 30, 1, 3000, &kv);
        const error e = s.write(t, b);
        CHECK(e != error::invalid_args);
        for (const auto& [k, v] : kv) {
          key_state& st = allowed[k];
          if (e == error::ok) {
            st.values = {v};
            st.acked = true;
          } else {
            st.values.insert(v);
          }
        }
        (e == error::ok ? ok : failed) += 1;
      }
      s.stop();
    }
    MESSAGE("writes acknowledged: " << ok << ", failed: " << failed);
    CHECK(ok > 0);
    CHECK(failed > 0);
    // No faults, an empty cache: every key holds an allowed value.
    bucket->set_faults(object_faults{});
    faulty_cache cache(bucket, "prefix");
    EloqStore<faulty_traits> s(cloud_options(), cache);
    REQUIRE(s.start(1) == error::ok);
    for (const auto& [k, st] : allowed) {
      const auto got = s.get(t, k);
      CAPTURE(k);
      if (got.ok()) {
        CHECK(st.values.contains(got->value));
      } else {
        // Absent only if no write of it was ever acknowledged.
        CHECK(got.status() == error::not_found);
        CHECK(!st.acked);
      }
    }
    s.stop();
  }
}

TEST_CASE("cloud: a data file whose creating write failed does not block later uploads") {
  // (Found by the simulation, cloud seed 9.) A write that was to create a data file fails
  // before anything reaches the disk; the engine's commit fails, and its next commits use
  // other files. The file was counted as written, so every later upload looked for it, and
  // every later commit of the partition failed with not_found. Only such a file is passed
  // over: a file missing for another reason still fails the upload.
  auto bucket = std::make_shared<memory_object_store>();
  using local = faulty_io<memory_io>;
  cloud_io<local, memory_object_store> io(bucket, "prefix", 1);
  REQUIRE(io.open() == error::ok);
  const table_ident t{"tbl", 0};
  std::string body;
  REQUIRE(io.read_file(t, "manifest_1", body) == error::not_found);  // (claims t for term 1)
  local::faults refuse;
  refuse.write_error = 1;
  io.set_faults(refuse);
  const std::vector<char> page(4096, 'p');
  CHECK(io.write(t, "data_5_1", 0, page) == error::io_fail);
  CHECK(io.write(t, "data_7_1", 3 * page.size(), page) == error::io_fail);  // (new: not at 0)
  io.set_faults({});
  // The next commit (a snapshot written whole) is uploaded; the file never was.
  const std::string manifest(100, 'm');
  CHECK(io.write_file_atomic(t, "manifest_1", manifest) == error::ok);
  object_meta meta;
  REQUIRE(bucket->get("prefix/tbl.0/manifest_1", body, meta) == object_status::ok);
  CHECK(body == manifest);
  CHECK(bucket->get("prefix/tbl.0/data_5_1", body, meta) == object_status::not_found);
  CHECK(bucket->get("prefix/tbl.0/data_7_1", body, meta) == object_status::not_found);
  // A write that creates the file now goes up with the next commit.
  CHECK(io.write(t, "data_5_1", 0, page) == error::ok);
  CHECK(io.sync(t, "data_5_1") == error::ok);
  CHECK(io.write_file_atomic(t, "manifest_1", manifest + "2") == error::ok);
  REQUIRE(bucket->get("prefix/tbl.0/data_5_1", body, meta) == object_status::ok);
  CHECK(body == std::string(page.begin(), page.end()));
  // A file that went missing otherwise (its write succeeded) still fails the upload, loudly.
  CHECK(io.write(t, "data_6_1", 0, page) == error::ok);
  REQUIRE(static_cast<local&>(io).remove(t, "data_6_1") == error::ok);  // (behind the cache)
  CHECK(io.write_file_atomic(t, "manifest_1", manifest + "3") == error::not_found);
  REQUIRE(bucket->get("prefix/tbl.0/manifest_1", body, meta) == object_status::ok);
  CHECK(body == manifest + "2");
  io.close();
}

// ---- a bucket laid out by the reference -----------------------------------------------------

namespace {

// The objects a reference node leaves in the bucket for partition golden.0 (spec 3.7, 4 and
// 8.5), every byte written out by hand from the layouts (support/golden_bytes.hpp); 4 KiB
// pages, 32 pages per data file (cloud_options), data files uploaded whole at their
// fallocated size (spec 8.3). The story the objects tell:
//   term 2 wrote data_0_2: fp 0 leaf {apple: red, banana: yellow} (next leaf id 1), fp 1 leaf
//     {cherry: v} (prev id 0), fp 2 the root, a leaf index {leftmost id 0, "cherry" -> id 1};
//     its manifest_2 is one snapshot (mapping id 0 -> fp 0, id 1 -> fp 1, id 2 -> fp 2), also
//     archived as manifest_2_1700000000000000;
//   term 3 took the partition over (CURRENT_TERM "3"), promoted the manifest by renaming it to
//     manifest_3 (so its snapshot still names term 2 for the manifest), and wrote leaf
//     {cherry: w, date: brown} at fp 32, the first page of data_1_3, with a log record
//     remapping id 1 -> fp 32. manifest_2 is still in the bucket (no GC ran since).
constexpr std::uint64_t golden_archive_ts = 1700000000000000;
constexpr std::size_t golden_page = 4096;

std::vector<char> golden_page_end(std::vector<char> page) {
  page.resize(golden_page, '\0');
  test::seal_page_by_hand(page);
  return page;
}

// clang-format off
std::vector<char> golden_leaf_apple_banana() {
  std::vector<char> p;
  test::append(p, {
                      0, 0, 0, 0, 0, 0, 0, 0,  // checksum, set at the end
                      0x02,                    // type 2: data page
                      0x34, 0x00,              // content length 52
                      0xff, 0xff, 0xff, 0xff,  // previous leaf: none
                      0x01, 0x00, 0x00, 0x00,  // next leaf: id 1
                      // offset 19 (restart 0): "apple" -> "red", ts +100 -> 200
                      0x00, 0x05, 0x30, 'a', 'p', 'p', 'l', 'e', 'r', 'e', 'd', 0xc8, 0x01,
                      // offset 32: shared 0, "banana" -> "yellow", ts +0
                      0x00, 0x06, 0x60, 'b', 'a', 'n', 'a', 'n', 'a',
                      'y', 'e', 'l', 'l', 'o', 'w', 0x00,
                      0x13, 0x00,  // offset 48: restart[0] = 19
                      0x01, 0x00,  // offset 50: one restart; content ends at 52
                  });
  REQUIRE(p.size() == 52);
  return golden_page_end(std::move(p));
}

std::vector<char> golden_leaf_cherry_v() {
  std::vector<char> p;
  test::append(p, {
                      0, 0, 0, 0, 0, 0, 0, 0,
                      0x02,
                      0x23, 0x00,              // content length 35
                      0x00, 0x00, 0x00, 0x00,  // previous leaf: id 0
                      0xff, 0xff, 0xff, 0xff,  // next leaf: none
                      // offset 19: "cherry" -> "v", ts 100
                      0x00, 0x06, 0x10, 'c', 'h', 'e', 'r', 'r', 'y', 'v', 0xc8, 0x01,
                      0x13, 0x00,  // offset 31: restart[0] = 19
                      0x01, 0x00,  // offset 33; content ends at 35
                  });
  REQUIRE(p.size() == 35);
  return golden_page_end(std::move(p));
}

std::vector<char> golden_root_index() {
  std::vector<char> p;
  test::append(p, {
                      0, 0, 0, 0, 0, 0, 0, 0,
                      0x01,                    // type 1: leaf index (children are data pages)
                      0x1c, 0x00,              // content length 28
                      0x00, 0x00, 0x00, 0x00,  // leftmost child: id 0
                      // offset 15 (restart 0): "cherry" -> child id 1 (delta +1 -> 2)
                      0x00, 0x06, 'c', 'h', 'e', 'r', 'r', 'y', 0x02,
                      0x0f, 0x00,  // offset 24: restart[0] = 15
                      0x01, 0x00,  // offset 26; content ends at 28
                  });
  REQUIRE(p.size() == 28);
  return golden_page_end(std::move(p));
}

std::vector<char> golden_leaf_cherry_w_date() {
  std::vector<char> p;
  test::append(p, {
                      0, 0, 0, 0, 0, 0, 0, 0,
                      0x02,
                      0x30, 0x00,              // content length 48
                      0x00, 0x00, 0x00, 0x00,  // previous leaf: id 0
                      0xff, 0xff, 0xff, 0xff,  // next leaf: none
                      // offset 19: "cherry" -> "w", ts +300 -> 600 = 0x258
                      0x00, 0x06, 0x10, 'c', 'h', 'e', 'r', 'r', 'y', 'w', 0xd8, 0x04,
                      // offset 31: shared 0, "date" -> "brown", ts +0
                      0x00, 0x04, 0x50, 'd', 'a', 't', 'e', 'b', 'r', 'o', 'w', 'n', 0x00,
                      0x13, 0x00,  // offset 44: restart[0] = 19
                      0x01, 0x00,  // offset 46; content ends at 48
                  });
  REQUIRE(p.size() == 48);
  return golden_page_end(std::move(p));
}

// Term 2's snapshot: root 2, no TTL tree, max_fp_id 3, no dictionary, mapping id 0 -> fp 0,
// id 1 -> fp 1, id 2 -> fp 2, terms {file 0 -> 2, manifest -> 2}.
std::vector<char> golden_term2_snapshot() {
  std::vector<char> r;
  test::append(r, {
                      0, 0, 0, 0, 0, 0, 0, 0,  // checksum
                      0x02, 0x00, 0x00, 0x00,  // root: id 2
                      0xff, 0xff, 0xff, 0xff,  // TTL root: none
                      0x1a, 0x00, 0x00, 0x00,  // payload length 26
                      0x03,                    // max_fp_id 3
                      0x00,                    // no dictionary
                      0x03, 0x00, 0x00, 0x00,  // mapping bytes 3
                      0x01, 0x09, 0x11,        // (0 << 3) | 1, (1 << 3) | 1, (2 << 3) | 1
                      0x0d, 0x00, 0x00, 0x00,  // term mapping bytes 13
                      0x00, 0x02,              // file 0 -> term 2
                      0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02,
                  });
  REQUIRE(r.size() == 20 + 26);
  test::seal_record_by_hand(r);
  return r;
}

// Term 3's log record: root 2, id 1 -> fp 32, terms {0 -> 2, 1 -> 3, manifest -> 3}.
std::vector<char> golden_term3_log() {
  std::vector<char> r;
  test::append(r, {
                      0, 0, 0, 0, 0, 0, 0, 0,
                      0x02, 0x00, 0x00, 0x00,  // root: id 2
                      0xff, 0xff, 0xff, 0xff,  // TTL root: none
                      0x1a, 0x00, 0x00, 0x00,  // payload length 26
                      0x03, 0x00, 0x00, 0x00,  // mapping bytes 3
                      0x01, 0x81, 0x02,        // id 1 -> (32 << 3) | 1 = 257
                      0x0f, 0x00, 0x00, 0x00,  // term mapping bytes 15
                      0x00, 0x02,              // file 0 -> term 2
                      0x01, 0x03,              // file 1 -> term 3
                      0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x03,
                  });
  REQUIRE(r.size() == 20 + 26);
  test::seal_record_by_hand(r);
  return r;
}
// clang-format on

std::string golden_data_file(std::initializer_list<std::vector<char>> pages) {
  std::string f;
  for (const std::vector<char>& p : pages) {
    f.append(p.data(), p.size());
  }
  f.resize(golden_page << test::append_test_pages_per_file_shift, '\0');  // fallocated size
  return f;
}

// key -> body of every object of the reference's bucket.
std::map<std::string, std::string> golden_bucket() {
  const std::vector<char> snap = golden_term2_snapshot();
  std::vector<char> manifest3 = snap;
  const std::vector<char> log = golden_term3_log();
  manifest3.insert(manifest3.end(), log.begin(), log.end());
  const std::string dir = "prefix/golden.0/";
  return {
      {dir + "CURRENT_TERM", "3"},
      {dir + "data_0_2",
       golden_data_file({golden_leaf_apple_banana(), golden_leaf_cherry_v(), golden_root_index()})},
      {dir + "data_1_3", golden_data_file({golden_leaf_cherry_w_date()})},
      {dir + "manifest_2", std::string(snap.begin(), snap.end())},
      {dir + "manifest_2_" + std::to_string(golden_archive_ts),
       std::string(snap.begin(), snap.end())},
      {dir + "manifest_3", std::string(manifest3.begin(), manifest3.end())},
  };
}

std::vector<kv_entry> scan_all(cloud_store& s, const table_ident& t) {
  std::vector<kv_entry> out;
  auto range = s.scan(t);
  for (const kv_entry& e : range) {
    out.push_back(e);
  }
  REQUIRE(range.status() == error::ok);
  return out;
}

std::vector<std::pair<std::string, std::string>> keys_values(const std::vector<kv_entry>& es) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const kv_entry& e : es) {
    out.emplace_back(e.key, e.value);
  }
  return out;
}

using kv_list = std::vector<std::pair<std::string, std::string>>;

}  // namespace

TEST_CASE("cloud: a bucket laid out by the reference opens, and grows as the reference's would") {
  auto bucket = std::make_shared<memory_object_store>();
  for (const auto& [key, body] : golden_bucket()) {
    object_meta m;
    REQUIRE(bucket->put(key, body, put_condition::absent(), m) == object_status::ok);
  }
  const table_ident t{"golden", 0};
  const kv_list term3_data = {
      {"apple", "red"}, {"banana", "yellow"}, {"cherry", "w"}, {"date", "brown"}};
  const kv_list archived = {{"apple", "red"}, {"banana", "yellow"}, {"cherry", "v"}};

  SUBCASE("the term that wrote it reads it, and reading changes no object") {
    const auto before = snapshot(*bucket);
    process p = start_process(bucket, 3);
    const std::vector<kv_entry> all = scan_all(*p.store, t);
    CHECK(keys_values(all) == term3_data);
    REQUIRE(all.size() == 4);
    CHECK(all[0].timestamp == 100);
    CHECK(all[1].timestamp == 100);
    CHECK(all[2].timestamp == 300);
    CHECK(all[3].timestamp == 300);
    const auto cherry = p.store->get(t, "cherry");
    REQUIRE(cherry.ok());
    CHECK(cherry->value == "w");
    CHECK(p.store->get(t, "blueberry").status() == error::not_found);
    std::vector<std::uint64_t> listed;
    REQUIRE(p.store->list_archives(t, listed) == error::ok);
    CHECK(listed == std::vector<std::uint64_t>{golden_archive_ts});
    std::string problem;
    CHECK_MESSAGE(p.store->verify(t, problem) == error::ok, problem);
    p.store->stop();
    CHECK(snapshot(*bucket) == before);
  }

  SUBCASE("a newer term takes it over, writes under the reference's names, and restores") {
    {
      process p = start_process(bucket, 4);
      CHECK(keys_values(scan_all(*p.store, t)) == term3_data);
      REQUIRE(p.store->write(t, {write_entry{"elder", "x", 400, write_op::upsert, 0}}) ==
              error::ok);
      p.store->stop();
    }
    // The bucket as the reference would leave it: the CAS-ed CURRENT_TERM, term 4's manifest,
    // and the new page in a fresh file of term 4 (the term bump of spec 4.6 starts file 2);
    // term 2's file stays (still referenced), and so does the archive; the older manifests
    // may be gone (GC removes them when it runs).
    std::set<std::string> keys;
    for (const auto& [key, v] : snapshot(*bucket)) {
      keys.insert(key.substr(std::string("prefix/golden.0/").size()));
    }
    const std::set<std::string> required = {"CURRENT_TERM", "data_0_2", "data_2_4",
                                            "manifest_2_" + std::to_string(golden_archive_ts),
                                            "manifest_4"};
    // The write rewrote the only page of data_1_3 (elder sorts after date), so GC may have
    // taken that file too.
    const std::set<std::string> optional = {"data_1_3", "manifest_2", "manifest_3"};
    for (const std::string& k : required) {
      CHECK_MESSAGE(keys.contains(k), k);
    }
    for (const std::string& k : keys) {
      CHECK_MESSAGE((required.contains(k) || optional.contains(k)), k);
    }
    std::string body;
    object_meta m;
    REQUIRE(bucket->get("prefix/golden.0/CURRENT_TERM", body, m) == object_status::ok);
    CHECK(body == "4");
    // Term 4's manifest, read with the replay of spec 4.6: the new page is in file 2 of term 4,
    // the older files keep their terms.
    REQUIRE(bucket->get("prefix/golden.0/manifest_4", body, m) == object_status::ok);
    detail::replay_result r;
    REQUIRE(detail::replay_manifest(body, r) == error::ok);
    std::map<std::uint64_t, std::uint64_t> terms(r.terms.begin(), r.terms.end());
    CHECK(terms[0] == 2);
    CHECK(terms[2] == 4);
    CHECK(terms[test::u64_max - 1] == 4);
    CHECK(r.max_fp_id > 2 * 32);
    CHECK(r.max_fp_id <= 3 * 32);

    // Another node of term 4 with an empty cache: everything from the bucket; then the
    // archive of term 2 is restored, and the saved manifest rolls it forward again.
    process q = start_process(bucket, 4);
    kv_list all = term3_data;
    all.emplace_back("elder", "x");
    CHECK(keys_values(scan_all(*q.store, t)) == all);
    std::uint64_t saved = 0;
    REQUIRE(q.store->restore(t, golden_archive_ts, &saved) == error::ok);
    CHECK(keys_values(scan_all(*q.store, t)) == archived);
    REQUIRE(q.store->restore(t, saved) == error::ok);
    CHECK(keys_values(scan_all(*q.store, t)) == all);
    // An archive of term 4 names term 4 for its manifest, like the manifest itself.
    std::uint64_t ts = 0;
    REQUIRE(q.store->archive(t, 0, &ts) == error::ok);
    q.store->stop();
    REQUIRE(bucket->get("prefix/golden.0/manifest_4_" + std::to_string(ts), body, m) ==
            object_status::ok);
    REQUIRE(detail::replay_manifest(body, r) == error::ok);
    CHECK(std::find(r.terms.begin(), r.terms.end(),
                    std::pair<std::uint64_t, std::uint64_t>{test::u64_max - 1, 4}) !=
          r.terms.end());
  }

  SUBCASE("an older term is refused") {
    process p = start_process(bucket, 2);
    CHECK(p.store->get(t, "apple").status() == error::expired_term);
    p.store->stop();
  }
}
