// Store traits: the compile-time choices of an EloqStore<Traits>.
//
// A traits type names the key comparator, the page size, the I/O backend (and how to make it
// from the options) and the scheduler. Users derive from default_traits and override what
// they need:
//
//   struct my_traits : eloqstore::default_traits {
//     using comparator = my_comparator;
//   };
//   eloqstore::EloqStore<my_traits> store(opts);
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>

#include <eloqstore/comparator.hpp>
#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/btree/limits.hpp>
#include <eloqstore/detail/commit/file_handles.hpp>
#include <eloqstore/io/memory.hpp>
#include <eloqstore/io/pread.hpp>
#include <eloqstore/io/uring.hpp>
#include <eloqstore/options.hpp>
#include <eloqstore/sched/fiber.hpp>
#include <eloqstore/sched/inline.hpp>

namespace eloqstore {

// Data page cache policies (traits::data_cache). With a cache, each shard keeps copies of the
// data and overflow pages its reads and writes use, up to options::data_page_cache_size
// bytes, evicted by a segmented LRU that scans cannot flush (detail/shard/data_cache.hpp):
// a hot set is served from memory and writers find the leaves they rewrite there. Without
// one, every data page is read from storage each time (the reference engine's behaviour;
// for stores whose OS or device cache does the job). Traits that name no policy get the cache
// (detail::data_cache_enabled).
struct segmented_lru_data_cache {
  static constexpr bool enabled = true;
};
struct no_data_cache {
  static constexpr bool enabled = false;
};

// Local files through io_uring (O_DIRECT data files), bytewise keys, 4 KiB pages, and
// requests running as Boost.Context fibers that suspend on their I/O: many requests of one
// shard are in flight at once.
struct default_traits {
  using comparator = bytewise_comparator;
  using io_type = uring_io;
  using scheduler_type = fiber_scheduler;
  using data_cache = segmented_lru_data_cache;
  static constexpr std::size_t page_size = 4096;

  static std::unique_ptr<io_type> make_io(const options& o) {
    return std::make_unique<io_type>(o.store_path, uring_config(o));
  }
  // uring_io's settings for the options (also for backends that wrap a uring_io).
  static uring_io::config uring_config(const options& o) {
    uring_io::config c;
    c.queue_depth = o.io_queue_size;
    // The descriptor cache, every shard's fixed-file slots and every shard's open data files
    // (detail/commit/file_handles.hpp) share fd_limit.
    const std::size_t fds = o.fd_limit > 200 ? o.fd_limit - 100 : 100;
    c.registered_files =
        static_cast<unsigned>(std::min<std::size_t>(256, fds / (2 * o.num_threads)));
    const std::size_t per_shard =
        c.registered_files + detail::shard_file_handles(o.fd_limit, o.num_threads);
    c.open_files_max = fds > per_shard * o.num_threads ? fds - per_shard * o.num_threads : 1;
    c.buffer_bytes = page_size;
    return c;
  }
  static fiber_scheduler::config scheduler_config(const options& o) {
    fiber_scheduler::config c;
    c.stack_bytes = o.coroutine_stack_size;
    return c;
  }
};

// Local files through pread/pwrite and run-to-completion shards: for kernels without
// io_uring (uring_io's start-up probe names this as the fallback).
struct pread_traits : default_traits {
  using io_type = pread_io;
  using scheduler_type = inline_scheduler;
  static std::unique_ptr<io_type> make_io(const options& o) {
    // The shards' open data files (detail/commit/file_handles.hpp) are kept out of the
    // descriptor cache's share.
    const std::size_t handles = detail::shard_file_handles(o.fd_limit, o.num_threads);
    return std::make_unique<io_type>(o.store_path, o.fd_limit > handles * o.num_threads
                                                       ? o.fd_limit - handles * o.num_threads
                                                       : 1);
  }
};

// pread_io with fiber tasks (I/O blocks the shard, but requests still interleave).
struct pread_fiber_traits : pread_traits {
  using scheduler_type = fiber_scheduler;
};

// Everything in memory (the reference engine's mode when store_path is empty).
struct memory_traits : pread_traits {
  using io_type = memory_io;
  static std::unique_ptr<io_type> make_io(const options&) { return std::make_unique<io_type>(); }
};

// The relations between the choices, checked once per traits type (EloqStore<T> asserts
// traits_checks<T>::ok), grouped by what they protect.
template <store_traits T>
struct traits_checks {
  // Page addressing: offsets inside a page are u16 and data files are read with O_DIRECT,
  // which needs whole OS pages (4 KiB) at aligned offsets.
  static_assert(T::page_size >= 4096 && T::page_size <= 32768, "page_size must be 4..32 KiB");
  static_assert((T::page_size & (T::page_size - 1)) == 0, "page_size must be a power of two");
  // Tree shape: the longest key fits an index page beside its leftmost child and a data page
  // with an overflow value, so splits make progress and a record needs one leaf; the height
  // bound follows (detail/btree/limits.hpp asserts both).
  static_assert(detail::tree_limits<T::page_size>::ok);
  static constexpr bool ok = true;
};

}  // namespace eloqstore
