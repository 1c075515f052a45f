// The manifest writes of a commit (spec 4.5): a log record appended in place, or a snapshot
// that replaces the file atomically, and the empty snapshot a new partition gets before its
// first data file. What a write leaves on disk when it fails is tracked (unknown()), so the
// commit protocol (version_builder.hpp) knows whether a record of it may still replay.
//
// Thread affinity: the partition's shard thread; one writer per partition at a time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/commit/partition.hpp>
#include <eloqstore/detail/io/file_names.hpp>
#include <eloqstore/detail/manifest/record.hpp>
#include <eloqstore/detail/mapping/page_mapping.hpp>
#include <eloqstore/detail/util/metrics.hpp>
#include <eloqstore/detail/util/strong_id.hpp>
#include <eloqstore/error.hpp>

namespace eloqstore::detail {

// Gives file f the term `term` in `terms` (kept sorted) unless it has one; whether it was
// added.
inline bool ensure_term(term_mapping& terms, file_id f, std::uint64_t term) {
  if (std::any_of(terms.begin(), terms.end(),
                  [&](const auto& t) { return t.first == f.value(); })) {
    return false;
  }
  terms.emplace_back(f.value(), term);
  std::sort(terms.begin(), terms.end());
  return true;
}

// The manifest's own entry (spec 4.4: always present, the term of the manifest that holds
// it): a manifest promoted from an older term names the new term from its first write on.
inline void set_manifest_term(term_mapping& terms, std::uint64_t term) {
  const auto it = std::find_if(terms.begin(), terms.end(),
                               [](const auto& t) { return t.first == manifest_file_id.value(); });
  if (it != terms.end()) {
    it->second = term;
  } else {
    (void)ensure_term(terms, manifest_file_id, term);
  }
}

template <io_backend IO>
class manifest_writer {
 public:
  manifest_writer(IO& io, partition_state& partition, std::uint64_t term,
                  std::uint64_t manifest_limit)
      : io_(io), p_(partition), term_(term), limit_(manifest_limit) {}

  // The size of the manifest's records and of its file after a successful write (the
  // partition takes them when the version is published).
  [[nodiscard]] std::uint64_t new_bytes() const noexcept { return new_bytes_; }
  [[nodiscard]] std::uint64_t new_file_bytes() const noexcept { return new_file_bytes_; }
  // A write failed in a way that may have left its record on disk.
  [[nodiscard]] bool unknown() const noexcept { return unknown_; }
  // Whether `log` may be appended: the manifest exists and stays within its limit.
  [[nodiscard]] bool fits(std::string_view log) const noexcept {
    return p_.has_manifest && p_.manifest_bytes + log.size() <= limit_;
  }

  // A new partition gets a manifest (an empty snapshot) before its first data file, so data
  // files without a manifest are damage the store reports (error::corrupted), never a first
  // write cut short by a crash. Either outcome of a failure here is the empty partition.
  // `terms` (the writer's) gains the manifest's term and becomes the partition's.
  [[nodiscard]] error ensure(term_mapping& terms) {
    if (p_.has_manifest) {
      return error::ok;
    }
    set_manifest_term(terms, term_);
    manifest_builder snap;
    const std::vector<std::uint64_t> no_pages;
    const std::string_view bytes =
        snap.snapshot(page_id::none(), page_id::none(), no_pages, p_.fps.max_fp(),
                      dictionary_bytes(p_.current->dictionary.get()), terms);
    if (const error e = io_.write_file_atomic(p_.id, manifest_file_name(term_), bytes);
        e != error::ok) {
      return e;
    }
    count_snapshot();
    p_.has_manifest = true;
    p_.manifest_bytes = bytes.size();
    p_.manifest_file_bytes = bytes.size();
    p_.terms = terms;
    return error::ok;
  }

  // Replaces the manifest with a snapshot of `mapping`, the roots and `dictionary` (written
  // to a temporary file, synced, renamed over the manifest, the directory synced).
  [[nodiscard]] error snapshot(page_id root, page_id ttl_root, const mapping_table& mapping,
                               std::string_view dictionary, const term_mapping& terms) {
    std::vector<std::uint64_t> values;
    values.reserve(mapping.size());
    mapping.for_each([&](std::uint64_t v) { values.push_back(v); });
    manifest_builder snap;
    const std::string_view bytes =
        snap.snapshot(root, ttl_root, values, p_.fps.max_fp(), dictionary, terms);
    if (const error e = io_.write_file_atomic(p_.id, manifest_file_name(term_), bytes);
        e != error::ok) {
      unknown_ = true;  // the rename may have happened before the failure
      return e;
    }
    count_snapshot();
    new_bytes_ = bytes.size();
    new_file_bytes_ = bytes.size();
    return error::ok;
  }

  // Appends a log record at the end of the manifest's records. REQUIRES: fits(log).
  //
  // An append past the file's end first extends the file with blocks ahead of it (end
  // markers, see record.hpp): as many bytes as the records hold, at most write_ahead, never
  // past the manifest limit. The appends after it overwrite those in place, so their
  // fdatasync has no file size or extent to record, only the data: on ext4 one metadata
  // write (or journal commit) fewer per commit. Replay stops at the first marker and appends
  // where the records end.
  //
  // Failure leaves nothing replayable: the markers are written before the record (a full
  // disk fails there, with only markers written), the record then overwrites blocks the
  // file already has, and a record whose write or sync fails is overwritten with markers.
  // unknown() tells when even that failed, so the record may survive.
  [[nodiscard]] error append(std::string_view log) {
    const std::string name = manifest_file_name(term_);
    const std::uint64_t end = p_.manifest_bytes + log.size();
    std::uint64_t file_bytes = std::max(p_.manifest_file_bytes, end);
    if (end > p_.manifest_file_bytes) {
      const std::uint64_t ahead = std::min(end, write_ahead);
      const std::uint64_t limit = limit_ / manifest_alignment_bytes * manifest_alignment_bytes;
      file_bytes = std::max<std::uint64_t>(
          end, std::min<std::uint64_t>(manifest_padded_bytes(end + ahead), limit));
      fill_manifest_end_markers(out_, file_bytes - p_.manifest_file_bytes, p_.manifest_file_bytes,
                                file_bytes);
      if (const error e = io_.write(p_.id, name, p_.manifest_file_bytes, out_); e != error::ok) {
        return e;  // markers only: replay stops at them
      }
    }
    metric_add(counter::manifest_writes);
    error e = io_.write(p_.id, name, p_.manifest_bytes, log);
    if (e == error::ok) {
      metric_add(counter::manifest_syncs);
      e = io_.sync(p_.id, name);
    }
    if (e != error::ok) {
      fill_manifest_end_markers(out_, log.size(), p_.manifest_bytes, file_bytes);
      unknown_ = io_.write(p_.id, name, p_.manifest_bytes, out_) != error::ok ||
                 io_.sync(p_.id, name) != error::ok;
      return e;
    }
    new_bytes_ = end;
    new_file_bytes_ = file_bytes;
    return error::ok;
  }

 private:
  // A manifest written whole (write_file_atomic: the file synced, renamed, the directory
  // synced): one snapshot and two syncs in the statistics.
  static void count_snapshot() noexcept {
    metric_add(counter::manifest_snapshots);
    metric_add(counter::manifest_syncs, 2);
  }

  // Most bytes an append past the manifest file's end writes ahead.
  static constexpr std::uint64_t write_ahead = 256 << 10;

  IO& io_;
  partition_state& p_;
  std::uint64_t term_;
  std::uint64_t limit_;
  std::string out_;  // end markers being written
  std::uint64_t new_bytes_ = 0;
  std::uint64_t new_file_bytes_ = 0;
  bool unknown_ = false;
};

}  // namespace eloqstore::detail
