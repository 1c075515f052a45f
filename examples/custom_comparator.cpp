// custom_comparator: keys ordered by a comparator of your own.
//
// Keys here are decimal numbers as text ("9", "10", "100"); the comparator orders them by
// value, so a scan returns 9, 10, 100 rather than the bytewise 10, 100, 9. The comparator's
// name() is recorded in the store (.eloqstore/IDENTITY): a store written in one order is
// refused by a store of another, never misread. (The reference engine reads only bytewise
// stores.)
//
// Usage: custom_comparator [directory=./eloqstore-numeric]
#include <compare>
#include <cstdio>
#include <string>
#include <string_view>

#include <eloqstore/eloqstore.hpp>

namespace {

// Decimal numbers without leading zeros: a shorter number is smaller, equal lengths compare
// bytewise.
struct numeric_comparator {
  [[nodiscard]] std::weak_ordering compare(std::string_view a, std::string_view b) const noexcept {
    if (a.size() != b.size()) {
      return a.size() < b.size() ? std::weak_ordering::less : std::weak_ordering::greater;
    }
    const int c = a.compare(b);
    return c < 0 ? std::weak_ordering::less
                 : (c > 0 ? std::weak_ordering::greater : std::weak_ordering::equivalent);
  }
  [[nodiscard]] static constexpr std::string_view name() noexcept { return "example.numeric"; }
  // The shortest key s with a < s <= b, for index separators: b itself always qualifies.
  [[nodiscard]] std::string shortest_separator(std::string_view, std::string_view b) const {
    return std::string(b);
  }
};
static_assert(eloqstore::key_comparator<numeric_comparator>);

struct numeric_traits : eloqstore::default_traits {
  using comparator = numeric_comparator;
};

}  // namespace

int main(int argc, char** argv) {
  eloqstore::options opts;
  opts.store_path = {argc > 1 ? argv[1] : "./eloqstore-numeric"};
  opts.num_threads = 1;
  eloqstore::EloqStore<numeric_traits> store(opts);
  if (const auto e = store.start(); e != eloqstore::error::ok) {
    std::fprintf(stderr, "start: %s (%s)\n", std::string(eloqstore::error_message(e)).c_str(),
                 store.last_message().c_str());
    return 1;
  }
  const eloqstore::table_ident t{"numbers", 0};
  for (const int n : {100, 9, 10, 2, 1000, 55}) {
    if (store.put(t, std::to_string(n), "value of " + std::to_string(n), 1) !=
        eloqstore::error::ok) {
      return 1;
    }
  }
  std::string order;
  for (const eloqstore::kv_entry& e : store.scan(t)) {
    order += e.key + ' ';
  }
  std::printf("in numeric order: %s\n", order.c_str());
  store.stop();
  return order == "2 9 10 55 100 1000 " ? 0 : 1;
}
