// The next version of a partition, built aside, and the commit that makes it durable and
// visible (spec 5.2, 4.5): the commit protocol.
//
// A version_builder starts from the partition's published version: a private copy of the
// mapping table (chunked copy-on-write), and a map of dirty pages (logical id -> page bytes)
// that the tree algorithm (btree/writer.hpp) fills. Pages keep their logical id when
// rewritten. Final pages are streamed to storage while the tree is still being built
// (stream()); commit() then writes the rest, syncs the data files, writes and syncs the
// manifest (a log record appended, or a snapshot written atomically), and swaps the
// partition's version. Nothing is visible to readers before that swap, and any error before
// the manifest record is durable leaves the published state as it was, with the file pages
// this builder took given back.
//
// Page placement: every page written gets a fresh file page from the partition's allocator;
// the one it replaces is retired with the version it belonged to and reused once no reader
// holds that version (partition_state::reclaim).
//
// Thread affinity: the partition's shard thread; one builder per partition at a time.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <new>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/codec/checksum.hpp>
#include <eloqstore/detail/codec/coding.hpp>
#include <eloqstore/detail/codec/compression.hpp>
#include <eloqstore/detail/commit/manifest_writer.hpp>
#include <eloqstore/detail/commit/page_io.hpp>
#include <eloqstore/detail/commit/partition.hpp>
#include <eloqstore/detail/io/file_names.hpp>
#include <eloqstore/detail/io/page_ops.hpp>
#include <eloqstore/detail/manifest/record.hpp>
#include <eloqstore/detail/mapping/page_mapping.hpp>
#include <eloqstore/detail/page/data_page.hpp>
#include <eloqstore/detail/page/page_common.hpp>
#include <eloqstore/detail/util/metrics.hpp>
#include <eloqstore/detail/util/page_buffer.hpp>
#include <eloqstore/detail/util/strong_id.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/sched/hooks.hpp>

namespace eloqstore::detail {

struct writer_config {
  std::size_t page_size = 4096;
  std::uint16_t data_restart_interval = 16;
  std::uint16_t index_restart_interval = 16;
  std::size_t overflow_pointers = 16;
  std::uint64_t manifest_limit = 8 << 20;
  std::uint64_t term = 0;
  bool compress = false;  // enable_compression: new values are compressed (tree_writer)
};

// What a commit wrote (the last one of a store is EloqStore::last_write_stats, for
// benchmarks).
struct writer_stats {
  std::size_t pages_written = 0;
  std::size_t mapping_chunks_copied = 0;
  bool manifest_snapshot = false;
};

template <io_backend IO>
class version_builder {
 public:
  version_builder(page_access<IO>& pages, partition_state& partition, const writer_config& cfg)
      : pages_(pages),
        p_(partition),
        cfg_(cfg),
        mapping_(partition.current->mapping),
        dictionary_(partition.current->dictionary),
        manifest_(pages.io(), partition, cfg.term, cfg.manifest_limit) {
    mapping_.reset_chunks_copied();
    terms_ = partition.terms;
  }
  version_builder(const version_builder&) = delete;
  version_builder& operator=(const version_builder&) = delete;
  // A builder that did not commit waits for the page writes it started and gives their
  // file pages back (nothing durable references them).
  ~version_builder() {
    (void)finish_streams();
    for (const file_page_id fp : allocated_) {
      p_.fps.release(fp);
    }
    for (auto& [raw_id, bytes] : dirty_) {
      pages_.recycle(std::move(bytes));
    }
    for (auto& [raw_id, bytes] : prefetched_) {
      pages_.recycle(std::move(bytes));
    }
  }

  [[nodiscard]] const writer_stats& stats() const noexcept { return stats_; }
  [[nodiscard]] mapping_table& mapping() noexcept { return mapping_; }
  [[nodiscard]] const mapping_table& mapping() const noexcept { return mapping_; }
  [[nodiscard]] bool truncated_all() const noexcept { return truncated_all_; }

  // The next version's compression dictionary (the published one's unless replaced).
  [[nodiscard]] const zstd_dictionary* dictionary() const noexcept { return dictionary_.get(); }
  // Gives the next version dictionary `d`; its commit writes a snapshot, where the
  // dictionary is stored.
  void set_dictionary(std::shared_ptr<const zstd_dictionary> d) noexcept {
    dictionary_ = std::move(d);
    dictionary_changed_ = true;
  }

  // ---- pages of the next version ---------------------------------------------------------

  [[nodiscard]] error new_page_id(page_id& id) {
    id = mapping_.allocate();
    return id.value() <= child_page_id_max ? error::ok : error::out_of_space;
  }

  // Frees a logical page. Ids come from pages on disk, so an id that is not a mapped page
  // marks the write corrupt (reported at commit) instead of damaging the free list.
  void free_page(page_id id) {
    if (id.value() >= mapping_.size() || tag_of(mapping_.get(id)) == mapping_tag::free_link ||
        mapping_.get(id) == mapping_invalid_value) {
      const auto it = dirty_.find(id.value());
      if (it == dirty_.end()) {
        corrupt_ = true;
        return;
      }
      drop_dirty(it->first, it->second);
      dirty_.erase(it);
      // A page allocated by this writer and not yet written: it has no file page.
    }
    const file_page_id fp = mapping_.file_page(id);
    if (!fp.is_none()) {
      freed_fps_.push_back(fp);
    }
    if (const auto it = dirty_.find(id.value()); it != dirty_.end()) {
      drop_dirty(it->first, it->second);
      dirty_.erase(it);
    }
    mapping_.release(id);
    log_.delete_mapping(id);
  }

  // Frees every page of the partition (the tree is not read): the next version is empty.
  void free_all() {
    for (std::size_t i = 0; i < mapping_.size(); ++i) {
      const page_id id(static_cast<std::uint32_t>(i));
      if (!mapping_.file_page(id).is_none()) {
        free_page(id);
      }
    }
    for (auto& [raw_id, bytes] : dirty_) {
      drop_dirty(raw_id, bytes);
    }
    dirty_.clear();
    truncated_all_ = true;
  }

  // Makes the next version `mapping` (an archive's, restored): every page of the published
  // version is freed (reused once no reader holds it), and the file pages `mapping` names
  // are counted as referenced from now on (given back if this builder does not commit).
  // The commit writes a snapshot. error::corrupted, changing nothing the destructor does
  // not undo, when `mapping` names a page outside the partition's files (append mode only).
  [[nodiscard]] error adopt(mapping_table mapping) {
    free_all();
    mapping_ = std::move(mapping);
    allocated_.reserve(allocated_.size() + mapping_.live_count());  // no throw after acquire
    error e = error::ok;
    mapping_.for_each([&](std::uint64_t v) {
      if (e != error::ok || tag_of(v) != mapping_tag::file_page) {
        return;
      }
      const file_page_id fp = decode_file_page(v);
      if (!p_.fps.append_mode() || !p_.fps.append().acquire(fp)) {
        e = error::corrupted;
        return;
      }
      allocated_.push_back(fp);  // released by the destructor unless committed
    });
    return e;
  }

  // The current bytes of a page: the dirty copy if this writer changed it, a page read ahead
  // (prefetch_leaves), else storage.
  [[nodiscard]] error load(page_id id, std::vector<char>& out) {
    if (const auto it = dirty_.find(id.value()); it != dirty_.end()) {
      const std::span<const char> bytes = it->second;
      out.assign(bytes.begin(), bytes.end());
      return error::ok;
    }
    if (const auto it = prefetched_.find(id.value()); it != prefetched_.end()) {
      const std::span<const char> bytes = it->second.span();
      out.assign(bytes.begin(), bytes.end());
      pages_.recycle(std::move(it->second));
      prefetched_.erase(it);
      return error::ok;
    }
    return pages_.read_cached(p_, mapping_, id, out);
  }

  // This builder's bytes of page `id`, or nullptr if it has not changed the page.
  [[nodiscard]] const page_buffer* dirty_bytes(page_id id) const {
    const auto it = dirty_.find(id.value());
    return it == dirty_.end() ? nullptr : &it->second;
  }

  // Reads pages `leaves` all at once (the backend overlaps them), so that load() finds them
  // in memory; pages already held are skipped, and at most prefetch_max are read.
  [[nodiscard]] error prefetch(std::vector<page_id> leaves) {
    std::erase_if(leaves, [&](page_id id) {
      return dirty_.contains(id.value()) || prefetched_.contains(id.value());
    });
    if (leaves.size() > prefetch_max) {
      leaves.resize(prefetch_max);  // memory bound: the rest is read when reached
    }
    if (leaves.size() < 2) {
      return error::ok;
    }
    std::vector<page_buffer> bufs;
    bufs.reserve(leaves.size());
    for (std::size_t i = 0; i < leaves.size(); ++i) {
      bufs.push_back(pages_.take_buffer());
    }
    if (const error e = pages_.read_many(p_, mapping_, leaves, bufs); e != error::ok) {
      return e;
    }
    for (std::size_t i = 0; i < leaves.size(); ++i) {
      prefetched_.emplace(leaves[i].value(), std::move(bufs[i]));
    }
    return error::ok;
  }

  // A dirty copy of a data page, loaded on first use, for sibling-link updates.
  [[nodiscard]] error set_link(page_id id, std::size_t offset, page_id value) {
    auto it = dirty_.find(id.value());
    if (it == dirty_.end()) {
      std::vector<char> bytes;
      if (const error e = load(id, bytes); e != error::ok) {
        return e;
      }
      if (read_page_type(bytes) != page_type::data) {
        return error::corrupted;
      }
      it = dirty_.try_emplace(id.value(), pages_.take_buffer()).first;
      it->second.assign(bytes.begin(), bytes.end());
    } else {
      detach_streamed(it->first, it->second);
    }
    encode_fixed32(it->second.data() + offset, value.value());
    return error::ok;
  }

  // Replaces a page's dirty bytes.
  void set_dirty(page_id id, std::span<const char> page) {
    auto [it, fresh] = dirty_.try_emplace(id.value());
    if (!fresh) {
      drop_dirty(it->first, it->second);
    }
    if (it->second.size() == 0) {
      it->second = pages_.take_buffer();
    }
    it->second.assign(page.begin(), page.end());
  }

  // Marks a final dirty page for writing ahead of the commit; every stream_pages_max pages
  // are placed and their write started. A page changed after this is detached and written
  // again at commit (detach_streamed).
  [[nodiscard]] error stream(page_id id) {
    // Every backend streams (the synchronous ones write at once), so one write path, with its
    // failures and crashes in the middle of a build, is what every backend's tests exercise.
    assert(dirty_.contains(id.value()) && "only a dirty page of this version streams");
    streamed_.insert(id.value());
    ready_.push_back(id.value());
    if (ready_.size() < stream_pages_max) {
      return error::ok;
    }
    error e = write_placed(ready_, true);
    ready_.clear();
    // Backpressure: at most tickets_max batches in flight (bounded device queue, bounded
    // iovec and bounce memory); the oldest is likely done by now.
    while (e == error::ok && tickets_.size() > tickets_max) {
      e = page_ops<IO>::finish_write_pages(pages_.io(), tickets_.front());
      tickets_.pop_front();
    }
    if (e != error::ok) {
      stream_error_ = e;
    }
    return e;
  }

  // ---- commit ------------------------------------------------------------------------------

  // Writes the dirty pages, syncs the data files, writes and syncs the manifest, then
  // publishes the version with roots `root` and `ttl_root`. `published` tells whether there
  // was anything to commit (nothing changed: no manifest write, nothing published).
  [[nodiscard]] error commit(page_id root, page_id ttl_root, bool& published) {
    published = false;
    if (corrupt_) {
      return error::corrupted;  // a page named an id the mapping does not hold
    }
    if (stream_error_ != error::ok) {
      return stream_error_;  // placed pages may be unwritten: nothing of this may commit
    }
    if (dirty_.empty() && log_.change_count() == 0 && !truncated_all_ && !p_.force_snapshot &&
        !dictionary_changed_) {
      return error::ok;  // nothing changed: no manifest write
    }
    root_ = root;
    ttl_root_ = ttl_root;
    error e = write_dirty_pages();
    if (const error s = finish_streams(); e == error::ok) {
      e = s;
    }
    assert((e != error::ok || (ready_.empty() && tickets_.empty())) &&
           "every dirty page is written before the data files are synced");
    stats_.mapping_chunks_copied = mapping_.chunks_copied();
    if (e == error::ok) {
      e = sync_files();
    }
    if (e != error::ok) {
      return e;  // the destructor gives the new file pages back: nothing durable has them
    }
    // What publish() needs is allocated before the record is written: after it nothing may
    // fail. The retired slot waits (empty, so reclaim stops at it) for the version replaced.
    auto next = std::make_shared<partition_version>();
    p_.retired.emplace_back();
    error m = error::ok;
    try {
      m = write_manifest();
    } catch (const std::bad_alloc&) {
      m = error::out_of_mem;  // the record may have been written
      manifest_unknown_ = true;
    }
    manifest_unknown_ = manifest_unknown_ || manifest_.unknown();
    if (m != error::ok) {
      p_.retired.pop_back();
      if (!manifest_unknown_) {
        return m;  // no record of it can replay: the destructor gives the new pages back
      }
      // The record may or may not have reached the disk: never reuse the pages it names in
      // this process, and replace the whole manifest on the next commit.
      p_.leaked_fps += allocated_.size();
      allocated_.clear();
      p_.force_snapshot = true;
      return m;
    }
    allocated_.clear();
    publish(std::move(next));
    published = true;
    return error::ok;
  }

  // A new partition gets its manifest before its first data file (manifest_writer::ensure).
  [[nodiscard]] error ensure_manifest() { return manifest_.ensure(terms_); }

 private:
  // Gives dirty page `raw_id` its new file page: the old one is retired, the mapping and the
  // manifest log point at the new one, its file is noted for the sync, and the checksum is
  // set. Returns the page's file.
  file_id place(std::uint32_t raw_id, page_buffer& bytes, file_page_id& fp) {
    const unsigned shift = pages_.pages_per_file_shift();
    const page_id id(raw_id);
    const file_page_id old = mapping_.file_page(id);
    if (!old.is_none()) {
      freed_fps_.push_back(old);
    }
    fp = p_.fps.allocate();
    assert(!fp.is_none() && fp != old && "a placed page gets a file page no version holds");
    allocated_.push_back(fp);
    pages_.invalidate(p_, fp);
    mapping_.set(id, encode_file_page(fp));
    log_.update_mapping(id, fp);
    const file_id f = file_of(fp, shift);
    if (files_.insert(f.value()).second && ensure_term(terms_, f, cfg_.term)) {
      new_file_ = true;
    }
    set_page_checksum(bytes.span());
    if (const page_type t = read_page_type(bytes.span());
        t == page_type::leaf_index || t == page_type::non_leaf_index) {
      written_index_.emplace_back(fp.value(), raw_id);
    } else if (pages_.data_cache_on()) {
      written_data_.emplace_back(fp.value(), raw_id);
    }
    ++stats_.pages_written;
    return f;
  }

  // Places and writes the pages `ids` (all dirty): started (`async`; the caller goes on
  // building while the backend writes, if it can) or written before returning.
  [[nodiscard]] error write_placed(std::span<const std::uint32_t> ids, bool async) {
    const unsigned shift = pages_.pages_per_file_shift();
    std::vector<std::pair<std::uint64_t, std::string>> names;  // file id, name
    std::vector<page_write> batch;
    std::vector<std::size_t> batch_files;  // index into names of each batch entry
    for (const std::uint32_t raw_id : ids) {
      page_buffer& bytes = dirty_.find(raw_id)->second;
      file_page_id fp;
      const file_id f = place(raw_id, bytes, fp);
      if (names.empty() || names.back().first != f.value()) {
        names.emplace_back(f.value(), pages_.file_name(terms_, f));
      }
      batch.push_back(page_write{{}, file_offset_bytes(fp, shift, cfg_.page_size), bytes});
      batch_files.push_back(names.size() - 1);
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      batch[i].name = names[batch_files[i]].second;  // names no longer grows: stable
    }
    metric_add(counter::pages_written, batch.size());
    if (!async) {
      return page_ops<IO>::write_pages(pages_.io(), p_.id, batch);
    }
    write_ticket ticket;
    if (const error e = page_ops<IO>::begin_write_pages(pages_.io(), p_.id, batch, ticket);
        e != error::ok) {
      return e;
    }
    tickets_.push_back(std::move(ticket));
    return error::ok;
  }

  // Waits for the writes stream() started; the first error.
  [[nodiscard]] error finish_streams() {
    error first = error::ok;
    for (auto& t : tickets_) {
      if (const error e = page_ops<IO>::finish_write_pages(pages_.io(), t);
          e != error::ok && first == error::ok) {
        first = e;
      }
    }
    tickets_.clear();
    for (page_buffer& b : kept_) {
      pages_.recycle(std::move(b));  // no write reads them any more
    }
    kept_.clear();
    return first;
  }

  // A streamed page about to change: its buffer (which a write may still be reading) is
  // kept aside and replaced by a copy, and the page is written again at commit.
  void detach_streamed(std::uint32_t raw_id, page_buffer& bytes) {
    if (streamed_.erase(raw_id) == 0) {
      return;
    }
    if (const auto it = std::find(ready_.begin(), ready_.end(), raw_id); it != ready_.end()) {
      ready_.erase(it);  // not placed yet: nothing reads the buffer
      return;
    }
    page_buffer copy = pages_.take_buffer();
    copy.assign(bytes.span().begin(), bytes.span().end());
    kept_.push_back(std::move(bytes));
    bytes = std::move(copy);
  }

  // A dirty page about to be forgotten: a streamed buffer is kept until the writes finish.
  void drop_dirty(std::uint32_t raw_id, page_buffer& bytes) {
    if (streamed_.erase(raw_id) != 0) {
      std::erase(ready_, raw_id);
      kept_.push_back(std::move(bytes));
    }
  }

  // Writes the dirty pages not written yet (never streamed, or streamed but not started),
  // all together.
  [[nodiscard]] error write_dirty_pages() {
    for (const std::uint32_t raw_id : ready_) {
      streamed_.erase(raw_id);
    }
    ready_.clear();
    std::vector<std::uint32_t> ids;
    ids.reserve(dirty_.size());
    for (const auto& [raw_id, bytes] : dirty_) {
      if (!streamed_.contains(raw_id)) {
        ids.push_back(raw_id);
      }
    }
    return write_placed(ids, false);
  }

  [[nodiscard]] error sync_files() {
    for (const std::uint64_t f : files_) {
      metric_add(counter::data_syncs);
      if (const error e = pages_.io().sync(p_.id, pages_.file_name(terms_, file_id(f)));
          e != error::ok) {
        return e;
      }
    }
    return new_file_ ? pages_.io().sync_dir(p_.id) : error::ok;
  }

  // The commit's manifest write: its log record appended when the manifest has room and the
  // version is not empty or truncated (or the manifest due for a rewrite, or the dictionary
  // new); else a snapshot.
  [[nodiscard]] error write_manifest() {
    set_manifest_term(terms_, cfg_.term);
    const bool empty = root_.is_none() && ttl_root_.is_none();
    std::string_view log;
    if (p_.has_manifest && !p_.force_snapshot && !empty && !truncated_all_ &&
        !dictionary_changed_) {
      log = log_.finish_log(root_, ttl_root_, terms_);
    }
    if (!log.empty() && manifest_.fits(log)) {
      return manifest_.append(log);
    }
    const error e =
        manifest_.snapshot(root_, ttl_root_, mapping_, dictionary_bytes(dictionary_.get()), terms_);
    stats_.manifest_snapshot = e == error::ok;
    return e;
  }

  // After the manifest record is durable the partition must take the new version: nothing
  // here may fail (commit() allocated `next` and the retired slot before the record was
  // written), and what needs memory besides is skipped when there is none: reclaiming old
  // versions (the next commit does it) and warming the index cache.
  void publish(std::shared_ptr<partition_version> next) noexcept {
    const no_suspend installing;  // readers must see the old version or the new one
    next->root = root_;
    next->ttl_root = ttl_root_;
    next->mapping = std::move(mapping_);
    next->dictionary = std::move(dictionary_);
    p_.current->retired_fps = std::move(freed_fps_);
    assert(p_.retired.back() == nullptr && "commit() reserved the retired slot");
    p_.retired.back() = std::move(p_.current);
    p_.current = std::move(next);
    p_.terms = std::move(terms_);
    p_.manifest_bytes = manifest_.new_bytes();
    p_.manifest_file_bytes = manifest_.new_file_bytes();
    p_.has_manifest = true;
    p_.force_snapshot = false;
    try {
      // Data pages that replace cached ones take their place in the data page cache (the
      // previous version is still retired.back() until reclaim()).
      // A small commit's other data pages join them.
      const mapping_table& before = p_.retired.back()->mapping;
      const bool recent = written_data_.size() <= pages_.cache_share_pages();
      for (const auto& [fp, id] : written_data_) {
        const auto it = dirty_.find(id);
        if (it != dirty_.end() && p_.current->mapping.file_page(page_id(id)) == file_page_id(fp)) {
          pages_.cache_written_data(p_, before.file_page(page_id(id)), file_page_id(fp),
                                    it->second.span(), recent);
        }
      }
      // The pages this version no longer maps leave it too (a reader of an older version that
      // still wants one reads it).
      if (pages_.data_cache_on()) {
        for (const file_page_id fp : p_.retired.back()->retired_fps) {
          pages_.forget_data(p_, fp);
        }
      }
      p_.reclaim();
      // The index pages just written are what the next descent needs: keep them warm.
      for (const auto& [fp, id] : written_index_) {
        pages_.cache_written(p_, p_.current->mapping, page_id(id), file_page_id(fp), dirty_[id]);
      }

    } catch (const std::bad_alloc&) {
      // Old versions stay retired until a later commit; the index pages are read when needed.
    }
  }

  page_access<IO>& pages_;
  partition_state& p_;
  writer_config cfg_;
  mapping_table mapping_;
  std::shared_ptr<const zstd_dictionary> dictionary_;
  bool dictionary_changed_ = false;
  page_id root_ = page_id::none();  // the roots being committed (commit())
  page_id ttl_root_ = page_id::none();
  // Pages this builder holds for the next version, page-aligned so direct I/O writes them
  // in place.
  std::map<std::uint32_t, page_buffer> dirty_;
  // Streaming: pages final before the commit (stream()), those not yet placed (ready_), the
  // writes in flight, and buffers of detached pages that a write may still be reading.
  // Pages placed and written together: 1 MiB per asynchronous batch (fewer submissions and
  // device notifications); synchronous backends write page by page anyway, so they stream
  // in small groups (which also puts writes in the middle of most builds, where crash and
  // fault tests reach them).
  static constexpr std::size_t stream_pages_max = async_page_writes<IO> ? 256 : 16;
  std::unordered_set<std::uint32_t> streamed_;
  std::vector<std::uint32_t> ready_;
  static constexpr std::size_t tickets_max = 16;
  using write_ticket = typename page_ops<IO>::write_ticket;
  std::deque<write_ticket> tickets_;
  error stream_error_ = error::ok;  // a streamed write failed: commit() must not succeed
  std::vector<page_buffer> kept_;
  std::vector<file_page_id> allocated_;  // file pages taken by this builder, until committed
  std::set<std::uint64_t> files_;        // data files written
  bool new_file_ = false;                // a file new to the term mapping
  std::unordered_map<std::uint32_t, page_buffer> prefetched_;  // pages read ahead
  static constexpr std::size_t prefetch_max = 512;
  std::vector<file_page_id> freed_fps_;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> written_index_;  // file page, page id
  std::vector<std::pair<std::uint64_t, std::uint32_t>> written_data_;   // file page, page id
  manifest_builder log_;
  term_mapping terms_;
  writer_stats stats_;
  manifest_writer<IO> manifest_;
  // A manifest write failed in a way that may have left its record on disk (commit()).
  bool manifest_unknown_ = false;
  bool truncated_all_ = false;
  bool corrupt_ = false;  // a freed id the mapping does not hold (reported by commit())
};

}  // namespace eloqstore::detail
