// Manifest records and replay: snapshot + logs rebuild the mapping a model kept; torn tails
// are tolerated, corruption in the middle is reported.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/detail/manifest/record.hpp>
#include <eloqstore/detail/manifest/replay.hpp>

#include "support/page_store.hpp"

using namespace eloqstore;
using namespace eloqstore::detail;

namespace {

// A model partition state and the manifest file that records it.
struct manifest_model {
  std::vector<std::uint64_t> mapping;
  std::uint64_t max_fp = 0;
  page_id root = page_id::none();
  page_id ttl_root = page_id::none();
  term_mapping terms{{manifest_file_id.value(), 0}};
  std::string file;
  manifest_builder builder;

  void snapshot() {
    file = std::string(builder.snapshot(root, ttl_root, mapping, max_fp, "dict", terms));
  }

  // One random batch of mapping changes appended as a log record; returns the record offset.
  std::size_t random_log(test::rng& r) {
    builder.reset();
    const std::size_t n = r.uniform(0, 50);
    for (std::size_t i = 0; i < n; ++i) {
      if (mapping.empty() || r.chance(0.6)) {
        const std::uint32_t id = static_cast<std::uint32_t>(
            r.chance(0.5) || mapping.empty() ? mapping.size() : r.uniform(0, mapping.size() - 1));
        const file_page_id fp(max_fp++);
        if (id >= mapping.size()) {
          mapping.resize(id + 1, mapping_invalid_value);
        }
        mapping[id] = encode_file_page(fp);
        builder.update_mapping(page_id(id), fp);
      } else {
        const auto id = static_cast<std::uint32_t>(r.uniform(0, mapping.size() - 1));
        mapping[id] = mapping_invalid_value;
        builder.delete_mapping(page_id(id));
      }
    }
    root = page_id(static_cast<std::uint32_t>(r.uniform(0, 1000)));
    ttl_root =
        r.chance(0.5) ? page_id::none() : page_id(static_cast<std::uint32_t>(r.uniform(0, 9)));
    if (r.chance(0.2)) {
      terms.emplace_back(r.uniform(0, 100000), r.uniform(0, 5));
      std::sort(terms.begin(), terms.end());
      terms.erase(std::unique(terms.begin(), terms.end(),
                              [](auto& a, auto& b) { return a.first == b.first; }),
                  terms.end());
    }
    const std::size_t at = file.size();
    file += builder.finish_log(root, ttl_root, terms);
    return at;
  }

  void check(const replay_result& got) const {
    CHECK(got.root == root);
    CHECK(got.ttl_root == ttl_root);
    CHECK(got.max_fp_id == max_fp);
    CHECK(got.terms == terms);
    CHECK(got.dictionary == "dict");
    // The replayed table may be longer only by trailing invalid slots.
    REQUIRE(got.mapping.size() >= mapping.size());
    for (std::size_t i = 0; i < got.mapping.size(); ++i) {
      CHECK(got.mapping[i] == (i < mapping.size() ? mapping[i] : mapping_invalid_value));
    }
  }
};

}  // namespace

TEST_CASE("manifest: records are 4 KiB aligned and checksummed") {
  manifest_builder b;
  const std::vector<std::uint64_t> mapping{encode_file_page(file_page_id(0)),
                                           mapping_invalid_value};
  const std::string snap(b.snapshot(page_id(0), page_id::none(), mapping, 1, "", {}));
  CHECK(snap.size() == 4096);
  manifest_record rec;
  REQUIRE(read_manifest_record(snap, rec) == record_status::ok);
  CHECK(rec.root == page_id(0));
  CHECK(rec.ttl_root.is_none());
  CHECK(rec.padded_bytes == 4096);
  // Big snapshots span several pages.
  std::vector<std::uint64_t> big(10000, encode_file_page(file_page_id(1)));
  const std::string large(b.snapshot(page_id(1), page_id(2), big, 2, std::string(5000, 'd'), {}));
  CHECK(large.size() % 4096 == 0);
  CHECK(large.size() > 8192);
  manifest_snapshot s;
  REQUIRE(read_manifest_record(large, rec) == record_status::ok);
  REQUIRE(decode_manifest_snapshot(rec.payload, s) == error::ok);
  CHECK(s.mapping == big);
  CHECK(s.dictionary == std::string(5000, 'd'));
  CHECK(s.max_fp_id == 2);
}

TEST_CASE("manifest: snapshot plus many logs replays to the model state") {
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    CAPTURE(seed);
    test::rng r(seed);
    manifest_model m;
    for (int i = 0; i < 20; ++i) {
      m.random_log(r);  // build some state first
    }
    m.snapshot();
    replay_result got;
    REQUIRE(replay_manifest(m.file, got) == error::ok);
    m.check(got);
    CHECK(got.log_count == 0);
    const int logs = static_cast<int>(r.uniform(0, 30));
    for (int i = 0; i < logs; ++i) {
      m.random_log(r);
    }
    REQUIRE(replay_manifest(m.file, got) == error::ok);
    m.check(got);
    CHECK(got.log_count == static_cast<std::size_t>(logs));
    CHECK_FALSE(got.torn_tail);
    CHECK(got.append_offset == m.file.size());
  }
}

TEST_CASE("manifest: a torn last record recovers the previous state") {
  for (std::uint64_t seed = 100; seed < 140; ++seed) {
    CAPTURE(seed);
    test::rng r(seed);
    manifest_model m;
    m.snapshot();
    for (int i = 0; i < 5; ++i) {
      m.random_log(r);
    }
    const manifest_model before = m;
    const std::size_t at = m.random_log(r);
    const std::size_t record_bytes = m.file.size() - at;
    std::string torn = m.file;
    if (r.chance(0.5)) {
      torn.resize(at + r.uniform(0, record_bytes - 1));  // cut inside the new record
      manifest_record rec;
      if (read_manifest_record(std::string_view(torn).substr(at), rec) == record_status::ok) {
        continue;  // only padding was cut: the record is complete and is accepted
      }
    } else {
      // Flip a byte the checksum covers (header or payload, not padding).
      const std::size_t used =
          manifest_header_bytes + decode_fixed32(torn.data() + at + manifest_payload_length_offset);
      torn[at + r.uniform(0, used - 1)] ^= 0x10;
    }
    replay_result got;
    REQUIRE(replay_manifest(torn, got) == error::ok);
    CHECK(got.torn_tail);
    CHECK(got.append_offset == at);
    before.check(got);
  }
}

TEST_CASE("manifest: a valid record with its padding cut off is accepted") {
  test::rng r(5);
  manifest_model m;
  m.snapshot();
  m.random_log(r);
  m.random_log(r);
  // Cut the last record's padding, and nothing more.
  std::string cut = m.file;
  const std::size_t last = m.random_log(r);
  m.file.resize(manifest_padded_bytes(m.file.size()));
  cut = m.file;
  cut.resize(last + manifest_header_bytes +
             decode_fixed32(cut.data() + last + manifest_payload_length_offset));
  replay_result got;
  REQUIRE(replay_manifest(cut, got) == error::ok);
  m.check(got);
  CHECK_FALSE(got.torn_tail);
  CHECK(got.append_offset == m.file.size());
}

TEST_CASE("manifest: corruption before the tail is an error") {
  test::rng r(9);
  manifest_model m;
  m.snapshot();
  std::vector<std::size_t> starts;
  for (int i = 0; i < 6; ++i) {
    starts.push_back(m.random_log(r));
  }
  for (std::size_t k = 0; k + 1 < starts.size(); ++k) {
    std::string bad = m.file;
    bad[starts[k] + 9] ^= 0x01;  // inside the header of a middle record
    replay_result got;
    CHECK(replay_manifest(bad, got) == error::corrupted);
  }
  std::string bad_snapshot = m.file;
  bad_snapshot[30] ^= 0x40;
  replay_result got;
  CHECK(replay_manifest(bad_snapshot, got) == error::corrupted);
  CHECK(replay_manifest("", got) == error::corrupted);
}

TEST_CASE("manifest: term mapping round trip and hostile lengths") {
  term_mapping t{{1, 0}, {7, 3}, {manifest_file_id.value(), 3}};
  std::string enc;
  encode_term_mapping(t, enc);
  byte_reader in(enc);
  term_mapping back;
  REQUIRE(decode_term_mapping(in, back));
  CHECK(back == t);
  CHECK(in.remaining() == 0);
  std::string longer = enc;
  encode_fixed32(longer.data(), static_cast<std::uint32_t>(enc.size()));  // past the end
  byte_reader in2(longer);
  CHECK_FALSE(decode_term_mapping(in2, back));
  CHECK(back.empty());
  std::string truncated_varint = enc;
  truncated_varint.back() = static_cast<char>(0x80);
  byte_reader in3(truncated_varint);
  CHECK_FALSE(decode_term_mapping(in3, back));
}

TEST_CASE("manifest: a log may not name a page id far beyond the table") {
  std::vector<std::uint64_t> mapping(4, mapping_invalid_value);
  manifest_builder b;
  b.update_mapping(page_id(1000000), file_page_id(1));
  const std::string rec(b.finish_log(page_id(0), page_id::none(), {}));
  manifest_record r;
  REQUIRE(read_manifest_record(rec, r) == record_status::ok);
  std::uint64_t max_fp = 0;
  term_mapping terms;
  CHECK(apply_manifest_log(r.payload, mapping, max_fp, terms) == error::corrupted);
  CHECK(mapping.size() == 4);
}
