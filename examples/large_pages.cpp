// large_pages: a store of 16 KiB pages (the page size is part of the traits, so the tree's
// limits are checked at compile time; options::data_page_size must match it).
//
// Larger pages hold more keys per leaf: fewer pages per scan and a shallower tree, at the
// price of more bytes written per changed page. The page size is recorded in the store, which
// a store of another page size refuses to open.
//
// Usage: large_pages [directory=./eloqstore-16k]
#include <cstddef>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <eloqstore/eloqstore.hpp>

namespace {

struct large_page_traits : eloqstore::default_traits {
  static constexpr std::size_t page_size = 16384;
  static std::unique_ptr<io_type> make_io(const eloqstore::options& o) {
    return std::make_unique<io_type>(o.store_path, uring_config(o));
  }
  static eloqstore::uring_io::config uring_config(const eloqstore::options& o) {
    auto c = default_traits::uring_config(o);
    c.buffer_bytes = page_size;  // read buffers of one page
    return c;
  }
};

}  // namespace

int main(int argc, char** argv) {
  eloqstore::options opts;
  opts.store_path = {argc > 1 ? argv[1] : "./eloqstore-16k"};
  opts.num_threads = 1;
  opts.data_page_size = large_page_traits::page_size;
  eloqstore::EloqStore<large_page_traits> store(opts);
  if (const auto e = store.start(); e != eloqstore::error::ok) {
    std::fprintf(stderr, "start: %s (%s)\n", std::string(eloqstore::error_message(e)).c_str(),
                 store.last_message().c_str());
    return 1;
  }
  const eloqstore::table_ident t{"wide", 0};
  std::vector<eloqstore::write_entry> batch;
  for (int i = 0; i < 20000; ++i) {
    batch.push_back({"key" + std::to_string(100000 + i), std::string(200, 'v'), 1,
                     eloqstore::write_op::upsert, 0});
  }
  if (store.write(t, std::move(batch)) != eloqstore::error::ok) {
    return 1;
  }
  const auto st = store.stats().total();
  std::printf("20000 records of 200 bytes in %llu pages of 16 KiB\n",
              static_cast<unsigned long long>(st[eloqstore::counter::pages_written]));
  const auto r = store.get(t, "key112345");
  store.stop();
  return r.ok() ? 0 : 1;
}
