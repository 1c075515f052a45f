// Copy-on-write modification of one partition's trees: batch apply, range delete, truncate,
// expiry purge. The pages of the next version are held by a version_builder
// (commit/version_builder.hpp), whose commit makes them durable and visible.
//
// A tree_writer starts from the partition's published version and rewrites the pages a change
// reaches into the builder. Pages keep their logical id when rewritten, so a parent is
// rewritten only when its own child list changes. Nothing is visible to readers until
// commit(); any error before that leaves the published state as it was.
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
#include <eloqstore/detail/commit/page_io.hpp>
#include <eloqstore/detail/commit/version_builder.hpp>
#include <eloqstore/detail/manifest/record.hpp>
#include <eloqstore/detail/page/data_page.hpp>
#include <eloqstore/detail/page/index_page.hpp>
#include <eloqstore/detail/page/overflow_page.hpp>
#include <eloqstore/detail/util/page_buffer.hpp>
#include <eloqstore/detail/util/string_arena.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/types.hpp>

namespace eloqstore::detail {

// Internal write operation: remove the record only if it has expired (used by expiry purge,
// so a newer write that landed in between is never removed).
inline constexpr auto write_op_purge = static_cast<write_op>(2);

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
        next_(pages, partition, cfg),
        root_(partition.current->root),
        ttl_root_(partition.current->ttl_root),
        data_builder_(cfg.page_size, cfg.data_restart_interval),
        index_builder_(cfg.page_size, cfg.index_restart_interval),
        scratch_(cfg.page_size) {}
  tree_writer(const tree_writer&) = delete;
  tree_writer& operator=(const tree_writer&) = delete;

  [[nodiscard]] const writer_stats& stats() const noexcept { return next_.stats(); }
  [[nodiscard]] std::uint64_t next_expire_ts() const noexcept { return min_expire_; }

  // Applies a batch. REQUIRES: keys sorted ascending by the comparator and non-empty; equal
  // keys (a group of requests) are applied one after another in batch order.
  [[nodiscard]] error apply(std::span<const write_entry> batch) {
    ttl_mode_ = false;
    if (const error e = next_.ensure_manifest(); e != error::ok) {
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
    next_.free_all();
    root_ = page_id::none();
    ttl_root_ = page_id::none();
  }

  // Removes the records whose expiry has passed, found through the TTL tree.
  [[nodiscard]] error clean_expired() {
    if (ttl_root_.is_none()) {
      return error::ok;
    }
    auto version = std::make_shared<partition_version>();
    version->root = ttl_root_;
    version->mapping = next_.mapping();
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

  // Commits the next version (version_builder::commit) and keeps the partition's next
  // expiry check up to date.
  [[nodiscard]] error commit() {
    bool published = false;
    if (const error e = next_.commit(root_, ttl_root_, published); e != error::ok) {
      return e;
    }
    if (!published) {
      if (purged_) {
        p_.next_expire_ts = purge_next_;  // nothing had expired: remember the next expiry
      }
      return error::ok;
    }
    if (next_.truncated_all() && root_.is_none()) {
      p_.next_expire_ts = 0;
    } else if (purged_) {
      p_.next_expire_ts = purge_next_;
    }
    if (min_expire_ != 0 && (p_.next_expire_ts == 0 || min_expire_ < p_.next_expire_ts)) {
      p_.next_expire_ts = min_expire_;
    }
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

  // Reads the data pages a batch will rewrite all at once (the backend overlaps them), so
  // the rewrite that follows finds them in memory instead of reading them one by one.
  [[nodiscard]] error prefetch_leaves(page_id root, std::span<const write_entry> batch) {
    std::vector<page_id> leaves;
    if (const error e = collect_leaves(root, {}, {}, batch, 0, leaves); e != error::ok) {
      return e;
    }
    return next_.prefetch(std::move(leaves));
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
    if (const page_buffer* own = next_.dirty_bytes(id); own != nullptr) {
      hold.pin.reset();
      const std::span<const char> dirty = own->span();
      hold.copy.assign(dirty.begin(), dirty.end());
      bytes = hold.copy;
    } else {
      hold.pin.reset();  // a reused hold gives its frame back before taking another
      if (const error e = pages_.index(p_, next_.mapping(), id, hold.pin); e != error::ok) {
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

  // Removes a data page from the sibling list.
  [[nodiscard]] error unlink(page_id prev, page_id next) {
    if (!prev.is_none()) {
      if (const error e = next_.set_link(prev, data_page_next_offset, next); e != error::ok) {
        return e;
      }
    }
    if (!next.is_none()) {
      return next_.set_link(next, data_page_prev_offset, prev);
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
    for (std::size_t guard = 0; count > 0 && guard <= next_.mapping().size(); ++guard) {
      const page_id last = ids[count - 1];
      if (const error e = next_.load(last, bytes); e != error::ok) {
        return e;
      }
      overflow_page page;
      if (overflow_page::open(bytes, page) != error::ok) {
        return error::corrupted;
      }
      for (std::size_t i = 0; i < count; ++i) {
        next_.free_page(ids[i]);
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
      next_.free_page(id);
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
    if (const error e = next_.load(id, leaf.bytes); e != error::ok) {
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
      next_.set_dirty(id, data_builder_.finish(leaf.prev, leaf.next));
      pages_.yield_point();
      if (leaf.next.is_none()) {
        if (const error e = next_.stream(id); e != error::ok) {
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
        next_.free_page(id);
        return unlink(prev, next);
      }
      return error::ok;
    }
    // One pass: records fill a page until one does not fit; the next page's id is taken then
    // (the finished page links to it) and the page before the finished one is final.
    std::vector<std::size_t> starts{0};
    std::vector<page_id> ids{id};
    if (id.is_none()) {
      if (const error e = next_.new_page_id(ids[0]); e != error::ok) {
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
      if (const error e = next_.new_page_id(following); e != error::ok) {
        return e;
      }
      full_bytes = data_builder_.current_size_bytes();
      const std::size_t k = ids.size();
      next_.set_dirty(ids[k - 1], data_builder_.finish(k >= 2 ? ids[k - 2] : prev, following));
      if (k >= 2) {
        if (const error e = next_.stream(ids[k - 2]); e != error::ok) {
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
        next_.set_dirty(ids[k - 2], data_builder_.finish(k >= 3 ? ids[k - 3] : prev, ids[k - 1]));
      }
      data_builder_.reset();
      for (std::size_t i = starts[k - 1]; i < merged.size(); ++i) {
        (void)add(i);
      }
    }
    next_.set_dirty(ids[k - 1], data_builder_.finish(before_last, next));
    pages_.yield_point();
    // The page before the last is final now; the last too if nothing follows it (a later
    // unlink of its right neighbour would change it).
    if (k >= 2) {
      if (const error e = next_.stream(ids[k - 2]); e != error::ok) {
        return e;
      }
    }
    if (next.is_none()) {
      if (const error e = next_.stream(ids[k - 1]); e != error::ok) {
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
        if (const error e = next_.set_link(next, data_page_prev_offset, ids.back());
            e != error::ok) {
          return e;
        }
      }
      if (id.is_none() && !prev.is_none()) {
        return next_.set_link(prev, data_page_next_offset, ids.front());
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
            (void)next_.new_page_id(id);
            return id;
          },
          [&](page_id id, std::span<const char> page) {
            next_.set_dirty(id, page);
            return next_.stream(id);  // overflow pages never change again in this pass
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
        if (const error e = next_.new_page_id(pid); e != error::ok) {
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
      next_.set_dirty(pid, page);
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
      next_.free_page(root);
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
      if (const error e = next_.new_page_id(id); e != error::ok) {
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
      next_.free_page(id);
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
    next_.free_page(id);
    return error::ok;
  }

  // ---- commit --------------------------------------------------------------------------

  page_access<IO>& pages_;
  partition_state& p_;
  const Cmp& cmp_;
  bytewise_comparator ttl_cmp_;
  writer_config cfg_;
  std::uint64_t now_ms_;
  version_builder<IO> next_;
  page_id root_;
  page_id ttl_root_;
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
  std::vector<write_entry> ttl_changes_;
  string_arena held_;
  data_page_builder data_builder_;
  index_page_builder index_builder_;
  std::vector<char> scratch_;
  std::uint64_t min_expire_ = 0;
  std::uint64_t purge_next_ = 0;
  bool ttl_mode_ = false;
  bool purged_ = false;
};

}  // namespace eloqstore::detail
