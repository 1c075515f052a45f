// The per-shard index page cache: a bounded pool of page frames with pin counts and an LRU of
// the unpinned ones.
//
// A frame holds one index page of one partition, found by (owner, file page). A task that uses
// a page holds a `pin` on it; a pinned frame is out of the LRU and is never recycled. A frame
// is recycled from the LRU tail only when the pool has allocated `capacity` frames; when every
// frame is pinned, allocation fails and the caller reports error::out_of_mem (the reference's
// hard budget: exhaustion fails a request instead of waiting).
//
// Swizzling: a frame is a swizzle_target (page_mapping.hpp). Once cached, the mapping entries
// that name its page may point straight at it (page_access swizzles them), and a descent
// pins it through the pointer (pin_swizzled) without the map. A frame leaving the cache
// (eviction, erase) first turns those entries back into file page ids.
//
// Loading: a task that misses allocates a frame (pinned, not yet findable), reads into it, and
// then publishes it with insert(). Two tasks that load the same page at once each read it; the
// second insert() keeps the first frame and recycles its own. Frames are page-aligned, so
// O_DIRECT reads land in them without a bounce buffer.
//
// Thread affinity: the shard thread. Statistics are relaxed atomics any thread may read.
#pragma once

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <new>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/intrusive/list.hpp>

#include <eloqstore/detail/mapping/page_mapping.hpp>

namespace eloqstore::detail {

class index_cache {
  struct frame : boost::intrusive::list_base_hook<>, swizzle_target {
    std::span<char> bytes;
    const void* owner = nullptr;
    std::uint32_t pins = 0;
    bool indexed = false;  // findable through map_ (else: loading, or detached)
  };

 public:
  // A pinned frame; the page bytes stay valid and unchanged while it lives.
  class pin {
   public:
    pin() = default;
    pin(const pin&) = delete;
    pin& operator=(const pin&) = delete;
    pin(pin&& o) noexcept : cache_(std::exchange(o.cache_, nullptr)), f_(o.f_) {}
    pin& operator=(pin&& o) noexcept {
      if (this != &o) {
        reset();
        cache_ = std::exchange(o.cache_, nullptr);
        f_ = o.f_;
      }
      return *this;
    }
    ~pin() { reset(); }

    [[nodiscard]] explicit operator bool() const noexcept { return cache_ != nullptr; }
    [[nodiscard]] std::span<const char> bytes() const noexcept { return f_->bytes; }
    // The frame's buffer, for the loader that owns the pin before insert().
    [[nodiscard]] std::span<char> buffer() const noexcept { return f_->bytes; }
    // The frame, to swizzle into mapping entries of its page. REQUIRES: cached (inserted).
    [[nodiscard]] swizzle_target& target() const noexcept { return *f_; }
    void reset() noexcept {
      if (cache_ != nullptr) {
        std::exchange(cache_, nullptr)->unpin(*f_);
      }
    }

   private:
    friend class index_cache;
    pin(index_cache* c, frame* f) noexcept : cache_(c), f_(f) {}
    index_cache* cache_ = nullptr;
    frame* f_ = nullptr;
  };

  struct stats {
    std::size_t capacity = 0;
    std::size_t allocated = 0;      // frames created so far (the pool grows lazily)
    std::size_t pinned = 0;         // frames with at least one pin
    std::size_t cached = 0;         // frames findable by key
    std::size_t swizzled_hits = 0;  // pages found through a swizzled mapping entry
  };

  index_cache(std::size_t page_size, std::size_t capacity)
      : page_size_(page_size), capacity_(capacity) {}
  index_cache(const index_cache&) = delete;
  index_cache& operator=(const index_cache&) = delete;
  ~index_cache() {
    for (frame& f : frames_) {
      f.unswizzle_all();  // mappings that outlive the cache keep file page ids
    }
    lru_.clear();
    free_.clear();
    for (frame& f : frames_) {
      ::operator delete (f.bytes.data(), std::align_val_t{alignment});
    }
  }

  // The cached page (owner, fp), pinned; an empty pin if it is not cached.
  [[nodiscard]] pin find(const void* owner, file_page_id fp) {
    const auto it = map_.find(key{owner, fp});
    if (it == map_.end()) {
      return {};
    }
    pin_frame(*it->second);
    return pin(this, it->second);
  }

  // The frame a mapping entry points at, pinned. REQUIRES: t came from a swizzled entry (so
  // it is cached: frames leaving the cache unswizzle their entries first).
  [[nodiscard]] pin pin_swizzled(swizzle_target& t, [[maybe_unused]] const void* owner) {
    frame& f = static_cast<frame&>(t);
    assert(f.indexed && f.owner == owner);
    pin_frame(f);
    // One writer (the shard thread): a plain increment, published for readers of stats.
    hits_swizzled_.store(hits_swizzled_.load(std::memory_order_relaxed) + 1,
                         std::memory_order_relaxed);
    return pin(this, &f);
  }

  // A frame to load a page into (pinned, not findable); an empty pin if every frame is pinned.
  [[nodiscard]] pin allocate() {
    frame* f = take_frame();
    if (f == nullptr) {
      return {};
    }
    pin_frame(*f);
    return pin(this, f);
  }

  // Makes the loaded frame of `p` findable as (owner, fp). If another task cached the page
  // meanwhile, `p` is switched to that frame and its own is recycled.
  void insert(pin& p, const void* owner, file_page_id fp) {
    frame& f = *p.f_;
    const auto [it, fresh] = map_.try_emplace(key{owner, fp}, &f);
    if (!fresh) {
      pin other(this, it->second);
      pin_frame(*it->second);
      p = std::move(other);  // unpins f: not indexed, so it returns to the free list
      return;
    }
    f.owner = owner;
    f.fp = fp;
    f.indexed = true;
    cached_.fetch_add(1, std::memory_order_relaxed);
  }

  // Caches a copy of `bytes` as (owner, fp), unpinned, if a frame can be had without failing
  // anyone (used for index pages a writer has just written). Replaces an older copy. Returns
  // the frame (to swizzle), or nullptr.
  swizzle_target* put(const void* owner, file_page_id fp, std::span<const char> bytes) {
    erase(owner, fp);
    if (bytes.size() != page_size_) {
      return nullptr;
    }
    pin p = allocate();
    if (!p) {
      return nullptr;
    }
    std::copy(bytes.begin(), bytes.end(), p.buffer().begin());
    insert(p, owner, fp);
    return &p.target();
  }

  // Forgets (owner, fp): its file page is being reused. A pinned frame is detached and
  // recycled when its last pin goes.
  void erase(const void* owner, file_page_id fp) {
    const auto it = map_.find(key{owner, fp});
    if (it != map_.end()) {
      detach(*it->second);
      map_.erase(it);
    }
  }

  // Forgets every page of `owner` (before the owner is destroyed).
  void erase_all(const void* owner) {
    for (auto it = map_.begin(); it != map_.end();) {
      if (it->first.owner == owner) {
        detach(*it->second);
        it = map_.erase(it);
      } else {
        ++it;
      }
    }
  }

  [[nodiscard]] stats statistics() const noexcept {
    return stats{capacity_, allocated_.load(std::memory_order_relaxed),
                 pinned_.load(std::memory_order_relaxed), cached_.load(std::memory_order_relaxed),
                 hits_swizzled_.load(std::memory_order_relaxed)};
  }

 private:
  static constexpr std::size_t alignment = 4096;

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

  void pin_frame(frame& f) {
    if (f.pins++ == 0) {
      if (f.is_linked()) {
        lru_.erase(lru_.iterator_to(f));
      }
      pinned_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void unpin(frame& f) noexcept {
    if (--f.pins != 0) {
      return;
    }
    pinned_.fetch_sub(1, std::memory_order_relaxed);
    if (f.indexed) {
      lru_.push_front(f);
    } else {
      free_.push_front(f);
    }
  }

  // Takes a frame out of the map (its key is erased by the caller) and, if unpinned, out of
  // the LRU onto the free list.
  void detach(frame& f) noexcept {
    f.unswizzle_all();
    f.indexed = false;
    cached_.fetch_sub(1, std::memory_order_relaxed);
    if (f.pins == 0) {
      lru_.erase(lru_.iterator_to(f));
      free_.push_front(f);
    }
  }

  // A free frame, a new one while the pool may grow, or the LRU's least recently used one.
  frame* take_frame() {
    if (!free_.empty()) {
      frame& f = free_.front();
      free_.pop_front();
      return &f;
    }
    if (frames_.size() < capacity_) {
      frame& f = frames_.emplace_back();
      f.bytes = {static_cast<char*>(::operator new (page_size_, std::align_val_t{alignment})),
                 page_size_};
      allocated_.fetch_add(1, std::memory_order_relaxed);
      return &f;
    }
    if (lru_.empty()) {
      return nullptr;  // every frame is pinned
    }
    frame& f = lru_.back();
    lru_.pop_back();
    f.unswizzle_all();
    map_.erase(key{f.owner, f.fp});
    f.indexed = false;
    cached_.fetch_sub(1, std::memory_order_relaxed);
    return &f;
  }

  std::size_t page_size_;
  std::size_t capacity_;
  std::deque<frame> frames_;  // stable addresses
  frame_list lru_;            // unpinned cached frames, most recently used first
  frame_list free_;           // unpinned frames holding nothing
  std::unordered_map<key, frame*, key_hash> map_;
  std::atomic<std::size_t> allocated_{0};
  std::atomic<std::size_t> pinned_{0};
  std::atomic<std::size_t> cached_{0};
  std::atomic<std::size_t> hits_swizzled_{0};
};

}  // namespace eloqstore::detail
