// Structural verification of a partition version, for tests and operators:
// * every page checksum and structure is valid;
// * keys inside every page ascend; every subtree's keys lie within its separator bounds;
// * index pages of one level have one kind (leaf-index vs not); data pages are not empty;
// * the data pages' sibling links match the in-order sequence of leaves, both ways;
// * every mapped logical page is reachable exactly once (both trees and overflow chains).
// Returns error::ok or error::corrupted with a description in `problem`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <eloqstore/comparator.hpp>
#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/btree/reader.hpp>
#include <eloqstore/detail/commit/page_io.hpp>
#include <eloqstore/detail/page/data_page.hpp>
#include <eloqstore/detail/page/index_page.hpp>
#include <eloqstore/detail/page/overflow_page.hpp>
#include <eloqstore/detail/page/page_check.hpp>

namespace eloqstore::detail {

template <io_backend IO, key_comparator Cmp>
class tree_verifier {
 public:
  tree_verifier(page_access<IO>& pages, const partition_state& p, const partition_version& v,
                const Cmp& cmp)
      : pages_(pages), p_(p), v_(v), cmp_(cmp), seen_(v.mapping.size(), false) {}

  [[nodiscard]] error run(std::string& problem) {
    error e = tree(v_.root, false);
    if (e == error::ok) {
      e = tree(v_.ttl_root, true);
    }
    if (e == error::ok) {
      std::size_t reached = 0;
      for (const bool s : seen_) {
        reached += s ? 1 : 0;
      }
      if (reached != v_.mapping.live_count()) {
        fail("reachable pages " + std::to_string(reached) + " != mapped pages " +
             std::to_string(v_.mapping.live_count()));
      }
    }
    problem = problem_;
    return problem_.empty() ? e : error::corrupted;
  }

 private:
  error fail(std::string what) {
    if (problem_.empty()) {
      problem_ = std::move(what);
    }
    return error::corrupted;
  }

  error visit(page_id id) {
    if (id.value() >= seen_.size() || v_.mapping.file_page(id).is_none()) {
      return fail("page " + std::to_string(id.value()) + " is not mapped");
    }
    if (seen_[id.value()]) {
      return fail("page " + std::to_string(id.value()) + " is reachable twice");
    }
    seen_[id.value()] = true;
    return error::ok;
  }

  [[nodiscard]] std::weak_ordering compare(std::string_view a, std::string_view b) const {
    return ttl_ ? bytewise_comparator{}.compare(a, b) : cmp_.compare(a, b);
  }

  error tree(page_id root, bool ttl) {
    ttl_ = ttl;
    leaves_.clear();
    if (root.is_none()) {
      return error::ok;
    }
    if (const error e = node(root, {}, {}, 0); e != error::ok) {
      return e;
    }
    return links();
  }

  // Checks the subtree at `id`, whose keys must lie in [lo, hi) (empty = unbounded).
  error node(page_id id, std::string lo, std::string hi, std::size_t depth) {
    if (depth >= index_levels_max) {
      return fail("tree deeper than the bound");
    }
    if (const error e = visit(id); e != error::ok) {
      return e;
    }
    std::vector<char> bytes;
    if (const error e = pages_.read(p_, v_.mapping, id, bytes); e != error::ok) {
      return fail("index page " + std::to_string(id.value()) + " unreadable");
    }
    if (check_index_page(bytes, [&](std::string_view a, std::string_view b) {
          return compare(a, b);
        }) != error::ok) {
      return fail("page " + std::to_string(id.value()) +
                  " is not an index page, or its separators are out of order");
    }
    index_page page;
    (void)index_page::open(bytes, page);
    struct child {
      std::string key;
      page_id id;
    };
    std::vector<child> children;
    index_page_iter it(page);
    for (it.seek_to_first(); it.valid(); it.next()) {
      children.push_back({std::string(it.key()), it.child()});
    }
    for (std::size_t i = 1; i < children.size(); ++i) {
      const bool above_lo = lo.empty() || compare(children[i].key, lo) > 0;
      const bool below_hi = hi.empty() || compare(children[i].key, hi) < 0;
      if (!above_lo || !below_hi) {
        return fail("separator out of bounds in index page " + std::to_string(id.value()));
      }
    }
    for (std::size_t i = 0; i < children.size(); ++i) {
      const std::string child_lo = i == 0 ? lo : children[i].key;
      const std::string child_hi = i + 1 < children.size() ? children[i + 1].key : hi;
      const error e = page.is_leaf_index() ? leaf(children[i].id, child_lo, child_hi)
                                           : node(children[i].id, child_lo, child_hi, depth + 1);
      if (e != error::ok) {
        return e;
      }
    }
    return error::ok;
  }

  error leaf(page_id id, const std::string& lo, const std::string& hi) {
    if (const error e = visit(id); e != error::ok) {
      return e;
    }
    std::vector<char> bytes;
    if (pages_.read(p_, v_.mapping, id, bytes) != error::ok) {
      return fail("data page " + std::to_string(id.value()) + " unreadable");
    }
    // The check the writer asserted before it wrote the page (page_check.hpp).
    if (check_data_page(bytes, [&](std::string_view a, std::string_view b) {
          return compare(a, b);
        }) != error::ok) {
      return fail("data page " + std::to_string(id.value()) + " malformed, empty or out of order");
    }
    data_page page;
    (void)data_page::open(bytes, page);
    data_page_iter it(page);
    for (it.seek_to_first(); it.valid(); it.next()) {
      if ((!lo.empty() && compare(it.key(), lo) < 0) ||
          (!hi.empty() && compare(it.key(), hi) >= 0)) {
        return fail("key out of bounds in data page " + std::to_string(id.value()));
      }
      if (it.is_overflow()) {
        if (const error e = overflow(it.value()); e != error::ok) {
          return e;
        }
      }
    }
    if (it.status() != error::ok) {
      return fail("data page " + std::to_string(id.value()) + " does not decode");
    }
    leaves_.push_back({id, page.prev(), page.next()});
    return error::ok;
  }

  error overflow(std::string_view head) {
    std::array<page_id, overflow_pointers_max> ids{};
    std::size_t count = 0;
    if (!decode_overflow_head(head, ids, count)) {
      return fail("bad overflow head");
    }
    std::vector<char> bytes;
    for (std::size_t guard = 0; count > 0; ++guard) {
      if (guard > seen_.size()) {
        return fail("overflow chain loops");
      }
      // Every page of the group is read: its checksum and structure must hold.
      overflow_page page;
      for (std::size_t i = 0; i < count; ++i) {
        if (const error e = visit(ids[i]); e != error::ok) {
          return e;
        }
        if (pages_.read(p_, v_.mapping, ids[i], bytes) != error::ok ||
            overflow_page::open(bytes, page) != error::ok) {
          return fail("overflow page " + std::to_string(ids[i].value()) + " unreadable");
        }
      }
      count = page.pointer_count();
      for (std::size_t j = 0; j < count; ++j) {
        ids[j] = page.pointer(j);
      }
    }
    return error::ok;
  }

  error links() {
    for (std::size_t i = 0; i < leaves_.size(); ++i) {
      const page_id want_prev = i == 0 ? page_id::none() : leaves_[i - 1].id;
      const page_id want_next = i + 1 < leaves_.size() ? leaves_[i + 1].id : page_id::none();
      if (leaves_[i].prev != want_prev || leaves_[i].next != want_next) {
        return fail("sibling links of data page " + std::to_string(leaves_[i].id.value()) +
                    " disagree with the tree order");
      }
    }
    return error::ok;
  }

  struct leaf_links {
    page_id id;
    page_id prev;
    page_id next;
  };

  page_access<IO>& pages_;
  const partition_state& p_;
  const partition_version& v_;
  const Cmp& cmp_;
  std::vector<bool> seen_;
  std::vector<leaf_links> leaves_;
  std::string problem_;
  bool ttl_ = false;
};

}  // namespace eloqstore::detail
