// Writes the fuzz targets' seed corpora: fuzz_seeds DIR makes DIR/{page,manifest,options,
// requests}/ and fills them with inputs in each target's layout, starting from the golden
// vectors of the formats (tests/support/golden_vectors.hpp, written by hand from the spec)
// and pages and records our builders make.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <eloqstore/detail/manifest/record.hpp>
#include <eloqstore/detail/page/data_page.hpp>
#include <eloqstore/detail/page/index_page.hpp>

#include "support/golden_vectors.hpp"

using namespace eloqstore;
using namespace eloqstore::detail;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& dir, int n, std::string_view bytes) {
  std::ofstream out(dir / ("seed-" + std::to_string(n)), std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The page target's layout: the size selector (page_size_min << k), the page, a seek key.
std::string page_input(std::span<const char> page, std::string_view key) {
  int k = 0;
  while ((page_size_min << k) < page.size()) {
    ++k;
  }
  std::string s(1, static_cast<char>(k));
  s.append(page.data(), page.size());
  s.append(key);
  return s;
}

void page_seeds(const fs::path& dir) {
  int n = 0;
  write(dir, n++, page_input(test::golden_data_page(), "banana"));
  write(dir, n++, page_input(test::golden_data_page(), "b"));
  write(dir, n++, page_input(test::golden_index_page(), "bat"));
  for (const auto& [id, page] : test::golden_overflow_pages(test::golden_overflow_value())) {
    write(dir, n++, page_input(page, ""));
  }
  // Pages our builders make at the store's sizes.
  for (const std::size_t size : {std::size_t{4096}, std::size_t{16384}}) {
    data_page_builder d(size, 4);
    for (int i = 0; i < 40; ++i) {
      const std::string key = "key" + std::to_string(1000 + i * 7);
      (void)d.add(key, std::string(static_cast<std::size_t>(i % 13), 'v'),
                  static_cast<std::uint64_t>(100 + 5 * i - (i % 3 == 0 ? 40 : 0)),
                  i % 5 == 0 ? 4102444800000 : 0);
    }
    write(dir, n++, page_input(d.finish(page_id(3), page_id(9)), "key1100"));
    index_page_builder x(size, 3);
    for (int i = 0; i < 30; ++i) {
      (void)x.add("sep" + std::to_string(100 + i), page_id(static_cast<std::uint32_t>(50 - i)),
                  size == 4096);
    }
    write(dir, n++, page_input(x.finish(), "sep115"));
  }
}

void manifest_seeds(const fs::path& dir) {
  const std::vector<char> snap = test::golden_snapshot_record();
  const std::vector<char> log = test::golden_log_record();
  std::string file(1, '\0');  // form 0: the rest is the file
  file.append(snap.data(), snap.size());
  write(dir, 0, file);
  file.append(log.data(), log.size());
  write(dir, 1, file);
  file.append(log.data(), 100);  // a torn tail
  write(dir, 2, file);
  // A file our builder makes: a snapshot, then logs.
  manifest_builder b;
  std::vector<std::uint64_t> mapping;
  for (std::uint64_t i = 0; i < 20; ++i) {
    mapping.push_back(encode_file_page(file_page_id(i * 3)));
  }
  std::string built(1, '\0');
  built += b.snapshot(page_id(4), page_id::none(), mapping, 60, "", {{0, 1}});
  for (std::uint32_t i = 0; i < 3; ++i) {
    b.reset();
    b.update_mapping(page_id(i), file_page_id(100 + i));
    b.delete_mapping(page_id(10 + i));
    built += b.finish_log(page_id(5 + i), page_id(2), {{0, 1}, {1, 2}});
  }
  write(dir, 3, built);
  // The structured forms: records drawn from bytes.
  std::mt19937_64 r(7);
  for (int i = 0; i < 6; ++i) {
    std::string s(1, static_cast<char>(1 + i % 3));
    for (int j = 0; j < 300; ++j) {
      s.push_back(static_cast<char>(r()));
    }
    write(dir, 4 + i, s);
  }
}

void option_seeds(const fs::path& dir) {
  using namespace std::string_literals;  // (the inputs hold NUL bytes)
  write(dir, 0, "[run]\n[permanent]\n");
  write(dir, 1,
        "; a store on two disks\n[run]\nnum_threads = 4\nbuffer_pool_size = 64MB\n"
        "skip_verify_checksum = off\ncloud_endpoint = http://127.0.0.1:9000\n"
        "[permanent]\nstore_path = /data/a:/data/b\ndata_page_size = 16 kb\n"
        "data_file_size = 256MB\ndata_append_mode = yes\n");
  write(dir, 2, "[run]\nnum_threads = 2\n[permanent]\n\0num_threads=8\0store_path=/x /y"s);
  write(dir, 3,
        "[run]\n[permanent]\ndata_page_size = 4096\n\0data_file_size=1MB\0"
        "overflow_pointers=200\0cloud_region= padded "s);
  write(dir, 4, "[RUN]\nNum_Threads = 3 ; inline\n# comment\n[permanent]\nstore_path = /s\n");
}

void request_seeds(const fs::path& dir) {
  std::mt19937_64 r(11);
  for (int i = 0; i < 8; ++i) {
    std::string s;
    const int len = 200 + 400 * i;
    for (int j = 0; j < len; ++j) {
      s.push_back(static_cast<char>(r()));
    }
    write(dir, i, s);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds DIR\n");
    return 2;
  }
  const fs::path root = argv[1];
  for (const char* t : {"page", "manifest", "options", "requests"}) {
    fs::create_directories(root / t);
  }
  page_seeds(root / "page");
  manifest_seeds(root / "manifest");
  option_seeds(root / "options");
  request_seeds(root / "requests");
  return 0;
}
