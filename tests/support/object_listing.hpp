// Listings of an object store, for the object-store tests: every item of a paginated
// listing, and what a listing of a set of keys should give.
#pragma once

#include <algorithm>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/object/object_store.hpp>

namespace eloqstore::test {

// Every key and common prefix of a listing, page by page (max_keys each), retrying pages
// that fail transiently.
template <typename Store>
inline std::vector<std::string> list_all(Store& s, std::string_view prefix,
                                         std::string_view delimiter, std::size_t max_keys,
                                         std::size_t* pages = nullptr) {
  std::vector<std::string> out;
  std::string after;
  list_page page;
  for (int guard = 0; guard < 100000; ++guard) {
    const object_status st = s.list(prefix, delimiter, after, max_keys, page);
    if (st == object_status::transient) {
      continue;
    }
    REQUIRE(st == object_status::ok);
    if (pages != nullptr) {
      ++*pages;
    }
    CHECK(page.objects.size() + page.prefixes.size() <= max_keys);
    // Keys and prefixes of one page, merged in order (S3 sorts both together).
    std::vector<std::string> items;
    for (const object_meta& m : page.objects) {
      items.push_back(m.key);
    }
    items.insert(items.end(), page.prefixes.begin(), page.prefixes.end());
    std::sort(items.begin(), items.end());
    out.insert(out.end(), items.begin(), items.end());
    if (page.next.empty()) {
      return out;
    }
    after = page.next;
  }
  FAIL("the listing does not end");
  return out;
}

// What a listing should give, from the set of keys.
inline std::vector<std::string> expected_listing(const std::set<std::string>& keys,
                                                 std::string_view prefix,
                                                 std::string_view delimiter) {
  std::set<std::string> items;
  for (const std::string& k : keys) {
    if (k.compare(0, prefix.size(), prefix) != 0) {
      continue;
    }
    const std::size_t at = delimiter.empty() ? std::string::npos : k.find(delimiter, prefix.size());
    items.insert(at == std::string::npos ? k : k.substr(0, at + delimiter.size()));
  }
  return {items.begin(), items.end()};
}

}  // namespace eloqstore::test
