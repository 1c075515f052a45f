// The object_store policy's in-memory implementation and fault injector: S3's semantics for
// puts, conditional puts and deletes, ListObjectsV2 pagination against a model, and the
// state each injected fault leaves.
#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/detail/cloud/term.hpp>
#include <eloqstore/object/faulty.hpp>
#include <eloqstore/object/memory.hpp>

#include "support/object_listing.hpp"
#include "support/page_store.hpp"

using namespace eloqstore;
using test::expected_listing;
using test::list_all;

static_assert(object_store<faulty_object_store<memory_object_store>>);

TEST_CASE("object store: puts, conditional puts, ETags and deletes") {
  memory_object_store s;
  object_meta m;
  std::string body;
  CHECK(s.get("a/CURRENT_TERM", body, m) == object_status::not_found);
  // If-None-Match: * creates once.
  REQUIRE(s.put("a/CURRENT_TERM", "1", put_condition::absent(), m) == object_status::ok);
  const std::string first = m.etag;
  CHECK(!first.empty());
  CHECK(s.put("a/CURRENT_TERM", "9", put_condition::absent(), m) ==
        object_status::precondition_failed);
  REQUIRE(s.get("a/CURRENT_TERM", body, m) == object_status::ok);
  CHECK(body == "1");
  CHECK(m.etag == first);
  CHECK(m.size == 1);
  // If-Match: only with the current ETag; every put makes a new one.
  REQUIRE(s.put("a/CURRENT_TERM", "2", put_condition::match(first), m) == object_status::ok);
  const std::string second = m.etag;
  CHECK(second != first);
  CHECK(s.put("a/CURRENT_TERM", "3", put_condition::match(first), m) ==
        object_status::precondition_failed);
  CHECK(s.put("a/missing", "3", put_condition::match(first), m) == object_status::not_found);
  REQUIRE(s.get("a/CURRENT_TERM", body, m) == object_status::ok);
  CHECK(body == "2");
  // Unconditional puts replace; LastModified moves forward.
  const std::uint64_t before = m.modified_ms;
  REQUIRE(s.put("a/CURRENT_TERM", "4", put_condition::always(), m) == object_status::ok);
  CHECK(m.modified_ms > before);
  // Deletes succeed whether or not the object exists.
  CHECK(s.remove("a/CURRENT_TERM") == object_status::ok);
  CHECK(s.remove("a/CURRENT_TERM") == object_status::ok);
  CHECK(s.get("a/CURRENT_TERM", body, m) == object_status::not_found);
  CHECK(s.put("", "x", put_condition::always(), m) == object_status::failed);
  const auto st = s.stats();
  CHECK(st.puts == 7);
  CHECK(st.removes == 2);
  CHECK(to_error(object_status::transient) == error::timeout);
  CHECK(to_error(object_status::not_found) == error::not_found);
  CHECK(to_error(object_status::precondition_failed) == error::cloud_error);
}

TEST_CASE("object store: listings page through every key, with and without a delimiter") {
  memory_object_store s;
  test::rng r(3);
  std::set<std::string> keys;
  object_meta m;
  for (int i = 0; i < 600; ++i) {
    const std::string key = "bucket/t." + std::to_string(r.uniform(0, 12)) + "/" +
                            (r.chance(0.2) ? "manifest_" : "data_") +
                            std::to_string(r.uniform(0, 300)) + (r.chance(0.1) ? "/x" : "");
    REQUIRE(s.put(key, std::string(r.uniform(0, 50), 'v'), put_condition::always(), m) ==
            object_status::ok);
    keys.insert(key);
  }
  REQUIRE(s.put("other/key", "v", put_condition::always(), m) == object_status::ok);
  for (const std::string_view prefix : {"bucket/", "bucket/t.1", "bucket/t.3/", "nothing/", ""}) {
    for (const std::string_view delimiter : {"", "/"}) {
      for (const std::size_t max_keys : {std::size_t{1}, std::size_t{7}, list_page_max}) {
        CAPTURE(prefix);
        CAPTURE(delimiter);
        CAPTURE(max_keys);
        std::set<std::string> all = keys;
        all.insert("other/key");
        CHECK(list_all(s, prefix, delimiter, max_keys) == expected_listing(all, prefix, delimiter));
      }
    }
  }
  list_page page;
  CHECK(s.list("bucket/", "", "", 0, page) == object_status::failed);
  CHECK(s.list("bucket/", "", "", list_page_max + 1, page) == object_status::failed);
}

TEST_CASE("object store: injected faults leave what their kind says") {
  memory_object_store inner;
  object_faults f;
  f.fail_before = 0.15;
  f.fail_after = 0.15;
  f.cut_get = 0.2;
  f.short_list = 0.5;
  f.race = 0.3;
  faulty_object_store<memory_object_store> s(inner, 99, f);
  test::rng r(7);
  std::map<std::string, std::string> model;  // what the bucket holds
  object_meta m;
  std::string body;
  for (int op = 0; op < 3000; ++op) {
    const std::string key = "p/" + std::to_string(r.uniform(0, 40));
    const auto roll = r.uniform(0, 99);
    if (roll < 45) {
      const std::string value = std::to_string(op) + std::string(r.uniform(0, 20), 'v');
      const object_status st = s.put(key, value, put_condition::always(), m);
      std::string now;
      const bool present = inner.get(key, now, m) == object_status::ok;
      if (st == object_status::ok) {
        CHECK(now == value);
      } else {
        REQUIRE(st == object_status::transient);
        // Carried out or not, never anything else.
        CHECK((now == value || (present ? now == model[key] : model.count(key) == 0)));
      }
      if (present) {
        model[key] = now;
      }
    } else if (roll < 60) {
      const object_status st = s.remove(key);
      std::string now;
      const bool present = inner.get(key, now, m) == object_status::ok;
      if (st == object_status::ok) {
        CHECK_FALSE(present);
      } else {
        CHECK(st == object_status::transient);
      }
      if (!present) {
        model.erase(key);
      }
    } else if (roll < 80) {
      const object_status st = s.get(key, body, m);
      if (st == object_status::ok) {
        REQUIRE(model.count(key) == 1);
        CHECK(body == model[key]);
        CHECK(m.size == body.size());
      } else if (st == object_status::not_found) {
        CHECK(model.count(key) == 0);
      } else {
        CHECK(st == object_status::transient);  // a cut body is never reported as the object
      }
    } else {
      // Compare-and-swap to a larger number, as CURRENT_TERM is set: read, put If-Match,
      // and after a lost race or a transient answer read again.
      const std::uint64_t want = static_cast<std::uint64_t>(op);
      bool done = false;
      for (int attempt = 0; attempt < 200 && !done; ++attempt) {
        object_meta cur;
        std::string got;
        const object_status g = s.get(key, got, cur);
        if (g == object_status::transient) {
          continue;
        }
        if (g == object_status::ok && got == "term" + std::to_string(want)) {
          done = true;  // an earlier attempt took effect after all
          break;
        }
        const put_condition c =
            g == object_status::ok ? put_condition::match(cur.etag) : put_condition::absent();
        const object_status p = s.put(key, "term" + std::to_string(want), c, cur);
        done = p == object_status::ok;
        if (p != object_status::ok) {
          CHECK((p == object_status::transient || p == object_status::precondition_failed));
        }
      }
      REQUIRE(done);
      REQUIRE(inner.get(key, body, m) == object_status::ok);
      CHECK(body == "term" + std::to_string(want));
      model[key] = body;
    }
  }
  // The bucket is the model, seen through short and failing listing pages.
  std::set<std::string> keys;
  for (const auto& [k, v] : model) {
    keys.insert(k);
  }
  std::size_t pages = 0;
  for (int i = 0; i < 5; ++i) {
    CHECK(list_all(s, "p/", "", 5, &pages) == expected_listing(keys, "p/", ""));
  }
  CHECK(pages > 5 * ((keys.size() + 4) / 5));  // short pages happened
  const auto c = s.counts();
  CHECK(c.failed_before > 0);
  CHECK(c.failed_after > 0);
  CHECK(c.cut_gets > 0);
  CHECK(c.short_lists > 0);
  CHECK(c.races > 0);
  s.set_faults({});
  for (const auto& [k, v] : model) {
    REQUIRE(s.get(k, body, m) == object_status::ok);
    CHECK(body == v);
  }
}

TEST_CASE("cloud terms: CURRENT_TERM is claimed by compare-and-swap, never lowered") {
  memory_object_store s;
  const table_ident t{"tbl", 4};
  const std::string key = detail::object_key("pre/fix", t, "CURRENT_TERM");
  CHECK(key == "pre/fix/tbl.4/CURRENT_TERM");
  CHECK(detail::object_key("", t, "data_1_2") == "tbl.4/data_1_2");
  std::string body;
  object_meta m;
  REQUIRE(detail::claim_term(s, "pre/fix", t, 5) == error::ok);  // created
  REQUIRE(s.get(key, body, m) == object_status::ok);
  CHECK(body == "5");
  CHECK(detail::claim_term(s, "pre/fix", t, 5) == error::ok);  // ours already
  CHECK(detail::claim_term(s, "pre/fix", t, 3) == error::expired_term);
  REQUIRE(detail::claim_term(s, "pre/fix", t, 8) == error::ok);  // taken over
  REQUIRE(s.get(key, body, m) == object_status::ok);
  CHECK(body == "8");
  CHECK(detail::claim_term(s, "pre/fix", t, 5) == error::expired_term);
  REQUIRE(s.put(key, "eight", put_condition::always(), m) == object_status::ok);
  CHECK(detail::claim_term(s, "pre/fix", t, 9) == error::corrupted);

  // Under failures and races: a claim that succeeds leaves its term, one that fails leaves
  // the term it found or its own (a put whose answer was lost), and the term never drops.
  memory_object_store inner;
  object_faults f;
  f.fail_before = 0.2;
  f.fail_after = 0.2;
  f.race = 0.3;
  faulty_object_store<memory_object_store> faulty(inner, 5, f);
  const std::string k = detail::object_key("", t, "CURRENT_TERM");
  std::uint64_t held = 0;
  int ok = 0;
  for (std::uint64_t term = 1; term <= 300; term += 1 + term % 3) {
    const error e = detail::claim_term(faulty, "", t, term);
    std::uint64_t now = 0;
    if (inner.get(k, body, m) == object_status::ok) {
      now = std::stoull(body);
    }
    CAPTURE(term);
    if (e == error::ok) {
      ++ok;
      CHECK(now == term);
    } else {
      CHECK((e == error::timeout || e == error::cloud_error));
      CHECK((now == held || now == term));
    }
    CHECK(now >= held);
    held = now;
    // An older process is fenced off.
    if (held > 1) {
      CHECK(detail::claim_term(faulty, "", t, held - 1) != error::ok);
    }
  }
  CHECK(ok > 100);
  CHECK(faulty.counts().races > 0);
}

TEST_CASE("cloud terms: the manifest a term opens") {
  memory_object_store s;
  const table_ident t{"tbl", 0};
  std::uint64_t chosen = 0;
  std::string body;
  object_meta m;
  CHECK(detail::choose_manifest(s, "b", t, 3, chosen, body) == error::not_found);  // new
  // Data files without a manifest (more than a listing page of them).
  for (int i = 0; i < 1500; ++i) {
    REQUIRE(s.put(detail::object_key("b", t, detail::data_file_name(detail::file_id(i), 2)), "d",
                  put_condition::always(), m) == object_status::ok);
  }
  CHECK(detail::choose_manifest(s, "b", t, 3, chosen, body) == error::cloud_no_manifest);
  // Another partition's manifest does not count.
  REQUIRE(s.put(detail::object_key("b", table_ident{"tbl", 1}, "manifest_2"), "x",
                put_condition::always(), m) == object_status::ok);
  CHECK(detail::choose_manifest(s, "b", t, 3, chosen, body) == error::cloud_no_manifest);
  REQUIRE(s.put(detail::object_key("b", t, "manifest_2"), "two", put_condition::always(), m) ==
          object_status::ok);
  REQUIRE(s.put(detail::object_key("b", t, "manifest_1"), "one", put_condition::always(), m) ==
          object_status::ok);
  REQUIRE(s.put(detail::object_key("b", t, "manifest_9_100"), "archive", put_condition::always(),
                m) == object_status::ok);
  REQUIRE(s.put(detail::object_key("b", t, "manifest_7.tmp"), "tmp", put_condition::always(), m) ==
          object_status::ok);
  // Term 3 has none: the newest older one (2), to be promoted; archives and temporary files
  // are not manifests.
  REQUIRE(detail::choose_manifest(s, "b", t, 3, chosen, body) == error::ok);
  CHECK(chosen == 2);
  CHECK(body == "two");
  // Its own manifest: one GET, no listing.
  REQUIRE(s.put(detail::object_key("b", t, "manifest_3"), "three", put_condition::always(), m) ==
          object_status::ok);
  const auto before = s.stats();
  REQUIRE(detail::choose_manifest(s, "b", t, 3, chosen, body) == error::ok);
  CHECK(chosen == 3);
  CHECK(body == "three");
  CHECK(s.stats().gets == before.gets + 1);
  CHECK(s.stats().lists == before.lists);
  // A newer term's manifest: expired.
  CHECK(detail::choose_manifest(s, "b", t, 2, chosen, body) == error::ok);  // its own
  REQUIRE(s.remove(detail::object_key("b", t, "manifest_2")) == object_status::ok);
  CHECK(detail::choose_manifest(s, "b", t, 2, chosen, body) == error::expired_term);
}
