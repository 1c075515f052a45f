// The suite's JSON values: nlohmann::ordered_json (members stay in the order they were set),
// parsed from fio's --output-format=json and written as the results file. The helpers below
// read values without throwing: a missing member or one of the wrong type (fio versions
// differ, results files of older suites) reads as null, a fallback or "".
//
// Thread affinity: none.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace bench {

using json = nlohmann::ordered_json;

// Nesting of arrays and objects parse_json accepts: fio's output nests five levels deep.
inline constexpr int json_depth_max = 64;

// The member called `key`, or a null value when there is none or `j` is not an object.
inline const json& member(const json& j, std::string_view key) {
  static const json null_value;
  if (!j.is_object()) {
    return null_value;
  }
  const auto it = j.find(key);
  return it == j.end() ? null_value : *it;
}

// `j` when it is an array, else an empty array: iterate it for the elements. (nlohmann's
// items() is something else: key-value pairs.)
inline const json& array_or_empty(const json& j) {
  static const json empty = json::array();
  return j.is_array() ? j : empty;
}

// The number (integer or floating point), or `fallback` for any other value.
inline double number_or(const json& j, double fallback) {
  return j.is_number() ? j.get<double>() : fallback;
}

// The string, or "" for any other value.
inline std::string string_or_empty(const json& j) {
  return j.is_string() ? j.get<std::string>() : std::string();
}

// The text of `j`: compact when indent < 0, else pretty with `indent` spaces per level.
// Invalid UTF-8 in a string (an error message cut mid-character) is replaced by U+FFFD
// instead of throwing.
inline std::string dump_json(const json& j, int indent) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

// Parses `text`; false with `error` set on malformed input or nesting deeper than
// json_depth_max. Leading non-JSON lines (fio prints warnings before its JSON) are skipped,
// and so is anything after the first value. Reports errors, never throws them.
inline bool parse_json(std::string_view text, json& out, std::string& error) {
  // fio may print warnings ("fio: ...") before the document: start at the first line that
  // opens an object.
  std::size_t start = 0;
  while (start < text.size() && text[start] != '{') {
    const std::size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) {
      start = text.size();
      break;
    }
    start = nl + 1;
  }
  // The object ends where its brackets (those outside strings) balance; counting them also
  // bounds the nesting, which nlohmann's parser does not. Malformed text is left to the
  // parser to report.
  std::size_t end = text.size();
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = start; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > json_depth_max) {
        error = "nesting deeper than " + std::to_string(json_depth_max) + " at offset " +
                std::to_string(i);
        return false;
      }
    } else if ((c == '}' || c == ']') && --depth <= 0) {
      end = i + 1;
      break;
    }
  }
  const std::string_view body = text.substr(start, end - start);
  try {
    out = json::parse(body.data(), body.data() + body.size());
  } catch (const json::exception& e) {
    error = e.what();
    return false;
  }
  return true;
}

}  // namespace bench
