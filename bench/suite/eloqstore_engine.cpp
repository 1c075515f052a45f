// The suite's main engine, EloqStore<default_traits>. Another traits type is benchmarked by
// a factory like this one in its own translation unit (see eloqstore_pread_engine.cpp),
// declared in engine.hpp and named in make_engine (main.cpp).
#include "eloqstore_engine.hpp"

namespace bench {

std::unique_ptr<engine> make_eloqstore_engine() {
  return std::make_unique<eloqstore_engine<eloqstore::default_traits>>("eloqstore",
                                                                       "eloqstore::default_traits");
}

}  // namespace bench
