// The eloqstore engines of the suite: EloqStore<default_traits>. Another traits type is
// benchmarked by adding a line to make_eloqstore_engine's siblings below and to make_engine.
#include "eloqstore_engine.hpp"

namespace bench {

std::unique_ptr<engine> make_eloqstore_engine() {
  return std::make_unique<eloqstore_engine<eloqstore::default_traits>>("eloqstore",
                                                                       "eloqstore::default_traits");
}

}  // namespace bench
