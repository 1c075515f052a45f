// The tree writer's range delete (tree_writer, btree/writer.hpp): subtrees inside the range
// are freed without reading their leaves' neighbours twice (every page, every overflow
// chain, the TTL entries of their records), leaves across a bound are trimmed.
#pragma once

#include <eloqstore/detail/btree/writer.hpp>

namespace eloqstore::detail {

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::range_child(const child_ref& c, std::string_view hi, bool leaf,
                                       std::string_view begin, std::string_view end,
                                       std::size_t depth, std::vector<child_ref>& rep) -> error {
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

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::trim_leaf(page_id id, std::string_view lo, std::string_view hi,
                                     std::string_view begin, std::string_view end,
                                     std::vector<child_ref>& out) -> error {
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

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::free_subtree(page_id id, bool leaf, std::size_t depth) -> error {
  if (depth >= index_levels_max) {
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

}  // namespace eloqstore::detail
