// s3_store against a real S3 server on loopback (scripts/s3-server.sh starts one: Ceph RGW,
// or s3rver for the plain HTTP path). The server comes from the environment: S3_ENDPOINT,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, and S3_FLAVOR ("rgw" honours conditional puts;
// "s3rver" ignores them, so those checks are skipped). Without S3_ENDPOINT the cases are
// skipped, unless ELOQSTORE_S3_REQUIRED=1 (as ctest sets it), which makes that a failure.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/detail/cloud/metered_store.hpp>
#include <eloqstore/detail/cloud/term.hpp>
#include <eloqstore/object/s3.hpp>
#include <eloqstore/sched/fiber.hpp>
#include <eloqstore/sched/remote.hpp>

#include "support/object_listing.hpp"
#include "support/page_store.hpp"

using namespace eloqstore;
using test::expected_listing;
using test::list_all;

static_assert(object_store<s3_store>);

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

// The server's configuration with a bucket of our own (fresh per call), or nullopt when no
// server is configured (the case is then skipped, or fails when one is required).
std::optional<s3_config> server(std::string_view what) {
  s3_config c;
  c.endpoint = env("S3_ENDPOINT");
  if (c.endpoint.empty()) {
    REQUIRE_MESSAGE(env("ELOQSTORE_S3_REQUIRED") != "1",
                    "S3_ENDPOINT is not set: start a server with scripts/s3-server.sh");
    MESSAGE("skipped: S3_ENDPOINT is not set");
    return std::nullopt;
  }
  c.access_key = env("AWS_ACCESS_KEY_ID");
  c.secret_key = env("AWS_SECRET_ACCESS_KEY");
  if (const std::string region = env("AWS_REGION"); !region.empty()) {
    c.region = region;
  }
  static std::atomic<int> n{0};
  c.bucket = "eloqstore-" + std::string(what) + "-" + std::to_string(::getpid()) + "-" +
             std::to_string(n.fetch_add(1));
  c.backoff_initial = std::chrono::milliseconds(20);
  c.backoff_max = std::chrono::milliseconds(200);
  c.request_timeout = std::chrono::seconds(60);
  return c;
}

// s3rver (3.7.1) ignores conditional headers, and a listing whose prefix ends with the
// delimiter loses its common prefixes; both work on RGW (and AWS).
bool s3rver() {
  return env("S3_FLAVOR") == "s3rver";
}
bool conditional_puts() {
  return !s3rver();
}

// Tasks of a fiber scheduler on this thread, with a completion port: the shard loop's part
// that matters to remote waits (run rounds, drain the port, sleep until it is posted to).
class task_loop {
 public:
  task_loop() : port_(make_suspend_hooks(sched_), &kick, this, 0), scope_(&port_) {}

  template <typename F>
  void spawn(F&& f) {
    REQUIRE(sched_.spawn(std::forward<F>(f)));
  }

  void run() {
    while (sched_.live_tasks() > 0) {
      sched_.run_round();
      if (port_.drain() || !sched_.idle() || sched_.live_tasks() == 0) {
        continue;
      }
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return kicked_; });
      kicked_ = false;
    }
  }

 private:
  static void kick(void* arg) {
    auto& self = *static_cast<task_loop*>(arg);
    std::lock_guard lock(self.mu_);
    self.kicked_ = true;
    self.cv_.notify_one();
  }

  fiber_scheduler sched_{fiber_scheduler::config{}};
  std::mutex mu_;
  std::condition_variable cv_;
  bool kicked_ = false;
  completion_port port_;
  completion_port::scope scope_;
};

}  // namespace

TEST_CASE("s3 store: puts, conditional puts, ETags and deletes") {
  const auto cfg = server("basic");
  if (!cfg) {
    return;
  }
  s3_store s(*cfg);
  REQUIRE_MESSAGE(s.start() == error::ok, s.last_failure());
  REQUIRE(s.start() == error::ok);  // the bucket exists now: fine
  object_meta m;
  std::string body;
  CHECK(s.get("t.0/CURRENT_TERM", body, m) == object_status::not_found);
  REQUIRE(s.put("t.0/CURRENT_TERM", "1", put_condition::absent(), m) == object_status::ok);
  const std::string first = m.etag;
  CHECK(!first.empty());
  REQUIRE(s.get("t.0/CURRENT_TERM", body, m) == object_status::ok);
  CHECK(body == "1");
  CHECK(m.etag == first);
  CHECK(m.size == 1);
  CHECK(m.modified_ms > 1'600'000'000'000ULL);
  if (conditional_puts()) {
    CHECK(s.put("t.0/CURRENT_TERM", "9", put_condition::absent(), m) ==
          object_status::precondition_failed);
    REQUIRE(s.put("t.0/CURRENT_TERM", "2", put_condition::match(first), m) == object_status::ok);
    const std::string second = m.etag;
    CHECK(second != first);
    CHECK(s.put("t.0/CURRENT_TERM", "3", put_condition::match(first), m) ==
          object_status::precondition_failed);
    // AWS answers 404, RGW 412: both mean "read again".
    const object_status missing = s.put("t.0/missing", "3", put_condition::match(first), m);
    CHECK((missing == object_status::not_found || missing == object_status::precondition_failed));
    REQUIRE(s.get("t.0/CURRENT_TERM", body, m) == object_status::ok);
    CHECK(body == "2");
  }
  REQUIRE(s.put("t.0/CURRENT_TERM", "4", put_condition::always(), m) == object_status::ok);
  REQUIRE(s.get("t.0/CURRENT_TERM", body, m) == object_status::ok);
  CHECK(body == "4");
  // Empty objects, large binary ones.
  REQUIRE(s.put("t.0/empty", "", put_condition::always(), m) == object_status::ok);
  REQUIRE(s.get("t.0/empty", body, m) == object_status::ok);
  CHECK(body.empty());
  test::rng r(7);
  const std::string big = r.bytes(5 * 1024 * 1024 + 17);
  REQUIRE(s.put("t.0/data_1_0", big, put_condition::always(), m) == object_status::ok);
  REQUIRE(s.get("t.0/data_1_0", body, m) == object_status::ok);
  CHECK(body.size() == big.size());
  CHECK(body == big);
  // Deletes succeed whether or not the object exists.
  CHECK(s.remove("t.0/CURRENT_TERM") == object_status::ok);
  CHECK(s.remove("t.0/CURRENT_TERM") == object_status::ok);
  CHECK(s.get("t.0/CURRENT_TERM", body, m) == object_status::not_found);
  CHECK(body.empty());
  CHECK(s.put("", "x", put_condition::always(), m) == object_status::failed);
  const s3_stats st = s.stats();
  CHECK(st.bytes_up >= big.size());
  CHECK(st.bytes_down >= big.size());
  CHECK(st.retries == 0);
  CHECK(st.gets >= 6);
}

TEST_CASE("s3 store: listings page through every key, with and without a delimiter") {
  const auto cfg = server("list");
  if (!cfg) {
    return;
  }
  s3_store s(*cfg);
  REQUIRE(s.start() == error::ok);
  test::rng r(3);
  std::set<std::string> keys;
  object_meta m;
  // Names needing percent-encoding in URLs and entities in XML.
  for (const std::string k :
       {"t.1/a b+c=d&e<f>'\"", "t.1/%41~x", "t.2/\xc3\xa9t\xc3\xa9", "t.1/sub/deep/x"}) {
    REQUIRE(s.put(k, k, put_condition::always(), m) == object_status::ok);
    keys.insert(k);
  }
  for (int i = 0; i < 40; ++i) {
    const std::string key = "t." + std::to_string(r.uniform(0, 4)) + "/" +
                            (r.chance(0.2) ? "manifest_" : "data_") +
                            std::to_string(r.uniform(0, 300)) + (r.chance(0.1) ? "/x" : "");
    REQUIRE(s.put(key, "v", put_condition::always(), m) == object_status::ok);
    keys.insert(key);
  }
  for (const std::string_view prefix : {"", "t.1", "t.1/", "nothing/"}) {
    for (const std::string_view delimiter : {"", "/"}) {
      for (const std::size_t max_keys : {std::size_t{7}, list_page_max}) {
        if (s3rver() && !delimiter.empty() && prefix.ends_with(delimiter)) {
          continue;
        }
        CAPTURE(prefix);
        CAPTURE(delimiter);
        CAPTURE(max_keys);
        CHECK(list_all(s, prefix, delimiter, max_keys) ==
              expected_listing(keys, prefix, delimiter));
      }
    }
  }
  std::size_t pages = 0;
  CHECK(list_all(s, "t.1/", "", 1, &pages) == expected_listing(keys, "t.1/", ""));
  CHECK(pages == expected_listing(keys, "t.1/", "").size());
  // Sizes and dates come with the listing.
  list_page page;
  REQUIRE(s.list("t.1/a", "", "", 10, page) == object_status::ok);
  REQUIRE(page.objects.size() == 1);
  CHECK(page.objects[0].size == std::string_view("t.1/a b+c=d&e<f>'\"").size());
  CHECK(page.objects[0].modified_ms > 1'600'000'000'000ULL);
  CHECK(!page.objects[0].etag.empty());
  CHECK(s.list("t.1/", "", "", 0, page) == object_status::failed);
  CHECK(s.list("t.1/", "", "", list_page_max + 1, page) == object_status::failed);
}

TEST_CASE("s3 store: a task parks while its request runs, and its shard goes on") {
  auto cfg = server("tasks");
  if (!cfg) {
    return;
  }
  for (const std::size_t limit : {std::size_t{2}, std::size_t{20}}) {
    CAPTURE(limit);
    cfg->max_concurrency = limit;
    s3_store s(*cfg);
    REQUIRE(s.start() == error::ok);
    task_loop loop;
    constexpr int tasks = 16;
    int in_flight = 0;
    int most_in_flight = 0;
    int ok = 0;
    for (int i = 0; i < tasks; ++i) {
      loop.spawn([&, i] {
        most_in_flight = std::max(most_in_flight, ++in_flight);
        const std::string key = "t.0/obj" + std::to_string(i);
        const std::string value(1000 + i, static_cast<char>('a' + i));
        object_meta m;
        std::string body;
        const object_status p = s.put(key, value, put_condition::always(), m);
        --in_flight;
        if (p == object_status::ok && s.get(key, body, m) == object_status::ok && body == value) {
          ++ok;
        }
      });
    }
    loop.run();
    CHECK(ok == tasks);
    // Tasks started while others' puts ran: the puts overlapped. (Not every one need: a
    // request that completes before its task waits does not park it.)
    CHECK(most_in_flight > 1);
  }
}

TEST_CASE("s3 store: failures are classified, retried when transient, and reported") {
  auto cfg = server("errors");
  if (!cfg) {
    return;
  }
  SUBCASE("no server: retried, then transient") {
    s3_config c = *cfg;
    c.endpoint = "http://127.0.0.1:1";  // nothing listens there
    c.create_bucket = false;
    c.max_retries = 2;
    c.backoff_initial = std::chrono::milliseconds(1);
    s3_store s(c);
    REQUIRE(s.start() == error::ok);
    std::string body;
    object_meta m;
    CHECK(s.get("t.0/x", body, m) == object_status::transient);
    CHECK(to_error(object_status::transient) == error::timeout);
    const s3_stats st = s.stats();
    CHECK(st.attempts == 3);
    CHECK(st.retries == 2);
    CHECK(st.failures == 1);
    CHECK(s.last_failure().find("GET t.0/x") != std::string::npos);
    // cloud_io's meter counts the retries for the calling shard.
    detail::metered_store<s3_store> meter(s);
    meter.reset(2);
    auto shard1 = meter.shard(1);
    CHECK(shard1.get("t.0/y", body, m) == object_status::transient);
    CHECK(meter.of_shard(1).retries == 2);
    CHECK(meter.of_shard(1).failures == 1);
    CHECK(meter.of_shard(0).retries == 0);
    CHECK(meter.total().retries == 2);
    // Creating the bucket fails the start the same way.
    c.create_bucket = true;
    s3_store t(c);
    CHECK(t.start() == error::timeout);
    CHECK(t.get("t.0/x", body, m) == object_status::failed);  // not started
  }
  SUBCASE("wrong credentials are denied, not retried") {
    s3_config c = *cfg;
    c.access_key = "NOTTHEKEY";
    c.secret_key = "not-the-secret";
    s3_store s(c);
    CHECK(s.start() == error::cloud_error);
    c.create_bucket = false;
    s3_store t(c);
    REQUIRE(t.start() == error::ok);
    std::string body;
    object_meta m;
    CHECK(t.get("t.0/x", body, m) == object_status::denied);
    CHECK(t.stats().retries == 0);
    CHECK(t.last_failure().find("403") != std::string::npos);
  }
  SUBCASE("configurations that cannot work") {
    for (auto bad :
         {+[](s3_config& c) { c.endpoint = "127.0.0.1:9000"; },
          +[](s3_config& c) { c.bucket.clear(); }, +[](s3_config& c) { c.bucket = "a/b"; },
          +[](s3_config& c) { c.request_threads = 0; }}) {
      s3_config c = *cfg;
      bad(c);
      s3_store s(c);
      CHECK(s.start() == error::invalid_args);
    }
  }
  SUBCASE("a bucket that does not exist") {
    s3_config c = *cfg;
    c.create_bucket = false;
    s3_store s(c);
    REQUIRE(s.start() == error::ok);
    std::string body;
    object_meta m;
    CHECK(s.get("t.0/x", body, m) == object_status::not_found);
  }
}

TEST_CASE("s3 store: CURRENT_TERM claims race for real, and the highest term wins") {
  const auto cfg = server("terms");
  if (!cfg || !conditional_puts()) {
    return;
  }
  s3_store s(*cfg);
  REQUIRE(s.start() == error::ok);
  const table_ident t("tbl", 3);
  constexpr int writers = 8;
  std::vector<error> results(writers + 1, error::ok);
  std::vector<std::thread> threads;
  for (int term = 1; term <= writers; ++term) {
    threads.emplace_back([&, term] { results[term] = detail::claim_term(s, "", t, term); });
  }
  for (auto& th : threads) {
    th.join();
  }
  CHECK(results[writers] == error::ok);  // nobody is above the highest
  for (int term = 1; term <= writers; ++term) {
    CAPTURE(term);
    CHECK((results[term] == error::ok || results[term] == error::expired_term));
  }
  std::string body;
  object_meta m;
  REQUIRE(s.get(detail::object_key("", t, "CURRENT_TERM"), body, m) == object_status::ok);
  CHECK(body == std::to_string(writers));
  CHECK(detail::claim_term(s, "", t, writers - 1) == error::expired_term);
  CHECK(detail::claim_term(s, "", t, writers) == error::ok);
  CHECK(detail::claim_term(s, "", t, writers + 5) == error::ok);
  REQUIRE(s.get(detail::object_key("", t, "CURRENT_TERM"), body, m) == object_status::ok);
  CHECK(body == std::to_string(writers + 5));
}
