// Replays a manifest file into the state it records: roots, mapping table, next file page id,
// dictionary and term mapping.
//
// Rules (spec 4.6):
// * The first record must be a valid snapshot, else the partition is corrupted.
// * Logs apply in order. A record that is torn or fails its checksum is tolerated only at the
//   tail: if any valid record starts at a later 4 KiB boundary, the corruption is in the middle
//   and replay fails with error::corrupted.
// * A valid record whose padding is cut short by the end of the file is accepted (it was the
//   last write and its data reached the disk).
// * `append_offset` is where the next log record goes: the end of the last good record, so a
//   torn tail is overwritten by the next append.
//
// Works on the whole file in memory; the caller reads it. Pure function of its input.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <eloqstore/detail/manifest/record.hpp>
#include <eloqstore/detail/mapping/mapping_entry.hpp>
#include <eloqstore/detail/util/strong_id.hpp>
#include <eloqstore/error.hpp>

namespace eloqstore::detail {

struct replay_result {
  page_id root = page_id::none();
  page_id ttl_root = page_id::none();
  std::vector<std::uint64_t> mapping;  // tagged values, as on disk
  std::uint64_t max_fp_id = 0;         // first file page id never handed out
  std::string dictionary;
  term_mapping terms;
  std::size_t append_offset = 0;  // bytes of the file that hold good records
  std::size_t log_count = 0;      // log records applied after the snapshot
  bool torn_tail = false;         // a bad record at the tail was ignored
};

namespace replay_internal {

// True if some 4 KiB-aligned offset at or after `from` starts a record with a good checksum.
[[nodiscard]] inline bool valid_record_after(std::string_view file, std::size_t from) noexcept {
  for (std::size_t off = manifest_padded_bytes(from); off < file.size();
       off += manifest_alignment_bytes) {
    manifest_record r;
    if (read_manifest_record(file.substr(off), r) == record_status::ok) {
      return true;
    }
  }
  return false;
}

}  // namespace replay_internal

[[nodiscard]] inline error replay_manifest(std::string_view file, replay_result& out) {
  out = replay_result{};
  manifest_record rec;
  if (read_manifest_record(file, rec) != record_status::ok) {
    return error::corrupted;
  }
  manifest_snapshot snap;
  if (decode_manifest_snapshot(rec.payload, snap) != error::ok) {
    return error::corrupted;
  }
  out.root = rec.root;
  out.ttl_root = rec.ttl_root;
  out.mapping = std::move(snap.mapping);
  out.max_fp_id = snap.max_fp_id;
  out.dictionary = std::move(snap.dictionary);
  out.terms = std::move(snap.terms);
  for (const std::uint64_t v : out.mapping) {
    if (tag_of(v) == mapping_tag::file_page) {
      out.max_fp_id = std::max(out.max_fp_id, decode_file_page(v).value() + 1);
    }
  }

  std::size_t offset = rec.padded_bytes;
  while (offset < file.size()) {
    const record_status st = read_manifest_record(file.substr(offset), rec);
    if (st != record_status::ok) {
      if (replay_internal::valid_record_after(file, offset + 1)) {
        return error::corrupted;  // a bad record followed by good ones
      }
      out.torn_tail = true;
      break;
    }
    if (apply_manifest_log(rec.payload, out.mapping, out.max_fp_id, out.terms) != error::ok) {
      return error::corrupted;  // checksum good but content malformed: not a torn write
    }
    out.root = rec.root;
    out.ttl_root = rec.ttl_root;
    ++out.log_count;
    offset += rec.padded_bytes;
  }
  // Keep appends 4 KiB-aligned even when the last record's padding was cut short.
  out.append_offset = manifest_padded_bytes(offset);
  return error::ok;
}

}  // namespace eloqstore::detail
