// The logical-to-file page mapping of one partition, copy-on-write in chunks.
//
// A mapping_table is an array of tagged u64 values (mapping_entry.hpp) indexed by logical
// page id, stored as fixed-size chunks behind shared pointers. Copying a table copies only the
// chunk pointers; the first set() into a chunk that another table still shares clones that
// one chunk. A write therefore costs O(pages changed + table size / chunk size), not
// O(table size) as in the reference engine, and readers keep the version they pinned.
//
// Free logical ids are threaded through the table as in the reference: a freed id holds a
// tag-2 link to the next free id (tag 7 ends the list); the head and count live beside the
// chunks. Thread affinity: a table is touched by its shard's thread only; shared_ptr makes
// chunk lifetime safe when a reader's copy outlives the writer's.
#pragma once

#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <eloqstore/detail/mapping/mapping_entry.hpp>
#include <eloqstore/detail/util/strong_id.hpp>

namespace eloqstore::detail {

// 1024 entries (8 KiB) per chunk: small partitions stay small, and a write into a 1M-page
// partition copies 1024 chunk pointers plus the chunks it changes.
inline constexpr std::size_t mapping_chunk_shift = 10;
inline constexpr std::size_t mapping_chunk_entries = std::size_t{1} << mapping_chunk_shift;

struct mapping_chunk {
  std::array<std::uint64_t, mapping_chunk_entries> v;
};

class mapping_table {
 public:
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t free_count() const noexcept { return free_count_; }
  // Bytes held by this table's chunks (shared chunks counted in full).
  [[nodiscard]] std::size_t memory_bytes() const noexcept {
    return chunks_.size() * (sizeof(mapping_chunk) + sizeof(chunks_[0]));
  }
  // Logical pages in use (both trees of the partition).
  [[nodiscard]] std::size_t live_count() const noexcept { return size_ - free_count_; }
  // Chunks cloned by set() since construction or the last reset of the counter.
  [[nodiscard]] std::size_t chunks_copied() const noexcept { return chunks_copied_; }
  void reset_chunks_copied() noexcept { chunks_copied_ = 0; }

  [[nodiscard]] std::uint64_t get(page_id id) const noexcept {
    assert(id.value() < size_);
    return chunks_[id.value() >> mapping_chunk_shift]->v[id.value() & (mapping_chunk_entries - 1)];
  }

  // The file page of a mapped id; none() if the id is free or unmapped.
  [[nodiscard]] file_page_id file_page(page_id id) const noexcept {
    if (id.value() >= size_) {
      return file_page_id::none();
    }
    const std::uint64_t v = get(id);
    return tag_of(v) == mapping_tag::file_page ? decode_file_page(v) : file_page_id::none();
  }

  void set(page_id id, std::uint64_t value) {
    assert(id.value() < size_);
    auto& chunk = chunks_[id.value() >> mapping_chunk_shift];
    if (chunk.use_count() > 1) {
      chunk = std::make_shared<mapping_chunk>(*chunk);
      ++chunks_copied_;
    }
    chunk->v[id.value() & (mapping_chunk_entries - 1)] = value;
  }

  // Takes a free logical id, or appends one. The entry holds `invalid` until set.
  [[nodiscard]] page_id allocate() {
    if (!free_head_.is_none()) {
      const page_id id = free_head_;
      const std::uint64_t link = get(id);
      free_head_ =
          tag_of(link) == mapping_tag::free_link ? decode_free_link(link) : page_id::none();
      --free_count_;
      set(id, mapping_invalid_value);
      return id;
    }
    const page_id id(static_cast<std::uint32_t>(size_));
    append(mapping_invalid_value);
    return id;
  }

  // Returns `id` to the free list. REQUIRES: id is allocated.
  void release(page_id id) {
    set(id, free_head_.is_none() ? mapping_invalid_value : encode_free_link(free_head_));
    free_head_ = id;
    ++free_count_;
  }

  // Builds a table from replayed values: every entry that is not a file page becomes free,
  // pushed in ascending order so the highest free id is handed out first (as the reference).
  static mapping_table from_values(const std::vector<std::uint64_t>& values) {
    mapping_table t;
    for (const std::uint64_t v : values) {
      t.append(v);
    }
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (tag_of(values[i]) != mapping_tag::file_page) {
        t.release(page_id(static_cast<std::uint32_t>(i)));
      }
    }
    t.chunks_copied_ = 0;
    return t;
  }

  // Visits every entry in id order (for snapshots); `f(std::uint64_t)`.
  template <typename F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < size_; ++i) {
      f(chunks_[i >> mapping_chunk_shift]->v[i & (mapping_chunk_entries - 1)]);
    }
  }

 private:
  void append(std::uint64_t value) {
    if ((size_ & (mapping_chunk_entries - 1)) == 0) {
      chunks_.push_back(std::make_shared<mapping_chunk>());
    }
    ++size_;
    set(page_id(static_cast<std::uint32_t>(size_ - 1)), value);
  }

  std::vector<std::shared_ptr<mapping_chunk>> chunks_;
  std::size_t size_ = 0;
  page_id free_head_ = page_id::none();
  std::size_t free_count_ = 0;
  std::size_t chunks_copied_ = 0;
};

// Hands out file pages in non-append ("pooled") mode: freed file pages are reused, others are
// taken from the end. Pages freed by a write return only once no reader can still see them
// (the partition handles that ordering; see partition.hpp).
class file_page_allocator {
 public:
  file_page_allocator() = default;
  // Rebuilds from a mapping: every file page below `max_fp` not in use is free.
  file_page_allocator(const mapping_table& mapping, std::uint64_t max_fp) : next_(max_fp) {
    std::vector<bool> used(max_fp, false);
    mapping.for_each([&](std::uint64_t v) {
      if (tag_of(v) == mapping_tag::file_page && decode_file_page(v).value() < max_fp) {
        used[decode_file_page(v).value()] = true;
      }
    });
    for (std::uint64_t fp = max_fp; fp > 0; --fp) {
      if (!used[fp - 1]) {
        free_.push_back(fp - 1);  // lowest ids end on top: reuse fills files front to back
      }
    }
  }

  [[nodiscard]] file_page_id allocate() {
    if (!free_.empty()) {
      const std::uint64_t fp = free_.back();
      free_.pop_back();
      return file_page_id(fp);
    }
    return file_page_id(next_++);
  }
  void release(file_page_id fp) { free_.push_back(fp.value()); }

  // The first file page never handed out (the manifest's max_fp_id).
  [[nodiscard]] std::uint64_t max_fp() const noexcept { return next_; }
  [[nodiscard]] std::size_t free_count() const noexcept { return free_.size(); }

 private:
  std::vector<std::uint64_t> free_;
  std::uint64_t next_ = 0;
};

}  // namespace eloqstore::detail
