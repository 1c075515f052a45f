// JSON parsing and writing (see json.hpp). The parser descends recursively, bounded by
// json::depth_max: fio's output nests five levels deep.
#include "json.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace bench {

const json& json::operator[](std::string_view key) const noexcept {
  static const json null_value;
  for (const auto& [k, v] : members_) {
    if (k == key) {
      return v;
    }
  }
  return null_value;
}

json& json::set(std::string key, json value) {
  if (kind_ == kind::null) {
    kind_ = kind::object;
  }
  for (auto& [k, v] : members_) {
    if (k == key) {
      v = std::move(value);
      return v;
    }
  }
  members_.emplace_back(std::move(key), std::move(value));
  return members_.back().second;
}

json& json::push(json value) {
  if (kind_ == kind::null) {
    kind_ = kind::array;
  }
  items_.push_back(std::move(value));
  return items_.back();
}

namespace {

void escape_to(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void newline(std::string& out, int indent, int level) {
  if (indent >= 0) {
    out += '\n';
    out.append(static_cast<std::size_t>(indent * level), ' ');
  }
}

}  // namespace

void json::dump_to(std::string& out, int indent, int level) const {
  switch (kind_) {
    case kind::null:
      out += "null";
      return;
    case kind::boolean:
      out += bool_ ? "true" : "false";
      return;
    case kind::number: {
      if (!std::isfinite(number_)) {
        out += "null";
        return;
      }
      char buf[32];
      if (number_ == std::floor(number_) && std::fabs(number_) < 1e15) {
        std::snprintf(buf, sizeof buf, "%.0f", number_);
      } else {
        std::snprintf(buf, sizeof buf, "%.6g", number_);
      }
      out += buf;
      return;
    }
    case kind::string:
      escape_to(out, string_);
      return;
    case kind::array:
      out += '[';
      for (std::size_t i = 0; i < items_.size(); ++i) {
        out += i == 0 ? "" : ",";
        newline(out, indent, level + 1);
        items_[i].dump_to(out, indent, level + 1);
      }
      if (!items_.empty()) {
        newline(out, indent, level);
      }
      out += ']';
      return;
    case kind::object:
      out += '{';
      for (std::size_t i = 0; i < members_.size(); ++i) {
        out += i == 0 ? "" : ",";
        newline(out, indent, level + 1);
        escape_to(out, members_[i].first);
        out += indent >= 0 ? ": " : ":";
        members_[i].second.dump_to(out, indent, level + 1);
      }
      if (!members_.empty()) {
        newline(out, indent, level);
      }
      out += '}';
      return;
  }
}

std::string json::dump(int indent) const {
  std::string out;
  dump_to(out, indent, 0);
  return out;
}

class json_parser {
 public:
  explicit json_parser(std::string_view t) : t_(t) {}

  bool value(json& out, int depth) {
    if (depth > json::depth_max) {
      return fail("nesting deeper than depth_max");
    }
    skip_space();
    if (i_ >= t_.size()) {
      return fail("unexpected end");
    }
    const char c = t_[i_];
    if (c == '{') {
      return object(out, depth);
    }
    if (c == '[') {
      return array(out, depth);
    }
    if (c == '"') {
      out = json(json::kind::string);
      return string(out.string_);
    }
    if (literal("true")) {
      out = json(true);
      return true;
    }
    if (literal("false")) {
      out = json(false);
      return true;
    }
    if (literal("null")) {
      out = json();
      return true;
    }
    return number(out);
  }

  std::string error;

 private:
  bool fail(const char* what) {
    error = std::string(what) + " at offset " + std::to_string(i_);
    return false;
  }
  void skip_space() {
    while (i_ < t_.size() &&
           (t_[i_] == ' ' || t_[i_] == '\n' || t_[i_] == '\t' || t_[i_] == '\r')) {
      ++i_;
    }
  }
  bool literal(std::string_view word) {
    if (t_.substr(i_, word.size()) == word) {
      i_ += word.size();
      return true;
    }
    return false;
  }
  bool expect(char c) {
    skip_space();
    if (i_ < t_.size() && t_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }

  bool object(json& out, int depth) {
    out = json(json::kind::object);
    ++i_;
    if (expect('}')) {
      return true;
    }
    for (;;) {
      skip_space();
      std::string key;
      if (i_ >= t_.size() || t_[i_] != '"' || !string(key)) {
        return fail("expected a member name");
      }
      if (!expect(':')) {
        return fail("expected ':'");
      }
      json v;
      if (!value(v, depth + 1)) {
        return false;
      }
      out.members_.emplace_back(std::move(key), std::move(v));
      if (expect('}')) {
        return true;
      }
      if (!expect(',')) {
        return fail("expected ',' or '}'");
      }
    }
  }

  bool array(json& out, int depth) {
    out = json(json::kind::array);
    ++i_;
    if (expect(']')) {
      return true;
    }
    for (;;) {
      json v;
      if (!value(v, depth + 1)) {
        return false;
      }
      out.items_.push_back(std::move(v));
      if (expect(']')) {
        return true;
      }
      if (!expect(',')) {
        return fail("expected ',' or ']'");
      }
    }
  }

  // REQUIRES: t_[i_] == '"'. Escapes \uXXXX above 0x7f are kept as '?' (fio emits none).
  bool string(std::string& out) {
    ++i_;
    while (i_ < t_.size()) {
      const char c = t_[i_++];
      if (c == '"') {
        return true;
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= t_.size()) {
        break;
      }
      const char e = t_[i_++];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'u': {
          if (i_ + 4 > t_.size()) {
            return fail("short \\u escape");
          }
          const unsigned long cp = std::strtoul(std::string(t_.substr(i_, 4)).c_str(), nullptr, 16);
          out += cp < 0x80 ? static_cast<char>(cp) : '?';
          i_ += 4;
          break;
        }
        default:
          out += e;
      }
    }
    return fail("unterminated string");
  }

  bool number(json& out) {
    const std::size_t start = i_;
    while (i_ < t_.size() &&
           (std::isdigit(static_cast<unsigned char>(t_[i_])) != 0 || t_[i_] == '-' ||
            t_[i_] == '+' || t_[i_] == '.' || t_[i_] == 'e' || t_[i_] == 'E')) {
      ++i_;
    }
    if (i_ == start) {
      return fail("unexpected character");
    }
    const std::string text(t_.substr(start, i_ - start));
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size()) {
      return fail("malformed number");
    }
    out = json(v);
    return true;
  }

  std::string_view t_;
  std::size_t i_ = 0;
};

bool json::parse(std::string_view text, json& out, std::string& error) {
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
  json_parser p(text.substr(start));
  if (!p.value(out, 0)) {
    error = p.error;
    return false;
  }
  return true;
}

}  // namespace bench
