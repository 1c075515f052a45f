// The policies EloqStore<Traits> is built from, as C++20 concepts, with the contracts the
// compiler cannot check written beside them.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <eloqstore/comparator.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/sched/hooks.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore {

struct options;

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

// One page-sized read of a batch (see batched_reads).
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

// scheduler: runs a shard's tasks. Contract: run(f) executes f on the calling (shard) thread;
// `can_suspend` tells whether tasks may park on I/O (then a task may interleave with others
// of the same shard at its suspension points, and must re-check invariants after each).
template <typename S>
concept scheduler = requires(S& s) {
  { S::can_suspend } -> std::convertible_to<bool>;
  s.run([] {});
};

}  // namespace eloqstore
