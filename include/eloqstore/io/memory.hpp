// memory_io: an in-memory io_backend, used when the store has no store_path and by tests.
//
// It models what survives a crash precisely, so that crash tests mean something:
// * A file is an inode with `current` bytes and `durable` bytes; sync(t, name) copies current
//   to durable.
// * A partition directory maps names to inodes twice: the current names, and the durable
//   names (the map as of the last directory sync). A name created or removed becomes durable
//   at sync_dir(t), as an fsync of the directory would make it.
// * write_file_atomic is durable when it returns. Its directory sync makes every name of that
//   partition durable, as it does on a real file system.
// * A partition directory is durable as soon as it exists (pread_io fsyncs the store path
//   after creating one), and stays when its last file is removed.
// crash() drops everything that is not durable: files revert to their durable bytes, names
// never made durable vanish, and names removed without a directory sync come back.
// close() keeps the files, so close() then open() models a restart on the same disk.
//
// Thread safety: every member function takes one mutex, so shards may call at once.
// Invariants: each inode is reachable from at most one current name and at most one durable
// name; a durable copy is only ever assigned from a current copy (or from the data of an
// atomic write, which sets both).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/io/io_args.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore {

class memory_io {
 public:
  memory_io() = default;
  memory_io(const memory_io&) = delete;
  memory_io& operator=(const memory_io&) = delete;

  // Always succeeds; the files of an earlier open() are still there.
  [[nodiscard]] error open() {
    const std::lock_guard lock(mutex_);
    open_ = true;
    return error::ok;
  }
  // Later calls other than open() fail with error::not_running. Keeps every file.
  void close() {
    const std::lock_guard lock(mutex_);
    open_ = false;
  }

  // Fills all of buf from `offset`; not_found if the file is missing, end_of_file if it ends
  // before offset + buf.size().
  [[nodiscard]] error read(const table_ident& t, std::string_view name, std::uint64_t offset,
                           std::span<char> buf) {
    const std::lock_guard lock(mutex_);
    if (const error e = check(t, name); e != error::ok) {
      return e;
    }
    const inode* file = find(t, name);
    if (file == nullptr) {
      return error::not_found;
    }
    const std::uint64_t size = file->current.size();
    if (offset > size || buf.size() > size - offset) {
      return error::end_of_file;
    }
    if (!buf.empty()) {
      std::memcpy(buf.data(), file->current.data() + offset, buf.size());
    }
    return error::ok;
  }

  // Writes all of data at `offset`, creating the partition and the file when missing; a gap
  // past the old end reads as zeros. Not durable until sync(t, name) (and, for a new name,
  // sync_dir(t)).
  [[nodiscard]] error write(const table_ident& t, std::string_view name, std::uint64_t offset,
                            std::span<const char> data) {
    const std::lock_guard lock(mutex_);
    if (const error e = check(t, name); e != error::ok) {
      return e;
    }
    std::string& bytes = create(t, name).current;
    if (offset > bytes.max_size() || data.size() > bytes.max_size() - offset) {
      return error::invalid_args;
    }
    const std::uint64_t end = offset + data.size();
    if (end > bytes.size()) {
      bytes.resize(static_cast<std::size_t>(end), '\0');
    }
    if (!data.empty()) {
      std::memcpy(bytes.data() + offset, data.data(), data.size());
    }
    return error::ok;
  }

  // Makes the file's current bytes durable; not_found if the file is missing.
  [[nodiscard]] error sync(const table_ident& t, std::string_view name) {
    const std::lock_guard lock(mutex_);
    if (const error e = check(t, name); e != error::ok) {
      return e;
    }
    inode* file = find(t, name);
    if (file == nullptr) {
      return error::not_found;
    }
    file->durable = file->current;
    return error::ok;
  }

  // Makes the partition's current names (creations and removals) durable; not_found if the
  // partition has no directory.
  [[nodiscard]] error sync_dir(const table_ident& t) {
    const std::lock_guard lock(mutex_);
    if (const error e = check(t); e != error::ok) {
      return e;
    }
    const auto it = partitions_.find(t);
    if (it == partitions_.end()) {
      return error::not_found;
    }
    it->second.durable_names = it->second.names;
    return error::ok;
  }

  // The whole file into `out`; not_found if the file is missing.
  [[nodiscard]] error read_file(const table_ident& t, std::string_view name, std::string& out) {
    const std::lock_guard lock(mutex_);
    if (const error e = check(t, name); e != error::ok) {
      return e;
    }
    const inode* file = find(t, name);
    if (file == nullptr) {
      return error::not_found;
    }
    out = file->current;
    return error::ok;
  }

  // Replaces the file with `data` as one durable step, creating the partition if needed.
  [[nodiscard]] error write_file_atomic(const table_ident& t, std::string_view name,
                                        std::span<const char> data) {
    const std::lock_guard lock(mutex_);
    if (const error e = check(t, name); e != error::ok) {
      return e;
    }
    auto file = std::make_shared<inode>();
    file->current.assign(data.data(), data.size());
    file->durable = file->current;
    partition& p = partitions_[t];
    p.names.insert_or_assign(std::string(name), std::move(file));
    p.durable_names = p.names;
    return error::ok;
  }

  // Unlinks the name; durable after sync_dir(t). not_found if the file is missing.
  [[nodiscard]] error remove(const table_ident& t, std::string_view name) {
    const std::lock_guard lock(mutex_);
    if (const error e = check(t, name); e != error::ok) {
      return e;
    }
    const auto it = partitions_.find(t);
    if (it == partitions_.end()) {
      return error::not_found;
    }
    const auto file = it->second.names.find(name);
    if (file == it->second.names.end()) {
      return error::not_found;
    }
    it->second.names.erase(file);
    return error::ok;
  }

  // The partition's file names in byte order; not_found if it has no directory.
  [[nodiscard]] error list(const table_ident& t, std::vector<std::string>& names) {
    const std::lock_guard lock(mutex_);
    if (const error e = check(t); e != error::ok) {
      return e;
    }
    const auto it = partitions_.find(t);
    if (it == partitions_.end()) {
      return error::not_found;
    }
    names.clear();
    names.reserve(it->second.names.size());
    for (const auto& entry : it->second.names) {
      names.push_back(entry.first);
    }
    return error::ok;
  }

  // Every partition that has a directory, in no particular order.
  [[nodiscard]] error list_partitions(std::vector<table_ident>& tables) {
    const std::lock_guard lock(mutex_);
    if (!open_) {
      return error::not_running;
    }
    tables.clear();
    tables.reserve(partitions_.size());
    for (const auto& entry : partitions_) {
      tables.push_back(entry.first);
    }
    return error::ok;
  }

  // ---- for tests ---------------------------------------------------------------------------

  // Drops everything not durable (see the header comment). Needs no open().
  void crash() {
    const std::lock_guard lock(mutex_);
    for (auto& entry : partitions_) {
      partition& p = entry.second;
      p.names = p.durable_names;
      for (auto& file : p.names) {
        file.second->current = file.second->durable;
      }
    }
  }

  // The number of files (current names) over all partitions.
  [[nodiscard]] std::size_t file_count() const {
    const std::lock_guard lock(mutex_);
    std::size_t count = 0;
    for (const auto& entry : partitions_) {
      count += entry.second.names.size();
    }
    return count;
  }

  // XORs the byte at `offset` of the file with `xor_mask`, in its current bytes and (when the
  // durable copy is that long) its durable bytes, so the damage survives crash(). False if
  // the file is missing or shorter than offset + 1.
  bool corrupt_byte(const table_ident& t, std::string_view name, std::uint64_t offset,
                    char xor_mask) {
    const std::lock_guard lock(mutex_);
    inode* file = find(t, name);
    if (file == nullptr || offset >= file->current.size()) {
      return false;
    }
    file->current[offset] = static_cast<char>(file->current[offset] ^ xor_mask);
    if (offset < file->durable.size()) {
      file->durable[offset] = static_cast<char>(file->durable[offset] ^ xor_mask);
    }
    return true;
  }

 private:
  struct inode {
    std::string current;
    std::string durable;
  };
  using directory = std::map<std::string, std::shared_ptr<inode>, std::less<>>;
  struct partition {
    directory names;          // what list() and read() see now
    directory durable_names;  // what a crash leaves
  };

  [[nodiscard]] error check(const table_ident& t) const { return detail::check_io_args(open_, t); }
  [[nodiscard]] error check(const table_ident& t, std::string_view name) const {
    return detail::check_io_args(open_, t, name);
  }

  // REQUIRES: mutex_ held.
  [[nodiscard]] inode* find(const table_ident& t, std::string_view name) {
    const auto it = partitions_.find(t);
    if (it == partitions_.end()) {
      return nullptr;
    }
    const auto file = it->second.names.find(name);
    return file == it->second.names.end() ? nullptr : file->second.get();
  }

  // The file's inode, created empty (with its partition) when missing. REQUIRES: mutex_ held.
  [[nodiscard]] inode& create(const table_ident& t, std::string_view name) {
    directory& names = partitions_[t].names;
    auto it = names.find(name);
    if (it == names.end()) {
      it = names.emplace(std::string(name), std::make_shared<inode>()).first;
    }
    return *it->second;
  }

  mutable std::mutex mutex_;
  bool open_ = false;
  std::unordered_map<table_ident, partition> partitions_;
};

static_assert(io_backend<memory_io>);

}  // namespace eloqstore
