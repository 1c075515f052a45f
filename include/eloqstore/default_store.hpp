// eloqstore::default_store: EloqStore<default_traits> (io_uring, fibers, bytewise keys, 4 KiB
// pages), compiled once in the library eloqstore::default_store. Programs that include this
// header and link that library do not instantiate the engine in their own files: the header
// declares the instantiation `extern`, so a file using the store compiles in less than half
// the time (README.md, "Using it", has the figures). Other traits instantiate EloqStore<Traits>
// from the headers as before.
#pragma once

#include <eloqstore/eloqstore.hpp>

namespace eloqstore {

using default_store = EloqStore<default_traits>;

}  // namespace eloqstore

// The library's own translation unit defines ELOQSTORE_DEFAULT_STORE_DEFINITION.
#ifndef ELOQSTORE_DEFAULT_STORE_DEFINITION
extern template class eloqstore::EloqStore<eloqstore::default_traits>;
#endif
