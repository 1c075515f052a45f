// Page I/O of one shard: page reads through a version's mapping table with checksum
// verification (one at a time, overlapped, or merged into runs of adjacent pages), the
// shard's index page cache and data page cache, and the spare page buffers that reads and
// writers reuse.
//
// Thread affinity: the shard's thread.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/codec/checksum.hpp>
#include <eloqstore/detail/commit/file_handles.hpp>
#include <eloqstore/detail/commit/partition.hpp>
#include <eloqstore/detail/io/file_names.hpp>
#include <eloqstore/detail/io/page_ops.hpp>
#include <eloqstore/detail/page/page_common.hpp>
#include <eloqstore/detail/shard/data_cache.hpp>
#include <eloqstore/detail/shard/index_cache.hpp>
#include <eloqstore/detail/util/metrics.hpp>
#include <eloqstore/detail/util/page_buffer.hpp>
#include <eloqstore/detail/util/strong_id.hpp>
#include <eloqstore/error.hpp>

namespace eloqstore::detail {

using index_pin = index_cache::pin;

// How a read uses the data page cache.
enum class cache_use : std::uint8_t {
  normal,  // a hit counts as a use (probation -> protected); pages read are cached
  scan,    // a hit is not a use; pages read enter probation (a scan touches each page once)
  peek,    // a hit is not a use; pages read are not cached (compaction, large values)
};

// The shard's cache of open data files, for backends with file handles; an empty stand-in
// for the others, which read by name.
template <typename IO, bool = file_handles<IO>>
struct handle_cache_of {
  struct type {
    explicit type(std::size_t /*capacity*/) noexcept {}
    void drop(const void*, file_id) noexcept {}
    void drop_all(const void*) noexcept {}
  };
};
template <typename IO>
struct handle_cache_of<IO, true> {
  using type = file_handle_cache<typename IO::file_ref>;
};

// Page reads with checksum verification, and the shard's page caches.
//
// Which reads go through the data page cache: the reads of the tree (read_cached, read_many,
// read_runs), whose pages a reader or a writer is about to use. read() and read_fp() always
// go to storage: verify() checks what the files hold.
template <io_backend IO>
class page_access {
 public:
  // `open_files`: the data files kept open for reads (backends with file handles), at most
  // shard_file_handles(fd_limit, shards) in a store. `data_cache_pages`: the data page
  // cache's capacity; 0 disables it (the reference's behaviour: every data page is read).
  page_access(IO& io, std::size_t page_size, unsigned pages_per_file_shift, std::size_t cache_pages,
              bool verify_checksums,
              std::size_t open_files = file_handle_cache<int>::capacity_default,
              std::size_t data_cache_pages = 0)
      : io_(io),
        page_size_(page_size),
        shift_(pages_per_file_shift),
        verify_(verify_checksums),
        cache_(page_size, cache_pages == 0 ? 1 : cache_pages),
        data_(page_size, data_cache_pages),
        handles_(open_files) {}

  [[nodiscard]] std::size_t page_size() const noexcept { return page_size_; }
  [[nodiscard]] unsigned pages_per_file_shift() const noexcept { return shift_; }
  [[nodiscard]] IO& io() noexcept { return io_; }

  [[nodiscard]] std::string file_name(const partition_state& p, file_id f) const {
    return data_file_name(f, p.term_of(f));
  }
  // The name under `terms` (a writer's, which holds the terms of files new in its commit).
  [[nodiscard]] static std::string file_name(const term_mapping& terms, file_id f) {
    return data_file_name(f, partition_state::term_in(terms, f));
  }

  // Reads logical page `id` through `mapping` into `out` (resized to one page).
  [[nodiscard]] error read(const partition_state& p, const mapping_table& mapping, page_id id,
                           std::vector<char>& out) {
    out.resize(page_size_);
    return read(p, mapping, id, std::span<char>(out));
  }

  // The same into a caller's page-sized buffer (aligned buffers take the direct I/O path).
  [[nodiscard]] error read(const partition_state& p, const mapping_table& mapping, page_id id,
                           std::span<char> out) {
    const file_page_id fp = mapping.file_page(id);
    if (fp.is_none()) {
      return error::corrupted;  // a reachable page must be mapped
    }
    return read_fp(p, fp, out);
  }

  // Logical page `id` through `mapping` into `out` (page-sized) by way of the caches: a copy
  // of the index page or data page cached, else read (and checked); a data or overflow page
  // read is cached as `use` says.
  [[nodiscard]] error read_cached(const partition_state& p, const mapping_table& mapping,
                                  page_id id, std::span<char> out,
                                  cache_use use = cache_use::normal) {
    const file_page_id fp = mapping.file_page(id);
    if (fp.is_none()) {
      return error::corrupted;
    }
    if (cached_copy(p, fp, out, use) || copy_cached_index(p, fp, out)) {
      return error::ok;
    }
    if (const error e = read_fp(p, fp, out); e != error::ok) {
      return e;
    }
    cache_read(p, fp, out, use);
    return error::ok;
  }
  [[nodiscard]] error read_cached(const partition_state& p, const mapping_table& mapping,
                                  page_id id, std::vector<char>& out) {
    out.resize(page_size_);
    return read_cached(p, mapping, id, std::span<char>(out));
  }

  // Reads pages ids[i] into bufs[i] (page-sized), overlapping the reads when the backend
  // can (page_ops), and verifies every checksum. Pages in the data page cache are copied
  // from it; the pages read are cached as `use` says.
  [[nodiscard]] error read_many(const partition_state& p, const mapping_table& mapping,
                                std::span<const page_id> ids, std::span<page_buffer> bufs,
                                cache_use use = cache_use::normal) {
    std::vector<page_read> reads;
    std::vector<file_id> files;
    std::vector<std::pair<std::size_t, file_page_id>> missed;  // (i, fp) of the reads
    reads.reserve(ids.size());
    files.reserve(ids.size());
    missed.reserve(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const file_page_id fp = mapping.file_page(ids[i]);
      if (fp.is_none()) {
        return error::corrupted;
      }
      if (cached_copy(p, fp, bufs[i].span(), use)) {
        continue;
      }
      files.push_back(file_of(fp, shift_));
      reads.push_back(page_read{{}, file_offset_bytes(fp, shift_, page_size_), bufs[i].span()});
      missed.emplace_back(i, fp);
    }
    if (reads.empty()) {
      return error::ok;
    }
    metric_add(counter::pages_read, reads.size());
    if (const error e = issue_reads(p, files, reads); e != error::ok) {
      return e;
    }
    for (const page_read& r : reads) {
      if (verify_ && !verify_page_checksum(r.buf)) {
        return error::corrupted;
      }
    }
    for (const auto& [i, fp] : missed) {
      cache_read(p, fp, bufs[i].span(), use);
    }
    return error::ok;
  }

  // Reads pages ids[i] into out[i * page_size, (i + 1) * page_size) (out: ids.size() pages,
  // aligned as a page_buffer), one read per run of pages that lie one after another in one
  // file, and verifies every checksum. For pages read together whole, as the pages of an
  // overflow value, written one after another: fewer, larger reads. Pages in the data page
  // cache are copied from it; the pages read are cached as `use` says.
  [[nodiscard]] error read_runs(const partition_state& p, const mapping_table& mapping,
                                std::span<const page_id> ids, std::span<char> out,
                                cache_use use = cache_use::normal) {
    assert(out.size() >= ids.size() * page_size_);
    std::vector<page_read> reads;
    std::vector<file_id> files;
    std::vector<std::pair<std::size_t, file_page_id>> missed;  // (i, fp) of the pages read
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const file_page_id fp = mapping.file_page(ids[i]);
      if (fp.is_none()) {
        return error::corrupted;
      }
      const std::span<char> page = out.subspan(i * page_size_, page_size_);
      if (cached_copy(p, fp, page, use)) {
        continue;
      }
      missed.emplace_back(i, fp);
      const file_id f = file_of(fp, shift_);
      const std::uint64_t offset = file_offset_bytes(fp, shift_, page_size_);
      if (!reads.empty() && files.back() == f &&
          reads.back().offset + reads.back().buf.size() == offset &&
          reads.back().buf.data() + reads.back().buf.size() == page.data() &&
          reads.back().buf.size() + page_size_ <= run_bytes_max) {
        reads.back().buf = {reads.back().buf.data(), reads.back().buf.size() + page_size_};
        continue;  // (the buffers lie one after another too)
      }
      reads.push_back(page_read{{}, offset, page});
      files.push_back(f);
    }
    if (reads.empty()) {
      return error::ok;
    }
    metric_add(counter::pages_read, missed.size());
    if (const error e = issue_reads(p, files, reads); e != error::ok) {
      return e;
    }
    for (const auto& [i, fp] : missed) {
      if (verify_ && !verify_page_checksum(out.subspan(i * page_size_, page_size_))) {
        return error::corrupted;
      }
    }
    for (const auto& [i, fp] : missed) {
      cache_read(p, fp, out.subspan(i * page_size_, page_size_), use);
    }
    return error::ok;
  }

  [[nodiscard]] error read_fp(const partition_state& p, file_page_id fp, std::vector<char>& out) {
    out.resize(page_size_);
    return read_fp(p, fp, std::span<char>(out));
  }
  [[nodiscard]] error read_fp(const partition_state& p, file_page_id fp, std::span<char> out) {
    metric_add(counter::pages_read);
    const file_id f = file_of(fp, shift_);
    const std::uint64_t offset = file_offset_bytes(fp, shift_, page_size_);
    error e = error::ok;
    if constexpr (file_handles<IO>) {
      typename IO::file_ref file;  // held across the read: another task may evict the entry
      e = open_file(p, f, file);
      if (e == error::ok) {
        e = io_.read_at(file, offset, out);
      }
    } else {
      e = io_.read(p.id, file_name(p, f), offset, out);
    }
    if (e == error::end_of_file || e == error::not_found) {
      return error::corrupted;  // the manifest names a page the files do not hold
    }
    if (e != error::ok) {
      return e;
    }
    return verify_ && !verify_page_checksum(out) ? error::corrupted : error::ok;
  }

  // Index page `id` through the cache, pinned in `out` until `out` is reset or destroyed: a
  // swizzled entry leads straight to its frame; otherwise the page is looked up by file page
  // (or read) and swizzled into `mapping` for the next descent. error::out_of_mem if the page
  // is not cached and every cache frame is pinned.
  [[nodiscard]] error index(const partition_state& p, const mapping_table& mapping, page_id id,
                            index_pin& out) {
    if (swizzle_target* t = mapping.swizzled(id)) {
      metric_add(counter::index_cache_hits);
      out = cache_.pin_swizzled(*t, &p);
      return error::ok;
    }
    const file_page_id fp = mapping.file_page(id);
    if (fp.is_none()) {
      return error::corrupted;
    }
    if (index_pin hit = cache_.find(&p, fp)) {
      metric_add(counter::index_cache_hits);
      mapping.swizzle(id, hit.target());
      out = std::move(hit);
      return error::ok;
    }
    metric_add(counter::index_cache_misses);
    index_pin frame = cache_.allocate();
    if (!frame) {
      return error::out_of_mem;
    }
    if (const error e = read_fp(p, fp, frame.buffer()); e != error::ok) {
      return e;  // the frame returns to the free list
    }
    cache_.insert(frame, &p, fp);
    // The read parked this task: `mapping` may have been swizzled meanwhile (by a task that
    // loaded the same page, into the frame insert() switched to); swizzle() allows that.
    mapping.swizzle(id, frame.target());
    out = std::move(frame);
    return error::ok;
  }

  // Caches an index page a writer has just written at `fp` as logical page `id` of `mapping`
  // (the version being published), swizzled into it (best effort).
  void cache_written(const partition_state& p, const mapping_table& mapping, page_id id,
                     file_page_id fp, std::span<const char> bytes) {
    if (swizzle_target* t = cache_.put(&p, fp, bytes)) {
      mapping.swizzle(id, *t);
    }
  }

  // Caches data or overflow page `bytes`, just written at `fp` as the successor of page
  // `old` of the previous version (none for a new page): in old's segment if old was cached
  // (old leaves the cache), else in probation if `recent` (a small commit: what was just
  // written is likely read soon; a bulk load's pages are not). Best effort.
  void cache_written_data(const partition_state& p, file_page_id old, file_page_id fp,
                          std::span<const char> bytes, bool recent) {
    if (!data_.enabled()) {
      return;
    }
    const data_cache::segment seg =
        old.is_none() ? data_cache::segment::none : data_.segment_of(&p, old);
    if (seg != data_cache::segment::none) {
      data_.erase(&p, old);
    } else if (!recent) {
      return;
    }
    data_.insert(&p, fp, bytes, seg == data_cache::segment::protected_);
  }

  // Drops a file page from the data page cache: no newer version maps it.
  void forget_data(const partition_state& p, file_page_id fp) { data_.erase(&p, fp); }

  // Drops a file page from the caches; called whenever the page is reallocated.
  void invalidate(const partition_state& p, file_page_id fp) {
    cache_.erase(&p, fp);
    data_.erase(&p, fp);
  }
  // Copies index page `fp` of p into `out` (page-sized) if the cache holds it.
  [[nodiscard]] bool copy_cached_index(const partition_state& p, file_page_id fp,
                                       std::span<char> out) {
    const index_pin hit = cache_.find(&p, fp);
    if (!hit) {
      return false;
    }
    const std::span<const char> bytes = hit.buffer();
    std::copy(bytes.begin(), bytes.end(), out.begin());
    return true;
  }
  // Closes the shard's handle of data file f of p (before the file is deleted).
  void drop_file(const partition_state& p, file_id f) { handles_.drop(&p, f); }
  // Drops every page and open file of a partition (before its state is destroyed).
  void invalidate_all(const partition_state& p) {
    cache_.erase_all(&p);
    data_.erase_all(&p);
    handles_.drop_all(&p);
  }

  [[nodiscard]] index_cache::stats cache_stats() const noexcept { return cache_.statistics(); }
  [[nodiscard]] data_cache::stats data_cache_stats() const noexcept { return data_.statistics(); }
  [[nodiscard]] bool data_cache_on() const noexcept { return data_.enabled(); }
  // The most pages of one overflow value (or of one commit's writes) the data page cache
  // takes, a sixteenth of it: a large value or a bulk load must not push out everything else.
  [[nodiscard]] std::size_t cache_share_pages() const noexcept { return data_.capacity() / 16; }

  // Long CPU work (a writer building pages) calls yield_point() between pages; with a
  // suspending scheduler the store installs a hook that lets waiting reads run first.
  void set_yield_hook(void (*hook)(void*), void* arg) noexcept {
    yield_hook_ = hook;
    yield_arg_ = arg;
  }
  void yield_point() {
    if (yield_hook_ != nullptr) {
      yield_hook_(yield_arg_);
    }
  }

  // A page buffer from the shard's spares (no aligned allocation, no page faults, per read or
  // per page a writer builds); give it back with recycle(). At most spare_bytes_max bytes of
  // spares are kept per shard (the reference's page slab never shrinks at all).
  [[nodiscard]] page_buffer take_buffer() {
    if (spares_.empty()) {
      return page_buffer(page_size_);
    }
    page_buffer b = std::move(spares_.back());
    spares_.pop_back();
    return b;
  }
  void recycle(page_buffer&& b) {
    if (b.size() == page_size_ && spares_.size() < spares_max()) {
      spares_.push_back(std::move(b));
    }
  }
  static constexpr std::size_t spare_bytes_max = std::size_t{32} << 20;
  [[nodiscard]] std::size_t spares_max() const noexcept { return spare_bytes_max / page_size_; }

 private:
  // The handle of data file f of partition p, from the shard's cache or opened by name.
  template <typename Ref>
  [[nodiscard]] error open_file(const partition_state& p, file_id f, Ref& out) {
    if (const Ref* hit = handles_.find(&p, f)) {
      out = *hit;
      return error::ok;
    }
    Ref opened;
    if (const error e = io_.open_file(p.id, file_name(p, f), opened); e != error::ok) {
      return e;
    }
    out = handles_.insert(&p, f, std::move(opened));
    return error::ok;
  }

  // The longest read read_runs merges pages into.
  static constexpr std::size_t run_bytes_max = std::size_t{1} << 20;
  // Copies page fp of p from the data page cache into `out`; false if it is not cached.
  [[nodiscard]] bool cached_copy(const partition_state& p, file_page_id fp, std::span<char> out,
                                 cache_use use) {
    if (!data_.enabled() || !data_.copy_out(&p, fp, out, use == cache_use::normal)) {
      return false;
    }
    metric_add(counter::data_cache_hits);
    return true;
  }

  // A page that was read with the data page cache on: a data or overflow page counts as a
  // miss and is cached unless `use` is peek (index pages have their own cache).
  void cache_read(const partition_state& p, file_page_id fp, std::span<const char> bytes,
                  cache_use use) {
    if (!data_.enabled()) {
      return;
    }
    const page_type t = read_page_type(bytes);
    if (t == page_type::data || t == page_type::overflow) {
      metric_add(counter::data_cache_misses);
      if (use != cache_use::peek) {
        data_.insert(&p, fp, bytes);
      }
    }
  }

  // Issues `reads` (reads[i] from data file files[i] of p), overlapped where the backend
  // can (page_ops). A file or page the mapping names but the files lack is corrupted.
  [[nodiscard]] error issue_reads(const partition_state& p, std::span<const file_id> files,
                                  std::span<page_read> reads) {
    // Consecutive reads of one file share its handle (or name).
    const auto same_file_as_previous = [&](std::size_t i) {
      return i > 0 && files[i - 1] == files[i];
    };
    error e = error::ok;
    if constexpr (file_handles<IO>) {
      std::vector<typename IO::file_ref> refs(reads.size());
      for (std::size_t i = 0; i < reads.size(); ++i) {
        if (same_file_as_previous(i)) {
          refs[i] = refs[i - 1];
        } else if (e = open_file(p, files[i], refs[i]); e != error::ok) {
          return e == error::not_found ? error::corrupted : e;
        }
      }
      e = page_ops<IO>::read_pages_at(io_, std::span<const typename IO::file_ref>(refs), reads);
    } else {
      std::vector<std::string> names;
      names.reserve(reads.size());  // stable: the reads refer to them
      for (std::size_t i = 0; i < reads.size(); ++i) {
        if (!same_file_as_previous(i)) {
          names.push_back(file_name(p, files[i]));
        }
        reads[i].name = names.back();
      }
      e = page_ops<IO>::read_pages(io_, p.id, reads);
    }
    return e == error::end_of_file || e == error::not_found ? error::corrupted : e;
  }

  IO& io_;
  std::size_t page_size_;
  unsigned shift_;
  bool verify_;
  index_cache cache_;
  data_cache data_;
  typename handle_cache_of<IO>::type handles_;
  std::vector<page_buffer> spares_;
  void (*yield_hook_)(void*) = nullptr;
  void* yield_arg_ = nullptr;
};

}  // namespace eloqstore::detail
