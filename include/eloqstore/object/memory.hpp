// memory_object_store: an object_store (object/object_store.hpp) held in memory, for tests
// and for simulation beside memory_io. It keeps S3's semantics where the engine relies on
// them: whole-object puts, a new ETag per put, conditional puts (If-None-Match: *, If-Match),
// deletes of absent objects that succeed, and ListObjectsV2 pagination with a delimiter.
// Requests are counted (stats()) so tests can check what the engine asks for.
//
// Thread safety: every call may come from any thread (one mutex). Never suspends.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include <eloqstore/object/object_store.hpp>

namespace eloqstore {

class memory_object_store {
 public:
  object_status get(std::string_view key, std::string& body, object_meta& meta) {
    std::lock_guard lock(mu_);
    ++stats_.gets;
    const auto it = objects_.find(key);
    if (it == objects_.end()) {
      return object_status::not_found;
    }
    body = it->second.body;
    stats_.bytes_down += body.size();
    meta = describe(it->first, it->second);
    return object_status::ok;
  }

  object_status put(std::string_view key, std::string_view body, const put_condition& cond,
                    object_meta& meta) {
    std::lock_guard lock(mu_);
    ++stats_.puts;
    if (key.empty()) {
      return object_status::failed;
    }
    auto it = objects_.find(key);
    switch (cond.what) {
      case put_condition::kind::none:
        break;
      case put_condition::kind::if_absent:
        if (it != objects_.end()) {
          return object_status::precondition_failed;
        }
        break;
      case put_condition::kind::if_match:
        if (it == objects_.end()) {
          return object_status::not_found;  // S3 answers 404 to If-Match on a missing key
        }
        if (it->second.etag != cond.etag) {
          return object_status::precondition_failed;
        }
        break;
    }
    if (it == objects_.end()) {
      it = objects_.emplace(std::string(key), entry{}).first;
    }
    it->second.body.assign(body);
    it->second.etag = "\"m" + std::to_string(++version_) + "\"";
    it->second.modified_ms = ++clock_ms_;
    stats_.bytes_up += body.size();
    meta = describe(it->first, it->second);
    return object_status::ok;
  }

  object_status remove(std::string_view key) {
    std::lock_guard lock(mu_);
    ++stats_.removes;
    if (const auto it = objects_.find(key); it != objects_.end()) {
      objects_.erase(it);
    }
    return object_status::ok;
  }

  // ListObjectsV2. `after` is the `next` of the previous page: the last key or common prefix
  // it returned (S3's token is opaque; this one is readable).
  object_status list(std::string_view prefix, std::string_view delimiter, std::string_view after,
                     std::size_t max_keys, list_page& page) {
    std::lock_guard lock(mu_);
    ++stats_.lists;
    page.clear();
    if (max_keys == 0 || max_keys > list_page_max) {
      return object_status::failed;
    }
    std::string last;  // the last item returned (key or common prefix)
    std::size_t returned = 0;
    for (auto it = objects_.lower_bound(std::max(prefix, after)); it != objects_.end(); ++it) {
      const std::string& key = it->first;
      if (key.compare(0, prefix.size(), prefix) != 0) {
        break;
      }
      std::string_view item = key;
      bool rolled = false;
      if (!delimiter.empty()) {
        const std::size_t at = key.find(delimiter, prefix.size());
        if (at != std::string::npos) {
          item = std::string_view(key).substr(0, at + delimiter.size());
          rolled = true;
        }
      }
      if ((!after.empty() && item <= after) || (rolled && item == last)) {
        continue;  // returned by an earlier page, or this page's prefix again
      }
      if (returned == max_keys) {
        page.next = last;  // something is left
        return object_status::ok;
      }
      if (rolled) {
        page.prefixes.emplace_back(item);
      } else {
        page.objects.push_back(describe(key, it->second));
      }
      last.assign(item);
      ++returned;
    }
    return object_status::ok;
  }

  // ---- for tests ----------------------------------------------------------------------

  [[nodiscard]] object_requests stats() const {
    std::lock_guard lock(mu_);
    return stats_;
  }

 private:
  struct entry {
    std::string body;
    std::string etag;
    std::uint64_t modified_ms = 0;
  };

  static object_meta describe(const std::string& key, const entry& e) {
    return object_meta{key, e.body.size(), e.etag, e.modified_ms};
  }

  mutable std::mutex mu_;
  std::map<std::string, entry, std::less<>> objects_;
  std::uint64_t version_ = 0;   // makes every put's ETag new
  std::uint64_t clock_ms_ = 0;  // LastModified: increases with every put
  object_requests stats_;       // (failures and retries stay 0: nothing fails here)
};

static_assert(object_store<memory_object_store>);

}  // namespace eloqstore
