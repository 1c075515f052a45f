// uring_io's transfer engines (io/uring.hpp): direct-I/O alignment handling (bounce buffers,
// read-modify-write of partial blocks) around a raw "transfer what you can" primitive, for
// blocking system calls (syscall_raw) and for the shard ring (uring_ring::raw_ops,
// detail/io/uring_ring.hpp). Bounded retries of EINTR and EAGAIN results.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <utility>
#include <vector>

#include <eloqstore/detail/io/syscall.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/io/pread.hpp>

namespace eloqstore::detail {

// An open file of a uring_io (its descriptors are pread_io's).
using uring_file_ref = std::shared_ptr<pread_io::file_handle>;
// Direct I/O alignment of buffers, offsets and sizes.
inline constexpr std::size_t uring_alignment = 4096;
// Consecutive EINTR/EAGAIN results of one operation before giving up with try_again.
inline constexpr int uring_again_retries_max = 64;

// A coalesced write: contiguous parts of one file starting at `offset`.
struct uring_run {
  uring_file_ref file;
  std::uint64_t offset = 0;
  std::size_t bytes = 0;
  std::vector<std::span<const char>> parts;
};

[[nodiscard]] inline std::size_t round_up(std::size_t n) noexcept {
  return (n + uring_alignment - 1) / uring_alignment * uring_alignment;
}
[[nodiscard]] inline bool aligned(const void* p, std::uint64_t offset, std::size_t n) noexcept {
  return reinterpret_cast<std::uintptr_t>(p) % uring_alignment == 0 &&
         offset % uring_alignment == 0 && n % uring_alignment == 0;
}
[[nodiscard]] inline error from_result(int res) noexcept {
  return res >= 0 ? error::ok : error_from_errno(-res);
}

// Aligned scratch memory, freed on destruction.
struct aligned_buffer {
  char* data = nullptr;
  std::size_t size = 0;
  explicit aligned_buffer(std::size_t n)
      : data(n == 0 ? nullptr
                    : static_cast<char*>(std::aligned_alloc(uring_alignment, round_up(n)))),
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

// ---- the two engines: system calls and the ring -------------------------------------------
//
// Both implement the same primitive transfers on one file: `transfer(f, offset, buf)` moves
// all of an aligned-or-buffered range. Alignment for direct files is handled once, above
// them, in read()/write() of `engine_ops`.

// The shape shared by the blocking and the ring engines: direct-I/O uring_alignment handling
// around a raw "transfer what you can" primitive.
template <typename Raw>
struct engine_ops {
  Raw raw;

  // Reads all of buf at offset.
  error read(const uring_file_ref& f, std::uint64_t offset, std::span<char> buf) {
    if (!f->direct || aligned(buf.data(), offset, buf.size())) {
      return read_exact(f, offset, buf);
    }
    if (offset % uring_alignment == 0 && buf.size() % uring_alignment == 0) {
      if (const int done = raw.read_provided(f, offset, buf); done != raw.no_provided) {
        return done < 0 ? from_result(done) : error::ok;
      }
    }
    // Bounce through an aligned copy of the enclosing blocks.
    const std::uint64_t lo = offset / uring_alignment * uring_alignment;
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
  error write(const uring_file_ref& f, std::uint64_t offset, std::span<const char> data) {
    if (!f->direct || aligned(data.data(), offset, data.size())) {
      return write_exact(f, offset, data);
    }
    const std::uint64_t lo = offset / uring_alignment * uring_alignment;
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
  error read_some(const uring_file_ref& f, std::uint64_t offset, std::span<char> buf,
                  std::size_t& got) {
    got = 0;
    int again = 0;
    while (got < buf.size()) {
      const int res = raw.pread(f, buf.data() + got, buf.size() - got, offset + got);
      if (res == -EINTR || res == -EAGAIN) {
        if (++again > uring_again_retries_max) {
          return error::try_again;
        }
        continue;
      }
      if (res < 0) {
        return from_result(res);
      }
      if (res == 0 || (f->direct && res % uring_alignment != 0)) {
        got += static_cast<std::size_t>(res);
        return error::ok;  // end of file (a direct read cannot continue unaligned)
      }
      got += static_cast<std::size_t>(res);
    }
    return error::ok;
  }
  error read_exact(const uring_file_ref& f, std::uint64_t offset, std::span<char> buf) {
    std::size_t got = 0;
    if (const error e = read_some(f, offset, buf, got); e != error::ok) {
      return e;
    }
    return got == buf.size() ? error::ok : error::end_of_file;
  }
  error write_exact(const uring_file_ref& f, std::uint64_t offset, std::span<const char> data) {
    std::size_t done = 0;
    int again = 0;
    while (done < data.size()) {
      const int res = raw.pwrite(f, data.data() + done, data.size() - done, offset + done);
      if (res == -EINTR || res == -EAGAIN || res == 0) {
        if (++again > uring_again_retries_max) {
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
  error write_runs(std::vector<uring_run>& runs) {
    if constexpr (requires { raw.write_runs(runs, *this); }) {
      return raw.write_runs(runs, *this);
    } else {
      for (const uring_run& r : runs) {
        if (const error e = write_gathered(r); e != error::ok) {
          return e;
        }
      }
      return error::ok;
    }
  }
  // One run through one contiguous buffer (copied into aligned memory for direct files).
  error write_gathered(const uring_run& r) {
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
  int pread(const uring_file_ref& f, char* p, std::size_t n, std::uint64_t off) {
    const ssize_t r =
        detail::retry_eintr([&] { return ::pread(f->fd, p, n, static_cast<off_t>(off)); });
    return r < 0 ? -errno : static_cast<int>(r);
  }
  int pwrite(const uring_file_ref& f, const char* p, std::size_t n, std::uint64_t off) {
    const ssize_t r =
        detail::retry_eintr([&] { return ::pwrite(f->fd, p, n, static_cast<off_t>(off)); });
    return r < 0 ? -errno : static_cast<int>(r);
  }
  int read_provided(const uring_file_ref&, std::uint64_t, std::span<char>) { return no_provided; }
};

}  // namespace eloqstore::detail
