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
// index_levels_max (limits.hpp) and checked.
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
#include <eloqstore/detail/page/page_check.hpp>
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
    if (cfg_.compress) {
      sample_for_dictionary(batch);
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
  [[nodiscard]] error clean_expired();

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
  // Hands a finished page to the next version. Its structure is asserted first as the
  // verify request checks it after a read (page/page_check.hpp): paired checks.
  void emit(page_id id, std::span<const char> page) {
    assert(check_page(page, [&](std::string_view a,
                                std::string_view b) { return compare(a, b); }) == error::ok &&
           "the tree writer built a page that does not decode");
    next_.set_dirty(id, page);
  }
  [[nodiscard]] std::string separator(std::string_view a, std::string_view b) const {
    return ttl_mode_ ? ttl_cmp_.shortest_separator(a, b) : cmp_.shortest_separator(a, b);
  }

  // ---- page bookkeeping --------------------------------------------------------------------

  // Reads the data pages a batch will rewrite all at once (the backend overlaps them), so
  // the rewrite that follows finds them in memory instead of reading them one by one.
  [[nodiscard]] error prefetch_leaves(page_id root, std::span<const write_entry> batch);

  // The data pages under index page `id` (covering [lo, hi)) whose ranges hold batch keys.
  [[nodiscard]] error collect_leaves(page_id id, std::string_view lo, std::string_view hi,
                                     std::span<const write_entry> batch, std::size_t depth,
                                     std::vector<page_id>& out);

  // An index page the writer is working on: pinned in the shard's index cache (the
  // reference's stack of pinned pages), or this writer's own dirty copy.
  struct index_hold {
    index_pin pin;
    std::vector<char> copy;
  };

  // Loads an index page into `hold` and opens it. error::out_of_mem if the page is not cached
  // and every frame of the index cache is pinned.
  [[nodiscard]] error load_index(page_id id, index_hold& hold, index_page& page);

  // Loads index page `id` (its range [lo, hi)) into `held` and lists its children, each
  // with the lower bound of its range (lo for the leftmost); `leaf` tells whether they are
  // data pages. Separators must ascend strictly inside (lo, hi): a page reused for another
  // part of the tree (a manifest cut back to an older version) is corruption, not a place to
  // write.
  [[nodiscard]] error load_children(page_id id, std::string_view lo, std::string_view hi,
                                    std::size_t depth, index_hold& held, bool& leaf,
                                    std::vector<child_ref>& children);

  // Removes a data page from the sibling list.
  [[nodiscard]] error unlink(page_id prev, page_id next);

  // The ids of every page of an overflow chain (reads only the groups' last pages).
  [[nodiscard]] error free_overflow(std::string_view head);

  void ttl_change(std::string_view key, std::uint64_t expire_ts, write_op op);

  [[nodiscard]] error apply_ttl_changes();

  // ---- batch apply ---------------------------------------------------------------------

  [[nodiscard]] error apply_tree(page_id& root, std::span<const write_entry> batch);

  // The slice of `batch` whose keys fall in [lo, hi) (lo empty = -inf, hi empty = +inf).
  [[nodiscard]] std::span<const write_entry> slice(std::span<const write_entry> batch,
                                                   std::string_view lo, std::string_view hi) const;

  // Visitor for apply: rewrites a child whose range holds batch keys. Returns true if the
  // child was replaced (rep holds the replacement, possibly empty).
  [[nodiscard]] error batch_child(const child_ref& c, std::string_view hi, bool leaf,
                                  std::span<const write_entry> batch, std::size_t depth,
                                  std::vector<child_ref>& rep);

  // Rewrites index page `id` covering [lo, hi): `visit` maps each child to its replacement.
  // `out` receives this node's replacement: {id} unchanged, several pages after a split, or
  // nothing if every child is gone.
  template <typename Visit>
  [[nodiscard]] error rewrite_index(page_id id, std::string_view lo, std::string_view hi,
                                    std::size_t depth, std::vector<child_ref>& out, Visit&& visit);

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
                                leaf_contents& leaf, data_page& page);

  [[nodiscard]] error load_leaf(page_id id, std::string_view lo, std::string_view hi,
                                leaf_contents& leaf);

  // Merges a data page with its changes and rebuilds it (possibly as several pages). A few
  // changes to a page are applied region by region (patch_leaf).
  [[nodiscard]] error apply_leaf(page_id id, std::string_view lo, std::string_view hi,
                                 std::span<const write_entry> changes, std::vector<child_ref>& out);

  // Applies changes to a data page by restart regions (data_page.hpp): a region with no
  // change and no expired record is copied as it is; runs of the other regions are decoded,
  // merged and encoded again. A short region right after a rewritten one joins its run, so
  // the regions that patches leave short are merged back by later ones. When the result is
  // not one page (it overflows, or nothing is left), the pages are built from the same
  // merged records, as build_leaves would. Either way the records stored, and their order,
  // are those of a whole rebuild; the restart regions (and so how full a page is) can differ.
  [[nodiscard]] error patch_leaf(page_id id, std::string_view lo, std::string_view hi,
                                 std::span<const write_entry> changes, std::vector<child_ref>& out);

  // patch_leaf's steps: which regions are rewritten and which changes fall in each
  // (region_plans_); the rewritten runs merged with their changes (patch_merged_); the page
  // encoded from copied regions and merged runs into data_builder_ (false if it does not
  // fit or is empty).
  [[nodiscard]] error plan_regions(const data_page& page, data_page_iter& it,
                                   std::span<const write_entry> changes);
  [[nodiscard]] error merge_rewritten(const data_page& page, data_page_iter& it,
                                      std::span<const write_entry> changes);
  [[nodiscard]] bool encode_patched(const data_page& page, const leaf_contents& leaf);

  // Appends the records of restart regions [first, last] of the iterator's page.
  [[nodiscard]] error decode_regions(data_page_iter& it, std::size_t first, std::size_t last,
                                     std::vector<record>& out);

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
                                   page_id next, std::vector<child_ref>& out);

  // Writes merged records (expired ones already dropped) as data pages linked between prev
  // and next; the first page reuses `id` when there is one.
  [[nodiscard]] error build_merged(const std::vector<record>& merged, page_id id, page_id prev,
                                   page_id next, std::vector<child_ref>& out);

  // build_merged's steps. A run of new leaves: the first record of each page, the page ids,
  // and the encoded size of the page before the last.
  struct leaf_run {
    std::vector<std::size_t> starts;
    std::vector<page_id> ids;
    std::size_t full_bytes = 0;
  };
  // Fills pages greedily (every page but the last set dirty; the last left in
  // data_builder_); then, when the last is under 1/4 full and the one before over 3/4, moves
  // the boundary between them to about half each.
  [[nodiscard]] error fill_leaves(const std::vector<record>& merged, page_id prev, leaf_run& run);
  void rebalance_last_two(const std::vector<record>& merged, page_id prev, leaf_run& run);

  // Two-way merge with last-writer-wins (>=), expiry dropping and overflow handling.
  [[nodiscard]] error merge(const std::vector<record>& existing,
                            std::span<const write_entry> changes, std::vector<record>& out);

  static int order(std::weak_ordering o) noexcept { return o < 0 ? -1 : (o > 0 ? 1 : 0); }

  [[nodiscard]] error keep_existing(const record& r, std::vector<record>& out);

  [[nodiscard]] error drop(const record& r);

  [[nodiscard]] error add_new(const write_entry& w, std::vector<record>& out);

  // Compression (codec/compression.hpp): while the partition has no dictionary, samples the
  // batch's values, and trains one once enough are held; the batch's values are then the
  // first compressed with it, and the commit stores it in a manifest snapshot.
  void sample_for_dictionary(std::span<const write_entry> batch);
  // The value `w` is stored as: compressed into held_ when enabled and smaller, else w.value.
  [[nodiscard]] std::string_view stored_value(const write_entry& w, compression_kind& kind);

  // Greedy page filling plus the 1/4-3/4 rebalance of the last two pages. Returns the start
  // index of each page plus a final n; empty if an item does not fit an empty page (which the
  // callers' inputs rule out, so it is reported as corruption).
  template <typename Reset, typename Add, typename Size>
  [[nodiscard]] std::vector<std::size_t> split_points(std::size_t n, Reset&& reset, Add&& add,
                                                      Size&& size);

  // The rebalanced start of the last of two pages (the first begins at `first`, the second
  // at `current`, both end at n): the boundary moves back until the first page holds about
  // `half` bytes. The move is kept only if the second page, rebuilt from the new boundary,
  // still fits (prefix compression and restart points change the encoded sizes); otherwise
  // `current` is returned. Leaves the builder behind reset/add/size in an unspecified state.
  template <typename Reset, typename Add, typename Size>
  [[nodiscard]] static std::size_t rebalanced_start(std::size_t first, std::size_t current,
                                                    std::size_t n, std::size_t half, Reset&& reset,
                                                    Add&& add, Size&& size);

  // Packs children into index pages; the first page reuses `id`. Each output page's key is
  // the key of its first child.
  [[nodiscard]] error pack_index(const std::vector<child_ref>& children, bool leaf, page_id id,
                                 std::vector<child_ref>& out);

  // Makes `result` (the replacement of the old root) the new root: nothing -> empty tree,
  // several pages -> a new level above, one page -> collapse while it is an index page with a
  // single index child.
  [[nodiscard]] error settle_root(page_id& root, std::vector<child_ref> result);

  // Builds index levels over `children` until one page remains; that page is the root.
  [[nodiscard]] error grow_root(page_id& root, std::vector<child_ref> children, bool leaf);

  // ---- range delete --------------------------------------------------------------------

  [[nodiscard]] error range_child(const child_ref& c, std::string_view hi, bool leaf,
                                  std::string_view begin, std::string_view end, std::size_t depth,
                                  std::vector<child_ref>& rep);

  // Removes the records of one data page (its range [lo, hi)) that fall in [begin, end).
  [[nodiscard]] error trim_leaf(page_id id, std::string_view lo, std::string_view hi,
                                std::string_view begin, std::string_view end,
                                std::vector<child_ref>& out);

  // Frees a whole subtree: every page, every overflow chain, and the TTL entries of its
  // records. Data pages are unlinked from their neighbours one by one.
  [[nodiscard]] error free_subtree(page_id id, bool leaf, std::size_t depth);

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
  std::string compressed_;  // stored_value's output before it is kept
  std::uint64_t min_expire_ = 0;
  std::uint64_t purge_next_ = 0;
  // Index levels of the tree being rewritten, measured by its descent (load_children).
  std::size_t index_levels_ = 0;
  bool ttl_mode_ = false;
  bool purged_ = false;
};

}  // namespace eloqstore::detail

// The definitions of the tree writer's parts.
#include <eloqstore/detail/btree/descent.hpp>       // IWYU pragma: export
#include <eloqstore/detail/btree/leaf_build.hpp>    // IWYU pragma: export
#include <eloqstore/detail/btree/range_delete.hpp>  // IWYU pragma: export
#include <eloqstore/detail/btree/ttl.hpp>           // IWYU pragma: export
