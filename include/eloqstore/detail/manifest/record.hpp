// Manifest records: the durable form of a partition's mapping table and roots.
//
// A manifest file is a sequence of records, each padded with zeros to a multiple of 4096
// bytes (so appends can use O_DIRECT at aligned offsets). The first record is a snapshot, the
// rest are logs. Record header (20 bytes, little-endian):
//
//   offset 0   u64  checksum of bytes [8, 20 + payload_len), chunked (see checksum.hpp)
//   offset 8   u32  root of the main tree (0xFFFFFFFF = empty)
//   offset 12  u32  root of the TTL tree
//   offset 16  u32  payload_len
//
// Snapshot payload:
//   varint64 max_fp_id, varint32 dict_len, dict bytes,
//   fixed32 mapping_bytes_len, varint64 entry per logical id 0..N-1 (tagged values),
//   term mapping
// Log payload:
//   fixed32 mapping_bytes_len, repeated (varint32 page_id, varint64 tagged value),
//   term mapping (the full current one, not a delta)
// Term mapping: fixed32 byte_len, then (varint64 file_id, varint64 term) pairs. We write it
// sorted by file id so identical state gives identical bytes.
//
// Builders are single-threaded and reuse one buffer; decoders never read past their input.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <eloqstore/detail/codec/checksum.hpp>
#include <eloqstore/detail/codec/coding.hpp>
#include <eloqstore/detail/mapping/mapping_entry.hpp>
#include <eloqstore/detail/util/strong_id.hpp>
#include <eloqstore/error.hpp>

namespace eloqstore::detail {

inline constexpr std::size_t manifest_header_bytes = 20;
inline constexpr std::size_t manifest_root_offset = 8;
inline constexpr std::size_t manifest_ttl_root_offset = 12;
inline constexpr std::size_t manifest_payload_length_offset = 16;
inline constexpr std::size_t manifest_alignment_bytes = 4096;

[[nodiscard]] constexpr std::size_t manifest_padded_bytes(std::size_t n) noexcept {
  return (n + manifest_alignment_bytes - 1) / manifest_alignment_bytes * manifest_alignment_bytes;
}

// End markers: what a manifest holds after its last record, in the blocks written ahead of
// appends and over a record whose append failed. Each 4 KiB block starts with a record header
// whose checksum is 0, roots none, and a payload length that reaches one byte past
// `file_end` (the file's size once these blocks are written), zeros after it. A reader that
// trusts the length finds the file ending inside the "record": the reference engine's
// replayer then stops at end of file without a word (a zero block would be a checksum
// mismatch, logged as corruption once per block); ours reads any unreadable tail as a torn
// one (replay.hpp). Replay of either never applies a marker. `out` gets the blocks for file
// bytes [at, at + bytes). REQUIRES: at and bytes multiples of 4 KiB, at + bytes <= file_end.
inline void fill_manifest_end_markers(std::string& out, std::size_t bytes, std::uint64_t at,
                                      std::uint64_t file_end) {
  out.assign(bytes, '\0');
  for (std::size_t off = 0; off + manifest_header_bytes <= bytes; off += manifest_alignment_bytes) {
    const std::uint64_t claim = file_end - (at + off) - manifest_header_bytes + 1;
    encode_fixed32(out.data() + off + manifest_root_offset, 0xFFFFFFFFU);
    encode_fixed32(out.data() + off + manifest_ttl_root_offset, 0xFFFFFFFFU);
    encode_fixed32(out.data() + off + manifest_payload_length_offset,
                   static_cast<std::uint32_t>(std::min<std::uint64_t>(claim, 0xFFFFFFFFULL)));
  }
}

// file id -> term of the process that created it, sorted by file id, unique file ids.
using term_mapping = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

inline void encode_term_mapping(const term_mapping& terms, std::string& out) {
  const std::size_t len_at = out.size();
  out.append(4, '\0');
  for (const auto& [file, term] : terms) {
    put_varint64(out, file);
    put_varint64(out, term);
  }
  encode_fixed32(out.data() + len_at, static_cast<std::uint32_t>(out.size() - len_at - 4));
}

// Decodes a term mapping; false (and `out` cleared) on truncation or an over-long length.
[[nodiscard]] inline bool decode_term_mapping(byte_reader& in, term_mapping& out) {
  out.clear();
  const std::uint32_t len = in.fixed32();
  byte_reader body(in.bytes(len));
  if (!in.ok()) {
    return false;
  }
  while (body.ok() && body.remaining() > 0) {
    const std::uint64_t file = body.varint64();
    const std::uint64_t term = body.varint64();
    if (body.ok()) {
      out.emplace_back(file, term);
    }
  }
  if (!body.ok()) {
    out.clear();
    return false;
  }
  std::sort(out.begin(), out.end());
  return true;
}

// Builds manifest records. A log record collects mapping changes as they happen
// (update/erase), then finish_log() frames it; snapshot() frames a whole mapping.
class manifest_builder {
 public:
  manifest_builder() { reset(); }

  void reset() {
    buf_.assign(manifest_header_bytes + 4, '\0');  // header + mapping_bytes_len placeholder
    changes_ = 0;
  }

  void update_mapping(page_id id, file_page_id fp) {
    assert(fp.value() <= file_page_id_max);
    put_varint32(buf_, id.value());
    put_varint64(buf_, encode_file_page(fp));
    ++changes_;
  }
  void delete_mapping(page_id id) {
    put_varint32(buf_, id.value());
    put_varint64(buf_, mapping_invalid_value);
    ++changes_;
  }
  [[nodiscard]] std::size_t change_count() const noexcept { return changes_; }

  // Frames the collected changes as a log record; the view is valid until the next call.
  std::string_view finish_log(page_id root, page_id ttl_root, const term_mapping& terms) {
    encode_fixed32(buf_.data() + manifest_header_bytes,
                   static_cast<std::uint32_t>(buf_.size() - manifest_header_bytes - 4));
    encode_term_mapping(terms, buf_);
    return frame(root, ttl_root);
  }

  // Frames a snapshot of `mapping` (a range of tagged u64 values for ids 0..N-1; swizzled
  // pointers must already be replaced by file page ids). Discards collected log changes.
  template <typename MappingRange>
  std::string_view snapshot(page_id root, page_id ttl_root, const MappingRange& mapping,
                            std::uint64_t max_fp_id, std::string_view dictionary,
                            const term_mapping& terms) {
    buf_.assign(manifest_header_bytes, '\0');
    changes_ = 0;
    put_varint64(buf_, max_fp_id);
    put_varint32(buf_, static_cast<std::uint32_t>(dictionary.size()));
    buf_.append(dictionary);
    const std::size_t len_at = buf_.size();
    buf_.append(4, '\0');
    for (const std::uint64_t v : mapping) {
      assert(tag_of(v) != mapping_tag::swizzled);
      put_varint64(buf_, v);
    }
    encode_fixed32(buf_.data() + len_at, static_cast<std::uint32_t>(buf_.size() - len_at - 4));
    encode_term_mapping(terms, buf_);
    return frame(root, ttl_root);
  }

 private:
  std::string_view frame(page_id root, page_id ttl_root) {
    const std::size_t payload = buf_.size() - manifest_header_bytes;
    encode_fixed32(buf_.data() + manifest_root_offset, root.value());
    encode_fixed32(buf_.data() + manifest_ttl_root_offset, ttl_root.value());
    encode_fixed32(buf_.data() + manifest_payload_length_offset,
                   static_cast<std::uint32_t>(payload));
    encode_fixed64(buf_.data(), manifest_checksum(std::string_view(buf_).substr(8)));
    buf_.resize(manifest_padded_bytes(buf_.size()), '\0');
    return buf_;
  }

  std::string buf_;
  std::size_t changes_ = 0;
};

// One record located in a manifest file.
struct manifest_record {
  page_id root;
  page_id ttl_root;
  std::string_view payload;
  std::size_t padded_bytes = 0;  // header + payload + padding, as far as the input reaches
};

enum class record_status : std::uint8_t {
  ok,    // checksum good; padding may be cut short at the end of the input
  torn,  // not enough bytes for the header or the payload
  bad_checksum,
};

// Reads the record at the start of `in` (which runs to the end of the file).
[[nodiscard]] inline record_status read_manifest_record(std::string_view in,
                                                        manifest_record& out) noexcept {
  if (in.size() < manifest_header_bytes) {
    return record_status::torn;
  }
  const std::uint64_t payload = decode_fixed32(in.data() + manifest_payload_length_offset);
  if (payload > in.size() - manifest_header_bytes) {
    return record_status::torn;
  }
  const std::size_t used = manifest_header_bytes + static_cast<std::size_t>(payload);
  if (decode_fixed64(in.data()) != manifest_checksum(in.substr(8, used - 8))) {
    return record_status::bad_checksum;
  }
  out.root = page_id(decode_fixed32(in.data() + manifest_root_offset));
  out.ttl_root = page_id(decode_fixed32(in.data() + manifest_ttl_root_offset));
  out.payload = in.substr(manifest_header_bytes, payload);
  out.padded_bytes = std::min(manifest_padded_bytes(used), in.size());
  return record_status::ok;
}

// Decoded snapshot payload.
struct manifest_snapshot {
  std::uint64_t max_fp_id = 0;
  std::string dictionary;
  std::vector<std::uint64_t> mapping;
  term_mapping terms;
};

// Decodes a snapshot payload. error::corrupted on any malformed field, unknown or swizzled
// mapping tag, or trailing bytes.
[[nodiscard]] inline error decode_manifest_snapshot(std::string_view payload,
                                                    manifest_snapshot& out) {
  byte_reader in(payload);
  out.max_fp_id = in.varint64();
  const std::uint32_t dict_len = in.varint32();
  out.dictionary.assign(in.bytes(dict_len));
  const std::uint32_t mapping_len = in.fixed32();
  byte_reader mapping(in.bytes(mapping_len));
  if (!in.ok()) {
    return error::corrupted;
  }
  out.mapping.clear();
  out.mapping.reserve(mapping_len);  // at least one byte per entry
  while (mapping.ok() && mapping.remaining() > 0) {
    const std::uint64_t v = mapping.varint64();
    // On disk: file pages, free links to a 32-bit id, or exactly 7. Never pointers.
    const mapping_tag tag = tag_of(v);
    const bool ok = tag == mapping_tag::file_page || v == mapping_invalid_value ||
                    (tag == mapping_tag::free_link && (v >> 3) <= UINT32_MAX);
    if (!ok) {
      mapping.fail();
    }
    out.mapping.push_back(v);
  }
  if (!mapping.ok() || !decode_term_mapping(in, out.terms) || in.remaining() != 0) {
    return error::corrupted;
  }
  return error::ok;
}

// Applies a log payload to `mapping`, raising `max_fp_id` past every file page it names and
// replacing `terms`. Logical ids may only grow the table by as many slots as the record has
// entries (ids are handed out densely), which bounds what a corrupt record can allocate.
// On error nothing is guaranteed about the outputs; callers discard them.
[[nodiscard]] inline error apply_manifest_log(std::string_view payload,
                                              std::vector<std::uint64_t>& mapping,
                                              std::uint64_t& max_fp_id, term_mapping& terms) {
  byte_reader in(payload);
  const std::uint32_t len = in.fixed32();
  const std::string_view body_bytes = in.bytes(len);
  if (!in.ok()) {
    return error::corrupted;
  }
  const std::size_t limit = mapping.size() + body_bytes.size() / 2;  // an entry is >= 2 bytes
  byte_reader body(body_bytes);
  while (body.ok() && body.remaining() > 0) {
    const std::uint32_t id = body.varint32();
    const std::uint64_t v = body.varint64();
    const mapping_tag tag = tag_of(v);
    if (!body.ok() || id >= limit ||
        (tag != mapping_tag::file_page && v != mapping_invalid_value)) {
      return error::corrupted;
    }
    if (id >= mapping.size()) {
      mapping.resize(std::size_t{id} + 1, mapping_invalid_value);
    }
    mapping[id] = v;
    if (tag == mapping_tag::file_page) {
      max_fp_id = std::max(max_fp_id, decode_file_page(v).value() + 1);
    }
  }
  if (!body.ok() || !decode_term_mapping(in, terms) || in.remaining() != 0) {
    return error::corrupted;
  }
  return error::ok;
}

}  // namespace eloqstore::detail
