// Option files (see include/eloqstore/options_file.hpp for the format).
//
// inih does the INI syntax; this file feeds it lines through its stream interface so that it
// knows the number of every line it hands over (inih's handler is not told the line), strips
// leading whitespace (which turns off inih's continuation lines, a source of silent surprises),
// notices section headers even when the section has no keys, and rejects lines too long for
// inih's buffer instead of letting it split them. Values are parsed here, strictly.
//
// Thread affinity: none; all state lives in one load_state per call.
#include <eloqstore/options_file.hpp>

#include <ini.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

namespace eloqstore {
namespace {

constexpr std::size_t option_file_bytes_max = std::size_t{1} << 20;
constexpr std::size_t read_chunk_bytes = 64 * 1024;

enum class section { run, permanent };

[[nodiscard]] std::string_view section_name(section s) noexcept {
  return s == section::run ? "run" : "permanent";
}

[[nodiscard]] std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

[[nodiscard]] bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    const char x = (a[i] >= 'A' && a[i] <= 'Z') ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    if (x != b[i]) {
      return false;
    }
  }
  return true;
}

[[nodiscard]] std::string quoted(std::string_view v) {
  std::string q = "'";
  q.append(v).append("'");
  return q;
}

// ---- value parsers: return an empty string on success, else why the value is wrong --------

// Multiplier of a size suffix (KB, MB, GB, TB; case-insensitive), 0 when unknown.
[[nodiscard]] std::uint64_t unit_multiplier(std::string_view unit) noexcept {
  constexpr std::array<std::pair<std::string_view, std::uint64_t>, 4> units{{
      {"kb", options::kib},
      {"mb", options::mib},
      {"gb", options::gib},
      {"tb", options::tib},
  }};
  for (const auto& [name, mul] : units) {
    if (iequals(unit, name)) {
      return mul;
    }
  }
  return 0;
}

// Decimal digits, then (with `units`) optional blanks and a size suffix.
[[nodiscard]] std::string parse_number(std::string_view v, bool units, std::uint64_t& out) {
  const auto digits_end =
      std::find_if(v.begin(), v.end(), [](char c) { return c < '0' || c > '9'; });
  const std::string_view digits = v.substr(0, static_cast<std::size_t>(digits_end - v.begin()));
  std::string_view rest = v.substr(digits.size());
  if (digits.empty()) {
    return quoted(v) + " is not a decimal number";
  }
  std::uint64_t n = 0;
  const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec == std::errc::result_out_of_range) {
    return quoted(v) + " is out of range";
  }
  if (ec != std::errc() || ptr != digits.data() + digits.size()) {
    return quoted(v) + " is not a decimal number";
  }
  std::uint64_t mul = 1;
  if (units) {
    rest.remove_prefix(std::min(rest.find_first_not_of(" \t"), rest.size()));
    if (!rest.empty()) {
      mul = unit_multiplier(rest);
      if (mul == 0) {
        return quoted(v) + " has an unknown unit (use KB, MB, GB or TB)";
      }
    }
  } else if (!rest.empty()) {
    return quoted(v) + " is not a decimal number";
  }
  if (n > std::numeric_limits<std::uint64_t>::max() / mul) {
    return quoted(v) + " is out of range";
  }
  out = n * mul;
  return {};
}

template <typename T>
[[nodiscard]] std::string store_number(T& dst, std::string_view v, bool units) {
  static_assert(std::is_unsigned_v<T> && !std::is_same_v<T, bool>);
  std::uint64_t n = 0;
  std::string why = parse_number(v, units, n);
  if (!why.empty()) {
    return why;
  }
  if (n > std::numeric_limits<T>::max()) {
    return quoted(v) + " is out of range (max " +
           std::to_string(std::uint64_t{std::numeric_limits<T>::max()}) + ")";
  }
  dst = static_cast<T>(n);
  return {};
}

[[nodiscard]] std::optional<bool> parse_bool(std::string_view v) noexcept {
  for (const std::string_view t : {"true", "yes", "on", "1"}) {
    if (iequals(v, t)) {
      return true;
    }
  }
  for (const std::string_view f : {"false", "no", "off", "0"}) {
    if (iequals(v, f)) {
      return false;
    }
  }
  return std::nullopt;
}

// ---- the state of one load, shared by the line reader and the entry handler ---------------

struct key_spec;

struct load_state {
  options opts;
  std::string_view rest;  // text not yet handed to inih
  int line = 0;           // number of the line inih is working on (1-based)
  bool seen_run = false;
  bool seen_permanent = false;
  std::optional<std::uint64_t> data_file_size;
  int data_file_size_line = 0;
  std::array<int, 64> key_line{};  // line where each key_specs entry was set; 0 = not yet
  int error_line = 0;              // line of the first recorded error; 0 = none
  std::string error_message;
};

void fail(load_state& s, int line, std::string message) {
  if (s.error_line != 0) {
    return;
  }
  s.error_line = line;
  s.error_message = "line " + std::to_string(line) + ": " + message;
}

using apply_fn = std::string (*)(load_state&, std::string_view);

template <auto Member>
std::string apply_uint(load_state& s, std::string_view v) {
  return store_number(s.opts.*Member, v, false);
}

template <auto Member>
std::string apply_size(load_state& s, std::string_view v) {
  return store_number(s.opts.*Member, v, true);
}

template <auto Member>
std::string apply_bool(load_state& s, std::string_view v) {
  const std::optional<bool> b = parse_bool(v);
  if (!b) {
    return quoted(v) + " is not a boolean (use true/false, yes/no, on/off or 1/0)";
  }
  s.opts.*Member = *b;
  return {};
}

template <auto Member>
std::string apply_string(load_state& s, std::string_view v) {
  s.opts.*Member = std::string(v);
  return {};
}

std::string apply_store_path(load_state& s, std::string_view v) {
  std::vector<std::string> paths;
  std::size_t begin = 0;
  while (begin <= v.size()) {
    const std::size_t end = std::min(v.find_first_of(": ", begin), v.size());
    if (end > begin) {
      paths.emplace_back(v.substr(begin, end - begin));
    }
    begin = end + 1;
  }
  s.opts.store_path = std::move(paths);
  return {};
}

std::string apply_data_file_size(load_state& s, std::string_view v) {
  std::uint64_t bytes = 0;
  std::string why = parse_number(v, true, bytes);
  if (why.empty()) {
    s.data_file_size = bytes;
    s.data_file_size_line = s.line;
  }
  return why;
}

// ---- value printers: the text each apply_* reads back to the same value -------------------

using print_fn = std::string (*)(const options&);

template <auto Member>
std::string print_number(const options& o) {
  return std::to_string(std::uint64_t{o.*Member});
}

template <auto Member>
std::string print_bool(const options& o) {
  return o.*Member ? "true" : "false";
}

template <auto Member>
std::string print_string(const options& o) {
  return o.*Member;
}

std::string print_store_path(const options& o) {
  std::string out;
  for (std::size_t i = 0; i < o.store_path.size(); ++i) {
    out.append(i == 0 ? "" : ":").append(o.store_path[i]);
  }
  return out;
}

std::string print_data_file_size(const options& o) {
  return std::to_string(o.data_file_size());
}

struct key_spec {
  std::string_view name;
  section where;
  apply_fn apply;
  print_fn print;
};

constexpr section run = section::run;
constexpr section permanent = section::permanent;

constexpr std::array key_specs{
    key_spec{"num_threads", run, apply_uint<&options::num_threads>,
             print_number<&options::num_threads>},
    key_spec{"data_page_restart_interval", run, apply_uint<&options::data_page_restart_interval>,
             print_number<&options::data_page_restart_interval>},
    key_spec{"index_page_restart_interval", run, apply_uint<&options::index_page_restart_interval>,
             print_number<&options::index_page_restart_interval>},
    key_spec{"init_page_count", run, apply_uint<&options::init_page_count>,
             print_number<&options::init_page_count>},
    key_spec{"skip_verify_checksum", run, apply_bool<&options::skip_verify_checksum>,
             print_bool<&options::skip_verify_checksum>},
    key_spec{"buffer_pool_size", run, apply_size<&options::buffer_pool_size>,
             print_number<&options::buffer_pool_size>},
    key_spec{"data_page_cache_size", run, apply_size<&options::data_page_cache_size>,
             print_number<&options::data_page_cache_size>},
    key_spec{"root_meta_cache_size", run, apply_size<&options::root_meta_cache_size>,
             print_number<&options::root_meta_cache_size>},
    key_spec{"manifest_limit", run, apply_uint<&options::manifest_limit>,
             print_number<&options::manifest_limit>},
    key_spec{"fd_limit", run, apply_uint<&options::fd_limit>, print_number<&options::fd_limit>},
    key_spec{"io_queue_size", run, apply_uint<&options::io_queue_size>,
             print_number<&options::io_queue_size>},
    key_spec{"max_inflight_write", run, apply_uint<&options::max_inflight_write>,
             print_number<&options::max_inflight_write>},
    key_spec{"max_write_batch_pages", run, apply_uint<&options::max_write_batch_pages>,
             print_number<&options::max_write_batch_pages>},
    key_spec{"buf_ring_size", run, apply_uint<&options::buf_ring_size>,
             print_number<&options::buf_ring_size>},
    key_spec{"coroutine_stack_size", run, apply_uint<&options::coroutine_stack_size>,
             print_number<&options::coroutine_stack_size>},
    key_spec{"num_retained_archives", run, apply_uint<&options::num_retained_archives>,
             print_number<&options::num_retained_archives>},
    key_spec{"archive_interval_secs", run, apply_uint<&options::archive_interval_secs>,
             print_number<&options::archive_interval_secs>},
    key_spec{"max_archive_tasks", run, apply_uint<&options::max_archive_tasks>,
             print_number<&options::max_archive_tasks>},
    key_spec{"file_amplify_factor", run, apply_uint<&options::file_amplify_factor>,
             print_number<&options::file_amplify_factor>},
    key_spec{"local_space_limit", run, apply_uint<&options::local_space_limit>,
             print_number<&options::local_space_limit>},
    key_spec{"reserve_space_ratio", run, apply_uint<&options::reserve_space_ratio>,
             print_number<&options::reserve_space_ratio>},
    key_spec{"max_upload_batch", run, apply_uint<&options::max_upload_batch>,
             print_number<&options::max_upload_batch>},
    key_spec{"max_cloud_concurrency", run, apply_uint<&options::max_cloud_concurrency>,
             print_number<&options::max_cloud_concurrency>},
    key_spec{"cloud_request_threads", run, apply_uint<&options::cloud_request_threads>,
             print_number<&options::cloud_request_threads>},
    key_spec{"direct_io_buffer_pool_size", run, apply_uint<&options::direct_io_buffer_pool_size>,
             print_number<&options::direct_io_buffer_pool_size>},
    key_spec{"allow_reuse_local_caches", run, apply_bool<&options::allow_reuse_local_caches>,
             print_bool<&options::allow_reuse_local_caches>},
    key_spec{"cloud_provider", run, apply_string<&options::cloud_provider>,
             print_string<&options::cloud_provider>},
    key_spec{"cloud_endpoint", run, apply_string<&options::cloud_endpoint>,
             print_string<&options::cloud_endpoint>},
    key_spec{"cloud_region", run, apply_string<&options::cloud_region>,
             print_string<&options::cloud_region>},
    key_spec{"cloud_access_key", run, apply_string<&options::cloud_access_key>,
             print_string<&options::cloud_access_key>},
    key_spec{"cloud_secret_key", run, apply_string<&options::cloud_secret_key>,
             print_string<&options::cloud_secret_key>},
    key_spec{"cloud_verify_ssl", run, apply_bool<&options::cloud_verify_ssl>,
             print_bool<&options::cloud_verify_ssl>},
    key_spec{"prewarm_cloud_cache", run, apply_bool<&options::prewarm_cloud_cache>,
             print_bool<&options::prewarm_cloud_cache>},
    key_spec{"prewarm_task_count", run, apply_uint<&options::prewarm_task_count>,
             print_number<&options::prewarm_task_count>},
    key_spec{"mapping_arena_size", run, apply_uint<&options::mapping_arena_size>,
             print_number<&options::mapping_arena_size>},
    key_spec{"store_path", permanent, apply_store_path, print_store_path},
    key_spec{"cloud_store_path", permanent, apply_string<&options::cloud_store_path>,
             print_string<&options::cloud_store_path>},
    key_spec{"data_page_size", permanent, apply_size<&options::data_page_size>,
             print_number<&options::data_page_size>},
    key_spec{"data_file_size", permanent, apply_data_file_size, print_data_file_size},
    key_spec{"overflow_pointers", permanent, apply_uint<&options::overflow_pointers>,
             print_number<&options::overflow_pointers>},
    key_spec{"data_append_mode", permanent, apply_bool<&options::data_append_mode>,
             print_bool<&options::data_append_mode>},
};
static_assert(key_specs.size() <= std::tuple_size_v<decltype(load_state::key_line)>,
              "load_state::key_line needs one slot per key");

// Options that exist but are deliberately not read from files, with what to do instead.
constexpr std::array<std::pair<std::string_view, std::string_view>, 4> not_file_keys{{
    {"enable_compression", "cannot be set from an option file"},
    {"partition_filter", "cannot be set from an option file"},
    {"comparator", "is a compile-time policy, not an option"},
    {"pages_per_file_shift", "cannot be set directly; set data_file_size in [permanent]"},
}};

[[nodiscard]] std::optional<section> parse_section(std::string_view name) noexcept {
  if (iequals(name, "run")) {
    return section::run;
  }
  if (iequals(name, "permanent")) {
    return section::permanent;
  }
  return std::nullopt;
}

void apply_entry(load_state& s, std::string_view sec_text, std::string_view key_text,
                 std::string_view value) {
  const std::string key = ascii_lower(key_text);
  if (sec_text.empty()) {
    fail(s, s.line, "key " + quoted(key) + " is outside any section");
    return;
  }
  const std::optional<section> sec = parse_section(sec_text);
  if (!sec) {
    fail(s, s.line, "unknown section [" + std::string(sec_text) + "]");
    return;
  }
  const auto spec = std::find_if(key_specs.begin(), key_specs.end(),
                                 [&](const key_spec& k) { return k.name == key; });
  if (spec == key_specs.end()) {
    const auto nf = std::find_if(not_file_keys.begin(), not_file_keys.end(),
                                 [&](const auto& p) { return p.first == key; });
    if (nf != not_file_keys.end()) {
      fail(s, s.line, "key " + quoted(key) + " " + std::string(nf->second));
    } else {
      fail(s, s.line,
           "unknown key " + quoted(key) + " in [" + std::string(section_name(*sec)) + "]");
    }
    return;
  }
  if (spec->where != *sec) {
    fail(s, s.line,
         "key " + quoted(key) + " belongs in [" + std::string(section_name(spec->where)) + "]");
    return;
  }
  int& seen_at = s.key_line[static_cast<std::size_t>(spec - key_specs.begin())];
  if (seen_at != 0) {
    fail(s, s.line, "key " + quoted(key) + " is already set on line " + std::to_string(seen_at));
    return;
  }
  seen_at = s.line;
  const std::string why = spec->apply(s, value);
  if (!why.empty()) {
    fail(s, s.line, "key " + quoted(key) + ": " + why);
  }
}

// inih entry handler. Returns 0 (an error line for inih) when the entry was rejected.
int on_entry(void* user, const char* sec, const char* name, const char* value) {
  auto& s = *static_cast<load_state*>(user);
  if (s.error_line != 0) {
    return 1;  // one error is reported; the rest of the text is only syntax-checked
  }
  apply_entry(s, sec != nullptr ? sec : "", name != nullptr ? name : "",
              value != nullptr ? value : "");
  return s.error_line == 0 ? 1 : 0;
}

// Records the section a header line opens, or an error for an unknown one. inih itself reports
// a header without its ']'.
void note_section_header(load_state& s, std::string_view line) {
  if (line.empty() || line.front() != '[') {
    return;
  }
  const std::size_t close = line.find(']');
  if (close == std::string_view::npos) {
    return;
  }
  const std::string_view name = line.substr(1, close - 1);
  const std::optional<section> sec = parse_section(name);
  if (!sec) {
    fail(s, s.line, "unknown section [" + std::string(name) + "]");
  } else if (*sec == section::run) {
    s.seen_run = true;
  } else {
    s.seen_permanent = true;
  }
}

// inih reader (fgets-like): hands over one line without leading blanks or its newline.
char* read_line(char* buf, int size, void* stream) {
  auto& s = *static_cast<load_state*>(stream);
  if (s.rest.empty() || size < 2) {
    return nullptr;
  }
  const std::size_t nl = std::min(s.rest.find('\n'), s.rest.size());
  std::string_view line = s.rest.substr(0, nl);
  s.rest.remove_prefix(std::min(nl + 1, s.rest.size()));
  ++s.line;
  constexpr std::string_view bom = "\xEF\xBB\xBF";
  if (s.line == 1 && line.starts_with(bom)) {
    line.remove_prefix(bom.size());
  }
  line.remove_prefix(std::min(line.find_first_not_of(" \t"), line.size()));
  const auto capacity = static_cast<std::size_t>(size) - 1;
  if (line.size() > capacity) {
    fail(s, s.line, "line is longer than " + std::to_string(capacity) + " bytes");
    s.rest = {};
    return nullptr;
  }
  note_section_header(s, line);
  std::copy(line.begin(), line.end(), buf);
  buf[line.size()] = '\0';
  return buf;
}

// data_file_size names bytes; the store keeps a page-count shift. Runs after every key is
// read so the final data_page_size is used. An invalid page size is left to validate().
void apply_data_file_size_shift(load_state& s) {
  if (!s.data_file_size) {
    return;
  }
  const std::uint64_t page = s.opts.data_page_size;
  if (!detail::is_power_of_two(page) || page < options::data_page_size_min ||
      page > options::data_page_size_max) {
    return;
  }
  const std::uint64_t pages = *s.data_file_size / page;
  const int shift = pages == 0 ? -1 : static_cast<int>(std::bit_width(pages)) - 1;
  if (shift < static_cast<int>(options::pages_per_file_shift_min) ||
      shift > static_cast<int>(options::pages_per_file_shift_max)) {
    fail(s, s.data_file_size_line,
         "key 'data_file_size': must hold 2^1 to 2^32 pages of data_page_size " +
             std::to_string(page) + " (got " + std::to_string(*s.data_file_size) + " bytes)");
    return;
  }
  s.opts.pages_per_file_shift = static_cast<std::uint8_t>(shift);
}

// The first error by line: one of ours, or an inih syntax error (`parse_result` > 0).
[[nodiscard]] validation_result first_error(const load_state& s, int parse_result) {
  if (parse_result < 0) {
    return {error::out_of_mem,
            "option text: the INI parser failed (code " + std::to_string(parse_result) + ")"};
  }
  if (parse_result > 0 && (s.error_line == 0 || parse_result < s.error_line)) {
    return {error::invalid_args, "line " + std::to_string(parse_result) +
                                     ": syntax error (expected [section], key = value "
                                     "or a comment)"};
  }
  if (s.error_line != 0) {
    return {error::invalid_args, s.error_message};
  }
  return {};
}

[[nodiscard]] validation_result check_sections(const load_state& s) {
  if (s.seen_run && s.seen_permanent) {
    return {};
  }
  std::string missing = !s.seen_run ? "[run]" : "";
  if (!s.seen_permanent) {
    missing += missing.empty() ? "[permanent]" : " and [permanent]";
  }
  return {error::invalid_args,
          "option file needs both [run] and [permanent] sections; missing " + missing};
}

struct file_closer {
  void operator()(std::FILE* f) const noexcept { static_cast<void>(std::fclose(f)); }
};

[[nodiscard]] validation_result errno_result(int err, const std::string& what) {
  return {error_from_errno(err), what + ": " + std::generic_category().message(err)};
}

[[nodiscard]] validation_result read_small_file(const std::string& path, std::string& text) {
  errno = 0;
  const std::unique_ptr<std::FILE, file_closer> f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    return errno_result(errno, "cannot open option file '" + path + "'");
  }
  std::string buf(read_chunk_bytes, '\0');
  // Bounded: each round adds bytes or ends, and at most option_file_bytes_max are kept.
  while (true) {
    const std::size_t got = std::fread(buf.data(), 1, buf.size(), f.get());
    text.append(buf.data(), got);
    if (text.size() > option_file_bytes_max) {
      return {error::invalid_args, "option file '" + path + "' is larger than 1 MiB"};
    }
    if (got < buf.size()) {
      break;
    }
  }
  if (std::ferror(f.get()) != 0) {
    return errno_result(errno != 0 ? errno : EIO, "cannot read option file '" + path + "'");
  }
  return {};
}

}  // namespace

validation_result load_options_string(std::string_view ini_text, options& out) {
  if (ini_text.find('\0') != std::string_view::npos) {
    return {error::invalid_args, "option text contains a NUL byte"};
  }
  load_state s;
  s.opts = out;
  s.rest = ini_text;
  const int parsed = ini_parse_stream(read_line, &s, on_entry, &s);
  validation_result r = first_error(s, parsed);
  if (r.ok()) {
    r = check_sections(s);
  }
  if (r.ok()) {
    apply_data_file_size_shift(s);
    r = first_error(s, 0);
  }
  if (r.ok()) {
    r = s.opts.validate();
  }
  if (r.ok()) {
    out = std::move(s.opts);
  }
  return r;
}

validation_result set_option(std::string_view key, std::string_view value, options& out) {
  const std::string name = ascii_lower(key);
  const auto spec = std::find_if(key_specs.begin(), key_specs.end(),
                                 [&](const key_spec& k) { return k.name == name; });
  if (spec == key_specs.end()) {
    return {error::invalid_args, "unknown option " + quoted(name)};
  }
  load_state s;
  s.opts = out;
  const std::string text = "[" + std::string(section_name(spec->where)) + "]\n" +
                           std::string(name) + " = " + std::string(value) + "\n";
  validation_result r;
  if (value.find_first_of(std::string_view("\0\n\r", 3)) != std::string_view::npos) {
    r = {error::invalid_args, "option " + quoted(name) + ": the value holds a line break or NUL"};
  } else {
    s.rest = text;
    s.seen_run = s.seen_permanent = true;  // (one section is enough here)
    r = first_error(s, ini_parse_stream(read_line, &s, on_entry, &s));
  }
  if (r.ok()) {
    apply_data_file_size_shift(s);
    r = first_error(s, 0);
  }
  if (!r.ok()) {
    // "line 2: key 'x': ..." names a line the caller never wrote.
    if (const std::size_t at = r.message.find(": ");
        r.message.starts_with("line ") && at != std::string::npos) {
      r.message = "option " + r.message.substr(at + 2);
    }
    return r;
  }
  out = std::move(s.opts);
  return r;
}

namespace {

// One "key = value" line per option of the section, in key_specs order.
[[nodiscard]] std::vector<std::string> option_lines(const options& o, section where) {
  std::vector<std::string> lines;
  for (const key_spec& k : key_specs) {
    if (k.where == where) {
      lines.push_back(std::string(k.name) + " = " + k.print(o));
    }
  }
  return lines;
}

[[nodiscard]] std::string option_text(const options& o) {
  std::string text;
  for (const section where : {section::run, section::permanent}) {
    text.append("[").append(section_name(where)).append("]\n");
    for (const std::string& line : option_lines(o, where)) {
      text.append(line).append("\n");
    }
  }
  return text;
}

}  // namespace

validation_result save_options_string(const options& o, std::string& out) {
  if (validation_result v = o.validate(); !v.ok()) {
    v.message = "the options are not valid: " + v.message;
    return v;
  }
  for (const key_spec& k : key_specs) {
    if (k.print(o).find_first_of(std::string_view("\0\n\r", 3)) != std::string::npos) {
      return {error::invalid_args, "option " + quoted(k.name) +
                                       ": the value holds a line break or NUL, which an option "
                                       "file cannot hold"};
    }
  }
  const std::string text = option_text(o);
  options back;
  validation_result r = load_options_string(text, back);
  if (!r.ok()) {
    // Name the key of the line the loader refused ("line N: ...").
    std::string key;
    if (int n = 0; std::sscanf(r.message.c_str(), "line %d:", &n) == 1 && n > 0) {
      std::string_view rest = text;
      for (int i = 1; i < n && !rest.empty(); ++i) {
        rest.remove_prefix(std::min(rest.find('\n') + 1, rest.size()));
      }
      key = " (key " + quoted(rest.substr(0, rest.find(" = "))) + ")";
    }
    r.message = "the options do not make a valid option file: " + r.message + key;
    return r;
  }
  // A value reads back differently when the INI syntax claims part of it (leading or
  // trailing blanks, " ;" or " #", a store path holding ':' or ' ').
  for (const section where : {section::run, section::permanent}) {
    const std::vector<std::string> written = option_lines(o, where);
    const std::vector<std::string> read = option_lines(back, where);
    for (std::size_t i = 0; i < written.size(); ++i) {
      if (written[i] != read[i]) {
        return {error::invalid_args, "an option file cannot hold this value as it is: " +
                                         quoted(written[i]) + " reads back as " + quoted(read[i])};
      }
    }
  }
  out = text;
  return r;
}

validation_result load_options_file(const std::string& path, options& out) {
  std::string text;
  validation_result r = read_small_file(path, text);
  if (r.ok()) {
    r = load_options_string(text, out);
    if (!r.ok()) {
      r.message = path + ": " + r.message;
    }
  }
  return r;
}

}  // namespace eloqstore
