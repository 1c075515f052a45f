// Read operations over one pinned version of a partition's B+tree: point read, floor, and
// forward and reverse scans with pagination.
//
// Every operation descends from the root through index pages (cached by page_access) to a
// data page, from the data page cache or storage: with cached index pages a point read costs
// at most one page read, plus overflow pages for large values. Expired records (expire_ts != 0 and
// <= now) are never returned. Loops are bounded by `index_levels_max` and by the number of
// pages the version maps, so a corrupt sibling link cannot make a scan spin.
//
// Every page reached is checked against the key range that led to it: an index page's
// separators and a data page's first and last keys must lie within the separator bounds of
// the entry above it, and a leaf reached by a sibling link must hold keys beyond the page it
// was reached from. A page that was reused for another part of the tree (a manifest cut back
// to an older version, whose file pages newer writes overwrote) is reported as corrupted
// instead of returning entries the version never held. Pages carry no id or version in the
// reference's format, so a reused page whose keys happen to fit its old bounds is not caught.
//
// Thread affinity: the shard thread. The reader holds the version it was given (shared_ptr),
// so writers publishing newer versions never disturb it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <eloqstore/comparator.hpp>
#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/btree/limits.hpp>
#include <eloqstore/detail/codec/compression.hpp>
#include <eloqstore/detail/commit/page_io.hpp>
#include <eloqstore/detail/page/data_page.hpp>
#include <eloqstore/detail/page/index_page.hpp>
#include <eloqstore/detail/page/overflow_page.hpp>
#include <eloqstore/detail/util/page_buffer.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/types.hpp>

namespace eloqstore::detail {

// Scan limits and results (the reference's pagination contract: the first entry is always
// returned; stop before an entry when `max_entries` are held, or when bytes are held and the
// entry would pass `max_bytes`; an entry weighs key + value + 16 bytes). 0 = unlimited.
struct scan_limits {
  std::size_t max_entries = 0;
  std::size_t max_bytes = 0;
  std::size_t prefetch = 6;  // data pages read together (forward scans)
};

[[nodiscard]] inline bool is_expired(std::uint64_t expire_ts, std::uint64_t now_ms) noexcept {
  return expire_ts != 0 && expire_ts <= now_ms;
}

template <io_backend IO, key_comparator Cmp>
class tree_reader {
 public:
  tree_reader(page_access<IO>& pages, const partition_state& partition,
              std::shared_ptr<const partition_version> version, const Cmp& cmp,
              std::uint64_t now_ms)
      : pages_(pages),
        partition_(partition),
        version_(std::move(version)),
        cmp_(cmp),
        now_ms_(now_ms) {}
  tree_reader(const tree_reader&) = delete;
  tree_reader& operator=(const tree_reader&) = delete;
  ~tree_reader() { pages_.recycle(std::move(buf_)); }

  // error::not_found if the key is absent or expired.
  [[nodiscard]] error get(std::string_view key, kv_entry& out) {
    page_id leaf;
    if (const error e = find_leaf(version_->root, key, false, leaf); e != error::ok) {
      return e;
    }
    data_page page;
    if (const error e = load_data(leaf, page); e != error::ok) {
      return e;
    }
    if (const error e = check_bounds(page, lo_, hi_); e != error::ok) {
      return e;
    }
    data_page_iter it(page);
    it.seek(key, cmp_);
    if (it.status() != error::ok) {
      return it.status();
    }
    if (!it.valid() || cmp_.compare(it.key(), key) != 0 || is_expired(it.expire_ts(), now_ms_)) {
      return error::not_found;
    }
    return fill(it, out);
  }

  // The largest live key <= key; error::not_found if there is none.
  [[nodiscard]] error floor(std::string_view key, kv_entry& out) {
    page_id leaf;
    if (const error e = find_leaf(version_->root, key, false, leaf); e != error::ok) {
      return e;
    }
    for (std::size_t hops = 0; hops <= version_->mapping.size(); ++hops) {
      data_page page;
      if (const error e = load_data(leaf, page); e != error::ok) {
        return e;
      }
      // The first leaf lies within its separators; each one before it, below the keys of the
      // leaf it was reached from.
      if (const error e = hops == 0 ? check_bounds(page, lo_, hi_) : check_bounds(page, {}, lo_);
          e != error::ok) {
        return e;
      }
      data_page_iter it(page);
      // Walk the page up to the floor, remembering the position of the last live entry; its
      // value (maybe an overflow chain) is resolved once, at the end.
      std::size_t live = 0;
      std::size_t n = 0;
      for (it.seek_to_first(); it.valid() && cmp_.compare(it.key(), key) <= 0; it.next()) {
        ++n;
        live = is_expired(it.expire_ts(), now_ms_) ? live : n;
      }
      if (it.status() != error::ok) {
        return it.status();
      }
      if (live != 0) {
        it.seek_to_first();
        for (std::size_t i = 1; i < live; ++i) {
          it.next();
        }
        return fill(it, out);
      }
      if (const error e = first_key(page, lo_); e != error::ok) {
        return e;
      }
      leaf = page.prev();
      if (leaf.is_none()) {
        return error::not_found;
      }
    }
    return error::corrupted;  // the sibling chain loops
  }

  // Appends the live records in [begin, end) (begin exclusive if !begin_inclusive) to `out`
  // in key order, honouring `limits`; `has_more` tells whether records remain. Empty begin is
  // -inf, empty end is +inf.
  [[nodiscard]] error scan(std::string_view begin, std::string_view end, bool begin_inclusive,
                           scan_limits limits, std::vector<kv_entry>& out, bool& has_more) {
    has_more = false;
    if (version_->root.is_none()) {
      return error::ok;
    }
    // Leaves are read `prefetch` at a time: the ids come from the leaf-index page (the leaf
    // holding the position and its right siblings there), and each must match the previous
    // leaf's next link. Past the end of a leaf-index page, the next run starts from a new
    // descent with the last key seen.
    // Runs start at two leaves and double up to `prefetch`: a short scan reads little ahead.
    const std::size_t prefetch = std::max<std::size_t>(1, limits.prefetch);
    std::size_t run_max = std::min<std::size_t>(
        limits.max_entries != 0 && limits.max_entries <= 16 ? 1 : 2, prefetch);
    std::vector<page_id> run;
    page_id leaf;
    bool reached_end = false;
    if (const error e =
            find_leaf(version_->root, begin, false, leaf, &run, run_max, end, &reached_end);
        e != error::ok) {
      return e;
    }
    std::vector<page_buffer> bufs;
    std::string last_key;
    std::size_t bytes = 0;
    std::size_t hops = 0;
    while (!run.empty()) {
      while (bufs.size() < run.size()) {
        bufs.emplace_back(pages_.page_size());
      }
      if (const error e =
              pages_.read_many(partition_, version_->mapping, run, bufs, cache_use::scan);
          e != error::ok) {
        return e;
      }
      page_id next = run.front();
      for (std::size_t i = 0; i < run.size(); ++i) {
        if (run[i] != next || ++hops > version_->mapping.size() + 1) {
          return error::corrupted;  // the index and the sibling chain disagree, or loop
        }
        data_page page;
        if (data_page::open(bufs[i].span(), page) != error::ok) {
          return error::corrupted;
        }
        if (const error e = check_bounds(page, run_bounds_[i], run_bounds_[i + 1]);
            e != error::ok) {
          return e;
        }
        bool stop = false;
        if (const error e =
                scan_leaf(page, begin, end, begin_inclusive, limits, out, bytes, has_more, stop);
            e != error::ok || stop) {
          return e;
        }
        data_page_iter last(page);
        last.seek_to_last();
        if (last.valid()) {
          last_key.assign(last.key());
        }
        next = page.next();
        leaf = run[i];
      }
      if (next.is_none() || reached_end) {
        return error::ok;
      }
      run_max = std::min(prefetch, run_max * 2);
      bool done = false;
      if (const error e = next_run(last_key, leaf, next, end, run_max, run, reached_end, done);
          e != error::ok || done) {
        return e;
      }
    }
    return error::ok;
  }

  // The forward scan's part of one leaf: emits its live records in [begin, end) (begin
  // exclusive if !begin_inclusive); `stop` once end is passed or the limits are reached.
  [[nodiscard]] error scan_leaf(const data_page& page, std::string_view begin, std::string_view end,
                                bool begin_inclusive, const scan_limits& limits,
                                std::vector<kv_entry>& out, std::size_t& bytes, bool& has_more,
                                bool& stop) {
    data_page_iter it(page);
    if (begin.empty()) {
      it.seek_to_first();  // -inf
    } else {
      it.seek(begin, cmp_);
    }
    for (; it.valid(); it.next()) {
      if (!end.empty() && cmp_.compare(it.key(), end) >= 0) {
        stop = true;
        return error::ok;
      }
      if ((!begin_inclusive && !begin.empty() && cmp_.compare(it.key(), begin) == 0) ||
          is_expired(it.expire_ts(), now_ms_)) {
        continue;
      }
      if (const error e = emit(it, limits, out, bytes, has_more); e != error::ok || has_more) {
        stop = true;
        return e;
      }
    }
    return it.status();
  }

  // The forward scan's next run after leaf `leaf` (whose next link is `next` and last key
  // `last_key`): the leaves after it from its leaf-index page (at most run_max), or the
  // next leaf alone if it lives under another leaf-index page; `done` if none is left
  // before end.
  [[nodiscard]] error next_run(const std::string& last_key, page_id leaf, page_id next,
                               std::string_view end, std::size_t run_max, std::vector<page_id>& run,
                               bool& reached_end, bool& done) {
    page_id at;
    if (const error e =
            find_leaf(version_->root, last_key, false, at, &run, run_max + 1, end, &reached_end);
        e != error::ok) {
      return e;
    }
    if (run.size() > 1 && run.front() == leaf) {
      run.erase(run.begin());
      run_bounds_.erase(run_bounds_.begin());
    } else if (reached_end && run.size() == 1 && run.front() == leaf) {
      done = true;  // the next leaf starts at or after end
    } else {
      // The next leaf lives under another leaf-index page: all that is known of its range
      // is that it starts above the last key seen (keys are never empty).
      run.assign(1, next);
      run_bounds_.resize(2);
      run_bounds_[0].assign(last_key);
      run_bounds_[1].clear();
    }
    return error::ok;
  }

  // Like scan, but from the last key below `end` down to `begin` (inclusive), so
  // `begin_inclusive` does not apply; continue a page with end = last returned key.
  [[nodiscard]] error scan_reverse(std::string_view begin, std::string_view end, scan_limits limits,
                                   std::vector<kv_entry>& out, bool& has_more) {
    has_more = false;
    if (version_->root.is_none()) {
      return error::ok;
    }
    page_id leaf;
    if (const error e = find_leaf(version_->root, end, end.empty(), leaf); e != error::ok) {
      return e;
    }
    std::size_t bytes = 0;
    std::vector<raw_entry> page_records;
    for (std::size_t hops = 0; hops <= version_->mapping.size() && !leaf.is_none(); ++hops) {
      data_page page;
      if (const error e = load_data(leaf, page, cache_use::scan); e != error::ok) {
        return e;
      }
      if (const error e = hops == 0 ? check_bounds(page, lo_, hi_) : check_bounds(page, {}, lo_);
          e != error::ok) {
        return e;
      }
      if (const error e = collect_below(page, end, page_records); e != error::ok) {
        return e;
      }
      for (auto r = page_records.rbegin(); r != page_records.rend(); ++r) {
        if (!begin.empty() && cmp_.compare(r->key, begin) < 0) {
          return error::ok;
        }
        if (limits.max_entries != 0 && out.size() >= limits.max_entries) {
          has_more = true;
          return error::ok;
        }
        // Values (overflow chains) are assembled only for entries that may be returned.
        kv_entry e{std::move(r->key), {}, r->ts, r->expire_ts};
        if (const error err = resolve_raw(r->value, r->overflow, r->compression, e.value);
            err != error::ok) {
          return err;
        }
        const std::size_t size = e.key.size() + e.value.size() + 16;
        if (limits.max_bytes != 0 && bytes > 0 && bytes + size > limits.max_bytes) {
          has_more = true;
          return error::ok;
        }
        bytes += size;
        out.push_back(std::move(e));
      }
      if (const error e = first_key(page, lo_); e != error::ok) {
        return e;
      }
      leaf = page.prev();
    }
    return leaf.is_none() ? error::ok : error::corrupted;
  }

  // Descends from `root` to the data page whose range holds `key` (the last one if
  // `rightmost`). error::not_found for an empty tree. The leaf's range, [lo_, hi_), is
  // left in those members (empty = unbounded); a separator outside the range of the entry
  // that led to its page is corruption.
  // With `run`, also collects the leaf and up to run_max - 1 of its right siblings in the same
  // leaf-index page (the leaves a forward scan reads next), stopping before a sibling whose
  // range starts at or after `end` (a scan never needs it; empty end = +inf); run_bounds_[i]
  // and run_bounds_[i + 1] are then the range of (*run)[i].
  [[nodiscard]] error find_leaf(page_id root, std::string_view key, bool rightmost, page_id& leaf,
                                std::vector<page_id>* run = nullptr, std::size_t run_max = 1,
                                std::string_view end = {}, bool* reached_end = nullptr) {
    if (root.is_none()) {
      return error::not_found;
    }
    page_id id = root;
    lo_.clear();
    hi_.clear();
    for (std::size_t depth = 0; depth < index_levels_max; ++depth) {
      index_pin pinned;  // held while this page is searched, as the reference does
      if (const error e = pages_.index(partition_, version_->mapping, id, pinned); e != error::ok) {
        return e;
      }
      index_page page;
      if (index_page::open(pinned.bytes(), page) != error::ok) {
        return error::corrupted;
      }
      index_page_iter it(page);
      if (rightmost) {
        it.seek_to_last();
      } else if (key.empty()) {
        it.seek_to_first();  // -inf: the comparator never sees the empty key
      } else if (!it.seek_floor(key, cmp_)) {
        return it.status() != error::ok ? it.status() : error::corrupted;  // or out_of_mem
      }
      if (!it.valid() || (!it.at_leftmost() && !within(it.key()))) {
        return error::corrupted;
      }
      index_page_iter after = it;  // the entry whose separator ends the chosen child's range
      after.next();
      if (after.status() != error::ok || (after.valid() && !within(after.key()))) {
        return error::corrupted;
      }
      if (page.is_leaf_index() && run != nullptr) {
        run->assign(1, it.child());
        run_bounds_.resize(1);
        run_bounds_[0].assign(it.at_leftmost() ? std::string_view(lo_) : it.key());
        for (; after.valid(); after.next()) {
          if (!within(after.key())) {
            return error::corrupted;
          }
          run_bounds_.emplace_back(after.key());  // the previous leaf's end, this one's start
          if (run->size() >= run_max) {
            break;
          }
          if (!end.empty() && cmp_.compare(after.key(), end) >= 0) {
            if (reached_end != nullptr) {
              *reached_end = true;  // the leaves after the run hold no key below end
            }
            break;
          }
          run->push_back(after.child());
        }
        if (after.status() != error::ok) {
          return error::corrupted;
        }
        if (run_bounds_.size() == run->size()) {
          run_bounds_.push_back(hi_);  // the last leaf of the page ends where the page does
        }
        after = it;
        after.next();
      }
      if (!it.at_leftmost()) {
        lo_.assign(it.key());
      }
      if (after.valid()) {
        hi_.assign(after.key());
      }
      if (page.is_leaf_index()) {
        leaf = it.child();
        return error::ok;
      }
      id = it.child();
    }
    return error::corrupted;  // deeper than any real tree
  }

  // Resolves the stored value of the entry under `it` (assembling overflow chains).
  [[nodiscard]] error resolve_value(const data_page_iter& it, std::string& out) {
    return resolve_raw(it.value(), it.is_overflow(), it.compression(), out);
  }

  // Resolves a stored value: inline bytes, or the head of an overflow chain; then
  // decompressed by its kind, with the dictionary of the version read.
  [[nodiscard]] error resolve_raw(std::string_view stored, bool overflow,
                                  compression_kind compression, std::string& out) {
    if (!overflow) {
      if (compression == compression_kind::none) {
        out.assign(stored);
        return error::ok;
      }
      return decompress_value(stored, compression, version_->dictionary.get(), out);
    }
    std::string assembled;
    std::string& whole = compression == compression_kind::none ? out : assembled;
    page_buffer group;           // (the pages of the largest group so far, one after another)
    std::size_t pages_read = 0;  // a large value's pages beyond a share are not cached
    const std::size_t cached_max = pages_.cache_share_pages();
    if (const error e = read_overflow_groups(
            stored,
            [&](std::span<const page_id> ids, std::span<std::span<const char>> pages) {
              const std::size_t page = pages_.page_size();
              if (group.size() < ids.size() * page) {
                group = page_buffer(ids.size() * page);
              }
              pages_read += ids.size();
              const error r =
                  pages_.read_runs(partition_, version_->mapping, ids, group.span(),
                                   pages_read <= cached_max ? cache_use::normal : cache_use::peek);
              for (std::size_t i = 0; i < ids.size(); ++i) {
                pages[i] = group.span().subspan(i * page, page);
              }
              return r;
            },
            whole, version_->mapping.live_count());
        e != error::ok || compression == compression_kind::none) {
      return e;
    }
    return decompress_value(assembled, compression, version_->dictionary.get(), out);
  }

 private:
  [[nodiscard]] error load_data(page_id id, data_page& page, cache_use use = cache_use::normal) {
    if (buf_.size() != pages_.page_size()) {
      buf_ = pages_.take_buffer();
    }
    if (const error e = pages_.read_cached(partition_, version_->mapping, id, buf_.span(), use);
        e != error::ok) {
      return e;
    }
    return data_page::open(buf_.span(), page) == error::ok ? error::ok : error::corrupted;
  }

  // True if separator `key` lies strictly inside the current range (lo_, hi_).
  [[nodiscard]] bool within(std::string_view key) const {
    return (lo_.empty() || cmp_.compare(key, lo_) > 0) &&
           (hi_.empty() || cmp_.compare(key, hi_) < 0);
  }

  // error::corrupted unless the page's keys lie in [lo, hi) (empty = unbounded): its first
  // key is checked against lo, its last against hi.
  [[nodiscard]] error check_bounds(const data_page& page, std::string_view lo,
                                   std::string_view hi) const {
    data_page_iter it(page);
    if (!lo.empty()) {
      it.seek_to_first();
      if (it.valid() && cmp_.compare(it.key(), lo) < 0) {
        return error::corrupted;
      }
    }
    if (!hi.empty()) {
      it.seek_to_last();
      if (it.valid() && cmp_.compare(it.key(), hi) >= 0) {
        return error::corrupted;
      }
    }
    return it.status();
  }

  // Sets `out` to the page's first key: the upper bound of the leaf before it. An empty
  // leaf (ours never store one) leaves `out` as it was: the bound still holds.
  [[nodiscard]] static error first_key(const data_page& page, std::string& out) {
    data_page_iter it(page);
    it.seek_to_first();
    if (it.valid()) {
      out.assign(it.key());
    }
    return it.status();
  }

  [[nodiscard]] error fill(const data_page_iter& it, kv_entry& out) {
    out.key.assign(it.key());
    out.timestamp = it.timestamp();
    out.expire_ts = it.expire_ts();
    return resolve_value(it, out.value);
  }

  [[nodiscard]] error emit(const data_page_iter& it, scan_limits limits, std::vector<kv_entry>& out,
                           std::size_t& bytes, bool& has_more) {
    if (limits.max_entries != 0 && out.size() >= limits.max_entries) {
      has_more = true;  // decided before assembling a value that would not be returned
      return error::ok;
    }
    kv_entry e;
    if (const error err = fill(it, e); err != error::ok) {
      return err;
    }
    const std::size_t size = e.key.size() + e.value.size() + 16;
    if ((limits.max_entries != 0 && out.size() >= limits.max_entries) ||
        (limits.max_bytes != 0 && bytes > 0 && bytes + size > limits.max_bytes)) {
      has_more = true;
      return error::ok;
    }
    bytes += size;
    out.push_back(std::move(e));
    return error::ok;
  }

  // A record as stored: the value is inline bytes or an overflow chain's head.
  struct raw_entry {
    std::string key;
    std::string value;
    std::uint64_t ts = 0;
    std::uint64_t expire_ts = 0;
    bool overflow = false;
    compression_kind compression = compression_kind::none;
  };

  // The live records of a page with key < end (all if end is empty), in key order, values
  // unresolved.
  [[nodiscard]] error collect_below(const data_page& page, std::string_view end,
                                    std::vector<raw_entry>& out) {
    out.clear();
    data_page_iter it(page);
    for (it.seek_to_first(); it.valid(); it.next()) {
      if (!end.empty() && cmp_.compare(it.key(), end) >= 0) {
        break;
      }
      if (!is_expired(it.expire_ts(), now_ms_)) {
        out.push_back(raw_entry{std::string(it.key()), std::string(it.value()), it.timestamp(),
                                it.expire_ts(), it.is_overflow(), it.compression()});
      }
    }
    return it.status();
  }

  page_access<IO>& pages_;
  const partition_state& partition_;
  std::shared_ptr<const partition_version> version_;
  const Cmp& cmp_;
  std::uint64_t now_ms_;
  page_buffer buf_;  // the current data page (aligned: read without a bounce copy)
  std::string lo_;   // the range of the leaf find_leaf found (empty = unbounded)
  std::string hi_;
  std::vector<std::string> run_bounds_;  // the ranges of a forward scan's run of leaves
};

}  // namespace eloqstore::detail
