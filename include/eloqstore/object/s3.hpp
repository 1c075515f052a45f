// s3_store: the object_store policy (object/object_store.hpp) over an S3-compatible bucket
// (AWS S3, Ceph RGW, MinIO, GCS's XML API), path-style, signed with AWS Signature V4.
//
// Compiled (detail/s3_store.cpp, the eloqstore::s3 library): users of the headers never
// include curl. HTTP is libcurl's multi interface driven by `request_threads` threads of the
// store's own; a call hands its request to one of them and waits: a task of a shard thread
// parks (sched/remote.hpp) and its shard runs other tasks meanwhile; any other thread blocks.
//
// What a call does, beyond the concept's contract:
// * Retries: HTTP 408, 429, 500, 502, 503, 504 and transport failures (connect, resolve,
//   timeout, a connection lost mid-transfer) are retried up to max_retries times, waiting
//   backoff_initial, doubling up to backoff_max (the reference: 5 times, 10 s doubling to 40 s).
//   A call returns transient only after its retries. A retried conditional put can meet its
//   own earlier attempt: it then answers precondition_failed (callers read again, as for any
//   lost race).
// * Concurrency: each calling shard (completion port) has at most max_concurrency requests in
//   flight; the rest wait in order. Shard i is served by thread i % request_threads.
// * Bodies: whole objects, one PUT each (no multipart: conditional headers are ignored on
//   multipart completion), payload unsigned (x-amz-content-sha256: UNSIGNED-PAYLOAD; use https
//   where the network is not trusted). If-Match is sent with the ETag unquoted (RGW refuses
//   the quoted form; AWS accepts both).
// * Listing: ListObjectsV2; a page's `next` is the server's continuation token.
// * start() checks the configuration, starts the threads and, when create_bucket, creates the
//   bucket (one that exists already is fine). Calls before start() or after stop() fail.
//
// Thread safety: every call from any thread; start() and stop() from one thread, not during calls.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <eloqstore/error.hpp>
#include <eloqstore/object/object_store.hpp>

namespace eloqstore {

struct options;

struct s3_config {
  std::string endpoint;  // scheme://host[:port], e.g. http://127.0.0.1:9000
  std::string bucket;
  std::string region = "us-east-1";  // the signing region
  std::string access_key;
  std::string secret_key;
  bool verify_tls = true;
  bool create_bucket = true;
  std::size_t request_threads = 1;
  std::size_t max_concurrency = 20;  // requests in flight per calling shard
  unsigned max_retries = 5;
  std::chrono::milliseconds backoff_initial{10'000};
  std::chrono::milliseconds backoff_max{40'000};
  std::chrono::milliseconds request_timeout{300'000};  // one attempt, whole transfer
  std::chrono::milliseconds connect_timeout{10'000};

  // The store's settings for the options' cloud_* fields (bucket = first component of
  // cloud_store_path).
  [[nodiscard]] static s3_config from(const options& o);
};

// Counters since start(), all calls together.
struct s3_stats {
  std::uint64_t gets = 0;
  std::uint64_t puts = 0;
  std::uint64_t removes = 0;
  std::uint64_t lists = 0;
  std::uint64_t attempts = 0;  // HTTP requests sent, retries included
  std::uint64_t retries = 0;
  std::uint64_t failures = 0;  // calls that answered neither ok nor not_found
  std::uint64_t bytes_up = 0;
  std::uint64_t bytes_down = 0;
};

class s3_store {
 public:
  explicit s3_store(s3_config cfg);
  ~s3_store();
  s3_store(const s3_store&) = delete;
  s3_store& operator=(const s3_store&) = delete;

  // error::invalid_args for a configuration that cannot work (no endpoint or bucket, an
  // endpoint that is not http(s)://, no threads), error::cloud_error when the bucket cannot
  // be created, error::timeout when the server never answered.
  [[nodiscard]] error start();
  void stop();

  object_status get(std::string_view key, std::string& body, object_meta& meta);
  object_status put(std::string_view key, std::string_view body, const put_condition& cond,
                    object_meta& meta);
  object_status remove(std::string_view key);
  object_status list(std::string_view prefix, std::string_view delimiter, std::string_view after,
                     std::size_t max_keys, list_page& page);

  [[nodiscard]] s3_stats stats() const;
  // The retries of the last call the calling thread made (of any s3_store), read right after
  // it returned (a shard's task reads it before it can suspend again): how cloud_io counts
  // retries per shard.
  [[nodiscard]] static std::uint64_t retries_of_last_call() noexcept;
  // The last failed request's method, key, status and server message, for error reports.
  [[nodiscard]] std::string last_failure() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace eloqstore
