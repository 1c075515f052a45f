// The one instantiation of the crash loop's 16 KiB page store (large_page_store.hpp).
#define ELOQSTORE_STRESS_LARGE_PAGE_DEFINITION
#include "stress/large_page_store.hpp"

template class eloqstore::EloqStore<eloqstore::stress::large_page_traits>;
