// Fuzz target: manifest replay (spec 4.6) on arbitrary files and on files of well-sealed
// records with arbitrary contents.
//
// Input: byte 0 chooses the form. Form 0 takes the rest as the file. The other forms build
// the file from records drawn from the input: a snapshot or log built by manifest_builder
// from drawn mapping entries, or a drawn payload sealed with a correct checksum; each record
// may be torn (the file ends inside it), have one bit flipped, or end the file with its
// padding cut short. Sealed records get past the checksum, so the decoders behind it are
// reached.
//
// When replay succeeds, the result must be one a store can live with:
// * append_offset is 4 KiB-aligned: before a torn tail, else at the file's (padded) end;
// * the file cut at append_offset replays to the same state, without a torn tail;
// * the state written back as one snapshot replays to the same state (what a manifest
//   rewrite does).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <eloqstore/detail/codec/checksum.hpp>
#include <eloqstore/detail/codec/coding.hpp>
#include <eloqstore/detail/manifest/record.hpp>
#include <eloqstore/detail/manifest/replay.hpp>
#include <eloqstore/detail/mapping/mapping_entry.hpp>

#include "fuzz/fuzz_input.hpp"

using namespace eloqstore;
using namespace eloqstore::detail;

namespace {

bool same_state(const replay_result& a, const replay_result& b) {
  return a.root == b.root && a.ttl_root == b.ttl_root && a.mapping == b.mapping &&
         a.max_fp_id == b.max_fp_id && a.dictionary == b.dictionary && a.terms == b.terms;
}

page_id draw_page_id(fuzz::input& in) {
  return in.flag() ? page_id::none() : page_id(static_cast<std::uint32_t>(in.below_or(64)));
}

term_mapping draw_terms(fuzz::input& in) {
  term_mapping terms;
  for (std::uint64_t n = in.below_or(3); n > 0; --n) {
    // (Drawn in order: the order of a call's arguments is unspecified.)
    const std::uint64_t file = in.flag() ? UINT64_MAX - 1 : in.below_or(40);
    const std::uint64_t term = in.below_or(5);
    terms.emplace_back(file, term);
  }
  std::sort(terms.begin(), terms.end());
  return terms;
}

// A record whose payload manifest_builder encodes from drawn entries.
std::string built_record(fuzz::input& in, bool first, manifest_builder& b) {
  const page_id root = draw_page_id(in);
  const page_id ttl_root = draw_page_id(in);
  if (first || in.below_or(7) == 0) {
    std::vector<std::uint64_t> mapping;
    for (std::uint64_t n = in.below_or(40); n > 0; --n) {
      switch (in.below_or(3)) {
        case 0:
          mapping.push_back(encode_file_page(file_page_id(in.below_or(1u << 20))));
          break;
        case 1:
          mapping.push_back((in.below_or(60) << 3) | 2);  // free link
          break;
        default:
          mapping.push_back(mapping_invalid_value);
      }
    }
    const std::uint64_t max_fp = in.below_or(1u << 21);
    const std::string dict = in.text(64);
    return std::string(b.snapshot(root, ttl_root, mapping, max_fp, dict, draw_terms(in)));
  }
  b.reset();
  for (std::uint64_t n = in.below_or(20); n > 0; --n) {
    const page_id id(static_cast<std::uint32_t>(in.below_or(60)));
    if (in.below_or(3) == 0) {
      b.delete_mapping(id);
    } else {
      b.update_mapping(id, file_page_id(in.below_or(1u << 20)));
    }
  }
  return std::string(b.finish_log(root, ttl_root, draw_terms(in)));
}

// A record with a drawn payload, sealed as spec 4.1 frames records.
std::string sealed_record(fuzz::input& in) {
  const std::string payload = in.text(512);
  std::string rec(manifest_header_bytes, '\0');
  encode_fixed32(rec.data() + manifest_root_offset,
                 static_cast<std::uint32_t>(in.below_or(UINT32_MAX)));
  encode_fixed32(rec.data() + manifest_ttl_root_offset,
                 static_cast<std::uint32_t>(in.below_or(UINT32_MAX)));
  encode_fixed32(rec.data() + manifest_payload_length_offset,
                 static_cast<std::uint32_t>(payload.size()));
  rec += payload;
  encode_fixed64(rec.data(), manifest_checksum(std::string_view(rec).substr(8)));
  rec.resize(manifest_padded_bytes(rec.size()), '\0');
  return rec;
}

std::string build_file(fuzz::input& in) {
  std::string file;
  manifest_builder b;
  for (int i = 0; i < 12 && !in.empty(); ++i) {
    std::string rec = in.flag() ? built_record(in, i == 0, b) : sealed_record(in);
    switch (in.below_or(15)) {
      case 0:  // torn: the file ends inside the record
        file += rec.substr(0, static_cast<std::size_t>(in.below_or(rec.size())));
        return file;
      case 1: {  // one bit flipped
        const std::size_t bit = static_cast<std::size_t>(in.below_or(rec.size() * 8 - 1));
        rec[bit / 8] = static_cast<char>(rec[bit / 8] ^ (1 << (bit % 8)));
        break;
      }
      case 2: {  // the last record, its padding cut short
        const std::uint32_t used =
            manifest_header_bytes + decode_fixed32(rec.data() + manifest_payload_length_offset);
        file += rec.substr(0, std::min<std::size_t>(used, rec.size()));
        return file;
      }
      default:
        break;
    }
    file += rec;
  }
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::input in(data, size);
  const std::string file = in.byte() % 4 == 0 ? std::string(in.rest()) : build_file(in);

  replay_result r;
  if (replay_manifest(file, r) != error::ok) {
    return 0;
  }
  // The next append goes after the last good record: before a torn tail (which it will
  // overwrite), else at the file's end (padded, when the last record's padding was cut).
  FUZZ_CHECK(r.append_offset % manifest_alignment_bytes == 0);
  FUZZ_CHECK(r.torn_tail ? r.append_offset < file.size()
                         : r.append_offset >= file.size() &&
                               r.append_offset < file.size() + manifest_alignment_bytes);

  // The good part alone replays to the same state, with nothing torn.
  replay_result cut;
  FUZZ_CHECK(replay_manifest(std::string_view(file).substr(0, r.append_offset), cut) == error::ok);
  FUZZ_CHECK(same_state(cut, r) && !cut.torn_tail && cut.log_count == r.log_count);

  // Written back as one snapshot, the state replays the same.
  manifest_builder b;
  const std::string snapshot(
      b.snapshot(r.root, r.ttl_root, r.mapping, r.max_fp_id, r.dictionary, r.terms));
  replay_result again;
  FUZZ_CHECK(replay_manifest(snapshot, again) == error::ok);
  FUZZ_CHECK(same_state(again, r) && again.log_count == 0);
  return 0;
}
