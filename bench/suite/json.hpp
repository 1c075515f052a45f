// A small JSON value: parsed from fio's --output-format=json and written as the suite's
// results file. Numbers are doubles (fio's counters fit in 53 bits).
//
// Thread affinity: none.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bench {

class json {
 public:
  enum class kind { null, boolean, number, string, array, object };

  json() = default;
  json(bool b) : kind_(kind::boolean), bool_(b) {}                     // NOLINT: implicit by design
  json(double n) : kind_(kind::number), number_(n) {}                  // NOLINT
  json(int n) : json(static_cast<double>(n)) {}                        // NOLINT
  json(std::int64_t n) : json(static_cast<double>(n)) {}               // NOLINT
  json(std::uint64_t n) : json(static_cast<double>(n)) {}              // NOLINT
  json(std::string s) : kind_(kind::string), string_(std::move(s)) {}  // NOLINT
  json(const char* s) : json(std::string(s)) {}                        // NOLINT
  static json array() { return json(kind::array); }
  static json object() { return json(kind::object); }

  [[nodiscard]] kind type() const noexcept { return kind_; }
  [[nodiscard]] bool is_null() const noexcept { return kind_ == kind::null; }
  [[nodiscard]] double number_or(double fallback) const noexcept {
    return kind_ == kind::number ? number_ : fallback;
  }
  [[nodiscard]] const std::string& str() const noexcept { return string_; }
  [[nodiscard]] const std::vector<json>& items() const noexcept { return items_; }
  [[nodiscard]] const std::vector<std::pair<std::string, json>>& members() const noexcept {
    return members_;
  }

  // The member called `key`, or a null value.
  [[nodiscard]] const json& operator[](std::string_view key) const noexcept;
  // Sets (or replaces) a member; the value becomes an object if it was null.
  json& set(std::string key, json value);
  // Appends to an array; the value becomes an array if it was null.
  json& push(json value);

  // Compact when indent < 0, else pretty with `indent` spaces per level.
  [[nodiscard]] std::string dump(int indent = 2) const;

  // Parses `text`; false with `error` set on malformed input or nesting deeper than
  // depth_max. Leading non-JSON lines (fio prints warnings before its JSON) are skipped, and
  // so is anything after the first value.
  static bool parse(std::string_view text, json& out, std::string& error);

  static constexpr int depth_max = 64;

 private:
  explicit json(kind k) : kind_(k) {}
  friend class json_parser;
  void dump_to(std::string& out, int indent, int level) const;

  kind kind_ = kind::null;
  bool bool_ = false;
  double number_ = 0;
  std::string string_;
  std::vector<json> items_;
  std::vector<std::pair<std::string, json>> members_;
};

}  // namespace bench
