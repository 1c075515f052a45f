// uring_io: the default io_backend, io_uring on local files.
//
// Files, directories and the descriptor LRU are pread_io's (a uring_io owns one); data
// files are opened with O_DIRECT (when the file system supports it). Page reads, page
// writes and fdatasync go through io_uring when the calling thread is a shard thread that
// attached a ring (attach()), and through plain system calls otherwise (start-up, tests,
// tools): both paths give the same results.
//
// Per shard ring (`shard_ring`, one per shard thread; detail/io/uring_ring.hpp):
// * `queue_depth` submission entries; submissions are batched: a task prepares its entries
//   and parks; they are submitted at once while the device holds fewer than
//   `submit_low_water` of the ring's operations (so it never idles) or once `submit_batch`
//   are prepared, else by the shard loop with everything else of its round (poll()). Each
//   submission is a system call and, under virtio, a VM exit.
// * completions run as cooperative task work (IORING_SETUP_COOP_TASKRUN), not by an
//   interrupt per completion, where the kernel supports it;
// * a sparse fixed-file table of `registered_files` slots, filled on demand with LRU
//   replacement; a slot holds a reference to its file so the fd cannot close under it;
// * a provided-buffer ring of `read_buffers` aligned page buffers for direct reads into
//   callers' unaligned buffers (the kernel picks the buffer; the page is copied out and the
//   buffer handed back);
// * an eventfd read that is always armed, so notify() from any thread wakes a shard that
//   blocks in poll(true).
// A task waiting for I/O parks through the scheduler's suspend_hooks; outside tasks the
// caller polls the ring until its I/O is done.
//
// Retries: EINTR and EAGAIN are retried (bounded); short reads continue at the remainder,
// a read that returns 0 is end_of_file; short writes continue at the remainder.
//
// open() probes the kernel first: if io_uring or a feature it needs is missing, open()
// fails with error::io_fail and last_message() says so and names pread_io as the fallback.
//
// Thread safety: as pread_io. A shard_ring is used only by the thread that attached it,
// except notify(), which any thread may call.
#pragma once

#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <list>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/io/io_args.hpp>
#include <eloqstore/detail/io/syscall.hpp>
#include <eloqstore/detail/io/uring_engine.hpp>
#include <eloqstore/detail/io/uring_ring.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/io/pread.hpp>
#include <eloqstore/sched/hooks.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore {

class uring_io {
 public:
  using config = uring_config;

  // Direct I/O alignment of buffers, offsets and sizes.
  static constexpr std::size_t alignment = detail::uring_alignment;
  static constexpr bool uses_store_paths = true;  // local_files_io
  // Consecutive EINTR/EAGAIN results of one operation before giving up with try_again.
  static constexpr int again_retries_max = detail::uring_again_retries_max;

  uring_io(std::vector<std::string> store_paths, config c)
      : files_(std::move(store_paths), c.open_files_max), cfg_(c) {}
  explicit uring_io(std::vector<std::string> store_paths)
      : uring_io(std::move(store_paths), config{}) {}
  uring_io(const uring_io&) = delete;
  uring_io& operator=(const uring_io&) = delete;
  ~uring_io() { close(); }

  // Probes io_uring, then opens the store paths (see pread_io::open).
  [[nodiscard]] error open() {
    if (const error e = probe(); e != error::ok) {
      return e;
    }
    files_.set_direct_data(cfg_.direct);
    files_.set_read_only(read_only_);
    return files_.open();
  }
  void close() { files_.close(); }
  // Read-only: see pread_io::set_read_only. Call while closed.
  void set_read_only(bool on) noexcept { read_only_ = on; }
  [[nodiscard]] const std::string& last_message() const noexcept { return message_; }
  [[nodiscard]] const config& cfg() const noexcept { return cfg_; }

  using shard_ring = detail::uring_ring;

  // Creates the calling thread's ring; I/O of this thread goes through it until the ring is
  // destroyed. `hooks` park and wake the tasks of the thread's scheduler. nullptr (and
  // last_message()) if the ring cannot be set up.
  [[nodiscard]] std::unique_ptr<shard_ring> attach(suspend_hooks hooks) {
    auto r = std::unique_ptr<shard_ring>(new shard_ring(this, cfg_, hooks));
    if (const std::string why = r->init(); !why.empty()) {
      message_ = why;
      return nullptr;
    }
    return r;
  }

  // ---- io_backend --------------------------------------------------------------------------

  [[nodiscard]] error read(const table_ident& t, std::string_view name, std::uint64_t offset,
                           std::span<char> buf) {
    if (buf.empty()) {
      return files_.read(t, name, offset, buf);
    }
    file_ref f;
    if (const error e = files_.acquire_file(t, name, false, f); e != error::ok) {
      return e;
    }
    if (const error e = detail::check_file_range(offset, buf.size()); e != error::ok) {
      return e;
    }
    return engine().read(f, offset, buf);
  }

  [[nodiscard]] error write(const table_ident& t, std::string_view name, std::uint64_t offset,
                            std::span<const char> data) {
    file_ref f;
    if (const error e = files_.acquire_file(t, name, true, f); e != error::ok) {
      return e;
    }
    if (const error e = detail::check_file_range(offset, data.size()); e != error::ok) {
      return e;
    }
    return engine().write(f, offset, data);
  }

  // Writes a batch, coalescing runs of contiguous pages of one file, all in flight at once.
  [[nodiscard]] error write_pages(const table_ident& t, std::span<const page_write> writes) {
    std::vector<run> runs;
    if (const error e = plan_runs(t, writes, runs); e != error::ok) {
      return e;
    }
    return engine().write_runs(runs);
  }

  // Reads a batch of pages (each like read()), all in flight at once on the calling thread's
  // ring; without a ring, one after another. Fails with the first error in batch order.
  [[nodiscard]] error read_pages(const table_ident& t, std::span<const page_read> reads) {
    std::vector<file_ref> files(reads.size());
    std::string_view last_name;
    for (std::size_t i = 0; i < reads.size(); ++i) {
      const page_read& r = reads[i];
      if (i > 0 && r.name == last_name) {
        files[i] = files[i - 1];
      } else if (const error e = files_.acquire_file(t, r.name, false, files[i]); e != error::ok) {
        return e;
      }
      last_name = r.name;
    }
    return read_pages_at(files, reads);
  }

  // ---- file_handles ------------------------------------------------------------------------

  // An open file: resolved once by open_file, then read by handle (no name, no lock).
  using file_ref = detail::uring_file_ref;
  [[nodiscard]] error open_file(const table_ident& t, std::string_view name, file_ref& out) {
    return files_.acquire_file(t, name, false, out);
  }
  [[nodiscard]] error read_at(const file_ref& f, std::uint64_t offset, std::span<char> buf) {
    if (buf.empty()) {
      return pread_io::read_at(f, offset, buf);
    }
    if (const error e = detail::check_file_range(offset, buf.size()); e != error::ok) {
      return e;
    }
    return engine().read(f, offset, buf);
  }
  // read_pages with reads[i] from files[i] (reads[i].name is not used).
  [[nodiscard]] error read_pages_at(std::span<const file_ref> files,
                                    std::span<const page_read> reads) {
    for (const page_read& r : reads) {
      if (const error e = detail::check_file_range(r.offset, r.buf.size()); e != error::ok) {
        return e;
      }
    }
    shard_ring* ring = current_ring();
    if (ring == nullptr) {
      for (std::size_t i = 0; i < reads.size(); ++i) {
        if (const error e = engine().read(files[i], reads[i].offset, reads[i].buf);
            e != error::ok) {
          return e;
        }
      }
      return error::ok;
    }
    return ring->read_batch(files, reads);
  }

  [[nodiscard]] error sync(const table_ident& t, std::string_view name) {
    if (current_ring() == nullptr) {
      return files_.sync(t, name);
    }
    file_ref f;
    if (const error e = files_.acquire_file(t, name, false, f); e != error::ok) {
      return e;
    }
    return current_ring()->datasync(f);
  }

  [[nodiscard]] error sync_dir(const table_ident& t) { return files_.sync_dir(t); }
  [[nodiscard]] error read_file(const table_ident& t, std::string_view name, std::string& out) {
    if (is_data_file(name) && cfg_.direct) {
      return error::invalid_args;  // data files are read page by page
    }
    return files_.read_file(t, name, out);
  }
  // read_file of any file, data files included (pread_io::read_file_buffered).
  [[nodiscard]] error read_file_buffered(const table_ident& t, std::string_view name,
                                         std::string& out) {
    return files_.read_file_buffered(t, name, out);
  }
  [[nodiscard]] error write_file_atomic(const table_ident& t, std::string_view name,
                                        std::span<const char> data) {
    return files_.write_file_atomic(t, name, data);
  }
  [[nodiscard]] error remove(const table_ident& t, std::string_view name) {
    return files_.remove(t, name);
  }
  [[nodiscard]] error list(const table_ident& t, std::vector<std::string>& names) {
    return files_.list(t, names);
  }
  [[nodiscard]] error list_partitions(std::vector<table_ident>& tables) {
    return files_.list_partitions(tables);
  }

 private:
  using run = detail::uring_run;

  // Coalesces a batch into runs of contiguous pages of one file (at most write_run_max bytes
  // each) and preallocates the files ahead of them.
  [[nodiscard]] error plan_runs(const table_ident& t, std::span<const page_write> writes,
                                std::vector<run>& runs) {
    std::string_view last_name;
    file_ref f;
    for (const page_write& w : writes) {
      if (const error e = detail::check_file_range(w.offset, w.data.size()); e != error::ok) {
        return e;
      }
      if (f == nullptr || w.name != last_name) {
        if (const error e = files_.acquire_file(t, w.name, true, f); e != error::ok) {
          return e;
        }
        last_name = w.name;
      }
      if (w.data.empty()) {
        continue;
      }
      if (!runs.empty()) {
        run& r = runs.back();
        if (r.file == f && r.offset + r.bytes == w.offset &&
            r.bytes + w.data.size() <= cfg_.write_run_max) {
          r.parts.push_back(w.data);
          r.bytes += w.data.size();
          continue;
        }
      }
      runs.push_back(run{f, w.offset, w.data.size(), {w.data}});
    }
    return reserve_ahead(runs);
  }

  // Preallocates the direct files `runs` write up to their furthest end (pread_io::reserve).
  [[nodiscard]] static error reserve_ahead(const std::vector<run>& runs) {
    for (std::size_t i = 0; i < runs.size();) {
      pread_io::file_handle& file = *runs[i].file;
      std::uint64_t end = 0;
      for (; i < runs.size() && runs[i].file.get() == &file; ++i) {
        end = std::max(end, runs[i].offset + runs[i].bytes);
      }
      if (file.direct) {
        if (const error e = pread_io::reserve(file, end); e != error::ok) {
          return e;
        }
      }
    }
    return error::ok;
  }

  [[nodiscard]] static bool is_data_file(std::string_view name) noexcept {
    return name.starts_with("data_");
  }

 public:
 private:
  [[nodiscard]] shard_ring* current_ring() const {
    shard_ring* r = detail::uring_current_ring();
    return r != nullptr && r->owner_ == this ? r : nullptr;
  }

  // The engine of the calling thread: the ring's, or blocking system calls.
  struct any_engine {
    shard_ring* ring;
    error read(const file_ref& f, std::uint64_t off, std::span<char> buf) {
      if (ring != nullptr) {
        return detail::engine_ops<typename shard_ring::raw_ops>{{ring}}.read(f, off, buf);
      }
      return detail::engine_ops<detail::syscall_raw>{}.read(f, off, buf);
    }
    error write(const file_ref& f, std::uint64_t off, std::span<const char> data) {
      if (ring != nullptr) {
        return detail::engine_ops<typename shard_ring::raw_ops>{{ring}}.write(f, off, data);
      }
      return detail::engine_ops<detail::syscall_raw>{}.write(f, off, data);
    }
    error write_runs(std::vector<run>& runs) {
      if (ring != nullptr) {
        return detail::engine_ops<typename shard_ring::raw_ops>{{ring}}.write_runs(runs);
      }
      return detail::engine_ops<detail::syscall_raw>{}.write_runs(runs);
    }
  };
  [[nodiscard]] any_engine engine() const { return any_engine{current_ring()}; }

  // Checks that the kernel has io_uring and the features the rings use.
  error probe() {
    io_uring ring{};
    if (const int rc = io_uring_queue_init(8, &ring, 0); rc < 0) {
      message_ = std::string("io_uring is not available (io_uring_setup: ") + std::strerror(-rc) +
                 "); use eloqstore::pread_io (eloqstore::pread_traits) instead";
      return error::io_fail;
    }
    io_uring_probe* p = io_uring_get_probe_ring(&ring);
    std::string missing;
    if (p == nullptr) {
      missing = "opcode probe";
    } else {
      const std::pair<int, const char*> needed[] = {{IORING_OP_READ, "READ"},
                                                    {IORING_OP_WRITE, "WRITE"},
                                                    {IORING_OP_WRITEV, "WRITEV"},
                                                    {IORING_OP_FSYNC, "FSYNC"}};
      for (const auto& [opcode, name] : needed) {
        if (!io_uring_opcode_supported(p, opcode)) {
          missing += missing.empty() ? name : std::string(", ") + name;
        }
      }
      io_uring_free_probe(p);
    }
    shard_ring::tsan_ring_unmapping();
    io_uring_queue_exit(&ring);
    if (!missing.empty()) {
      message_ = "io_uring lacks " + missing +
                 "; use eloqstore::pread_io (eloqstore::pread_traits) instead";
      return error::io_fail;
    }
    return error::ok;
  }

  pread_io files_;
  config cfg_;
  bool read_only_ = false;
  std::string message_;

 public:
  // A batch of page writes started by begin_write_pages() and not yet finished. Destroying
  // it finishes the writes (waiting for them) and drops their result.
  class write_ticket {
   public:
    write_ticket() = default;
    write_ticket(write_ticket&&) noexcept = default;
    write_ticket& operator=(write_ticket&&) noexcept = default;

   private:
    friend class uring_io;
    std::unique_ptr<shard_ring::write_flight> flight_;
    error result_ = error::ok;  // of writes done at once (no ring on this thread)
  };

  // Starts writing a batch like write_pages() and returns at once; the caller keeps the
  // pages' buffers alive and unchanged until finish_write_pages(). On a thread without a
  // ring the writes are done before it returns. An error here means nothing was started.
  [[nodiscard]] error begin_write_pages(const table_ident& t, std::span<const page_write> writes,
                                        write_ticket& out) {
    std::vector<run> runs;
    if (const error e = plan_runs(t, writes, runs); e != error::ok) {
      return e;
    }
    shard_ring* ring = current_ring();
    if (ring == nullptr) {
      out.result_ = engine().write_runs(runs);
      return error::ok;
    }
    out.flight_ = std::make_unique<shard_ring::write_flight>(*ring, std::move(runs));
    return error::ok;
  }

  // Waits for a batch begun by begin_write_pages(); the first error of its writes.
  [[nodiscard]] error finish_write_pages(write_ticket& ticket) {
    error e = ticket.result_;
    if (ticket.flight_ != nullptr) {
      e = ticket.flight_->finish();
      ticket.flight_.reset();
    }
    ticket.result_ = error::ok;
    return e;
  }
};

static_assert(io_backend<uring_io>);
static_assert(batched_io<uring_io>);
static_assert(async_page_writes<uring_io>);
static_assert(ring_io<uring_io>);

}  // namespace eloqstore
