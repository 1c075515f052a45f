// Append mode's space reclamation (spec 5.9): file-level compaction and file GC.
//
// In append mode a rewritten page goes to the tail and its old copy stays where it was, dead
// once no readable version maps it; files fill with dead pages. Compaction moves the live
// pages of the sparsest files below the tail to the tail (bytes unchanged, logical ids
// unchanged: only the mapping changes) and commits, as any writer does, through a
// version_builder. File GC then deletes the data files no page of a readable version is in.
//
// Bound. With factor f = file_amplify_factor, live pages L and P pages per file, compaction
// is due when space (the pages between the oldest referenced file and the tail, less the
// empty files: append_allocator::space_pages) exceeds f*L + P, and it moves the sparsest
// files until space is at most f*L, or until no file below the tail is left to move, which
// leaves at most the tail file (P pages) plus the L live pages moved behind it. So after
// every compaction space <= f*L + P for f >= 1, and each compaction reclaims about a file or
// more. Pages still held by readers' versions count in space until the readers finish.
//
// GC (collect_files) deletes a file below the tail when its count of referenced pages is zero
// (append_allocator counts a page until no readable version, readers' snapshots included,
// maps it), unless an archive names it. The first GC after a partition is loaded also lists
// the directory: files left by an earlier run (a crash between a commit and its GC) are
// deleted by the same rule, and the archives found there are read for the files they name;
// manifests of older terms (cloud mode) go too.
// Deleting happens only after the manifest that stopped referencing the file is durable
// (counts drop when a published version is reclaimed), so a crash at any point leaves every
// file a durable manifest names; an unlink lost in a crash leaves an orphan that the next
// load's listing removes.
//
// Thread affinity: the partition's shard thread, in its writer (one writer per partition).
#pragma once

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/commit/archive.hpp>
#include <eloqstore/detail/commit/page_io.hpp>
#include <eloqstore/detail/commit/partition.hpp>
#include <eloqstore/detail/commit/version_builder.hpp>
#include <eloqstore/detail/io/file_names.hpp>
#include <eloqstore/detail/manifest/replay.hpp>
#include <eloqstore/detail/mapping/append_allocator.hpp>
#include <eloqstore/detail/mapping/page_mapping.hpp>
#include <eloqstore/detail/util/page_buffer.hpp>
#include <eloqstore/detail/util/strong_id.hpp>
#include <eloqstore/error.hpp>

namespace eloqstore::detail {

// Pages read per batch while relocating (the reference's bound).
inline constexpr std::size_t compaction_read_batch = 128;
// Pages relocated per commit: bounds the memory a round holds and how long a write queued
// behind it waits.
inline constexpr std::size_t compaction_round_pages = 1024;

// A data file below the tail and how many pages of the published version it holds.
struct file_occupancy {
  file_id file;
  std::uint64_t live = 0;
};

// The files compaction moves: sparsest first (a file costs its live pages to move and frees
// a whole file), until the projected space is at most factor * live. A full file is never
// picked (moving it frees nothing). `space` is append_allocator::space_pages(); `files` are
// the files below the tail with referenced pages (each counts a whole file in space).
[[nodiscard]] inline std::vector<file_id> plan_compaction(std::vector<file_occupancy> files,
                                                          std::uint64_t space, std::uint64_t live,
                                                          unsigned factor,
                                                          std::uint64_t pages_per_file) {
  std::sort(files.begin(), files.end(), [](const file_occupancy& a, const file_occupancy& b) {
    return a.live != b.live ? a.live < b.live : a.file.value() < b.file.value();
  });
  const std::uint64_t target =
      live > UINT64_MAX / std::max(1u, factor) ? UINT64_MAX : live * factor;
  std::vector<file_id> out;
  for (const file_occupancy& f : files) {
    if (space <= target || f.live >= pages_per_file) {
      break;
    }
    space = space - pages_per_file + f.live;
    out.push_back(f.file);
  }
  return out;
}

// The data files in p's directory that an earlier run left (below the tail, not referenced,
// not tracked by the allocator, no newer term's), and the files the archives there name
// (into p.archived_files). Sets p.files_listed when the directory is gone.
template <io_backend IO>
[[nodiscard]] error list_orphans(IO& io, partition_state& p, std::uint64_t process_term,
                                 std::vector<std::string>& orphans) {
  std::vector<std::string> names;
  if (const error e = io.list(p.id, names); e != error::ok) {
    if (e == error::not_found) {
      p.files_listed = true;
      return error::ok;
    }
    return e;
  }
  const append_allocator& a = p.fps.append();
  const unsigned shift = std::countr_zero(a.pages_per_file());
  if (const error e = read_archived_files(io, p.id, shift, p.archived_files); e != error::ok) {
    return e;  // an archive we cannot read may need any file: delete none
  }
  std::vector<file_id> tracked;
  a.collectable(tracked);
  for (const std::string& name : names) {
    const parsed_file_name n = parse_file_name(name);
    if (n.kind == file_kind::manifest && n.term < process_term) {
      // An older term's manifest (cloud mode): this term was promoted from it, or from a
      // newer one; none is read again (spec 8: GC removes manifests of older terms).
      orphans.push_back(name);
      continue;
    }
    if (n.kind != file_kind::data || n.id.value() >= a.tail_file().value() ||
        a.referenced(n.id) != 0 || n.term > process_term ||
        p.archived_files.contains(n.id.value()) ||
        std::find(tracked.begin(), tracked.end(), n.id) != tracked.end()) {
      continue;
    }
    orphans.push_back(name);
  }
  return error::ok;
}

// Deletes the data files of append-mode partition p that no readable version references
// and no archive names (see the header comment); the first call after a load also removes
// what an earlier run left. A file that fails to go stays collectable for the next call.
template <io_backend IO>
[[nodiscard]] error collect_files(page_access<IO>& pages, partition_state& p,
                                  std::uint64_t process_term) {
  if (!p.fps.append_mode() || !p.has_manifest) {
    return error::ok;
  }
  p.reclaim();
  append_allocator& a = p.fps.append();
  std::vector<std::pair<file_id, std::string>> doomed;  // tracked files: id, name
  std::vector<std::string> orphans;                     // listed, not tracked
  if (!p.files_listed) {
    if (const error e = list_orphans(pages.io(), p, process_term, orphans); e != error::ok) {
      return e;  // nothing is deleted without knowing what the archives need
    }
    p.files_listed = true;  // an orphan that fails to go is listed again after a reload
  }
  std::vector<file_id> ids;
  a.collectable(ids);
  for (const file_id f : ids) {
    if (!p.archived_files.contains(f.value())) {
      doomed.emplace_back(f, pages.file_name(p, f));
    }
  }
  if (doomed.empty() && orphans.empty()) {
    return error::ok;
  }
  error first = error::ok;
  const auto remove = [&](const std::string& name) {
    const error e = pages.io().remove(p.id, name);
    if (e != error::ok && e != error::not_found && first == error::ok) {
      first = e;
    }
    return e == error::ok || e == error::not_found;
  };
  for (auto& [f, name] : doomed) {
    pages.drop_file(p, f);  // an open handle would keep the file's blocks allocated
    if (remove(name)) {
      a.mark_removed(f);
      const auto file = f.value();  // (a structured binding is not capturable before clang 16)
      std::erase_if(p.terms, [file](const auto& t) { return t.first == file; });
    }
  }
  for (const std::string& name : orphans) {
    (void)remove(name);
  }
  const error synced = pages.io().sync_dir(p.id);  // the space is given back for good
  return first != error::ok ? first : (synced == error::not_found ? error::ok : synced);
}

// The live pages (file page, logical id) of version v that a compaction pass moves now, in
// file order: those of the files plan_compaction picks. `planned` tells whether it picked
// any (all of whose pages only readers' versions may hold).
inline std::vector<std::pair<file_page_id, page_id>> pages_to_move(const append_allocator& a,
                                                                   const partition_version& v,
                                                                   unsigned factor, bool& planned) {
  const std::uint64_t oldest = a.oldest_file().value();
  const std::uint64_t tail = a.tail_file().value();
  const unsigned shift = std::countr_zero(a.pages_per_file());
  const auto each_page = [&](auto&& f) {
    for (std::size_t i = 0; i < v.mapping.size(); ++i) {
      const page_id id(static_cast<std::uint32_t>(i));
      const file_page_id fp = v.mapping.file_page(id);
      if (!fp.is_none() && (fp.value() >> shift) < tail) {
        f(id, (fp.value() >> shift) - oldest, fp);
      }
    }
  };
  std::vector<std::uint64_t> live_in(tail - oldest, 0);
  each_page([&](page_id, std::uint64_t f, file_page_id) { ++live_in[f]; });
  std::vector<file_occupancy> files;
  for (std::uint64_t f = oldest; f < tail; ++f) {
    if (a.referenced(file_id(f)) > 0) {
      files.push_back({file_id(f), live_in[f - oldest]});
    }
  }
  const std::vector<file_id> plan = plan_compaction(
      std::move(files), a.space_pages(), v.mapping.live_count(), factor, a.pages_per_file());
  planned = !plan.empty();
  std::vector<bool> moving(tail - oldest, false);
  for (const file_id f : plan) {
    moving[f.value() - oldest] = true;
  }
  std::vector<std::pair<file_page_id, page_id>> out;
  each_page([&](page_id id, std::uint64_t f, file_page_id fp) {
    if (moving[f]) {
      out.emplace_back(fp, id);
    }
  });
  std::sort(out.begin(), out.end());  // file order: reads go front to back
  return out;
}

// Gives builder b the current bytes of pages `todo` of version v as dirty pages, unchanged,
// streamed to the tail as they come: index pages from the cache when there, the others
// read compaction_read_batch at a time.
template <io_backend IO>
[[nodiscard]] error relocate_pages(page_access<IO>& pages, partition_state& p,
                                   const partition_version& v,
                                   std::span<const std::pair<file_page_id, page_id>> todo,
                                   version_builder<IO>& b) {
  std::vector<page_buffer> bufs;
  std::vector<page_id> to_read;
  std::vector<page_buffer> read_bufs;
  error e = error::ok;
  for (std::size_t at = 0; at < todo.size() && e == error::ok; at += compaction_read_batch) {
    const std::size_t n = std::min(todo.size() - at, compaction_read_batch);
    while (bufs.size() < n) {
      bufs.push_back(pages.take_buffer());
    }
    to_read.clear();
    read_bufs.clear();
    for (std::size_t k = 0; k < n; ++k) {
      if (!pages.copy_cached_index(p, todo[at + k].first, bufs[k].span())) {
        to_read.push_back(todo[at + k].second);
        read_bufs.push_back(std::move(bufs[k]));
      }
    }
    e = pages.read_many(p, v.mapping, to_read, read_bufs, cache_use::peek);
    for (std::size_t k = 0, r = 0; k < n; ++k) {
      if (bufs[k].size() == 0) {
        bufs[k] = std::move(read_bufs[r++]);  // this one was read (or is back, on error)
      }
      if (e == error::ok) {
        b.set_dirty(todo[at + k].second, bufs[k].span());
        e = b.stream(todo[at + k].second);
      }
    }
    pages.yield_point();  // reads waiting meanwhile go first
  }
  for (page_buffer& buf : bufs) {
    pages.recycle(std::move(buf));
  }
  return e;
}

// One round of compaction of append-mode partition p: the pages pages_to_move picks (nothing
// when space is within factor * live), at most round_pages of them, relocated and committed
// with the published version's roots. `done` is false when more remain for another round:
// a pass, started when append_allocator::compaction_due, runs rounds until done (or stops
// early). An empty partition moves its tail past its last file so GC can delete that too.
// Sets p.compaction_retry_fp when the planned files hold no page to move (readers' only).
template <io_backend IO>
[[nodiscard]] error compact_round(page_access<IO>& pages, partition_state& p,
                                  const writer_config& cfg, unsigned factor,
                                  std::size_t round_pages, bool& done) {
  done = true;
  if (!p.fps.append_mode() || !p.has_manifest) {
    return error::ok;
  }
  p.reclaim();
  append_allocator& a = p.fps.append();
  std::shared_ptr<partition_version> v = p.current;  // the writer's: nothing else publishes
  if (v->mapping.live_count() == 0) {
    if (a.referenced(a.tail_file()) == 0) {
      a.skip_to_next_file();
    }
    return error::ok;
  }
  bool planned = false;
  std::vector<std::pair<file_page_id, page_id>> todo = pages_to_move(a, *v, factor, planned);
  if (todo.empty()) {
    if (planned) {
      p.compaction_retry_fp = a.max_fp() + a.pages_per_file();  // wait for more writes
    }
    return error::ok;
  }
  if (todo.size() > round_pages) {
    todo.resize(round_pages);
    done = false;
  }
  version_builder<IO> b(pages, p, cfg);
  if (const error e = relocate_pages<IO>(pages, p, *v, todo, b); e != error::ok) {
    return e;  // the builder gives back what it placed
  }
  assert(p.current == v && "compaction runs as the partition's only writer");
  const page_id root = v->root;
  const page_id ttl_root = v->ttl_root;
  v.reset();  // the version it replaces is reclaimed at publish unless a reader holds it
  bool published = false;
  return b.commit(root, ttl_root, published);
}

}  // namespace eloqstore::detail
