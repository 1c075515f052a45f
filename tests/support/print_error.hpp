// Lets doctest print error codes by name in failed assertions. Include it in every
// translation unit of an executable or in none (one specialization per program).
#pragma once

#include <string>

#include <doctest/doctest.h>

#include <eloqstore/error.hpp>

namespace doctest {
template <>
struct StringMaker<eloqstore::error> {
  static String convert(eloqstore::error e) {
    return String(std::string(eloqstore::error_message(e)).c_str());
  }
};
}  // namespace doctest
