// Opening a partition: its state loaded from its manifest (spec 4.6).
//
// The manifest of the current term is read whole and replayed (manifest/replay.hpp) into the
// roots, the mapping table, the file page allocator, the manifest's size (where the next log
// record goes) and the term mapping. A partition without a manifest is new, unless its
// directory holds data files: a partition's manifest is written before its first data file
// (version_builder::ensure_manifest), so data files without one mean the manifest was lost,
// and reading the partition as empty (or starting it over on top of them) would lose them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/commit/partition.hpp>
#include <eloqstore/detail/io/file_names.hpp>
#include <eloqstore/detail/manifest/record.hpp>
#include <eloqstore/detail/manifest/replay.hpp>
#include <eloqstore/detail/mapping/page_mapping.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore::detail {

// error::corrupted if t's directory holds data files, ok if it has none or no directory; a
// listing that fails fails the caller (the partition must not be taken for a new one and its
// files written over).
template <io_backend IO>
[[nodiscard]] error check_no_data_files(IO& io, const table_ident& t) {
  std::vector<std::string> names;
  if (const error e = io.list(t, names); e != error::ok) {
    return e == error::not_found ? error::ok : e;
  }
  const bool data = std::any_of(names.begin(), names.end(), [](const std::string& n) {
    return parse_file_name(n).kind == file_kind::data;
  });
  return data ? error::corrupted : error::ok;
}

// How a partition's file pages are handed out: reused (pooled), or only at the tail
// (append mode, with files of 2^pages_per_file_shift pages).
struct allocation_mode {
  bool append = false;
  unsigned pages_per_file_shift = 0;
};

// Loads partition t's state into `p` (a fresh state) from the manifest of `term`:
// error::not_found for a new partition (no manifest, no data files), error::corrupted for a
// manifest that does not replay or data files without a manifest, the I/O error otherwise.
// `p` gets the allocator of `mode` either way (rebuilt from the manifest when there is one).
template <io_backend IO>
[[nodiscard]] error load_partition(IO& io, const table_ident& t, std::uint64_t term,
                                   partition_state& p, allocation_mode mode = {}) {
  if (mode.append) {
    p.fps = append_allocator(mode.pages_per_file_shift);
  }
  std::string bytes;
  if (const error e = io.read_file(t, manifest_file_name(term), bytes); e != error::ok) {
    if (e != error::not_found) {
      return e;
    }
    const error d = check_no_data_files(io, t);
    return d != error::ok ? d : error::not_found;
  }
  replay_result r;
  if (replay_manifest(bytes, r) != error::ok) {
    return error::corrupted;
  }
  p.has_manifest = true;
  p.current->root = r.root;
  p.current->ttl_root = r.ttl_root;
  p.current->mapping = mapping_table::from_values(r.mapping);
  if (mode.append) {
    // The tail file belongs to another term (a manifest promoted from an older term in cloud
    // mode, spec 8.5): this term starts a file of its own rather than write into one the
    // older term may still be writing.
    const file_id tail(r.max_fp_id >> mode.pages_per_file_shift);
    const bool foreign_tail = partition_state::term_in(r.terms, tail) != term;
    p.fps =
        append_allocator(p.current->mapping, r.max_fp_id, mode.pages_per_file_shift, foreign_tail);
  } else {
    p.fps = file_page_allocator(p.current->mapping, r.max_fp_id);
  }
  p.manifest_bytes = r.append_offset;
  p.manifest_file_bytes = std::max<std::uint64_t>(
      r.append_offset, bytes.size() / manifest_alignment_bytes * manifest_alignment_bytes);
  p.terms = std::move(r.terms);
  p.current->dictionary = make_dictionary(std::move(r.dictionary));
  p.next_expire_ts = r.ttl_root.is_none() ? 0 : 1;  // check expiry on the next write
  return error::ok;
}

}  // namespace eloqstore::detail
