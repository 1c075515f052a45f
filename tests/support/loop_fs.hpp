// Test support: a small file system for full-disk and read-only tests: ext4 in an image file
// mounted on a loop device (needs root, a free loop device and mkfs.ext4), or tmpfs (needs
// root). When a step fails, mounted() is false and why() says which step and why, so the
// caller can skip. The destructor unmounts (lazily) and deletes the image and its directory,
// also after a failed REQUIRE.
#pragma once

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "support/store_fixture.hpp"

namespace eloqstore::test {

class loop_fs {
 public:
  enum class kind { ext4, tmpfs };
  static constexpr const char* kind_name(kind k) { return k == kind::ext4 ? "ext4" : "tmpfs"; }

  explicit loop_fs(std::uint64_t bytes, kind k = kind::ext4) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (::geteuid() != 0) {
      why_ = "not root (mount needs root)";
      return;
    }
    fs::create_directories(mount_point_, ec);
    if (ec) {
      why_ = "cannot create " + mount_point_ + ": " + ec.message();
      return;
    }
    if (k == kind::tmpfs) {
      mounted_ =
          run("mount -t tmpfs -o size=" + std::to_string(bytes) + " tmpfs '" + mount_point_ + "'",
              "mount -t tmpfs");
      return;
    }
    std::ofstream(image_, std::ios::binary).close();
    fs::resize_file(image_, bytes, ec);
    if (ec) {
      why_ = "cannot size the image " + image_ + ": " + ec.message();
      return;
    }
    if (!run("mkfs.ext4 -q -F '" + image_ + "'", "mkfs.ext4")) {
      return;
    }
    if (!run("mount -o loop '" + image_ + "' '" + mount_point_ + "'", "mount -o loop")) {
      return;
    }
    mounted_ = true;
  }
  ~loop_fs() {
    if (mounted_) {
      [[maybe_unused]] const int rc =
          std::system(("umount -l '" + mount_point_ + "' >/dev/null 2>&1").c_str());
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  loop_fs(const loop_fs&) = delete;
  loop_fs& operator=(const loop_fs&) = delete;

  [[nodiscard]] bool mounted() const noexcept { return mounted_; }
  // Makes the file system read-only (true) or writable again (false); false if it failed.
  bool remount(bool read_only) {
    return run(
        "mount -o remount," + std::string(read_only ? "ro" : "rw") + " '" + mount_point_ + "'",
        "mount -o remount");
  }
  [[nodiscard]] const std::string& why() const noexcept { return why_; }
  [[nodiscard]] const std::string& mount_point() const noexcept { return mount_point_; }

 private:
  // Runs `command` with its output in a log file; on failure why_ names the step, the exit
  // status and the command's output.
  bool run(const std::string& command, const char* step) {
    const int rc = std::system((command + " >'" + log_ + "' 2>&1").c_str());
    if (rc == 0) {
      return true;
    }
    std::ifstream in(log_);
    std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
      out.pop_back();
    }
    const std::string status = rc != -1 && WIFEXITED(rc)
                                   ? "exit status " + std::to_string(WEXITSTATUS(rc))
                                   : "status " + std::to_string(rc);
    why_ =
        std::string(step) + " failed (" + status + ")" + (out.empty() ? std::string() : ": " + out);
    return false;
  }

  std::string dir_ = fresh_temp_dir("loopfs");
  std::string image_ = dir_ + "/fs.img";
  std::string log_ = dir_ + "/cmd.log";
  std::string mount_point_ = dir_ + "/mnt";
  std::string why_;
  bool mounted_ = false;
};

// Fills the file system holding `dir` with one file, then frees `free_bytes` of it (synced,
// so the blocks are free before the test goes on). Returns the file's path.
inline std::string fill_disk(const std::string& dir, std::uint64_t free_bytes) {
  const std::string path = dir + "/filler";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  std::vector<char> block(1 << 20, 'f');
  std::size_t chunk = block.size();
  std::uint64_t size = 0;
  while (chunk >= 4096) {
    const ssize_t n = ::write(fd, block.data(), chunk);
    if (n > 0) {
      size += static_cast<std::uint64_t>(n);
    } else {
      chunk /= 2;
    }
  }
  REQUIRE(::fsync(fd) == 0);
  REQUIRE(size > free_bytes);
  REQUIRE(::ftruncate(fd, static_cast<off_t>(size - free_bytes)) == 0);
  REQUIRE(::fsync(fd) == 0);
  ::close(fd);
  return path;
}

}  // namespace eloqstore::test
