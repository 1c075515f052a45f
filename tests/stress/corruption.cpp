// corruption: a corruption campaign against stores on local files (the default traits).
//
// Two base stores are written with the seeded workload (tests/support/workload.hpp), one
// with pages updated in place and one in append mode, each operation acknowledged before the
// next, keeping every partition's model after each operation. Each trial copies a base store,
// damages one file (a data file or a manifest) in one way:
//
//   flip        one bit at a random offset
//   zero        one page's worth of bytes set to zero (page-aligned)
//   truncate    the file cut at a random length
//   misdirect   one page overwritten with another page of the same or another data file (a
//               write that landed at the wrong place; its checksum is valid)
//
// then opens the store and reads every partition (full scan, point reads, verify), and
// classes the outcome per partition, the trial taking the worst:
//
//   unchanged   every read gives the final model
//   older       a partition gives the model after an earlier operation (a consistent older
//               version: recovery rolled back to an earlier manifest record)
//   error       the store refused to start, or a read or verify returned an error
//   silent      a partition read without error gives data that is neither: wrong data
//
// Silent wrong data fails the campaign, except after a misdirected page: the format (the
// reference's) stores no page identity in a page, so a whole page copied over another keeps
// a valid checksum and only the tree's structure checks (key order, the verifier) can catch
// it; an overflow page copied over another is not caught at all. The report lists every such
// trial instead of failing on it.
//
// Usage: corruption [--trials N] [--seed S] [--dir D] [--report FILE] [--keep]
// Exit codes: 0 no undetectable-by-design-only silent outcome, 1 silent wrong data, 2 bad
// usage or an environment problem.
#define DOCTEST_CONFIG_DISABLE  // (the support headers' checks are for the doctest suites)

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "stress/stress_common.hpp"
#include "support/workload.hpp"

namespace {

using namespace eloqstore;
using test::kv_model;
namespace fs = std::filesystem;

constexpr std::uint32_t parts = 3;
constexpr std::uint64_t ops_per_store = 160;
constexpr std::size_t page_bytes = 4096;

options base_options(const std::string& store_dir, bool append) {
  options o;
  o.store_path = {store_dir};
  o.num_threads = 1;
  o.data_page_size = page_bytes;
  o.data_append_mode = append;
  o.pages_per_file_shift = append ? 5 : 8;
  o.manifest_limit = 64 * 1024;  // a few snapshots along the way
  o.coroutine_stack_size = 256 * 1024;
  return o;
}

// A base store and the model of each partition after each of its operations (front: empty).
struct base_store {
  bool append = false;
  std::string dir;
  std::vector<std::vector<kv_model>> history = std::vector<std::vector<kv_model>>(parts);
};

bool build_base(base_store& b, std::uint64_t seed, std::string& why) {
  default_store s(base_options(b.dir, b.append));
  if (const error e = s.start(); e != error::ok) {
    why = "start: " + std::string(error_message(e));
    return false;
  }
  test::workload gen(seed, parts, 0, 0.1);
  for (auto& h : b.history) {
    h.emplace_back();
  }
  for (std::uint64_t i = 0; i < ops_per_store; ++i) {
    const test::op o = gen.next();
    if (const error e = test::run_op(s, o); e != error::ok) {
      why = "operation " + std::to_string(i) + ": " + std::string(error_message(e));
      return false;
    }
    kv_model m = b.history[o.part].back();
    test::apply_op(m, o);
    b.history[o.part].push_back(std::move(m));
  }
  s.stop();
  return true;
}

enum class outcome { unchanged, older, error, silent };
constexpr const char* outcome_names[] = {"unchanged", "older", "error", "silent"};
enum class damage { flip, zero, truncate, misdirect };
constexpr const char* damage_names[] = {"flip", "zero", "truncate", "misdirect"};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

struct trial_result {
  outcome result = outcome::unchanged;
  std::string detail;
};

// Opens the damaged store and classes what its partitions read.
trial_result examine(const base_store& b, const std::string& dir) {
  trial_result t;
  default_store s(base_options(dir, b.append));
  if (const error e = s.start(); e != error::ok) {
    t.result = outcome::error;
    t.detail = "start: " + std::string(error_message(e));
    return t;
  }
  for (std::uint32_t p = 0; p < parts; ++p) {
    const table_ident id = test::part_ident(p);
    const std::vector<kv_model>& h = b.history[p];
    kv_model got;
    bool ordered = true;
    const error e = stress::scan_all(s, id, got, ordered);
    std::string problem;
    const error v = s.verify(id, problem);
    outcome o = outcome::unchanged;
    std::string why;
    if (e != error::ok && !(e == error::not_found && got.empty())) {
      o = outcome::error;
      why = "scan: " + std::string(error_message(e));
    } else if (v != error::ok && !(v == error::not_found && got.empty())) {
      o = outcome::error;
      why = "verify: " + std::string(error_message(v)) + " " + problem;
    } else if (!ordered) {
      o = outcome::silent;
      why = "scan out of order";
    } else {
      // The newest model the scan equals (partition histories are short).
      auto match = std::find(h.rbegin(), h.rend(), got);
      if (match == h.rend()) {
        o = outcome::silent;
        why = test::diff(got, h.back());
      } else {
        o = match == h.rbegin() ? outcome::unchanged : outcome::older;
        error re = error::ok;
        if (const std::string bad = stress::point_reads(s, id, *match, p, re); !bad.empty()) {
          o = re != error::ok ? outcome::error : outcome::silent;
          why = bad;
        }
      }
    }
    if (o > t.result) {
      t.result = o;
      t.detail = id.to_string() + ": " + why;
    }
  }
  s.stop();
  return t;
}

struct campaign_args {
  std::uint64_t trials = 120;
  std::uint64_t seed = 0;
  std::string dir;
  std::string report;
  bool keep = false;
};

int run(const campaign_args& a) {
  const std::uint64_t seed = a.seed != 0 ? a.seed : std::random_device{}() | 1ULL;
  std::string base = a.dir;
  if (base.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    base = std::string(tmp != nullptr ? tmp : "/tmp") + "/corruption." + std::to_string(::getpid());
  }
  fs::remove_all(base);
  fs::create_directories(base);
  std::printf("corruption: seed %" PRIu64 ", %" PRIu64 " trials, in %s\n", seed, a.trials,
              base.c_str());
  std::vector<base_store> bases(2);
  for (std::size_t i = 0; i < bases.size(); ++i) {
    bases[i].append = i == 1;
    bases[i].dir = base + (i == 1 ? "/base-append" : "/base-inplace");
    std::string why;
    if (!build_base(bases[i], stress::mix(seed, i), why)) {
      std::fprintf(stderr, "corruption: building the base store failed: %s\n", why.c_str());
      return 2;
    }
  }
  std::mt19937_64 r(stress::mix(seed, 99));
  auto pick = [&r](std::uint64_t lo, std::uint64_t hi) {
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(r);
  };
  std::uint64_t counts[4][4] = {};  // [damage][outcome]
  std::uint64_t manifest_trials = 0;
  std::uint64_t data_trials = 0;
  std::vector<std::string> silent_detectable;
  std::vector<std::string> silent_undetectable;
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t trial = 0; trial < a.trials; ++trial) {
    const base_store& b = bases[trial % 2];
    const std::string dir = base + "/trial";
    fs::remove_all(dir);
    fs::copy(b.dir, dir, fs::copy_options::recursive);
    std::vector<fs::path> data;
    std::vector<fs::path> manifests;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
      if (!entry.is_regular_file() || entry.file_size() == 0) {
        continue;
      }
      const std::string name = entry.path().filename().string();
      if (name.starts_with("data_")) {
        data.push_back(entry.path());
      } else if (name.starts_with("manifest")) {
        manifests.push_back(entry.path());
      }
    }
    std::sort(data.begin(), data.end());
    std::sort(manifests.begin(), manifests.end());
    if (manifests.empty() && data.empty()) {
      std::fprintf(stderr, "corruption: the base store has no files\n");
      return 2;
    }
    const bool on_manifest = manifests.empty() ? false : (pick(0, 2) == 0 || data.empty());
    const fs::path victim =
        on_manifest ? manifests[pick(0, manifests.size() - 1)] : data[pick(0, data.size() - 1)];
    std::string bytes = read_file(victim);
    auto kind = static_cast<damage>(pick(0, on_manifest ? 2 : 3));
    std::ostringstream what;
    what << "trial " << trial << " (" << (b.append ? "append" : "in place")
         << "): " << damage_names[static_cast<int>(kind)] << " " << victim.filename().string()
         << " of " << victim.parent_path().filename().string();
    const std::size_t pages = std::max<std::size_t>(1, bytes.size() / page_bytes);
    switch (kind) {
      case damage::flip: {
        const std::size_t at = pick(0, bytes.size() - 1);
        const int bit = static_cast<int>(pick(0, 7));
        bytes[at] = static_cast<char>(bytes[at] ^ (1 << bit));
        what << " at byte " << at << " bit " << bit;
        break;
      }
      case damage::zero: {
        const std::size_t page = pick(0, pages - 1);
        const std::size_t from = page * page_bytes;
        const std::size_t n = std::min(page_bytes, bytes.size() - std::min(from, bytes.size()));
        std::fill_n(bytes.begin() + static_cast<std::ptrdiff_t>(from), n, '\0');
        what << " page " << page;
        break;
      }
      case damage::truncate: {
        const std::size_t to = pick(0, bytes.size() - 1);
        bytes.resize(to);
        what << " to " << to << " bytes";
        break;
      }
      case damage::misdirect: {
        const fs::path source_file = data[pick(0, data.size() - 1)];
        const std::string source = source_file == victim ? bytes : read_file(source_file);
        const std::size_t source_pages = source.size() / page_bytes;
        if (source_pages == 0 || bytes.size() < page_bytes) {
          kind = damage::flip;
          bytes[0] = static_cast<char>(bytes[0] ^ 1);
          what << " (too small: a flip of byte 0 instead)";
          break;
        }
        const std::size_t from = pick(0, source_pages - 1);
        const std::size_t to = pick(0, bytes.size() / page_bytes - 1);
        std::copy_n(source.begin() + static_cast<std::ptrdiff_t>(from * page_bytes), page_bytes,
                    bytes.begin() + static_cast<std::ptrdiff_t>(to * page_bytes));
        what << " page " << to << " with page " << from << " of "
             << source_file.filename().string();
        break;
      }
    }
    write_file(victim, bytes);
    (on_manifest ? manifest_trials : data_trials) += 1;
    const trial_result t = examine(b, dir);
    ++counts[static_cast<int>(kind)][static_cast<int>(t.result)];
    if (t.result == outcome::silent) {
      const std::string line = what.str() + ": " + t.detail;
      (kind == damage::misdirect ? silent_undetectable : silent_detectable).push_back(line);
      if (a.keep) {
        fs::rename(dir, base + "/silent-" + std::to_string(trial));
      }
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ostringstream rep;
  rep << "corruption campaign report\nseed: " << seed << "\ntrials: " << a.trials << " ("
      << data_trials << " on data files, " << manifest_trials << " on manifests)\n"
      << "seconds: " << secs << "\noutcomes by damage:";
  for (const char* o : outcome_names) {
    rep << " " << o;
  }
  rep << "\n";
  std::uint64_t totals[4] = {};
  for (int d = 0; d < 4; ++d) {
    rep << "  " << damage_names[d] << ":";
    for (int o = 0; o < 4; ++o) {
      rep << " " << counts[d][o];
      totals[o] += counts[d][o];
    }
    rep << "\n";
  }
  rep << "  all:";
  for (const std::uint64_t n : totals) {
    rep << " " << n;
  }
  rep << "\nsilent wrong data the format cannot detect (misdirected pages with valid checksums): "
      << silent_undetectable.size() << "\n";
  for (const std::string& s : silent_undetectable) {
    rep << "  " << s << "\n";
  }
  rep << "silent wrong data that should have been detected: " << silent_detectable.size() << "\n";
  for (const std::string& s : silent_detectable) {
    rep << "  " << s << "\n";
  }
  std::fputs(rep.str().c_str(), stdout);
  if (!a.report.empty()) {
    std::ofstream(a.report) << rep.str();
  }
  if (!a.keep) {
    fs::remove_all(base);
  }
  return silent_detectable.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"corruption: damage store files one way at a time and class what reads give"};
  campaign_args a;
  app.add_option("--trials", a.trials, "trials")->check(CLI::Range(1, 100000000));
  app.add_option("--seed", a.seed, "the seed (0: a random one, printed)");
  app.add_option("--dir", a.dir, "the working directory (default: one in TMPDIR)");
  app.add_option("--report", a.report, "write the report to this file too");
  app.add_flag("--keep", a.keep, "keep the stores (and each trial with silent wrong data)");
  CLI11_PARSE(app, argc, argv);
  return run(a);
}
