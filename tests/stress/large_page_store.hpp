// The crash loop's second page size: EloqStore over the default traits (uring_io, fiber
// tasks) with 16 KiB pages. Compiled once, in large_page_store.cpp (as the library compiles
// default_store), so that it builds beside crash_loop.cpp.
#pragma once

#include <cstddef>
#include <memory>

#include <eloqstore/eloqstore.hpp>

namespace eloqstore::stress {

struct large_page_traits : default_traits {
  static constexpr std::size_t page_size = 16384;
  static std::unique_ptr<io_type> make_io(const options& o) {
    return std::make_unique<io_type>(o.store_path, uring_config(o));
  }
  static uring_io::config uring_config(const options& o) {
    auto c = default_traits::uring_config(o);
    c.buffer_bytes = page_size;  // (read buffers of one page)
    return c;
  }
};
using large_page_store = EloqStore<large_page_traits>;

}  // namespace eloqstore::stress

#ifndef ELOQSTORE_STRESS_LARGE_PAGE_DEFINITION
extern template class eloqstore::EloqStore<eloqstore::stress::large_page_traits>;
#endif
