// Cloud mode's background uploads (durability::local, io/cloud.hpp "background uploads"):
// batches acknowledged after the local fdatasync reach the bucket later, several commits in
// one upload; wait_uploaded() waits for them; the bucket holds a consistent committed state at
// every instant (a node that lost its disk opens it); an upload that fails leaves the write on
// the local disk, and a restart on the same cache uploads it; a newer term that took the
// partition over meanwhile wins.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/eloqstore.hpp>
#include <eloqstore/io/cloud.hpp>
#include <eloqstore/object/faulty.hpp>
#include <eloqstore/object/memory.hpp>

#include "support/loop_fs.hpp"
#include "support/page_store.hpp"
#include "support/store_fixture.hpp"

using namespace eloqstore;

namespace {

// The bucket behind fault injection, counting the most data-file PUTs in flight at once
// (with the `slow` fault, a PUT lets other tasks run before it is carried out). While held,
// a data-file PUT waits (letting its shard's other tasks run) until released.
class bucket_type : public faulty_object_store<memory_object_store> {
 public:
  using faulty_object_store::faulty_object_store;
  object_status put(std::string_view key, std::string_view body, const put_condition& cond,
                    object_meta& meta) {
    const bool data = key.find("/data_") != std::string_view::npos;
    if (data) {
      {
        std::lock_guard lock(mu_);
        most_ = std::max(most_, ++now_);
      }
      while (held_.load()) {
        yield_task();
      }
    }
    const object_status st = faulty_object_store::put(key, body, cond, meta);
    if (data) {
      std::lock_guard lock(mu_);
      --now_;
    }
    return st;
  }
  [[nodiscard]] std::uint32_t most_data_puts_at_once() {
    std::lock_guard lock(mu_);
    return most_;
  }
  void hold(bool on) { held_.store(on); }

 private:
  // The running task goes to the back of its shard's queue (as the `slow` fault does).
  static void yield_task() {
    completion_port* port = completion_port::current();
    void* task = port == nullptr ? nullptr : port->hooks().running_task();
    if (task == nullptr) {
      std::this_thread::yield();
      return;
    }
    port->post(task);
    port->hooks().park(port->hooks().sched);
  }

  std::atomic<bool> held_{false};
  std::mutex mu_;
  std::uint32_t now_ = 0;
  std::uint32_t most_ = 0;
};

// Cloud mode over uring_io on a real directory (fiber shards), the bucket in memory behind
// fault injection.
struct upload_traits : default_traits {
  using io_type = cloud_io<uring_io, bucket_type>;
  static std::unique_ptr<io_type> make_io(const options&) { return nullptr; }
};
using store_type = EloqStore<upload_traits>;

struct node {
  std::unique_ptr<upload_traits::io_type> cache;
  std::unique_ptr<store_type> store;
};

struct bucket_fixture {
  memory_object_store truth;
  std::shared_ptr<bucket_type> bucket = std::make_shared<bucket_type>(truth, 7);
  std::vector<std::string> dirs;
  bool group_commit = true;
  std::uint64_t cache_files = 0;   // a cache budget of this many data files (0: unbounded)
  std::uint32_t upload_batch = 0;  // max_upload_batch (0: the default)

  ~bucket_fixture() {
    std::error_code ec;
    for (const std::string& d : dirs) {
      std::filesystem::remove_all(d, ec);
    }
  }
  options opts(const std::string& dir) const {
    options o;
    o.num_threads = 1;
    o.coroutine_stack_size = test::test_stack_bytes();
    o.store_path = {dir};
    o.cloud_store_path = "bucket/prefix";
    o.data_append_mode = true;
    o.pages_per_file_shift = test::append_test_pages_per_file_shift;
    o.allow_reuse_local_caches = true;
    o.group_commit = group_commit;
    if (upload_batch != 0) {
      o.max_upload_batch = upload_batch;
    }
    if (cache_files != 0) {
      o.manifest_limit = 32 * 1024;
      o.local_space_limit = cache_files * o.data_file_size();
      o.reserve_space_ratio = 4;
    }
    return o;
  }
  // A node on cache directory `dir` (a new one when empty), started as `term`.
  node start(std::uint64_t term, std::string dir = {}) {
    if (dir.empty()) {
      dir = test::fresh_temp_dir("upload");
      dirs.push_back(dir);
    }
    const options o = opts(dir);
    node n;
    n.cache = std::make_unique<upload_traits::io_type>(bucket, "prefix", o.store_path,
                                                       default_traits::uring_config(o));
    n.store = std::make_unique<store_type>(o, *n.cache);
    REQUIRE(n.store->start(term) == error::ok);
    return n;
  }
};

std::vector<write_entry> batch(test::rng& r, int n, std::uint64_t ts,
                               std::map<std::string, std::string>& model) {
  std::map<std::string, std::string> kv;
  for (int i = 0; i < n; ++i) {
    kv["k" + std::to_string(r.uniform(0, 3000))] = r.bytes(r.uniform(1, 2000), 26);
  }
  std::vector<write_entry> b;
  for (auto& [k, v] : kv) {
    model[k] = v;
    b.push_back(write_entry{k, v, ts, write_op::upsert, 0});
  }
  return b;
}

void check_model(store_type& s, const table_ident& t,
                 const std::map<std::string, std::string>& model) {
  std::size_t seen = 0;
  for (const auto& e : s.scan(t, "", "")) {
    REQUIRE(model.contains(e.key));
    CHECK(model.at(e.key) == e.value);
    ++seen;
  }
  CHECK(seen == model.size());
}

}  // namespace

TEST_CASE("cloud uploads: local acknowledgements, uploads in the background, fewer PUTs") {
  bucket_fixture b;
  b.group_commit = false;  // one commit per batch: the uploads must take several at once
  const table_ident t{"bg", 1};
  std::map<std::string, std::string> model;
  test::rng r(31);
  node a = b.start(1);
  const std::uint64_t puts_before = b.truth.stats().puts;
  // Many batches in flight at once, each acknowledged after its local fdatasync; the upload
  // task, stepping aside for the writer, takes several commits in each upload.
  constexpr int batches = 200;
  std::vector<std::unique_ptr<batch_write_request>> reqs;
  for (int i = 0; i < batches; ++i) {
    auto req = std::make_unique<batch_write_request>();
    req->set_args(t, batch(r, 20, static_cast<std::uint64_t>(i + 1), model));
    req->set_durability(durability::local);
    REQUIRE(a.store->exec_async(*req));
    reqs.push_back(std::move(req));
  }
  for (auto& req : reqs) {
    req->wait();
    REQUIRE(req->status() == error::ok);
  }
  REQUIRE(a.store->wait_uploaded(t) == error::ok);
  const upload_progress p = a.store->upload_status(t);
  CHECK(p.committed >= batches);
  CHECK(p.uploaded == p.committed);
  CHECK(p.last == error::ok);
  const std::uint64_t puts = b.truth.stats().puts - puts_before;
  MESSAGE(p.committed << " commits uploaded with " << puts << " PUTs");
  CHECK(puts < p.committed);  // at commit, each would have taken two (data file, manifest)
  check_model(*a.store, t, model);
  a.store->stop();

  // A node that never saw this cache (its disk lost) reads it all from the bucket.
  node c = b.start(2);
  check_model(*c.store, t, model);
  c.store->stop();
}

TEST_CASE("cloud uploads: an upload-acknowledged batch carries the local ones before it") {
  bucket_fixture b;
  const table_ident t{"mix", 0};
  std::map<std::string, std::string> model;
  test::rng r(32);
  node a = b.start(1);
  for (int i = 0; i < 30; ++i) {
    REQUIRE(a.store->write(t, batch(r, 10, 1, model), durability::local) == error::ok);
  }
  REQUIRE(a.store->write(t, batch(r, 10, 2, model)) == error::ok);  // durability::uploaded
  // Without waiting and without stopping a: a node that takes over now sees every write.
  node c = b.start(2);
  check_model(*c.store, t, model);
  // a learns that it lost the partition at its next upload at the latest; what it
  // acknowledged locally since never reaches the bucket.
  std::map<std::string, std::string> stale;
  const error e = a.store->write(t, batch(r, 5, 3, stale), durability::local);
  CHECK((e == error::ok || e == error::expired_term));
  CHECK(a.store->wait_uploaded(t) == error::expired_term);
  CHECK(a.store->write(t, batch(r, 5, 3, stale), durability::local) == error::expired_term);
  check_model(*c.store, t, model);
  c.store->stop();
  a.store->stop();
}

TEST_CASE("cloud uploads: a failed upload keeps the write; a restart on the cache uploads it") {
  bucket_fixture b;
  const table_ident t{"fail", 2};
  std::map<std::string, std::string> model;
  test::rng r(33);
  node a = b.start(1);
  REQUIRE(a.store->write(t, batch(r, 50, 1, model)) == error::ok);  // uploaded
  const std::string dir = b.dirs.back();
  const auto uploaded_state = model;

  object_faults down;
  down.fail_before = 1;  // every request fails (after its retries: cloud_io does not retry)
  b.bucket->set_faults(down);
  for (int i = 0; i < 20; ++i) {
    REQUIRE(a.store->write(t, batch(r, 30, 2, model), durability::local) == error::ok);
  }
  check_model(*a.store, t, model);  // acknowledged: readable from the local disk
  CHECK(a.store->wait_uploaded(t) != error::ok);
  const upload_progress p = a.store->upload_status(t);
  CHECK(p.uploaded < p.committed);
  CHECK(p.last != error::ok);
  // An upload-acknowledged write fails now, and changes nothing acknowledged.
  std::map<std::string, std::string> lost;
  CHECK(a.store->write(t, batch(r, 5, 3, lost)) != error::ok);
  a.store->stop();  // its upload task gives up

  SUBCASE("the same node restarts on its cache (same term) and uploads") {
    b.bucket->set_faults(object_faults{});
    node again = b.start(1, dir);
    check_model(*again.store, t, model);  // (the failed batch left nothing)
    again.store->stop();
  }
  SUBCASE("the same node restarts on its cache with a newer term and uploads") {
    b.bucket->set_faults(object_faults{});
    node again = b.start(2, dir);
    check_model(*again.store, t, model);
    again.store->stop();
  }
  SUBCASE("another node took over first: the commits never uploaded are lost") {
    b.bucket->set_faults(object_faults{});
    node other = b.start(2);
    check_model(*other.store, t, uploaded_state);
    std::map<std::string, std::string> theirs = uploaded_state;
    REQUIRE(other.store->write(t, batch(r, 10, 4, theirs)) == error::ok);
    other.store->stop();
    node again = b.start(3, dir);
    check_model(*again.store, t, theirs);
    again.store->stop();
    return;
  }
  // A node with an empty cache sees what the restarted one uploaded.
  node fresh = b.start(5);
  check_model(*fresh.store, t, model);
  fresh.store->stop();
}

TEST_CASE("cloud uploads: a small cache under background uploads evicts only what is uploaded") {
  // Streamed writes, compaction and eviction at once: a file must never be taken for
  // uploaded while writes into it are in flight or between its write and its commit, so
  // eviction never loses an acknowledged page, and the bucket never lacks one its manifest
  // names. Writes that find the cache full of files not yet uploaded upload them first.
  bucket_fixture b;
  b.cache_files = 8;
  const table_ident t{"small", 0};
  std::map<std::string, std::string> model;
  std::vector<std::string> refused;  // keys of batches that failed: never written
  test::rng r(34);
  node a = b.start(1);
  constexpr int rounds = 12;
  constexpr int per_round = 25;
  for (int round = 0; round < rounds; ++round) {
    std::vector<std::unique_ptr<batch_write_request>> reqs;
    std::vector<std::vector<std::string>> keys;
    for (int i = 0; i < per_round; ++i) {
      std::vector<write_entry> entries;
      keys.emplace_back();
      for (int j = 0; j < 10; ++j) {
        // Fresh keys and overwrites of earlier ones (compaction has live pages to move).
        const std::string k = r.chance(0.5) && !model.empty()
                                  ? "n" + std::to_string(r.uniform(0, round * per_round * 10))
                                  : "n" + std::to_string((round * per_round + i) * 10 + j);
        if (std::find(keys.back().begin(), keys.back().end(), k) != keys.back().end()) {
          continue;
        }
        keys.back().push_back(k);
        entries.push_back(write_entry{k, r.bytes(r.uniform(100, 900), 26),
                                      static_cast<std::uint64_t>(round + 1), write_op::upsert, 0});
      }
      std::sort(entries.begin(), entries.end(),
                [](const write_entry& x, const write_entry& y) { return x.key < y.key; });
      auto req = std::make_unique<batch_write_request>();
      req->set_args(t, std::move(entries));
      req->set_durability(durability::local);
      REQUIRE(a.store->exec_async(*req));
      reqs.push_back(std::move(req));
    }
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      reqs[i]->wait();
      const error e = reqs[i]->status();
      REQUIRE_MESSAGE((e == error::ok || e == error::out_of_space), error_message(e));
      for (const write_entry& w : reqs[i]->entries()) {
        if (e == error::ok) {
          model[w.key] = w.value;
        } else if (!model.contains(w.key)) {
          refused.push_back(w.key);
        }
      }
    }
  }
  REQUIRE(a.store->wait_uploaded(t) == error::ok);
  CHECK(a.cache->cache_used().used <= a.cache->cache_used().limit);
  MESSAGE(model.size() << " keys, " << refused.size() << " keys of refused batches, "
                       << a.cache->cache_used().evictions << " evictions");
  // A write that finds the cache full of files not yet uploaded uploads them and goes on
  // (each commit here needs far less than the budget).
  CHECK(refused.empty());
  CHECK(a.cache->cache_used().evictions > 0);
  check_model(*a.store, t, model);
  a.store->stop();
  node fresh = b.start(2);
  check_model(*fresh.store, t, model);
  for (const std::string& k : refused) {
    if (!model.contains(k)) {
      CHECK(fresh.store->get(t, k).status() == error::not_found);
    }
  }
  fresh.store->stop();
}

TEST_CASE("cloud uploads: a full local disk fails the write that needs room, and loses nothing") {
  // The cache directory on a small file system that fills up long before the cache budget
  // (unbounded here) would evict anything: the disk, not the budget, refuses. Batches are
  // acknowledged after their upload or (two in three) after the local fdatasync.
  test::loop_fs disk(16 << 20, test::loop_fs::kind::tmpfs);
  if (!disk.mounted()) {
    MESSAGE("full disk test skipped: " << disk.why());
    return;
  }
  bucket_fixture b;
  const std::string dir = disk.mount_point() + "/cache";
  std::filesystem::create_directories(dir);
  const table_ident t{"full", 1};
  test::rng r(35);
  std::map<std::string, std::string> model;
  const auto batch_of = [&](int i, std::map<std::string, std::string>& into) {
    std::vector<write_entry> out;
    for (int j = 0; j < 30; ++j) {
      const std::string k = "b" + std::to_string(1000 + i) + "_" + std::to_string(10 + j);
      into[k] = r.bytes(r.uniform(200, 3000), 26);
      out.push_back(write_entry{k, into[k], 1, write_op::upsert, 0});
    }
    return out;
  };
  node a = b.start(1, dir);
  const std::string filler = test::fill_disk(disk.mount_point(), 2 << 20);
  int failed = -1;
  error failed_with = error::ok;
  std::map<std::string, std::string> lost;
  for (int i = 0; i < 400 && failed < 0; ++i) {
    std::map<std::string, std::string> kv;
    const durability d = i % 3 == 0 ? durability::uploaded : durability::local;
    const error e = a.store->write(t, batch_of(i, kv), d);
    if (e == error::ok) {
      model.insert(kv.begin(), kv.end());
    } else {
      failed = i;
      failed_with = e;
      lost = kv;
    }
  }
  MESSAGE("write " << failed << " of 400 failed: " << static_cast<int>(failed_with) << "; "
                   << model.size() << " keys acknowledged");
  REQUIRE(failed > 0);
  CHECK(failed_with == error::out_of_space);
  // The node still reads everything acknowledged, and nothing of the failed batch.
  check_model(*a.store, t, model);
  for (const auto& [k, v] : lost) {
    CHECK(a.store->get(t, k).status() == error::not_found);
  }
  // Space again: the node writes, and its background uploads catch up.
  std::filesystem::remove(filler);
  for (int i = 400; i < 405; ++i) {
    REQUIRE(a.store->write(t, batch_of(i, model), durability::local) == error::ok);
  }
  CHECK(a.store->wait_uploaded(t) == error::ok);
  check_model(*a.store, t, model);
  a.store->stop();
  // A node with an empty cache: every acknowledged batch from the bucket, the failed one not.
  node other = b.start(2);
  check_model(*other.store, t, model);
  other.store->stop();
}

TEST_CASE("cloud uploads: first opens of a partition at once ask the bucket once, lose nothing") {
  // Every bucket request lets the shard's other tasks run first (as over s3_store), so the
  // requests that reach a partition together open it together.
  bucket_fixture b;
  object_faults slow;
  slow.slow = 1.0;
  b.bucket->set_faults(slow);
  test::rng r(36);
  std::map<std::uint32_t, std::map<std::string, std::string>> models;
  // Runs a write of `writes` (if any) amid reads of its keys, all submitted at once; the
  // reads find nothing or what the write wrote.
  const auto together = [&](store_type& s, const table_ident& t,
                            const std::map<std::string, std::string>& model, bool write) {
    std::vector<std::unique_ptr<read_request>> reads;
    batch_write_request w;
    std::vector<write_entry> entries;
    for (const auto& [k, v] : model) {
      entries.push_back(write_entry{k, v, 1, write_op::upsert, 0});
    }
    for (int i = 0; i < 8; ++i) {
      if (write && i == 3) {
        w.set_args(t, entries);
        REQUIRE(s.exec_async(w));
      }
      auto& rd = *reads.emplace_back(std::make_unique<read_request>());
      rd.set_args(t, std::next(model.begin(), i % model.size())->first);
      REQUIRE(s.exec_async(rd));
    }
    if (write) {
      w.wait();
      REQUIRE(w.status() == error::ok);
    }
    for (const auto& rd : reads) {
      rd->wait();
      if (rd->status() == error::ok) {
        CHECK(model.at(std::string(rd->key())) == rd->value());
      } else {
        CHECK(rd->status() == error::not_found);
      }
    }
  };
  {
    // New partitions: the write's files must survive the opens of the reads that found
    // nothing in the bucket.
    node a = b.start(1);
    for (std::uint32_t p = 0; p < 6; ++p) {
      (void)batch(r, 30, 1, models[p]);
      together(*a.store, table_ident{"first", p}, models[p], true);
    }
    for (auto& [p, model] : models) {
      check_model(*a.store, table_ident{"first", p}, model);
    }
    a.store->stop();
  }
  // A cold node of a newer term: eight reads open a partition together, one claim (the
  // CURRENT_TERM put) and one promotion (the manifest put) between them.
  node c = b.start(2);
  const object_requests before = c.cache->requests();
  together(*c.store, table_ident{"first", 0}, models[0], false);
  CHECK(c.cache->requests().puts - before.puts == 2);
  for (auto& [p, model] : models) {
    check_model(*c.store, table_ident{"first", p}, model);
  }
  CHECK(b.bucket->counts().slowed > 0);
  c.store->stop();
}

TEST_CASE("cloud uploads: failed background uploads are tried again without another write") {
  bucket_fixture b;
  const table_ident t{"retry", 3};
  std::map<std::string, std::string> model;
  test::rng r(37);
  // The failures of background uploads reach the log callback (stats.hpp). (Declared before
  // the node: its store, which logs until it stops, goes first.)
  std::mutex log_mu;
  std::vector<std::string> warnings;
  node a = b.start(1);
  a.store->set_log_callback([&](log_level level, std::string_view line) {
    std::lock_guard lock(log_mu);
    if (level == log_level::warning) {
      warnings.emplace_back(line);
    }
  });
  REQUIRE(a.store->write(t, batch(r, 20, 1, model)) == error::ok);
  object_faults down;
  down.fail_before = 1;
  b.bucket->set_faults(down);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(a.store->write(t, batch(r, 20, 2, model), durability::local) == error::ok);
  }
  CHECK(a.store->wait_uploaded(t) != error::ok);
  // Nothing is written or waited for, yet the partition's uploads are tried again (and fail
  // while the bucket is down). (The upload task the failed wait left behind gives up within
  // milliseconds; the tries counted later are the store's retries, backing off to 2 s here.)
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::uint64_t refused = b.bucket->counts().failed_before;
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  CHECK(b.bucket->counts().failed_before > refused);
  {
    std::lock_guard lock(log_mu);
    REQUIRE(!warnings.empty());
    INFO("first warning: " << warnings.front());
    CHECK(std::any_of(warnings.begin(), warnings.end(), [](const std::string& w) {
      return w.starts_with("retry.3: background upload: ");
    }));
  }
  CHECK(a.store->stats().total()[counter::background_errors] > 0);
  CHECK(a.store->upload_status(t).uploaded < a.store->upload_status(t).committed);
  // The bucket is back: the next try uploads every acknowledged commit.
  b.bucket->set_faults(object_faults{});
  const auto since = std::chrono::steady_clock::now();
  upload_progress p = a.store->upload_status(t);
  while (p.uploaded < p.committed &&
         std::chrono::steady_clock::now() - since < std::chrono::seconds(60)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    p = a.store->upload_status(t);
  }
  MESSAGE("caught up after " << std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::steady_clock::now() - since)
                                    .count()
                             << " ms");
  CHECK(p.uploaded == p.committed);
  CHECK(p.last == error::ok);
  // A node of a newer term with an empty cache reads every acknowledged batch.
  node other = b.start(2);
  check_model(*other.store, t, model);
  other.store->stop();
  a.store->stop();
}

TEST_CASE("cloud uploads: a shard uploads at most max_upload_batch files at once") {
  // Eight partitions of one shard with background uploads of several files each; every
  // bucket request lets the shard's other tasks run first, and data-file PUTs are held in
  // the bucket until every write is acknowledged and as many PUTs as the limit allows wait
  // there (or a minute passed), so the uploads overlap as much as the limit lets them.
  for (const std::uint32_t batch_limit : {1U, 3U}) {
    CAPTURE(batch_limit);
    bucket_fixture b;
    b.upload_batch = batch_limit;
    object_faults slow;
    slow.slow = 1.0;
    b.bucket->set_faults(slow);
    b.bucket->hold(true);
    test::rng r(38);
    std::map<std::uint32_t, std::map<std::string, std::string>> models;
    node a = b.start(1);
    std::vector<std::unique_ptr<batch_write_request>> reqs;
    for (int round = 0; round < 8; ++round) {
      for (std::uint32_t p = 0; p < 8; ++p) {
        auto& req = *reqs.emplace_back(std::make_unique<batch_write_request>());
        req.set_args(table_ident{"many", p}, batch(r, 30, 1 + round, models[p]));
        req.set_durability(durability::local);
        REQUIRE(a.store->exec_async(req));
      }
    }
    for (auto& req : reqs) {
      req->wait();
      REQUIRE(req->status() == error::ok);
    }
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    while (b.bucket->most_data_puts_at_once() < batch_limit &&
           std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    b.bucket->hold(false);
    for (std::uint32_t p = 0; p < 8; ++p) {
      REQUIRE(a.store->wait_uploaded(table_ident{"many", p}) == error::ok);
    }
    const std::uint32_t most = b.bucket->most_data_puts_at_once();
    MESSAGE("most data-file PUTs at once: " << most);
    CHECK(most <= batch_limit);
    if (batch_limit > 1) {
      CHECK(most == batch_limit);  // (the uploads did overlap up to the limit)
    }
    a.store->stop();
    node other = b.start(2);
    for (auto& [p, model] : models) {
      check_model(*other.store, table_ident{"many", p}, model);
    }
    other.store->stop();
  }
}
