// The defects hostile tests found, each pinned: a write that fails on a full disk leaves no
// trace (after a crash and after a clean restart), last-writer-wins over the whole timestamp
// range, one store per store path (LOCK with flock, across objects and processes), the
// recorded identity (comparator, page size, file size, overflow pointers, append mode)
// checked at start with the directory untouched, start() errors that name the path and the
// errno text, batch rejections that name the entry and the rule, and a request submitted
// while still pending.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <range/v3/algorithm/for_each.hpp>

#include <eloqstore/eloqstore.hpp>

#include "support/loop_fs.hpp"
#include "support/page_store.hpp"
#include "support/store_fixture.hpp"

using namespace eloqstore;

namespace {

using kv_model = std::map<std::string, std::string>;

std::string key_of(int i) {
  char key[16];
  std::snprintf(key, sizeof key, "k%06d", i);
  return key;
}

// Puts keys from `first` on until one fails; returns the index of the failed put (its error
// in `e`), or -1 if all of `count` fit. Acknowledged puts go to `m`.
template <typename Store>
int put_until_failure(Store& store, const table_ident& t, int first, int count, kv_model& m,
                      error& e) {
  for (int i = first; i < first + count; ++i) {
    const std::string value = "v" + std::to_string(i) + std::string(200, 'x');
    e = store.put(t, key_of(i), value, static_cast<std::uint64_t>(i + 1));
    if (e != error::ok) {
      return i;
    }
    m[key_of(i)] = value;
  }
  return -1;
}

// Starts a store of `fx`, puts keys key_of(0..count) with values "v<i>", and stops it.
template <typename Fixture>
void populate(Fixture& fx, const table_ident& t, int count) {
  auto store = fx.make();
  REQUIRE(store->start() == error::ok);
  for (int i = 0; i < count; ++i) {
    REQUIRE(store->put(t, key_of(i), "v" + std::to_string(i), 1) == error::ok);
  }
}

template <typename Store>
void check_model(Store& store, const table_ident& t, const kv_model& m, const char* when) {
  CAPTURE(when);
  std::size_t wrong = 0;
  for (const auto& [k, v] : m) {
    const auto got = store.get(t, k);
    wrong += got.ok() && got->value == v ? 0 : 1;
  }
  CHECK(wrong == 0);
  std::size_t scanned = 0;
  ranges::for_each(store.scan(t), [&](const kv_entry&) { ++scanned; });
  CHECK(scanned == m.size());
  std::string problem;
  CHECK(store.verify(t, problem) == error::ok);
  CHECK(problem.empty());
}

// Every regular file under `dir` with a hash of its bytes.
std::map<std::string, std::uint64_t> file_hashes(const std::string& dir) {
  std::map<std::string, std::uint64_t> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) {
      continue;
    }
    std::ifstream in(e.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    out[e.path().string()] = XXH3_64bits(bytes.data(), bytes.size());
  }
  return out;
}

// Keys in descending byte order: "" is the largest key, not the smallest.
struct reverse_comparator {
  [[nodiscard]] std::weak_ordering compare(std::string_view a, std::string_view b) const noexcept {
    return bytewise_comparator{}.compare(b, a);
  }
  [[nodiscard]] static constexpr std::string_view name() noexcept { return "test.reverse"; }
  [[nodiscard]] std::string shortest_separator(std::string_view, std::string_view b) const {
    return std::string(b);
  }
};
struct reverse_traits : pread_traits {
  using comparator = reverse_comparator;
};
struct page8k_traits : pread_traits {
  static constexpr std::size_t page_size = 8192;
};

}  // namespace

TEST_CASE_TEMPLATE("safety: a write that fails on a full disk leaves no trace", Fixture,
                   test::pread_fixture, test::uring_fixture) {
  // Fill the file system, free 12 KiB, and put until a put fails: its data pages may fit,
  // its manifest record or the zero blocks ahead of it do not. The failed put must be gone
  // after a crash (the writing process dies; a fork here) and after a clean restart, and
  // the partition takes erases and truncates once space is free again.
  for (const auto kind : {test::loop_fs::kind::tmpfs, test::loop_fs::kind::ext4}) {
    const std::string fs_kind = test::loop_fs::kind_name(kind);
    CAPTURE(fs_kind);
    test::loop_fs disk(kind == test::loop_fs::kind::ext4 ? 32 << 20 : 16 << 20, kind);
    if (!disk.mounted()) {
      MESSAGE("full disk test skipped: " << disk.why());
      continue;
    }
    for (const bool crash : {true, false}) {
      CAPTURE(crash);
      Fixture fx;
      fx.opts.store_path = {disk.mount_point() + "/store"};
      const table_ident t{"full", 0};
      kv_model m;
      {
        auto store = fx.make();
        REQUIRE(store->start() == error::ok);
        error e = error::ok;
        REQUIRE(put_until_failure(*store, t, 0, 50, m, e) == -1);
      }
      const std::string filler = test::fill_disk(disk.mount_point(), 12 << 10);
      int failed = -1;
      error failed_with = error::ok;
      if (crash) {
        int pipe_fds[2];
        REQUIRE(::pipe(pipe_fds) == 0);
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
          // The child writes until a put fails, reports it, and dies without stop().
          ::close(pipe_fds[0]);
          auto store = fx.make();
          int result[2] = {-2, 0};
          if (store->start() == error::ok) {
            kv_model acknowledged;
            error e = error::ok;
            result[0] = put_until_failure(*store, t, 50, 3000, acknowledged, e);
            result[1] = static_cast<int>(e);
          }
          [[maybe_unused]] const ssize_t n = ::write(pipe_fds[1], result, sizeof result);
          ::_exit(0);
        }
        ::close(pipe_fds[1]);
        int result[2] = {-3, 0};
        CHECK(::read(pipe_fds[0], result, sizeof result) == static_cast<ssize_t>(sizeof result));
        ::close(pipe_fds[0]);
        int status = 0;
        ::waitpid(child, &status, 0);
        failed = result[0];
        failed_with = static_cast<error>(result[1]);
        for (int i = 50; i < failed; ++i) {
          m[key_of(i)] = "v" + std::to_string(i) + std::string(200, 'x');
        }
      } else {
        auto store = fx.make();
        REQUIRE(store->start() == error::ok);
        failed = put_until_failure(*store, t, 50, 3000, m, failed_with);
        REQUIRE(failed >= 50);
        CHECK_FALSE(store->get(t, key_of(failed)).ok());
        check_model(*store, t, m, "after the failed put, before the restart");
        store->stop();  // its manifest rewrite may fail on the full disk
        REQUIRE(store->start() == error::ok);
        CHECK(store->get(t, key_of(failed)).status() == error::not_found);
        check_model(*store, t, m, "after a clean restart on the full disk");
      }
      REQUIRE(failed >= 50);
      CHECK(failed_with == error::out_of_space);
      std::filesystem::remove(filler);
      auto store = fx.make();
      REQUIRE(store->start() == error::ok);
      CHECK(store->get(t, key_of(failed)).status() == error::not_found);
      check_model(*store, t, m, "after the restart, space freed");
      CHECK(store->erase(t, key_of(3), 1000000) == error::ok);
      m.erase(key_of(3));
      CHECK(store->delete_range(t, key_of(10), key_of(20)) == error::ok);
      m.erase(m.lower_bound(key_of(10)), m.lower_bound(key_of(20)));
      CHECK(store->truncate(t, key_of(40)) == error::ok);
      m.erase(m.lower_bound(key_of(40)), m.end());
      check_model(*store, t, m, "after erase, delete_range and truncate");
      store->stop();
      REQUIRE(store->start() == error::ok);
      check_model(*store, t, m, "after the last restart");
      store->stop();
      std::filesystem::remove_all(fx.opts.store_path[0]);
    }
  }
}

TEST_CASE_TEMPLATE("safety: last writer wins over the whole timestamp range", Fixture,
                   test::memory_fixture, test::uring_fixture) {
  // Pages keep timestamps up to INT64_MAX (spec 3.3); the store compares what it keeps, so
  // the outcome is the same whether writes commit one by one or grouped.
  constexpr std::uint64_t top = std::numeric_limits<std::int64_t>::max();
  const std::array<std::uint64_t, 4> stamps{0, top, top + 1,
                                            std::numeric_limits<std::uint64_t>::max()};
  Fixture fx;
  auto store = fx.make();
  REQUIRE(store->start() == error::ok);
  const table_ident t{"lww", 0};
  std::array<std::size_t, 4> order{0, 1, 2, 3};
  int key = 0;
  do {
    for (const bool grouped : {false, true}) {
      const std::string k = "key" + std::to_string(key++);
      std::string want;
      std::uint64_t want_ts = 0;
      bool have = false;
      std::vector<std::unique_ptr<batch_write_request>> reqs;
      for (const std::size_t i : order) {
        const std::string value = "ts" + std::to_string(i);
        const std::uint64_t kept = std::min(stamps[i], top);
        if (!have || kept >= want_ts) {  // ties go to the later write
          want = value;
          want_ts = kept;
          have = true;
        }
        if (grouped) {
          reqs.push_back(std::make_unique<batch_write_request>());
          reqs.back()->set_args(t, {write_entry{k, value, stamps[i], write_op::upsert, 0}});
          REQUIRE(store->exec_async(*reqs.back()));
        } else {
          REQUIRE(store->put(t, k, value, stamps[i]) == error::ok);
        }
      }
      for (auto& r : reqs) {
        r->wait();
        CHECK(r->status() == error::ok);
      }
      const auto got = store->get(t, k);
      REQUIRE(got.ok());
      CAPTURE(grouped);
      CHECK(got->value == want);
      CHECK(got->timestamp == want_ts);
    }
  } while (std::next_permutation(order.begin(), order.end()));
  store->stop();
  REQUIRE(store->start() == error::ok);
  std::size_t n = 0;
  ranges::for_each(store->scan(t), [&](const kv_entry& e) { n += e.timestamp <= top ? 1 : 0; });
  CHECK(n == 48);
}

TEST_CASE("safety: one store per store path, across objects and processes") {
  test::uring_fixture fx;
  const table_ident t{"locked", 0};
  auto first = fx.make();
  REQUIRE(first->start() == error::ok);
  REQUIRE(first->put(t, "a", "1", 1) == error::ok);

  auto second = fx.make();
  CHECK(second->start() == error::store_locked);
  CHECK(second->last_message().find(fx.dir) != std::string::npos);
  CHECK(second->last_message().find("process " + std::to_string(::getpid())) != std::string::npos);
  CHECK_FALSE(second->running());

  // Another process: its start() fails while this one holds the path.
  const auto child_start = [&] {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      auto store = fx.make();
      const error e = store->start();
      const bool saw = e == error::ok && store->get(t, "a").ok();
      store->stop();
      ::_exit(e == error::ok ? (saw ? 0 : 99) : static_cast<int>(e));
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  CHECK(child_start() == static_cast<int>(error::store_locked));

  // The holder lost nothing and goes on.
  REQUIRE(first->put(t, "b", "2", 1) == error::ok);
  CHECK(first->get(t, "a").ok());
  first->stop();
  CHECK(child_start() == 0);  // free again: another process starts and reads
  REQUIRE(second->start() == error::ok);
  CHECK(second->get(t, "a").ok());
  CHECK(second->get(t, "b").ok());
  CHECK(first->start() == error::store_locked);
}

TEST_CASE("safety: a store path remembers what wrote it and refuses other settings") {
  test::pread_fixture fx;
  const table_ident t{"ident", 3};
  populate(fx, t, 300);
  const auto before = file_hashes(fx.dir);
  REQUIRE(before.size() >= 4);  // LOCK, IDENTITY, a manifest and a data file
  const auto refused = [&](auto&& store, const char* needle) {
    CAPTURE(needle);
    CHECK(store.start() == error::invalid_args);
    CHECK(store.last_message().find(needle) != std::string::npos);
    CHECK(store.last_message().find(fx.dir) != std::string::npos);
    CHECK_FALSE(store.running());
    CHECK(file_hashes(fx.dir) == before);
  };
  {
    options o = fx.opts;
    o.pages_per_file_shift = 12;
    refused(EloqStore<pread_traits>(o),
            "pages_per_file_shift was 18 when the store was written, is 12");
  }
  {
    options o = fx.opts;
    o.overflow_pointers = 8;
    refused(EloqStore<pread_traits>(o),
            "overflow_pointers was 16 when the store was written, is 8");
  }
  {
    options o = fx.opts;
    o.data_page_size = 8192;
    refused(EloqStore<page8k_traits>(o),
            "data_page_size was 4096 when the store was written, is 8192");
  }
  refused(EloqStore<reverse_traits>(fx.opts),
          "the comparator was 'eloqstore.bytewise' when the store was written, is 'test.reverse'");
  // A damaged record is reported as such, not guessed around.
  const std::string identity = fx.dir + "/.eloqstore/IDENTITY";
  const std::string saved = [&] {
    std::ifstream in(identity);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }();
  std::ofstream(identity, std::ios::trunc) << "format_version=1\ncomparator=eloqstore.bytewise\n";
  {
    EloqStore<pread_traits> store(fx.opts);
    CHECK(store.start() == error::corrupted);
    CHECK(store.last_message().find("IDENTITY") != std::string::npos);
  }
  std::ofstream(identity, std::ios::trunc) << saved;
  // The same settings open it; a path without a record (as the reference writes them) is
  // taken as the options describe it, and gets the record.
  {
    auto store = fx.make();
    REQUIRE(store->start() == error::ok);
    CHECK(store->get(t, key_of(7)).ok());
  }
  std::filesystem::remove(identity);
  {
    auto store = fx.make();
    REQUIRE(store->start() == error::ok);
    CHECK(store->get(t, key_of(7)).ok());
  }
  CHECK(std::filesystem::exists(identity));
}

TEST_CASE("safety: options the traits cannot honour are refused at start, not ignored") {
  // A store asked for the object-store tier by traits without one (pread_traits) would keep
  // everything local and lose what its user counted on: start() refuses, names the option,
  // and touches nothing (an existing store path, or a new one).
  test::pread_fixture fx;
  const table_ident t{"feature", 1};
  populate(fx, t, 50);
  const auto before = file_hashes(fx.dir);
  const auto fresh = fx.dir + "/fresh";
  const std::pair<void (*)(options&), const char*> cases[] = {
      {[](options& o) { o.cloud_store_path = "bucket/prefix"; }, "cloud_store_path"},
  };
  for (const auto& [set, name] : cases) {
    for (const bool existing : {true, false}) {
      CAPTURE(name);
      CAPTURE(existing);
      options o = fx.opts;
      if (!existing) {
        o.store_path = {fresh};
      }
      set(o);
      EloqStore<pread_traits> store(o);
      CHECK(store.start() == error::invalid_args);
      CHECK(store.last_message().find(name) != std::string::npos);
      CHECK_FALSE(store.running());
      CHECK(file_hashes(fx.dir) == before);
      CHECK_FALSE(std::filesystem::exists(fresh));
    }
  }
  // The defaults of the options that only shape those features start as before.
  auto store = fx.make();
  REQUIRE(store->start() == error::ok);
  CHECK(store->get(t, key_of(7)).ok());
}

TEST_CASE("safety: start() errors name the path, the operation and the cause") {
  const std::string dir = test::fresh_temp_dir("errors");
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/plain") << "not a directory";
  {
    options o;
    o.store_path = {dir + "/plain"};
    EloqStore<pread_traits> store(o);
    CHECK(store.start() == error::invalid_args);
    CHECK(store.last_message().find(dir + "/plain") != std::string::npos);
    CHECK(store.last_message().find("not a directory") != std::string::npos);
  }
  {
    options o;
    o.store_path = {dir + "/plain/below"};
    EloqStore<default_traits> store(o);
    CHECK(store.start() == error::invalid_args);
    CHECK(store.last_message().find("not a directory") != std::string::npos);
  }
  std::filesystem::remove_all(dir);

  // A read-only file system: refused at start(), with its own error code, changing nothing.
  test::loop_fs disk(8 << 20, test::loop_fs::kind::tmpfs);
  if (!disk.mounted()) {
    MESSAGE("read-only test skipped: " << disk.why());
    return;
  }
  options o;
  o.store_path = {disk.mount_point() + "/store"};
  {
    EloqStore<default_traits> store(o);
    REQUIRE(store.start() == error::ok);
    REQUIRE(store.put({"ro", 0}, "k", "v", 1) == error::ok);
  }
  const auto before = file_hashes(disk.mount_point());
  // A closed io_uring ring lets go of its registered files a moment later (the kernel
  // tears rings down asynchronously): until then the remount is busy.
  bool read_only = false;
  for (int tries = 0; tries < 100 && !read_only; ++tries) {
    read_only = disk.remount(true);
    if (!read_only) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  INFO(disk.why());
  REQUIRE(read_only);
  {
    EloqStore<default_traits> store(o);
    CHECK(store.start() == error::no_permission);
    CHECK(store.last_message().find(o.store_path[0]) != std::string::npos);
    CHECK(store.last_message().find("Read-only file system") != std::string::npos);
  }
  CHECK(file_hashes(disk.mount_point()) == before);
  {
    // Opened read-only, the same store starts and reads (no lock file can be written).
    options ro = o;
    ro.read_only = true;
    EloqStore<default_traits> store(ro);
    REQUIRE(store.start() == error::ok);
    const auto got = store.get({"ro", 0}, "k");
    REQUIRE(got.ok());
    CHECK(got->value == "v");
    CHECK(store.put({"ro", 0}, "k", "w", 2) == error::no_permission);
  }
  CHECK(file_hashes(disk.mount_point()) == before);
  REQUIRE(disk.remount(false));
}

TEST_CASE_TEMPLATE("safety: a rejected batch names the entry and the rule, and changes nothing",
                   Fixture, test::memory_fixture, test::uring_fixture) {
  Fixture fx;
  auto store = fx.make();
  REQUIRE(store->start() == error::ok);
  const table_ident t{"reject", 1};
  REQUIRE(store->put(t, "b", "kept", 5) == error::ok);
  const auto rejected = [&](std::vector<write_entry> batch, const std::string& why) {
    CAPTURE(why);
    batch_write_request r;
    r.set_args(t, std::move(batch));
    CHECK(store->exec_sync(r) == error::invalid_args);
    CHECK(std::string(r.message()) == why);
    const auto got = store->get(t, "b");
    CHECK((got.ok() && got->value == "kept" && got->timestamp == 5));
    std::size_t n = 0;
    ranges::for_each(store->scan(t), [&](const kv_entry&) { ++n; });
    CHECK(n == 1);
  };
  const auto w = [](std::string k) {
    return write_entry{std::move(k), "x", 9, write_op::upsert, 0};
  };
  rejected({w("a"), w("b"), w("")}, "entry 2: empty key");
  rejected({w("a"), w(std::string(3000, 'k'))},
           "entry 1: key of 3000 bytes is longer than half a page (2048 bytes)");
  rejected({w("a"), w("c"), w("a")}, "entry 2: duplicate key (also entry 0)");
  rejected({w("a"), w("a")}, "entry 1: duplicate key (also entry 0)");
  write_entry bad_op = w("z");
  bad_op.op = static_cast<write_op>(7);
  rejected({w("a"), bad_op}, "entry 1: unknown write operation 7");
  // The message of a request that succeeds is the error's own.
  batch_write_request ok;
  ok.set_args(t, {w("c")});
  CHECK(store->exec_sync(ok) == error::ok);
  CHECK(ok.message() == "ok");
}

TEST_CASE("safety: a request submitted while it is still pending is refused, not run twice") {
  test::uring_fixture fx;
  auto store = fx.make();
  REQUIRE(store->start() == error::ok);
  const table_ident t{"twice", 0};
  REQUIRE(store->put(t, "k", "v", 1) == error::ok);
  // A blocks the shard thread in its callback, so B stays queued (pending) meanwhile.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> blocking;
  read_request a;
  a.set_args(t, "k");
  REQUIRE(store->exec_async(a, 0, [released, &blocking](request&) {
    blocking.set_value();
    released.wait();
  }));
  blocking.get_future().wait();  // the shard thread is held from here on
  read_request b;
  b.set_args(t, "k");
  std::atomic<int> b_callbacks{0};
  REQUIRE(store->exec_async(b, 7, [&](request&) { ++b_callbacks; }));
  CHECK_FALSE(b.done());
  CHECK_FALSE(store->exec_async(b, 8, [&](request&) { b_callbacks += 100; }));
  CHECK(store->exec_sync(b) == error::busy);
  CHECK(b.user_data() == 7);
  release.set_value();
  store->stop();  // drains: B completes once
  CHECK(b_callbacks.load() == 1);
  CHECK(b.status() == error::ok);
  CHECK(b.value() == "v");
}

TEST_CASE("safety: unbounded scan ends are infinities whatever the comparator says of \"\"") {
  // Under a descending comparator "" sorts last, so treating an empty bound as the empty key
  // would make scan(t) return nothing. Checked against a model in the same order.
  test::file_fixture<reverse_traits, 1> fx;
  auto store = fx.make();
  REQUIRE(store->start() == error::ok);
  const table_ident t{"reverse", 0};
  const auto desc = [](const std::string& a, const std::string& b) { return a > b; };
  std::map<std::string, std::string, decltype(desc)> m(desc);
  test::rng r(5);
  for (int b = 0; b < 12; ++b) {
    std::vector<write_entry> batch;
    for (int i = 0; i < 300; ++i) {
      const std::string k = key_of(static_cast<int>(r.uniform(0, 20000)));
      if (std::none_of(batch.begin(), batch.end(),
                       [&](const write_entry& w) { return w.key == k; })) {
        batch.push_back(
            write_entry{k, "v" + k + std::string(r.uniform(1, 90), 'x'), 1, write_op::upsert, 0});
        m[k] = batch.back().value;
      }
    }
    REQUIRE(store->write(t, std::move(batch)) == error::ok);
  }
  std::string problem;
  REQUIRE(store->verify(t, problem) == error::ok);
  const auto collect = [&](auto range) {
    std::vector<std::string> keys;
    ranges::for_each(range, [&](const kv_entry& e) { keys.push_back(e.key); });
    CHECK(range.status() == error::ok);
    return keys;
  };
  const auto model_keys = [&](const std::string& begin, const std::string& end, bool reverse) {
    std::vector<std::string> keys;
    for (const auto& [k, v] : m) {
      if ((begin.empty() || !desc(k, begin)) && (end.empty() || desc(k, end))) {
        keys.push_back(k);
      }
    }
    if (reverse) {
      std::reverse(keys.begin(), keys.end());
    }
    return keys;
  };
  const std::string mid = std::next(m.begin(), static_cast<long>(m.size() / 2))->first;
  const std::string late = std::next(m.begin(), static_cast<long>(m.size() * 3 / 4))->first;
  for (const std::size_t page : {std::size_t{7}, std::size_t{256}}) {
    CAPTURE(page);
    CHECK(collect(store->scan(t, {}, {}, page)) == model_keys({}, {}, false));
    CHECK(collect(store->scan(t, mid, {}, page)) == model_keys(mid, {}, false));
    CHECK(collect(store->scan(t, {}, mid, page)) == model_keys({}, mid, false));
    CHECK(collect(store->scan(t, mid, late, page)) == model_keys(mid, late, false));
    CHECK(collect(store->scan_reverse(t, {}, {}, page)) == model_keys({}, {}, true));
    CHECK(collect(store->scan_reverse(t, mid, {}, page)) == model_keys(mid, {}, true));
    CHECK(collect(store->scan_reverse(t, {}, mid, page)) == model_keys({}, mid, true));
  }
  // floor: the last key not after the probe in the comparator's order.
  for (int i = 0; i < 200; ++i) {
    const std::string probe = key_of(static_cast<int>(r.uniform(0, 20000))) + "5";
    const auto got = store->floor(t, probe);
    const auto after = m.upper_bound(probe);  // the floor is the key before the first after
    if (after == m.begin()) {
      CHECK(got.status() == error::not_found);
    } else {
      REQUIRE(got.ok());
      CHECK(got->key == std::prev(after)->first);
    }
  }
  // A range delete from -inf, then one to +inf.
  REQUIRE(store->delete_range(t, {}, late) == error::ok);
  m.erase(m.begin(), m.find(late));
  REQUIRE(store->delete_range(t, std::prev(m.end(), 5)->first, {}) == error::ok);
  m.erase(std::prev(m.end(), 5), m.end());
  CHECK(collect(store->scan(t)) == model_keys({}, {}, false));
  store->stop();
  REQUIRE(store->start() == error::ok);
  CHECK(collect(store->scan_reverse(t)) == model_keys({}, {}, true));
  REQUIRE(store->verify(t, problem) == error::ok);
}

TEST_CASE("safety: a manifest ends in blocks the reference engine reads as its end") {
  // The reference's replayer reads a header, then its payload; a payload past the end of the
  // file ends the replay silently, a checksum mismatch is logged as corruption. Walk our
  // manifest the same way: every record good, then the end.
  test::pread_fixture fx;
  const table_ident t{"markers", 0};
  populate(fx, t, 40);
  std::ifstream in(fx.dir + "/" + t.to_string() + "/" + detail::manifest_file_name(0),
                   std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(file.size() > 41 * detail::manifest_alignment_bytes);  // blocks written ahead
  std::size_t offset = 0;
  std::size_t records = 0;
  std::size_t corrupt = 0;
  bool ended = false;
  while (offset + detail::manifest_header_bytes <= file.size()) {
    detail::manifest_record rec;
    if (detail::read_manifest_record(std::string_view(file).substr(offset), rec) ==
        detail::record_status::ok) {
      ++records;
      offset += rec.padded_bytes;
      continue;
    }
    const std::uint32_t payload =
        detail::decode_fixed32(file.data() + offset + detail::manifest_payload_length_offset);
    if (offset + detail::manifest_header_bytes + payload > file.size()) {
      ended = true;  // the reference: end of file inside the payload, a quiet end
      break;
    }
    ++corrupt;
    offset += detail::manifest_padded_bytes(detail::manifest_header_bytes + payload);
  }
  CHECK(ended);
  CHECK(corrupt == 0);
  CHECK(records == 41);  // the partition's empty snapshot, then one log per put
}

TEST_CASE("safety: the deepest task stack fits the smallest stack the options accept") {
  // Stacks are painted and checked (fiber_scheduler::measure_stacks_everywhere) while a
  // store runs the deep paths: 3000-entry batches (compressed, after the first trains the
  // dictionary), multi-MiB overflow values (one compressed standalone), range deletes,
  // scans both ways, floors, a truncate, a restart's replay. The deepest use must leave a
  // quarter of options::coroutine_stack_size_min (times the sanitizer scale) unused.
  fiber_scheduler::measure_stacks_everywhere(true);
  fiber_scheduler::reset_stack_high_water();
  struct measuring_off {
    ~measuring_off() { fiber_scheduler::measure_stacks_everywhere(false); }
  } off;
  test::uring_fixture fx;
  fx.opts.coroutine_stack_size = options::coroutine_stack_size_min;
  fx.opts.enable_compression = true;  // values are compressed and decompressed in tasks
  auto store = fx.make();
  REQUIRE(store->start() == error::ok);
  const table_ident t{"deep", 2};
  test::rng r(11);
  for (int b = 0; b < 4; ++b) {
    std::vector<write_entry> batch;
    for (int i = 0; i < 3000; ++i) {
      batch.push_back(write_entry{key_of(b * 3000 + i), r.bytes(r.uniform(200, 1200), 26), 1,
                                  write_op::upsert, 0});
    }
    REQUIRE(store->write(t, std::move(batch)) == error::ok);
  }
  REQUIRE(store->put(t, "big", r.bytes(3 << 20), 1) == error::ok);  // does not shrink
  REQUIRE(store->get(t, "big").ok());
  REQUIRE(store->put(t, "huge", std::string(11 << 20, 'h'), 1) == error::ok);  // standalone
  REQUIRE(store->get(t, "huge").ok());
  REQUIRE(store->delete_range(t, key_of(100), key_of(5000)) == error::ok);
  std::size_t n = 0;
  ranges::for_each(store->scan(t), [&](const kv_entry&) { ++n; });
  ranges::for_each(store->scan_reverse(t, key_of(20), key_of(9000)), [&](const kv_entry&) { ++n; });
  CHECK(n > 0);
  CHECK(store->floor(t, key_of(7000) + "x").ok());
  REQUIRE(store->truncate(t, key_of(11000)) == error::ok);
  store->stop();
  REQUIRE(store->start() == error::ok);
  std::string problem;
  CHECK(store->verify(t, problem) == error::ok);
  store->stop();
  const std::size_t used = fiber_scheduler::stack_bytes_used_high_water();
  const std::size_t limit = options::coroutine_stack_size_min * fiber_scheduler::stack_scale;
  MESSAGE("deepest task stack: " << used << " of " << limit << " bytes");
  CHECK(used > 0);
  CHECK(used <= limit * 3 / 4);
}

TEST_CASE_TEMPLATE("safety: data files without their manifest are reported, not read as empty",
                   Fixture, test::pread_fixture, test::uring_fixture) {
  // A new partition's manifest is written before its first data file, so a partition
  // directory with data files and no manifest lost its manifest: every request on it fails
  // with corrupted, and a write does not start the partition over on top of its data.
  Fixture fx;
  const table_ident t{"lost", 1};
  populate(fx, t, 200);
  const std::string part = fx.dir + "/" + t.to_string();
  REQUIRE(std::filesystem::remove(part + "/" + detail::manifest_file_name(0)));
  const auto data_before = file_hashes(part);
  {
    auto store = fx.make();
    REQUIRE(store->start() == error::ok);
    CHECK(store->get(t, key_of(3)).status() == error::corrupted);
    scan_request s;
    s.set_args(t, {}, {});
    CHECK(store->exec_sync(s) == error::corrupted);
    CHECK(store->put(t, "new", "x", 2) == error::corrupted);
    CHECK(store->truncate(t) == error::corrupted);
    // Other partitions are unaffected, and a new one gets its manifest first.
    REQUIRE(store->put({"lost", 2}, "k", "v", 1) == error::ok);
    CHECK(std::filesystem::exists(fx.dir + "/lost.2/" + detail::manifest_file_name(0)));
  }
  CHECK(file_hashes(part) == data_before);
  // What a crash in a partition's first write can leave (an unfinished manifest, no data
  // file) is an empty partition, not a damaged one.
  std::filesystem::create_directories(fx.dir + "/lost.4");
  std::ofstream(fx.dir + "/lost.4/" + detail::manifest_file_name(0) + ".tmp") << "partial";
  auto store = fx.make();
  REQUIRE(store->start() == error::ok);
  CHECK(store->get({"lost", 4}, "k").status() == error::not_found);
  REQUIRE(store->put({"lost", 4}, "k", "v", 1) == error::ok);
  CHECK(store->get({"lost", 4}, "k").ok());
}

TEST_CASE_TEMPLATE("safety: a manifest cut back to an older version reads as corrupted", Fixture,
                   test::pread_fixture, test::uring_fixture) {
  // The manifest of an older version (a copy taken before later writes, put back) maps its
  // pages to file pages that the later writes freed and reused. Where a reused page now
  // holds keys of another range, the separators that lead to it say so: reads and writes
  // report corrupted instead of answering from it. A reused page that holds a later version
  // of the same range cannot be told apart (pages carry no version in this format), so an
  // answer may come from the later history of a key, never from outside it. Without the
  // range checks, these cases answered not_found for keys the version holds.
  std::size_t corrupted = 0;
  for (const auto& [seed, batches, ranges_of_200] :
       {std::array{1, 2, 10}, std::array{4, 3, 100}, std::array{5, 2, 100}, std::array{6, 3, 50}}) {
    CAPTURE(seed);
    Fixture fx;
    const table_ident t{"cut", 0};
    std::mt19937 r(static_cast<unsigned>(seed));
    std::map<std::string, std::vector<std::string>> history;  // every value each key had
    kv_model old_model;
    {
      auto store = fx.make();
      REQUIRE(store->start() == error::ok);
      for (int b = 0; b < ranges_of_200; ++b) {
        std::vector<write_entry> batch;
        for (int i = b * 200; i < (b + 1) * 200; ++i) {
          const std::string v = "old" + std::to_string(i) + std::string(r() % 150, 'o');
          batch.push_back(write_entry{key_of(i), v, 1, write_op::upsert, 0});
          old_model[key_of(i)] = v;
          history[key_of(i)].push_back(v);
        }
        REQUIRE(store->write(t, std::move(batch)) == error::ok);
      }
    }
    const std::string manifest = fx.dir + "/" + t.to_string() + "/" + detail::manifest_file_name(0);
    const std::string saved = fx.dir + "/saved_manifest";
    std::filesystem::copy_file(manifest, saved);
    {
      auto store = fx.make();
      REQUIRE(store->start() == error::ok);
      for (int b = 0; b < batches; ++b) {
        std::string k = key_of(static_cast<int>(r() % static_cast<unsigned>(ranges_of_200 * 200)));
        if (r() % 3 == 0) {
          k += "5";
        }
        const std::string v(r() % 300, 'n');
        const write_op op = r() % 4 == 0 ? write_op::erase : write_op::upsert;
        history[k].push_back(op == write_op::erase ? std::string("\xff erased") : v);
        REQUIRE(store->write(t, {write_entry{k, v, 2, op, 0}}) == error::ok);
      }
    }
    std::filesystem::copy_file(saved, manifest, std::filesystem::copy_options::overwrite_existing);
    const auto in_history = [&](const std::string& k, const std::string& v) {
      const auto it = history.find(k);
      return it != history.end() &&
             std::find(it->second.begin(), it->second.end(), v) != it->second.end();
    };
    auto store = fx.make();
    REQUIRE(store->start() == error::ok);
    std::size_t wrong = 0;
    std::vector<std::string> damaged;  // keys whose reads were refused
    for (const auto& [k, v] : old_model) {
      const auto got = store->get(t, k);
      if (got.status() == error::corrupted) {
        ++corrupted;
        damaged.push_back(k);
      } else if (got.ok() ? !in_history(k, got->value) : !in_history(k, "\xff erased")) {
        ++wrong;
      }
    }
    CHECK(wrong == 0);
    // A write descends the same way and refuses to place records in those pages.
    for (std::size_t i = 0; i < damaged.size(); i += std::max<std::size_t>(1, damaged.size() / 8)) {
      CHECK(store->put(t, damaged[i], "new", 3) == error::corrupted);
    }
    // Scans, forward and reverse, whole and paginated: every entry before an error is one
    // the key had.
    for (const bool reverse : {false, true}) {
      for (const std::size_t page : {std::size_t{50}, std::size_t{100000}}) {
        CAPTURE(reverse);
        CAPTURE(page);
        auto range = reverse ? store->scan_reverse(t, {}, {}, page) : store->scan(t, {}, {}, page);
        std::size_t foreign = 0;
        ranges::for_each(range,
                         [&](const kv_entry& e) { foreign += in_history(e.key, e.value) ? 0 : 1; });
        CHECK((range.status() == error::ok || range.status() == error::corrupted));
        CHECK(foreign == 0);
      }
    }
  }
  MESSAGE("old keys read as corrupted: " << corrupted);
  CHECK(corrupted > 0);
}

TEST_CASE_TEMPLATE("safety: read-only stores share a path, write nothing, and keep writers out",
                   Fixture, test::pread_fixture, test::uring_fixture) {
  Fixture fx;
  const table_ident t{"shared", 0};
  populate(fx, t, 500);
  const auto before = file_hashes(fx.dir);
  options ro = fx.opts;
  ro.read_only = true;
  typename Fixture::store_type first(ro);
  typename Fixture::store_type second(ro);
  REQUIRE(first.start() == error::ok);
  REQUIRE(second.start() == error::ok);  // shared locks
  for (auto* s : {&first, &second}) {
    const auto got = s->get(t, key_of(77));
    REQUIRE(got.ok());
    CHECK(got->value == "v77");
    std::size_t n = 0;
    ranges::for_each(s->scan(t), [&](const kv_entry&) { ++n; });
    CHECK(n == 500);
    std::string problem;
    CHECK(s->verify(t, problem) == error::ok);
  }
  batch_write_request w;
  w.set_args(t, {write_entry{"x", "y", 1, write_op::upsert, 0}});
  CHECK(first.exec_sync(w) == error::no_permission);
  CHECK(w.message() == "the store was opened read-only");
  CHECK(first.truncate(t) == error::no_permission);
  CHECK(first.delete_range(t, key_of(1), key_of(9)) == error::no_permission);
  CHECK(first.drop_table("shared") == error::no_permission);
  CHECK(first.get(t, "x").status() == error::not_found);
  // A writer waits for the readers to go.
  auto writer = fx.make();
  CHECK(writer->start() == error::store_locked);
  first.stop();
  CHECK(writer->start() == error::store_locked);
  second.stop();
  CHECK(file_hashes(fx.dir) == before);
  REQUIRE(writer->start() == error::ok);
  // And readers wait for the writer.
  CHECK(first.start() == error::store_locked);
  writer->stop();
  // A missing path is not created by a read-only store.
  options missing = ro;
  missing.store_path = {fx.dir + "/absent"};
  typename Fixture::store_type none(missing);
  CHECK(none.start() == error::not_found);
  CHECK(none.last_message().find(fx.dir + "/absent") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(fx.dir + "/absent"));
}
