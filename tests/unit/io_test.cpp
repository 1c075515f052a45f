// I/O backends: the io_backend contract over memory_io and pread_io, memory_io's crash model,
// pread_io's store paths and descriptor cache, and faulty_io's seeded faults and crashes.
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/detail/commit/file_handles.hpp>
#include <eloqstore/detail/util/page_buffer.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/io/faulty.hpp>
#include <eloqstore/io/memory.hpp>
#include <eloqstore/io/pread.hpp>
#include <eloqstore/io/uring.hpp>
#include <eloqstore/sched/fiber.hpp>
#include <eloqstore/table_ident.hpp>
#include <eloqstore/traits.hpp>

using namespace eloqstore;

namespace {

std::span<const char> bytes(std::string_view s) {
  return {s.data(), s.size()};
}

// A fresh directory under /tmp, removed with everything in it when the test ends.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = "/tmp/eloqstore_io_test_XXXXXX";
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Makes fresh backends of one kind; a pread_io gets store paths inside its own temp_dir.
template <typename B>
struct backend_env;

template <>
struct backend_env<memory_io> {
  std::unique_ptr<memory_io> make(std::size_t /*store_path_count*/ = 1) {
    return std::make_unique<memory_io>();
  }
};

template <>
struct backend_env<pread_io> {
  temp_dir dir;
  std::vector<std::string> paths(std::size_t store_path_count) const {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < store_path_count; ++i) {
      out.push_back(dir.path() + "/disk" + std::to_string(i));
    }
    return out;
  }
  std::unique_ptr<pread_io> make(std::size_t store_path_count = 1) {
    return std::make_unique<pread_io>(paths(store_path_count));
  }
};

template <>
struct backend_env<uring_io> : backend_env<pread_io> {
  std::unique_ptr<uring_io> make(std::size_t store_path_count = 1) {
    return std::make_unique<uring_io>(paths(store_path_count));
  }
};

template <typename B>
std::string read_whole(B& io, const table_ident& t, std::string_view name) {
  std::string out;
  REQUIRE(io.read_file(t, name, out) == error::ok);
  return out;
}

template <typename B>
std::vector<std::string> sorted_list(B& io, const table_ident& t) {
  std::vector<std::string> names;
  REQUIRE(io.list(t, names) == error::ok);
  std::sort(names.begin(), names.end());
  return names;
}

const table_ident table_a{"orders", 1};
const table_ident table_b{"orders", 2};

}  // namespace

// ---- the io_backend contract, for every backend ----------------------------------------------

TEST_CASE_TEMPLATE("io: write and read at offsets; a gap reads as zeros", B, memory_io, pread_io,
                   uring_io) {
  backend_env<B> env;
  auto io = env.make();
  REQUIRE(io->open() == error::ok);

  REQUIRE(io->write(table_a, "f", 0, bytes("hello")) == error::ok);
  REQUIRE(io->write(table_a, "f", 10, bytes("world")) == error::ok);
  CHECK(read_whole(*io, table_a, "f") == std::string("hello\0\0\0\0\0world", 15));

  std::string buf(4, 'x');
  REQUIRE(io->read(table_a, "f", 3, std::span<char>(buf.data(), buf.size())) == error::ok);
  CHECK(buf == std::string("lo\0\0", 4));

  REQUIRE(io->write(table_a, "f", 4, bytes("OOOOOO")) == error::ok);  // overwrite the middle
  CHECK(read_whole(*io, table_a, "f") == "hellOOOOOOworld");
  REQUIRE(io->read(table_a, "f", 10, std::span<char>(buf.data(), buf.size())) == error::ok);
  CHECK(buf == "worl");

  REQUIRE(io->write(table_a, "empty", 0, bytes("")) == error::ok);  // creates an empty file
  CHECK(read_whole(*io, table_a, "empty").empty());
  CHECK(io->sync(table_a, "f") == error::ok);
  CHECK(io->sync_dir(table_a) == error::ok);
  io->close();
}

TEST_CASE_TEMPLATE("io: missing files are not_found; reads past the end are end_of_file", B,
                   memory_io, pread_io, uring_io) {
  backend_env<B> env;
  auto io = env.make();
  REQUIRE(io->open() == error::ok);
  std::string buf(5, '\0');
  const std::span<char> five(buf.data(), 5);
  std::string out;
  std::vector<std::string> names;

  CHECK(io->read(table_a, "f", 0, five) == error::not_found);
  CHECK(io->read_file(table_a, "f", out) == error::not_found);
  CHECK(io->sync(table_a, "f") == error::not_found);
  CHECK(io->remove(table_a, "f") == error::not_found);
  CHECK(io->list(table_a, names) == error::not_found);
  CHECK(io->sync_dir(table_a) == error::not_found);

  REQUIRE(io->write(table_a, "f", 0, bytes("abcd")) == error::ok);
  CHECK(io->read(table_a, "g", 0, five) == error::not_found);  // the directory exists now
  CHECK(io->read(table_a, "f", 0, five) == error::end_of_file);
  CHECK(io->read(table_a, "f", 4, five.first(1)) == error::end_of_file);
  CHECK(io->read(table_a, "f", 100, five) == error::end_of_file);
  CHECK(io->read(table_a, "f", 4, five.first(0)) == error::ok);
  CHECK(io->read(table_a, "f", 5, five.first(0)) == error::end_of_file);
  CHECK(io->read(table_a, "f", 0, five.first(4)) == error::ok);
  CHECK(io->read(table_b, "f", 0, five.first(1)) == error::not_found);
}

TEST_CASE_TEMPLATE("io: invalid names and calls before open()", B, memory_io, pread_io, uring_io) {
  backend_env<B> env;
  auto io = env.make();
  std::string out;
  std::vector<table_ident> tables;
  CHECK(io->read_file(table_a, "f", out) == error::not_running);
  CHECK(io->write(table_a, "f", 0, bytes("x")) == error::not_running);
  CHECK(io->list_partitions(tables) == error::not_running);

  REQUIRE(io->open() == error::ok);
  for (const std::string_view bad :
       {std::string_view(""), std::string_view("."), std::string_view(".."),
        std::string_view("a/b"), std::string_view("a\0b", 3)}) {
    CHECK(io->write(table_a, bad, 0, bytes("x")) == error::invalid_args);
    CHECK(io->write_file_atomic(table_a, bad, bytes("x")) == error::invalid_args);
  }
  CHECK(io->write(table_ident{"bad/table", 0}, "f", 0, bytes("x")) == error::invalid_args);
  CHECK(io->write(table_ident{"", 0}, "f", 0, bytes("x")) == error::invalid_args);
  CHECK(io->list_partitions(tables) == error::ok);
  CHECK(tables.empty());

  io->close();
  CHECK(io->read_file(table_a, "f", out) == error::not_running);
}

TEST_CASE_TEMPLATE("io: list and list_partitions", B, memory_io, pread_io, uring_io) {
  backend_env<B> env;
  auto io = env.make();
  REQUIRE(io->open() == error::ok);
  const table_ident dotted{"a.b.c", 7};
  REQUIRE(io->write(table_a, "data_1_0", 0, bytes("1")) == error::ok);
  REQUIRE(io->write(table_a, "data_0_0", 0, bytes("0")) == error::ok);
  REQUIRE(io->write_file_atomic(table_a, "manifest_0", bytes("m")) == error::ok);
  REQUIRE(io->write(table_b, "data_0_0", 0, bytes("b")) == error::ok);
  REQUIRE(io->write_file_atomic(dotted, "manifest_0", bytes("d")) == error::ok);

  CHECK(sorted_list(*io, table_a) ==
        std::vector<std::string>{"data_0_0", "data_1_0", "manifest_0"});
  CHECK(sorted_list(*io, table_b) == std::vector<std::string>{"data_0_0"});
  CHECK(sorted_list(*io, dotted) == std::vector<std::string>{"manifest_0"});

  std::vector<table_ident> tables{table_ident{"stale", 9}};  // replaced, not appended to
  REQUIRE(io->list_partitions(tables) == error::ok);
  std::vector<std::string> texts;
  for (const table_ident& t : tables) {
    texts.push_back(t.to_string());
  }
  std::sort(texts.begin(), texts.end());
  CHECK(texts == std::vector<std::string>{"a.b.c.7", "orders.1", "orders.2"});
}

TEST_CASE_TEMPLATE("io: remove", B, memory_io, pread_io, uring_io) {
  backend_env<B> env;
  auto io = env.make();
  REQUIRE(io->open() == error::ok);
  REQUIRE(io->write(table_a, "f", 0, bytes("abc")) == error::ok);
  REQUIRE(io->write(table_a, "g", 0, bytes("xyz")) == error::ok);
  CHECK(read_whole(*io, table_a, "f") == "abc");  // caches a descriptor in pread_io

  CHECK(io->remove(table_a, "f") == error::ok);
  CHECK(io->sync_dir(table_a) == error::ok);
  std::string out;
  CHECK(io->read_file(table_a, "f", out) == error::not_found);
  CHECK(io->remove(table_a, "f") == error::not_found);
  CHECK(sorted_list(*io, table_a) == std::vector<std::string>{"g"});

  REQUIRE(io->write(table_a, "f", 2, bytes("n")) == error::ok);  // a new file, not the old one
  CHECK(read_whole(*io, table_a, "f") == std::string("\0\0n", 3));

  CHECK(io->remove(table_a, "f") == error::ok);
  CHECK(io->remove(table_a, "g") == error::ok);
  CHECK(sorted_list(*io, table_a).empty());  // the directory stays
}

TEST_CASE_TEMPLATE("io: file handles read by handle, and keep the file they opened", B, pread_io,
                   uring_io) {
  static_assert(file_handles<B>);
  backend_env<B> env;
  auto io = env.make();
  REQUIRE(io->open() == error::ok);
  typename B::file_ref missing;
  CHECK(io->open_file(table_a, "f", missing) == error::not_found);  // nothing is created
  std::vector<std::string> names;
  CHECK(io->list(table_a, names) == error::not_found);

  REQUIRE(io->write(table_a, "f", 0, bytes("abcdefgh")) == error::ok);
  REQUIRE(io->write(table_a, "g", 0, bytes("12345678")) == error::ok);
  typename B::file_ref f;
  typename B::file_ref g;
  REQUIRE(io->open_file(table_a, "f", f) == error::ok);
  REQUIRE(io->open_file(table_a, "g", g) == error::ok);
  std::string buf(3, 'x');
  REQUIRE(io->read_at(f, 2, std::span<char>(buf.data(), buf.size())) == error::ok);
  CHECK(buf == "cde");
  CHECK(io->read_at(f, 7, std::span<char>(buf.data(), buf.size())) == error::end_of_file);
  CHECK(io->read_at(f, 8, std::span<char>()) == error::ok);

  // Batched: reads[i] from files[i], the names unused.
  std::string a(2, 'x');
  std::string b(2, 'x');
  const std::vector<typename B::file_ref> files{g, f};
  const std::vector<page_read> reads{{{}, 6, std::span<char>(a.data(), 2)},
                                     {{}, 0, std::span<char>(b.data(), 2)}};
  if constexpr (batched_handle_reads<B>) {
    REQUIRE(io->read_pages_at(files, reads) == error::ok);
    CHECK(a == "78");
    CHECK(b == "ab");
  }

  // A handle keeps the file it opened: removed and created again under its name, the old
  // handle still reads the old bytes and a new handle the new ones.
  REQUIRE(io->remove(table_a, "f") == error::ok);
  REQUIRE(io->write(table_a, "f", 0, bytes("ABCDEFGH")) == error::ok);
  REQUIRE(io->read_at(f, 0, std::span<char>(buf.data(), buf.size())) == error::ok);
  CHECK(buf == "abc");
  typename B::file_ref again;
  REQUIRE(io->open_file(table_a, "f", again) == error::ok);
  REQUIRE(io->read_at(again, 0, std::span<char>(buf.data(), buf.size())) == error::ok);
  CHECK(buf == "ABC");
  io->close();
}

TEST_CASE("io: the shard's file handle cache is bounded, least recently used first") {
  detail::file_handle_cache<std::shared_ptr<int>> cache(3);
  int owner_a = 0;
  int owner_b = 0;
  const detail::file_id file_1(1);
  const detail::file_id file_2(2);
  cache.insert(&owner_a, file_1, std::make_shared<int>(11));
  cache.insert(&owner_a, file_2, std::make_shared<int>(12));
  cache.insert(&owner_b, file_1, std::make_shared<int>(21));
  const auto held = *cache.find(&owner_a, file_2);   // held by a reader while it is evicted
  REQUIRE(cache.find(&owner_a, file_1) != nullptr);  // a1, then b1: the most recently used
  CHECK(**cache.find(&owner_a, file_1) == 11);
  CHECK(**cache.find(&owner_b, file_1) == 21);  // a's file 1 and b's file 1 are apart
  cache.insert(&owner_b, file_2, std::make_shared<int>(22));
  CHECK(cache.size() == 3);
  CHECK(cache.find(&owner_a, file_2) == nullptr);             // the least recently used went
  CHECK(*held == 12);                                         // its holder still has it
  cache.insert(&owner_b, file_1, std::make_shared<int>(23));  // replaces
  CHECK(**cache.find(&owner_b, file_1) == 23);
  CHECK(cache.size() == 3);
  cache.drop_all(&owner_b);
  CHECK(cache.size() == 1);
  CHECK(cache.find(&owner_b, file_2) == nullptr);
  CHECK(**cache.find(&owner_a, file_1) == 11);
  cache.drop(&owner_a, file_1);
  CHECK(cache.size() == 0);
}

TEST_CASE("io: the shards' open data files fit fd_limit beside the descriptor cache and slots") {
  for (const std::size_t fd_limit : {std::size_t{64}, std::size_t{1024}, std::size_t{100000}}) {
    for (const std::size_t shards : {std::size_t{1}, std::size_t{4}, std::size_t{64}}) {
      CAPTURE(fd_limit);
      CAPTURE(shards);
      options o;
      o.fd_limit = fd_limit;
      o.num_threads = shards;
      const std::size_t handles = detail::shard_file_handles(fd_limit, shards);
      CHECK(handles >= 1);
      CHECK(handles <= 256);
      const uring_io::config c = default_traits::uring_config(o);
      const std::size_t used = c.open_files_max + (c.registered_files + handles) * shards;
      // The budget: fd_limit less 100 for everything else (100 at least), and at least one
      // descriptor and one handle per shard however small it is.
      CHECK(used <= std::max<std::size_t>(fd_limit > 200 ? fd_limit - 100 : 100, 2 * shards + 1));
      CHECK(c.open_files_max >= 1);
    }
  }
}

TEST_CASE_TEMPLATE("io: write_file_atomic creates and replaces", B, memory_io, pread_io, uring_io) {
  backend_env<B> env;
  auto io = env.make();
  REQUIRE(io->open() == error::ok);
  REQUIRE(io->write_file_atomic(table_a, "manifest_0", bytes("first version")) == error::ok);
  CHECK(read_whole(*io, table_a, "manifest_0") == "first version");

  std::string buf(5, '\0');
  REQUIRE(io->read(table_a, "manifest_0", 0, std::span<char>(buf.data(), 5)) == error::ok);
  REQUIRE(io->write_file_atomic(table_a, "manifest_0", bytes("second")) == error::ok);
  CHECK(read_whole(*io, table_a, "manifest_0") == "second");
  REQUIRE(io->read(table_a, "manifest_0", 0, std::span<char>(buf.data(), 5)) == error::ok);
  CHECK(buf == "secon");

  REQUIRE(io->write_file_atomic(table_a, "manifest_0", bytes("")) == error::ok);
  CHECK(read_whole(*io, table_a, "manifest_0").empty());
  CHECK(sorted_list(*io, table_a) == std::vector<std::string>{"manifest_0"});  // no .tmp left
}

TEST_CASE_TEMPLATE("io: close then open keeps the files", B, memory_io, pread_io, uring_io) {
  backend_env<B> env;
  auto io = env.make();
  REQUIRE(io->open() == error::ok);
  REQUIRE(io->write(table_a, "f", 0, bytes("kept")) == error::ok);
  REQUIRE(io->sync(table_a, "f") == error::ok);
  REQUIRE(io->sync_dir(table_a) == error::ok);
  io->close();
  REQUIRE(io->open() == error::ok);
  CHECK(read_whole(*io, table_a, "f") == "kept");
  REQUIRE(io->open() == error::ok);  // open() while open
  CHECK(read_whole(*io, table_a, "f") == "kept");
}

TEST_CASE_TEMPLATE("io: partitions spread over two store paths", B, memory_io, pread_io, uring_io) {
  backend_env<B> env;
  auto io = env.make(2);
  REQUIRE(io->open() == error::ok);
  for (std::uint32_t p = 0; p < 6; ++p) {
    const table_ident t{"t", p};
    REQUIRE(io->write(t, "f", 0, bytes(t.to_string())) == error::ok);
  }
  for (std::uint32_t p = 0; p < 6; ++p) {
    const table_ident t{"t", p};
    CHECK(read_whole(*io, t, "f") == t.to_string());
  }
  std::vector<table_ident> tables;
  REQUIRE(io->list_partitions(tables) == error::ok);
  CHECK(tables.size() == 6);

  if constexpr (!std::is_same_v<B, memory_io>) {
    const auto paths = env.paths(2);
    for (std::uint32_t p = 0; p < 6; ++p) {
      const std::string dir = "/t." + std::to_string(p);
      CHECK(std::filesystem::is_regular_file(paths[p % 2] + dir + "/f"));
      CHECK_FALSE(std::filesystem::exists(paths[(p + 1) % 2] + dir));
    }
  }
}

TEST_CASE_TEMPLATE("io: different partitions from several threads at once", B, memory_io, pread_io,
                   uring_io) {
  backend_env<B> env;
  auto io = env.make(2);
  REQUIRE(io->open() == error::ok);
  constexpr std::uint32_t thread_count = 4;
  std::vector<int> failures(thread_count, 0);
  std::vector<std::thread> threads;
  for (std::uint32_t i = 0; i < thread_count; ++i) {
    threads.emplace_back([&io, &failures, i] {
      const table_ident t{"mt", i};
      for (int round = 0; round < 100; ++round) {
        const std::string name = "f" + std::to_string(round % 5);
        const std::string data = t.to_string() + "/" + std::to_string(round);
        std::string out;
        const bool ok =
            io->write(t, name, 0, bytes(data)) == error::ok && io->sync(t, name) == error::ok &&
            io->read_file(t, name, out) == error::ok && out.substr(0, data.size()) == data;
        failures[i] += ok ? 0 : 1;
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  CHECK(failures == std::vector<int>(thread_count, 0));
}

// ---- memory_io -------------------------------------------------------------------------------

TEST_CASE("io: memory_io crash keeps exactly what is durable") {
  memory_io io;
  REQUIRE(io.open() == error::ok);
  // synced: data and name durable, then an unsynced overwrite and append.
  REQUIRE(io.write(table_a, "synced", 0, bytes("durable")) == error::ok);
  REQUIRE(io.sync(table_a, "synced") == error::ok);
  REQUIRE(io.sync_dir(table_a) == error::ok);
  REQUIRE(io.write(table_a, "synced", 0, bytes("LOST DATA")) == error::ok);
  // named: its name is durable but its data never synced.
  REQUIRE(io.write(table_a, "named", 0, bytes("unsynced")) == error::ok);
  REQUIRE(io.sync_dir(table_a) == error::ok);
  // unnamed: data synced, but the directory never synced after its creation.
  REQUIRE(io.write(table_b, "unnamed", 0, bytes("x")) == error::ok);
  REQUIRE(io.sync(table_b, "unnamed") == error::ok);
  // removed without a directory sync: comes back. removed and synced: stays gone.
  REQUIRE(io.write(table_a, "back", 0, bytes("back")) == error::ok);
  REQUIRE(io.write(table_a, "gone", 0, bytes("gone")) == error::ok);
  REQUIRE(io.sync(table_a, "back") == error::ok);
  REQUIRE(io.sync_dir(table_a) == error::ok);
  REQUIRE(io.remove(table_a, "gone") == error::ok);
  REQUIRE(io.sync_dir(table_a) == error::ok);
  REQUIRE(io.remove(table_a, "back") == error::ok);
  // atomic: durable on return, even with no other sync.
  REQUIRE(io.write_file_atomic(table_b, "manifest_0", bytes("atomic")) == error::ok);
  CHECK(io.file_count() == 4);

  io.crash();
  CHECK(read_whole(io, table_a, "synced") == "durable");
  CHECK(read_whole(io, table_a, "named").empty());
  CHECK(read_whole(io, table_a, "back") == "back");
  std::string out;
  CHECK(io.read_file(table_a, "gone", out) == error::not_found);
  CHECK(read_whole(io, table_b, "manifest_0") == "atomic");
  // The atomic write synced table_b's directory, which made "unnamed" durable as well.
  CHECK(read_whole(io, table_b, "unnamed") == "x");
  CHECK(io.file_count() == 5);
  CHECK(sorted_list(io, table_a) == std::vector<std::string>{"back", "named", "synced"});
}

TEST_CASE("io: memory_io crash drops a new name whose directory was never synced") {
  memory_io io;
  REQUIRE(io.open() == error::ok);
  REQUIRE(io.write(table_a, "f", 0, bytes("data")) == error::ok);
  REQUIRE(io.sync(table_a, "f") == error::ok);
  REQUIRE(io.write(table_a, "g", 0, bytes("data")) == error::ok);
  CHECK(io.file_count() == 2);
  io.crash();
  CHECK(io.file_count() == 0);
  CHECK(sorted_list(io, table_a).empty());

  // A re-created name after a durable remove: the crash restores the old inode's bytes.
  REQUIRE(io.write(table_a, "f", 0, bytes("old")) == error::ok);
  REQUIRE(io.sync(table_a, "f") == error::ok);
  REQUIRE(io.sync_dir(table_a) == error::ok);
  REQUIRE(io.remove(table_a, "f") == error::ok);
  REQUIRE(io.write(table_a, "f", 0, bytes("new")) == error::ok);
  REQUIRE(io.sync(table_a, "f") == error::ok);
  io.crash();
  CHECK(read_whole(io, table_a, "f") == "old");
}

TEST_CASE("io: memory_io corrupt_byte damages both copies") {
  memory_io io;
  REQUIRE(io.open() == error::ok);
  REQUIRE(io.write(table_a, "f", 0, bytes("abc")) == error::ok);
  REQUIRE(io.sync(table_a, "f") == error::ok);
  REQUIRE(io.sync_dir(table_a) == error::ok);
  CHECK(io.corrupt_byte(table_a, "f", 1, 0x20));
  CHECK(read_whole(io, table_a, "f") == "aBc");
  io.crash();
  CHECK(read_whole(io, table_a, "f") == "aBc");
  CHECK_FALSE(io.corrupt_byte(table_a, "f", 3, 1));
  CHECK_FALSE(io.corrupt_byte(table_a, "missing", 0, 1));
}

// ---- pread_io --------------------------------------------------------------------------------

TEST_CASE("io: pread_io store paths must be directories") {
  temp_dir dir;
  const std::string file = dir.path() + "/plain";
  std::ofstream(file) << "not a directory";
  CHECK(pread_io({file}).open() == error::invalid_args);
  CHECK(pread_io({file + "/below"}).open() == error::invalid_args);
  CHECK(pread_io({dir.path() + "/ok", file}).open() == error::invalid_args);
  CHECK(pread_io(std::vector<std::string>{}).open() == error::invalid_args);
  CHECK(pread_io({""}).open() == error::invalid_args);

  pread_io nested({dir.path() + "/x/y/z"});
  CHECK(nested.open() == error::ok);
  CHECK(std::filesystem::is_directory(dir.path() + "/x/y/z"));
}

TEST_CASE("io: pread_io ignores entries of a store path that are not partitions") {
  temp_dir dir;
  pread_io io({dir.path()});
  REQUIRE(io.open() == error::ok);
  REQUIRE(io.write(table_a, "f", 0, bytes("x")) == error::ok);
  std::filesystem::create_directory(dir.path() + "/lost+found");
  std::ofstream(dir.path() + "/file.3") << "a file, not a partition";
  std::vector<table_ident> tables;
  REQUIRE(io.list_partitions(tables) == error::ok);
  REQUIRE(tables.size() == 1);
  CHECK(tables[0] == table_a);
}

TEST_CASE("io: pread_io stays correct with a tiny descriptor cache") {
  for (const std::size_t open_files_max : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
    temp_dir dir;
    pread_io io({dir.path()}, open_files_max);
    REQUIRE(io.open() == error::ok);
    for (int round = 0; round < 2; ++round) {
      for (int i = 0; i < 10; ++i) {
        const std::string name = "f" + std::to_string(i);
        const std::string data = name + ":" + std::to_string(round);
        REQUIRE(io.write(table_a, name, 0, bytes(data)) == error::ok);
      }
      for (int i = 9; i >= 0; --i) {
        const std::string name = "f" + std::to_string(i);
        CHECK(read_whole(io, table_a, name) == name + ":" + std::to_string(round));
        CHECK(io.sync(table_a, name) == error::ok);
      }
    }
    REQUIRE(io.write_file_atomic(table_a, "f9", bytes("replaced")) == error::ok);
    CHECK(read_whole(io, table_a, "f9") == "replaced");
  }
}

// ---- faulty_io -------------------------------------------------------------------------------

namespace {

// Runs a fixed script of calls and returns every result plus the files left behind.
std::vector<std::string> run_script(std::uint64_t seed) {
  faulty_io<memory_io> io(seed);
  REQUIRE(io.open() == error::ok);
  faulty_io<memory_io>::faults f;
  f.read_error = 0.2;
  f.write_error = 0.2;
  f.sync_error = 0.2;
  f.short_write = 0.2;
  f.torn_write = 0.2;
  io.set_faults(f);
  std::vector<std::string> trace;
  const std::string payload = "0123456789abcdefghijklmnopqrstuvwxyz";
  for (int i = 0; i < 200; ++i) {
    const std::string name = "f" + std::to_string(i % 7);
    const auto offset = static_cast<std::uint64_t>(i % 5) * 8;
    std::string out;
    trace.push_back(
        std::to_string(static_cast<int>(io.write(table_a, name, offset, bytes(payload)))));
    trace.push_back(std::to_string(static_cast<int>(io.sync(table_a, name))));
    trace.push_back(std::to_string(static_cast<int>(io.read_file(table_a, name, out))));
  }
  for (int i = 0; i < 7; ++i) {
    std::string out;
    const error e = io.inner().read_file(table_a, "f" + std::to_string(i), out);
    trace.push_back(std::to_string(static_cast<int>(e)) + ":" + out);
  }
  return trace;
}

}  // namespace

TEST_CASE("io: faulty_io is deterministic for a seed") {
  const auto first = run_script(42);
  CHECK(first == run_script(42));
  CHECK(first != run_script(43));
  // Every kind of outcome happened.
  for (const error e : {error::ok, error::io_fail, error::try_again}) {
    CHECK(std::count(first.begin(), first.end(), std::to_string(static_cast<int>(e))) > 0);
  }
}

TEST_CASE("io: faulty_io returns the configured error codes") {
  faulty_io<memory_io> io(1);
  REQUIRE(io.open() == error::ok);
  REQUIRE(io.write(table_a, "f", 0, bytes("abc")) == error::ok);
  faulty_io<memory_io>::faults f;
  f.write_error = 1;
  f.write_error_code = error::out_of_space;
  f.read_error = 1;
  f.sync_error = 1;
  io.set_faults(f);
  std::string out;
  std::string buf(1, '\0');
  CHECK(io.write(table_a, "f", 0, bytes("XYZ")) == error::out_of_space);
  CHECK(io.write_file_atomic(table_a, "g", bytes("XYZ")) == error::out_of_space);
  CHECK(io.read(table_a, "f", 0, std::span<char>(buf.data(), 1)) == error::io_fail);
  CHECK(io.read_file(table_a, "f", out) == error::io_fail);
  CHECK(io.sync(table_a, "f") == error::io_fail);
  CHECK(io.sync_dir(table_a) == error::io_fail);
  CHECK(io.remove(table_a, "f") == error::ok);  // removal has no injected fault but crashes
  CHECK(io.mutations() == 6);
  CHECK(io.inner().file_count() == 0);  // the failed atomic write created nothing

  io.set_faults({});
  CHECK(io.write(table_a, "f", 0, bytes("abc")) == error::ok);
  CHECK(io.read_file(table_a, "f", out) == error::ok);
  CHECK(out == "abc");
}

TEST_CASE("io: faulty_io short and torn writes leave a proper prefix") {
  const std::string data(64, 'd');
  for (const bool torn : {false, true}) {
    for (std::uint64_t seed = 0; seed < 20; ++seed) {
      faulty_io<memory_io> io(seed);
      REQUIRE(io.open() == error::ok);
      faulty_io<memory_io>::faults f;
      (torn ? f.torn_write : f.short_write) = 1;
      io.set_faults(f);
      CHECK(io.write(table_a, "f", 0, bytes(data)) == (torn ? error::io_fail : error::try_again));
      std::string out;
      REQUIRE(io.inner().read_file(table_a, "f", out) == error::ok);
      CHECK(out.size() < data.size());
      CHECK(out == data.substr(0, out.size()));
    }
  }
}

TEST_CASE("io: faulty_io crash_after_mutations stops everything until recover()") {
  faulty_io<memory_io> io(7);
  REQUIRE(io.open() == error::ok);
  faulty_io<memory_io>::faults f;
  f.crash_after_mutations = 4;
  io.set_faults(f);
  REQUIRE(io.write(table_a, "f", 0, bytes("durable")) == error::ok);  // 1
  REQUIRE(io.sync(table_a, "f") == error::ok);                        // 2
  REQUIRE(io.sync_dir(table_a) == error::ok);                         // 3
  REQUIRE(io.write(table_a, "f", 0, bytes("LOST")) == error::ok);     // 4
  CHECK(io.mutations() == 4);
  CHECK_FALSE(io.crashed());

  CHECK(io.sync(table_a, "f") == error::io_fail);  // the fifth mutation crashes
  CHECK(io.crashed());
  std::string out;
  std::string buf(1, '\0');
  std::vector<std::string> names;
  std::vector<table_ident> tables;
  CHECK(io.read_file(table_a, "f", out) == error::io_fail);
  CHECK(io.read(table_a, "f", 0, std::span<char>(buf.data(), 1)) == error::io_fail);
  CHECK(io.list(table_a, names) == error::io_fail);
  CHECK(io.list_partitions(tables) == error::io_fail);
  CHECK(io.write_file_atomic(table_a, "g", bytes("x")) == error::io_fail);
  CHECK(io.remove(table_a, "f") == error::io_fail);
  CHECK(io.open() == error::io_fail);
  CHECK(io.mutations() == 4);
  CHECK(io.inner().file_count() == 1);  // nothing reached the inner backend

  io.recover();
  CHECK_FALSE(io.crashed());
  CHECK(io.mutations() == 0);
  io.set_faults({});
  CHECK(io.read_file(table_a, "f", out) == error::ok);
  CHECK(out == "durable");  // the unsynced "LOST" was dropped by memory_io::crash()
}

TEST_CASE("io: faulty_io crash_after_mutations of zero refuses the first mutation") {
  faulty_io<memory_io> io(3);
  REQUIRE(io.open() == error::ok);
  faulty_io<memory_io>::faults f;
  f.crash_after_mutations = 0;
  io.set_faults(f);
  std::vector<table_ident> tables;
  CHECK(io.list_partitions(tables) == error::ok);  // reads are not mutations
  CHECK(io.write_file_atomic(table_a, "m", bytes("x")) == error::io_fail);
  CHECK(io.crashed());
  CHECK(io.inner().file_count() == 0);
}

TEST_CASE("io: faulty_io over pread_io forwards its constructor arguments") {
  temp_dir dir;
  faulty_io<pread_io> io(5, std::vector<std::string>{dir.path()}, std::size_t{2});
  REQUIRE(io.open() == error::ok);
  faulty_io<pread_io>::faults f;
  f.crash_after_mutations = 1;
  io.set_faults(f);
  REQUIRE(io.write(table_a, "f", 0, bytes("on disk")) == error::ok);
  CHECK(io.sync(table_a, "f") == error::io_fail);
  io.recover();  // pread_io has no crash(): its files stay as they are
  std::string out;
  CHECK(io.read_file(table_a, "f", out) == error::ok);
  CHECK(out == "on disk");
  io.close();
}

// ---- uring_io --------------------------------------------------------------------------------

namespace {

// Runs the scheduler's tasks, polling the ring between rounds, until `done` reaches
// `task_count`; returns the most operations the ring held in flight after a round.
template <typename Ring>
std::size_t run_tasks(fiber_scheduler& sched, Ring& ring, const int& done, int task_count) {
  std::size_t most_in_flight = 0;
  while (done < task_count) {
    sched.run_round();
    most_in_flight = std::max(most_in_flight, ring.in_flight());
    if (done < task_count) {
      ring.poll(sched.idle());
    }
  }
  return most_in_flight;
}

// Checks reads and writes of a data file (O_DIRECT) against a model of its bytes: aligned and
// unaligned buffers, offsets and sizes, and batches of page writes that coalesce into runs.
void exercise_data_file(uring_io& io, std::uint32_t seed) {
  const table_ident t{"direct", seed};
  const std::string name = "data_0";
  std::string model;
  std::uint32_t x = seed * 2654435761U + 1;
  const auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
  };
  const auto apply = [&model](std::uint64_t off, std::string_view data) {
    if (model.size() < off + data.size()) {
      model.resize(off + data.size(), '\0');
    }
    model.replace(off, data.size(), data);
  };
  // A batch of 64 page writes, mostly contiguous (they coalesce), some scattered.
  std::vector<std::string> pages;
  std::vector<page_write> batch;
  for (std::uint64_t i = 0; i < 64; ++i) {
    pages.push_back(std::string(4096, static_cast<char>('a' + i % 26)));
    pages.back()[7] = static_cast<char>(i);
  }
  for (std::uint64_t i = 0; i < 64; ++i) {
    const std::uint64_t page = i < 48 ? i : 100 + (i - 48) * 3;
    batch.push_back(page_write{name, page * 4096, {pages[i].data(), pages[i].size()}});
    apply(page * 4096, pages[i]);
  }
  REQUIRE(io.write_pages(t, batch) == error::ok);
  REQUIRE(io.sync(t, name) == error::ok);
  for (int round = 0; round < 200; ++round) {
    const bool page_aligned = next() % 2 == 0;
    const std::uint64_t off = page_aligned ? (next() % 160) * 4096 : next() % (160 * 4096);
    const std::size_t size = page_aligned ? 4096 * (1 + next() % 3) : 1 + next() % 9000;
    // Offset the buffer by one byte half the time: an unaligned caller buffer.
    std::string buf(size + 1, '\0');
    const std::size_t shift = next() % 2;
    std::span<char> dst(buf.data() + shift, size);
    if (next() % 3 == 0) {
      std::string data(size, static_cast<char>('A' + round % 26));
      REQUIRE(io.write(t, name, off, {data.data(), data.size()}) == error::ok);
      apply(off, data);
      continue;
    }
    const error e = io.read(t, name, off, dst);
    if (off + size > model.size()) {
      CHECK(e == error::end_of_file);
    } else {
      REQUIRE(e == error::ok);
      CHECK(std::string_view(dst.data(), size) == std::string_view(model).substr(off, size));
    }
  }
  // Batched page reads: aligned page buffers (direct, all in flight) mixed with unaligned
  // ones and odd sizes (read the careful way), against the model.
  for (int round = 0; round < 20; ++round) {
    const std::size_t n = 1 + next() % 40;
    std::vector<detail::page_buffer> aligned_bufs;
    std::vector<std::string> plain;
    std::vector<page_read> reads;
    aligned_bufs.reserve(n);
    plain.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t off = (next() % 150) * 4096 + (next() % 8 == 0 ? next() % 4096 : 0);
      if (next() % 4 != 0) {
        aligned_bufs.emplace_back(4096);
        reads.push_back(page_read{name, off, aligned_bufs.back().span()});
      } else {
        plain.emplace_back(1 + next() % 5000 + 1, '\0');
        reads.push_back(page_read{name, off, {plain.back().data() + 1, plain.back().size() - 1}});
      }
    }
    REQUIRE(io.read_pages(t, reads) == error::ok);
    for (const page_read& r : reads) {
      CHECK(std::string_view(r.buf.data(), r.buf.size()) ==
            std::string_view(model).substr(r.offset, r.buf.size()));
    }
  }
  // Past the end of the file, and a missing file: the errors of read().
  detail::page_buffer page(4096);
  const page_read past[] = {page_read{name, 0, page.span()},
                            page_read{name, (model.size() / 4096 + 5) * 4096, page.span()}};
  CHECK(io.read_pages(t, past) == error::end_of_file);
  const page_read missing[] = {page_read{"data_9", 0, page.span()}};
  CHECK(io.read_pages(t, missing) == error::not_found);
}

}  // namespace

TEST_CASE("io: uring_io data files, with and without a ring on the thread") {
  backend_env<uring_io> env;
  auto io = env.make();
  REQUIRE(io->open() == error::ok);
  SUBCASE("system calls") {
    exercise_data_file(*io, 1);
  }
  SUBCASE("a ring on this thread, no scheduler") {
    auto ring = io->attach(suspend_hooks{});
    REQUIRE(ring != nullptr);
    exercise_data_file(*io, 2);
    CHECK(ring->in_flight() == 1);  // only the armed eventfd read
  }
  SUBCASE("a ring on another thread") {
    std::thread th([&] {
      auto ring = io->attach(suspend_hooks{});
      REQUIRE(ring != nullptr);
      exercise_data_file(*io, 3);
    });
    th.join();
    exercise_data_file(*io, 4);  // this thread has no ring: system calls
  }
}

TEST_CASE("io: uring_io suspends fiber tasks and overlaps their reads") {
  backend_env<uring_io> env;
  auto io = env.make();
  REQUIRE(io->open() == error::ok);
  const table_ident t{"fibers", 0};
  constexpr std::size_t page_count = 256;
  std::string file(page_count * 4096, '\0');
  for (std::size_t i = 0; i < file.size(); ++i) {
    file[i] = static_cast<char>((i * 7 + i / 4096) & 0xff);
  }
  REQUIRE(io->write(t, "data_1", 0, {file.data(), file.size()}) == error::ok);
  fiber_scheduler sched;
  auto ring = io->attach(make_suspend_hooks(sched));
  REQUIRE(ring != nullptr);
  constexpr int task_count = 64;
  int done = 0;
  int bad = 0;
  for (int k = 0; k < task_count; ++k) {
    sched.spawn([&, k] {
      std::vector<char> page(4096);  // unaligned (heap): goes through provided buffers
      for (int i = 0; i < 20; ++i) {
        const std::size_t p = (static_cast<std::size_t>(k) * 31 + i * 17) % page_count;
        const error e = io->read(t, "data_1", p * 4096, page);
        if (e != error::ok || std::memcmp(page.data(), file.data() + p * 4096, 4096) != 0) {
          ++bad;
        }
      }
      ++done;
    });
  }
  const std::size_t most_in_flight = run_tasks(sched, *ring, done, task_count);
  CHECK(bad == 0);
  CHECK(most_in_flight > 32);  // the tasks' reads were in flight together
  ring.reset();
}

TEST_CASE("io: uring_io notify wakes a blocked poll") {
  backend_env<uring_io> env;
  auto io = env.make();
  REQUIRE(io->open() == error::ok);
  std::atomic<bool> woke{false};
  std::atomic<uring_io::shard_ring*> shared{nullptr};
  std::thread th([&] {
    auto ring = io->attach(suspend_hooks{});
    REQUIRE(ring != nullptr);
    shared = ring.get();
    ring->poll(true);  // returns once notify() arrives
    woke = true;
    while (shared.load() != nullptr) {
      std::this_thread::yield();
    }
  });
  while (shared.load() == nullptr) {
    std::this_thread::yield();
  }
  shared.load()->notify();
  while (!woke.load()) {
    std::this_thread::yield();
  }
  shared = nullptr;
  th.join();
  CHECK(woke.load());
}

// ---- faulty_io over uring_io -----------------------------------------------------------------

namespace {

using faulty_uring = faulty_io<uring_io>;
static_assert(async_page_writes<faulty_uring>);
static_assert(batched_reads<faulty_uring>);

// `count` distinct pages of data_0 at pages 0..count-1, and their write batch.
struct page_batch {
  std::vector<detail::page_buffer> pages;
  std::vector<page_write> writes;
  explicit page_batch(std::size_t count, char tag) {
    pages.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      pages.emplace_back(4096);
      std::memset(pages.back().span().data(), tag + static_cast<char>(i % 16), 4096);
      writes.push_back(page_write{"data_0", i * 4096, pages.back().span()});
    }
  }
  // How many leading pages the file holds (it had none of them before); every later page
  // must be missing too, or the batch was not cut to a prefix.
  std::size_t written(faulty_uring& io, const table_ident& t) const {
    std::size_t leading = 0;
    std::size_t present = 0;
    detail::page_buffer got(4096);
    for (std::size_t i = 0; i < pages.size(); ++i) {
      const bool here = io.inner().read(t, "data_0", i * 4096, got.span()) == error::ok &&
                        std::memcmp(got.span().data(), pages[i].span().data(), 4096) == 0;
      present += here ? 1 : 0;
      leading += here && leading == i ? 1 : 0;
    }
    CHECK(present == leading);
    return leading;
  }
};

}  // namespace

TEST_CASE("io: faulty_io over uring_io faults page batches by whole pages") {
  temp_dir dir;
  faulty_uring io(11, std::vector<std::string>{dir.path()}, uring_io::config{});
  REQUIRE(io.open() == error::ok);
  auto ring = io.attach(suspend_hooks{});  // batches go through this thread's ring
  REQUIRE(ring != nullptr);
  const table_ident t{"faulty", 0};
  std::uint64_t mutations = 0;
  std::size_t pages_written = 0;
  for (std::uint64_t round = 0; round < 12; ++round) {
    CAPTURE(round);
    const table_ident ti{"faulty", static_cast<std::uint32_t>(round + 1)};
    const page_batch b(64, static_cast<char>('a' + round));
    faulty_uring::faults f;
    (round % 2 == 0 ? f.torn_write : f.short_write) = 1;
    io.set_faults(f);
    const error want = round % 2 == 0 ? error::io_fail : error::try_again;
    if (round % 3 == 0) {
      CHECK(io.write_pages(ti, b.writes) == want);
    } else {
      faulty_uring::write_ticket ticket;
      REQUIRE(io.begin_write_pages(ti, b.writes, ticket) == error::ok);  // reported at finish
      CHECK(io.finish_write_pages(ticket) == want);
      CHECK(io.finish_write_pages(ticket) == error::ok);  // reported once
    }
    const std::size_t prefix = b.written(io, ti);
    CHECK(prefix < 64);  // a proper prefix
    pages_written += prefix;
    ++mutations;
    CHECK(io.mutations() == mutations);
  }
  CHECK(pages_written > 0);  // not only empty prefixes
  CHECK(io.deferred_faults() == 8);

  // write_error refuses a batch with nothing written or started; reads fail as a whole.
  const page_batch b(8, 'x');
  faulty_uring::faults f;
  f.write_error = 1;
  f.write_error_code = error::out_of_space;
  io.set_faults(f);
  faulty_uring::write_ticket ticket;
  CHECK(io.begin_write_pages(t, b.writes, ticket) == error::out_of_space);
  CHECK(io.write_pages(t, b.writes) == error::out_of_space);
  CHECK(b.written(io, t) == 0);
  io.set_faults({});
  REQUIRE(io.write_pages(t, b.writes) == error::ok);
  CHECK(b.written(io, t) == 8);
  detail::page_buffer page(4096);
  const page_read reads[] = {page_read{"data_0", 0, page.span()}};
  CHECK(io.read_pages(t, reads) == error::ok);
  f = {};
  f.read_error = 1;
  io.set_faults(f);
  CHECK(io.read_pages(t, reads) == error::io_fail);

  // A crash refuses batches too; one begun before it waits for its writes, then fails; and
  // recover() keeps what reached the files.
  f = {};
  f.crash_after_mutations = io.mutations() + 1;
  io.set_faults(f);
  const page_batch early(4, 'E');
  const table_ident te{"faulty", 99};
  REQUIRE(io.begin_write_pages(te, early.writes, ticket) == error::ok);
  const page_batch late(8, 'L');
  CHECK(io.begin_write_pages(t, late.writes, ticket) == error::io_fail);
  CHECK(io.finish_write_pages(ticket) == error::io_fail);
  CHECK(early.written(io, te) == 4);  // it did reach the file
  CHECK(io.crashed());
  CHECK(io.read_pages(t, reads) == error::io_fail);
  io.recover();
  io.set_faults({});
  CHECK(b.written(io, t) == 8);
  ring.reset();
  io.close();
}

TEST_CASE("io: faulty_io over uring_io lets fiber tasks suspend in their I/O") {
  // The faults are decided under faulty_io's lock, the I/O runs outside it: tasks parked in
  // a read or a sync must not hold it (another task of the thread would deadlock on it).
  temp_dir dir;
  faulty_uring io(3, std::vector<std::string>{dir.path()}, uring_io::config{});
  REQUIRE(io.open() == error::ok);
  const table_ident t{"fibers", 0};
  const page_batch b(64, 'f');
  REQUIRE(io.write_pages(t, b.writes) == error::ok);
  fiber_scheduler sched;
  auto ring = io.attach(make_suspend_hooks(sched));
  REQUIRE(ring != nullptr);
  faulty_uring::faults f;
  f.read_error = 0.1;
  io.set_faults(f);
  constexpr int task_count = 32;
  int done = 0;
  int failed = 0;
  int wrong = 0;
  for (int k = 0; k < task_count; ++k) {
    sched.spawn([&, k] {
      detail::page_buffer page(4096);
      for (int i = 0; i < 10; ++i) {
        const std::size_t p = static_cast<std::size_t>(k * 7 + i) % 64;
        const error e = io.read(t, "data_0", p * 4096, page.span());
        if (e != error::ok) {
          ++failed;
        } else if (std::memcmp(page.span().data(), b.pages[p].span().data(), 4096) != 0) {
          ++wrong;
        }
      }
      if (io.sync(t, "data_0") != error::ok) {
        ++wrong;
      }
      ++done;
    });
  }
  const std::size_t most_in_flight = run_tasks(sched, *ring, done, task_count);
  CHECK(wrong == 0);
  CHECK(failed > 0);
  CHECK(failed < task_count * 10);
  CHECK(most_in_flight > 16);  // the tasks were parked in their reads together
  ring.reset();
  io.close();
}
