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
//
// Swizzling (spec 6.4): an entry of a cached index page may hold a pointer to its cache frame
// (tag 0, a swizzle_target) instead of its file page id, so a descent finds a cached page by
// one pointer chase. Swizzling changes no meaning (the frame caches that very file page), so
// it is done in place even in a chunk several versions share, and every version sharing the
// chunk sees it. The frame records each (chunk, slot) that points at it and turns them back
// into file page ids when it leaves the cache; a chunk that dies drops its slots from their
// frames; a chunk cloned for a write is unswizzled in the clone. Readers of the table
// (file_page, for_each) see file page ids either way.
#pragma once

#include <algorithm>
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

struct mapping_chunk;

// A cached page that mapping entries may point at. 8-byte aligned (tag 0 needs the low bits).
struct alignas(8) swizzle_target {
  struct slot {
    mapping_chunk* chunk;
    std::uint32_t index;
  };
  file_page_id fp;          // the file page it holds
  std::vector<slot> slots;  // entries pointing at it

  [[nodiscard]] std::uint64_t encoded() const noexcept {
    return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(this));
  }
  // Turns every entry pointing here back into the file page id (the frame leaves the cache).
  inline void unswizzle_all() noexcept;
  // Forgets one entry (its chunk is dying or the entry is being overwritten).
  void drop(const mapping_chunk* c, std::uint32_t i) noexcept {
    for (auto it = slots.begin(); it != slots.end(); ++it) {
      if (it->chunk == c && it->index == i) {
        *it = slots.back();
        slots.pop_back();
        return;
      }
    }
  }
};

// Tag 0 and not null (unused slots of a chunk are zero).
[[nodiscard]] constexpr bool is_swizzled(std::uint64_t v) noexcept {
  return tag_of(v) == mapping_tag::swizzled && v != 0;
}
[[nodiscard]] inline swizzle_target* decode_swizzled(std::uint64_t v) noexcept {
  return reinterpret_cast<swizzle_target*>(static_cast<std::uintptr_t>(v));
}
// The entry's value with a swizzled pointer replaced by its file page id.
[[nodiscard]] inline std::uint64_t unswizzled(std::uint64_t v) noexcept {
  return is_swizzled(v) ? encode_file_page(decode_swizzled(v)->fp) : v;
}

struct mapping_chunk {
  std::array<std::uint64_t, mapping_chunk_entries> v;

  mapping_chunk() = default;
  // A copy made for a writer holds file page ids where the original holds swizzled pointers.
  mapping_chunk(const mapping_chunk& o) : v(o.v) {
    for (std::uint64_t& e : v) {
      e = unswizzled(e);
    }
  }
  mapping_chunk& operator=(const mapping_chunk&) = delete;
  ~mapping_chunk() {
    for (std::uint32_t i = 0; i < mapping_chunk_entries; ++i) {
      if (is_swizzled(v[i])) {
        decode_swizzled(v[i])->drop(this, i);
      }
    }
  }
};

inline void swizzle_target::unswizzle_all() noexcept {
  for (const slot& s : slots) {
    if (s.chunk->v[s.index] == encoded()) {
      s.chunk->v[s.index] = encode_file_page(fp);
    }
  }
  slots.clear();
}

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

  // The entry of `id`, a swizzled pointer read as its file page id.
  [[nodiscard]] std::uint64_t get(page_id id) const noexcept { return unswizzled(raw(id)); }
  // The entry as stored (tag 0: a swizzled pointer).
  [[nodiscard]] std::uint64_t raw(page_id id) const noexcept {
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

  // The cache frame swizzled into `id`'s entry, or nullptr.
  [[nodiscard]] swizzle_target* swizzled(page_id id) const noexcept {
    if (id.value() >= size_) {
      return nullptr;
    }
    const std::uint64_t v = raw(id);
    return is_swizzled(v) ? decode_swizzled(v) : nullptr;
  }

  // Points `id`'s entry at frame `t`, which caches the entry's file page for this table's
  // partition. Const, yet it writes: in place, also into a chunk other versions share, which
  // is sound because the entry's meaning does not change (see the file comment). REQUIRES:
  // t->fp == file_page(id), and t caches a page of this table's partition.
  void swizzle(page_id id, swizzle_target& t) const {
    assert(file_page(id) == t.fp);
    mapping_chunk& chunk = *chunks_[id.value() >> mapping_chunk_shift];
    const auto i = static_cast<std::uint32_t>(id.value() & (mapping_chunk_entries - 1));
    if (chunk.v[i] == t.encoded()) {
      return;
    }
    if (is_swizzled(chunk.v[i])) {
      decode_swizzled(chunk.v[i])->drop(&chunk, i);
    }
    t.slots.push_back(swizzle_target::slot{&chunk, i});
    chunk.v[i] = t.encoded();
  }

  void set(page_id id, std::uint64_t value) {
    assert(id.value() < size_);
    auto& chunk = chunks_[id.value() >> mapping_chunk_shift];
    if (chunk.use_count() > 1) {
      chunk = std::make_shared<mapping_chunk>(*chunk);
      ++chunks_copied_;
    }
    const auto i = static_cast<std::uint32_t>(id.value() & (mapping_chunk_entries - 1));
    if (is_swizzled(chunk->v[i])) {
      decode_swizzled(chunk->v[i])->drop(chunk.get(), i);
    }
    chunk->v[i] = value;
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

  // Visits every entry in id order (for snapshots), swizzled pointers read as file page
  // ids; `f(std::uint64_t)`.
  template <typename F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < size_; ++i) {
      f(unswizzled(chunks_[i >> mapping_chunk_shift]->v[i & (mapping_chunk_entries - 1)]));
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
  // Room for n more released pages: that many release() calls then do not allocate.
  void reserve_free(std::size_t n) {
    if (free_.capacity() - free_.size() < n) {
      free_.reserve(std::max(free_.size() + n, 2 * free_.capacity()));
    }
  }

  // The first file page never handed out (the manifest's max_fp_id).
  [[nodiscard]] std::uint64_t max_fp() const noexcept { return next_; }
  [[nodiscard]] std::size_t free_count() const noexcept { return free_.size(); }

 private:
  std::vector<std::uint64_t> free_;
  std::uint64_t next_ = 0;
};

}  // namespace eloqstore::detail
