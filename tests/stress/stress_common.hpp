// What the stress programs (crash_loop, corruption) share: seed mixing, a full scan into a
// model, and the outcome of checking one partition against its model (over any store type).
#pragma once

#include <cstdint>
#include <string>

#include <range/v3/algorithm/for_each.hpp>

#include <eloqstore/default_store.hpp>

#include "support/workload.hpp"

namespace eloqstore::stress {

// A seed from two (splitmix64's finaliser over a combination).
inline std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
  std::uint64_t x = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ULL;
  return x ^ (x >> 29);
}

// Every record of a partition by a full scan into `out`; `ordered` false when the scan gave a
// key not above the one before it. Returns the scan's status.
template <typename Store>
error scan_all(Store& s, const table_ident& t, test::kv_model& out, bool& ordered) {
  out.clear();
  ordered = true;
  auto range = s.scan(t, {}, {}, 113);
  ranges::for_each(range, [&](const kv_entry& e) {
    if (!out.empty() && !(out.rbegin()->first < e.key)) {
      ordered = false;
    }
    out.emplace(e.key, e.value);
  });
  return range.status();
}

// Point reads of every tenth key of the workload's key space (starting at `first`) against
// `model`: empty when all agree, else the first disagreement; `e` gets a read's error other
// than not_found.
template <typename Store>
std::string point_reads(Store& s, const table_ident& t, const test::kv_model& model,
                        std::uint64_t first, error& e) {
  e = error::ok;
  for (std::uint64_t k = first % 10; k <= test::workload::key_space; k += 10) {
    const std::string key = test::key_of(k);
    const auto r = s.get(t, key);
    const auto m = model.find(key);
    if (!r.ok() && r.status() != error::not_found) {
      e = r.status();
      return "get " + key + ": " + std::string(error_message(e));
    }
    if (m == model.end()) {
      if (r.ok()) {
        return "get " + key + " found a record the model lacks";
      }
    } else if (!r.ok() || r->value != m->second) {
      return "get " + key + " disagrees with the model";
    }
  }
  return {};
}

}  // namespace eloqstore::stress
