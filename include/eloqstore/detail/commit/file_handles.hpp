// The open data files of one shard's partitions, by (partition state, file id), for backends
// with file handles (file_handles in concepts.hpp). A page read resolves its file here: no
// file name is built and no lock is taken (the cache belongs to the shard); only a miss asks
// the backend, by name. Bounded: the least recently used handle goes first (Boost.Intrusive
// list), and the backend closes a file when its last handle is dropped.
//
// Invalidation: a partition's handles go when its state does (drop_all, from
// page_access::invalidate_all), so a state allocated later at the same address never finds
// them; a data file removed or replaced must be dropped (drop) before its name is reused.
//
// Thread affinity: the shard's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <unordered_map>
#include <utility>

#include <boost/intrusive/list.hpp>

#include <eloqstore/detail/util/strong_id.hpp>

namespace eloqstore::detail {

// The open data files each shard's handle cache may keep: a share of fd_limit (less the 100
// kept for everything else) that the backends' own descriptor caches leave to it (traits.hpp
// splits the budget), so the handles a shard holds never push the process past fd_limit.
[[nodiscard]] inline std::size_t shard_file_handles(std::size_t fd_limit,
                                                    std::size_t shards) noexcept {
  const std::size_t fds = fd_limit > 200 ? fd_limit - 100 : 100;
  const std::size_t share = fds / (4 * (shards == 0 ? 1 : shards));
  return share < 1 ? 1 : (share > 256 ? 256 : share);
}

template <typename Ref>
class file_handle_cache {
 public:
  static constexpr std::size_t capacity_default = 256;

  explicit file_handle_cache(std::size_t capacity = capacity_default)
      : capacity_(capacity == 0 ? 1 : capacity) {}
  file_handle_cache(const file_handle_cache&) = delete;
  file_handle_cache& operator=(const file_handle_cache&) = delete;
  ~file_handle_cache() { clear(); }

  // The handle of file `file` of partition `owner`, or nullptr; a hit becomes the most
  // recently used.
  [[nodiscard]] const Ref* find(const void* owner, file_id file) {
    const auto it = map_.find(key{owner, file});
    if (it == map_.end()) {
      return nullptr;
    }
    lru_.erase(lru_.iterator_to(it->second));
    lru_.push_front(it->second);
    return &it->second.ref;
  }

  // Adds a handle (replacing one of the same file), evicting the least recently used one
  // when full. Returns the stored handle.
  const Ref& insert(const void* owner, file_id file, Ref ref) {
    drop(owner, file);
    while (map_.size() >= capacity_) {
      entry& victim = lru_.back();
      lru_.pop_back();
      map_.erase(key{victim.owner, victim.file});
    }
    auto [it, fresh] = map_.try_emplace(key{owner, file}, owner, file, std::move(ref));
    lru_.push_front(it->second);
    return it->second.ref;
  }

  void drop(const void* owner, file_id file) {
    const auto it = map_.find(key{owner, file});
    if (it != map_.end()) {
      lru_.erase(lru_.iterator_to(it->second));
      map_.erase(it);
    }
  }

  // Drops every handle of a partition.
  void drop_all(const void* owner) {
    for (auto it = map_.begin(); it != map_.end();) {
      if (it->first.owner == owner) {
        lru_.erase(lru_.iterator_to(it->second));
        it = map_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void clear() {
    lru_.clear();
    map_.clear();
  }

  [[nodiscard]] std::size_t size() const noexcept { return map_.size(); }

 private:
  struct key {
    const void* owner;
    file_id file;
    bool operator==(const key&) const = default;
  };
  struct key_hash {
    std::size_t operator()(const key& k) const noexcept {
      return std::hash<const void*>{}(k.owner) ^
             (std::hash<file_id>{}(k.file) * 0x9e3779b97f4a7c15ULL);
    }
  };
  // Map nodes never move, so the LRU links them in place.
  struct entry : boost::intrusive::list_base_hook<> {
    entry(const void* o, file_id f, Ref r) : owner(o), file(f), ref(std::move(r)) {}
    const void* owner;
    file_id file;
    Ref ref;
  };

  std::size_t capacity_;
  std::unordered_map<key, entry, key_hash> map_;
  boost::intrusive::list<entry> lru_;  // most recently used first
};

}  // namespace eloqstore::detail
