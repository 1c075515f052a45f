// A program that uses eloqstore as an installed package would: options from an option file,
// a store in a directory, a durable write, a read, a scan, a reopen. The package tests
// (tests/package/run.sh) build it through find_package, pkg-config and add_subdirectory, and
// Conan's test_package builds it from the recipe.
//
// With ELOQSTORE_CONSUMER_COMPILED_STORE defined it uses the compiled default_store library.
//
// Usage: consumer DIRECTORY
#include <cstdio>
#include <string>

#include <range/v3/algorithm/count_if.hpp>

#include <eloqstore/options_file.hpp>
#ifdef ELOQSTORE_CONSUMER_COMPILED_STORE
#include <eloqstore/default_store.hpp>  // the engine compiled in eloqstore::default_store
#else
#include <eloqstore/eloqstore.hpp>  // the engine instantiated here, from the headers
#endif

namespace {

int fail(const char* what, eloqstore::error e) {
  std::fprintf(stderr, "consumer: %s: %s\n", what,
               std::string(eloqstore::error_message(e)).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer DIRECTORY\n");
    return 2;
  }
  eloqstore::options opts;
  const std::string ini =
      "[run]\nnum_threads = 1\n[permanent]\nstore_path = " + std::string(argv[1]) + "\n";
  if (const auto v = eloqstore::load_options_string(ini, opts); !v.ok()) {
    std::fprintf(stderr, "consumer: options: %s\n", v.message.c_str());
    return 1;
  }
  const eloqstore::table_ident table{"consumer", 0};
  {
    eloqstore::EloqStore<eloqstore::default_traits> store(opts);
    if (const auto e = store.start(); e != eloqstore::error::ok) {
      return fail("start", e);
    }
    for (int i = 0; i < 100; ++i) {
      if (const auto e =
              store.put(table, "key" + std::to_string(1000 + i), "v" + std::to_string(i));
          e != eloqstore::error::ok) {
        return fail("put", e);
      }
    }
    store.stop();
  }
  eloqstore::EloqStore<eloqstore::default_traits> store(opts);
  if (const auto e = store.start(); e != eloqstore::error::ok) {
    return fail("reopen", e);
  }
  const auto got = store.get(table, "key1042");
  if (!got.ok() || got->value != "v42") {
    return fail("get", got.status());
  }
  const auto entries = ranges::count_if(
      store.scan(table), [](const eloqstore::kv_entry& e) { return !e.key.empty(); });
  std::printf("consumer: %ld entries, key1042 = %s\n", static_cast<long>(entries),
              got->value.c_str());
  return entries == 100 ? 0 : 1;
}
