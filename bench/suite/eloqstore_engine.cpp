// The suite's main engine, EloqStore<default_traits>. Another traits type is benchmarked by
// a factory like this one in its own translation unit (see eloqstore_pread_engine.cpp),
// declared in engine.hpp and named in make_engine (main.cpp).
#include "eloqstore_engine.hpp"

namespace bench {

std::unique_ptr<engine> make_eloqstore_engine() {
  return std::make_unique<eloqstore_engine<eloqstore::default_traits>>("eloqstore",
                                                                       "eloqstore::default_traits");
}

// Append mode (pages written at the tail, compaction and file GC) with file_amplify_factor
// `factor` and 8 MiB data files (2048 pages): compaction works file by file, and the default
// 1 GiB files would each hold a whole benchmark data set.
std::unique_ptr<engine> make_eloqstore_append_engine(unsigned factor) {
  return std::make_unique<eloqstore_engine<eloqstore::default_traits>>(
      factor == 2 ? "eloqstore-append" : "eloqstore-append-f" + std::to_string(factor),
      "eloqstore::default_traits",
      [](eloqstore::options& o, unsigned f) {
        o.data_append_mode = true;
        o.pages_per_file_shift = 11;
        o.file_amplify_factor = static_cast<std::uint8_t>(f);
      },
      factor);
}

}  // namespace bench
