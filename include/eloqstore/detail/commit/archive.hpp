// Archives of a partition (spec 9): a point-in-time manifest snapshot of the published
// version, written atomically as `manifest_<term>_<ts>` beside the manifest, in the
// reference's format (an archive of ours opens in the reference by copying it over the
// manifest, and theirs restores in ours). Append mode only: the pages an archive names are
// never overwritten there (in place, a page freed after the archive would be reused).
//
// What an archive holds stays on disk: file GC (commit/compaction.hpp) keeps every data file
// an archive names (partition_state::archived_files). Beyond the reference, which keeps every
// archive forever, prune_archives() deletes the oldest beyond a count, and GC then reclaims
// what only they held.
//
// Restore (restore_archive) publishes an archive's version as the partition's next version:
// a commit that writes a manifest snapshot of the archived roots and mapping, with the tail
// (max_fp) where it is now, so that writes after the restore never overwrite pages of the
// state replaced; the caller archives that state first, so restoring that archive rolls
// forward again.
//
// Thread affinity: the partition's shard thread, in its writer.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/commit/manifest_writer.hpp>
#include <eloqstore/detail/commit/page_io.hpp>
#include <eloqstore/detail/commit/partition.hpp>
#include <eloqstore/detail/commit/version_builder.hpp>
#include <eloqstore/detail/io/file_names.hpp>
#include <eloqstore/detail/manifest/record.hpp>
#include <eloqstore/detail/manifest/replay.hpp>
#include <eloqstore/detail/mapping/page_mapping.hpp>
#include <eloqstore/error.hpp>

namespace eloqstore::detail {

// The archives in a partition's directory, oldest first: (timestamp, file name).
template <io_backend IO>
[[nodiscard]] error list_archives(IO& io, const table_ident& t,
                                  std::vector<std::pair<std::uint64_t, std::string>>& out) {
  out.clear();
  std::vector<std::string> names;
  if (const error e = io.list(t, names); e != error::ok) {
    return e == error::not_found ? error::ok : e;
  }
  for (std::string& name : names) {
    const parsed_file_name n = parse_file_name(name);
    if (n.kind == file_kind::archive) {
      out.emplace_back(n.timestamp, std::move(name));
    }
  }
  std::sort(out.begin(), out.end());
  return error::ok;
}

// The data files an archive's mapping names, added to `files`.
inline void add_archived_files(const std::vector<std::uint64_t>& mapping, unsigned shift,
                               std::set<std::uint64_t>& files) {
  for (const std::uint64_t v : mapping) {
    if (tag_of(v) == mapping_tag::file_page) {
      files.insert(decode_file_page(v).value() >> shift);
    }
  }
}

// The data files the archives in t's directory name, added to `files` (file ids at
// `shift`). An archive that cannot be read fails the call: it may need any file.
template <io_backend IO>
[[nodiscard]] error read_archived_files(IO& io, const table_ident& t, unsigned shift,
                                        std::set<std::uint64_t>& files) {
  std::vector<std::pair<std::uint64_t, std::string>> archives;
  if (const error e = list_archives(io, t, archives); e != error::ok) {
    return e;
  }
  for (const auto& [ts, name] : archives) {
    std::string bytes;
    replay_result r;
    error e = io.read_file(t, name, bytes);
    if (e == error::not_found) {
      continue;  // pruned meanwhile
    }
    if (e == error::ok) {
      e = replay_manifest(bytes, r);
    }
    if (e != error::ok) {
      return e;
    }
    add_archived_files(r.mapping, shift, files);
  }
  return error::ok;
}

// Writes the published version of p as archive `manifest_<term>_<ts>` (atomically: a
// temporary file, synced, renamed, the directory synced) and records its files as archived.
// error::not_found for a partition with no record (nothing to archive);
// error::invalid_args outside append mode.
template <io_backend IO>
[[nodiscard]] error write_archive(IO& io, partition_state& p, std::uint64_t term,
                                  std::uint64_t ts) {
  if (!p.fps.append_mode()) {
    return error::invalid_args;
  }
  if (!p.has_manifest || p.current->root.is_none()) {
    return error::not_found;
  }
  const partition_version& v = *p.current;
  std::vector<std::uint64_t> values;
  values.reserve(v.mapping.size());
  v.mapping.for_each([&](std::uint64_t x) { values.push_back(x); });
  term_mapping terms = p.terms;
  set_manifest_term(terms, term);  // an archive names the term that wrote it (spec 4.4)
  manifest_builder snap;
  const std::string_view bytes = snap.snapshot(v.root, v.ttl_root, values, p.fps.max_fp(),
                                               dictionary_bytes(v.dictionary.get()), terms);
  // Recorded first: if the write fails after its rename, GC must already keep the files.
  add_archived_files(values, std::countr_zero(p.fps.append().pages_per_file()), p.archived_files);
  return io.write_file_atomic(p.id, archive_file_name(term, ts), bytes);
}

// Deletes the oldest archives of p beyond the newest `keep` (0 keeps all), then recomputes
// the files the remaining archives name, so GC reclaims what only the deleted ones held.
template <io_backend IO>
[[nodiscard]] error prune_archives(IO& io, partition_state& p, std::size_t keep) {
  if (keep == 0 || !p.fps.append_mode()) {
    return error::ok;
  }
  std::vector<std::pair<std::uint64_t, std::string>> archives;
  if (const error e = list_archives(io, p.id, archives); e != error::ok) {
    return e;
  }
  if (archives.size() <= keep) {
    return error::ok;
  }
  const std::size_t drop = archives.size() - keep;
  for (std::size_t i = 0; i < drop; ++i) {
    if (const error e = io.remove(p.id, archives[i].second);
        e != error::ok && e != error::not_found) {
      return e;
    }
  }
  std::set<std::uint64_t> files;
  if (const error e =
          read_archived_files(io, p.id, std::countr_zero(p.fps.append().pages_per_file()), files);
      e != error::ok) {
    return e;  // the old set stays: GC keeps more, never less
  }
  p.archived_files = std::move(files);
  return io.sync_dir(p.id);
}

// Reads archive `ts` of p (any term) into `out`. error::not_found if there is none.
template <io_backend IO>
[[nodiscard]] error read_archive(IO& io, const table_ident& t, std::uint64_t ts,
                                 replay_result& out) {
  std::vector<std::pair<std::uint64_t, std::string>> archives;
  if (const error e = list_archives(io, t, archives); e != error::ok) {
    return e;
  }
  const auto it =
      std::find_if(archives.begin(), archives.end(), [&](const auto& a) { return a.first == ts; });
  if (it == archives.end()) {
    return error::not_found;
  }
  std::string bytes;
  if (const error e = io.read_file(t, it->second, bytes); e != error::ok) {
    return e;
  }
  return replay_manifest(bytes, out);
}

// Restores archive `ts` of p (see the header comment): the current state is archived first
// as `saved` (a timestamp after every archive's and at least `now_us`; 0 when p holds
// nothing), then the archived version is committed as the next one. Any failure leaves the
// published version as it was (a saved archive may remain: it is a valid archive).
template <io_backend IO>
[[nodiscard]] error restore_archive(page_access<IO>& pages, partition_state& p,
                                    const writer_config& cfg, std::uint64_t ts,
                                    std::uint64_t now_us, std::uint64_t& saved) {
  saved = 0;
  if (!p.fps.append_mode()) {
    return error::invalid_args;
  }
  replay_result archived;
  if (const error e = read_archive(pages.io(), p.id, ts, archived); e != error::ok) {
    return e;
  }
  if (p.has_manifest && !p.current->root.is_none()) {
    std::vector<std::pair<std::uint64_t, std::string>> existing;
    if (const error e = list_archives(pages.io(), p.id, existing); e != error::ok) {
      return e;
    }
    const std::uint64_t at = std::max(now_us, existing.empty() ? 0 : existing.back().first + 1);
    if (const error e = write_archive(pages.io(), p, cfg.term, at); e != error::ok) {
      return e;
    }
    saved = at;
  }
  version_builder<IO> b(pages, p, cfg);
  error e = b.adopt(mapping_table::from_values(archived.mapping));
  bool published = false;
  if (e == error::ok) {
    b.set_dictionary(make_dictionary(std::move(archived.dictionary)));  // the archive's values'
    e = b.commit(archived.root, archived.ttl_root, published);
  }
  if (published) {
    p.next_expire_ts = archived.ttl_root.is_none() ? 0 : 1;  // checked on the next write
  }
  return e;
}

}  // namespace eloqstore::detail
