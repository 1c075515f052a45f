// Option files: INI text read into `options` (compiled part, link eloqstore::options_file).
//
// Format, as the reference engine's LoadFromIni, but strict:
//
//   [run]          tunables: every option of options.hpp except those listed below, by name
//   [permanent]    store_path, cloud_store_path, data_page_size, data_file_size,
//                  overflow_pointers, data_append_mode
//
// * Both sections must be present (they may be empty). Section and key names are matched
//   case-insensitively; `;` and `#` start comment lines, ` ;` starts an inline comment.
// * Unknown sections, unknown keys, keys in the wrong section, keys outside a section and keys
//   given twice are errors naming the key and its line. Not settable from files:
//   enable_compression, partition_filter, pages_per_file_shift (use data_file_size).
// * Numbers are decimal and must parse whole and fit the option's type. buffer_pool_size,
//   data_page_cache_size, root_meta_cache_size, data_page_size and data_file_size also take a
//   KB/MB/GB/TB suffix (case-insensitive, powers of 1024), e.g. "32MB" or "4 kb".
// * data_file_size sets pages_per_file_shift = floor(log2(data_file_size / data_page_size)),
//   applied after all keys are read, so key order does not matter.
// * store_path splits on ':' and ' '; empty pieces are dropped.
// * Booleans: true/false, yes/no, on/off, 1/0 (case-insensitive).
// * A line longer than inih's line buffer (199 bytes in the usual build) is an error;
//   leading whitespace is ignored, so there are no continuation lines.
//
// Keys the text does not mention keep the value `out` had. On success the result has passed
// options::validate() and is stored in `out`; on any error `out` is left unchanged and the
// result carries error::invalid_args (or the errno-derived error of reading the file) and a
// message with the line number where there is one.
//
// Thread affinity: none; the functions keep no state between calls.
#pragma once

#include <string>
#include <string_view>

#include <eloqstore/options.hpp>

namespace eloqstore {

// Reads the option file at `path` (at most 1 MiB) into `out`.
[[nodiscard]] validation_result load_options_file(const std::string& path, options& out);

// Reads INI text into `out`. The text must not contain NUL bytes.
[[nodiscard]] validation_result load_options_string(std::string_view ini_text, options& out);

// Writes the option file that load_options_string() reads back to `o`'s file-settable
// options: both sections and every key, one "key = value" line each, in a fixed order.
// enable_compression and partition_filter are not written; pages_per_file_shift is written
// as data_file_size. Fails with error::invalid_args (and `out` unchanged) if `o` does not
// pass validate(), or if a value cannot be written so that it reads back the same (a string
// with a line break, leading or trailing blanks, or " ;" or " #" in it, a store path holding
// ':' or ' ', a line over the length limit); the message names the key.
[[nodiscard]] validation_result save_options_string(const options& o, std::string& out);

// Sets one option by its option-file name (either section; case-insensitive) from its text,
// parsed as in a file: "32MB", "on", "/a:/b" for store_path. The result is not validated as
// a whole (start() validates): settings may be made in any order. On error `out` is unchanged.
[[nodiscard]] validation_result set_option(std::string_view key, std::string_view value,
                                           options& out);

}  // namespace eloqstore
