// Umbrella header: everything a user of eloqstore needs.
#pragma once

#include <eloqstore/comparator.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/table_ident.hpp>
