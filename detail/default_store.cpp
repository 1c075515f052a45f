// The one instantiation of EloqStore<default_traits> (include/eloqstore/default_store.hpp).
#define ELOQSTORE_DEFAULT_STORE_DEFINITION
#include <eloqstore/default_store.hpp>

template class eloqstore::EloqStore<eloqstore::default_traits>;
