// Statistics (stats.hpp): the counters and histograms of stats() against what the test did,
// across a restart, and their Prometheus text, checked with a small parser of the exposition
// format (version 0.0.4).
#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>
#include <range/v3/algorithm/count_if.hpp>

#include <eloqstore/eloqstore.hpp>

#include "support/store_fixture.hpp"

using namespace eloqstore;

namespace {

// A sample of the exposition format: metric name, labels, value.
struct sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

bool metric_name_ok(std::string_view n) {
  if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0])) != 0) {
    return false;
  }
  for (const char c : n) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '_' && c != ':') {
      return false;
    }
  }
  return true;
}

// Parses the text format strictly: HELP and TYPE comments, then samples of declared families
// (a histogram's _bucket, _sum and _count belong to its family), labels as name="value"
// (with \\, \" and \n escapes), values as numbers or +Inf. Every error fails the test.
std::vector<sample> parse_exposition(std::string_view text) {
  std::vector<sample> out;
  std::map<std::string, std::string> types;
  std::set<std::string> helped;
  std::size_t line_no = 0;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    REQUIRE_MESSAGE(nl != std::string_view::npos, "the text ends with a newline");
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    ++line_no;
    INFO("line " << line_no << ": " << std::string(line));
    REQUIRE(!line.empty());
    if (line[0] == '#') {
      const bool help = line.starts_with("# HELP ");
      const bool type = line.starts_with("# TYPE ");
      REQUIRE((help || type));
      const std::string_view rest = line.substr(7);
      const std::size_t sp = rest.find(' ');
      REQUIRE(sp != std::string_view::npos);
      const std::string name(rest.substr(0, sp));
      REQUIRE(metric_name_ok(name));
      if (help) {
        CHECK(helped.insert(name).second);
      } else {
        const std::string kind(rest.substr(sp + 1));
        CHECK((kind == "counter" || kind == "gauge" || kind == "histogram" || kind == "summary" ||
               kind == "untyped"));
        CHECK(types.emplace(name, kind).second);  // one TYPE per family
      }
      continue;
    }
    sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') {
      ++i;
    }
    s.name = std::string(line.substr(0, i));
    REQUIRE(metric_name_ok(s.name));
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (line.at(i) != '}') {
        std::size_t eq = line.find('=', i);
        REQUIRE(eq != std::string_view::npos);
        const std::string label(line.substr(i, eq - i));
        REQUIRE(metric_name_ok(label));
        REQUIRE(line.at(eq + 1) == '"');
        std::string value;
        std::size_t j = eq + 2;
        for (; line.at(j) != '"'; ++j) {
          if (line[j] == '\\') {
            ++j;
            const char e = line.at(j);
            REQUIRE((e == '\\' || e == '"' || e == 'n'));
            value += e == 'n' ? '\n' : e;
          } else {
            value += line[j];
          }
        }
        CHECK(s.labels.emplace(label, value).second);
        i = j + 1;
        if (line.at(i) == ',') {
          ++i;
        }
      }
      ++i;
    }
    REQUIRE(line.at(i) == ' ');
    const std::string_view number = line.substr(i + 1);
    if (number == "+Inf") {
      s.value = 1e308;
    } else {
      const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), s.value);
      REQUIRE(ec == std::errc{});
      REQUIRE(end == number.data() + number.size());
    }
    // Its family: the name itself, or a histogram's name without its suffix.
    std::string family = s.name;
    for (const std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (!types.contains(family) && s.name.ends_with(suffix)) {
        family = s.name.substr(0, s.name.size() - suffix.size());
      }
    }
    REQUIRE_MESSAGE(types.contains(family), "a sample of an undeclared family: " << s.name);
    if (types[family] == "histogram" && s.name.ends_with("_bucket")) {
      REQUIRE(s.labels.contains("le"));
    }
    out.push_back(std::move(s));
  }
  return out;
}

// The value of the sample with that name and labels (every label given must match).
double value_of(const std::vector<sample>& samples, std::string_view name,
                const std::map<std::string, std::string>& labels) {
  double found = -1;
  int matches = 0;
  for (const sample& s : samples) {
    if (s.name != name) {
      continue;
    }
    bool all = true;
    for (const auto& [k, v] : labels) {
      const auto it = s.labels.find(k);
      all = all && it != s.labels.end() && it->second == v;
    }
    if (all) {
      found = s.value;
      ++matches;
    }
  }
  INFO(std::string(name));
  CHECK(matches == 1);
  return found;
}

// Every histogram's buckets are cumulative (non-decreasing in le) and the +Inf bucket equals
// its _count.
void check_histograms(const std::vector<sample>& samples) {
  std::map<std::string, std::vector<const sample*>> series;  // by name and labels but le
  for (const sample& s : samples) {
    if (!s.name.ends_with("_bucket")) {
      continue;
    }
    std::string key = s.name.substr(0, s.name.size() - 7);
    for (const auto& [k, v] : s.labels) {
      key += k == "le" ? "" : "|" + k + "=" + v;
    }
    series[key].push_back(&s);
  }
  CHECK(!series.empty());
  for (const auto& [key, buckets] : series) {
    INFO(key);
    double previous = 0;
    double previous_le = -1;
    for (const sample* b : buckets) {
      const std::string& le = b->labels.at("le");
      const double bound = le == "+Inf" ? 1e308 : std::stod(le);
      CHECK(bound > previous_le);
      CHECK(b->value >= previous);
      previous = b->value;
      previous_le = bound;
    }
    CHECK(buckets.back()->labels.at("le") == "+Inf");
    std::map<std::string, std::string> labels = buckets.back()->labels;
    labels.erase("le");
    const std::string family = key.substr(0, key.find('|'));
    CHECK(value_of(samples, family + "_count", labels) == buckets.back()->value);
  }
}

}  // namespace

TEST_CASE("stats: histogram buckets and quantiles") {
  histogram h;
  CHECK(h.quantile(0.5) == 0);
  for (std::uint64_t v : {0, 1, 2, 3, 4, 100, 1000, 1000000}) {
    h.record(v);
  }
  CHECK(h.count == 8);
  CHECK(h.sum == 1001110);
  CHECK(h.max == 1000000);
  CHECK(h.buckets[0] == 1);  // 0
  CHECK(h.buckets[1] == 1);  // 1
  CHECK(h.buckets[2] == 2);  // 2, 3
  CHECK(h.buckets[3] == 1);  // 4
  CHECK(histogram::upper_bound(2) == 3);
  CHECK(h.quantile(0.5) == 3);        // the 4th value of 8 lies in [2, 3]
  CHECK(h.quantile(1.0) == 1000000);  // capped at max
  histogram other;
  other.record(7);
  h.merge(other);
  CHECK(h.count == 9);
  CHECK(h.max == 1000000);
  CHECK(histogram::bucket_of(UINT64_MAX) == histogram::bucket_count - 1);
}

TEST_CASE_TEMPLATE("stats: counters follow requests, survive a restart, and expose as Prometheus",
                   Fixture, test::memory_fixture, test::uring_fixture) {
  Fixture f;
  f.opts.num_threads = 1;
  auto store = f.make();
  REQUIRE(store->start() == error::ok);
  const store_stats empty = store->stats();
  REQUIRE(empty.shards.size() == 1);
  CHECK(empty.total()[request_type::batch_write].count == 0);

  const table_ident t{"stats", 0};
  std::uint64_t written = 0;
  for (int b = 0; b < 20; ++b) {
    std::vector<write_entry> batch;
    for (int i = 0; i < 50; ++i) {
      const std::string key = "key" + std::to_string(10000 + b * 50 + i);
      const std::string value(100 + i, 'v');
      written += key.size() + value.size();
      batch.push_back({key, value, 1, write_op::upsert, 0});
    }
    REQUIRE(store->write(t, std::move(batch)) == error::ok);
  }
  // A batch with an empty key fails (bad input): counted as an error, writes nothing.
  CHECK(store->write(t, {{"", "x", 1, write_op::upsert, 0}}) == error::invalid_args);
  std::uint64_t read_bytes = 0;
  for (int i = 0; i < 30; ++i) {
    const auto r = store->get(t, "key" + std::to_string(10000 + i * 7));
    REQUIRE(r.ok());
    read_bytes += r->key.size() + r->value.size();
  }
  CHECK(store->get(t, "absent").status() == error::not_found);  // not an error
  const auto scanned = ranges::count_if(store->scan(t), [](const kv_entry&) { return true; });
  CHECK(scanned == 1000);

  const shard_stats s = store->stats().total();
  CHECK(s[request_type::batch_write].count == 21);
  CHECK(s[request_type::batch_write].errors == 1);
  CHECK(s[request_type::read].count == 31);
  CHECK(s[request_type::read].errors == 0);
  CHECK(s[request_type::scan].count >= 1);
  CHECK(s[request_type::batch_write].latency_us.count == 21);
  CHECK(s[request_type::read].latency_us.quantile(0.99) <= s[request_type::read].latency_us.max);
  CHECK(s[counter::bytes_written] == written);
  CHECK(s[counter::bytes_read] >= read_bytes + written);  // the gets and the full scan
  CHECK(s[counter::pages_written] > 0);
  CHECK(s[counter::data_syncs] > 0);
  CHECK(s[counter::manifest_writes] + s[counter::manifest_snapshots] >= 20);
  CHECK(s[counter::manifest_syncs] >= 20);
  CHECK(s[counter::write_groups] == 21);
  CHECK(s.group_sizes.sum == 21);
  CHECK(s[counter::background_errors] == 0);
  CHECK(store->write_groups() == std::pair<std::size_t, std::size_t>{21, 21});
  CHECK(store->largest_group() == 1);

  // The Prometheus text parses, and its figures are the snapshot's.
  const std::string text = to_prometheus_text(store->stats());
  const std::vector<sample> before = parse_exposition(text);
  check_histograms(before);
  CHECK(value_of(before, "eloqstore_requests_total", {{"shard", "0"}, {"type", "read"}}) == 31);
  CHECK(value_of(before, "eloqstore_request_errors_total",
                 {{"shard", "0"}, {"type", "batch_write"}}) == 1);
  CHECK(value_of(before, "eloqstore_bytes_written_total", {{"shard", "0"}}) ==
        static_cast<double>(written));
  CHECK(value_of(before, "eloqstore_request_latency_seconds_count",
                 {{"shard", "0"}, {"type", "read"}}) == 31);

  // A restart keeps the counters; the counters move as requests run.
  store->stop();
  REQUIRE(store->start() == error::ok);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(store->get(t, "key10001").ok());
  }
  // A reopened partition's pages come from the device (memory_io counts too).
  const std::vector<sample> after = parse_exposition(to_prometheus_text(store->stats()));
  CHECK(value_of(after, "eloqstore_requests_total", {{"shard", "0"}, {"type", "read"}}) == 36);
  CHECK(value_of(after, "eloqstore_pages_read_total", {{"shard", "0"}}) >
        value_of(before, "eloqstore_pages_read_total", {{"shard", "0"}}));
  CHECK(value_of(after, "eloqstore_index_cache_misses_total", {{"shard", "0"}}) >
        value_of(before, "eloqstore_index_cache_misses_total", {{"shard", "0"}}));
  check_histograms(after);
  store->stop();
  CHECK(store->stats().total()[request_type::read].count == 36);  // also while stopped
}

TEST_CASE("stats: every shard reports its own") {
  test::uring4_fixture f;
  auto store = f.make();
  REQUIRE(store->start() == error::ok);
  for (std::uint32_t p = 0; p < 4; ++p) {
    REQUIRE(store->put(table_ident{"shards", p}, "k", "v") == error::ok);
  }
  REQUIRE(store->put(table_ident{"shards", 1}, "k2", "v") == error::ok);
  const store_stats st = store->stats();
  REQUIRE(st.shards.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(st.shards[i][request_type::batch_write].count == (i == 1 ? 2 : 1));
  }
  const std::vector<sample> samples = parse_exposition(to_prometheus_text(st));
  CHECK(value_of(samples, "eloqstore_requests_total", {{"shard", "1"}, {"type", "batch_write"}}) ==
        2);
  store->stop();
}

namespace {

std::uint64_t pages_read(const store_stats& s) {
  return s.total()[counter::pages_read];
}

struct no_cache_traits : memory_traits {
  using data_cache = no_data_cache;
};

}  // namespace

// The data page cache (on in every standard traits; options::data_page_cache_size per shard)
// seen from outside: repeated reads of a hot set cost no page reads, a scan of more pages
// than the cache holds leaves the hot set cached, writes keep it coherent (a model check with
// a cache of a few pages, through overwrites, deletes, range deletes, truncates, append-mode
// compaction and a restart), and size 0 turns it off.
TEST_CASE_TEMPLATE("data cache: hot reads from memory, scan resistant, coherent under writes",
                   Fixture, test::memory_fixture, test::uring_fixture,
                   test::memory_append_fixture) {
  static_assert(detail::data_cache_enabled<default_traits>());
  static_assert(detail::data_cache_enabled<memory_traits>());
  static_assert(!detail::data_cache_enabled<no_cache_traits>());
  Fixture f;
  f.opts.num_threads = 1;
  constexpr std::size_t cache_pages = 48;
  f.opts.data_page_cache_size = cache_pages * 4096;
  auto store = f.make();
  REQUIRE(store->start() == error::ok);
  const table_ident t{"cache", 0};
  std::map<std::string, std::string> model;
  std::uint64_t ts = 1;
  const auto key_of = [](int i) { return "key" + std::to_string(100000 + i); };
  constexpr int keys = 3000;  // about 150 leaves of 4 KiB: three times the cache
  for (int b = 0; b < keys / 500; ++b) {
    std::vector<write_entry> batch;
    for (int i = b * 500; i < (b + 1) * 500; ++i) {
      batch.push_back(
          {key_of(i), std::string(180, static_cast<char>('a' + i % 26)), ts, write_op::upsert, 0});
      model[key_of(i)] = batch.back().value;
    }
    ++ts;
    REQUIRE(store->write(t, std::move(batch)) == error::ok);
  }
  const auto check_get = [&](const std::string& key) {
    const auto r = store->get(t, key);
    const auto it = model.find(key);
    if (it == model.end()) {
      CHECK(r.status() == error::not_found);
    } else {
      REQUIRE(r.ok());
      CHECK(r->value == it->second);
    }
  };

  // The hot set: ten keys on different leaves, read twice (a miss, then a hit: protected).
  std::vector<std::string> hot;
  for (int i = 0; i < 10; ++i) {
    hot.push_back(key_of(i * 290 + 7));
  }
  for (int round = 0; round < 2; ++round) {
    for (const auto& k : hot) {
      check_get(k);
    }
  }
  const store_stats warm = store->stats();
  for (int round = 0; round < 5; ++round) {
    for (const auto& k : hot) {
      check_get(k);
    }
  }
  CHECK(pages_read(store->stats()) == pages_read(warm));
  CHECK(store->stats().total()[counter::data_cache_hits] >=
        warm.total()[counter::data_cache_hits] + 50);

  // A full scan reads every leaf, three times what the cache holds; the hot set stays.
  std::size_t scanned = 0;
  for (const kv_entry& e : store->scan(t)) {
    CHECK(model.at(e.key) == e.value);
    ++scanned;
  }
  CHECK(scanned == model.size());
  const auto cs = store->data_cache_stats();
  CHECK(cs.capacity == cache_pages);
  CHECK(cs.cached <= cache_pages);
  CHECK(cs.allocated <= cache_pages);
  const store_stats after_scan = store->stats();
  for (const auto& k : hot) {
    check_get(k);
  }
  CHECK(pages_read(store->stats()) == pages_read(after_scan));

  // Overwriting the hot keys: the new leaves replace the old in the cache, so the reads that
  // follow still cost nothing, and return the new values.
  {
    std::vector<write_entry> batch;
    for (const auto& k : hot) {
      batch.push_back({k, "new-" + k, ts, write_op::upsert, 0});
      model[k] = batch.back().value;
    }
    ++ts;
    std::sort(batch.begin(), batch.end(),
              [](const write_entry& a, const write_entry& b) { return a.key < b.key; });
    REQUIRE(store->write(t, std::move(batch)) == error::ok);
  }
  const store_stats rewritten = store->stats();
  for (const auto& k : hot) {
    check_get(k);
  }
  CHECK(pages_read(store->stats()) == pages_read(rewritten));

  // Random writes of every kind against the model, reads in between, with a cache of a few
  // dozen pages: stale pages would show as wrong values. One value in eight is an overflow
  // chain of 2-8 pages, so values are read partly from the cache and partly from storage.
  std::mt19937_64 rng(42);
  std::array<int, 4> ran{};  // batches, range deletes, truncates, hot reads
  for (int step = 0; step < 60; ++step) {
    const int drawn = static_cast<int>(rng() % 10);
    const int op = step % 20 == 8 ? 8 : drawn == 8 ? 9 : drawn;  // truncates on three steps
    ++ran[op < 6 ? 0 : op < 8 ? 1 : op == 8 ? 2 : 3];
    if (op < 6) {
      std::map<std::string, write_entry> batch;
      for (int n = 0; n < 40; ++n) {
        const std::string k = key_of(static_cast<int>(rng() % (keys + 500)));
        const bool del = rng() % 5 == 0;
        const std::size_t size = rng() % 8 == 0 ? 5000 + rng() % 28000 : 50 + rng() % 400;
        batch[k] = {k, del ? "" : std::string(size, static_cast<char>('A' + (step + n) % 26)), ts,
                    del ? write_op::erase : write_op::upsert, 0};
      }
      std::vector<write_entry> v;
      for (auto& [k, e] : batch) {
        if (e.op == write_op::erase) {
          model.erase(k);
        } else {
          model[k] = e.value;
        }
        v.push_back(std::move(e));
      }
      ++ts;
      REQUIRE(store->write(t, std::move(v)) == error::ok);
    } else if (op < 8) {
      const int a = static_cast<int>(rng() % keys);
      const std::string lo = key_of(a);
      const std::string hi = key_of(a + 1 + static_cast<int>(rng() % 100));
      REQUIRE(store->delete_range(t, lo, hi) == error::ok);
      model.erase(model.lower_bound(lo), model.lower_bound(hi));
    } else if (op == 8) {
      const std::string from = key_of(keys - static_cast<int>(rng() % 300));
      REQUIRE(store->truncate(t, from) == error::ok);
      model.erase(model.lower_bound(from), model.end());
    } else {
      for (const auto& k : hot) {
        check_get(k);
      }
    }
    for (int n = 0; n < 30; ++n) {
      check_get(key_of(static_cast<int>(rng() % (keys + 500))));
    }
  }
  CHECK(ran[0] > 10);
  CHECK(ran[1] > 3);
  CHECK(ran[2] == 3);
  CHECK(ran[3] > 0);
  const auto check_all = [&] {
    std::map<std::string, std::string> seen;
    for (const kv_entry& e : store->scan(t)) {
      seen[e.key] = e.value;
    }
    CHECK(seen == model);
    for (const auto& [k, v] : model) {
      check_get(k);
    }
  };
  check_all();
  std::string problem;
  CHECK(store->verify(t, problem) == error::ok);
  store->stop();
  REQUIRE(store->start() == error::ok);
  check_all();
  CHECK(store->data_cache_stats().cached <= cache_pages);
  store->stop();

  // Size 0: no cache, every data page is read.
  store.reset();
  f.opts.data_page_cache_size = 0;
  store = f.make();
  REQUIRE(store->start() == error::ok);
  for (int round = 0; round < 3; ++round) {
    for (const auto& k : hot) {
      check_get(k);
    }
  }
  CHECK(store->data_cache_stats().capacity == 0);
  CHECK(store->stats().total()[counter::data_cache_hits] == 0);
  CHECK(store->stats().total()[counter::data_cache_misses] == 0);
  CHECK(pages_read(store->stats()) >= 3 * hot.size());
  store->stop();
}
