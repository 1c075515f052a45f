// Fuzz target: the option-file parser (load_options_string, set_option) and its writer
// (save_options_string).
//
// Input: the text up to the first NUL byte is an option file; after it, "key=value" pairs
// separated by NUL bytes are set one by one with set_option on the loaded options.
//
// Properties:
// * a refused load or set leaves the options exactly as they were (compared through the
//   writer's text, which covers every file-settable option);
// * options that loaded pass validate(), and the writer's text for them loads back to the
//   same text (a file we write is a file we read);
// * the same text loads the same way twice.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <eloqstore/options.hpp>
#include <eloqstore/options_file.hpp>

#include "fuzz/fuzz_input.hpp"

using namespace eloqstore;

namespace {

// The writer's text for `o`; empty when the writer refuses it.
std::string text_of(const options& o) {
  std::string text;
  return save_options_string(o, text).ok() ? text : std::string();
}

void check_written_reads_back(const options& o) {
  std::string text;
  if (!save_options_string(o, text).ok()) {
    return;  // (a value set_option allows that an option file cannot hold, or invalid options)
  }
  options back;
  const validation_result r = load_options_string(text, back);
  FUZZ_CHECK(r.ok());
  FUZZ_CHECK(text_of(back) == text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = all.find('\0');
  const std::string_view file = all.substr(0, nul);

  options o;
  const std::string before = text_of(o);
  FUZZ_CHECK(!before.empty());  // the defaults are writable
  const validation_result r = load_options_string(file, o);
  if (!r.ok()) {
    FUZZ_CHECK(r.code != error::ok && !r.message.empty());
    FUZZ_CHECK(text_of(o) == before);
  } else {
    FUZZ_CHECK(o.validate().ok());
    options twice;
    FUZZ_CHECK(load_options_string(file, twice).ok() && text_of(twice) == text_of(o));
    check_written_reads_back(o);
  }

  std::string_view sets = nul == std::string_view::npos ? std::string_view() : all.substr(nul + 1);
  while (!sets.empty()) {
    const std::size_t end = std::min(sets.find('\0'), sets.size());
    const std::string_view pair = sets.substr(0, end);
    sets.remove_prefix(std::min(end + 1, sets.size()));
    const std::size_t eq = std::min(pair.find('='), pair.size());
    const std::string_view key = pair.substr(0, eq);
    const std::string_view value = eq < pair.size() ? pair.substr(eq + 1) : std::string_view();
    const options kept = o;
    const std::string kept_text = text_of(o);
    const validation_result s = set_option(key, value, o);
    if (!s.ok()) {
      FUZZ_CHECK(!s.message.empty());
      // Unchanged: the writer's text, and the fields it does not cover.
      FUZZ_CHECK(text_of(o) == kept_text && o.store_path == kept.store_path &&
                 o.pages_per_file_shift == kept.pages_per_file_shift);
    } else {
      check_written_reads_back(o);
    }
  }
  return 0;
}
