// uring_io: the default io_backend, io_uring on local files.
//
// Files, directories and the descriptor LRU are pread_io's (a uring_io owns one); data
// files are opened with O_DIRECT (when the file system supports it). Page reads, page
// writes and fdatasync go through io_uring when the calling thread is a shard thread that
// attached a ring (attach()), and through plain system calls otherwise (start-up, tests,
// tools): both paths give the same results.
//
// Per shard ring (`shard_ring`, one per shard thread):
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
#include <eloqstore/error.hpp>
#include <eloqstore/io/pread.hpp>
#include <eloqstore/sched/hooks.hpp>
#include <eloqstore/table_ident.hpp>

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define ELOQSTORE_URING_TSAN 1
#endif

namespace eloqstore {

class uring_io {
 public:
  struct config {
    std::size_t open_files_max = pread_io::open_files_max_default;
    unsigned queue_depth = 4096;             // submission entries per shard ring
    unsigned registered_files = 256;         // fixed-file slots per ring
    unsigned read_buffers = 256;             // provided read buffers per ring (a power of two)
    std::size_t buffer_bytes = 4096;         // bytes per provided buffer (a multiple of 4096)
    bool direct = true;                      // O_DIRECT for data files
    std::size_t write_run_max = 256 * 1024;  // bytes per coalesced write
    // A task's read or write is submitted at once while fewer than submit_low_water of the
    // ring's operations are in the device, else once submit_batch are prepared, else at the
    // end of the shard's round.
    unsigned submit_low_water = 8;
    unsigned submit_batch = 16;
  };

  // Direct I/O alignment of buffers, offsets and sizes.
  static constexpr std::size_t alignment = 4096;
  static constexpr bool uses_store_paths = true;  // local_files_io
  // Consecutive EINTR/EAGAIN results of one operation before giving up with try_again.
  static constexpr int again_retries_max = 64;

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

  class shard_ring;

  // Creates the calling thread's ring; I/O of this thread goes through it until the ring is
  // destroyed. `hooks` park and wake the tasks of the thread's scheduler. nullptr (and
  // last_message()) if the ring cannot be set up.
  [[nodiscard]] std::unique_ptr<shard_ring> attach(suspend_hooks hooks) {
    auto r = std::unique_ptr<shard_ring>(new shard_ring(*this, hooks));
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
  using file_ref = std::shared_ptr<pread_io::file_handle>;
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
  // A coalesced write: contiguous parts of one file starting at `offset`.
  struct run {
    file_ref file;
    std::uint64_t offset = 0;
    std::size_t bytes = 0;
    std::vector<std::span<const char>> parts;
  };

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

  // Aligned scratch memory, freed on destruction.
  struct aligned_buffer {
    char* data = nullptr;
    std::size_t size = 0;
    explicit aligned_buffer(std::size_t n)
        : data(n == 0 ? nullptr : static_cast<char*>(std::aligned_alloc(alignment, round_up(n)))),
          size(round_up(n)) {
      if (n != 0 && data == nullptr) {
        throw std::bad_alloc();
      }
    }
    aligned_buffer(const aligned_buffer&) = delete;
    aligned_buffer& operator=(const aligned_buffer&) = delete;
    aligned_buffer(aligned_buffer&& o) noexcept
        : data(std::exchange(o.data, nullptr)), size(o.size) {}
    aligned_buffer& operator=(aligned_buffer&& o) noexcept {
      std::swap(data, o.data);
      std::swap(size, o.size);
      return *this;
    }
    ~aligned_buffer() { std::free(data); }
  };

  [[nodiscard]] static std::size_t round_up(std::size_t n) noexcept {
    return (n + alignment - 1) / alignment * alignment;
  }
  [[nodiscard]] static bool aligned(const void* p, std::uint64_t offset, std::size_t n) noexcept {
    return reinterpret_cast<std::uintptr_t>(p) % alignment == 0 && offset % alignment == 0 &&
           n % alignment == 0;
  }
  [[nodiscard]] static bool is_data_file(std::string_view name) noexcept {
    return name.starts_with("data_");
  }
  [[nodiscard]] static error from_result(int res) noexcept {
    return res >= 0 ? error::ok : error_from_errno(-res);
  }

  // ---- the two engines: system calls and the ring -------------------------------------------
  //
  // Both implement the same primitive transfers on one file: `transfer(f, offset, buf)` moves
  // all of an aligned-or-buffered range. Alignment for direct files is handled once, above
  // them, in read()/write() of `engine_ops`.

  // The shape shared by the blocking and the ring engines: direct-I/O alignment handling
  // around a raw "transfer what you can" primitive.
  template <typename Raw>
  struct engine_ops {
    Raw raw;

    // Reads all of buf at offset.
    error read(const file_ref& f, std::uint64_t offset, std::span<char> buf) {
      if (!f->direct || aligned(buf.data(), offset, buf.size())) {
        return read_exact(f, offset, buf);
      }
      if (offset % alignment == 0 && buf.size() % alignment == 0) {
        if (const int done = raw.read_provided(f, offset, buf); done != raw.no_provided) {
          return done < 0 ? from_result(done) : error::ok;
        }
      }
      // Bounce through an aligned copy of the enclosing blocks.
      const std::uint64_t lo = offset / alignment * alignment;
      const std::size_t span_bytes = round_up(offset + buf.size() - lo);
      aligned_buffer tmp(span_bytes);
      std::size_t got = 0;
      if (const error e = read_some(f, lo, {tmp.data, span_bytes}, got); e != error::ok) {
        return e;
      }
      if (got < offset - lo + buf.size()) {
        return error::end_of_file;
      }
      std::memcpy(buf.data(), tmp.data + (offset - lo), buf.size());
      return error::ok;
    }

    // Writes all of data at offset; unaligned direct writes read-modify-write their blocks.
    error write(const file_ref& f, std::uint64_t offset, std::span<const char> data) {
      if (!f->direct || aligned(data.data(), offset, data.size())) {
        return write_exact(f, offset, data);
      }
      const std::uint64_t lo = offset / alignment * alignment;
      const std::size_t span_bytes = round_up(offset + data.size() - lo);
      aligned_buffer tmp(span_bytes);
      std::memset(tmp.data, 0, span_bytes);
      std::size_t got = span_bytes;
      if (lo != offset || span_bytes != data.size()) {
        // The blocks' old bytes (zeros past the end of the file).
        if (const error e = read_some(f, lo, {tmp.data, span_bytes}, got); e != error::ok) {
          return e;
        }
      }
      std::memcpy(tmp.data + (offset - lo), data.data(), data.size());
      if (const error e = write_exact(f, lo, {tmp.data, span_bytes}); e != error::ok) {
        return e;
      }
      // The whole last block went out: cut the file back to where the data ends if that
      // block was past the old end.
      const std::uint64_t end = std::max<std::uint64_t>(lo + got, offset + data.size());
      if (end < lo + span_bytes && ::ftruncate(f->fd, static_cast<off_t>(end)) != 0) {
        return error_from_errno(errno);
      }
      return error::ok;
    }

    // Reads until buf is full or the file ends; `got` is what was read.
    error read_some(const file_ref& f, std::uint64_t offset, std::span<char> buf,
                    std::size_t& got) {
      got = 0;
      int again = 0;
      while (got < buf.size()) {
        const int res = raw.pread(f, buf.data() + got, buf.size() - got, offset + got);
        if (res == -EINTR || res == -EAGAIN) {
          if (++again > again_retries_max) {
            return error::try_again;
          }
          continue;
        }
        if (res < 0) {
          return from_result(res);
        }
        if (res == 0 || (f->direct && res % alignment != 0)) {
          got += static_cast<std::size_t>(res);
          return error::ok;  // end of file (a direct read cannot continue unaligned)
        }
        got += static_cast<std::size_t>(res);
      }
      return error::ok;
    }
    error read_exact(const file_ref& f, std::uint64_t offset, std::span<char> buf) {
      std::size_t got = 0;
      if (const error e = read_some(f, offset, buf, got); e != error::ok) {
        return e;
      }
      return got == buf.size() ? error::ok : error::end_of_file;
    }
    error write_exact(const file_ref& f, std::uint64_t offset, std::span<const char> data) {
      std::size_t done = 0;
      int again = 0;
      while (done < data.size()) {
        const int res = raw.pwrite(f, data.data() + done, data.size() - done, offset + done);
        if (res == -EINTR || res == -EAGAIN || res == 0) {
          if (++again > again_retries_max) {
            return error::try_again;
          }
          continue;
        }
        if (res < 0) {
          return from_result(res);
        }
        done += static_cast<std::size_t>(res);
      }
      return error::ok;
    }

    // Writes every run; the ring engine overlaps them.
    error write_runs(std::vector<run>& runs) {
      if constexpr (requires { raw.write_runs(runs, *this); }) {
        return raw.write_runs(runs, *this);
      } else {
        for (const run& r : runs) {
          if (const error e = write_gathered(r); e != error::ok) {
            return e;
          }
        }
        return error::ok;
      }
    }
    // One run through one contiguous buffer (copied into aligned memory for direct files).
    error write_gathered(const run& r) {
      if (r.parts.size() == 1) {
        return write(r.file, r.offset, r.parts[0]);
      }
      aligned_buffer tmp(r.bytes);
      std::size_t at = 0;
      for (const auto& part : r.parts) {
        std::memcpy(tmp.data + at, part.data(), part.size());
        at += part.size();
      }
      return write(r.file, r.offset, {tmp.data, r.bytes});
    }
  };

  // Blocking system calls (threads without a ring).
  struct syscall_raw {
    static constexpr int no_provided = 1;
    int pread(const file_ref& f, char* p, std::size_t n, std::uint64_t off) {
      const ssize_t r =
          detail::retry_eintr([&] { return ::pread(f->fd, p, n, static_cast<off_t>(off)); });
      return r < 0 ? -errno : static_cast<int>(r);
    }
    int pwrite(const file_ref& f, const char* p, std::size_t n, std::uint64_t off) {
      const ssize_t r =
          detail::retry_eintr([&] { return ::pwrite(f->fd, p, n, static_cast<off_t>(off)); });
      return r < 0 ? -errno : static_cast<int>(r);
    }
    int read_provided(const file_ref&, std::uint64_t, std::span<char>) { return no_provided; }
  };

 public:
  class shard_ring {
   public:
    shard_ring(const shard_ring&) = delete;
    shard_ring& operator=(const shard_ring&) = delete;
    ~shard_ring() {
      if (!ready_) {
        return;
      }
      closing_ = true;  // the eventfd read completes once more and is not re-armed
      notify();
      while (in_flight_ > 0) {  // every operation's memory must outlive its completion
        poll(true);
      }
      if (current_ring_slot() == this) {
        current_ring_slot() = nullptr;
      }
      tsan_ring_unmapping();
      io_uring_queue_exit(&ring_);
      if (buf_ring_ != nullptr) {
        ::munmap(buf_ring_, buf_ring_bytes_);
      }
      if (buffers_ != nullptr) {
        ::munmap(buffers_, buffers_bytes_);
      }
      if (event_fd_ >= 0) {
        ::close(event_fd_);
      }
    }

    // Wakes the thread blocked in poll(true). Any thread.
    void notify() noexcept {
      const std::uint64_t one = 1;
      [[maybe_unused]] const ssize_t n = ::write(event_fd_, &one, sizeof one);
    }

    // Submits every prepared operation and completes the finished ones, waking their tasks.
    // With `wait`, blocks until at least one completion (or notify()) first.
    void poll(bool wait) {
      for (;;) {
        const int rc = wait ? io_uring_submit_and_wait(&ring_, 1) : io_uring_submit(&ring_);
        note_submitted(rc);
        if (rc >= 0 || (rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)) {
          break;
        }
        if (rc == -EBUSY || rc == -EAGAIN) {
          wait = false;  // completions are backed up: reap them first
          reap();
        }
      }
      reap();
    }

    // Submits what is prepared, without waiting (errors other than a full completion queue
    // surface at the next poll).
    void submit() {
      int rc = 0;
      do {
        rc = io_uring_submit(&ring_);
      } while (rc == -EINTR);
      note_submitted(rc);
    }

    [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_; }
    [[nodiscard]] bool has_unsubmitted() const noexcept { return io_uring_sq_ready(&ring_) != 0; }

   private:
    friend class uring_io;

    struct waiter {
      void* task = nullptr;
      unsigned pending = 0;
    };
    struct op {
      waiter* w = nullptr;  // nullptr: the eventfd read
      int res = 0;
      std::uint32_t flags = 0;
    };

    shard_ring(uring_io& owner, suspend_hooks hooks) : owner_(owner), hooks_(hooks) {}

    // Sets the ring up; returns why it failed, or "".
    std::string init() {
      const config& c = owner_.cfg_;
      io_uring_params params{};
      // Completions run as task work of this thread when it next enters the kernel, instead
      // of interrupting it with an IPI per completion (a profile at queue depth 128 showed
      // reschedule IPIs at 12% of the shard's time; a throughput A/B could not tell the flag
      // from the disk's noise). TASKRUN_FLAG makes io_uring_submit enter the kernel when such
      // work waits. Kernels before 5.19 refuse the flags: plain ring then.
      params.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
      int rc = io_uring_queue_init_params(std::max(8U, c.queue_depth), &ring_, &params);
      if (rc == -EINVAL) {
        params = io_uring_params{};
        rc = io_uring_queue_init_params(std::max(8U, c.queue_depth), &ring_, &params);
      }
      if (rc < 0) {
        return std::string("io_uring_queue_init: ") + std::strerror(-rc);
      }
      tsan_ring_mapped();
      ready_ = true;
      event_fd_ = ::eventfd(0, EFD_CLOEXEC);
      if (event_fd_ < 0) {
        return std::string("eventfd: ") + std::strerror(errno);
      }
      arm_eventfd();
      if (c.registered_files > 0 &&
          io_uring_register_files_sparse(&ring_, c.registered_files) == 0) {
        slots_.resize(c.registered_files);
        slot_of_.reserve(c.registered_files);
        for (unsigned i = 0; i < c.registered_files; ++i) {
          slot_lru_.push_back(static_cast<int>(i));
          slots_[i].lru = std::prev(slot_lru_.end());
        }
      }
      if (c.read_buffers > 0) {
        if (const std::string why = setup_buffers(); !why.empty()) {
          return why;
        }
      }
      current_ring_slot() = this;
      return {};
    }

    std::string setup_buffers() {
      const config& c = owner_.cfg_;
      unsigned n = 1;
      while (n < c.read_buffers && n < 32768) {
        n <<= 1;
      }
      buf_ring_bytes_ = round_up(n * sizeof(io_uring_buf));
      void* mem = ::mmap(nullptr, buf_ring_bytes_, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
      if (mem == MAP_FAILED) {
        return std::string("mmap of the buffer ring: ") + std::strerror(errno);
      }
      buf_ring_ = static_cast<io_uring_buf_ring*>(mem);
      io_uring_buf_ring_init(buf_ring_);
      io_uring_buf_reg reg{};
      reg.ring_addr = reinterpret_cast<std::uint64_t>(mem);
      reg.ring_entries = n;
      reg.bgid = buffer_group;
      if (const int rc = io_uring_register_buf_ring(&ring_, &reg, 0); rc < 0) {
        return std::string("io_uring_register_buf_ring: ") + std::strerror(-rc);
      }
      buffer_bytes_ = round_up(c.buffer_bytes);
      buffers_bytes_ = n * buffer_bytes_;
      mem = ::mmap(nullptr, buffers_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1,
                   0);
      if (mem == MAP_FAILED) {
        buffers_ = nullptr;
        return std::string("mmap of the read buffers: ") + std::strerror(errno);
      }
      buffers_ = static_cast<char*>(mem);
      buffer_count_ = n;
      for (unsigned i = 0; i < n; ++i) {
        io_uring_buf_ring_add(buf_ring_, buffers_ + std::size_t{i} * buffer_bytes_,
                              static_cast<unsigned>(buffer_bytes_), static_cast<unsigned short>(i),
                              io_uring_buf_ring_mask(n), static_cast<int>(i));
      }
      io_uring_buf_ring_advance(buf_ring_, static_cast<int>(n));
      return {};
    }

    void arm_eventfd() {
      io_uring_sqe* sqe = next_sqe();
      io_uring_prep_read(sqe, event_fd_, &event_value_, sizeof event_value_, 0);
      io_uring_sqe_set_data(sqe, &event_op_);
      ++in_flight_;
      event_unsubmitted_ = true;
    }
    // After a submission: once nothing prepared is left, the eventfd read is in the kernel.
    void note_submitted(int rc) noexcept {
      if (rc >= 0 && io_uring_sq_ready(&ring_) == 0) {
        event_unsubmitted_ = false;
      }
    }

    // A free submission entry, submitting what is prepared when the queue is full.
    io_uring_sqe* next_sqe() {
      for (;;) {
        if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_); sqe != nullptr) {
          return sqe;
        }
        poll(false);
      }
    }

    // Points `sqe` at f's registered slot (registering it on a miss) or at its fd. Never
    // fails and never throws: it runs after the entry is prepared, when an exception would
    // leave a prepared entry pointing at an operation that unwinding destroys. The slots are
    // all in the LRU from init() (unused ones at the back), so only a new file's map entry is
    // allocated, before anything changes; without memory the plain fd serves.
    void set_file(io_uring_sqe* sqe, const file_ref& f) noexcept {
      if (slots_.empty()) {
        return;
      }
      int slot = -1;
      if (const auto it = slot_of_.find(f.get()); it != slot_of_.end()) {
        slot = it->second;
      } else {
        decltype(slot_of_)::iterator mine;
        try {
          mine = slot_of_.try_emplace(f.get(), -1).first;
        } catch (const std::bad_alloc&) {
          return;
        }
        slot = slot_lru_.back();  // unused, or the least recently used
        if (slots_[slot].file != nullptr && io_uring_sq_ready(&ring_) > 1) {
          // Entries prepared but not yet submitted may name the victim's slot; registering
          // another file there would point them at it. This one uses the plain fd.
          slot_of_.erase(mine);
          return;
        }
        if (slots_[slot].file != nullptr) {
          slot_of_.erase(slots_[slot].file.get());
          slots_[slot].file.reset();
        }
        int fd = f->fd;
        if (io_uring_register_files_update(&ring_, static_cast<unsigned>(slot), &fd, 1) != 1) {
          slot_of_.erase(mine);  // the slot stays unused at the back; the plain fd serves
          return;
        }
        slots_[slot].file = f;
        mine->second = slot;
      }
      slot_lru_.splice(slot_lru_.begin(), slot_lru_, slots_[slot].lru);
      sqe->fd = slot;
      sqe->flags |= IOSQE_FIXED_FILE;
    }

    // Waits until every operation of `w` has completed: parks the running task, or polls
    // the ring when there is none.
    void wait_for(waiter& w) {
      w.task = hooks_.running_task();
      if (w.task != nullptr && w.pending != 0) {
        submit_soon();
      }
      while (w.pending != 0) {
        if (w.task != nullptr) {
          hooks_.park(hooks_.sched);
        } else {
          poll(true);
        }
      }
    }

    // One operation, prepared by `prep(sqe)`, run to completion.
    template <typename Prep>
    op run_one(const file_ref& f, Prep&& prep) {
      waiter w;
      op o{&w};
      io_uring_sqe* sqe = next_sqe();
      prep(sqe);
      set_file(sqe, f);
      io_uring_sqe_set_data(sqe, &o);
      w.pending = 1;
      ++in_flight_;
      wait_for(w);
      return o;
    }

    // Submits a task's operation now when the device holds few of ours (it would idle) or
    // enough are prepared; otherwise the shard loop submits them with the rest of its round.
    // Each submission costs a system call and a device notification (a VM exit under
    // virtio): at queue depth 32-128 one per read took a quarter of the shard's time.
    void submit_soon() {
      const config& c = owner_.cfg_;
      const unsigned prepared = io_uring_sq_ready(&ring_);
      // The eventfd read waits in the kernel, not in the device; while it is still prepared
      // (just re-armed) `prepared` counts it already.
      const std::size_t armed = closing_ || event_unsubmitted_ ? 0 : 1;
      const std::size_t busy = in_flight_ - prepared - std::min(armed, in_flight_ - prepared);
      if (prepared >= c.submit_batch || busy < c.submit_low_water) {
        submit();
      }
    }

    void reap() {
      io_uring_cqe* cqe = nullptr;
      unsigned head = 0;
      unsigned seen = 0;
      bool rearm = false;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        --in_flight_;
        auto* o = static_cast<op*>(io_uring_cqe_get_data(cqe));
        if (o == &event_op_) {
          rearm = true;
          continue;
        }
        o->res = cqe->res;
        o->flags = cqe->flags;
        if (--o->w->pending == 0 && o->w->task != nullptr) {
          hooks_.wake(hooks_.sched, o->w->task);
        }
      }
      io_uring_cq_advance(&ring_, seen);
      if (rearm && !closing_) {
        arm_eventfd();
      }
    }

   public:
    // The ring's raw transfers (see engine_ops); internal.
    struct raw_ops {
      static constexpr int no_provided = 1;
      shard_ring* r;
      int pread(const file_ref& f, char* p, std::size_t n, std::uint64_t off) {
        return r
            ->run_one(f,
                      [&](io_uring_sqe* sqe) {
                        io_uring_prep_read(sqe, f->fd, p, static_cast<unsigned>(n), off);
                      })
            .res;
      }
      int pwrite(const file_ref& f, const char* p, std::size_t n, std::uint64_t off) {
        return r
            ->run_one(f,
                      [&](io_uring_sqe* sqe) {
                        io_uring_prep_write(sqe, f->fd, p, static_cast<unsigned>(n), off);
                      })
            .res;
      }
      // A page read into a provided buffer, copied to buf: its byte count (== buf.size()),
      // a negative errno, or no_provided when no buffer fits (the caller bounces instead).
      int read_provided(const file_ref& f, std::uint64_t off, std::span<char> buf) {
        if (r->buffers_ == nullptr || buf.size() > r->buffer_bytes_) {
          return no_provided;
        }
        for (int again = 0; again <= again_retries_max; ++again) {
          const op o = r->run_one(f, [&](io_uring_sqe* sqe) {
            io_uring_prep_read(sqe, f->fd, nullptr, static_cast<unsigned>(buf.size()), off);
            sqe->flags |= IOSQE_BUFFER_SELECT;
            sqe->buf_group = buffer_group;
          });
          if ((o.flags & IORING_CQE_F_BUFFER) != 0) {
            const unsigned id = o.flags >> IORING_CQE_BUFFER_SHIFT;
            char* src = r->buffers_ + std::size_t{id} * r->buffer_bytes_;
            if (o.res > 0) {
              std::memcpy(buf.data(), src, std::min<std::size_t>(buf.size(), o.res));
            }
            r->give_back(id);
          }
          if (o.res == -ENOBUFS) {
            return no_provided;  // every buffer is out: bounce through private memory
          }
          if (o.res == -EINTR || o.res == -EAGAIN) {
            continue;
          }
          if (o.res >= 0 && static_cast<std::size_t>(o.res) < buf.size()) {
            return -ENODATA;  // short: the page is not whole on disk
          }
          return o.res;
        }
        return -EAGAIN;
      }

      // Every run in flight at once (in windows of 64), then short or failed ones retried one
      // by one.
      error write_runs(std::vector<run>& runs, engine_ops<raw_ops>&) {
        constexpr std::size_t window = 64;
        error first = error::ok;
        for (std::size_t base = 0; base < runs.size(); base += window) {
          const std::size_t n = std::min(window, runs.size() - base);
          write_flight f(*r,
                         std::vector<run>(runs.begin() + static_cast<std::ptrdiff_t>(base),
                                          runs.begin() + static_cast<std::ptrdiff_t>(base + n)));
          if (const error e = f.finish(); e != error::ok && first == error::ok) {
            first = e;
          }
        }
        return first;
      }
    };

    // Runs of page writes in flight on this ring: the constructor prepares and submits them,
    // finish() waits for them and writes again, the careful way, any that came back short,
    // interrupted or unaligned. The kernel reads the runs' buffers (which the caller keeps
    // alive and unchanged) and this object's iovecs until then, so the destructor finishes
    // what is still in flight.
    class write_flight {
     public:
      // Everything that allocates is done before the first operation is prepared: an
      // exception here leaves nothing in flight that would point at this object.
      write_flight(shard_ring& ring, std::vector<run> runs)
          : ring_(ring), runs_(std::move(runs)), staged_(runs_.size()) {
        for (std::size_t i = 0; i < runs_.size(); ++i) {
          const run& rn = runs_[i];
          staged& s = staged_[i];
          s.o.w = &w_;
          const bool parts_aligned = std::all_of(rn.parts.begin(), rn.parts.end(),
                                                 [&](std::span<const char> part) {
                                                   return aligned(part.data(), 0, part.size());
                                                 }) &&
                                     aligned(nullptr, rn.offset, 0);
          if (rn.file->direct && !parts_aligned) {
            s.copy = aligned_buffer(rn.bytes);
            std::size_t at = 0;
            for (const auto& part : rn.parts) {
              std::memcpy(s.copy.data + at, part.data(), part.size());
              at += part.size();
            }
            s.iov.push_back(iovec{s.copy.data, rn.bytes});
            if (!aligned(s.copy.data, rn.offset, rn.bytes)) {
              s.iov.clear();  // unaligned: written alone by finish()
              s.o.res = -EINVAL;
            }
          } else {
            s.iov.reserve(rn.parts.size());
            for (const auto& part : rn.parts) {
              s.iov.push_back(iovec{const_cast<char*>(part.data()), part.size()});
            }
          }
        }
        for (std::size_t i = 0; i < runs_.size(); ++i) {
          const run& rn = runs_[i];
          staged& s = staged_[i];
          if (s.iov.empty()) {
            continue;  // unaligned (above): finish() writes it
          }
          io_uring_sqe* sqe = ring_.next_sqe();
          io_uring_prep_writev(sqe, rn.file->fd, s.iov.data(), static_cast<unsigned>(s.iov.size()),
                               rn.offset);
          ring_.set_file(sqe, rn.file);
          io_uring_sqe_set_data(sqe, &s.o);
          ++w_.pending;
          ++ring_.in_flight_;
        }
        if (w_.pending != 0) {
          ring_.submit();  // the device starts now; the caller goes on with other work
        }
      }
      write_flight(const write_flight&) = delete;
      write_flight& operator=(const write_flight&) = delete;
      ~write_flight() {
        if (!finished_) {
          (void)finish();
        }
      }

      // Waits for every run (parking the calling task); the first error in run order.
      [[nodiscard]] error finish() {
        finished_ = true;
        ring_.wait_for(w_);
        engine_ops<raw_ops> ops{{&ring_}};
        error first = error::ok;
        for (std::size_t i = 0; i < runs_.size(); ++i) {
          const int res = staged_[i].o.res;
          if (res >= 0 && static_cast<std::size_t>(res) == runs_[i].bytes) {
            continue;
          }
          const error e = (res < 0 && res != -EINTR && res != -EAGAIN && res != -EINVAL)
                              ? from_result(res)
                              : ops.write_gathered(runs_[i]);
          if (e != error::ok && first == error::ok) {
            first = e;
          }
        }
        return first;
      }

     private:
      struct staged {
        aligned_buffer copy{0};
        std::vector<iovec> iov;
        op o;
      };
      shard_ring& ring_;
      std::vector<run> runs_;
      std::vector<staged> staged_;  // sized once: the ops' addresses must not move
      waiter w_;
      bool finished_ = false;
    };

   private:
    // Direct reads into aligned buffers all in flight at once (bounded by a window); anything
    // else, and any read that came back short or failed, again one by one the careful way.
    error read_batch(std::span<const file_ref> files, std::span<const page_read> reads) {
      constexpr std::size_t window = 64;
      engine_ops<raw_ops> ops{{this}};
      for (std::size_t base = 0; base < reads.size(); base += window) {
        const std::size_t n = std::min(window, reads.size() - base);
        std::vector<op> ops_done(n);
        waiter w;
        for (std::size_t i = 0; i < n; ++i) {
          const page_read& rd = reads[base + i];
          const file_ref& f = files[base + i];
          ops_done[i].w = &w;
          ops_done[i].res = -EINVAL;  // not staged: read below
          if (rd.buf.empty() || (f->direct && !aligned(rd.buf.data(), rd.offset, rd.buf.size()))) {
            continue;
          }
          io_uring_sqe* sqe = next_sqe();
          io_uring_prep_read(sqe, f->fd, rd.buf.data(), static_cast<unsigned>(rd.buf.size()),
                             rd.offset);
          set_file(sqe, f);
          io_uring_sqe_set_data(sqe, &ops_done[i]);
          ++w.pending;
          ++in_flight_;
        }
        wait_for(w);
        for (std::size_t i = 0; i < n; ++i) {
          const page_read& rd = reads[base + i];
          if (ops_done[i].res >= 0 && static_cast<std::size_t>(ops_done[i].res) == rd.buf.size()) {
            continue;
          }
          if (const error e = ops.read(files[base + i], rd.offset, rd.buf); e != error::ok) {
            return e;
          }
        }
      }
      return error::ok;
    }

    void give_back(unsigned id) {
      io_uring_buf_ring_add(buf_ring_, buffers_ + std::size_t{id} * buffer_bytes_,
                            static_cast<unsigned>(buffer_bytes_), static_cast<unsigned short>(id),
                            io_uring_buf_ring_mask(buffer_count_), 0);
      io_uring_buf_ring_advance(buf_ring_, 1);
    }

    error datasync(const file_ref& f) {
      for (int again = 0; again <= again_retries_max; ++again) {
        const op o = run_one(
            f, [&](io_uring_sqe* sqe) { io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC); });
        if (o.res != -EINTR && o.res != -EAGAIN) {
          return from_result(o.res);
        }
      }
      return error::try_again;
    }

    static constexpr int buffer_group = 0;

    // ThreadSanitizer does not see liburing unmap a ring (a raw system call), so a new ring
    // mapped at a dead ring's address on another thread looks like a race with the dead one.
    // Release before the unmap, acquire after the map: a reused address then orders them.
    static void tsan_ring_unmapping() noexcept {
#ifdef ELOQSTORE_URING_TSAN
      __tsan_release(&tsan_ring_sync());
#endif
    }
    static void tsan_ring_mapped() noexcept {
#ifdef ELOQSTORE_URING_TSAN
      __tsan_acquire(&tsan_ring_sync());
#endif
    }
    static int& tsan_ring_sync() noexcept {
      static int sync = 0;
      return sync;
    }

    uring_io& owner_;
    suspend_hooks hooks_;
    io_uring ring_{};
    bool ready_ = false;
    bool closing_ = false;
    bool event_unsubmitted_ = false;  // the eventfd read is prepared, not yet submitted
    std::size_t in_flight_ = 0;
    int event_fd_ = -1;
    std::uint64_t event_value_ = 0;
    op event_op_{};
    // fixed files
    struct slot_entry {
      file_ref file;
      std::list<int>::iterator lru;
    };
    std::vector<slot_entry> slots_;
    std::list<int> slot_lru_;  // every slot number, most recently used first, unused last
    std::unordered_map<const pread_io::file_handle*, int> slot_of_;
    // provided buffers
    io_uring_buf_ring* buf_ring_ = nullptr;
    std::size_t buf_ring_bytes_ = 0;
    char* buffers_ = nullptr;
    std::size_t buffers_bytes_ = 0;
    std::size_t buffer_bytes_ = 0;
    unsigned buffer_count_ = 0;
  };

 private:
  // The calling thread's ring (of any uring_io), or nullptr.
  static shard_ring*& current_ring_slot() {
    static thread_local shard_ring* ring = nullptr;
    return ring;
  }
  [[nodiscard]] shard_ring* current_ring() const {
    shard_ring* r = current_ring_slot();
    return r != nullptr && &r->owner_ == this ? r : nullptr;
  }

  // The engine of the calling thread: the ring's, or blocking system calls.
  struct any_engine {
    shard_ring* ring;
    error read(const file_ref& f, std::uint64_t off, std::span<char> buf) {
      if (ring != nullptr) {
        return engine_ops<typename shard_ring::raw_ops>{{ring}}.read(f, off, buf);
      }
      return engine_ops<syscall_raw>{}.read(f, off, buf);
    }
    error write(const file_ref& f, std::uint64_t off, std::span<const char> data) {
      if (ring != nullptr) {
        return engine_ops<typename shard_ring::raw_ops>{{ring}}.write(f, off, data);
      }
      return engine_ops<syscall_raw>{}.write(f, off, data);
    }
    error write_runs(std::vector<run>& runs) {
      if (ring != nullptr) {
        return engine_ops<typename shard_ring::raw_ops>{{ring}}.write_runs(runs);
      }
      return engine_ops<syscall_raw>{}.write_runs(runs);
    }
  };
  [[nodiscard]] any_engine engine() const {
    return any_engine{current_ring()};
  }

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
