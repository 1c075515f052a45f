// The policies EloqStore<Traits> is built from, as C++20 concepts, with the contracts the
// compiler cannot check written beside them: key_comparator, io_backend and its refinements
// (batched_io, async_page_writes, batched_reads, file_handles, batched_handle_reads, ring_io,
// local_files_io), scheduler and task_scheduler, and store_traits, which names one of each.
//
// Suspension, the rule every layer follows. With a scheduler whose can_suspend is true, a
// task parks only inside (1) the scheduler's yield(), yield_low_priority() and park() (and
// the waiting_zone and fiber_mutex built on park()), and (2) calls into the io backend (a
// ring_io backend parks the task until its I/O completes). So a function may suspend exactly
// when it can reach one of them, and its signature shows it: in eloqstore::detail, a function
// that takes a shard (`shard&`), an io backend (`IO&`) or a `page_access&`, or is a member of
// a type that holds one (tree_writer, tree_reader, version_builder; load_partition), may
// suspend; a function with none of these (page codecs, mapping tables, manifest records, the
// index and handle caches, comparators) never does. After a call that may suspend, other
// tasks of the shard have run: re-check what they may have changed (a map lookup, a
// partition's current version) before using it. A stretch that must not suspend while it
// holds such state (an iterator into a shard's maps, a half-published version) says so with
// a `no_suspend` scope (sched/hooks.hpp); a task that parks inside one fails an assertion.
#pragma once

#include <compare>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <eloqstore/error.hpp>
#include <eloqstore/sched/hooks.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore {

struct options;

// key_comparator: the order of a store's keys. Contract (what the concept cannot check):
// * `compare(a, b)` is a strict weak order, pure, noexcept, and callable from any thread.
// * `name()` is stable across releases: it names the order data was written in.
// * The empty key is never a stored key (writes refuse it). Where the API takes a range, an
//   empty begin or end means unbounded on that side (-inf, +inf), whatever the comparator
//   says about "": the engine never hands a bound of "" to `compare`. So a comparator need
//   not order "" first (a descending order puts it last).
// * `shortest_separator(a, b)`, REQUIRES compare(a, b) < 0, returns a key s with
//   a < s <= b that is as short as the comparator can make it. It becomes an index-page
//   separator, so shorter means more fan-out per index page.
template <typename C>
concept key_comparator = requires(const C& c, std::string_view a, std::string_view b) {
  { c.compare(a, b) }
  noexcept->std::convertible_to<std::weak_ordering>;
  { C::name() }
  noexcept->std::convertible_to<std::string_view>;
  { c.shortest_separator(a, b) } -> std::convertible_to<std::string>;
};

// io_backend: where a partition's files live. Every file is named by its partition and its
// file name inside the partition directory (`<store_path[disk]>/<table>.<partition>/<name>`
// for local backends; disk = partition % store_path.size()).
//
// Contract:
// * Construction takes the validated options; `open()` prepares the store paths (creating
//   missing directories; error::invalid_args if a path is not a directory) and must succeed
//   before any other call. `close()` releases descriptors; open() may be called again.
// * read(t, name, offset, buf): fills all of buf or fails; error::not_found if the file is
//   missing, error::end_of_file if the file ends before offset + buf.size().
// * write(t, name, offset, data): writes all of data, creating the partition directory and
//   the file if needed. Not durable until sync().
// * sync(t, name): the file's data written so far is durable (fdatasync).
// * sync_dir(t): names created in the partition directory so far are durable (fsync of the
//   directory).
// * read_file(t, name, out): the whole file; error::not_found if missing.
// * write_file_atomic(t, name, data): replaces the file as one durable step: the bytes go to
//   `<name>.tmp`, which is synced, renamed over `name`, and the directory synced. A crash
//   leaves either the old or the new file.
// * remove(t, name): unlinks; error::not_found if missing. Durable after sync_dir(t).
// * list(t, names): the file names of a partition (not_found if it has no directory).
// * list_partitions(out): every partition directory under every store path.
// * Errors map errno as error_from_errno does. Thread safety: calls for different partitions
//   may come from different threads at once; calls for one partition come from one thread.
template <typename B>
concept io_backend = requires(B& io, const table_ident& t, std::string_view name,
                              std::uint64_t offset, std::span<char> buf, std::span<const char> data,
                              std::string& out, std::vector<std::string>& names,
                              std::vector<table_ident>& tables) {
  { io.open() } -> std::same_as<error>;
  { io.close() } -> std::same_as<void>;
  { io.read(t, name, offset, buf) } -> std::same_as<error>;
  { io.write(t, name, offset, data) } -> std::same_as<error>;
  { io.sync(t, name) } -> std::same_as<error>;
  { io.sync_dir(t) } -> std::same_as<error>;
  { io.read_file(t, name, out) } -> std::same_as<error>;
  { io.write_file_atomic(t, name, data) } -> std::same_as<error>;
  { io.remove(t, name) } -> std::same_as<error>;
  { io.list(t, names) } -> std::same_as<error>;
  { io.list_partitions(tables) } -> std::same_as<error>;
};

// One page-aligned write of a batch (see batched_io).
struct page_write {
  std::string_view name;
  std::uint64_t offset = 0;
  std::span<const char> data;
};

// batched_io: an io_backend that can write many pages of one partition in one call (and
// overlap them). write_pages(t, writes) behaves as write() of each element, in any order;
// on failure some of them may have been written.
template <typename B>
concept batched_io = io_backend<B> &&
    requires(B& io, const table_ident& t, std::span<const page_write> writes) {
  { io.write_pages(t, writes) } -> std::same_as<error>;
};

// async_page_writes: a batched_io backend that can start a batch of page writes and let the
// caller go on while they run. begin_write_pages(t, writes, ticket) starts them (the caller
// keeps the buffers alive and unchanged); finish_write_pages(ticket) waits and returns the
// first error. Destroying an unfinished ticket waits for its writes.
template <typename B>
concept async_page_writes = batched_io<B> &&
    requires(B& io, const table_ident& t, std::span<const page_write> writes,
             typename B::write_ticket& ticket) {
  { io.begin_write_pages(t, writes, ticket) } -> std::same_as<error>;
  { io.finish_write_pages(ticket) } -> std::same_as<error>;
};

// One read of a batch (see batched_reads): a page, or a run of pages one after another in
// the file (aligned as a page, a whole number of pages long).
struct page_read {
  std::string_view name;
  std::uint64_t offset = 0;
  std::span<char> buf;
};

// batched_reads: an io_backend that can read many pages of one partition in one call, with
// the reads overlapping. read_pages(t, reads) behaves as read() of each element and fails
// with the first error in batch order (the other buffers are then unspecified).
template <typename B>
concept batched_reads = io_backend<B> &&
    requires(B& io, const table_ident& t, std::span<const page_read> reads) {
  { io.read_pages(t, reads) } -> std::same_as<error>;
};

// file_handles: an io_backend that resolves a file once and reads it by handle, with no name
// built and no shared lock taken per read. open_file(t, name, ref) gives the handle of an
// existing file (error::not_found if missing, nothing created); while a handle is held the
// file stays open and the handle refers to the file the name named when it was opened, even
// after a remove or a rename over it (drop the handle before reusing the name).
// read_at(ref, offset, buf) is read() of that file.
template <typename B>
concept file_handles = io_backend<B> &&
    requires(B& io, const table_ident& t, std::string_view name, typename B::file_ref& ref,
             const typename B::file_ref& cref, std::uint64_t offset, std::span<char> buf) {
  { io.open_file(t, name, ref) } -> std::same_as<error>;
  { io.read_at(cref, offset, buf) } -> std::same_as<error>;
};

// batched_handle_reads: both of the above: read_pages_at(refs, reads) is read_pages() with
// reads[i] from refs[i] (reads[i].name unused).
template <typename B>
concept batched_handle_reads = file_handles<B> && batched_reads<B> &&
    requires(B& io, std::span<const typename B::file_ref> refs, std::span<const page_read> reads) {
  { io.read_pages_at(refs, reads) } -> std::same_as<error>;
};

// ring_io: a backend with an I/O ring per shard thread (uring_io). attach(hooks) makes the
// calling thread's ring and returns it (a unique_ptr to B::shard_ring; nullptr when it cannot
// be set up); while it lives, that thread's I/O goes through it and parks the running task of
// the scheduler behind `hooks` until done.
template <typename B>
concept ring_io = io_backend<B> && requires(B& io, suspend_hooks hooks) {
  typename B::shard_ring;
  io.attach(hooks);
};

// local_files_io: a backend whose files live under the store paths on a local file system
// (pread_io, uring_io; faulty_io over one of them). B::uses_store_paths is true. The store
// locks those paths for its lifetime and records their identity (detail/io/store_root.hpp).
template <typename B>
concept local_files_io = io_backend<B> && requires {
  requires B::uses_store_paths;
};

// object_tier_io: a backend that keeps partition files in an object store behind a local
// cache (cloud_io, io/cloud.hpp): cloud mode. B::object_tier is true.
template <typename B>
concept object_tier_io = io_backend<B> && requires {
  requires B::object_tier;
};

// task_scheduler: a scheduler whose tasks suspend (fiber_scheduler). Everything the store's
// fiber loop (detail/shard/loop.hpp) and a ring_io backend's suspend_hooks call:
// * spawn(f): queues f as a new task, run in a later round; false when no task slot is free
//   (the caller keeps the work and retries). Throws std::bad_alloc without memory for it.
// * run_round(): runs every task ready at its start once, then low-priority tasks within a
//   budget; returns whether runnable tasks remain. idle(): none runnable. live_tasks(): tasks
//   spawned and not finished (runnable or parked).
// * current(): the running task, nullptr outside tasks.
// * yield(): the running task goes to the end of the ready queue. yield_low_priority(): to
//   the low-priority queue (long work steps aside for reads). park(): until wake(task).
//   wake(t): makes a parked task runnable (no effect on a queued or running one).
// All calls come from the shard thread; yield, yield_low_priority and park REQUIRE a task.
template <typename S>
concept task_scheduler = requires(S& s, const S& cs, typename S::task& t) {
  {
    s.spawn([] {})
    } -> std::same_as<bool>;
  { s.run_round() } -> std::same_as<bool>;
  { cs.idle() } -> std::same_as<bool>;
  { cs.live_tasks() } -> std::convertible_to<std::size_t>;
  { cs.current() } -> std::same_as<typename S::task*>;
  { s.yield() } -> std::same_as<void>;
  { s.yield_low_priority() } -> std::same_as<void>;
  { s.park() } -> std::same_as<void>;
  { s.wake(t) } -> std::same_as<void>;
};

// scheduler: runs a shard's tasks. run(f) executes f on the calling (shard) thread until it
// and every task it started are done. `can_suspend` tells whether tasks may park on I/O;
// then the scheduler is a task_scheduler, a task may interleave with others of its shard at
// its suspension points (the rule at the top of this file), and the store runs every request
// as a task. Otherwise requests run one after another to completion (inline_scheduler).
template <typename S>
concept scheduler = requires(S& s) {
  { S::can_suspend } -> std::convertible_to<bool>;
  s.run([] {});
}
&&(!S::can_suspend || task_scheduler<S>);

// store_traits: the compile-time choices of an EloqStore<Traits> (traits.hpp has the
// standard ones): the key order, the page size, the I/O backend and how to make it from the
// validated options, and the scheduler (optionally configured by
// `scheduler_config(options)`). How the choices must relate is checked by traits_checks.
template <typename T>
concept store_traits = requires(const options& o) {
  typename T::comparator;
  typename T::io_type;
  typename T::scheduler_type;
  { T::page_size } -> std::convertible_to<std::size_t>;
  { T::make_io(o) } -> std::same_as<std::unique_ptr<typename T::io_type>>;
}
&&key_comparator<typename T::comparator>&& io_backend<typename T::io_type>&&
    scheduler<typename T::scheduler_type>;

}  // namespace eloqstore
