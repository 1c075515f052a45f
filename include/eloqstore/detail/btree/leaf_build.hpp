// The tree writer's leaf rebuild (tree_writer, btree/writer.hpp): a data page read and
// checked against its range, its records merged with the changes that fall in it (last
// writer wins by timestamp, TTL entries noted, overflow chains written and freed), and the
// result emitted as one or more pages: patched region by region when few records change,
// rebuilt whole otherwise, split greedily with the last two pages rebalanced (spec 5.3).
#pragma once

#include <eloqstore/detail/btree/writer.hpp>

namespace eloqstore::detail {

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::open_leaf(page_id id, std::string_view lo, std::string_view hi,
                                     leaf_contents& leaf, data_page& page) -> error {
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

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::load_leaf(page_id id, std::string_view lo, std::string_view hi,
                                     leaf_contents& leaf) -> error {
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

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::apply_leaf(page_id id, std::string_view lo, std::string_view hi,
                                      std::span<const write_entry> changes,
                                      std::vector<child_ref>& out) -> error {
  if (changes.size() <= patch_changes_max) {
    return patch_leaf(id, lo, hi, changes, out);
  }
  leaf_contents leaf;
  if (const error e = load_leaf(id, lo, hi, leaf); e != error::ok) {
    return e;
  }
  return build_leaves(leaf.records, changes, id, leaf.prev, leaf.next, out);
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::patch_leaf(page_id id, std::string_view lo, std::string_view hi,
                                      std::span<const write_entry> changes,
                                      std::vector<child_ref>& out) -> error {
  leaf_contents leaf;
  data_page page;
  if (const error e = open_leaf(id, lo, hi, leaf, page); e != error::ok) {
    return e;
  }
  if (page.empty()) {  // no region to patch (our writers never store such a page)
    return build_leaves({}, changes, id, leaf.prev, leaf.next, out);
  }
  data_page_iter it(page);
  if (const error e = plan_regions(page, it, changes); e != error::ok) {
    return e;
  }
  if (const error e = merge_rewritten(page, it, changes); e != error::ok) {
    return e;
  }
  if (encode_patched(page, leaf)) {
    emit(id, data_builder_.finish(leaf.prev, leaf.next));
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
  // Not one page: all records in key order, the copied regions decoded and the rewritten
  // runs as merged, built as build_leaves would.
  std::vector<record> all;
  all.reserve(patch_merged_.size() + leaf_record_reserve(page));
  for (std::size_t k = 0; k < page.restart_count();) {
    const region_plan& r = region_plans_[k];
    if (r.rewrite) {
      all.insert(all.end(), patch_merged_.begin() + static_cast<std::ptrdiff_t>(r.merged_begin),
                 patch_merged_.begin() + static_cast<std::ptrdiff_t>(r.merged_end));
      k = r.run_last + 1;
      continue;
    }
    if (const error e = decode_regions(it, k, k, all); e != error::ok) {
      return e;
    }
    ++k;
  }
  return build_merged(all, id, leaf.prev, leaf.next, out);
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::plan_regions(const data_page& page, data_page_iter& it,
                                        std::span<const write_entry> changes) -> error {
  const std::size_t regions = page.restart_count();
  std::vector<region_plan>& plan = region_plans_;
  plan.assign(regions, region_plan{});
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
  return error::ok;
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::merge_rewritten(const data_page& page, data_page_iter& it,
                                           std::span<const write_entry> changes) -> error {
  // In order: merging has effects, such as freeing the overflow pages of a replaced value,
  // that happen once.
  const std::size_t regions = page.restart_count();
  std::vector<region_plan>& plan = region_plans_;
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
    if (const error e = merge(
            existing,
            changes.subspan(plan[k].changes_begin, plan[last].changes_end - plan[k].changes_begin),
            merged);
        e != error::ok) {
      return e;
    }
    plan[k].merged_end = merged.size();
    plan[k].run_last = last;
    k = last + 1;
  }
  return error::ok;
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::encode_patched(const data_page& page, const leaf_contents& leaf)
    -> bool {
  const std::size_t regions = page.restart_count();
  bool fits = true;
  data_builder_.reset();
  for (std::size_t k = 0; fits && k < regions;) {
    const region_plan& r = region_plans_[k];
    if (!r.rewrite) {
      const std::size_t begin = page.restart_offset(k);
      const std::size_t end = k + 1 < regions ? page.restart_offset(k + 1) : page.entries_end();
      fits = data_builder_.append_region(
          std::span<const char>(leaf.bytes.data() + begin, end - begin), r.entries);
      ++k;
      continue;
    }
    for (std::size_t i = r.merged_begin; fits && i < r.merged_end; ++i) {
      const record& m = patch_merged_[i];
      fits = data_builder_.add(m.key, m.value, m.ts, m.expire_ts, m.overflow, m.compression);
    }
    k = r.run_last + 1;
  }
  return fits && !data_builder_.empty();
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::decode_regions(data_page_iter& it, std::size_t first, std::size_t last,
                                          std::vector<record>& out) -> error {
  for (it.seek_to_region(first); it.valid() && it.region() <= last; it.next()) {
    out.push_back(record_at(it));
  }
  return it.status();
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::build_leaves(const std::vector<record>& existing,
                                        std::span<const write_entry> changes, page_id id,
                                        page_id prev, page_id next, std::vector<child_ref>& out)
    -> error {
  std::vector<record> merged;
  if (const error e = merge(existing, changes, merged); e != error::ok) {
    return e;
  }
  return build_merged(merged, id, prev, next, out);
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::build_merged(const std::vector<record>& merged, page_id id, page_id prev,
                                        page_id next, std::vector<child_ref>& out) -> error {
  if (merged.empty()) {
    out.clear();
    if (!id.is_none()) {
      next_.free_page(id);
      return unlink(prev, next);
    }
    return error::ok;
  }
  leaf_run run;
  run.ids.push_back(id);
  if (id.is_none()) {
    if (const error e = next_.new_page_id(run.ids[0]); e != error::ok) {
      return e;
    }
  }
  if (const error e = fill_leaves(merged, prev, run); e != error::ok) {
    return e;
  }
  rebalance_last_two(merged, prev, run);
  const std::vector<std::size_t>& starts = run.starts;
  const std::vector<page_id>& ids = run.ids;
  const std::size_t k = ids.size();
  emit(ids[k - 1], data_builder_.finish(k >= 2 ? ids[k - 2] : prev, next));
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
      if (const error e = next_.set_link(next, data_page_prev_offset, ids.back()); e != error::ok) {
        return e;
      }
    }
    if (id.is_none() && !prev.is_none()) {
      return next_.set_link(prev, data_page_next_offset, ids.front());
    }
  }
  return error::ok;
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::fill_leaves(const std::vector<record>& merged, page_id prev,
                                       leaf_run& run) -> error {
  // One pass: records fill a page until one does not fit; the next page's id is taken then
  // (the finished page links to it) and the page before the finished one is final.
  std::vector<std::size_t>& starts = run.starts;
  std::vector<page_id>& ids = run.ids;
  starts.assign(1, 0);
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
    run.full_bytes = data_builder_.current_size_bytes();
    const std::size_t k = ids.size();
    emit(ids[k - 1], data_builder_.finish(k >= 2 ? ids[k - 2] : prev, following));
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
  return error::ok;
}

template <io_backend IO, key_comparator Cmp>
void tree_writer<IO, Cmp>::rebalance_last_two(const std::vector<record>& merged, page_id prev,
                                              leaf_run& run) {
  std::vector<std::size_t>& starts = run.starts;
  const std::vector<page_id>& ids = run.ids;
  const std::size_t k = ids.size();
  if (k < 2 || data_builder_.current_size_bytes() >= cfg_.page_size / 4 ||
      run.full_bytes <= cfg_.page_size * 3 / 4) {
    return;
  }
  // The last page is nearly empty and the one before nearly full: rebuild both about half
  // full (spec 5.3), if the second still fits from the new boundary.
  const std::size_t half = (run.full_bytes + data_builder_.current_size_bytes()) / 2;
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
    emit(ids[k - 2], data_builder_.finish(k >= 3 ? ids[k - 3] : prev, ids[k - 1]));
  }
  data_builder_.reset();
  for (std::size_t i = starts[k - 1]; i < merged.size(); ++i) {
    (void)add(i);
  }
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::merge(const std::vector<record>& existing,
                                 std::span<const write_entry> changes, std::vector<record>& out)
    -> error {
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

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::keep_existing(const record& r, std::vector<record>& out) -> error {
  if (is_expired(r.expire_ts, now_ms_)) {
    return drop(r);  // expired data leaves whenever its page is rewritten
  }
  out.push_back(r);
  return error::ok;
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::drop(const record& r) -> error {
  ttl_change(r.key, r.expire_ts, write_op::erase);
  return r.overflow ? free_overflow(r.value) : error::ok;
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::add_new(const write_entry& w, std::vector<record>& out) -> error {
  ttl_change(w.key, w.expire_ts, write_op::upsert);
  record r{w.key, w.value, w.timestamp, w.expire_ts, false, compression_kind::none};
  r.value = stored_value(w, r.compression);
  if (data_page_builder::is_overflow_kv(cfg_.page_size, w.key, r.value.size(), w.timestamp,
                                        w.expire_ts)) {
    std::string head;
    const error e = write_overflow_value(
        r.value, cfg_.overflow_pointers, scratch_,
        [&] {
          page_id id;
          (void)next_.new_page_id(id);
          return id;
        },
        [&](page_id id, std::span<const char> page) {
          emit(id, page);
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

template <io_backend IO, key_comparator Cmp>
void tree_writer<IO, Cmp>::sample_for_dictionary(std::span<const write_entry> batch) {
  if (next_.dictionary() != nullptr) {
    return;
  }
  if (!p_.sampler.offer(batch, now_ms_ ^ p_.sampler.bytes())) {
    return;
  }
  std::string bytes = p_.sampler.train();
  if (bytes.empty()) {
    return;  // sampled again (sampler.train)
  }
  next_.set_dictionary(make_dictionary(std::move(bytes)));
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::stored_value(const write_entry& w, compression_kind& kind)
    -> std::string_view {
  kind = compression_kind::none;
  if (!cfg_.compress || ttl_mode_) {
    return w.value;
  }
  const compression_kind want = compression_for(w.value.size(), next_.dictionary() != nullptr);
  if (!compress_value(w.value, want, next_.dictionary(), compressed_)) {
    return w.value;  // too small, not smaller, or no dictionary yet: stored as it is
  }
  kind = want;
  return keep(compressed_);
}

template <io_backend IO, key_comparator Cmp>
template <typename Reset, typename Add, typename Size>
auto tree_writer<IO, Cmp>::split_points(std::size_t n, Reset&& reset, Add&& add, Size&& size)
    -> std::vector<std::size_t> {
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

template <io_backend IO, key_comparator Cmp>
template <typename Reset, typename Add, typename Size>
auto tree_writer<IO, Cmp>::rebalanced_start(std::size_t first, std::size_t current, std::size_t n,
                                            std::size_t half, Reset&& reset, Add&& add, Size&& size)
    -> std::size_t {
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

}  // namespace eloqstore::detail
