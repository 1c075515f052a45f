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

#include <eloqstore/io/cloud.hpp>
#include <eloqstore/object/faulty.hpp>
#include <eloqstore/object/memory.hpp>

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
  CHECK(seen.bytes_up == all.bytes_in);
  CHECK(seen.bytes_down == all.bytes_out);
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
