// The store's own corner of each store path: `<store_path>/.eloqstore/`, holding
//
//   LOCK       held with flock() (exclusive) for as long as a store that writes has the path
//              open; the store path's directory is flock'ed as well, exclusive by a writer
//              and shared by a read-only store (which creates nothing, so it cannot count on
//              a LOCK file). A second writer, or a reader beside a writer (another process,
//              or another EloqStore object in this one: flock locks belong to the open file,
//              not the process) fails at start() with error::store_locked.
//   IDENTITY   the settings the path's files were written with (see store_identity), written
//              once, atomically, and checked at every start(): a store configured otherwise
//              would misread every page (another page size or file size) or misorder every
//              key (another comparator), so it is refused before it reads anything.
//
// Why a directory and not files at the root: the reference engine refuses to start on a store
// path holding anything but directories (InitStoreSpace), and skips directories whose names
// are not `<table>.<partition>` when it lists partitions (`.eloqstore` has no partition
// number), so a directory written by us still opens there. A path without IDENTITY (written
// by the reference, or by a build of ours before the record existed) is accepted as the
// options describe it, and the record is written from them.
//
// Errors name the path, the operation and the errno text (message()). Thread affinity: used
// by EloqStore::start()/stop() under the lifecycle mutex.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <eloqstore/detail/io/syscall.hpp>
#include <eloqstore/error.hpp>

namespace eloqstore::detail {

inline constexpr std::string_view store_meta_dir_name = ".eloqstore";
inline constexpr std::string_view store_lock_file_name = "LOCK";
inline constexpr std::string_view store_identity_file_name = "IDENTITY";

// What shapes the bytes of a store: a store configured otherwise cannot read them.
struct store_identity {
  static constexpr std::uint32_t format_version_current = 1;
  std::uint32_t format_version = format_version_current;
  std::string comparator;
  std::uint32_t data_page_size = 0;
  std::uint32_t pages_per_file_shift = 0;
  std::uint32_t overflow_pointers = 0;
  bool data_append_mode = false;

  // One `key=value` line per field, after a comment line.
  [[nodiscard]] std::string to_text() const {
    std::string s = "# eloqstore: the settings this store path was written with\n";
    s += "format_version=" + std::to_string(format_version) + "\n";
    s += "comparator=" + comparator + "\n";
    s += "data_page_size=" + std::to_string(data_page_size) + "\n";
    s += "pages_per_file_shift=" + std::to_string(pages_per_file_shift) + "\n";
    s += "overflow_pointers=" + std::to_string(overflow_pointers) + "\n";
    s += std::string("data_append_mode=") + (data_append_mode ? "true" : "false") + "\n";
    return s;
  }

  // Parses to_text()'s form; lines of unknown keys are skipped (a later format version says
  // whether they matter). False (with `why`) if a field is missing or malformed.
  [[nodiscard]] static bool parse(std::string_view text, store_identity& out, std::string& why) {
    store_identity id;
    const struct {
      std::string_view key;
      std::uint32_t* number;  // nullptr: comparator or data_append_mode
    } fields[] = {{"format_version", &id.format_version},
                  {"comparator", nullptr},
                  {"data_page_size", &id.data_page_size},
                  {"pages_per_file_shift", &id.pages_per_file_shift},
                  {"overflow_pointers", &id.overflow_pointers},
                  {"data_append_mode", nullptr}};
    unsigned seen = 0;  // bit i: fields[i] read
    std::istringstream in{std::string(text)};
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') {
        continue;
      }
      const std::size_t eq = line.find('=');
      if (eq == std::string::npos) {
        why = "line without '=': '" + line + "'";
        return false;
      }
      const std::string key = line.substr(0, eq);
      const std::string value = line.substr(eq + 1);
      std::size_t i = 0;
      while (i < std::size(fields) && fields[i].key != key) {
        ++i;
      }
      if (i == std::size(fields)) {
        continue;
      }
      seen |= 1U << i;
      if (fields[i].number != nullptr) {
        if (!parse_u32(value, *fields[i].number)) {
          why = key + " is '" + value + "', not a number";
          return false;
        }
      } else if (key == "comparator") {
        id.comparator = value;
      } else if (value == "true" || value == "false") {
        id.data_append_mode = value == "true";
      } else {
        why = "data_append_mode is '" + value + "', not true or false";
        return false;
      }
    }
    if (seen != (1U << std::size(fields)) - 1) {
      why = "a field is missing";
      return false;
    }
    out = std::move(id);
    return true;
  }

  // Empty if `recorded` (read from a path) fits a store configured as *this; otherwise the
  // first difference, naming both values.
  [[nodiscard]] std::string mismatch(const store_identity& recorded) const {
    const auto differs = [](std::string_view what, const std::string& was, const std::string& now) {
      return std::string(what) + " was " + was + " when the store was written, is " + now + " now";
    };
    if (recorded.format_version > format_version_current) {
      return "format_version " + std::to_string(recorded.format_version) +
             " is newer than this build reads (" + std::to_string(format_version_current) + ")";
    }
    if (recorded.comparator != comparator) {
      return differs("the comparator", "'" + recorded.comparator + "'", "'" + comparator + "'");
    }
    if (recorded.data_page_size != data_page_size) {
      return differs("data_page_size", std::to_string(recorded.data_page_size),
                     std::to_string(data_page_size));
    }
    if (recorded.pages_per_file_shift != pages_per_file_shift) {
      return differs("pages_per_file_shift", std::to_string(recorded.pages_per_file_shift),
                     std::to_string(pages_per_file_shift));
    }
    if (recorded.overflow_pointers != overflow_pointers) {
      return differs("overflow_pointers", std::to_string(recorded.overflow_pointers),
                     std::to_string(overflow_pointers));
    }
    if (recorded.data_append_mode != data_append_mode) {
      return differs("data_append_mode", recorded.data_append_mode ? "true" : "false",
                     data_append_mode ? "true" : "false");
    }
    return {};
  }

 private:
  [[nodiscard]] static bool parse_u32(const std::string& s, std::uint32_t& out) {
    if (s.empty() || s.size() > 10) {
      return false;
    }
    std::uint64_t v = 0;
    for (const char c : s) {
      if (c < '0' || c > '9') {
        return false;
      }
      v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (v > 0xffffffffULL) {
      return false;
    }
    out = static_cast<std::uint32_t>(v);
    return true;
  }
};

// Holds the locks of every store path from acquire() to release().
// Invariant: lock_fds_ holds one open, locked LOCK file per path after a successful acquire,
// nothing otherwise.
class store_root {
 public:
  store_root() = default;
  store_root(const store_root&) = delete;
  store_root& operator=(const store_root&) = delete;
  ~store_root() { release(); }

  // For each path: creates it if missing (as `mkdir -p`), creates `.eloqstore`, takes the
  // exclusive lock, then checks the identity record or writes it. With `read_only` it
  // creates and writes nothing: a missing path fails (not_found), the lock is shared (when
  // there is a LOCK file), an identity record is checked if there is one. On failure
  // nothing stays locked, message() says what failed, and nothing was written but missing
  // directories and the (empty) LOCK file: a path with another identity is left as it was.
  // Errors: invalid_args (a path is not a directory; identity mismatch), store_locked,
  // no_permission (EACCES, EPERM, EROFS), corrupted (an unreadable identity record), and
  // the errno's error otherwise.
  [[nodiscard]] error acquire(const std::vector<std::string>& paths, const store_identity& id,
                              bool read_only) {
    release();
    message_.clear();
    for (const std::string& path : paths) {
      if (const error e = acquire_one(path, id, read_only); e != error::ok) {
        release();
        return e;
      }
    }
    return error::ok;
  }

  void release() noexcept {
    for (const int fd : lock_fds_) {
      ::close(fd);  // closing the last descriptor of the open file drops its flock
    }
    lock_fds_.clear();
  }

  [[nodiscard]] const std::string& message() const noexcept { return message_; }

 private:
  [[nodiscard]] error fail(error e, std::string what) {
    message_ = std::move(what);
    return e;
  }
  [[nodiscard]] error fail_errno(const std::string& op, const std::string& path, int err) {
    return fail(error_from_errno(err), op + " '" + path + "': " + std::strerror(err));
  }
  [[nodiscard]] error acquire_one(const std::string& path, const store_identity& id,
                                  bool read_only) {
    const std::string meta = path + "/" + std::string(store_meta_dir_name);
    const std::string lock_path = meta + "/" + std::string(store_lock_file_name);
    if (read_only) {
      // Creates nothing: the shared lock is on the store path's directory itself, which a
      // writer also locks (below), so it works where no store of ours made a LOCK file.
      if (const error e = check_directory(path); e != error::ok) {
        return e;
      }
      if (const error e = lock_directory(path, LOCK_SH); e != error::ok) {
        return e;
      }
      return check_identity(path, meta, id, true);
    }
    if (const error e = make_directories(path); e != error::ok) {
      return e;
    }
    if (::mkdir(meta.c_str(), 0755) != 0 && errno != EEXIST) {
      return fail_errno("cannot create the store's directory", meta, errno);
    }
    const int fd =
        retry_eintr([&] { return ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644); });
    if (fd < 0) {
      return fail_errno("cannot create the lock file", lock_path, errno);
    }
    if (const error e = lock(path, lock_path, fd, LOCK_EX); e != error::ok) {
      return e;
    }
    if (const error e = lock_directory(path, LOCK_EX); e != error::ok) {
      return e;  // a read-only store has the path
    }
    // A path the store cannot write fails here, not at its first write.
    if (::faccessat(AT_FDCWD, path.c_str(), W_OK, AT_EACCESS) != 0) {
      return fail_errno("cannot write to the store path", path, errno);
    }
    return check_identity(path, meta, id, false);
  }

  // Takes the flock (`how`: LOCK_SH or LOCK_EX) on fd without waiting; keeps fd on success,
  // closes it on failure.
  [[nodiscard]] error lock(const std::string& path, const std::string& lock_path, int fd, int how) {
    if (::flock(fd, how | LOCK_NB) != 0) {
      const int err = errno;
      const std::string holder = lock_holder(fd);
      ::close(fd);
      if (err == EWOULDBLOCK) {
        return fail(error::store_locked, "store path '" + path + "' is in use: " + lock_path +
                                             " is locked by " + holder);
      }
      return fail_errno("cannot lock", lock_path, err);
    }
    lock_fds_.push_back(fd);
    return error::ok;
  }

  [[nodiscard]] error lock_directory(const std::string& path, int how) {
    const int fd =
        retry_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
    if (fd < 0) {
      return fail_errno("cannot open the store path", path, errno);
    }
    return lock(path, path, fd, how);
  }

  [[nodiscard]] error check_directory(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      return fail_errno("cannot open the store path", path, errno);
    }
    if (!S_ISDIR(st.st_mode)) {
      return fail(error::invalid_args, "store path '" + path + "' is not a directory");
    }
    return error::ok;
  }

  // Compares the recorded identity with `id`, or records `id` where there is none.
  [[nodiscard]] error check_identity(const std::string& path, const std::string& meta,
                                     const store_identity& id, bool read_only) {
    const std::string file = meta + "/" + std::string(store_identity_file_name);
    std::string text;
    const int fd = retry_eintr([&] { return ::open(file.c_str(), O_RDONLY | O_CLOEXEC); });
    if (fd < 0) {
      if (errno != ENOENT) {
        return fail_errno("cannot open the identity record", file, errno);
      }
      return read_only ? error::ok : write_identity(meta, file, id);
    }
    char buf[4096];
    for (;;) {
      const ssize_t n = retry_eintr([&] { return ::read(fd, buf, sizeof buf); });
      if (n < 0) {
        const int err = errno;
        ::close(fd);
        return fail_errno("cannot read the identity record", file, err);
      }
      if (n == 0 || text.size() > identity_bytes_max) {
        break;
      }
      text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    store_identity recorded;
    std::string why;
    if (!store_identity::parse(text, recorded, why)) {
      return fail(error::corrupted, "the identity record " + file + " is damaged: " + why);
    }
    if (const std::string m = id.mismatch(recorded); !m.empty()) {
      return fail(error::invalid_args, "store path '" + path + "' does not fit the options: " + m);
    }
    return error::ok;
  }

  // Writes the record as one durable step: a temporary file, synced, renamed, and the
  // directory synced.
  [[nodiscard]] error write_identity(const std::string& meta, const std::string& file,
                                     const store_identity& id) {
    const std::string tmp = file + ".tmp";
    const std::string text = id.to_text();
    const int fd = retry_eintr(
        [&] { return ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644); });
    if (fd < 0) {
      return fail_errno("cannot create", tmp, errno);
    }
    std::size_t done = 0;
    while (done < text.size()) {
      const ssize_t n =
          retry_eintr([&] { return ::write(fd, text.data() + done, text.size() - done); });
      if (n <= 0) {
        const int err = n < 0 ? errno : EIO;
        ::close(fd);
        ::unlink(tmp.c_str());
        return fail_errno("cannot write", tmp, err);
      }
      done += static_cast<std::size_t>(n);
    }
    if (retry_eintr([&] { return ::fdatasync(fd); }) != 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return fail_errno("cannot sync", tmp, err);
    }
    ::close(fd);
    if (::rename(tmp.c_str(), file.c_str()) != 0) {
      const int err = errno;
      ::unlink(tmp.c_str());
      return fail_errno("cannot rename over", file, err);
    }
    return sync_directory(meta);
  }

  [[nodiscard]] error sync_directory(const std::string& dir) {
    const int fd =
        retry_eintr([&] { return ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
    if (fd < 0) {
      return fail_errno("cannot open", dir, errno);
    }
    const int rc = retry_eintr([&] { return ::fsync(fd); });
    const int err = errno;
    ::close(fd);
    return rc == 0 ? error::ok : fail_errno("cannot sync", dir, err);
  }

  // `mkdir -p path`; a component that exists and is not a directory fails with invalid_args.
  [[nodiscard]] error make_directories(const std::string& path) {
    for (std::size_t end = 1; end <= path.size(); ++end) {
      if (end != path.size() && path[end] != '/') {
        continue;
      }
      const std::string prefix = path.substr(0, end);
      if (::mkdir(prefix.c_str(), 0755) == 0) {
        continue;
      }
      const int err = errno;
      struct stat st {};
      if (::stat(prefix.c_str(), &st) != 0) {
        return fail_errno("cannot create the store path", prefix, err);
      }
      if (!S_ISDIR(st.st_mode)) {
        return fail(error::invalid_args,
                    "store path '" + path + "': '" + prefix + "' exists and is not a directory");
      }
    }
    return error::ok;
  }

  // Who holds the flock on fd's file, from /proc/locks ("process <pid>"), as far as Linux
  // tells; "another open of it" when it does not.
  [[nodiscard]] static std::string lock_holder(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      return "another open of it";
    }
    const std::string inode = ":" + std::to_string(st.st_ino) + " ";
    std::ifstream locks("/proc/locks");
    std::string line;
    while (std::getline(locks, line)) {
      // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
      std::istringstream fields(line);
      std::string index, kind, advisory, mode, pid, dev_inode;
      fields >> index >> kind;
      if (kind == "->") {  // a waiter, not a holder
        continue;
      }
      fields >> advisory >> mode >> pid >> dev_inode;
      if (kind == "FLOCK" && (dev_inode + " ").ends_with(inode)) {
        const bool self = pid == std::to_string(::getpid());
        return "process " + pid + (self ? " (this process: another EloqStore object)" : "");
      }
    }
    return "another open of it";
  }

  static constexpr std::size_t identity_bytes_max = 64 << 10;  // a record is a few lines
  std::vector<int> lock_fds_;
  std::string message_;
};

}  // namespace eloqstore::detail
