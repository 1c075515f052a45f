// Cloud mode's standard traits: partition files in an S3-compatible bucket (s3_store, the
// compiled eloqstore::s3 library) behind a local cache on io_uring, with fiber tasks that park
// while their object requests run.
//
//   eloqstore::options opts;
//   opts.store_path = {"/var/cache/mydb"};           // the local cache
//   opts.cloud_store_path = "my-bucket/mydb";         // bucket[/prefix]
//   opts.cloud_endpoint = "https://s3.eu-west-1.amazonaws.com";
//   opts.cloud_access_key = ...; opts.cloud_secret_key = ...;
//   eloqstore::EloqStore<eloqstore::cloud_traits> store(opts);
//   store.start(term);  // this node's term: a newer one takes partitions over
//
// Link eloqstore::s3 (libcurl). Cloud mode runs in append mode (start() forces it).
#pragma once

#include <memory>
#include <string>

#include <eloqstore/io/cloud.hpp>
#include <eloqstore/object/s3.hpp>
#include <eloqstore/options.hpp>
#include <eloqstore/traits.hpp>

namespace eloqstore {

// The key prefix inside the bucket: what follows the bucket in cloud_store_path.
[[nodiscard]] inline std::string cloud_prefix(const options& o) {
  const std::size_t slash = o.cloud_store_path.find('/');
  return slash == std::string::npos ? std::string() : o.cloud_store_path.substr(slash + 1);
}

struct cloud_traits : default_traits {
  using io_type = cloud_io<uring_io, s3_store>;
  static std::unique_ptr<io_type> make_io(const options& o) {
    return std::make_unique<io_type>(std::make_shared<s3_store>(s3_config::from(o)),
                                     cloud_prefix(o), o.store_path, uring_config(o));
  }
};

}  // namespace eloqstore
