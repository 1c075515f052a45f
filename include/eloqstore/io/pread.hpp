// pread_io: the portable io_backend over real files, with POSIX pread, pwrite and fdatasync.
//
// Layout: the partition t lives in `<store_paths[t.partition % n]>/<t.to_string()>/`, a
// directory created on the first write to it (mkdir, then an fsync of the store path so that
// the directory itself is durable). open() creates missing store paths like `mkdir -p`.
//
// Descriptors: one directory fd per store path, held from open() to close(), and every other
// path is opened relative to it. File fds live in an LRU cache keyed by `<table>.<part>/<name>`
// (which is also the path relative to the store path) and bounded by open_files_max. A handle
// is reference counted: evicting it only drops the cache's reference, so the fd closes when
// its last user is done and one thread never closes an fd another is reading. remove() and
// write_file_atomic() drop the cached handle of every name they change, so a cached fd always
// refers to the file its name currently names. On EMFILE the cache is emptied and the open
// tried once more.
//
// System calls are retried on EINTR (at most eintr_retries_max times in a row); short reads
// and short writes loop until done, each round moving at least one byte.
//
// Thread safety: the cache is guarded by cache_mutex_, and no I/O runs under it. Calls for
// different partitions may run at once. open() and close() must not run concurrently with
// other calls (the io_backend contract has open() succeed before anything else).
// Invariants: cache_.size() <= open_files_max_; lru_ links exactly the entries of cache_, most
// recently used first; roots_ is empty exactly when the backend is not open.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/intrusive/list.hpp>

#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/io/io_args.hpp>
#include <eloqstore/detail/io/syscall.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore {

class pread_io {
 public:
  static constexpr std::size_t open_files_max_default = 1024;
  static constexpr bool uses_store_paths = true;  // local_files_io
  // Consecutive EINTR returns of one system call before giving up with error::try_again.
  static constexpr int eintr_retries_max = detail::eintr_retries_max;

  explicit pread_io(std::vector<std::string> store_paths,
                    std::size_t open_files_max = open_files_max_default)
      : store_paths_(std::move(store_paths)), open_files_max_(open_files_max) {}

  // An open file for backends layered on this one (uring_io): the fd stays open while any
  // handle to it is held. `direct` tells whether it was opened with O_DIRECT.
  struct file_handle {
    int fd = -1;
    bool direct = false;
    // Bytes known to be allocated (fallocate) or written; `unknown` until the first reserve().
    static constexpr std::uint64_t unknown = std::numeric_limits<std::uint64_t>::max();
    std::atomic<std::uint64_t> reserved{unknown};
    explicit file_handle(int f, bool d = false) noexcept : fd(f), direct(d) {}
    file_handle(const file_handle&) = delete;
    file_handle& operator=(const file_handle&) = delete;
    ~file_handle() {
      if (fd >= 0) {
        ::close(fd);
      }
    }
  };

  // With `on`, data files (names starting with "data_") are opened with O_DIRECT where the
  // file system supports it; their reads and writes then need aligned buffers, offsets and
  // sizes, so only a layered backend that provides them may enable this. Call while closed.
  void set_direct_data(bool on) noexcept { direct_data_ = on; }
  // Read-only: files are opened O_RDONLY and open() creates no directory (a missing store
  // path is error::not_found). Writes then fail (EBADF). Call while closed.
  void set_read_only(bool on) noexcept { read_only_ = on; }

  // Makes sure blocks up to byte `end` of the file are allocated before writes reach them,
  // growing ahead by a quarter of what the file holds (at most reserve_step_max, at most a
  // quarter of the file system's free space, and never past the next power of two above
  // `end`, which data file sizes are), so a sequence of appending direct writes becomes
  // overwrites of preallocated space: on ext4 and XFS those run without the exclusive inode
  // lock and without being punted to a kernel worker. Unwritten space reads back as zeros
  // and is never referenced by a manifest; a file holds at most a quarter more than it was
  // written to. A file system without fallocate is left alone (the writes extend the file as
  // before); out_of_space if not even `end` can be allocated. Thread affinity: the caller
  // writes the file (one shard per partition).
  static constexpr std::uint64_t reserve_step_max = std::uint64_t{32} << 20;
  [[nodiscard]] static error reserve(file_handle& f, std::uint64_t end) {
    std::uint64_t have = f.reserved.load(std::memory_order_relaxed);
    if (have == file_handle::unknown) {
      struct stat st {};
      if (::fstat(f.fd, &st) != 0) {
        return error_from_errno(errno);
      }
      have = static_cast<std::uint64_t>(st.st_size);
    }
    if (end <= have) {
      f.reserved.store(have, std::memory_order_relaxed);
      return error::ok;
    }
    std::uint64_t step = std::min(have / 4, reserve_step_max);
    struct statvfs vfs {};
    if (step != 0 && ::fstatvfs(f.fd, &vfs) == 0) {
      step = std::min<std::uint64_t>(step, std::uint64_t{vfs.f_bavail} * vfs.f_frsize / 4);
    }
    const std::uint64_t ahead = std::min(have + step, std::bit_ceil(end));
    const std::uint64_t first = std::max(end, ahead);
    for (const std::uint64_t target : {first, end}) {
      const int rc = retry([&] {
        return ::fallocate(f.fd, 0, static_cast<off_t>(have), static_cast<off_t>(target - have));
      });
      if (rc == 0) {
        f.reserved.store(target, std::memory_order_relaxed);
        return error::ok;
      }
      if (errno == EOPNOTSUPP || errno == ENOSYS) {
        f.reserved.store(std::numeric_limits<std::uint64_t>::max() - 1, std::memory_order_relaxed);
        return error::ok;  // no preallocation here: the writes extend the file themselves
      }
      if (errno != ENOSPC || target == end) {
        break;
      }
    }
    return error_from_errno(errno);
  }

  // The cached handle of `<t>/<name>` (created with its partition directory when `create`).
  [[nodiscard]] error acquire_file(const table_ident& t, std::string_view name, bool create,
                                   std::shared_ptr<file_handle>& out) {
    return acquire(t, name, create, out);
  }

  // file_handles: an existing file resolved once, read by handle (no name, no lock).
  using file_ref = std::shared_ptr<file_handle>;
  [[nodiscard]] error open_file(const table_ident& t, std::string_view name, file_ref& out) {
    return acquire(t, name, false, out);
  }
  [[nodiscard]] static error read_at(const file_ref& f, std::uint64_t offset, std::span<char> buf) {
    return buf.empty() ? check_size(f->fd, offset) : pread_all(f->fd, offset, buf);
  }
  pread_io(const pread_io&) = delete;
  pread_io& operator=(const pread_io&) = delete;
  ~pread_io() { close(); }

  // Creates missing store paths and opens one directory fd per store path. invalid_args if
  // there is no store path or one exists but is not a directory. Closes first if open.
  [[nodiscard]] error open() {
    close();
    if (store_paths_.empty()) {
      return error::invalid_args;
    }
    std::vector<int> roots;
    roots.reserve(store_paths_.size());
    for (const std::string& path : store_paths_) {
      error e = read_only_ ? error::ok : make_directories(path);
      int fd = -1;
      if (e == error::ok) {
        fd = retry([&] { return ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
        e = fd >= 0 ? error::ok : errno == ENOTDIR ? error::invalid_args : error_from_errno(errno);
      }
      if (e != error::ok) {
        close_all(roots);
        return e;
      }
      roots.push_back(fd);
    }
    roots_ = std::move(roots);
    return error::ok;
  }

  // Drops the cache and closes the store path fds; later calls fail with not_running.
  void close() {
    drop_all_cached();
    close_all(roots_);
  }

  [[nodiscard]] error read(const table_ident& t, std::string_view name, std::uint64_t offset,
                           std::span<char> buf) {
    std::shared_ptr<file_handle> file;
    if (const error e = acquire(t, name, false, file); e != error::ok) {
      return e;
    }
    if (buf.empty()) {
      return check_size(file->fd, offset);
    }
    return pread_all(file->fd, offset, buf);
  }

  [[nodiscard]] error write(const table_ident& t, std::string_view name, std::uint64_t offset,
                            std::span<const char> data) {
    std::shared_ptr<file_handle> file;
    if (const error e = acquire(t, name, true, file); e != error::ok) {
      return e;
    }
    return pwrite_all(file->fd, offset, data);
  }

  [[nodiscard]] error sync(const table_ident& t, std::string_view name) {
    std::shared_ptr<file_handle> file;
    if (const error e = acquire(t, name, false, file); e != error::ok) {
      return e;
    }
    return retry([&] { return ::fdatasync(file->fd); }) == 0 ? error::ok : error_from_errno(errno);
  }

  [[nodiscard]] error sync_dir(const table_ident& t) {
    if (const error e = check(t); e != error::ok) {
      return e;
    }
    return sync_directory(root_fd(t), t.to_string());
  }

  [[nodiscard]] error read_file(const table_ident& t, std::string_view name, std::string& out) {
    std::shared_ptr<file_handle> file;
    if (const error e = acquire(t, name, false, file); e != error::ok) {
      return e;
    }
    struct stat st {};
    if (::fstat(file->fd, &st) != 0) {
      return error_from_errno(errno);
    }
    out.resize(static_cast<std::size_t>(st.st_size));
    if (out.empty()) {
      return error::ok;
    }
    return pread_all(file->fd, 0, std::span<char>(out.data(), out.size()));
  }

  // The whole file through a descriptor of its own without O_DIRECT, so any file (a data file
  // included) can be read into an unaligned string: cloud mode uploads data files whole.
  [[nodiscard]] error read_file_buffered(const table_ident& t, std::string_view name,
                                         std::string& out) {
    if (const error e = check(t, name); e != error::ok) {
      return e;
    }
    int fd = -1;
    if (const error e = open_path(t, relative_path(t, name), O_RDONLY | O_CLOEXEC, fd);
        e != error::ok) {
      return e;
    }
    struct stat st {};
    error e = ::fstat(fd, &st) == 0 ? error::ok : error_from_errno(errno);
    if (e == error::ok) {
      out.resize(static_cast<std::size_t>(st.st_size));
      e = out.empty() ? error::ok : pread_all(fd, 0, std::span<char>(out.data(), out.size()));
    }
    ::close(fd);
    return e;
  }

  // Writes `<name>.tmp`, syncs it, renames it over `name` and syncs the partition directory.
  // On failure before the rename the temporary file is removed and `name` is unchanged.
  [[nodiscard]] error write_file_atomic(const table_ident& t, std::string_view name,
                                        std::span<const char> data) {
    if (const error e = check(t, name); e != error::ok) {
      return e;
    }
    const int root = root_fd(t);
    const std::string path = relative_path(t, name);
    const std::string temporary_path = path + ".tmp";
    drop_cached(temporary_path);
    int fd = -1;
    error e = open_path(t, temporary_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, fd);
    if (e != error::ok) {
      return e;
    }
    {
      const file_handle temporary{fd};
      e = pwrite_all(fd, 0, data);
      if (e == error::ok && retry([&] { return ::fdatasync(fd); }) != 0) {
        e = error_from_errno(errno);
      }
    }
    if (e == error::ok && ::renameat(root, temporary_path.c_str(), root, path.c_str()) != 0) {
      e = error_from_errno(errno);
    }
    if (e != error::ok) {
      ::unlinkat(root, temporary_path.c_str(), 0);
      return e;
    }
    drop_cached(path);
    return sync_directory(root, t.to_string());
  }

  [[nodiscard]] error remove(const table_ident& t, std::string_view name) {
    if (const error e = check(t, name); e != error::ok) {
      return e;
    }
    const std::string path = relative_path(t, name);
    const int rc = ::unlinkat(root_fd(t), path.c_str(), 0);
    const error e = rc == 0 ? error::ok : error_from_errno(errno);
    drop_cached(path);
    return e;
  }

  // The partition's entries other than "." and "..", in directory order.
  [[nodiscard]] error list(const table_ident& t, std::vector<std::string>& names) {
    if (const error e = check(t); e != error::ok) {
      return e;
    }
    const std::string dir = t.to_string();
    const int fd = retry(
        [&] { return ::openat(root_fd(t), dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
    if (fd < 0) {
      return error_from_errno(errno);
    }
    names.clear();
    return read_directory(fd,
                          [&](int, const ::dirent& entry) { names.emplace_back(entry.d_name); });
  }

  // Every directory under every store path whose name parses as a table_ident. A partition
  // found under a store path it does not route to is listed all the same.
  [[nodiscard]] error list_partitions(std::vector<table_ident>& tables) {
    if (roots_.empty()) {
      return error::not_running;
    }
    tables.clear();
    for (const int root : roots_) {
      const int fd = retry([&] { return ::openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
      if (fd < 0) {
        return error_from_errno(errno);
      }
      const error e = read_directory(fd, [&](int dir_fd, const ::dirent& entry) {
        auto t = table_ident::parse(entry.d_name);
        if (t && is_directory(dir_fd, entry)) {
          tables.push_back(std::move(*t));
        }
      });
      if (e != error::ok) {
        return e;
      }
    }
    return error::ok;
  }

 private:
  // A cached handle, linked into lru_ where it lies in cache_ (an unordered_map's elements
  // never move, so neither the link nor `key` goes stale).
  struct cache_entry {
    std::shared_ptr<file_handle> handle;
    const std::string* key = nullptr;  // its key in cache_
    boost::intrusive::list_member_hook<> lru_hook;
  };
  using lru_list = boost::intrusive::list<
      cache_entry, boost::intrusive::member_hook<cache_entry, boost::intrusive::list_member_hook<>,
                                                 &cache_entry::lru_hook>>;

  template <typename F>
  static auto retry(F&& f) -> decltype(f()) {
    return detail::retry_eintr(std::forward<F>(f));
  }

  [[nodiscard]] error check(const table_ident& t) const {
    return detail::check_io_args(!roots_.empty(), t);
  }
  [[nodiscard]] error check(const table_ident& t, std::string_view name) const {
    return detail::check_io_args(!roots_.empty(), t, name);
  }

  // REQUIRES: open.
  [[nodiscard]] int root_fd(const table_ident& t) const {
    return roots_[t.disk_index(roots_.size())];
  }
  [[nodiscard]] static std::string relative_path(const table_ident& t, std::string_view name) {
    std::string path = t.to_string();
    path += '/';
    path += name;
    return path;
  }

  // ---- the descriptor cache ----------------------------------------------------------------

  // The cached handle of `<t>/<name>`, opening the file on a miss (creating it, and its
  // partition directory, when `create`).
  [[nodiscard]] error acquire(const table_ident& t, std::string_view name, bool create,
                              std::shared_ptr<file_handle>& out) {
    if (const error e = check(t, name); e != error::ok) {
      return e;
    }
    std::string path = relative_path(t, name);
    {
      const std::lock_guard lock(cache_mutex_);
      const auto it = cache_.find(path);
      if (it != cache_.end()) {
        lru_.splice(lru_.begin(), lru_, lru_.iterator_to(it->second));
        out = it->second.handle;
        return error::ok;
      }
    }
    int fd = -1;
    const int flags =
        read_only_ ? O_RDONLY | O_CLOEXEC : O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0);
    bool direct = direct_data_ && name.starts_with("data_");
    error e = open_path(t, path, flags | (direct ? O_DIRECT : 0), fd);
    if (e != error::ok && direct && errno == EINVAL) {
      direct = false;  // the file system has no direct I/O (tmpfs): use the page cache
      e = open_path(t, path, flags, fd);
    }
    if (e != error::ok) {
      return e;
    }
    out = std::make_shared<file_handle>(fd, direct);
    insert_cached(std::move(path), out);
    return error::ok;
  }

  void insert_cached(std::string path, const std::shared_ptr<file_handle>& handle) {
    const std::lock_guard lock(cache_mutex_);
    if (open_files_max_ == 0 || cache_.contains(path)) {
      return;  // the caller keeps its own handle; it closes when dropped
    }
    while (cache_.size() >= open_files_max_) {
      const std::string* victim = lru_.back().key;
      lru_.pop_back();
      cache_.erase(*victim);
    }
    const auto it = cache_.try_emplace(std::move(path)).first;
    it->second.handle = handle;
    it->second.key = &it->first;
    lru_.push_front(it->second);
  }

  void drop_cached(const std::string& path) {
    const std::lock_guard lock(cache_mutex_);
    const auto it = cache_.find(path);
    if (it != cache_.end()) {
      lru_.erase(lru_.iterator_to(it->second));
      cache_.erase(it);
    }
  }

  void drop_all_cached() {
    const std::lock_guard lock(cache_mutex_);
    lru_.clear();  // (unlinks every entry before cache_ destroys them)
    cache_.clear();
  }

  // ---- system calls ------------------------------------------------------------------------

  // Opens `path` relative to the partition's store path. With O_CREAT a missing partition
  // directory is created first; on EMFILE the cache is emptied and the open tried once more.
  [[nodiscard]] error open_path(const table_ident& t, const std::string& path, int flags, int& fd) {
    const int root = root_fd(t);
    const auto open_once = [&] {
      return retry([&] { return ::openat(root, path.c_str(), flags, 0644); });
    };
    fd = open_once();
    if (fd < 0 && errno == ENOENT && (flags & O_CREAT) != 0) {
      if (const error e = make_partition_directory(t); e != error::ok) {
        return e;
      }
      fd = open_once();
    }
    if (fd < 0 && errno == EMFILE) {
      drop_all_cached();
      fd = open_once();
    }
    return fd >= 0 ? error::ok : error_from_errno(errno);
  }

  // mkdir of the partition directory, then an fsync of the store path to make it durable.
  [[nodiscard]] error make_partition_directory(const table_ident& t) {
    const int root = root_fd(t);
    const std::string dir = t.to_string();
    if (::mkdirat(root, dir.c_str(), 0755) != 0) {
      return errno == EEXIST ? error::ok : error_from_errno(errno);
    }
    return retry([&] { return ::fsync(root); }) == 0 ? error::ok : error_from_errno(errno);
  }

  // fsync of the directory `dir` relative to `base` (AT_FDCWD for the working directory).
  [[nodiscard]] static error sync_directory(int base, const std::string& dir) {
    const int fd =
        retry([&] { return ::openat(base, dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
    if (fd < 0) {
      return error_from_errno(errno);
    }
    const file_handle handle{fd};
    return retry([&] { return ::fsync(fd); }) == 0 ? error::ok : error_from_errno(errno);
  }

  // `mkdir -p path`, syncing the parent of every directory it creates. invalid_args if the
  // path, or a component of it, exists and is not a directory.
  [[nodiscard]] static error make_directories(const std::string& path) {
    if (path.empty()) {
      return error::invalid_args;
    }
    // Each prefix that ends before a '/' (skipping a leading one), then the whole path.
    for (std::size_t end = 1; end <= path.size(); ++end) {
      if (end != path.size() && path[end] != '/') {
        continue;
      }
      const std::string prefix = path.substr(0, end);
      if (::mkdir(prefix.c_str(), 0755) == 0) {
        if (const error e = sync_directory(AT_FDCWD, parent_of(prefix)); e != error::ok) {
          return e;
        }
        continue;
      }
      if (errno == ENOTDIR) {
        return error::invalid_args;
      }
      if (errno != EEXIST) {
        return error_from_errno(errno);
      }
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      return errno == ENOTDIR ? error::invalid_args : error_from_errno(errno);
    }
    return S_ISDIR(st.st_mode) ? error::ok : error::invalid_args;
  }

  [[nodiscard]] static std::string parent_of(const std::string& path) {
    const std::size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) {
      return ".";
    }
    return slash == 0 ? std::string("/") : path.substr(0, slash);
  }

  // Reads all of buf at `offset`; end_of_file if the file ends first.
  [[nodiscard]] static error pread_all(int fd, std::uint64_t offset, std::span<char> buf) {
    if (const error e = detail::check_file_range(offset, buf.size()); e != error::ok) {
      return e;
    }
    // Bounded by buf.size(): every round reads at least one byte or returns.
    while (!buf.empty()) {
      const ssize_t n =
          retry([&] { return ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(offset)); });
      if (n < 0) {
        return error_from_errno(errno);
      }
      if (n == 0) {
        return error::end_of_file;
      }
      buf = buf.subspan(static_cast<std::size_t>(n));
      offset += static_cast<std::uint64_t>(n);
    }
    return error::ok;
  }

  // Writes all of data at `offset`; a gap past the old end reads as zeros.
  [[nodiscard]] static error pwrite_all(int fd, std::uint64_t offset, std::span<const char> data) {
    if (const error e = detail::check_file_range(offset, data.size()); e != error::ok) {
      return e;
    }
    // Bounded by data.size(): every round writes at least one byte or returns.
    while (!data.empty()) {
      const ssize_t n =
          retry([&] { return ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset)); });
      if (n < 0) {
        return error_from_errno(errno);
      }
      if (n == 0) {
        return error::io_fail;  // no progress and no errno: give up rather than spin
      }
      data = data.subspan(static_cast<std::size_t>(n));
      offset += static_cast<std::uint64_t>(n);
    }
    return error::ok;
  }

  // The empty read at `offset`: ok when the file is at least `offset` bytes long.
  [[nodiscard]] static error check_size(int fd, std::uint64_t offset) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      return error_from_errno(errno);
    }
    return offset > static_cast<std::uint64_t>(st.st_size) ? error::end_of_file : error::ok;
  }

  // Calls on_entry(dir_fd, entry) for every entry of the directory fd other than "." and "..";
  // takes ownership of fd. Bounded by the directory's size.
  template <typename F>
  [[nodiscard]] static error read_directory(int fd, F&& on_entry) {
    DIR* dir = ::fdopendir(fd);
    if (dir == nullptr) {
      const int err = errno;
      ::close(fd);
      return error_from_errno(err);
    }
    error e = error::ok;
    for (;;) {
      errno = 0;
      const ::dirent* entry = ::readdir(dir);
      if (entry == nullptr) {
        e = error_from_errno(errno);
        break;
      }
      const std::string_view name(entry->d_name);
      if (name != "." && name != "..") {
        on_entry(::dirfd(dir), *entry);
      }
    }
    ::closedir(dir);
    return e;
  }

  [[nodiscard]] static bool is_directory(int dir_fd, const ::dirent& entry) {
    if (entry.d_type == DT_DIR) {
      return true;
    }
    if (entry.d_type != DT_UNKNOWN && entry.d_type != DT_LNK) {
      return false;
    }
    struct stat st {};
    return ::fstatat(dir_fd, entry.d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
  }

  static void close_all(std::vector<int>& fds) {
    for (const int fd : fds) {
      ::close(fd);
    }
    fds.clear();
  }

  std::vector<std::string> store_paths_;
  std::size_t open_files_max_;
  std::vector<int> roots_;  // one directory fd per store path while open
  bool direct_data_ = false;
  bool read_only_ = false;

  std::mutex cache_mutex_;  // guards cache_ and lru_
  std::unordered_map<std::string, cache_entry> cache_;
  lru_list lru_;  // the entries of cache_, most recently used first (declared after cache_:
                  // destroyed first, unlinking what cache_ then destroys)
};

static_assert(io_backend<pread_io>);

}  // namespace eloqstore
