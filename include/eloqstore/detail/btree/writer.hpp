// Copy-on-write modification of one partition: batch apply, range delete, truncate, expiry
// purge, and the commit that makes the result durable and visible.
//
// A tree_writer starts from the partition's published version and builds the next one aside:
// a private copy of the mapping table (chunked copy-on-write), new roots, and a map of dirty
// pages (logical id -> page bytes). Pages keep their logical id when rewritten, so a parent is
// rewritten only when its own child list changes. Nothing is visible to readers until
// commit() has written the pages, synced the data files, written and synced the manifest, and
// swapped the partition's version. Any error before that leaves the published state as it was.
//
// Tree shape: the root is always an index page (a leaf-index page with a single leftmost child
// for a one-leaf tree); an empty tree has no root. Data pages are doubly linked in key order.
// Output pages are filled greedily; when the last of several new pages is under 1/4 full and
// the one before is over 3/4, the two are rebalanced to about half each (spec 5.3).
//
// Recursion: apply and range delete recurse once per tree level; depth is bounded by
// descent_depth_max and checked.
//
// Thread affinity: the partition's shard thread; one writer per partition at a time.
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
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <eloqstore/comparator.hpp>
#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/btree/reader.hpp>
#include <eloqstore/detail/codec/checksum.hpp>
#include <eloqstore/detail/codec/coding.hpp>
#include <eloqstore/detail/manifest/record.hpp>
#include <eloqstore/detail/page/data_page.hpp>
#include <eloqstore/detail/page/index_page.hpp>
#include <eloqstore/detail/page/overflow_page.hpp>
#include <eloqstore/detail/shard/partition.hpp>
#include <eloqstore/detail/util/page_buffer.hpp>
#include <eloqstore/detail/util/string_arena.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/types.hpp>

namespace eloqstore::detail {

struct writer_config {
  std::size_t page_size = 4096;
  std::uint16_t data_restart_interval = 16;
  std::uint16_t index_restart_interval = 16;
  std::size_t overflow_pointers = 16;
  std::uint64_t manifest_limit = 8 << 20;
  std::uint64_t term = 0;
};

// Internal write operation: remove the record only if it has expired (used by expiry purge,
// so a newer write that landed in between is never removed).
inline constexpr auto write_op_purge = static_cast<write_op>(2);

// The backend's ticket of a write in flight (async_page_writes), or a placeholder.
template <typename IO, bool = async_page_writes<IO>>
struct write_ticket_of {
  using type = int;
};
template <typename IO>
struct write_ticket_of<IO, true> {
  using type = typename IO::write_ticket;
};

struct writer_stats {
  std::size_t pages_written = 0;
  std::size_t chunks_copied = 0;
  bool manifest_snapshot = false;
};

template <io_backend IO, key_comparator Cmp>
class tree_writer {
 public:
  tree_writer(page_access<IO>& pages, partition_state& partition, const Cmp& cmp,
              const writer_config& cfg, std::uint64_t now_ms)
      : pages_(pages),
        p_(partition),
        cmp_(cmp),
        cfg_(cfg),
        now_ms_(now_ms),
        mapping_(partition.current->mapping),
        root_(partition.current->root),
        ttl_root_(partition.current->ttl_root),
        data_builder_(cfg.page_size, cfg.data_restart_interval),
        index_builder_(cfg.page_size, cfg.index_restart_interval),
        scratch_(cfg.page_size) {
    mapping_.reset_chunks_copied();
    terms_ = partition.terms;
  }
  tree_writer(const tree_writer&) = delete;
  tree_writer& operator=(const tree_writer&) = delete;
  // A writer that did not commit waits for the page writes it started and gives their file
  // pages back (nothing durable references them).
  ~tree_writer() {
    (void)finish_streams();
    for (const std::uint64_t fp : allocated_) {
      p_.fps.release(file_page_id(fp));
    }
    for (auto& [raw_id, bytes] : dirty_) {
      pages_.recycle(std::move(bytes));
    }
    for (auto& [raw_id, bytes] : prefetched_) {
      pages_.recycle(std::move(bytes));
    }
  }

  [[nodiscard]] const writer_stats& stats() const noexcept { return stats_; }
  [[nodiscard]] std::uint64_t next_expire_ts() const noexcept { return min_expire_; }

  // Applies a batch. REQUIRES: keys sorted ascending by the comparator and non-empty; equal
  // keys (a group of requests) are applied one after another in batch order.
  [[nodiscard]] error apply(std::span<const write_entry> batch) {
    ttl_mode_ = false;
    if (const error e = ensure_manifest(); e != error::ok) {
      return e;
    }
    if (const error e = apply_tree(root_, batch); e != error::ok) {
      return e;
    }
    return apply_ttl_changes();
  }

  // Deletes every key in [begin, end); an empty end means +inf.
  [[nodiscard]] error delete_range(std::string_view begin, std::string_view end) {
    ttl_mode_ = false;
    if (root_.is_none() || (!begin.empty() && !end.empty() && compare(begin, end) >= 0)) {
      return error::ok;
    }
    std::vector<child_ref> result;
    const error e = rewrite_index(root_, std::string_view{}, std::string_view{}, 0, result,
                                  [&](const child_ref& c, std::string_view hi, bool leaf,
                                      std::size_t depth, std::vector<child_ref>& rep) {
                                    return range_child(c, hi, leaf, begin, end, depth, rep);
                                  });
    if (e != error::ok) {
      return e;
    }
    if (const error e2 = settle_root(root_, std::move(result)); e2 != error::ok) {
      return e2;
    }
    return apply_ttl_changes();
  }

  // Frees every page of the partition without reading the tree.
  void truncate_all() {
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
    root_ = page_id::none();
    ttl_root_ = page_id::none();
    truncated_all_ = true;
  }

  // Removes the records whose expiry has passed, found through the TTL tree.
  [[nodiscard]] error clean_expired() {
    if (ttl_root_.is_none()) {
      return error::ok;
    }
    auto version = std::make_shared<partition_version>();
    version->root = ttl_root_;
    version->mapping = mapping_;
    tree_reader<IO, bytewise_comparator> ttl_reader(pages_, p_, version, ttl_cmp_, 0);
    std::vector<kv_entry> ttl;
    bool more = false;
    char bound[8];
    encode_be64(bound, now_ms_ + 1);  // every TTL key below this has expired
    if (const error e = ttl_reader.scan({}, std::string_view(bound, 8), true, {}, ttl, more);
        e != error::ok) {
      return e;
    }
    // The first expiry still ahead becomes the partition's next check.
    std::vector<kv_entry> ahead;
    if (const error e = ttl_reader.scan(std::string_view(bound, 8), {}, true, {1, 0}, ahead, more);
        e != error::ok) {
      return e;
    }
    purged_ = true;
    purge_next_ = ahead.empty() || ahead[0].key.size() < 8 ? 0 : decode_be64(ahead[0].key.data());
    std::vector<write_entry> purge;
    for (const kv_entry& t : ttl) {
      if (t.key.size() > 8) {
        purge.push_back(write_entry{t.key.substr(8), {}, 0, write_op_purge, 0});
      }
      ttl_changes_.push_back(write_entry{t.key, {}, 0, write_op::erase, 0});
    }
    std::sort(purge.begin(), purge.end(), [&](const write_entry& a, const write_entry& b) {
      return cmp_.compare(a.key, b.key) < 0;
    });
    purge.erase(std::unique(purge.begin(), purge.end(),
                            [&](const write_entry& a, const write_entry& b) {
                              return cmp_.compare(a.key, b.key) == 0;
                            }),
                purge.end());
    return apply(purge);
  }

  // Writes dirty pages, syncs data files, writes the manifest, then publishes the version.
  [[nodiscard]] error commit() {
    if (corrupt_) {
      return error::corrupted;  // a page named an id the mapping does not hold
    }
    if (stream_error_ != error::ok) {
      return stream_error_;  // placed pages may be unwritten: nothing of this may commit
    }
    if (dirty_.empty() && log_.change_count() == 0 && !truncated_all_ && !p_.force_snapshot) {
      if (purged_) {
        p_.next_expire_ts = purge_next_;  // nothing had expired: remember the next expiry
      }
      return error::ok;  // nothing changed: no manifest write
    }
    error e = write_dirty_pages();
    if (const error s = finish_streams(); e == error::ok) {
      e = s;
    }
    stats_.chunks_copied = mapping_.chunks_copied();
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
    return error::ok;
  }

 private:
  struct child_ref {
    std::string key;  // lower bound of the child's range; empty for the node's first child
    page_id id;
  };
  // A record of a data page being rebuilt; views stay valid until the page is built.
  struct record {
    std::string_view key;
    std::string_view value;
    std::uint64_t ts = 0;
    std::uint64_t expire_ts = 0;
    bool overflow = false;
    compression_kind compression = compression_kind::none;
  };

  [[nodiscard]] std::weak_ordering compare(std::string_view a, std::string_view b) const noexcept {
    return ttl_mode_ ? ttl_cmp_.compare(a, b) : cmp_.compare(a, b);
  }
  [[nodiscard]] std::string separator(std::string_view a, std::string_view b) const {
    return ttl_mode_ ? ttl_cmp_.shortest_separator(a, b) : cmp_.shortest_separator(a, b);
  }

  // ---- page bookkeeping --------------------------------------------------------------------

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
      freed_fps_.push_back(fp.value());
    }
    if (const auto it = dirty_.find(id.value()); it != dirty_.end()) {
      drop_dirty(it->first, it->second);
      dirty_.erase(it);
    }
    mapping_.release(id);
    log_.delete_mapping(id);
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
    return pages_.read(p_, mapping_, id, out);
  }

  // Reads the data pages a batch will rewrite all at once (the backend overlaps them), so
  // the rewrite that follows finds them in memory instead of reading them one by one.
  [[nodiscard]] error prefetch_leaves(page_id root, std::span<const write_entry> batch) {
    std::vector<page_id> leaves;
    if (const error e = collect_leaves(root, {}, {}, batch, 0, leaves); e != error::ok) {
      return e;
    }
    std::erase_if(leaves, [&](page_id id) {
      return dirty_.contains(id.value()) || prefetched_.contains(id.value());
    });
    if (leaves.size() > prefetch_leaves_max) {
      leaves.resize(prefetch_leaves_max);  // memory bound: the rest is read when reached
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

  // The data pages under index page `id` (covering [lo, hi)) whose ranges hold batch keys.
  [[nodiscard]] error collect_leaves(page_id id, std::string_view lo, std::string_view hi,
                                     std::span<const write_entry> batch, std::size_t depth,
                                     std::vector<page_id>& out) {
    index_hold held;
    bool leaf = false;
    std::vector<child_ref> children;
    if (const error e = load_children(id, lo, hi, depth, held, leaf, children); e != error::ok) {
      return e;
    }
    for (std::size_t i = 0; i < children.size(); ++i) {
      const std::string_view child_hi =
          i + 1 < children.size() ? std::string_view(children[i + 1].key) : hi;
      const auto part = slice(batch, children[i].key, child_hi);
      if (part.empty()) {
        continue;
      }
      if (leaf) {
        out.push_back(children[i].id);
      } else if (const error e = collect_leaves(children[i].id, children[i].key, child_hi, part,
                                                depth + 1, out);
                 e != error::ok) {
        return e;
      }
    }
    return error::ok;
  }

  // An index page the writer is working on: pinned in the shard's index cache (the
  // reference's stack of pinned pages), or this writer's own dirty copy.
  struct index_hold {
    index_pin pin;
    std::vector<char> copy;
  };

  // Loads an index page into `hold` and opens it. error::out_of_mem if the page is not cached
  // and every frame of the index cache is pinned.
  [[nodiscard]] error load_index(page_id id, index_hold& hold, index_page& page) {
    std::span<const char> bytes;
    if (const auto it = dirty_.find(id.value()); it != dirty_.end()) {
      hold.pin.reset();
      const std::span<const char> dirty = it->second;
      hold.copy.assign(dirty.begin(), dirty.end());
      bytes = hold.copy;
    } else {
      hold.pin.reset();  // a reused hold gives its frame back before taking another
      if (const error e = pages_.index(p_, mapping_, id, hold.pin); e != error::ok) {
        return e;
      }
      bytes = hold.pin.bytes();
    }
    return index_page::open(bytes, page) == error::ok ? error::ok : error::corrupted;
  }

  // Loads index page `id` (its range [lo, hi)) into `held` and lists its children, each
  // with the lower bound of its range (lo for the leftmost); `leaf` tells whether they are
  // data pages. Separators must ascend strictly inside (lo, hi): a page reused for another
  // part of the tree (a manifest cut back to an older version) is corruption, not a place to
  // write.
  [[nodiscard]] error load_children(page_id id, std::string_view lo, std::string_view hi,
                                    std::size_t depth, index_hold& held, bool& leaf,
                                    std::vector<child_ref>& children) {
    if (depth >= descent_depth_max) {
      return error::corrupted;
    }
    index_page page;
    if (const error e = load_index(id, held, page); e != error::ok) {
      return e;
    }
    leaf = page.is_leaf_index();
    children.clear();
    index_page_iter it(page);
    for (it.seek_to_first(); it.valid(); it.next()) {
      if (!it.at_leftmost()) {
        const std::string_view below = children.back().key;  // lo, or the last separator
        if ((!below.empty() && compare(it.key(), below) <= 0) ||
            (!hi.empty() && compare(it.key(), hi) >= 0)) {
          return error::corrupted;
        }
      }
      children.push_back(child_ref{std::string(it.at_leftmost() ? lo : it.key()), it.child()});
    }
    return it.status() == error::ok ? error::ok : error::corrupted;
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

  // Removes a data page from the sibling list.
  [[nodiscard]] error unlink(page_id prev, page_id next) {
    if (!prev.is_none()) {
      if (const error e = set_link(prev, data_page_next_offset, next); e != error::ok) {
        return e;
      }
    }
    if (!next.is_none()) {
      return set_link(next, data_page_prev_offset, prev);
    }
    return error::ok;
  }

  // The ids of every page of an overflow chain (reads only the groups' last pages).
  [[nodiscard]] error free_overflow(std::string_view head) {
    std::array<page_id, overflow_pointers_max> ids{};
    std::size_t count = 0;
    if (!decode_overflow_head(head, ids, count)) {
      return error::corrupted;
    }
    std::vector<char> bytes;
    for (std::size_t guard = 0; count > 0 && guard <= mapping_.size(); ++guard) {
      const page_id last = ids[count - 1];
      if (const error e = load(last, bytes); e != error::ok) {
        return e;
      }
      overflow_page page;
      if (overflow_page::open(bytes, page) != error::ok) {
        return error::corrupted;
      }
      for (std::size_t i = 0; i < count; ++i) {
        free_page(ids[i]);
      }
      count = page.pointer_count();
      for (std::size_t j = 0; j < count; ++j) {
        ids[j] = page.pointer(j);
      }
    }
    return count == 0 ? error::ok : error::corrupted;
  }

  void ttl_change(std::string_view key, std::uint64_t expire_ts, write_op op) {
    if (ttl_mode_ || expire_ts == 0) {
      return;
    }
    std::string k(8, '\0');
    encode_be64(k.data(), expire_ts);
    k.append(key);
    ttl_changes_.push_back(write_entry{std::move(k), {}, 0, op, 0});
    if (op == write_op::upsert && (min_expire_ == 0 || expire_ts < min_expire_)) {
      min_expire_ = expire_ts;
    }
  }

  [[nodiscard]] error apply_ttl_changes() {
    if (ttl_changes_.empty()) {
      return error::ok;
    }
    std::vector<write_entry> batch = std::move(ttl_changes_);
    ttl_changes_.clear();
    std::sort(batch.begin(), batch.end(),
              [](const write_entry& a, const write_entry& b) { return a.key < b.key; });
    // A key both erased and upserted keeps the upsert (an expiry set again).
    std::vector<write_entry> unique;
    for (write_entry& w : batch) {
      if (!unique.empty() && unique.back().key == w.key) {
        if (w.op == write_op::upsert) {
          unique.back() = std::move(w);
        }
        continue;
      }
      unique.push_back(std::move(w));
    }
    ttl_mode_ = true;
    const error e = apply_tree(ttl_root_, unique);
    ttl_mode_ = false;
    return e;
  }

  // ---- batch apply ---------------------------------------------------------------------

  [[nodiscard]] error apply_tree(page_id& root, std::span<const write_entry> batch) {
    if (batch.empty()) {
      return error::ok;
    }
    if (root.is_none()) {
      std::vector<record> none;
      std::vector<child_ref> leaves;
      if (const error e =
              build_leaves(none, batch, page_id::none(), page_id::none(), page_id::none(), leaves);
          e != error::ok) {
        return e;
      }
      return grow_root(root, std::move(leaves), true);
    }
    if constexpr (batched_reads<IO>) {
      if (batch.size() > 1) {
        if (const error e = prefetch_leaves(root, batch); e != error::ok) {
          return e;
        }
      }
    }
    std::vector<child_ref> result;
    const error e = rewrite_index(
        root, std::string_view{}, std::string_view{}, 0, result,
        [&](const child_ref& c, std::string_view hi, bool leaf, std::size_t depth,
            std::vector<child_ref>& rep) { return batch_child(c, hi, leaf, batch, depth, rep); });
    if (e != error::ok) {
      return e;
    }
    return settle_root(root, std::move(result));
  }

  // The slice of `batch` whose keys fall in [lo, hi) (lo empty = -inf, hi empty = +inf).
  [[nodiscard]] std::span<const write_entry> slice(std::span<const write_entry> batch,
                                                   std::string_view lo, std::string_view hi) const {
    if (batch.empty() || (!hi.empty() && compare(batch.front().key, hi) >= 0) ||
        (!lo.empty() && compare(batch.back().key, lo) < 0)) {
      return {};  // the common case of a child beside the batch: one or two comparisons
    }
    const auto below = [&](const write_entry& w, std::string_view k) {
      return compare(w.key, k) < 0;
    };
    const auto first =
        lo.empty() ? batch.begin() : std::lower_bound(batch.begin(), batch.end(), lo, below);
    const auto last = hi.empty() ? batch.end() : std::lower_bound(first, batch.end(), hi, below);
    return {first, last};
  }

  // Visitor for apply: rewrites a child whose range holds batch keys. Returns true if the
  // child was replaced (rep holds the replacement, possibly empty).
  [[nodiscard]] error batch_child(const child_ref& c, std::string_view hi, bool leaf,
                                  std::span<const write_entry> batch, std::size_t depth,
                                  std::vector<child_ref>& rep) {
    const auto changes = slice(batch, c.key, hi);
    if (changes.empty()) {
      rep = {c};
      return error::ok;
    }
    if (leaf) {
      return apply_leaf(c.id, c.key, hi, changes, rep);
    }
    return rewrite_index(c.id, c.key, hi, depth + 1, rep,
                         [&](const child_ref& cc, std::string_view chi, bool cleaf, std::size_t d,
                             std::vector<child_ref>& crep) {
                           return batch_child(cc, chi, cleaf, changes, d, crep);
                         });
  }

  // Rewrites index page `id` covering [lo, hi): `visit` maps each child to its replacement.
  // `out` receives this node's replacement: {id} unchanged, several pages after a split, or
  // nothing if every child is gone.
  template <typename Visit>
  [[nodiscard]] error rewrite_index(page_id id, std::string_view lo, std::string_view hi,
                                    std::size_t depth, std::vector<child_ref>& out, Visit&& visit) {
    index_hold held;  // pinned while the subtree is rewritten (the reference's stack)
    bool leaf = false;
    std::vector<child_ref> children;
    if (const error e = load_children(id, lo, hi, depth, held, leaf, children); e != error::ok) {
      return e;
    }
    std::vector<child_ref> next;
    bool changed = false;
    std::vector<child_ref> rep;
    for (std::size_t i = 0; i < children.size(); ++i) {
      const std::string_view child_hi =
          i + 1 < children.size() ? std::string_view(children[i + 1].key) : hi;
      rep.clear();
      if (const error e = visit(children[i], child_hi, leaf, depth, rep); e != error::ok) {
        return e;
      }
      if (rep.size() == 1 && rep[0].id == children[i].id) {
        next.push_back(std::move(children[i]));
        continue;
      }
      changed = true;
      if (!rep.empty()) {
        rep[0].key = children[i].key;
      }
      for (child_ref& r : rep) {
        next.push_back(std::move(r));
      }
    }
    if (!changed) {
      out = {child_ref{std::string(lo), id}};
      return error::ok;
    }
    if (next.empty()) {
      free_page(id);
      out.clear();
      return error::ok;
    }
    return pack_index(next, leaf, id, out);
  }

  // A data page decoded into records. `bytes` owns the page; the records' values view it and
  // their keys live in held_.
  struct leaf_contents {
    std::vector<char> bytes;
    std::vector<record> records;
    page_id prev;
    page_id next;
  };

  // Reads a data page into leaf.bytes (with its links) and opens it as `page`. Its keys must
  // lie in [lo, hi), the range of the entry that led to it (empty = unbounded).
  [[nodiscard]] error open_leaf(page_id id, std::string_view lo, std::string_view hi,
                                leaf_contents& leaf, data_page& page) {
    if (const error e = load(id, leaf.bytes); e != error::ok) {
      return e;
    }
    if (data_page::open(leaf.bytes, page) != error::ok) {
      return error::corrupted;
    }
    data_page_iter it(page);
    if (!lo.empty()) {
      it.seek_to_first();
      if (it.valid() && compare(it.key(), lo) < 0) {
        return error::corrupted;
      }
    }
    if (!hi.empty()) {
      it.seek_to_last();
      if (it.valid() && compare(it.key(), hi) >= 0) {
        return error::corrupted;
      }
    }
    if (it.status() != error::ok) {
      return it.status();
    }
    leaf.prev = page.prev();
    leaf.next = page.next();
    return error::ok;
  }

  [[nodiscard]] error load_leaf(page_id id, std::string_view lo, std::string_view hi,
                                leaf_contents& leaf) {
    data_page page;
    if (const error e = open_leaf(id, lo, hi, leaf, page); e != error::ok) {
      return e;
    }
    leaf.records.clear();
    leaf.records.reserve(leaf_record_reserve(page));
    data_page_iter it(page);
    for (it.seek_to_first(); it.valid(); it.next()) {
      leaf.records.push_back(record_at(it));
    }
    return it.status();  // corrupted, or out_of_mem from a key past the cursor's inline room
  }

  // Merges a data page with its changes and rebuilds it (possibly as several pages). A few
  // changes to a page are applied region by region (patch_leaf).
  [[nodiscard]] error apply_leaf(page_id id, std::string_view lo, std::string_view hi,
                                 std::span<const write_entry> changes,
                                 std::vector<child_ref>& out) {
    if (changes.size() <= patch_changes_max) {
      return patch_leaf(id, lo, hi, changes, out);
    }
    leaf_contents leaf;
    if (const error e = load_leaf(id, lo, hi, leaf); e != error::ok) {
      return e;
    }
    return build_leaves(leaf.records, changes, id, leaf.prev, leaf.next, out);
  }

  // Applies changes to a data page by restart regions (data_page.hpp): a region with no
  // change and no expired record is copied as it is; runs of the other regions are decoded,
  // merged and encoded again. A short region right after a rewritten one joins its run, so
  // the regions that patches leave short are merged back by later ones. When the result is
  // not one page (it overflows, or nothing is left), the pages are built from the same
  // merged records, as build_leaves would. Either way the records stored, and their order,
  // are those of a whole rebuild; the restart regions (and so how full a page is) can differ.
  [[nodiscard]] error patch_leaf(page_id id, std::string_view lo, std::string_view hi,
                                 std::span<const write_entry> changes,
                                 std::vector<child_ref>& out) {
    leaf_contents leaf;
    data_page page;
    if (const error e = open_leaf(id, lo, hi, leaf, page); e != error::ok) {
      return e;
    }
    if (page.empty()) {  // no region to patch (our writers never store such a page)
      return build_leaves({}, changes, id, leaf.prev, leaf.next, out);
    }
    const std::size_t regions = page.restart_count();
    std::vector<region_plan>& plan = region_plans_;
    plan.assign(regions, region_plan{});
    data_page_iter it(page);
    for (it.seek_to_first(); it.valid(); it.next()) {
      region_plan& r = plan[it.region()];
      ++r.entries;
      r.rewrite = r.rewrite || is_expired(it.expire_ts(), now_ms_);
    }
    if (it.status() != error::ok) {
      return it.status();
    }
    // Changes below region k+1's first key belong to region k (region 0 takes any key below
    // the page's first; the last region takes the rest).
    for (std::size_t k = 0, j = 0; k < regions; ++k) {
      std::size_t end = changes.size();
      if (k + 1 < regions) {
        std::string_view next_first;
        if (!it.region_first_key(k + 1, next_first)) {
          return error::corrupted;
        }
        for (end = j; end < changes.size() && compare(changes[end].key, next_first) < 0;) {
          ++end;
        }
      }
      plan[k].changes_begin = j;
      plan[k].changes_end = end;
      plan[k].rewrite = plan[k].rewrite || end > j;
      j = end;
    }
    for (std::size_t k = 0; k + 1 < regions; ++k) {
      if (plan[k].rewrite && plan[k + 1].entries < cfg_.data_restart_interval) {
        plan[k + 1].rewrite = true;
      }
    }
    // Merge each run of rewritten regions with its changes (in order: merging has effects,
    // such as freeing the overflow pages of a replaced value, that happen once).
    std::vector<record>& merged = patch_merged_;
    std::vector<record>& existing = patch_existing_;
    merged.clear();
    merged.reserve(leaf_record_reserve(page) + changes.size());
    for (std::size_t k = 0; k < regions;) {
      if (!plan[k].rewrite) {
        ++k;
        continue;
      }
      std::size_t last = k;
      while (last + 1 < regions && plan[last + 1].rewrite) {
        ++last;
      }
      existing.clear();
      if (const error e = decode_regions(it, k, last, existing); e != error::ok) {
        return e;
      }
      plan[k].merged_begin = merged.size();
      if (const error e = merge(existing,
                                changes.subspan(plan[k].changes_begin,
                                                plan[last].changes_end - plan[k].changes_begin),
                                merged);
          e != error::ok) {
        return e;
      }
      plan[k].merged_end = merged.size();
      plan[k].run_last = last;
      k = last + 1;
    }
    bool fits = true;
    data_builder_.reset();
    for (std::size_t k = 0; fits && k < regions;) {
      if (!plan[k].rewrite) {
        const std::size_t begin = page.restart_offset(k);
        const std::size_t end = k + 1 < regions ? page.restart_offset(k + 1) : page.entries_end();
        fits = data_builder_.append_region(
            std::span<const char>(leaf.bytes.data() + begin, end - begin), plan[k].entries);
        ++k;
        continue;
      }
      for (std::size_t i = plan[k].merged_begin; fits && i < plan[k].merged_end; ++i) {
        const record& r = merged[i];
        fits = data_builder_.add(r.key, r.value, r.ts, r.expire_ts, r.overflow, r.compression);
      }
      k = plan[k].run_last + 1;
    }
    if (fits && !data_builder_.empty()) {
      set_dirty(id, data_builder_.finish(leaf.prev, leaf.next));
      pages_.yield_point();
      if (leaf.next.is_none()) {
        if (const error e = stream(id); e != error::ok) {
          return e;
        }
      }
      out.clear();
      out.push_back(child_ref{std::string(), id});
      return error::ok;
    }
    // All records in key order: the copied regions decoded, the rewritten runs as merged.
    std::vector<record> all;
    all.reserve(merged.size() + leaf_record_reserve(page));
    for (std::size_t k = 0; k < regions;) {
      if (plan[k].rewrite) {
        all.insert(all.end(), merged.begin() + static_cast<std::ptrdiff_t>(plan[k].merged_begin),
                   merged.begin() + static_cast<std::ptrdiff_t>(plan[k].merged_end));
        k = plan[k].run_last + 1;
        continue;
      }
      if (const error e = decode_regions(it, k, k, all); e != error::ok) {
        return e;
      }
      ++k;
    }
    return build_merged(all, id, leaf.prev, leaf.next, out);
  }

  // Appends the records of restart regions [first, last] of the iterator's page.
  [[nodiscard]] error decode_regions(data_page_iter& it, std::size_t first, std::size_t last,
                                     std::vector<record>& out) {
    for (it.seek_to_region(first); it.valid() && it.region() <= last; it.next()) {
      out.push_back(record_at(it));
    }
    return it.status();
  }

  // The iterator's entry as a record: its key kept, its value a view of the page.
  [[nodiscard]] record record_at(const data_page_iter& it) {
    return record{keep(it.key()), it.value(),       it.timestamp(),
                  it.expire_ts(), it.is_overflow(), it.compression()};
  }

  [[nodiscard]] std::size_t leaf_record_reserve(const data_page& page) const noexcept {
    return page.restart_count() * std::size_t{cfg_.data_restart_interval};
  }

  // Stable storage for keys decoded from pages (iterator keys are reused buffers).
  std::string_view keep(std::string_view s) { return held_.keep(s); }

  // Merges `existing` (a page's records, or none) with `changes`, drops expired records, and
  // writes the result as data pages linked between prev and next. The first page reuses `id`
  // when there is one.
  [[nodiscard]] error build_leaves(const std::vector<record>& existing,
                                   std::span<const write_entry> changes, page_id id, page_id prev,
                                   page_id next, std::vector<child_ref>& out) {
    std::vector<record> merged;
    if (const error e = merge(existing, changes, merged); e != error::ok) {
      return e;
    }
    return build_merged(merged, id, prev, next, out);
  }

  // Writes merged records (expired ones already dropped) as data pages linked between prev
  // and next; the first page reuses `id` when there is one.
  [[nodiscard]] error build_merged(const std::vector<record>& merged, page_id id, page_id prev,
                                   page_id next, std::vector<child_ref>& out) {
    if (merged.empty()) {
      out.clear();
      if (!id.is_none()) {
        free_page(id);
        return unlink(prev, next);
      }
      return error::ok;
    }
    // One pass: records fill a page until one does not fit; the next page's id is taken then
    // (the finished page links to it) and the page before the finished one is final.
    std::vector<std::size_t> starts{0};
    std::vector<page_id> ids{id};
    if (id.is_none()) {
      if (const error e = new_page_id(ids[0]); e != error::ok) {
        return e;
      }
    }
    std::size_t full_bytes = 0;  // encoded size of the page before the last
    data_builder_.reset();
    for (std::size_t i = 0; i < merged.size(); ++i) {
      const record& r = merged[i];
      if (data_builder_.add(r.key, r.value, r.ts, r.expire_ts, r.overflow, r.compression)) {
        continue;
      }
      if (i == starts.back()) {
        return error::corrupted;  // a record larger than an empty page: callers rule it out
      }
      page_id following;
      if (const error e = new_page_id(following); e != error::ok) {
        return e;
      }
      full_bytes = data_builder_.current_size_bytes();
      const std::size_t k = ids.size();
      set_dirty(ids[k - 1], data_builder_.finish(k >= 2 ? ids[k - 2] : prev, following));
      if (k >= 2) {
        if (const error e = stream(ids[k - 2]); e != error::ok) {
          return e;
        }
      }
      pages_.yield_point();  // between pages: waiting reads run before the next one is built
      ids.push_back(following);
      starts.push_back(i);
      data_builder_.reset();
      if (!data_builder_.add(r.key, r.value, r.ts, r.expire_ts, r.overflow, r.compression)) {
        return error::corrupted;
      }
    }
    const std::size_t k = ids.size();
    const page_id before_last = k >= 2 ? ids[k - 2] : prev;
    if (k >= 2 && data_builder_.current_size_bytes() < cfg_.page_size / 4 &&
        full_bytes > cfg_.page_size * 3 / 4) {
      // The last page is nearly empty and the one before nearly full: rebuild both about
      // half full (spec 5.3), if the second still fits from the new boundary.
      const std::size_t half = (full_bytes + data_builder_.current_size_bytes()) / 2;
      const auto add = [&](std::size_t i) {
        const record& r = merged[i];
        return data_builder_.add(r.key, r.value, r.ts, r.expire_ts, r.overflow, r.compression);
      };
      const std::size_t m = rebalanced_start(
          starts[k - 2], starts[k - 1], merged.size(), half, [&] { data_builder_.reset(); }, add,
          [&] { return data_builder_.current_size_bytes(); });
      if (m != starts[k - 1]) {
        starts[k - 1] = m;
        data_builder_.reset();
        for (std::size_t i = starts[k - 2]; i < m; ++i) {
          (void)add(i);  // measured by rebalanced_start: fits
        }
        set_dirty(ids[k - 2], data_builder_.finish(k >= 3 ? ids[k - 3] : prev, ids[k - 1]));
      }
      data_builder_.reset();
      for (std::size_t i = starts[k - 1]; i < merged.size(); ++i) {
        (void)add(i);
      }
    }
    set_dirty(ids[k - 1], data_builder_.finish(before_last, next));
    pages_.yield_point();
    // The page before the last is final now; the last too if nothing follows it (a later
    // unlink of its right neighbour would change it).
    if (k >= 2) {
      if (const error e = stream(ids[k - 2]); e != error::ok) {
        return e;
      }
    }
    if (next.is_none()) {
      if (const error e = stream(ids[k - 1]); e != error::ok) {
        return e;
      }
    }
    out.clear();
    for (std::size_t j = 0; j < k; ++j) {
      std::string key =
          j == 0 ? std::string() : separator(merged[starts[j] - 1].key, merged[starts[j]].key);
      out.push_back(child_ref{std::move(key), ids[j]});
    }
    // Neighbours outside this run now see its last (or first) page.
    if (id.is_none() || ids.size() > 1) {
      if (!next.is_none()) {
        if (const error e = set_link(next, data_page_prev_offset, ids.back()); e != error::ok) {
          return e;
        }
      }
      if (id.is_none() && !prev.is_none()) {
        return set_link(prev, data_page_next_offset, ids.front());
      }
    }
    return error::ok;
  }

  // Two-way merge with last-writer-wins (>=), expiry dropping and overflow handling.
  [[nodiscard]] error merge(const std::vector<record>& existing,
                            std::span<const write_entry> changes, std::vector<record>& out) {
    out.reserve(existing.size() + changes.size());
    std::size_t i = 0;
    std::size_t j = 0;
    while (i < existing.size() || j < changes.size()) {
      const int c = i == existing.size()  ? 1
                    : j == changes.size() ? -1
                                          : order(compare(existing[i].key, changes[j].key));
      if (c < 0) {
        if (const error e = keep_existing(existing[i], out); e != error::ok) {
          return e;
        }
        ++i;
        continue;
      }
      // The changes of one key, folded in order over the stored record. An expired record
      // is logically gone: it never wins against a change. Otherwise a change wins iff its
      // timestamp is >= the live one's; a purge only removes expired records.
      const record* old = nullptr;
      if (c == 0) {
        old = &existing[i];
        ++i;
        if (is_expired(old->expire_ts, now_ms_)) {
          if (const error e = drop(*old); e != error::ok) {
            return e;
          }
          old = nullptr;
        }
      }
      const write_entry* now = nullptr;  // the live change, if one won
      std::size_t end = j + 1;
      while (end < changes.size() && compare(changes[end].key, changes[j].key) == 0) {
        ++end;
      }
      for (; j < end; ++j) {
        const write_entry& w = changes[j];
        const bool live = old != nullptr || now != nullptr;
        const std::uint64_t live_ts =
            old != nullptr ? old->ts : (now != nullptr ? now->timestamp : 0);
        if (live && (w.op == write_op_purge || w.timestamp < live_ts)) {
          continue;
        }
        if (old != nullptr) {
          if (const error e = drop(*old); e != error::ok) {
            return e;
          }
          old = nullptr;
        }
        now = w.op == write_op::upsert && !is_expired(w.expire_ts, now_ms_) ? &w : nullptr;
      }
      if (old != nullptr) {
        out.push_back(*old);
      } else if (now != nullptr) {
        if (const error e = add_new(*now, out); e != error::ok) {
          return e;
        }
      }
    }
    return error::ok;
  }

  static int order(std::weak_ordering o) noexcept { return o < 0 ? -1 : (o > 0 ? 1 : 0); }

  [[nodiscard]] error keep_existing(const record& r, std::vector<record>& out) {
    if (is_expired(r.expire_ts, now_ms_)) {
      return drop(r);  // expired data leaves whenever its page is rewritten
    }
    out.push_back(r);
    return error::ok;
  }

  [[nodiscard]] error drop(const record& r) {
    ttl_change(r.key, r.expire_ts, write_op::erase);
    return r.overflow ? free_overflow(r.value) : error::ok;
  }

  [[nodiscard]] error add_new(const write_entry& w, std::vector<record>& out) {
    ttl_change(w.key, w.expire_ts, write_op::upsert);
    record r{w.key, w.value, w.timestamp, w.expire_ts, false, compression_kind::none};
    if (data_page_builder::is_overflow_kv(cfg_.page_size, w.key, w.value.size(), w.timestamp,
                                          w.expire_ts)) {
      std::string head;
      const error e = write_overflow_value(
          w.value, cfg_.overflow_pointers, scratch_,
          [&] {
            page_id id;
            (void)new_page_id(id);
            return id;
          },
          [&](page_id id, std::span<const char> page) {
            set_dirty(id, page);
            return stream(id);  // overflow pages never change again in this pass
          },
          head);
      if (e != error::ok) {
        return e;
      }
      r.value = keep(head);
      r.overflow = true;
    }
    out.push_back(r);
    return error::ok;
  }

  // Greedy page filling plus the 1/4-3/4 rebalance of the last two pages. Returns the start
  // index of each page plus a final n; empty if an item does not fit an empty page (which the
  // callers' inputs rule out, so it is reported as corruption).
  template <typename Reset, typename Add, typename Size>
  [[nodiscard]] std::vector<std::size_t> split_points(std::size_t n, Reset&& reset, Add&& add,
                                                      Size&& size) {
    std::vector<std::size_t> starts{0};
    std::vector<std::size_t> sizes;
    reset();
    for (std::size_t i = 0; i < n; ++i) {
      if (!add(i)) {
        sizes.push_back(size());
        starts.push_back(i);
        reset();
        if (!add(i)) {
          return {};
        }
      }
    }
    sizes.push_back(size());
    const std::size_t k = sizes.size();
    if (k >= 2 && sizes[k - 1] < cfg_.page_size / 4 && sizes[k - 2] > cfg_.page_size * 3 / 4) {
      starts[k - 1] = rebalanced_start(starts[k - 2], starts[k - 1], n,
                                       (sizes[k - 2] + sizes[k - 1]) / 2, reset, add, size);
    }
    starts.push_back(n);
    return starts;
  }

  // The rebalanced start of the last of two pages (the first begins at `first`, the second
  // at `current`, both end at n): the boundary moves back until the first page holds about
  // `half` bytes. The move is kept only if the second page, rebuilt from the new boundary,
  // still fits (prefix compression and restart points change the encoded sizes); otherwise
  // `current` is returned. Leaves the builder behind reset/add/size in an unspecified state.
  template <typename Reset, typename Add, typename Size>
  [[nodiscard]] static std::size_t rebalanced_start(std::size_t first, std::size_t current,
                                                    std::size_t n, std::size_t half, Reset&& reset,
                                                    Add&& add, Size&& size) {
    std::size_t m = first;
    reset();
    while (m < n && size() < half && add(m)) {
      ++m;
    }
    reset();
    bool fits = m > first;
    for (std::size_t i = m; fits && i < n; ++i) {
      fits = add(i);
    }
    return fits ? m : current;
  }

  // Packs children into index pages; the first page reuses `id`. Each output page's key is
  // the key of its first child.
  [[nodiscard]] error pack_index(const std::vector<child_ref>& children, bool leaf, page_id id,
                                 std::vector<child_ref>& out) {
    const auto starts = split_points(
        children.size(), [&] { index_builder_.reset(); },
        [&](std::size_t i) {
          // The first child of a page is its leftmost pointer: its key is not stored.
          const std::string_view key =
              index_builder_.empty() ? std::string_view{} : children[i].key;
          return index_builder_.add(key, children[i].id, leaf);
        },
        [&] { return index_builder_.current_size_bytes(); });
    if (starts.empty()) {
      return error::corrupted;
    }
    out.clear();
    for (std::size_t j = 0; j + 1 < starts.size(); ++j) {
      page_id pid = id;
      if (j > 0) {
        if (const error e = new_page_id(pid); e != error::ok) {
          return e;
        }
      }
      index_builder_.reset();
      for (std::size_t i = starts[j]; i < starts[j + 1]; ++i) {
        const std::string_view key = i == starts[j] ? std::string_view{} : children[i].key;
        if (!index_builder_.add(key, children[i].id, leaf)) {
          return error::corrupted;  // split_points measured this page: it must fit
        }
      }
      const auto page = index_builder_.finish();
      set_dirty(pid, page);
      out.push_back(child_ref{children[starts[j]].key, pid});
    }
    return error::ok;
  }

  // Makes `result` (the replacement of the old root) the new root: nothing -> empty tree,
  // several pages -> a new level above, one page -> collapse while it is an index page with a
  // single index child.
  [[nodiscard]] error settle_root(page_id& root, std::vector<child_ref> result) {
    if (result.empty()) {
      root = page_id::none();
      return error::ok;
    }
    if (result.size() > 1) {
      return grow_root(root, std::move(result), false);
    }
    root = result[0].id;
    index_hold held;
    for (std::size_t depth = 0; depth < descent_depth_max; ++depth) {
      index_page page;
      if (const error e = load_index(root, held, page); e != error::ok) {
        return e;
      }
      if (page.is_leaf_index() || page.area().restart_count != 0) {
        return error::ok;
      }
      const page_id child = page.leftmost();
      free_page(root);
      root = child;
    }
    return error::corrupted;
  }

  // Builds index levels over `children` until one page remains; that page is the root.
  [[nodiscard]] error grow_root(page_id& root, std::vector<child_ref> children, bool leaf) {
    for (std::size_t depth = 0; depth < descent_depth_max; ++depth) {
      if (children.empty()) {
        root = page_id::none();
        return error::ok;
      }
      page_id id;
      if (const error e = new_page_id(id); e != error::ok) {
        return e;
      }
      children[0].key.clear();
      std::vector<child_ref> level;
      if (const error e = pack_index(children, leaf, id, level); e != error::ok) {
        return e;
      }
      if (level.size() == 1) {
        root = level[0].id;
        return error::ok;
      }
      children = std::move(level);
      leaf = false;
    }
    return error::corrupted;
  }

  // ---- range delete --------------------------------------------------------------------

  [[nodiscard]] error range_child(const child_ref& c, std::string_view hi, bool leaf,
                                  std::string_view begin, std::string_view end, std::size_t depth,
                                  std::vector<child_ref>& rep) {
    const bool below = !hi.empty() && !begin.empty() && compare(hi, begin) <= 0;    // ends before
    const bool above = !end.empty() && !c.key.empty() && compare(c.key, end) >= 0;  // after
    if (below || above) {
      rep = {c};
      return error::ok;
    }
    const bool inside = (begin.empty() || (!c.key.empty() && compare(c.key, begin) >= 0)) &&
                        (end.empty() || (!hi.empty() && compare(hi, end) <= 0));
    if (inside) {
      rep.clear();
      return free_subtree(c.id, leaf, depth);
    }
    if (leaf) {
      return trim_leaf(c.id, c.key, hi, begin, end, rep);
    }
    return rewrite_index(c.id, c.key, hi, depth + 1, rep,
                         [&](const child_ref& cc, std::string_view chi, bool cleaf, std::size_t d,
                             std::vector<child_ref>& crep) {
                           return range_child(cc, chi, cleaf, begin, end, d, crep);
                         });
  }

  // Removes the records of one data page (its range [lo, hi)) that fall in [begin, end).
  [[nodiscard]] error trim_leaf(page_id id, std::string_view lo, std::string_view hi,
                                std::string_view begin, std::string_view end,
                                std::vector<child_ref>& out) {
    leaf_contents leaf;
    if (const error e = load_leaf(id, lo, hi, leaf); e != error::ok) {
      return e;
    }
    std::vector<record> kept;
    for (const record& r : leaf.records) {
      const bool in_range =
          (begin.empty() || compare(r.key, begin) >= 0) && (end.empty() || compare(r.key, end) < 0);
      if (!in_range) {
        kept.push_back(r);
      } else if (const error e = drop(r); e != error::ok) {
        return e;
      }
    }
    if (kept.size() == leaf.records.size()) {
      out = {child_ref{{}, id}};
      return error::ok;
    }
    return build_leaves(kept, {}, id, leaf.prev, leaf.next, out);
  }

  // Frees a whole subtree: every page, every overflow chain, and the TTL entries of its
  // records. Data pages are unlinked from their neighbours one by one.
  [[nodiscard]] error free_subtree(page_id id, bool leaf, std::size_t depth) {
    if (depth >= descent_depth_max) {
      return error::corrupted;
    }
    if (leaf) {
      leaf_contents contents;
      if (const error e = load_leaf(id, {}, {}, contents); e != error::ok) {
        return e;
      }
      for (const record& r : contents.records) {
        if (const error e = drop(r); e != error::ok) {
          return e;
        }
      }
      free_page(id);
      return unlink(contents.prev, contents.next);
    }
    index_hold held;
    index_page page;
    if (const error e = load_index(id, held, page); e != error::ok) {
      return e;
    }
    std::vector<page_id> children;
    const bool child_leaf = page.is_leaf_index();
    index_page_iter it(page);
    for (it.seek_to_first(); it.valid(); it.next()) {
      children.push_back(it.child());
    }
    for (const page_id c : children) {
      if (const error e = free_subtree(c, child_leaf, depth + 1); e != error::ok) {
        return e;
      }
    }
    free_page(id);
    return error::ok;
  }

  // ---- commit --------------------------------------------------------------------------

  // Gives dirty page `raw_id` its new file page: the old one is retired, the mapping and the
  // manifest log point at the new one, its file is noted for the sync, and the checksum is
  // set. Returns the page's file.
  file_id place(std::uint32_t raw_id, page_buffer& bytes, file_page_id& fp) {
    const unsigned shift = pages_.pages_per_file_shift();
    const page_id id(raw_id);
    const file_page_id old = mapping_.file_page(id);
    if (!old.is_none()) {
      freed_fps_.push_back(old.value());
    }
    fp = p_.fps.allocate();
    allocated_.push_back(fp.value());
    pages_.invalidate(p_, fp);
    mapping_.set(id, encode_file_page(fp));
    log_.update_mapping(id, fp);
    const file_id f = file_of(fp, shift);
    if (files_.insert(f.value()).second && !has_term(f)) {
      add_term(f);
      new_file_ = true;
    }
    set_page_checksum(bytes.span());
    if (const page_type t = read_page_type(bytes.span());
        t == page_type::leaf_index || t == page_type::non_leaf_index) {
      written_index_.emplace_back(fp.value(), raw_id);
    }
    ++stats_.pages_written;
    return f;
  }

  // Places and writes the pages `ids` (all dirty), started asynchronously when the backend
  // can (the caller goes on building), else written before returning.
  [[nodiscard]] error write_placed(std::span<const std::uint32_t> ids, bool async) {
    const unsigned shift = pages_.pages_per_file_shift();
    std::vector<std::pair<std::uint64_t, std::string>> names;  // file id, name (batched_io)
    std::vector<page_write> batch;
    std::vector<std::size_t> batch_files;  // index into names of each batch entry
    for (const std::uint32_t raw_id : ids) {
      page_buffer& bytes = dirty_.find(raw_id)->second;
      file_page_id fp;
      const file_id f = place(raw_id, bytes, fp);
      if constexpr (batched_io<IO>) {
        // Collected and written together below (the backend overlaps and coalesces them).
        if (names.empty() || names.back().first != f.value()) {
          names.emplace_back(f.value(), pages_.file_name(terms_, f));
        }
        batch.push_back(page_write{{}, file_offset_bytes(fp, shift, cfg_.page_size), bytes});
        batch_files.push_back(names.size() - 1);
      } else {
        const error e = pages_.io().write(p_.id, pages_.file_name(terms_, f),
                                          file_offset_bytes(fp, shift, cfg_.page_size), bytes);
        if (e != error::ok) {
          return e;
        }
      }
    }
    if constexpr (batched_io<IO>) {
      for (std::size_t i = 0; i < batch.size(); ++i) {
        batch[i].name = names[batch_files[i]].second;  // names no longer grows: stable
      }
      if constexpr (async_page_writes<IO>) {
        if (async) {
          typename IO::write_ticket ticket;
          if (const error e = pages_.io().begin_write_pages(p_.id, batch, ticket); e != error::ok) {
            return e;
          }
          tickets_.push_back(std::move(ticket));
          return error::ok;
        }
      }
      return pages_.io().write_pages(p_.id, batch);
    }
    (void)async;
    return error::ok;
  }

  // Marks a final dirty page for writing ahead of the commit; every stream_pages_max pages
  // are placed and their write started. A page changed after this is detached and written
  // again at commit (detach_streamed).
  [[nodiscard]] error stream(page_id id) {
    // Every backend streams (the synchronous ones write at once), so one write path, with its
    // failures and crashes in the middle of a build, is what every backend's tests exercise.
    streamed_.insert(id.value());
    ready_.push_back(id.value());
    if (ready_.size() < stream_pages_max) {
      return error::ok;
    }
    error e = write_placed(ready_, true);
    ready_.clear();
    if constexpr (async_page_writes<IO>) {
      // Backpressure: at most tickets_max batches in flight (bounded device queue, bounded
      // iovec and bounce memory); the oldest is likely done by now.
      while (e == error::ok && tickets_.size() > tickets_max) {
        e = pages_.io().finish_write_pages(tickets_.front());
        tickets_.pop_front();
      }
    }
    if (e != error::ok) {
      stream_error_ = e;
    }
    return e;
  }

  // Waits for the writes stream() started; the first error.
  [[nodiscard]] error finish_streams() {
    error first = error::ok;
    if constexpr (async_page_writes<IO>) {
      for (auto& t : tickets_) {
        if (const error e = pages_.io().finish_write_pages(t);
            e != error::ok && first == error::ok) {
          first = e;
        }
      }
      tickets_.clear();
    }
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
      if (const error e = pages_.io().sync(p_.id, pages_.file_name(terms_, file_id(f)));
          e != error::ok) {
        return e;
      }
    }
    return new_file_ ? pages_.io().sync_dir(p_.id) : error::ok;
  }

  [[nodiscard]] bool has_term(file_id f) const {
    return std::any_of(terms_.begin(), terms_.end(),
                       [&](const auto& t) { return t.first == f.value(); });
  }
  void add_term(file_id f) {
    terms_.emplace_back(f.value(), cfg_.term);
    std::sort(terms_.begin(), terms_.end());
  }

  [[nodiscard]] error write_manifest() {
    const std::string name = manifest_file_name(cfg_.term);
    if (!has_term(manifest_file_id)) {
      add_term(manifest_file_id);
    }
    const bool empty = root_.is_none() && ttl_root_.is_none();
    std::string_view log;
    if (p_.has_manifest && !p_.force_snapshot && !empty && !truncated_all_) {
      log = log_.finish_log(root_, ttl_root_, terms_);
    }
    if (!log.empty() && p_.manifest_bytes + log.size() <= cfg_.manifest_limit) {
      return append_manifest(name, log);
    }
    std::vector<std::uint64_t> values;
    values.reserve(mapping_.size());
    mapping_.for_each([&](std::uint64_t v) { values.push_back(v); });
    manifest_builder snap;
    const std::string_view bytes =
        snap.snapshot(root_, ttl_root_, values, p_.fps.max_fp(), p_.dictionary, terms_);
    if (const error e = pages_.io().write_file_atomic(p_.id, name, bytes); e != error::ok) {
      manifest_unknown_ = true;  // the rename may have happened before the failure
      return e;
    }
    stats_.manifest_snapshot = true;
    new_manifest_bytes_ = bytes.size();
    new_manifest_file_bytes_ = bytes.size();
    return error::ok;
  }

  // A new partition gets a manifest (an empty snapshot) before its first data file, so data
  // files without a manifest are damage the store reports (error::corrupted), never a first
  // write cut short by a crash. Either outcome of a failure here is the empty partition.
  [[nodiscard]] error ensure_manifest() {
    if (p_.has_manifest) {
      return error::ok;
    }
    if (!has_term(manifest_file_id)) {
      add_term(manifest_file_id);
    }
    manifest_builder snap;
    const std::vector<std::uint64_t> no_pages;
    const std::string_view bytes = snap.snapshot(page_id::none(), page_id::none(), no_pages,
                                                 p_.fps.max_fp(), p_.dictionary, terms_);
    if (const error e = pages_.io().write_file_atomic(p_.id, manifest_file_name(cfg_.term), bytes);
        e != error::ok) {
      return e;
    }
    p_.has_manifest = true;
    p_.manifest_bytes = bytes.size();
    p_.manifest_file_bytes = bytes.size();
    p_.terms = terms_;
    return error::ok;
  }

  // Appends a log record at the end of the manifest's records (spec 4.5).
  //
  // An append past the file's end first extends the file with blocks ahead of it (end
  // markers, see record.hpp): as many bytes as the records hold, at most
  // manifest_write_ahead, never past the manifest limit. The appends after it overwrite those
  // in place, so their fdatasync has no file size or extent to record, only the data: on
  // ext4 one metadata write (or journal commit) fewer per commit. Replay stops at the first
  // marker and appends where the records end.
  //
  // Failure leaves nothing replayable: the markers are written before the record (a full
  // disk fails there, with only markers written), the record then overwrites blocks the
  // file already has, and a record whose write or sync fails is overwritten with markers.
  // manifest_unknown_ tells commit() when even that failed, so the record may survive.
  [[nodiscard]] error append_manifest(const std::string& name, std::string_view log) {
    const std::uint64_t end = p_.manifest_bytes + log.size();
    std::uint64_t file_bytes = std::max(p_.manifest_file_bytes, end);
    if (end > p_.manifest_file_bytes) {
      const std::uint64_t ahead = std::min(end, manifest_write_ahead);
      const std::uint64_t limit =
          cfg_.manifest_limit / manifest_alignment_bytes * manifest_alignment_bytes;
      file_bytes = std::max<std::uint64_t>(
          end, std::min<std::uint64_t>(manifest_padded_bytes(end + ahead), limit));
      fill_manifest_end_markers(manifest_out_, file_bytes - p_.manifest_file_bytes,
                                p_.manifest_file_bytes, file_bytes);
      if (const error e = pages_.io().write(p_.id, name, p_.manifest_file_bytes, manifest_out_);
          e != error::ok) {
        return e;  // markers only: replay stops at them
      }
    }
    error e = pages_.io().write(p_.id, name, p_.manifest_bytes, log);
    if (e == error::ok) {
      e = pages_.io().sync(p_.id, name);
    }
    if (e != error::ok) {
      fill_manifest_end_markers(manifest_out_, log.size(), p_.manifest_bytes, file_bytes);
      manifest_unknown_ =
          pages_.io().write(p_.id, name, p_.manifest_bytes, manifest_out_) != error::ok ||
          pages_.io().sync(p_.id, name) != error::ok;
      return e;
    }
    new_manifest_bytes_ = end;
    new_manifest_file_bytes_ = file_bytes;
    return error::ok;
  }

  // After the manifest record is durable the partition must take the new version: nothing
  // here may fail (commit() allocated `next` and the retired slot before the record was
  // written), and what needs memory besides is skipped when there is none: reclaiming old
  // versions (the next commit does it) and warming the index cache.
  void publish(std::shared_ptr<partition_version> next) noexcept {
    next->root = root_;
    next->ttl_root = ttl_root_;
    next->mapping = std::move(mapping_);
    p_.current->retired_fps = std::move(freed_fps_);
    p_.retired.back() = std::move(p_.current);
    p_.current = std::move(next);
    p_.terms = std::move(terms_);
    p_.manifest_bytes = new_manifest_bytes_;
    p_.manifest_file_bytes = new_manifest_file_bytes_;
    p_.has_manifest = true;
    p_.force_snapshot = false;
    if (truncated_all_ && root_.is_none()) {
      p_.next_expire_ts = 0;
    } else if (purged_) {
      p_.next_expire_ts = purge_next_;
    }
    if (min_expire_ != 0 && (p_.next_expire_ts == 0 || min_expire_ < p_.next_expire_ts)) {
      p_.next_expire_ts = min_expire_;
    }
    try {
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
  const Cmp& cmp_;
  bytewise_comparator ttl_cmp_;
  writer_config cfg_;
  std::uint64_t now_ms_;
  mapping_table mapping_;
  page_id root_;
  page_id ttl_root_;
  // Pages this writer built or changed, page-aligned so direct I/O writes them in place.
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
  std::deque<typename write_ticket_of<IO>::type> tickets_;
  error stream_error_ = error::ok;  // a streamed write failed: commit() must not succeed
  std::vector<page_buffer> kept_;
  std::vector<std::uint64_t> allocated_;  // file pages taken by this writer, until committed
  std::set<std::uint64_t> files_;         // data files written
  bool new_file_ = false;                 // a file new to the term mapping
  // patch_leaf's plan of one restart region: its entries, the changes that fall in it, and
  // for the first region of a rewritten run, the run's last region and its merged records.
  struct region_plan {
    std::size_t entries = 0;
    std::size_t changes_begin = 0;
    std::size_t changes_end = 0;
    std::size_t merged_begin = 0;
    std::size_t merged_end = 0;
    std::size_t run_last = 0;
    bool rewrite = false;
  };
  // At most this many changes to one page are applied by patch_leaf; more rebuild it whole.
  static constexpr std::size_t patch_changes_max = 8;
  std::vector<region_plan> region_plans_;
  std::vector<record> patch_merged_;
  std::vector<record> patch_existing_;
  std::unordered_map<std::uint32_t, page_buffer> prefetched_;  // data pages read ahead
  static constexpr std::size_t prefetch_leaves_max = 512;
  std::vector<std::uint64_t> freed_fps_;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> written_index_;  // file page, page id
  manifest_builder log_;
  term_mapping terms_;
  std::vector<write_entry> ttl_changes_;
  string_arena held_;
  data_page_builder data_builder_;
  index_page_builder index_builder_;
  std::vector<char> scratch_;
  writer_stats stats_;
  std::uint64_t min_expire_ = 0;
  std::uint64_t new_manifest_bytes_ = 0;
  std::uint64_t new_manifest_file_bytes_ = 0;
  // Most zero bytes an append past the manifest file's end writes ahead (write_manifest).
  static constexpr std::uint64_t manifest_write_ahead = 256 << 10;

  std::string manifest_out_;
  // A manifest write failed in a way that may have left its record on disk (commit()).
  bool manifest_unknown_ = false;
  std::uint64_t purge_next_ = 0;
  bool ttl_mode_ = false;
  bool truncated_all_ = false;
  bool purged_ = false;
  bool corrupt_ = false;
};

}  // namespace eloqstore::detail
