// The bookkeeping of cloud mode's bounded local cache (spec 8.3): which partition files a
// shard's share of the cache holds, what each costs, and which go when a new one needs room.
// It does no I/O: cloud_io (io/cloud.hpp) unlinks the victims it is handed and moves bytes.
//
// Cost. A file is charged its nominal size, as the reference does (a data file its full
// data_file_size from the first byte, a manifest or archive manifest_limit), or its real size
// when that is larger (a snapshot of a big mapping): a file that grows is charged as it grows
// (grow()). So the bytes on disk never exceed what is charged.
//
// States. A file is `ready` (on disk, or about to be created by a write), `fetching` (its
// download is running: the bytes are charged, the file is not there yet) or `evicting` (chosen
// as a victim: no longer charged, its unlink is running). A task that finds a file fetching or
// evicting waits for it (cloud_io parks it on the file's waiters). A `dirty` file holds bytes
// the bucket does not (written, not yet uploaded) and is never a victim; nor is a `pinned` one
// (an operation on it is running: a reader of a file is never left without it), nor a file
// that is not ready.
//
// Eviction. admit() of a file that does not fit (used + bytes > limit) picks victims from the
// least recently used end, skipping dirty, pinned and busy files, until used + bytes <= low
// (the limit less limit / reserve_space_ratio, so eviction runs in batches rather than once
// per file). If even every candidate would not make the file fit, nothing is evicted, and the
// answer is busy when the files that are only pinned or downloading would make room once
// their operations end (the caller waits for that), else out_of_space: what stands in the
// way is dirty (not yet uploaded), and only the uploads of the writers can change that.
//
// Thread affinity: one shard's (the owner of the partitions, whose calls come from its
// thread); the callers hold a mutex around every call, for the odd call from another thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/intrusive/list.hpp>

#include <eloqstore/error.hpp>
#include <eloqstore/sched/remote.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore::detail {

class cache_shard {
 public:
  enum class state : std::uint8_t { ready, fetching, evicting };

  // A parked task and the port that wakes it (sched/remote.hpp).
  struct waiter {
    completion_port* port = nullptr;
    void* task = nullptr;
  };

  struct file : boost::intrusive::list_base_hook<> {
    table_ident table;
    std::string name;
    std::uint64_t bytes = 0;
    state st = state::ready;
    bool dirty = false;
    std::uint32_t pins = 0;
    // Tells this entry from a later one of the same name (the file removed and admitted
    // again while a task that admitted it was parked).
    std::uint64_t generation = 0;
    std::vector<waiter> waiters;  // tasks waiting for st to become ready (or the file to go)

    [[nodiscard]] bool evictable() const noexcept {
      return st == state::ready && !dirty && pins == 0;
    }
  };

  // A file chosen for eviction: already uncharged, still in the table as evicting until
  // evicted() or restored().
  struct victim {
    table_ident table;
    std::string name;
  };

  cache_shard(std::uint64_t limit, std::uint64_t low) noexcept
      : limit_(limit), low_(low > limit ? limit : low) {}
  cache_shard(const cache_shard&) = delete;
  cache_shard& operator=(const cache_shard&) = delete;
  ~cache_shard() { lru_.clear(); }

  [[nodiscard]] std::uint64_t used() const noexcept { return used_; }
  [[nodiscard]] std::uint64_t limit() const noexcept { return limit_; }
  [[nodiscard]] std::size_t files() const noexcept { return count_; }
  [[nodiscard]] std::uint64_t evictions() const noexcept { return evictions_; }

  [[nodiscard]] file* find(const table_ident& t, std::string_view name) {
    const auto p = parts_.find(t);
    if (p == parts_.end()) {
      return nullptr;
    }
    const auto f = p->second.find(name);
    return f == p->second.end() ? nullptr : &f->second;
  }

  // A ready file becomes the most recently used.
  void touch(file& f) {
    if (f.st == state::ready && f.is_linked()) {
      lru_.erase(lru_.iterator_to(f));
      lru_.push_front(f);
    }
  }

  // Charges a new file t/name of `bytes` in state `st` (ready or fetching), most recently
  // used; the files to evict for it are appended to `out` (each now evicting). busy or
  // out_of_space (see above) when it cannot fit now, with nothing changed.
  // REQUIRES: find(t, name) == nullptr.
  [[nodiscard]] error admit(const table_ident& t, std::string_view name, std::uint64_t bytes,
                            state st, std::vector<victim>& out) {
    if (const error e = make_room(bytes, nullptr, out); e != error::ok) {
      return e;
    }
    auto [it, fresh] = parts_[t].try_emplace(std::string(name));
    file& f = it->second;
    f.table = t;
    f.name = std::string(name);
    f.bytes = bytes;
    f.st = st;
    f.generation = ++generations_;
    used_ += bytes;
    ++count_;
    lru_.push_front(f);
    return error::ok;
  }

  // Evicts down to the limit (after the limit shrank, or files were added past it): the
  // victims are appended to `out`.
  [[nodiscard]] error trim(std::vector<victim>& out) { return make_room(0, nullptr, out); }

  // The file's charge becomes at least `bytes`, evicting others for the difference (appended
  // to `out`); busy or out_of_space, with nothing changed, when there is no room now.
  [[nodiscard]] error grow(file& f, std::uint64_t bytes, std::vector<victim>& out) {
    if (bytes <= f.bytes) {
      return error::ok;
    }
    if (const error e = make_room(bytes - f.bytes, &f, out); e != error::ok) {
      return e;
    }
    used_ += bytes - f.bytes;
    f.bytes = bytes;
    return error::ok;
  }

  // The file state `st` (from fetching or evicting); returns its waiters to wake.
  [[nodiscard]] std::vector<waiter> settle(file& f, state st) {
    if (st == state::ready && f.st == state::evicting) {
      used_ += f.bytes;  // restored: charged again
    }
    if (st == state::ready && !f.is_linked()) {
      lru_.push_front(f);
    }
    f.st = st;
    return std::exchange(f.waiters, {});
  }

  // The file leaves the table (removed, evicted, or a failed download); returns its waiters.
  [[nodiscard]] std::vector<waiter> erase(const table_ident& t, std::string_view name) {
    const auto p = parts_.find(t);
    if (p == parts_.end()) {
      return {};
    }
    const auto it = p->second.find(name);
    if (it == p->second.end()) {
      return {};
    }
    file& f = it->second;
    if (f.st == state::evicting) {
      ++evictions_;
    } else {
      used_ -= f.bytes;
    }
    if (f.is_linked()) {
      lru_.erase(lru_.iterator_to(f));
    }
    std::vector<waiter> waiters = std::move(f.waiters);
    p->second.erase(it);
    --count_;
    if (p->second.empty()) {
      parts_.erase(p);
    }
    return waiters;
  }

  // The names of t's files in the table.
  [[nodiscard]] std::vector<std::string> names(const table_ident& t) const {
    std::vector<std::string> out;
    if (const auto p = parts_.find(t); p != parts_.end()) {
      for (const auto& entry : p->second) {
        out.push_back(entry.first);
      }
    }
    return out;
  }

 private:
  struct name_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  using partition_files = std::unordered_map<std::string, file, name_hash, std::equal_to<>>;

  // Marks victims (not `keep`) until `bytes` more fit, down to the low mark when evicting.
  [[nodiscard]] error make_room(std::uint64_t bytes, const file* keep, std::vector<victim>& out) {
    if (bytes > limit_) {
      return error::out_of_space;
    }
    if (used_ + bytes <= limit_) {
      return error::ok;
    }
    const std::uint64_t target = bytes > low_ ? limit_ : low_;
    std::vector<file*> chosen;
    std::uint64_t freed = 0;
    for (auto it = lru_.rbegin(); it != lru_.rend() && used_ - freed + bytes > target; ++it) {
      file& f = *it;
      if (&f != keep && f.evictable()) {
        chosen.push_back(&f);
        freed += f.bytes;
      }
    }
    if (used_ - freed + bytes > limit_) {
      std::uint64_t later = freed;
      for (const file& f : lru_) {
        if (!f.dirty && (f.st == state::fetching || (f.st == state::ready && f.pins > 0))) {
          later += f.bytes;
        }
      }
      return used_ - later + bytes <= limit_ ? error::busy : error::out_of_space;
    }
    for (file* f : chosen) {
      lru_.erase(lru_.iterator_to(*f));
      f->st = state::evicting;
      used_ -= f->bytes;
      out.push_back(victim{f->table, f->name});
    }
    return error::ok;
  }

  std::uint64_t limit_;
  std::uint64_t low_;
  std::uint64_t used_ = 0;
  std::size_t count_ = 0;
  std::uint64_t evictions_ = 0;
  std::uint64_t generations_ = 0;
  std::unordered_map<table_ident, partition_files> parts_;
  boost::intrusive::list<file> lru_;  // ready files, most recently used first
};

}  // namespace eloqstore::detail
