// durable_write_bench: the device's ceiling for a bulk load that is durable per batch.
//
// Writes `total` bytes sequentially to a new file in batches of `batch` bytes: each batch is
// written with 256 KiB O_DIRECT writes, `depth` in flight through io_uring, into space
// preallocated ahead (fallocate, as the engine does), then fdatasync'ed, and the next batch
// starts only when the sync is back. That is the shape of the engine's load (every batch is
// acknowledged only once durable) without any engine work: no pages to build, no manifest.
// fio's sequential-write figure syncs once at the end instead, which on a device whose
// flushes cost time per byte flushed is not the same workload.
//
// Usage: durable_write_bench FILE [total MB=1000] [batch MB=20] [depth=8]
// Prints MB/s (10^6 bytes) and the time spent in syncs. Only whole 256 KiB blocks are
// written: the figure counts the bytes written.
#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

namespace {

constexpr std::size_t block = 256 * 1024;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

int fail(const char* what, int err) {
  std::fprintf(stderr, "durable_write_bench: %s: %s\n", what, std::strerror(err));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string file;
  std::size_t total_mb = 1000;
  std::size_t batch_mb = 20;
  unsigned depth = 8;
  CLI::App app{"durable_write_bench: the device writing durable batches (write, fdatasync)"};
  app.add_option("file", file, "the file to write (truncated)")->required();
  app.add_option("total_mb", total_mb, "MB to write")->check(CLI::Range(1, 1 << 20));
  app.add_option("batch_mb", batch_mb, "MB per durable batch")->check(CLI::Range(1, 1 << 16));
  app.add_option("depth", depth, "writes in flight")->check(CLI::Range(1, 256));
  CLI11_PARSE(app, argc, argv);
  const char* path = file.c_str();
  const std::size_t total = total_mb * 1000000;
  const std::size_t batch = batch_mb * 1000000;
  if (batch < block || depth == 0 || depth > 256) {
    std::fprintf(stderr, "durable_write_bench: batch must be >= 256 KiB, depth 1-256\n");
    return 2;
  }
  const int fd = ::open(path, O_CREAT | O_TRUNC | O_WRONLY | O_DIRECT, 0644);
  if (fd < 0) {
    return fail("open", errno);
  }
  // Preallocated ahead in 32 MiB steps between batches (no writes in flight then).
  constexpr std::size_t reserve_step = 32 << 20;
  std::size_t reserved = 0;
  void* mem = nullptr;
  if (::posix_memalign(&mem, 4096, block * depth) != 0) {
    return fail("posix_memalign", ENOMEM);
  }
  std::unique_ptr<char, decltype(&std::free)> buf(static_cast<char*>(mem), &std::free);
  std::memset(buf.get(), 'v', block * depth);
  io_uring ring{};
  if (const int rc = io_uring_queue_init(depth * 2, &ring, 0); rc < 0) {
    return fail("io_uring_queue_init", -rc);
  }
  double sync_seconds = 0;
  std::size_t offset = 0;
  const auto start = std::chrono::steady_clock::now();
  while (offset < total) {
    const std::size_t end = std::min(total, offset + batch) / block * block;
    if (end <= offset) {
      break;  // less than one block left: not written (whole blocks only)
    }
    while (reserved < end) {
      if (::fallocate(fd, 0, static_cast<off_t>(reserved), reserve_step) != 0) {
        return fail("fallocate", errno);
      }
      reserved += reserve_step;
    }
    unsigned in_flight = 0;
    std::size_t next = offset;
    while (next < end || in_flight > 0) {
      while (next < end && in_flight < depth) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        char* b = buf.get() + (next / block % depth) * block;
        io_uring_prep_write(sqe, fd, b, block, next);
        next += block;
        ++in_flight;
      }
      if (const int rc = io_uring_submit(&ring); rc < 0) {
        return fail("io_uring_submit", -rc);
      }
      io_uring_cqe* cqe = nullptr;
      if (const int rc = io_uring_wait_cqe(&ring, &cqe); rc < 0) {
        return fail("io_uring_wait_cqe", -rc);
      }
      if (cqe->res != static_cast<int>(block)) {
        return fail("write", cqe->res < 0 ? -cqe->res : EIO);
      }
      io_uring_cqe_seen(&ring, cqe);
      --in_flight;
    }
    const auto sync_start = std::chrono::steady_clock::now();
    if (::fdatasync(fd) != 0) {
      return fail("fdatasync", errno);
    }
    sync_seconds += seconds_since(sync_start);
    offset = end;
  }
  const double secs = seconds_since(start);
  std::printf(
      "durable sequential write: %.1f MB/s (%zu MB in batches of %zu MB, depth %u; "
      "%.2f s of %.2f s in fdatasync)\n",
      static_cast<double>(offset) / secs / 1e6, offset / 1000000, batch / 1000000, depth,
      sync_seconds, secs);
  io_uring_queue_exit(&ring);
  ::close(fd);
  ::unlink(path);
  return 0;
}
