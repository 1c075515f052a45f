// pread_fallback: the same store on a kernel without io_uring (or where it is disabled, as in
// some containers): pread_traits does its I/O with pread/pwrite and runs each shard's
// requests to completion. Its files are the default traits' files: a store written by one
// opens in the other.
//
// The program tries the default traits first and falls back when uring_io's start-up probe
// refuses (its message names pread_traits), as an application would.
//
// Usage: pread_fallback [directory=./eloqstore-data]
#include <cstdio>
#include <string>

#include <eloqstore/eloqstore.hpp>

namespace {

template <typename Traits>
int run(const eloqstore::options& opts, const char* which) {
  eloqstore::EloqStore<Traits> store(opts);
  if (const auto e = store.start(); e != eloqstore::error::ok) {
    std::fprintf(stderr, "%s: start failed: %s (%s)\n", which,
                 std::string(eloqstore::error_message(e)).c_str(), store.last_message().c_str());
    return 1;
  }
  const eloqstore::table_ident t{"fallback", 0};
  if (store.put(t, "written-by", which, 1) != eloqstore::error::ok) {
    return 1;
  }
  std::printf("%s: wrote and read back '%s'\n", which, store.get(t, "written-by")->value.c_str());
  store.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  eloqstore::options opts;
  opts.store_path = {argc > 1 ? argv[1] : "./eloqstore-data"};
  opts.num_threads = 1;
  if (run<eloqstore::default_traits>(opts, "io_uring") == 0) {
    // Reopen the same files without io_uring, as a kernel without it would.
    return run<eloqstore::pread_traits>(opts, "pread");
  }
  std::fprintf(stderr, "io_uring unavailable: falling back to pread_traits\n");
  return run<eloqstore::pread_traits>(opts, "pread");
}
