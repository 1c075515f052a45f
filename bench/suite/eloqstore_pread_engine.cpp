// A second eloqstore engine, EloqStore<pread_traits> (pread/pwrite through the page cache,
// run-to-completion shards), in its own translation unit so that the two instantiations of
// the store compile in parallel. Not in the default engine list: select it with
// --engines eloqstore,eloqstore-pread,rocksdb,lmdb.
#include "eloqstore_engine.hpp"

namespace bench {

std::unique_ptr<engine> make_eloqstore_pread_engine() {
  return std::make_unique<eloqstore_engine<eloqstore::pread_traits>>("eloqstore-pread",
                                                                     "eloqstore::pread_traits");
}

}  // namespace bench
