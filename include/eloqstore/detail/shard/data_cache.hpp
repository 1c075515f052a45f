// The per-shard data page cache: copies of data and overflow pages, bounded by a page count,
// found by (owner, file page), evicted by a segmented LRU that a scan cannot flush.
//
// Segments: a page enters the probation segment; a hit there promotes it to the protected
// segment, which holds at most protected_percent of the capacity (its least recently used
// page goes back to the head of probation when it is full). A victim is taken from the tail
// of probation first. A scan touches each page once, so its pages only ever pass through
// probation; pages read twice (a hot set of point reads, the leaves a writer keeps rewriting)
// sit in protected and survive any scan.
//
// Copies, not pins: lookups copy the page out and inserts copy it in, so no frame is ever
// held across a suspension and eviction needs no pin counts. A page is 4-32 KiB; the copy
// costs far less than the device read it replaces.
//
// Coherence: a file page's bytes change only when the page is allocated again, and every
// allocation erases it first (page_access::invalidate); a partition's pages are dropped
// before its state goes (erase_all). Pages are inserted only from reads (checked unless
// skip_verify_checksum) and from versions that were published, never from a write that may
// still fail. A page is checked when it is read, not again when it is copied out.
//
// Memory: at most `capacity` page buffers, allocated as the cache fills, plus per page a
// frame and a hash map node (frame_overhead_bytes, about 3% of a 4 KiB page).
//
// Thread affinity: the shard thread. Statistics are relaxed atomics any thread may read.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <new>
#include <span>
#include <unordered_map>

#include <boost/intrusive/list.hpp>

#include <eloqstore/detail/util/strong_id.hpp>

namespace eloqstore::detail {

class data_cache {
 public:
  enum class segment : std::uint8_t { none, probation, protected_ };

  struct stats {
    std::size_t capacity = 0;   // pages
    std::size_t allocated = 0;  // page buffers created so far (the cache fills lazily)
    std::size_t cached = 0;     // pages held
    std::size_t protected_pages = 0;
  };

  // Share of the capacity the protected segment may hold.
  static constexpr std::size_t protected_percent = 80;
  // Bytes of bookkeeping per cached page beside the page itself (frame, map node), a bound.
  static constexpr std::size_t frame_overhead_bytes = 160;

  data_cache(std::size_t page_size, std::size_t capacity)
      : page_size_(page_size),
        capacity_(capacity),
        protected_max_(capacity * protected_percent / 100) {}
  data_cache(const data_cache&) = delete;
  data_cache& operator=(const data_cache&) = delete;
  ~data_cache() {
    probation_.clear();
    protected_.clear();
    free_.clear();
  }

  [[nodiscard]] bool enabled() const noexcept { return capacity_ != 0; }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  // Copies page (owner, fp) into `out` (page-sized), marking it used if `use` (a scan's or
  // compaction's look does not make a page hot); false if not cached.
  [[nodiscard]] bool copy_out(const void* owner, file_page_id fp, std::span<char> out,
                              bool use = true) {
    const auto it = map_.find(key{owner, fp});
    if (it == map_.end()) {
      return false;
    }
    frame& f = *it->second;
    std::copy_n(f.bytes.get(), page_size_, out.data());
    if (use) {
      touch(f);
    }
    return true;
  }

  // Where (owner, fp) is cached, if it is.
  [[nodiscard]] segment segment_of(const void* owner, file_page_id fp) const {
    const auto it = map_.find(key{owner, fp});
    return it == map_.end() ? segment::none : it->second->seg;
  }

  // Caches a copy of `bytes` (page-sized) as (owner, fp): in probation, or in protected for
  // a page known to be hot (`hot`: the page it replaces in the tree was protected). A page
  // already cached (two tasks that missed it at once) gets the bytes again and keeps its
  // place. Best effort: nothing is cached when the cache is disabled or memory runs out.
  void insert(const void* owner, file_page_id fp, std::span<const char> bytes, bool hot = false) {
    if (capacity_ == 0 || bytes.size() != page_size_) {
      return;
    }
    if (const auto it = map_.find(key{owner, fp}); it != map_.end()) {
      frame& f = *it->second;
      std::copy_n(bytes.data(), page_size_, f.bytes.get());
      return;
    }
    frame* f = nullptr;
    try {
      f = take_frame();
      map_.emplace(key{owner, fp}, f);
    } catch (const std::bad_alloc&) {
      if (f != nullptr) {
        free_.push_front(*f);
      }
      return;  // a cache is best effort: the page is read again when needed
    }
    f->owner = owner;
    f->fp = fp;
    std::copy_n(bytes.data(), page_size_, f->bytes.get());
    if (hot) {
      link_protected(*f);
    } else {
      f->seg = segment::probation;
      probation_.push_front(*f);
    }
    cached_.fetch_add(1, std::memory_order_relaxed);
  }

  // Forgets (owner, fp): its file page is being reused, or its version retired.
  void erase(const void* owner, file_page_id fp) {
    const auto it = map_.find(key{owner, fp});
    if (it != map_.end()) {
      release(*it->second);
      map_.erase(it);
    }
  }

  // Forgets every page of `owner` (before the owner is destroyed).
  void erase_all(const void* owner) {
    for (auto it = map_.begin(); it != map_.end();) {
      if (it->first.owner == owner) {
        release(*it->second);
        it = map_.erase(it);
      } else {
        ++it;
      }
    }
  }

  [[nodiscard]] stats statistics() const noexcept {
    return stats{capacity_, allocated_.load(std::memory_order_relaxed),
                 cached_.load(std::memory_order_relaxed),
                 protected_count_.load(std::memory_order_relaxed)};
  }

 private:
  struct frame : boost::intrusive::list_base_hook<> {
    std::unique_ptr<char[]> bytes;
    const void* owner = nullptr;
    file_page_id fp;
    segment seg = segment::none;
  };
  struct key {
    const void* owner;
    file_page_id fp;
    friend bool operator==(const key&, const key&) = default;
  };
  struct key_hash {
    std::size_t operator()(const key& k) const noexcept {
      return std::hash<const void*>{}(k.owner) ^ (k.fp.value() * 0x9E3779B97F4A7C15ULL);
    }
  };
  using frame_list = boost::intrusive::list<frame>;

  // A hit: probation pages move to protected, protected ones to its head.
  void touch(frame& f) {
    if (f.seg == segment::protected_) {
      protected_.erase(protected_.iterator_to(f));
      protected_.push_front(f);
      return;
    }
    probation_.erase(probation_.iterator_to(f));
    link_protected(f);
  }

  // Puts f (in no list) at the head of protected, demoting protected's tail when it is full.
  void link_protected(frame& f) {
    f.seg = segment::protected_;
    protected_.push_front(f);
    while (protected_.size() > std::max<std::size_t>(protected_max_, 1)) {
      frame& old = protected_.back();
      protected_.pop_back();
      old.seg = segment::probation;
      probation_.push_front(old);
    }
    count_protected();
  }

  void count_protected() noexcept {
    protected_count_.store(protected_.size(), std::memory_order_relaxed);
  }

  // Unlinks a frame leaving the cache (its key is erased by the caller) onto the free list.
  void release(frame& f) noexcept {
    if (f.seg == segment::protected_) {
      protected_.erase(protected_.iterator_to(f));
      count_protected();
    } else {
      probation_.erase(probation_.iterator_to(f));
    }
    f.seg = segment::none;
    free_.push_front(f);
    cached_.fetch_sub(1, std::memory_order_relaxed);
  }

  // A free frame, a new one while the cache may grow, or the least recently used page
  // (probation's tail first). Throws std::bad_alloc.
  frame* take_frame() {
    if (!free_.empty()) {
      frame& f = free_.front();
      free_.pop_front();
      return &f;
    }
    if (frames_.size() < capacity_) {
      auto bytes = std::make_unique_for_overwrite<char[]>(page_size_);
      frame& f = frames_.emplace_back();
      f.bytes = std::move(bytes);
      allocated_.fetch_add(1, std::memory_order_relaxed);
      return &f;
    }
    frame_list& from = probation_.empty() ? protected_ : probation_;
    frame& f = from.back();
    from.pop_back();
    count_protected();
    map_.erase(key{f.owner, f.fp});
    cached_.fetch_sub(1, std::memory_order_relaxed);
    f.seg = segment::none;
    return &f;
  }

  std::size_t page_size_;
  std::size_t capacity_;
  std::size_t protected_max_;
  std::deque<frame> frames_;  // stable addresses
  frame_list probation_;      // most recently used first
  frame_list protected_;      // most recently used first
  frame_list free_;
  std::unordered_map<key, frame*, key_hash> map_;
  std::atomic<std::size_t> allocated_{0};
  std::atomic<std::size_t> cached_{0};
  std::atomic<std::size_t> protected_count_{0};
};

// Whether a store of traits T keeps a data page cache: T::data_cache::enabled (traits.hpp's
// policies), on for traits that name no policy.
template <typename T>
[[nodiscard]] constexpr bool data_cache_enabled() noexcept {
  if constexpr (requires { T::data_cache::enabled; }) {
    return T::data_cache::enabled;
  } else {
    return true;
  }
}

}  // namespace eloqstore::detail
