// A partition's in-memory state (its "root meta"): the published version (roots + mapping
// table), the file page allocator, the manifest's size and term mapping, and the superseded
// versions whose freed file pages wait until no reader holds them. Readers copy `current` (a
// shared_ptr) and keep that version for their whole operation; a writer builds a new version
// aside (commit/version_builder.hpp) and publishes it by swapping `current`.
//
// Thread affinity: the owning shard's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <eloqstore/detail/codec/compression.hpp>
#include <eloqstore/detail/manifest/record.hpp>
#include <eloqstore/detail/mapping/append_allocator.hpp>
#include <eloqstore/detail/mapping/page_mapping.hpp>
#include <eloqstore/detail/util/strong_id.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore::detail {

// One committed, immutable state of a partition.
struct partition_version {
  page_id root = page_id::none();
  page_id ttl_root = page_id::none();
  mapping_table mapping;
  // The partition's compression dictionary as of this version (none until one is trained):
  // a reader decodes the values of the version it holds with it, whatever a restore has made
  // the partition's since.
  std::shared_ptr<const zstd_dictionary> dictionary;
  // File pages this version references that its successor no longer does; reusable once this
  // version and every older one are released.
  std::vector<file_page_id> retired_fps;
};

struct partition_state {
  table_ident id;
  bool loaded = false;  // the manifest was read (or found absent)
  bool has_manifest = false;
  std::shared_ptr<partition_version> current = std::make_shared<partition_version>();
  std::deque<std::shared_ptr<partition_version>> retired;
  file_pages fps;                         // pooled, or append mode's (load_partition picks)
  std::uint64_t manifest_bytes = 0;       // the manifest's records: where the next one goes
  std::uint64_t manifest_file_bytes = 0;  // its file (at least): records, then blocks to reuse
  term_mapping terms;
  // Compression (codec/compression.hpp): values sampled while the partition has no
  // dictionary.
  dictionary_sampler sampler;
  std::uint64_t next_expire_ts = 0;  // smallest expiry that may be live; 0 = none
  bool force_snapshot = false;       // after a failed manifest write, rewrite it whole
  // Append mode (commit/compaction.hpp): compaction is due and waits for the writer; none
  // is started again before the tail reaches compaction_retry_fp (after a round that could
  // move nothing); file GC has listed the directory since the load; the data files an
  // archive names (GC keeps them).
  bool compaction_pending = false;
  std::uint64_t compaction_retry_fp = 0;
  bool files_listed = false;
  std::set<std::uint64_t> archived_files;
  std::size_t leaked_fps = 0;  // file pages held back after a failed manifest write
  // Root-meta cache bookkeeping of the owning shard (position in its LRU, bytes counted).
  std::list<table_ident>::iterator lru_pos;
  std::size_t accounted_bytes = 0;
  std::size_t pins = 0;  // tasks using this state now (it must not be evicted)

  // What this state costs in the shard's root-meta budget: the mapping table's chunks, the
  // dictionary and the samples gathered for one, plus a fixed overhead.
  [[nodiscard]] std::size_t meta_bytes() const noexcept {
    return current->mapping.memory_bytes() + dictionary_bytes(current->dictionary.get()).size() +
           sampler.bytes() + 512;
  }

  [[nodiscard]] bool empty() const noexcept {
    return current->root.is_none() && current->ttl_root.is_none();
  }

  // Returns to the allocator the file pages of superseded versions no reader holds, oldest
  // first (a younger version's pages may still be seen by an older reader). A version's
  // pages go back all at once or not at all (room is made first), so a failure to allocate
  // leaves it retired, to be reclaimed later, never half released.
  void reclaim() {
    while (!retired.empty() && retired.front().use_count() == 1) {
      fps.reserve_free(retired.front()->retired_fps.size());
      for (const file_page_id fp : retired.front()->retired_fps) {
        fps.release(fp);
      }
      retired.pop_front();
    }
  }

  [[nodiscard]] std::uint64_t term_of(file_id f) const noexcept { return term_in(terms, f); }

  // The term `terms` records for file f; 0 (the local term) when it records none.
  [[nodiscard]] static std::uint64_t term_in(const term_mapping& terms, file_id f) noexcept {
    for (const auto& [file, term] : terms) {
      if (file == f.value()) {
        return term;
      }
    }
    return 0;
  }
};

}  // namespace eloqstore::detail
