// Value types of the public API: write entries, returned records, scan bounds, prewarm
// progress.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <eloqstore/error.hpp>

namespace eloqstore {

enum class write_op : std::uint8_t { upsert = 0, erase = 1 };

// One change of a batch write. `timestamp` orders writes to the same key: a change applies
// iff its timestamp >= the stored one (last writer wins, ties to the newer write).
// `expire_ts` is Unix epoch milliseconds; 0 means never.
struct write_entry {
  std::string key;
  std::string value;
  std::uint64_t timestamp = 0;
  write_op op = write_op::upsert;
  std::uint64_t expire_ts = 0;
};

// One record as stored.
struct kv_entry {
  std::string key;
  std::string value;
  std::uint64_t timestamp = 0;
  std::uint64_t expire_ts = 0;
};

// When a batch write is acknowledged in cloud mode (batch_write_request::set_durability).
//   uploaded  after its data files and manifest are in the bucket (the reference's only way).
//   local     after the local fdatasync; the upload follows in the background, several
//             commits of a partition in one upload. A lost local disk loses what was not
//             uploaded yet; EloqStore::wait_uploaded(t) waits for the upload of everything
//             acknowledged before it, EloqStore::upload_status(t) tells how far it got.
// Local mode ignores it: every acknowledged write is on the local disk.
enum class durability : std::uint8_t { uploaded, local };

// How far the uploads of a partition's commits have got (EloqStore::upload_status): commits
// counted since the partition was opened in this process.
struct upload_progress {
  std::uint64_t committed = 0;
  std::uint64_t uploaded = 0;  // the bucket holds the state of commit `uploaded`
  error last = error::ok;      // the last upload's outcome
};

// What the prewarm of a cloud-mode cache (options::prewarm_cloud_cache) has done so far
// (EloqStore::prewarm_status()).
struct prewarm_progress {
  bool started = false;       // start() began one (cloud mode with prewarm_cloud_cache)
  bool done = false;          // it has ended; `reason` tells how
  std::uint64_t listed = 0;   // data files of this store's partitions in the bucket
  std::uint64_t pulled = 0;   // now in the cache (downloaded, or there already)
  std::uint64_t skipped = 0;  // gone from the bucket before their turn
  // ok: every file listed is in the cache; out_of_space: the cache's budget filled first;
  // not_running: the store stopped first; else the error that ended the listing or a download.
  error reason = error::ok;
};

}  // namespace eloqstore
