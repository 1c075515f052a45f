// The io_uring ring of one shard thread (uring_io::shard_ring; io/uring.hpp describes the
// ring's parts: batched submission, cooperative completion, fixed-file slots, provided read
// buffers, the eventfd that notify() writes). A task waiting for I/O parks through the
// scheduler's suspend_hooks; outside tasks the caller polls the ring until its I/O is done.
//
// Thread affinity: the thread that attached it, except notify(), which any thread may call.
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
#include <unordered_map>
#include <utility>
#include <vector>

#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/io/uring_engine.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/sched/hooks.hpp>

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define ELOQSTORE_URING_TSAN 1
#endif

namespace eloqstore {

class uring_io;

// uring_io's settings (uring_io::config).
struct uring_config {
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

}  // namespace eloqstore

namespace eloqstore::detail {

class uring_ring;

// The calling thread's ring (of any uring_io), or nullptr.
[[nodiscard]] inline uring_ring*& uring_current_ring() {
  static thread_local uring_ring* ring = nullptr;
  return ring;
}

class uring_ring {
 public:
  uring_ring(const uring_ring&) = delete;
  uring_ring& operator=(const uring_ring&) = delete;
  ~uring_ring() {
    if (!ready_) {
      return;
    }
    closing_ = true;  // the eventfd read completes once more and is not re-armed
    notify();
    while (in_flight_ > 0) {  // every operation's memory must outlive its completion
      poll(true);
    }
    if (uring_current_ring() == this) {
      uring_current_ring() = nullptr;
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
  friend class ::eloqstore::uring_io;

  struct waiter {
    void* task = nullptr;
    unsigned pending = 0;
  };
  struct op {
    waiter* w = nullptr;  // nullptr: the eventfd read
    int res = 0;
    std::uint32_t flags = 0;
  };

  uring_ring(const void* owner, const uring_config& cfg, suspend_hooks hooks)
      : owner_(owner), cfg_(cfg), hooks_(hooks) {}

  // Sets the ring up; returns why it failed, or "".
  std::string init() {
    const uring_config& c = cfg_;
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
    if (c.registered_files > 0 && io_uring_register_files_sparse(&ring_, c.registered_files) == 0) {
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
    uring_current_ring() = this;
    return {};
  }

  std::string setup_buffers() {
    const uring_config& c = cfg_;
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
    mem =
        ::mmap(nullptr, buffers_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
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
  void set_file(io_uring_sqe* sqe, const uring_file_ref& f) noexcept {
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
  op run_one(const uring_file_ref& f, Prep&& prep) {
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
    const uring_config& c = cfg_;
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
    uring_ring* r;
    int pread(const uring_file_ref& f, char* p, std::size_t n, std::uint64_t off) {
      return r
          ->run_one(f,
                    [&](io_uring_sqe* sqe) {
                      io_uring_prep_read(sqe, f->fd, p, static_cast<unsigned>(n), off);
                    })
          .res;
    }
    int pwrite(const uring_file_ref& f, const char* p, std::size_t n, std::uint64_t off) {
      return r
          ->run_one(f,
                    [&](io_uring_sqe* sqe) {
                      io_uring_prep_write(sqe, f->fd, p, static_cast<unsigned>(n), off);
                    })
          .res;
    }
    // A page read into a provided buffer, copied to buf: its byte count (== buf.size()),
    // a negative errno, or no_provided when no buffer fits (the caller bounces instead).
    int read_provided(const uring_file_ref& f, std::uint64_t off, std::span<char> buf) {
      if (r->buffers_ == nullptr || buf.size() > r->buffer_bytes_) {
        return no_provided;
      }
      for (int again = 0; again <= uring_again_retries_max; ++again) {
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
    error write_runs(std::vector<uring_run>& runs, engine_ops<raw_ops>&) {
      constexpr std::size_t window = 64;
      error first = error::ok;
      for (std::size_t base = 0; base < runs.size(); base += window) {
        const std::size_t n = std::min(window, runs.size() - base);
        write_flight f(
            *r, std::vector<uring_run>(runs.begin() + static_cast<std::ptrdiff_t>(base),
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
    write_flight(uring_ring& ring, std::vector<uring_run> runs)
        : ring_(ring), runs_(std::move(runs)), staged_(runs_.size()) {
      for (std::size_t i = 0; i < runs_.size(); ++i) {
        const uring_run& rn = runs_[i];
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
        const uring_run& rn = runs_[i];
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
    uring_ring& ring_;
    std::vector<uring_run> runs_;
    std::vector<staged> staged_;  // sized once: the ops' addresses must not move
    waiter w_;
    bool finished_ = false;
  };

 private:
  // Direct reads into aligned buffers all in flight at once (bounded by a window); anything
  // else, and any read that came back short or failed, again one by one the careful way.
  error read_batch(std::span<const uring_file_ref> files, std::span<const page_read> reads) {
    constexpr std::size_t window = 64;
    engine_ops<raw_ops> ops{{this}};
    for (std::size_t base = 0; base < reads.size(); base += window) {
      const std::size_t n = std::min(window, reads.size() - base);
      std::vector<op> ops_done(n);
      waiter w;
      for (std::size_t i = 0; i < n; ++i) {
        const page_read& rd = reads[base + i];
        const uring_file_ref& f = files[base + i];
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

  error datasync(const uring_file_ref& f) {
    for (int again = 0; again <= uring_again_retries_max; ++again) {
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

  const void* owner_;  // the uring_io this ring belongs to
  const uring_config& cfg_;
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
    uring_file_ref file;
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

}  // namespace eloqstore::detail
