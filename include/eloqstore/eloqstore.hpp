// Umbrella header: everything a user of eloqstore needs.
#pragma once

#include <eloqstore/comparator.hpp>
#include <eloqstore/concepts.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/options.hpp>
#include <eloqstore/request.hpp>
#include <eloqstore/stats.hpp>
#include <eloqstore/store.hpp>
#include <eloqstore/table_ident.hpp>
#include <eloqstore/traits.hpp>
#include <eloqstore/types.hpp>
