// format_tour: writes a small partition in the on-disk format and reads it back.
//
// It builds data pages from 20,000 sorted keys, one leaf-index page over them (a two-level
// tree), writes them to `<dir>/tour.0/data_0_0`, records the mapping in `<dir>/tour.0/manifest_0`
// (written as manifest_0.tmp, fdatasync'ed, renamed, directory fsync'ed), then reopens the
// manifest, replays it, and looks up and scans keys through the index page, verifying every
// page checksum. The engine that does this for real arrives with the B+tree; this program
// shows the formats it builds on.
//
// Usage: format_tour [directory=./eloqstore-tour]
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <eloqstore/comparator.hpp>
#include <eloqstore/detail/codec/checksum.hpp>
#include <eloqstore/detail/io/file_names.hpp>
#include <eloqstore/detail/manifest/record.hpp>
#include <eloqstore/detail/manifest/replay.hpp>
#include <eloqstore/detail/page/data_page.hpp>
#include <eloqstore/detail/page/index_page.hpp>
#include <eloqstore/table_ident.hpp>

namespace {

using namespace eloqstore;
using namespace eloqstore::detail;

constexpr std::size_t page_size = 4096;
constexpr std::size_t key_count = 20000;

int fail(const char* what) {
  std::fprintf(stderr, "format_tour: %s: %s\n", what, std::strerror(errno));
  return 1;
}

std::string key_of(std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "user:%08zu", i);
  return buf;
}

// Writes all of `bytes` at `offset` and fdatasyncs; false on any error.
bool write_synced(int fd, const std::string& bytes, off_t offset) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        ::pwrite(fd, bytes.data() + done, bytes.size() - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return ::fdatasync(fd) == 0;
}

bool read_file(const std::string& path, std::string& out) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    return false;
  }
  out.clear();
  char buf[1 << 16];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) {
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return n == 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string root = argc > 1 ? argv[1] : "./eloqstore-tour";
  const table_ident table{"tour", 0};
  const std::string dir = root + "/" + table.to_string();
  std::filesystem::create_directories(dir);

  // 1. Data pages (logical ids 1..n), leaf-linked, and the index page (logical id 0).
  data_page_builder leaf(page_size, 16);
  index_page_builder index(page_size, 16);
  std::string file;
  std::vector<std::string> first_keys;
  const std::string value(100, 'v');
  std::size_t next_key = 0;
  while (next_key < key_count) {
    leaf.reset();
    const std::string first = key_of(next_key);
    while (next_key < key_count && leaf.add(key_of(next_key), value, next_key)) {
      ++next_key;
    }
    const auto pid = static_cast<std::uint32_t>(first_keys.size() + 1);
    const bool last = next_key == key_count;
    auto bytes = leaf.finish(pid == 1 ? page_id::none() : page_id(pid - 1),
                             last ? page_id::none() : page_id(pid + 1));
    set_page_checksum(bytes);
    file.append(bytes.data(), bytes.size());
    first_keys.push_back(first);
  }
  const bytewise_comparator cmp;
  for (std::size_t i = 0; i < first_keys.size(); ++i) {
    if (!index.add(i == 0 ? std::string_view{} : std::string_view(first_keys[i]),
                   page_id(static_cast<std::uint32_t>(i + 1)), true)) {
      std::fprintf(stderr, "format_tour: index page full\n");
      return 1;
    }
  }
  auto index_bytes = index.finish();
  set_page_checksum(index_bytes);
  const std::size_t index_fp = first_keys.size();  // index page goes last in the file
  file.append(index_bytes.data(), index_bytes.size());

  const std::string data_path = dir + "/" + data_file_name(file_id(0), 0);
  const int data_fd = ::open(data_path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
  if (data_fd < 0 || !write_synced(data_fd, file, 0) || ::close(data_fd) != 0) {
    return fail("write data file");
  }

  // 2. The manifest: mapping id 0 -> index page, ids 1..n -> data pages; atomically replaced.
  std::vector<std::uint64_t> mapping;
  mapping.push_back(encode_file_page(file_page_id(index_fp)));
  for (std::size_t i = 0; i < first_keys.size(); ++i) {
    mapping.push_back(encode_file_page(file_page_id(i)));
  }
  manifest_builder mb;
  const term_mapping terms{{0, 0}, {manifest_file_id.value(), 0}};
  const std::string record(
      mb.snapshot(page_id(0), page_id::none(), mapping, index_fp + 1, "", terms));
  const std::string manifest_path = dir + "/" + manifest_file_name(0);
  const std::string tmp_path = temporary_file_name(manifest_path);
  const int mfd = ::open(tmp_path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
  if (mfd < 0 || !write_synced(mfd, record, 0) || ::close(mfd) != 0 ||
      ::rename(tmp_path.c_str(), manifest_path.c_str()) != 0) {
    return fail("write manifest");
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd < 0 || ::fsync(dfd) != 0 || ::close(dfd) != 0) {
    return fail("sync directory");
  }
  std::printf("wrote %zu keys in %zu data pages + 1 index page to %s\n", key_count,
              first_keys.size(), dir.c_str());

  // 3. Read back: replay the manifest, then look keys up through the index page.
  std::string manifest_bytes;
  std::string data_bytes;
  replay_result state;
  if (!read_file(manifest_path, manifest_bytes) || !read_file(data_path, data_bytes) ||
      replay_manifest(manifest_bytes, state) != error::ok) {
    std::fprintf(stderr, "format_tour: reading back failed\n");
    return 1;
  }
  auto page_at = [&](page_id id) {
    const std::uint64_t fp = decode_file_page(state.mapping.at(id.value())).value();
    return std::span<const char>(data_bytes.data() + fp * page_size, page_size);
  };
  const auto root_bytes = page_at(state.root);
  index_page root_page;
  if (!verify_page_checksum(root_bytes) || index_page::open(root_bytes, root_page) != error::ok) {
    std::fprintf(stderr, "format_tour: index page corrupt\n");
    return 1;
  }
  std::size_t found = 0;
  std::size_t scanned = 0;
  for (std::size_t i = 0; i < key_count; i += 97) {
    index_page_iter it(root_page);
    it.seek_floor(key_of(i), cmp);
    const auto leaf_bytes = page_at(it.child());
    data_page leaf_page;
    if (!verify_page_checksum(leaf_bytes) || data_page::open(leaf_bytes, leaf_page) != error::ok) {
      std::fprintf(stderr, "format_tour: data page corrupt\n");
      return 1;
    }
    data_page_iter d(leaf_page);
    d.seek(key_of(i), cmp);
    found += d.valid() && d.key() == key_of(i) && d.timestamp() == i && d.value() == value;
  }
  // A full scan following the leaf links from the leftmost leaf.
  for (page_id id(1); !id.is_none();) {
    data_page p;
    if (data_page::open(page_at(id), p) != error::ok) {
      return 1;
    }
    data_page_iter d(p);
    for (d.seek_to_first(); d.valid(); d.next()) {
      scanned += d.key() == key_of(scanned);
    }
    id = p.next();
  }
  const std::size_t expected = (key_count + 96) / 97;
  std::printf(
      "replayed manifest (%zu mapped pages); point lookups: %zu/%zu found; scan: %zu/%zu keys in "
      "order\n",
      state.mapping.size(), found, expected, scanned, key_count);
  return found == expected && scanned == key_count ? 0 : 1;
}
