// Value types of the public API: write entries, returned records, scan bounds.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

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

}  // namespace eloqstore
