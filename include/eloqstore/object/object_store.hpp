// The object_store policy: the durable tier of cloud mode (an S3-compatible bucket), as the
// engine sees it. Four requests, each on whole objects, named by keys relative to the store's
// bucket prefix:
//
//   get(key, body, meta)            the object's bytes, size and ETag
//   put(key, body, condition, meta) write it whole; unconditionally, only if absent
//                                   (If-None-Match: *), or only if its ETag is still the one
//                                   given (If-Match); meta receives the new ETag
//   remove(key)                     delete it; deleting an absent object succeeds (as S3)
//   list(prefix, delimiter, after, max_keys, page)
//                                   ListObjectsV2: keys under prefix in ascending byte
//                                   order, at most max_keys (<= 1000) per page; with a
//                                   delimiter, keys holding it after the prefix are rolled up
//                                   into common prefixes; `after` continues a listing (the
//                                   page's `next`, empty for the first page)
//
// A request answers with an object_status, not yet an eloqstore::error: whether a failure is
// worth retrying (transient), and whether a conditional put lost a race
// (precondition_failed), are the caller's to act on. to_error() maps what is left.
//
// Contract, beyond the signatures:
// * A request that returns ok has taken effect, durably (S3's read-after-write consistency).
//   One that returns transient may or may not have taken effect (a timeout after a PUT the
//   server completed): the caller must not assume either.
// * Calls may suspend the running task, as io backend calls do (concepts.hpp): a remote
//   store parks the task until the response arrives. memory_object_store never suspends.
// * If-Match on a missing key answers not_found (AWS) or precondition_failed (RGW); a racing
//   conditional put may even get a 500 (transient) from RGW. Callers treat all three as
//   "read again and decide".
// * Thread safety: an implementation serves concurrent calls from every shard thread.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <eloqstore/error.hpp>

namespace eloqstore {

enum class object_status : std::uint8_t {
  ok = 0,
  not_found,            // 404: no such object
  precondition_failed,  // 412 (or a 409 conflicting write): a conditional put lost
  transient,            // 408, 429, 5xx or a transport failure: may have taken effect
  denied,               // 401, 403
  failed,               // any other answer, or a response that does not parse
};

// The engine's error for a request's final status (after whatever retries the caller made):
// 404 is not_found, what stayed transient is a timeout, the rest is cloud_error (spec 1.5).
[[nodiscard]] constexpr error to_error(object_status s) noexcept {
  switch (s) {
    case object_status::ok:
      return error::ok;
    case object_status::not_found:
      return error::not_found;
    case object_status::transient:
      return error::timeout;
    case object_status::precondition_failed:
    case object_status::denied:
    case object_status::failed:
      return error::cloud_error;
  }
  return error::cloud_error;
}

// What a request tells of one object.
struct object_meta {
  std::string key;
  std::uint64_t size = 0;
  std::string etag;               // as the server sends it, quotes included
  std::uint64_t modified_ms = 0;  // LastModified, milliseconds since the epoch
};

// The precondition of a put.
struct put_condition {
  enum class kind : std::uint8_t { none, if_absent, if_match };
  kind what = kind::none;
  std::string etag;  // for if_match

  [[nodiscard]] static put_condition always() { return {}; }
  [[nodiscard]] static put_condition absent() { return {kind::if_absent, {}}; }
  [[nodiscard]] static put_condition match(std::string etag) {
    return {kind::if_match, std::move(etag)};
  }
};

// One page of a listing.
struct list_page {
  std::vector<object_meta> objects;   // ascending by key
  std::vector<std::string> prefixes;  // common prefixes, ascending (with a delimiter)
  std::string next;                   // continues the listing; empty when it is complete

  void clear() {
    objects.clear();
    prefixes.clear();
    next.clear();
  }
};

// What a client asked of an object store: the requests cloud users pay for.
struct object_requests {
  std::uint64_t gets = 0;
  std::uint64_t puts = 0;
  std::uint64_t removes = 0;
  std::uint64_t lists = 0;
  std::uint64_t bytes_down = 0;  // bodies got
  std::uint64_t bytes_up = 0;    // bodies put
  std::uint64_t failures = 0;    // answers other than ok and not_found (after any retries)
  std::uint64_t retries = 0;     // requests sent again after a transient failure (not billed
                                 // by S3 when the server refused them, billed when it failed)

  object_requests& operator+=(const object_requests& o) noexcept {
    gets += o.gets;
    puts += o.puts;
    removes += o.removes;
    lists += o.lists;
    bytes_down += o.bytes_down;
    bytes_up += o.bytes_up;
    failures += o.failures;
    retries += o.retries;
    return *this;
  }

  // What the requests cost, in dollars, at prices per 1000 requests: by default those of AWS
  // S3 Standard in us-east-1 (PUT, COPY, POST and LIST $0.005, GET $0.0004, DELETE free).
  // Transfer within a region is free; storage is not counted.
  [[nodiscard]] double cost(double put_list_per_1000 = 0.005,
                            double get_per_1000 = 0.0004) const noexcept {
    return static_cast<double>(puts + lists) * put_list_per_1000 / 1000.0 +
           static_cast<double>(gets) * get_per_1000 / 1000.0;
  }
};

// Most keys a list page may hold (S3's limit).
inline constexpr std::size_t list_page_max = 1000;

template <typename S>
concept object_store = requires(S& s, std::string_view key, std::string& body,
                                std::string_view bytes, const put_condition& cond,
                                object_meta& meta, list_page& page, std::size_t n) {
  { s.get(key, body, meta) } -> std::same_as<object_status>;
  { s.put(key, bytes, cond, meta) } -> std::same_as<object_status>;
  { s.remove(key) } -> std::same_as<object_status>;
  { s.list(key, key, key, n, page) } -> std::same_as<object_status>;
};

}  // namespace eloqstore
