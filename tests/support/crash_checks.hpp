// The checks the crash tests and the simulation (tests/store/crash_test.cpp,
// simulation_test.cpp) make of a store against the workload's model, and the options they
// draw.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <range/v3/algorithm/for_each.hpp>

#include <eloqstore/eloqstore.hpp>

#include "support/workload.hpp"

namespace eloqstore::test {

// Every record of a partition by a full scan; records must come in ascending key order.
template <typename Store>
error read_all(Store& s, const table_ident& t, kv_model& out, std::size_t page_entries = 97) {
  out.clear();
  auto range = s.scan(t, {}, {}, page_entries);
  bool ordered = true;
  ranges::for_each(range, [&](const kv_entry& e) {
    if (!out.empty() && !(out.rbegin()->first < e.key)) {
      ordered = false;
    }
    out.emplace(e.key, e.value);
  });
  CHECK(ordered);
  return range.status();
}

// Structure check: ok, or not_found for a partition that never got a manifest (then empty).
template <typename Store>
void check_verify(Store& s, const table_ident& t, const kv_model& want) {
  std::string problem;
  const error v = s.verify(t, problem);
  INFO("verify: " << error_message(v) << " " << problem);
  CHECK((v == error::ok || (v == error::not_found && want.empty())));
}

// The partition equals `want` exactly: full scan, verify, and point reads.
template <typename Store>
void check_exact(Store& s, std::uint32_t part, const kv_model& want, rng& r) {
  const table_ident t = part_ident(part);
  CAPTURE(part);
  kv_model got;
  const error e = read_all(s, t, got);
  CHECK(e == error::ok);
  const std::string d = diff(got, want);
  INFO("scan: " << d);
  CHECK(d.empty());
  check_verify(s, t, want);
  for (int q = 0; q < 8; ++q) {
    const std::string key = key_of(r.uniform(0, workload::key_space));
    const auto g = s.get(t, key);
    const auto it = want.find(key);
    CAPTURE(key);
    if (it == want.end()) {
      CHECK(g.status() == error::not_found);
    } else {
      REQUIRE(g.ok());
      CHECK(g->value == it->second);
    }
  }
}

// Reads the partition and returns the index of the candidate it equals, or -1 (with the
// difference to candidate 0 in `why`).
template <typename Store>
int match_candidates(Store& s, std::uint32_t part, const std::vector<kv_model>& candidates,
                     std::string& why) {
  kv_model got;
  const error e = read_all(s, part_ident(part), got);
  if (e != error::ok) {
    why = std::string("scan failed: ") + std::string(error_message(e));
    return -1;
  }
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    if (got == candidates[i]) {
      return static_cast<int>(i);
    }
  }
  why = diff(got, candidates[0]);
  return -1;
}

// Options drawn from r: 1-2 shards; a manifest limit from "snapshot every other write" to
// "always append"; data files of 8, 64 or 2^18 pages (small files create new files, so the
// directory sync of a commit matters); a small or large index cache; in place or append mode.
inline options random_options(rng& r) {
  options o;
  o.num_threads = static_cast<std::uint16_t>(r.uniform(1, 2));
  const std::uint32_t limits[] = {8u << 10, 16u << 10, 1u << 20};
  o.manifest_limit = limits[r.uniform(0, 2)];
  const std::uint8_t shifts[] = {3, 6, 18};
  o.pages_per_file_shift = shifts[r.uniform(0, 2)];
  o.buffer_pool_size = r.chance(0.5) ? 4 * std::size_t{4096} : 32 << 20;
  // Append mode: with small files, compaction and file GC run (in the background on fiber
  // shards) between and after the workload's writes, and crash there too.
  o.data_append_mode = r.chance(0.5);
  // Compression: a bulk batch (1.5 MB and more) trains the partition's dictionary, and its
  // commit writes the snapshot that stores it.
  o.enable_compression = r.chance(0.5);
  return o;
}

inline std::string describe(const options& o) {
  std::ostringstream os;
  os << "threads " << o.num_threads << ", manifest_limit " << o.manifest_limit
     << ", pages_per_file_shift " << int{o.pages_per_file_shift} << ", buffer_pool_size "
     << o.buffer_pool_size << (o.data_append_mode ? ", append mode" : "")
     << (o.enable_compression ? ", compression" : "");
  return os.str();
}

}  // namespace eloqstore::test
