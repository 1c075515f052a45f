// The tree writer's descent and rewrite (tree_writer, btree/writer.hpp): index pages loaded
// (pinned, or this writer's own copies) and checked against their ranges, the batch sliced
// by separator down to the leaves, each index page rewritten when its child list changes
// (packed into one or more pages), the root grown or collapsed, and the leaves a batch will
// touch read ahead together.
#pragma once

#include <eloqstore/detail/btree/writer.hpp>

namespace eloqstore::detail {

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::apply_tree(page_id& root, std::span<const write_entry> batch) -> error {
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
  if (batch.size() > 1) {
    // The leaves the batch touches, read together (overlapped where the backend can).
    if (const error e = prefetch_leaves(root, batch); e != error::ok) {
      return e;
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

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::slice(std::span<const write_entry> batch, std::string_view lo,
                                 std::string_view hi) const -> std::span<const write_entry> {
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

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::batch_child(const child_ref& c, std::string_view hi, bool leaf,
                                       std::span<const write_entry> batch, std::size_t depth,
                                       std::vector<child_ref>& rep) -> error {
  const auto changes = slice(batch, c.key, hi);
  if (changes.empty()) {
    rep = {c};
    return error::ok;
  }
  if (leaf) {
    return apply_leaf(c.id, c.key, hi, changes, rep);
  }
  return rewrite_index(
      c.id, c.key, hi, depth + 1, rep,
      [&](const child_ref& cc, std::string_view chi, bool cleaf, std::size_t d,
          std::vector<child_ref>& crep) { return batch_child(cc, chi, cleaf, changes, d, crep); });
}

template <io_backend IO, key_comparator Cmp>
template <typename Visit>
auto tree_writer<IO, Cmp>::rewrite_index(page_id id, std::string_view lo, std::string_view hi,
                                         std::size_t depth, std::vector<child_ref>& out,
                                         Visit&& visit) -> error {
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

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::pack_index(const std::vector<child_ref>& children, bool leaf, page_id id,
                                      std::vector<child_ref>& out) -> error {
  const auto starts = split_points(
      children.size(), [&] { index_builder_.reset(); },
      [&](std::size_t i) {
        // The first child of a page is its leftmost pointer: its key is not stored.
        const std::string_view key = index_builder_.empty() ? std::string_view{} : children[i].key;
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
    emit(pid, page);
    out.push_back(child_ref{children[starts[j]].key, pid});
  }
  return error::ok;
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::settle_root(page_id& root, std::vector<child_ref> result) -> error {
  if (result.empty()) {
    root = page_id::none();
    return error::ok;
  }
  if (result.size() > 1) {
    return grow_root(root, std::move(result), false);
  }
  root = result[0].id;
  index_hold held;
  for (std::size_t depth = 0; depth < index_levels_max; ++depth) {
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

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::grow_root(page_id& root, std::vector<child_ref> children, bool leaf)
    -> error {
  // Index levels below the pages being built: none over leaves, else the tree's (as the
  // descent measured it). The root grows no higher than index_levels_max (limits.hpp).
  std::size_t levels = leaf ? 0 : index_levels_;
  for (;;) {
    if (children.empty()) {
      root = page_id::none();
      return error::ok;
    }
    if (++levels > index_levels_max) {
      return error::out_of_space;
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
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::prefetch_leaves(page_id root, std::span<const write_entry> batch)
    -> error {
  std::vector<page_id> leaves;
  if (const error e = collect_leaves(root, {}, {}, batch, 0, leaves); e != error::ok) {
    return e;
  }
  return next_.prefetch(std::move(leaves));
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::collect_leaves(page_id id, std::string_view lo, std::string_view hi,
                                          std::span<const write_entry> batch, std::size_t depth,
                                          std::vector<page_id>& out) -> error {
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
    } else if (const error e =
                   collect_leaves(children[i].id, children[i].key, child_hi, part, depth + 1, out);
               e != error::ok) {
      return e;
    }
  }
  return error::ok;
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::load_index(page_id id, index_hold& hold, index_page& page) -> error {
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

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::load_children(page_id id, std::string_view lo, std::string_view hi,
                                         std::size_t depth, index_hold& held, bool& leaf,
                                         std::vector<child_ref>& children) -> error {
  if (depth >= index_levels_max) {
    return error::corrupted;  // deeper than the writer lets a tree grow: a cycle
  }
  index_page page;
  if (const error e = load_index(id, held, page); e != error::ok) {
    return e;
  }
  leaf = page.is_leaf_index();
  if (depth == 0) {
    index_levels_ = 0;  // a descent from the root measures its tree afresh
  }
  if (leaf) {
    index_levels_ = std::max(index_levels_, depth + 1);
  }
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

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::unlink(page_id prev, page_id next) -> error {
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

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::free_overflow(std::string_view head) -> error {
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

}  // namespace eloqstore::detail
