// Paired page checks: what a page must satisfy, checked the same way on both sides of the
// disk. Before a page is handed to the commit (tree_writer::emit, in builds with assertions)
// and after it is read back (the verify request, btree/verify.hpp). A page passes when it
// decodes to its end (the decoders check lengths, varints and the restart array), its keys
// are non-empty and strictly ascend by `compare` (three-way, like key_comparator::compare),
// a data page holds at least one record, and an overflow page's pointers fit it. The
// checksum is not part of it: it is set at placement and verified by every read.
#pragma once

#include <compare>
#include <span>
#include <string>
#include <string_view>

#include <eloqstore/detail/page/data_page.hpp>
#include <eloqstore/detail/page/index_page.hpp>
#include <eloqstore/detail/page/overflow_page.hpp>
#include <eloqstore/detail/page/page_common.hpp>
#include <eloqstore/error.hpp>

namespace eloqstore::detail {

template <typename Compare>
[[nodiscard]] error check_data_page(std::span<const char> bytes, Compare&& compare) {
  data_page page;
  if (data_page::open(bytes, page) != error::ok || page.empty()) {
    return error::corrupted;
  }
  std::string prev;
  data_page_iter it(page);
  for (it.seek_to_first(); it.valid(); it.next()) {
    if (it.key().empty() || (!prev.empty() && compare(prev, it.key()) >= 0)) {
      return error::corrupted;
    }
    prev.assign(it.key());
  }
  return it.status() == error::ok ? error::ok : error::corrupted;
}

template <typename Compare>
[[nodiscard]] error check_index_page(std::span<const char> bytes, Compare&& compare) {
  index_page page;
  if (index_page::open(bytes, page) != error::ok) {
    return error::corrupted;
  }
  std::string prev;
  index_page_iter it(page);
  for (it.seek_to_first(); it.valid(); it.next()) {
    if (it.at_leftmost()) {
      continue;  // the leftmost child has no key
    }
    if (it.key().empty() || (!prev.empty() && compare(prev, it.key()) >= 0)) {
      return error::corrupted;
    }
    prev.assign(it.key());
  }
  return it.status() == error::ok ? error::ok : error::corrupted;
}

[[nodiscard]] inline error check_overflow_page(std::span<const char> bytes) {
  overflow_page page;
  return overflow_page::open(bytes, page) == error::ok ? error::ok : error::corrupted;
}

// The check of the page's own type.
template <typename Compare>
[[nodiscard]] error check_page(std::span<const char> bytes, Compare&& compare) {
  switch (read_page_type(bytes)) {
    case page_type::data:
      return check_data_page(bytes, compare);
    case page_type::leaf_index:
    case page_type::non_leaf_index:
      return check_index_page(bytes, compare);
    case page_type::overflow:
      return check_overflow_page(bytes);
    default:
      return error::corrupted;
  }
}

}  // namespace eloqstore::detail
