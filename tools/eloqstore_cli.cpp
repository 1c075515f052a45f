// eloqstore: the command-line tool for a store on local files (default traits). It opens the
// store read-only unless the command writes (put, load), so it works beside nothing but
// other readers: a store another process holds for writing is refused (store_locked).
//
//   eloqstore -p DIR [-p DIR ...] | -c OPTION_FILE   COMMAND ...
//
//   stat     [-t TABLE]          per partition: entries, live bytes (keys + values), data
//                                files, bytes on disk, pages on disk, amplification
//   verify   [-t TABLE]          every page's checksum and every partition's tree; exit 1 if
//                                anything is wrong
//   dump     [-t TABLE] [-o F]   every live record as text (the format below)
//   load     -i F [--batch N]    records from a dump; the whole input is checked first, so a
//                                bad input writes nothing
//   get      TABLE PART KEY      the value (exit 1 if absent)
//   put      TABLE PART KEY VALUE [--ts N] [--expire MS]
//   scan     TABLE PART [--begin K] [--end K] [--limit N]
//   manifest TABLE PART          the records of the partition's manifest
//
// Keys and values on the command line and in get/scan output are text unless --hex is given.
//
// Dump format, version 1 (UTF-8 free: everything but the header is ASCII hex and decimals):
//
//   eloqstore-dump 1
//   <table> TAB <partition> TAB <key hex> TAB <value hex> TAB <timestamp> TAB <expire_ts>
//   ...
//   end <number of records>
//
// Records of one partition are contiguous and in ascending key order (bytewise), partitions
// in ascending (table, partition) order; hex digits are lower case; expire_ts 0 means never.
// dump writes exactly this, so `load` then `dump` reproduces a dump byte for byte.
//
// Exit codes: 0 done; 1 verify found a problem, get found nothing; 2 bad usage or input, or
// the store could not be opened or failed a request.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include <eloqstore/default_store.hpp>
#include <eloqstore/detail/io/file_names.hpp>
#include <eloqstore/detail/manifest/record.hpp>
#include <eloqstore/detail/manifest/replay.hpp>
#include <eloqstore/options_file.hpp>

namespace {

namespace es = eloqstore;

constexpr int exit_ok = 0;
constexpr int exit_found_problem = 1;
constexpr int exit_failed = 2;

constexpr std::string_view dump_header = "eloqstore-dump 1";

// ---- text helpers ----------------------------------------------------------------------------

std::string to_hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) {
    return std::nullopt;
  }
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') {
      return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
      return c - 'a' + 10;
    }
    return -1;  // upper case is not canonical: refused, so load then dump is exact
  };
  std::string out(hex.size() / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    out[i] = static_cast<char>(hi << 4 | lo);
  }
  return out;
}

std::optional<std::uint64_t> parse_u64(std::string_view s) {
  if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) {
    return std::nullopt;
  }
  std::uint64_t v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) {
      return std::nullopt;
    }
    v = v * 10 + d;
  }
  return v;
}

std::vector<std::string_view> split(std::string_view line, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t at = line.find(sep, start);
    parts.push_back(line.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) {
      return parts;
    }
    start = at + 1;
  }
}

// A progress line on stderr for long runs (only when stderr is a terminal, after a second).
class progress {
 public:
  explicit progress(std::string what)
      : what_(std::move(what)),
        tty_(::isatty(STDERR_FILENO) == 1),
        start_(std::chrono::steady_clock::now()) {}
  progress(const progress&) = delete;
  progress& operator=(const progress&) = delete;
  ~progress() {
    if (shown_) {
      std::fputc('\n', stderr);
    }
  }
  void update(std::uint64_t records, std::uint64_t bytes, std::uint64_t total_bytes = 0) {
    if (!tty_) {
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - start_ < std::chrono::seconds(1) || now - last_ < std::chrono::milliseconds(200)) {
      return;
    }
    last_ = now;
    shown_ = true;
    if (total_bytes > 0) {
      constexpr int width = 30;
      const double done =
          std::min(1.0, static_cast<double>(bytes) / static_cast<double>(total_bytes));
      const int filled = static_cast<int>(done * width);
      std::fprintf(stderr, "\r%s [%-*s] %3d%% %llu records", what_.c_str(), width,
                   std::string(static_cast<std::size_t>(filled), '#').c_str(),
                   static_cast<int>(done * 100), static_cast<unsigned long long>(records));
    } else {
      std::fprintf(stderr, "\r%s: %llu records, %.1f MB", what_.c_str(),
                   static_cast<unsigned long long>(records), static_cast<double>(bytes) / 1e6);
    }
    std::fflush(stderr);
  }

 private:
  std::string what_;
  bool tty_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_{};
};

// ---- the store -------------------------------------------------------------------------------

struct settings {
  std::vector<std::string> paths;
  std::string config;
  std::size_t threads = 1;
  bool hex = false;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "eloqstore: %s\n", message.c_str());
  return exit_failed;
}

int fail(std::string_view what, es::error e) {
  return fail(std::string(what) + ": " + std::string(es::error_message(e)));
}

// The options of the command line: an option file, then the paths and threads given.
std::optional<es::options> make_options(const settings& s, bool writes, std::string& why) {
  es::options o;
  if (!s.config.empty()) {
    if (const auto r = es::load_options_file(s.config, o); !r.ok()) {
      why = r.message;
      return std::nullopt;
    }
  }
  if (!s.paths.empty()) {
    o.store_path = s.paths;
  }
  if (o.store_path.empty()) {
    why = "no store: give --path DIR or --config FILE";
    return std::nullopt;
  }
  if (!o.cloud_store_path.empty()) {
    why = "cloud mode is not supported by this tool (cloud_store_path is set)";
    return std::nullopt;
  }
  o.num_threads = static_cast<std::uint16_t>(s.threads);
  o.read_only = !writes;
  return o;
}

// Opens the store (read-only unless `writes`); nullptr after printing why.
std::unique_ptr<es::default_store> open_store(const settings& s, bool writes) {
  std::string why;
  const std::optional<es::options> o = make_options(s, writes, why);
  if (!o) {
    fail(why);
    return nullptr;
  }
  if (!writes) {
    for (const std::string& p : o->store_path) {
      if (!std::filesystem::is_directory(p)) {
        fail("no store at " + p);
        return nullptr;
      }
    }
  }
  auto store = std::make_unique<es::default_store>(*o);
  if (const es::error e = store->start(); e != es::error::ok) {
    fail("cannot open the store: " + std::string(es::error_message(e)) +
         (store->last_message().empty() ? "" : " (" + store->last_message() + ")"));
    return nullptr;
  }
  return store;
}

// The partitions of the store (only `table` when not empty), sorted.
std::optional<std::vector<es::table_ident>> partitions(es::default_store& store,
                                                       const std::string& table) {
  std::vector<es::table_ident> parts;
  if (const es::error e = store.list_partitions(parts); e != es::error::ok) {
    fail("listing partitions", e);
    return std::nullopt;
  }
  std::erase_if(parts, [&](const es::table_ident& t) { return !table.empty() && t.name != table; });
  std::sort(parts.begin(), parts.end(), [](const es::table_ident& a, const es::table_ident& b) {
    return a.name != b.name ? a.name < b.name : a.partition < b.partition;
  });
  return parts;
}

// Walks the live records of a partition in pages; f(entry) for each. The first error.
template <typename F>
es::error for_each_record(es::default_store& store, const es::table_ident& t, F&& f) {
  std::string begin;
  bool inclusive = true;
  for (;;) {
    es::scan_request req;
    req.set_args(t, begin, {}, inclusive);
    req.set_pagination(4096, 8u << 20);
    const es::error e = store.exec_sync(req);
    if (e == es::error::not_found) {
      return es::error::ok;  // no manifest: empty
    }
    if (e != es::error::ok) {
      return e;
    }
    for (const es::kv_entry& kv : req.entries()) {
      f(kv);
    }
    if (!req.has_remaining() || req.entries().empty()) {
      return es::error::ok;
    }
    begin = req.entries().back().key;
    inclusive = false;
  }
}

// The directory of a partition: the store path its name hashes to.
std::filesystem::path partition_dir(const std::vector<std::string>& paths,
                                    const es::table_ident& t) {
  return std::filesystem::path(paths[t.disk_index(paths.size())]) / t.to_string();
}

// The store opened read-only and its partitions (only `table`'s when not empty), sorted; a
// null store after printing why.
std::pair<std::unique_ptr<es::default_store>, std::vector<es::table_ident>> open_read_only(
    const settings& s, const std::string& table) {
  auto store = open_store(s, false);
  if (!store) {
    return {};
  }
  auto parts = partitions(*store, table);
  if (!parts) {
    return {};
  }
  return {std::move(store), std::move(*parts)};
}

// ---- commands --------------------------------------------------------------------------------

int cmd_stat(const settings& s, const std::string& table) {
  auto [store, parts] = open_read_only(s, table);
  if (!store) {
    return exit_failed;
  }
  const std::size_t page = store->opts().data_page_size;
  std::printf("%-24s %12s %14s %6s %14s %10s %8s\n", "partition", "entries", "live_bytes", "files",
              "disk_bytes", "pages", "amplif");
  std::uint64_t total_entries = 0;
  std::uint64_t total_live = 0;
  std::uint64_t total_files = 0;
  std::uint64_t total_disk = 0;
  const auto row = [&](const std::string& name, std::uint64_t entries, std::uint64_t live,
                       std::uint64_t files, std::uint64_t disk) {
    char amp[32] = "-";
    if (live > 0) {
      std::snprintf(amp, sizeof amp, "%.2f", static_cast<double>(disk) / static_cast<double>(live));
    }
    std::printf("%-24s %12llu %14llu %6llu %14llu %10llu %8s\n", name.c_str(),
                static_cast<unsigned long long>(entries), static_cast<unsigned long long>(live),
                static_cast<unsigned long long>(files), static_cast<unsigned long long>(disk),
                static_cast<unsigned long long>(disk / page), amp);
  };
  for (const es::table_ident& t : parts) {
    std::uint64_t entries = 0;
    std::uint64_t live = 0;
    if (const es::error e = for_each_record(*store, t,
                                            [&](const es::kv_entry& kv) {
                                              ++entries;
                                              live += kv.key.size() + kv.value.size();
                                            });
        e != es::error::ok) {
      return fail("scanning " + t.to_string(), e);
    }
    // Data files and their bytes on disk (allocated blocks: a sparse file counts what it uses).
    std::uint64_t files = 0;
    std::uint64_t disk = 0;
    std::error_code ec;
    for (const auto& f :
         std::filesystem::directory_iterator(partition_dir(store->opts().store_path, t), ec)) {
      const std::string name = f.path().filename().string();
      if (es::detail::parse_file_name(name).kind != es::detail::file_kind::data) {
        continue;
      }
      ++files;
      disk += f.file_size(ec);
    }
    row(t.to_string(), entries, live, files, disk);
    total_entries += entries;
    total_live += live;
    total_files += files;
    total_disk += disk;
  }
  row("total (" + std::to_string(parts.size()) + " partitions)", total_entries, total_live,
      total_files, total_disk);
  return exit_ok;
}

int cmd_verify(const settings& s, const std::string& table) {
  auto [store, parts] = open_read_only(s, table);
  if (!store) {
    return exit_failed;
  }
  std::size_t bad = 0;
  for (const es::table_ident& t : parts) {
    std::string problem;
    es::error e = store->verify(t, problem);
    std::uint64_t records = 0;
    if (e == es::error::ok) {
      // The tree is sound; reading every record checks every overflow page's checksum too.
      e = for_each_record(*store, t, [&](const es::kv_entry&) { ++records; });
    }
    if (e == es::error::ok) {
      std::printf("ok       %s (%llu records)\n", t.to_string().c_str(),
                  static_cast<unsigned long long>(records));
    } else {
      ++bad;
      std::printf("CORRUPT  %s: %s%s%s\n", t.to_string().c_str(),
                  std::string(es::error_message(e)).c_str(), problem.empty() ? "" : ": ",
                  problem.c_str());
    }
  }
  std::printf("%zu partitions, %zu with problems\n", parts.size(), bad);
  return bad == 0 ? exit_ok : exit_found_problem;
}

int cmd_dump(const settings& s, const std::string& table, const std::string& output) {
  auto [store, parts] = open_read_only(s, table);
  if (!store) {
    return exit_failed;
  }
  std::ofstream file;
  if (!output.empty() && output != "-") {
    file.open(output, std::ios::binary | std::ios::trunc);
    if (!file) {
      return fail("cannot create " + output);
    }
  }
  std::ostream& out = file.is_open() ? static_cast<std::ostream&>(file) : std::cout;
  out << dump_header << '\n';
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  progress bar("dump");
  for (const es::table_ident& t : parts) {
    const std::string prefix = t.name + '\t' + std::to_string(t.partition) + '\t';
    if (const es::error e = for_each_record(*store, t,
                                            [&](const es::kv_entry& kv) {
                                              out << prefix << to_hex(kv.key) << '\t'
                                                  << to_hex(kv.value) << '\t' << kv.timestamp
                                                  << '\t' << kv.expire_ts << '\n';
                                              ++records;
                                              bytes += kv.key.size() + kv.value.size();
                                              bar.update(records, bytes);
                                            });
        e != es::error::ok) {
      return fail("reading " + t.to_string(), e);
    }
  }
  out << "end " << records << '\n';
  out.flush();
  if (!out) {
    return fail("writing the dump failed");
  }
  return exit_ok;
}

// One record of a dump.
struct dump_record {
  es::table_ident table;
  es::write_entry entry;
};

// Parses line `no` of a dump (after the header).
std::optional<dump_record> parse_record(std::string_view line, std::size_t no, std::string& why) {
  const std::vector<std::string_view> f = split(line, '\t');
  if (f.size() != 6) {
    why = "line " + std::to_string(no) + ": expected 6 tab-separated fields, found " +
          std::to_string(f.size());
    return std::nullopt;
  }
  const auto partition = parse_u64(f[1]);
  auto key = from_hex(f[2]);
  auto value = from_hex(f[3]);
  const auto ts = parse_u64(f[4]);
  const auto expire = parse_u64(f[5]);
  const char* bad = !partition || *partition > UINT32_MAX ? "partition"
                    : !key                                ? "key (lower-case hex)"
                    : !value                              ? "value (lower-case hex)"
                    : !ts                                 ? "timestamp"
                    : !expire                             ? "expire_ts"
                                                          : nullptr;
  if (bad != nullptr || f[0].empty()) {
    why = "line " + std::to_string(no) + ": bad " + (bad != nullptr ? bad : "table name");
    return std::nullopt;
  }
  dump_record r;
  r.table = es::table_ident{std::string(f[0]), static_cast<std::uint32_t>(*partition)};
  r.entry = es::write_entry{std::move(*key), std::move(*value), *ts, es::write_op::upsert, *expire};
  return r;
}

int cmd_load(const settings& s, const std::string& input, std::size_t batch_entries) {
  std::string text;
  {
    std::ifstream in;
    std::istream* src = &std::cin;
    if (input != "-") {
      in.open(input, std::ios::binary);
      if (!in) {
        return fail("cannot open " + input);
      }
      src = &in;
    }
    std::ostringstream buf;
    buf << src->rdbuf();
    text = std::move(buf).str();
  }
  // Pass 1: the whole input is checked before anything is written.
  std::string_view rest = text;
  const auto next_line = [&](std::string_view& line) {
    const std::size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) {
      return false;  // every line ends with a newline, the last one too
    }
    line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    return true;
  };
  std::string_view line;
  if (!next_line(line) || line != dump_header) {
    return fail("not an eloqstore dump (the first line must be \"" + std::string(dump_header) +
                "\")");
  }
  std::vector<std::size_t> record_lines;  // offsets in text of each record line
  std::size_t no = 1;
  std::optional<std::uint64_t> declared;
  std::optional<dump_record> previous;
  std::string why;
  while (true) {
    const std::size_t offset = text.size() - rest.size();
    if (!next_line(line)) {
      return fail(rest.empty() ? "the dump ends without its \"end\" line"
                               : "line " + std::to_string(no + 1) + ": no newline at its end");
    }
    ++no;
    if (line.starts_with("end ")) {
      declared = parse_u64(line.substr(4));
      if (!declared || !rest.empty()) {
        return fail("line " + std::to_string(no) + ": bad end line, or text after it");
      }
      break;
    }
    auto r = parse_record(line, no, why);
    if (!r) {
      return fail(why);
    }
    if (previous) {
      const bool same = previous->table == r->table;
      const bool ordered = same ? previous->entry.key < r->entry.key
                                : std::pair(previous->table.name, previous->table.partition) <
                                      std::pair(r->table.name, r->table.partition);
      if (!ordered) {
        return fail("line " + std::to_string(no) +
                    ": records must ascend by (table, partition), then by key, with no key twice");
      }
    }
    previous = std::move(r);
    record_lines.push_back(offset);
  }
  if (*declared != record_lines.size()) {
    return fail("the end line declares " + std::to_string(*declared) + " records; the dump has " +
                std::to_string(record_lines.size()));
  }
  // Pass 2: write, a batch per partition run.
  auto store = open_store(s, true);
  if (!store) {
    return exit_failed;
  }
  progress bar("load");
  std::vector<es::write_entry> batch;
  es::table_ident current;
  std::uint64_t written = 0;
  const auto flush = [&]() -> bool {
    if (batch.empty()) {
      return true;
    }
    es::batch_write_request req;
    req.set_args(current, std::move(batch));
    batch.clear();
    if (const es::error e = store->exec_sync(req); e != es::error::ok) {
      fail("writing " + current.to_string() + " (after " + std::to_string(written) +
           " records were written): " + std::string(req.message()));
      return false;
    }
    written += req.entries().size();
    return true;
  };
  for (std::size_t i = 0; i < record_lines.size(); ++i) {
    std::string_view at = std::string_view(text).substr(record_lines[i]);
    auto r = parse_record(at.substr(0, at.find('\n')), i + 2, why);
    if (!(r->table == current) || batch.size() >= batch_entries) {
      if (!flush()) {
        return exit_failed;
      }
      current = r->table;
    }
    batch.push_back(std::move(r->entry));
    bar.update(i + 1, record_lines[i], text.size());
  }
  if (!flush()) {
    return exit_failed;
  }
  std::fprintf(stderr, "loaded %llu records\n", static_cast<unsigned long long>(written));
  return exit_ok;
}

// A key or value from the command line: text, or hex with --hex.
std::optional<std::string> argument_bytes(const settings& s, const std::string& arg) {
  return s.hex ? from_hex(arg) : std::optional<std::string>(arg);
}
std::string shown(const settings& s, std::string_view bytes) {
  return s.hex ? to_hex(bytes) : std::string(bytes);
}

int cmd_get(const settings& s, const std::string& table, std::uint32_t partition,
            const std::string& key_arg) {
  const auto key = argument_bytes(s, key_arg);
  if (!key) {
    return fail("the key is not lower-case hex");
  }
  auto store = open_store(s, false);
  if (!store) {
    return exit_failed;
  }
  const auto r = store->get(es::table_ident{table, partition}, *key);
  if (r.status() == es::error::not_found) {
    std::fprintf(stderr, "not found\n");
    return exit_found_problem;
  }
  if (!r.ok()) {
    return fail("get", r.status());
  }
  std::cout << shown(s, r->value) << '\n';
  return exit_ok;
}

int cmd_put(const settings& s, const std::string& table, std::uint32_t partition,
            const std::string& key_arg, const std::string& value_arg, std::uint64_t ts,
            std::uint64_t expire) {
  const auto key = argument_bytes(s, key_arg);
  const auto value = argument_bytes(s, value_arg);
  if (!key || !value) {
    return fail("the key or value is not lower-case hex");
  }
  auto store = open_store(s, true);
  if (!store) {
    return exit_failed;
  }
  es::batch_write_request req;
  req.set_args(es::table_ident{table, partition},
               {es::write_entry{*key, *value, ts, es::write_op::upsert, expire}});
  if (const es::error e = store->exec_sync(req); e != es::error::ok) {
    return fail("put: " + std::string(req.message()));
  }
  return exit_ok;
}

int cmd_scan(const settings& s, const std::string& table, std::uint32_t partition,
             const std::string& begin_arg, const std::string& end_arg, std::uint64_t limit) {
  const auto begin = argument_bytes(s, begin_arg);
  const auto end = argument_bytes(s, end_arg);
  if (!begin || !end) {
    return fail("--begin or --end is not lower-case hex");
  }
  auto store = open_store(s, false);
  if (!store) {
    return exit_failed;
  }
  std::uint64_t n = 0;
  for (const es::kv_entry& kv : store->scan(es::table_ident{table, partition}, *begin, *end)) {
    if (limit != 0 && n == limit) {
      break;
    }
    std::cout << shown(s, kv.key) << '\t' << shown(s, kv.value) << '\n';
    ++n;
  }
  return exit_ok;
}

std::string page_of(es::detail::page_id id) {
  return id == es::detail::page_id::none() ? "none" : std::to_string(id.value());
}

int cmd_manifest(const settings& s, const std::string& table, std::uint32_t partition) {
  std::string why;
  const std::optional<es::options> o = make_options(s, false, why);
  if (!o) {
    return fail(why);
  }
  const es::table_ident t{table, partition};
  const std::filesystem::path path =
      partition_dir(o->store_path, t) / es::detail::manifest_file_name(0);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail("no manifest at " + path.string());
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  const std::string file = std::move(buf).str();
  std::printf("%s: %zu bytes\n", path.string().c_str(), file.size());

  using namespace es::detail;
  manifest_record rec;
  if (read_manifest_record(file, rec) != record_status::ok) {
    std::printf("record 0: not a valid record (checksum or length)\n");
    return exit_found_problem;
  }
  manifest_snapshot snap;
  if (decode_manifest_snapshot(rec.payload, snap) != es::error::ok) {
    std::printf("record 0: a snapshot that does not decode\n");
    return exit_found_problem;
  }
  const auto mapped = [](const std::vector<std::uint64_t>& mapping) {
    return std::count_if(mapping.begin(), mapping.end(),
                         [](std::uint64_t v) { return tag_of(v) == mapping_tag::file_page; });
  };
  std::printf(
      "record 0 at 0: snapshot, %zu bytes; root %s, ttl_root %s; %zu logical pages (%ld on "
      "file pages); max_fp %llu; dictionary %zu bytes; %zu term entries\n",
      rec.padded_bytes, page_of(rec.root).c_str(), page_of(rec.ttl_root).c_str(),
      snap.mapping.size(), static_cast<long>(mapped(snap.mapping)),
      static_cast<unsigned long long>(snap.max_fp_id), snap.dictionary.size(), snap.terms.size());
  std::vector<std::uint64_t> mapping = snap.mapping;
  std::uint64_t max_fp = snap.max_fp_id;
  term_mapping terms = snap.terms;
  std::size_t offset = rec.padded_bytes;
  std::size_t n = 1;
  while (offset < file.size()) {
    const record_status st = read_manifest_record(std::string_view(file).substr(offset), rec);
    if (st != record_status::ok) {
      std::printf("end of records at %zu (%s)\n", offset,
                  file.find_first_not_of('\0', offset) == std::string::npos
                      ? "zeros to the end"
                      : "an end marker, a torn record or padding");
      break;
    }
    const std::vector<std::uint64_t> before = mapping;
    if (apply_manifest_log(rec.payload, mapping, max_fp, terms) != es::error::ok) {
      std::printf("record %zu at %zu: a log record that does not decode\n", n, offset);
      return exit_found_problem;
    }
    std::size_t changed = 0;
    for (std::size_t i = 0; i < mapping.size(); ++i) {
      changed += i >= before.size() || mapping[i] != before[i] ? 1 : 0;
    }
    std::printf(
        "record %zu at %zu: log, %zu bytes; root %s, ttl_root %s; %zu mapping entries "
        "changed, %zu logical pages\n",
        n, offset, rec.padded_bytes, page_of(rec.root).c_str(), page_of(rec.ttl_root).c_str(),
        changed, mapping.size());
    offset += rec.padded_bytes;
    ++n;
  }
  replay_result replayed;
  const es::error e = replay_manifest(file, replayed);
  std::printf("replay: %s; %zu log records after the snapshot; root %s; next append at %zu%s\n",
              std::string(es::error_message(e)).c_str(), replayed.log_count,
              page_of(replayed.root).c_str(), replayed.append_offset,
              replayed.torn_tail ? "; a torn tail was ignored" : "");
  return e == es::error::ok ? exit_ok : exit_found_problem;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"eloqstore: inspect, check, dump, load and edit an EloqStore on local files"};
  app.require_subcommand(1);
  settings s;
  app.add_option("-p,--path", s.paths, "a store path (repeat for several)");
  app.add_option("-c,--config", s.config, "an option file ([run] and [permanent] sections)")
      ->check(CLI::ExistingFile);
  app.add_option("--threads", s.threads, "shard threads")->check(CLI::Range(1, 1024));
  app.add_flag("--hex", s.hex, "keys and values in lower-case hex (get, put, scan)");

  std::string table;
  std::uint32_t partition = 0;
  std::string key;
  std::string value;
  std::string file;
  std::string begin;
  std::string end;
  std::uint64_t ts = 0;
  std::uint64_t expire = 0;
  std::uint64_t limit = 0;
  std::size_t batch = 1000;
  int rc = exit_ok;

  auto* stat = app.add_subcommand("stat", "per-partition entries, bytes, files, amplification");
  stat->add_option("-t,--table", table, "only this table");
  stat->callback([&] { rc = cmd_stat(s, table); });

  auto* verify = app.add_subcommand("verify", "check every page and tree; exit 1 on a problem");
  verify->add_option("-t,--table", table, "only this table");
  verify->callback([&] { rc = cmd_verify(s, table); });

  auto* dump = app.add_subcommand("dump", "every live record as text");
  dump->add_option("-t,--table", table, "only this table");
  dump->add_option("-o,--output", file, "the dump file (default: standard output)");
  dump->callback([&] { rc = cmd_dump(s, table, file); });

  auto* load = app.add_subcommand("load", "records from a dump (checked whole before writing)");
  load->add_option("-i,--input", file, "the dump file, or - for standard input")->required();
  load->add_option("--batch", batch, "records per batch write")->check(CLI::Range(1, 1000000));
  load->callback([&] { rc = cmd_load(s, file, batch); });

  const auto partition_args = [&](CLI::App* c) {
    c->add_option("table", table, "table name")->required();
    c->add_option("partition", partition, "partition number")->required();
  };
  auto* get = app.add_subcommand("get", "the value of a key (exit 1 if absent)");
  partition_args(get);
  get->add_option("key", key)->required();
  get->callback([&] { rc = cmd_get(s, table, partition, key); });

  auto* put = app.add_subcommand("put", "write one record");
  partition_args(put);
  put->add_option("key", key)->required();
  put->add_option("value", value)->required();
  put->add_option("--ts", ts, "timestamp (last writer wins)");
  put->add_option("--expire", expire, "expiry, Unix milliseconds (0: never)");
  put->callback([&] { rc = cmd_put(s, table, partition, key, value, ts, expire); });

  auto* scan = app.add_subcommand("scan", "records of [begin, end) as key TAB value");
  partition_args(scan);
  scan->add_option("--begin", begin, "first key (default: the first)");
  scan->add_option("--end", end, "end key, excluded (default: past the last)");
  scan->add_option("--limit", limit, "at most this many records (0: all)");
  scan->callback([&] { rc = cmd_scan(s, table, partition, begin, end, limit); });

  auto* manifest = app.add_subcommand("manifest", "the records of a partition's manifest");
  partition_args(manifest);
  manifest->callback([&] { rc = cmd_manifest(s, table, partition); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? exit_ok : exit_failed;
  }
  return rc;
}
