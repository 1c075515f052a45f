// Hands out file pages in append mode (spec 3.6, 4.6, 5.9): always at the tail, so data files
// are written front to back once and never rewritten in place; space is reclaimed only by
// compaction (moving the live pages of sparse files to the tail) and file GC (deleting files
// nothing references).
//
// Beyond the reference's AppendAllocator (next_fp, min_file_id, empty file count), this one
// counts per data file the pages that are still referenced: a page counts from allocate()
// until release(), and release() comes when no version that can still be read holds the page
// (the partition's reclaim, partition.hpp), or when the writer that took it gives it back
// unused. So:
// * a file below the tail whose count is zero is referenced by no live version, the
//   condition file GC needs (archives aside), known without scanning any mapping;
// * space_pages() is the reference's `space` ((tail - oldest referenced file's start) minus
//   the empty files between), and compaction_due() is its trigger;
// * rebuilt from a mapping at open, the counts are those of that one version.
//
// The interface is file_page_allocator's (allocate, release, reserve_free, max_fp), so the
// commit protocol uses either. release() and reserve_free() never allocate.
//
// Thread affinity: the partition's shard thread.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <utility>
#include <vector>

#include <eloqstore/detail/mapping/page_mapping.hpp>
#include <eloqstore/detail/util/strong_id.hpp>

namespace eloqstore::detail {

class append_allocator {
 public:
  explicit append_allocator(unsigned pages_per_file_shift) : shift_(pages_per_file_shift) {}

  // Rebuilds from a mapping: every file page it holds is referenced; the tail is `max_fp`,
  // or, with `start_new_file` (a process term other than the manifest's), the start of the
  // next file, so this term never appends into a file another term created. A tail file
  // the mapping has no page in is left for the next file too: file GC may have deleted it
  // (an emptied partition moves its tail on, skip_to_next_file, which the manifest does not
  // record), and writing into it again would recreate it under a name the term mapping
  // still knows, so the commit would not sync the directory entry of the new file.
  append_allocator(const mapping_table& mapping, std::uint64_t max_fp,
                   unsigned pages_per_file_shift, bool start_new_file)
      : shift_(pages_per_file_shift), next_(max_fp) {
    if (start_new_file && (next_ & page_mask()) != 0) {
      next_ = ((next_ >> shift_) + 1) << shift_;
    }
    base_ = next_ >> shift_;
    mapping.for_each([&](std::uint64_t v) {
      if (tag_of(v) == mapping_tag::file_page) {
        base_ = std::min(base_, decode_file_page(v).value() >> shift_);
      }
    });
    counts_.assign((next_ >> shift_) - base_ + 1, 0);
    mapping.for_each([&](std::uint64_t v) {
      if (tag_of(v) == mapping_tag::file_page) {
        ++slot(decode_file_page(v).value() >> shift_);  // below the tail (replay raised it)
      }
    });
    if (referenced(tail_file()) == 0) {
      skip_to_next_file();
    }
  }

  // The next file page at the tail. Strong guarantee: if recording its file throws
  // std::bad_alloc, nothing changed.
  [[nodiscard]] file_page_id allocate() {
    ++slot(next_ >> shift_);
    return file_page_id(next_++);
  }

  // Counts page fp (below the tail) as referenced again: a restored archive's pages, whose
  // files archives kept. False, changing nothing, for a page past the tail or in a file GC
  // deleted in this process (the archive names what no longer exists). A file older than
  // the recorded ones (a reload counts from the oldest file its mapping uses) is recorded.
  // On bad_alloc the counts may have gained zeros, nothing else.
  [[nodiscard]] bool acquire(file_page_id fp) {
    const std::uint64_t f = fp.value() >> shift_;
    if (fp.value() >= next_ ||
        (f >= base_ && f - base_ < counts_.size() && counts_[f - base_] == removed)) {
      return false;
    }
    while (!counts_.empty() && f < base_) {
      counts_.push_front(0);
      --base_;
    }
    ++slot(f);
    return true;
  }

  // A page allocate() handed out (or the rebuilt mapping held) is referenced no more.
  void release(file_page_id fp) noexcept {
    const std::uint64_t f = fp.value() >> shift_;
    if (f >= base_ && f - base_ < counts_.size() && counts_[f - base_] > 0 &&
        counts_[f - base_] != removed) {
      --counts_[f - base_];
    }
  }
  void reserve_free(std::size_t /*n*/) noexcept {}  // release() never allocates

  // The first file page never handed out (the manifest's max_fp_id).
  [[nodiscard]] std::uint64_t max_fp() const noexcept { return next_; }
  [[nodiscard]] std::uint64_t pages_per_file() const noexcept { return std::uint64_t{1} << shift_; }
  // The file being appended to.
  [[nodiscard]] file_id tail_file() const noexcept { return file_id(next_ >> shift_); }

  // Pages of file f still referenced (0 for a file never written or already dropped).
  [[nodiscard]] std::uint64_t referenced(file_id f) const noexcept {
    const std::uint64_t v = f.value();
    if (v < base_ || v - base_ >= counts_.size()) {
      return 0;
    }
    const std::uint64_t n = counts_[v - base_];
    return n == removed ? 0 : n;
  }
  // The oldest file with a referenced page (the tail file when there is none).
  [[nodiscard]] file_id oldest_file() const noexcept {
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      if (counts_[i] > 0 && counts_[i] != removed) {
        return file_id(base_ + i);
      }
    }
    return tail_file();
  }
  // Files below the tail that no page references, between the oldest referenced file and
  // the tail (the reference's empty_file_cnt).
  [[nodiscard]] std::uint64_t empty_files() const noexcept {
    const std::uint64_t first = oldest_file().value();
    const std::uint64_t tail = tail_file().value();
    std::uint64_t n = 0;
    for (std::uint64_t f = first; f < tail; ++f) {
      n += referenced(file_id(f)) == 0 ? 1 : 0;
    }
    return n;
  }
  // The pages the partition's files take between its oldest referenced file and the tail,
  // less the empty files among them (the reference's `space`).
  [[nodiscard]] std::uint64_t space_pages() const noexcept {
    const std::uint64_t start = oldest_file().value() << shift_;
    return next_ - start - empty_files() * pages_per_file();
  }
  // Whether compaction is due for `live` pages (the version's mapping count), with
  // `factor` the space amplification allowed (0: never compact). Due when nothing is live
  // but files remain, or when space exceeds factor * live by more than a file: compaction
  // (commit/compaction.hpp) then brings space back to at most factor * live + one file, so
  // that bound holds after every compaction, and each compaction reclaims at least about a
  // file's worth. (The reference's trigger, space / live > factor in integer division, fires
  // at (factor + 1) * live and its compaction may leave space above it.)
  [[nodiscard]] bool compaction_due(std::uint64_t live, unsigned factor) const noexcept {
    if (factor == 0) {
      return false;
    }
    const std::uint64_t space = space_pages();
    if (live == 0) {
      return space > 0;
    }
    return space > bound_pages(live, factor);
  }
  // The space compaction keeps to: factor * live + one file (saturating).
  [[nodiscard]] std::uint64_t bound_pages(std::uint64_t live, unsigned factor) const noexcept {
    const std::uint64_t most = std::numeric_limits<std::uint64_t>::max();
    if (factor != 0 && live > (most - pages_per_file()) / factor) {
      return most;
    }
    return live * factor + pages_per_file();
  }

  // Data files below the tail that no page references and that are not removed yet: no
  // version that can still be read holds a page of them, and appends never go back to them,
  // so file GC may delete them (archives aside). Appended to `out`.
  void collectable(std::vector<file_id>& out) const {
    const std::uint64_t tail = tail_file().value();
    for (std::size_t i = 0; i < counts_.size() && base_ + i < tail; ++i) {
      if (counts_[i] == 0) {
        out.push_back(file_id(base_ + i));
      }
    }
  }
  // File f is deleted (GC): it is no longer collectable, and the record of files before the
  // oldest one still present is dropped. REQUIRES: referenced(f) == 0 and f below the tail.
  void mark_removed(file_id f) noexcept {
    const std::uint64_t v = f.value();
    assert(v < tail_file().value() && referenced(f) == 0);
    if (v >= base_ && v - base_ < counts_.size()) {
      counts_[v - base_] = removed;
    }
    while (!counts_.empty() && counts_.front() == removed) {
      counts_.pop_front();
      ++base_;
    }
  }
  // Moves the tail to the start of the next file (unless it is at a file's start): the
  // tail file, once unreferenced, may then be deleted (a partition left with no live page
  // keeps no file).
  void skip_to_next_file() noexcept {
    if ((next_ & page_mask()) != 0) {
      next_ = ((next_ >> shift_) + 1) << shift_;
    }
  }

 private:
  [[nodiscard]] std::uint64_t page_mask() const noexcept { return pages_per_file() - 1; }

  // The count of file f, created (zero) if f is beyond the recorded files. REQUIRES:
  // f >= base_ (files below the oldest recorded one are never written again).
  std::uint64_t& slot(std::uint64_t f) {
    if (counts_.empty()) {
      base_ = f;
    }
    assert(f >= base_ && "append mode never writes below its oldest file");
    while (f - base_ >= counts_.size()) {
      counts_.push_back(0);  // a throw leaves the counts as they were, with a zero added
    }
    return counts_[f - base_];
  }

  static constexpr std::uint64_t removed = std::numeric_limits<std::uint64_t>::max();

  unsigned shift_;
  std::uint64_t next_ = 0;
  std::uint64_t base_ = 0;  // the file of counts_[0]
  // Referenced pages per file from base_, or `removed` for a file GC deleted.
  std::deque<std::uint64_t> counts_;
};

}  // namespace eloqstore::detail

namespace eloqstore::detail {

// A partition's file page allocator: pooled (freed file pages reused; the default, the
// reference's non-append mode) or append (append_allocator). The commit protocol calls the
// common operations; compaction and file GC ask for the append side.
class file_pages {
 public:
  file_pages() = default;
  file_pages(file_page_allocator pooled) : pooled_(std::move(pooled)) {}  // NOLINT: implicit
  file_pages(append_allocator append) : append_(std::move(append)), is_append_(true) {}  // NOLINT

  [[nodiscard]] file_page_id allocate() {
    return is_append_ ? append_.allocate() : pooled_.allocate();
  }
  void release(file_page_id fp) {
    if (is_append_) {
      append_.release(fp);
    } else {
      pooled_.release(fp);
    }
  }
  void reserve_free(std::size_t n) {
    if (!is_append_) {
      pooled_.reserve_free(n);
    }
  }
  [[nodiscard]] std::uint64_t max_fp() const noexcept {
    return is_append_ ? append_.max_fp() : pooled_.max_fp();
  }
  // Pooled file pages free for reuse (none in append mode).
  [[nodiscard]] std::size_t free_count() const noexcept {
    return is_append_ ? 0 : pooled_.free_count();
  }

  [[nodiscard]] bool append_mode() const noexcept { return is_append_; }
  // REQUIRES: append_mode() / !append_mode().
  [[nodiscard]] append_allocator& append() noexcept { return append_; }
  [[nodiscard]] const append_allocator& append() const noexcept { return append_; }
  [[nodiscard]] const file_page_allocator& pooled() const noexcept { return pooled_; }

 private:
  file_page_allocator pooled_;
  append_allocator append_{0};
  bool is_append_ = false;
};

}  // namespace eloqstore::detail
