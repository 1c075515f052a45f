// in_memory: a store with no files at all (memory_traits), as the reference engine runs when
// store_path is empty: for tests, caches and ephemeral state. Everything is lost when the
// process ends; within the process a store stopped and started again on the same backend
// keeps its data (pass the backend to the constructor, as here).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include <eloqstore/eloqstore.hpp>

int main() {
  eloqstore::options opts;  // no store_path
  opts.num_threads = 2;
  eloqstore::memory_io backend;
  const eloqstore::table_ident sessions{"sessions", 7};
  {
    eloqstore::EloqStore<eloqstore::memory_traits> store(opts, backend);
    if (store.start() != eloqstore::error::ok) {
      return 1;
    }
    // A record that expires: expire_ts is Unix milliseconds.
    const std::uint64_t in_an_hour =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count()) +
        3600 * 1000;
    if (store.put(sessions, "token-1", "alice", 1, in_an_hour) != eloqstore::error::ok) {
      return 1;
    }
    store.stop();
  }
  eloqstore::EloqStore<eloqstore::memory_traits> again(opts, backend);
  if (again.start() != eloqstore::error::ok) {
    return 1;
  }
  const auto r = again.get(sessions, "token-1");
  std::printf("after a restart on the same backend: %s\n", r.ok() ? r->value.c_str() : "missing");
  again.stop();
  return r.ok() && r->value == "alice" ? 0 : 1;
}
