// page_ops<IO>: the batched and asynchronous page operations, for every io_backend.
//
// A backend that has an operation (batched_io, async_page_writes, batched_reads,
// batched_handle_reads) does it in one call; for the others a plain default does each page
// with write(), read() or read_at() in batch order. The commit protocol and the tree above
// call these and never ask what the backend can do: the capability branches of the store
// live here and in page_access (detail/commit/page_io.hpp), which picks handles or names.
//
// Semantics are those of the concepts (concepts.hpp): a batch behaves as its elements one by
// one; on failure some of them may have been done. begin_write_pages on a backend without
// asynchronous writes writes the batch before returning; its ticket is then already done.
#pragma once

#include <cstddef>
#include <span>

#include <eloqstore/concepts.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore::detail {

// The ticket of a write in flight: the backend's (async_page_writes) or an empty stand-in.
struct done_write_ticket {};
template <typename IO, bool = async_page_writes<IO>>
struct write_ticket_of {
  using type = done_write_ticket;
};
template <typename IO>
struct write_ticket_of<IO, true> {
  using type = typename IO::write_ticket;
};

template <io_backend IO>
struct page_ops {
  using write_ticket = typename write_ticket_of<IO>::type;

  [[nodiscard]] static error write_pages(IO& io, const table_ident& t,
                                         std::span<const page_write> writes) {
    if constexpr (batched_io<IO>) {
      return io.write_pages(t, writes);
    } else {
      for (const page_write& w : writes) {
        if (const error e = io.write(t, w.name, w.offset, w.data); e != error::ok) {
          return e;
        }
      }
      return error::ok;
    }
  }

  // Starts the writes; the caller keeps their buffers alive and unchanged until
  // finish_write_pages(ticket).
  [[nodiscard]] static error begin_write_pages(IO& io, const table_ident& t,
                                               std::span<const page_write> writes,
                                               write_ticket& ticket) {
    if constexpr (async_page_writes<IO>) {
      return io.begin_write_pages(t, writes, ticket);
    } else {
      (void)ticket;
      return write_pages(io, t, writes);
    }
  }

  // Waits for the writes of `ticket`; the first error among them.
  [[nodiscard]] static error finish_write_pages(IO& io, write_ticket& ticket) {
    if constexpr (async_page_writes<IO>) {
      return io.finish_write_pages(ticket);
    } else {
      (void)io;
      (void)ticket;
      return error::ok;
    }
  }

  // Reads every element; the first error in batch order.
  [[nodiscard]] static error read_pages(IO& io, const table_ident& t,
                                        std::span<const page_read> reads) {
    if constexpr (batched_reads<IO>) {
      return io.read_pages(t, reads);
    } else {
      for (const page_read& r : reads) {
        if (const error e = io.read(t, r.name, r.offset, r.buf); e != error::ok) {
          return e;
        }
      }
      return error::ok;
    }
  }

  // reads[i] from files[i] (reads[i].name unused). REQUIRES: file_handles<IO>.
  template <typename Ref>
  [[nodiscard]] static error read_pages_at(IO& io, std::span<const Ref> files,
                                           std::span<const page_read> reads) {
    static_assert(file_handles<IO>, "read_pages_at reads by file handle");
    if constexpr (batched_handle_reads<IO>) {
      return io.read_pages_at(files, reads);
    } else {
      for (std::size_t i = 0; i < reads.size(); ++i) {
        if (const error e = io.read_at(files[i], reads[i].offset, reads[i].buf); e != error::ok) {
          return e;
        }
      }
      return error::ok;
    }
  }
};

}  // namespace eloqstore::detail
