// The copy-on-write B+tree without the store around it: tree_writer drives one partition over
// memory_io, tree_reader reads it back and tree_verifier checks its structure after every
// commit, and every step is compared against a std::map model (point reads of every key and
// of absent keys, floor, forward and reverse scans with pagination by entries and bytes).
//
// Besides the model the harness checks, after every commit:
// * page accounting: no two logical pages share a file page, and every file page below the
//   allocator's max_fp is either mapped or free (no leak) once no old version is pinned;
// * the TTL tree mirrors the records that carry an expiry, one entry (be64 expiry + key) per
//   record stored, expired or not;
// * the records stored (as a reader at time 0 sees them, expired ones included) lie between
//   the live records and the model's, and the partition's next expiry is not after the
//   earliest one stored.
//
// Pages are 4 KiB with restart intervals of 1 and 2, so leaves and index pages split and
// merge after a few dozen records and the trees grow three or more levels.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include <eloqstore/comparator.hpp>
#include <eloqstore/detail/btree/reader.hpp>
#include <eloqstore/detail/btree/verify.hpp>
#include <eloqstore/detail/btree/writer.hpp>
#include <eloqstore/detail/io/file_names.hpp>
#include <eloqstore/detail/manifest/replay.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/io/memory.hpp>
#include <eloqstore/types.hpp>

#include "support/page_store.hpp"
#include "support/print_error.hpp"

namespace {

namespace detail = eloqstore::detail;
using detail::page_id;
using eloqstore::error;
using eloqstore::kv_entry;
using eloqstore::memory_io;
using eloqstore::write_entry;
using eloqstore::write_op;
using eloqstore::test::rng;

constexpr std::size_t page_bytes = 4096;
constexpr std::uint64_t start_ms = 1'000'000;

// Keys in descending byte order. The separator is the larger key itself (a < s <= b holds
// for s = b); the writer must not assume it is a prefix or bytewise-ordered.
struct descending_comparator {
  [[nodiscard]] std::weak_ordering compare(std::string_view a, std::string_view b) const noexcept {
    return eloqstore::bytewise_comparator{}.compare(b, a);
  }
  [[nodiscard]] static constexpr std::string_view name() noexcept { return "test.descending"; }
  [[nodiscard]] std::string shortest_separator(std::string_view, std::string_view b) const {
    return std::string(b);
  }
};
static_assert(eloqstore::key_comparator<descending_comparator>);

template <typename Cmp>
struct key_less {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept {
    return Cmp{}.compare(a, b) < 0;
  }
};

struct stored {
  std::string value;
  std::uint64_t ts = 0;
  std::uint64_t expire_ts = 0;
};

// Key n of a test: a common run, a fixed-width number and a run of letters (59 to 87 bytes).
// Neighbours differ only after the common run, so separators are long and index pages fill
// after about a hundred children.
std::string key_of(std::uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string k = "key/" + std::string(48, '_');
  k.append(7 - std::min<std::size_t>(7, digits.size()), '0');
  k.append(digits);
  k.append(n % 29, static_cast<char>('a' + n % 26));
  return k;
}

std::string be64(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i) {
    s[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return s;
}

write_entry upsert(std::string key, std::string value, std::uint64_t ts,
                   std::uint64_t expire_ts = 0) {
  return write_entry{std::move(key), std::move(value), ts, write_op::upsert, expire_ts};
}
write_entry erase(std::string key, std::uint64_t ts) {
  return write_entry{std::move(key), {}, ts, write_op::erase, 0};
}

bool same(const kv_entry& e, const std::string& key, const stored& s) {
  return e.key == key && e.value == s.value && e.timestamp == s.ts && e.expire_ts == s.expire_ts;
}

// One partition, its writer configuration, the shard's page access, and the model.
template <typename Cmp>
class tree_harness {
 public:
  using model_type = std::map<std::string, stored, key_less<Cmp>>;
  using reader_type = detail::tree_reader<memory_io, Cmp>;

  explicit tree_harness(detail::writer_config cfg, std::size_t cache_pages = 512,
                        unsigned pages_per_file_shift = 6)
      : cfg_(cfg), cache_pages_(cache_pages), shift_(pages_per_file_shift) {
    REQUIRE(io_.open() == error::ok);
    pages_ = make_pages();
    p_ = std::make_unique<detail::partition_state>();
    p_->id = table_;
    p_->loaded = true;
  }
  tree_harness(const tree_harness&) = delete;
  tree_harness& operator=(const tree_harness&) = delete;
  ~tree_harness() { pages_->invalidate_all(*p_); }

  [[nodiscard]] detail::partition_state& partition() { return *p_; }
  [[nodiscard]] detail::page_access<memory_io>& pages() { return *pages_; }
  [[nodiscard]] memory_io& io() { return io_; }
  [[nodiscard]] const model_type& model() const { return model_; }
  [[nodiscard]] const Cmp& cmp() const { return cmp_; }
  [[nodiscard]] const detail::writer_stats& last_stats() const { return stats_; }
  [[nodiscard]] std::uint64_t now() const { return now_ms_; }
  void set_now(std::uint64_t ms) { now_ms_ = ms; }
  [[nodiscard]] std::uint64_t next_ts() { return ++ts_; }
  [[nodiscard]] std::size_t commits() const { return commits_; }
  // The most file pages batch writes (write()) have had in use at once.
  [[nodiscard]] std::size_t peak_in_use() const { return peak_in_use_; }

  // Applies a batch (put in key order here, equal keys kept in batch order) and commits it.
  void write(std::vector<write_entry> batch) {
    std::stable_sort(batch.begin(), batch.end(), [&](const write_entry& a, const write_entry& b) {
      return cmp_.compare(a.key, b.key) < 0;
    });
    const std::size_t live_before = p_->current->mapping.live_count();
    {
      detail::tree_writer<memory_io, Cmp> w(*pages_, *p_, cmp_, cfg_, now_ms_);
      REQUIRE(w.apply(batch) == error::ok);
      REQUIRE(w.commit() == error::ok);
      stats_ = w.stats();
    }
    // While it built, the writer's pages and the published version's were all in use.
    peak_in_use_ = std::max(peak_in_use_, live_before + stats_.pages_written);
    for (const write_entry& e : batch) {
      apply_to_model(e);
    }
    ++commits_;
  }

  void delete_range(std::string begin, std::string end) {  // copies: model keys may be passed
    {
      detail::tree_writer<memory_io, Cmp> w(*pages_, *p_, cmp_, cfg_, now_ms_);
      REQUIRE(w.delete_range(begin, end) == error::ok);
      REQUIRE(w.commit() == error::ok);
      stats_ = w.stats();
    }
    std::erase_if(model_, [&](const auto& kv) {
      return (begin.empty() || cmp_.compare(kv.first, begin) >= 0) &&
             (end.empty() || cmp_.compare(kv.first, end) < 0);
    });
    ++commits_;
  }

  void truncate_all() {
    {
      detail::tree_writer<memory_io, Cmp> w(*pages_, *p_, cmp_, cfg_, now_ms_);
      w.truncate_all();
      REQUIRE(w.commit() == error::ok);
      stats_ = w.stats();
    }
    model_.clear();
    ++commits_;
  }

  void clean_expired() {
    {
      detail::tree_writer<memory_io, Cmp> w(*pages_, *p_, cmp_, cfg_, now_ms_);
      REQUIRE(w.clean_expired() == error::ok);
      REQUIRE(w.commit() == error::ok);
      stats_ = w.stats();
    }
    std::erase_if(model_, [&](const auto& kv) { return expired(kv.second.expire_ts); });
    ++commits_;
  }

  // Throws the partition's in-memory state away (after a crash of memory_io if `crash`) and
  // rebuilds it from its manifest, as the store does when it loads a partition; checks that
  // the manifest recorded the roots and every logical page's file page.
  void reopen(bool crash) {
    if (crash) {
      io_.crash();
    }
    std::string bytes;
    REQUIRE(io_.read_file(table_, detail::manifest_file_name(cfg_.term), bytes) == error::ok);
    detail::replay_result r;
    REQUIRE(detail::replay_manifest(bytes, r) == error::ok);
    auto next = std::make_unique<detail::partition_state>();
    next->id = table_;
    next->loaded = true;
    next->has_manifest = true;
    next->current->root = r.root;
    next->current->ttl_root = r.ttl_root;
    next->current->mapping = detail::mapping_table::from_values(r.mapping);
    next->fps = detail::file_page_allocator(next->current->mapping, r.max_fp_id);
    next->manifest_bytes = r.append_offset;
    next->manifest_file_bytes =
        std::max<std::uint64_t>(r.append_offset, bytes.size() / detail::manifest_alignment_bytes *
                                                     detail::manifest_alignment_bytes);
    next->terms = std::move(r.terms);
    next->current->dictionary = detail::make_dictionary(std::move(r.dictionary));
    next->next_expire_ts = r.ttl_root.is_none() ? 0 : 1;

    const detail::partition_version& was = *p_->current;
    const detail::partition_version& now = *next->current;
    CHECK(now.root == was.root);
    CHECK(now.ttl_root == was.ttl_root);
    CHECK(now.mapping.live_count() == was.mapping.live_count());
    CHECK(r.max_fp_id <= p_->fps.max_fp());
    const std::size_t ids = std::max(now.mapping.size(), was.mapping.size());
    std::size_t differ = 0;
    for (std::uint32_t i = 0; i < ids; ++i) {
      differ += now.mapping.file_page(page_id(i)) == was.mapping.file_page(page_id(i)) ? 0 : 1;
    }
    CHECK(differ == 0);
    CHECK(next->terms == p_->terms);

    pages_->invalidate_all(*p_);
    p_ = std::move(next);
    pages_ = make_pages();  // a restart: the index cache starts cold
  }

  // The number of index and data pages of the tree at `root` (overflow pages not counted).
  [[nodiscard]] std::size_t tree_pages(page_id root) {
    std::size_t count = 0;
    std::vector<page_id> todo;
    if (!root.is_none()) {
      todo.push_back(root);
    }
    std::vector<char> bytes;
    for (std::size_t guard = 0; !todo.empty(); ++guard) {
      REQUIRE(guard <= p_->current->mapping.size());
      const page_id id = todo.back();
      todo.pop_back();
      REQUIRE(pages_->read(*p_, p_->current->mapping, id, bytes) == error::ok);
      detail::index_page page;
      REQUIRE(detail::index_page::open(bytes, page) == error::ok);
      ++count;
      detail::index_page_iter it(page);
      for (it.seek_to_first(); it.valid(); it.next()) {
        if (page.is_leaf_index()) {
          ++count;
        } else {
          todo.push_back(it.child());
        }
      }
    }
    return count;
  }

  // Levels of the main tree: index levels plus the data level; 0 when empty.
  [[nodiscard]] std::size_t height() {
    std::size_t levels = 0;
    std::vector<char> bytes;
    for (page_id id = p_->current->root; !id.is_none();) {
      REQUIRE(levels < detail::index_levels_max + 1);
      REQUIRE(pages_->read(*p_, p_->current->mapping, id, bytes) == error::ok);
      detail::index_page page;
      REQUIRE(detail::index_page::open(bytes, page) == error::ok);
      ++levels;
      if (page.is_leaf_index()) {
        return levels + 1;
      }
      id = page.leftmost();
    }
    return levels;
  }

  // Everything the harness compares; `all_keys` reads every model key, else a sample (plus
  // every scan, which covers every key anyway).
  void check(rng& r, bool all_keys = true) {
    check_structure();
    check_pages();
    const std::vector<std::pair<std::string, stored>> live = live_records();
    reader_type reader(*pages_, *p_, p_->current, cmp_, now_ms_);
    check_gets(reader, r, all_keys);
    check_floor(reader, r);
    check_forward(reader, live, r);
    check_reverse(reader, live, r);
    check_stored(live);
  }

  [[nodiscard]] bool expired(std::uint64_t expire_ts) const {
    return detail::is_expired(expire_ts, now_ms_);
  }

  // The live records of the model, in key order.
  [[nodiscard]] std::vector<std::pair<std::string, stored>> live_records() const {
    std::vector<std::pair<std::string, stored>> live;
    for (const auto& [k, s] : model_) {
      if (!expired(s.expire_ts)) {
        live.emplace_back(k, s);
      }
    }
    return live;
  }

  // A key near the model's keys: one with a '#' appended, or a prefix cut inside its number
  // or its letters (which may be a model key).
  [[nodiscard]] std::string probe(rng& r, std::uint64_t key_space) const {
    const std::string k = key_of(r.uniform(0, key_space));
    return r.chance(0.5) ? k + "#" : k.substr(0, r.uniform(53, k.size()));
  }

  // Every record stored, expired ones included (a reader at time 0 sees them all).
  [[nodiscard]] std::vector<kv_entry> stored_records() {
    reader_type all(*pages_, *p_, p_->current, cmp_, 0);
    std::vector<kv_entry> out;
    bool more = false;
    REQUIRE(all.scan({}, {}, true, {}, out, more) == error::ok);
    CHECK_FALSE(more);
    return out;
  }

 private:
  std::unique_ptr<detail::page_access<memory_io>> make_pages() {
    return std::make_unique<detail::page_access<memory_io>>(io_, page_bytes, shift_, cache_pages_,
                                                            true);
  }

  void apply_to_model(const write_entry& e) {
    const auto it = model_.find(e.key);
    // A change loses only to a live record with a newer timestamp.
    if (it != model_.end() && !expired(it->second.expire_ts) && e.timestamp < it->second.ts) {
      return;
    }
    if (e.op == write_op::erase || expired(e.expire_ts)) {
      if (it != model_.end()) {
        model_.erase(it);
      }
      return;
    }
    model_[e.key] = stored{e.value, e.timestamp, e.expire_ts};
  }

  void check_structure() {
    std::string problem;
    detail::tree_verifier<memory_io, Cmp> v(*pages_, *p_, *p_->current, cmp_);
    const error e = v.run(problem);
    CHECK_MESSAGE(e == error::ok, problem);
  }

  // No file page is mapped twice; with no old version pinned, every file page ever handed
  // out is mapped or free.
  void check_pages() {
    std::set<std::uint64_t> mapped;
    std::size_t twice = 0;
    std::size_t past_max = 0;
    p_->current->mapping.for_each([&](std::uint64_t v) {
      if (detail::tag_of(v) == detail::mapping_tag::file_page) {
        const std::uint64_t fp = detail::decode_file_page(v).value();
        twice += mapped.insert(fp).second ? 0 : 1;
        past_max += fp < p_->fps.max_fp() ? 0 : 1;
      }
    });
    CHECK(twice == 0);
    CHECK(past_max == 0);
    CHECK(mapped.size() == p_->current->mapping.live_count());
    if (p_->retired.empty() && p_->leaked_fps == 0) {
      CHECK(mapped.size() + p_->fps.free_count() == p_->fps.max_fp());
    }
  }

  void check_gets(reader_type& reader, rng& r, bool all_keys) {
    std::size_t wrong = 0;
    std::string first;
    const auto note = [&](const std::string& what) {
      if (wrong++ == 0) {
        first = what;
      }
    };
    for (const auto& [k, s] : model_) {
      if (!all_keys && model_.size() > 400 && r.uniform(0, model_.size()) > 400) {
        continue;
      }
      kv_entry e;
      const error got = reader.get(k, e);
      if (expired(s.expire_ts)) {
        if (got != error::not_found) {
          note("expired key " + k + " is visible");
        }
      } else if (got != error::ok || !same(e, k, s)) {
        note("get " + k + " returned a different record");
      }
    }
    for (int n = 0; n < 50; ++n) {
      const std::string k = probe(r, key_space_hint());
      if (model_.contains(k)) {
        continue;
      }
      kv_entry e;
      if (reader.get(k, e) != error::not_found) {
        note("absent key " + k + " found");
      }
    }
    CHECK_MESSAGE(wrong == 0, first);
  }

  void check_floor(reader_type& reader, rng& r) {
    std::size_t wrong = 0;
    std::string first;
    for (int n = 0; n < 60; ++n) {
      std::string k = probe(r, key_space_hint());
      if (n % 3 == 0 && !model_.empty()) {
        auto it = model_.begin();
        std::advance(it, static_cast<long>(r.uniform(0, model_.size() - 1)));
        k = it->first;
      }
      // The model's floor: the last live key <= k.
      auto it = model_.upper_bound(k);
      const stored* want = nullptr;
      std::string want_key;
      while (it != model_.begin()) {
        --it;
        if (!expired(it->second.expire_ts)) {
          want = &it->second;
          want_key = it->first;
          break;
        }
      }
      kv_entry e;
      const error got = reader.floor(k, e);
      const bool ok =
          want == nullptr ? got == error::not_found : got == error::ok && same(e, want_key, *want);
      if (!ok && wrong++ == 0) {
        first = "floor of " + k + " wrong";
      }
    }
    CHECK_MESSAGE(wrong == 0, first);
  }

  // Forward scans: all at once, paginated by entries and by bytes, and a bounded range.
  void check_forward(reader_type& reader, const std::vector<std::pair<std::string, stored>>& live,
                     rng& r) {
    std::vector<kv_entry> all;
    bool more = false;
    REQUIRE(reader.scan({}, {}, true, {}, all, more) == error::ok);
    CHECK_FALSE(more);
    CHECK(matches(all, live, 0, live.size()));

    for (const bool by_bytes : {false, true}) {
      std::vector<kv_entry> got;
      std::string from;
      std::size_t pages = 0;
      for (; pages <= live.size() + 1; ++pages) {
        detail::scan_limits lim;
        lim.max_entries = by_bytes ? 0 : r.uniform(1, 40);
        lim.max_bytes = by_bytes ? r.uniform(1, 3000) : 0;
        lim.prefetch = r.uniform(1, 8);
        std::vector<kv_entry> page;
        REQUIRE(reader.scan(from, {}, pages == 0, lim, page, more) == error::ok);
        CHECK(page.size() <= (by_bytes ? live.size() : lim.max_entries));
        got.insert(got.end(), page.begin(), page.end());
        CHECK(more == (got.size() < live.size()));
        if (!more || page.empty()) {
          break;
        }
        from = page.back().key;
      }
      CHECK(matches(got, live, 0, live.size()));
    }

    // [b, e) with an inclusive or exclusive begin; either end may be unbounded.
    for (int n = 0; n < 4; ++n) {
      const std::string b = r.chance(0.2) ? std::string() : bound(r, live);
      const std::string e = r.chance(0.2) ? std::string() : bound(r, live);
      const bool inclusive = r.chance(0.5);
      std::size_t lo = 0;
      while (lo < live.size() && !b.empty() &&
             (cmp_.compare(live[lo].first, b) < 0 ||
              (!inclusive && cmp_.compare(live[lo].first, b) == 0))) {
        ++lo;
      }
      std::size_t hi = lo;
      while (hi < live.size() && (e.empty() || cmp_.compare(live[hi].first, e) < 0)) {
        ++hi;
      }
      std::vector<kv_entry> got;
      REQUIRE(reader.scan(b, e, inclusive, {}, got, more) == error::ok);
      CHECK_FALSE(more);
      CHECK(matches(got, live, lo, hi));
    }
  }

  // Reverse scans from the end down, paginated (a page continues below the last key
  // returned), within [b, e).
  void check_reverse(reader_type& reader, const std::vector<std::pair<std::string, stored>>& live,
                     rng& r) {
    for (int n = 0; n < 2; ++n) {
      const std::string b = n == 0 || r.chance(0.3) ? std::string() : bound(r, live);
      std::string e = n == 0 || r.chance(0.3) ? std::string() : bound(r, live);
      std::size_t lo = 0;
      while (lo < live.size() && !b.empty() && cmp_.compare(live[lo].first, b) < 0) {
        ++lo;
      }
      std::size_t hi = lo;
      while (hi < live.size() && (e.empty() || cmp_.compare(live[hi].first, e) < 0)) {
        ++hi;
      }
      std::vector<kv_entry> got;
      bool more = false;
      for (std::size_t pages = 0; pages <= live.size() + 1; ++pages) {
        detail::scan_limits lim;
        lim.max_entries = r.uniform(1, 50);
        std::vector<kv_entry> page;
        REQUIRE(reader.scan_reverse(b, e, lim, page, more) == error::ok);
        CHECK(page.size() <= lim.max_entries);
        got.insert(got.end(), page.begin(), page.end());
        CHECK(more == (got.size() < hi - lo));
        if (!more || page.empty()) {
          break;
        }
        e = page.back().key;
      }
      std::reverse(got.begin(), got.end());
      CHECK(matches(got, live, lo, hi));
    }
  }

  // The records stored lie between the live ones and the model's; the TTL tree holds one
  // entry per stored record with an expiry; the partition's next expiry is not after the
  // earliest stored.
  void check_stored(const std::vector<std::pair<std::string, stored>>& live) {
    const std::vector<kv_entry> all = stored_records();
    std::size_t unknown = 0;
    std::size_t live_seen = 0;
    std::vector<std::string> ttl_want;
    std::uint64_t earliest = 0;
    for (const kv_entry& e : all) {
      const auto it = model_.find(e.key);
      unknown += it != model_.end() && same(e, it->first, it->second) ? 0 : 1;
      live_seen += it != model_.end() && !expired(it->second.expire_ts) ? 1 : 0;
      if (e.expire_ts != 0) {
        ttl_want.push_back(be64(e.expire_ts) + e.key);
        earliest = earliest == 0 ? e.expire_ts : std::min(earliest, e.expire_ts);
      }
    }
    CHECK(unknown == 0);
    CHECK(live_seen == live.size());
    CHECK(p_->current->root.is_none() == all.empty());
    std::sort(ttl_want.begin(), ttl_want.end());
    CHECK(ttl_keys() == ttl_want);
    if (earliest != 0) {
      CHECK(p_->next_expire_ts != 0);
      CHECK(p_->next_expire_ts <= earliest);
    }
  }

  // The TTL tree's keys, in byte order.
  [[nodiscard]] std::vector<std::string> ttl_keys() {
    auto version = std::make_shared<detail::partition_version>();
    version->root = p_->current->ttl_root;
    version->mapping = p_->current->mapping;
    const eloqstore::bytewise_comparator bytewise;
    detail::tree_reader<memory_io, eloqstore::bytewise_comparator> ttl(*pages_, *p_, version,
                                                                       bytewise, 0);
    std::vector<kv_entry> out;
    bool more = false;
    REQUIRE(ttl.scan({}, {}, true, {}, out, more) == error::ok);
    std::vector<std::string> keys;
    for (const kv_entry& e : out) {
      keys.push_back(e.key);
    }
    return keys;
  }

  // A scan bound: a live key or a probe near one.
  [[nodiscard]] std::string bound(rng& r, const std::vector<std::pair<std::string, stored>>& live) {
    if (!live.empty() && r.chance(0.5)) {
      return live[r.uniform(0, live.size() - 1)].first;
    }
    return probe(r, key_space_hint());
  }

  [[nodiscard]] std::uint64_t key_space_hint() const {
    return model_.empty() ? 1000 : std::max<std::uint64_t>(1000, model_.size() * 3);
  }

  [[nodiscard]] static bool matches(const std::vector<kv_entry>& got,
                                    const std::vector<std::pair<std::string, stored>>& live,
                                    std::size_t lo, std::size_t hi) {
    if (got.size() != hi - lo) {
      return false;
    }
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (!same(got[i], live[lo + i].first, live[lo + i].second)) {
        return false;
      }
    }
    return true;
  }

  detail::writer_config cfg_;
  std::size_t cache_pages_;
  unsigned shift_;
  Cmp cmp_;
  eloqstore::table_ident table_{"tree", 7};
  memory_io io_;
  // Declared before the partition: the partition's mapping chunks point into its cache's
  // frames and are destroyed first.
  std::unique_ptr<detail::page_access<memory_io>> pages_;
  std::unique_ptr<detail::partition_state> p_;
  model_type model_;
  std::uint64_t now_ms_ = start_ms;
  std::uint64_t ts_ = 0;
  std::size_t commits_ = 0;
  std::size_t peak_in_use_ = 0;
  detail::writer_stats stats_;
};

// 4 KiB pages, restart intervals 1 (data) and 2 (index): splits and merges come early.
detail::writer_config tiny_config() {
  detail::writer_config c;
  c.page_size = page_bytes;
  c.data_restart_interval = 1;
  c.index_restart_interval = 2;
  c.overflow_pointers = 4;
  return c;
}

// A random batch over keys [0, key_space): upserts with probability `put`, else erases;
// small inline values, a few duplicate keys (applied in batch order), a few stale timestamps.
template <typename Cmp>
std::vector<write_entry> random_batch(tree_harness<Cmp>& h, rng& r, std::size_t n,
                                      std::uint64_t key_space, double put) {
  std::vector<write_entry> batch;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string k = key_of(r.uniform(0, key_space - 1));
    const std::uint64_t ts = r.chance(0.05) ? r.uniform(0, h.next_ts()) : h.next_ts();
    if (r.chance(put)) {
      batch.push_back(upsert(k, r.bytes(r.uniform(1, 400)), ts));
    } else {
      batch.push_back(erase(k, ts));
    }
    if (r.chance(0.03)) {
      batch.push_back(upsert(k, r.bytes(r.uniform(1, 40)), h.next_ts()));
    }
  }
  return batch;
}

// Erases of up to n keys the model holds, picked at random.
template <typename Cmp>
std::vector<write_entry> erase_some(tree_harness<Cmp>& h, rng& r, std::size_t n) {
  std::vector<write_entry> batch;
  const auto& m = h.model();
  for (std::size_t i = 0; i < n && !m.empty(); ++i) {
    auto it = m.begin();
    std::advance(it, static_cast<long>(r.uniform(0, m.size() - 1)));
    batch.push_back(erase(it->first, h.next_ts()));
  }
  return batch;
}

// Erases of every model key.
template <typename Cmp>
std::vector<write_entry> erase_all(tree_harness<Cmp>& h) {
  std::vector<write_entry> batch;
  for (const auto& kv : h.model()) {
    batch.push_back(erase(kv.first, h.next_ts()));
  }
  return batch;
}

// Checks that the partition holds nothing: no roots, no mapped page, every file page free.
void check_empty(detail::partition_state& p) {
  CHECK(p.current->root.is_none());
  CHECK(p.current->ttl_root.is_none());
  CHECK(p.current->mapping.live_count() == 0);
  CHECK(p.fps.free_count() == p.fps.max_fp());
}

}  // namespace

TEST_CASE_TEMPLATE("tree: random batches against a std::map model; pages split, emptied pages go",
                   Cmp, eloqstore::bytewise_comparator, descending_comparator) {
  rng r(0x7472656531);
  tree_harness<Cmp> h(tiny_config());
  h.check(r);  // the empty partition, before it has a manifest
  CHECK_FALSE(h.partition().has_manifest);
  const std::uint64_t key_space = 6000;
  std::size_t tallest = 0;
  // Grow, churn, then shrink: splits on the way up; emptied pages freed and the root
  // collapsing on the way down.
  for (int step = 0; step < 90; ++step) {
    const double put = step < 35 ? 0.95 : 0.6;
    const std::size_t n = step < 35 ? r.uniform(50, 250) : r.uniform(20, 200);
    if (step < 55) {
      h.write(random_batch(h, r, n, key_space, put));
    } else {
      std::vector<write_entry> batch = erase_some(h, r, h.model().size() / 6 + 1);
      if (step % 4 == 0) {  // a few upserts among the erases
        for (const write_entry& w : random_batch(h, r, 10, key_space, 1.0)) {
          batch.push_back(w);
        }
      }
      h.write(std::move(batch));
    }
    CHECK(h.partition().has_manifest);
    h.check(r, step % 10 == 0);
    // Inline values only: the mapped pages are exactly the tree's pages.
    CHECK(h.partition().current->mapping.live_count() == h.tree_pages(h.partition().current->root));
    tallest = std::max(tallest, h.height());
    if (step == 34) {
      CHECK(h.model().size() > 3000);
      CHECK(h.height() >= 3);
    }
  }
  CHECK(tallest >= 3);
  CHECK(h.model().size() < 50);

  // Scans come back in the comparator's order, not byte order.
  const auto all = h.stored_records();
  REQUIRE(all.size() > 2);
  const bool descending = std::is_same_v<Cmp, descending_comparator>;
  CHECK((all.front().key > all.back().key) == descending);

  // Pages are never merged with their siblings (only emptied ones go), so a sparse tree keeps
  // its height; deleting all but the first key empties every subtree but the leftmost, and
  // the root collapses onto it.
  REQUIRE(h.model().size() > 1);
  h.delete_range(std::next(h.model().begin())->first, {});
  h.check(r);
  CHECK(h.model().size() == 1);
  CHECK(h.height() == 2);
  CHECK(h.partition().current->mapping.live_count() == 2);  // one leaf-index page, one leaf

  h.write(erase_all(h));
  h.check(r);
  CHECK(h.model().empty());
  check_empty(h.partition());
  CHECK(h.height() == 0);
}

TEST_CASE("tree: a tiny index cache (frames pinned by the writer's descent) still works") {
  rng r(99);
  tree_harness<eloqstore::bytewise_comparator> h(tiny_config(), /*cache_pages=*/8);
  for (int step = 0; step < 25; ++step) {
    h.write(random_batch(h, r, r.uniform(100, 300), 5000, 0.9));
    h.check(r, false);
  }
  CHECK(h.height() >= 3);
  CHECK(h.pages().cache_stats().capacity == 8);
  CHECK(h.pages().cache_stats().allocated <= 8);
}

TEST_CASE("tree: overflow values are written, replaced and deleted, and their pages freed") {
  rng r(0x6f766572);
  tree_harness<eloqstore::bytewise_comparator> h(tiny_config());
  const std::uint64_t keys = 120;
  const auto big = [&] { return r.bytes(r.uniform(5 * 1024, 100 * 1024)); };
  // Round 0 writes large values; later rounds replace some by other large or small values
  // and delete some.
  for (int round = 0; round < 8; ++round) {
    std::vector<write_entry> batch;
    for (std::uint64_t k = 0; k < keys; ++k) {
      if (round > 0 && !r.chance(0.4)) {
        continue;
      }
      const double pick = round == 0 ? 0.0 : static_cast<double>(r.uniform(0, 99)) / 100.0;
      if (pick < 0.6) {
        batch.push_back(upsert(key_of(k), big(), h.next_ts()));
      } else if (pick < 0.8) {
        batch.push_back(upsert(key_of(k), r.bytes(r.uniform(1, 100)), h.next_ts()));
      } else {
        batch.push_back(erase(key_of(k), h.next_ts()));
      }
    }
    h.write(std::move(batch));
    h.check(r);
    const std::size_t mapped = h.partition().current->mapping.live_count();
    const std::size_t tree = h.tree_pages(h.partition().current->root);
    std::size_t large = 0;
    for (const auto& kv : h.model()) {
      large += kv.second.value.size() > page_bytes ? 1 : 0;
    }
    // Every large value holds at least one overflow page besides the tree's pages.
    CHECK(mapped >= tree + large);
    if (round == 0) {
      CHECK(large == keys);
    }
  }

  // Small values everywhere: every overflow page goes.
  std::vector<write_entry> small;
  for (std::uint64_t k = 0; k < keys; ++k) {
    small.push_back(upsert(key_of(k), "v" + std::to_string(k), h.next_ts()));
  }
  h.write(std::move(small));
  h.check(r);
  CHECK(h.partition().current->mapping.live_count() == h.tree_pages(h.partition().current->root));

  // Large again, then deleted.
  std::vector<write_entry> again;
  for (std::uint64_t k = 0; k < keys; k += 2) {
    again.push_back(upsert(key_of(k), big(), h.next_ts()));
  }
  h.write(std::move(again));
  h.check(r);
  CHECK(h.partition().current->mapping.live_count() >
        h.tree_pages(h.partition().current->root) + keys / 2);
  h.write(erase_all(h));
  h.check(r);
  check_empty(h.partition());
}

TEST_CASE_TEMPLATE(
    "tree: TTL: expired keys are invisible, clean_expired purges them, the TTL "
    "tree mirrors the records",
    Cmp, eloqstore::bytewise_comparator, descending_comparator) {
  rng r(0x74746c);
  tree_harness<Cmp> h(tiny_config());
  const std::uint64_t key_space = 2500;
  bool purged_something = false;
  for (int step = 0; step < 40; ++step) {
    std::vector<write_entry> batch;
    const std::size_t n = r.uniform(30, 150);
    for (std::size_t i = 0; i < n; ++i) {
      const std::string k = key_of(r.uniform(0, key_space - 1));
      const std::uint64_t roll = r.uniform(0, 99);
      if (roll < 45) {  // expires within a few steps
        batch.push_back(
            upsert(k, r.bytes(r.uniform(1, 200)), h.next_ts(), h.now() + r.uniform(1, 5000)));
      } else if (roll < 50) {  // already expired: an erase in effect
        batch.push_back(
            upsert(k, r.bytes(10), h.next_ts(), h.now() - r.uniform(0, std::min(h.now(), 99ul))));
      } else if (roll < 53) {  // a large value that expires
        batch.push_back(
            upsert(k, r.bytes(r.uniform(5000, 20000)), h.next_ts(), h.now() + r.uniform(1, 5000)));
      } else if (roll < 85) {
        batch.push_back(upsert(k, r.bytes(r.uniform(1, 200)), h.next_ts()));
      } else {
        batch.push_back(erase(k, h.next_ts()));
      }
    }
    h.write(std::move(batch));
    h.check(r, false);
    h.set_now(h.now() + r.uniform(0, 1500));
    h.check(r, false);  // time passed: more keys expired, nothing written
    if (step % 5 == 4) {
      const std::size_t stored_before = h.stored_records().size();
      const std::size_t live = h.live_records().size();
      h.clean_expired();
      h.check(r, false);
      // Nothing expired remains stored.
      CHECK(h.stored_records().size() == live);
      purged_something = purged_something || stored_before > live;
    }
  }
  CHECK(purged_something);

  // Once nothing has expired, clean_expired writes nothing and records the next expiry.
  h.clean_expired();
  h.clean_expired();
  CHECK(h.last_stats().pages_written == 0);
  std::uint64_t earliest = 0;
  for (const auto& kv : h.model()) {
    if (kv.second.expire_ts != 0) {
      earliest = earliest == 0 ? kv.second.expire_ts : std::min(earliest, kv.second.expire_ts);
    }
  }
  REQUIRE(earliest != 0);
  CHECK(h.partition().next_expire_ts == earliest);

  // Past every expiry, with the keys without one erased: the purge empties the partition.
  std::vector<write_entry> batch;
  for (const auto& kv : h.model()) {
    if (kv.second.expire_ts == 0) {
      batch.push_back(erase(kv.first, h.next_ts()));
    }
  }
  h.write(std::move(batch));
  h.set_now(h.now() + 1'000'000);
  h.check(r);
  CHECK(h.live_records().empty());
  CHECK_FALSE(h.partition().current->ttl_root.is_none());
  h.clean_expired();
  h.check(r);
  check_empty(h.partition());
}

TEST_CASE_TEMPLATE("tree: delete_range with bounded and unbounded ends", Cmp,
                   eloqstore::bytewise_comparator, descending_comparator) {
  rng r(0x646572);
  tree_harness<Cmp> h(tiny_config());
  const std::uint64_t key_space = 4000;
  const auto fill = [&] {
    std::vector<write_entry> batch;
    for (std::uint64_t k = 0; k < key_space; k += r.uniform(1, 2)) {
      std::string v =
          r.chance(0.02) ? r.bytes(r.uniform(5000, 30000)) : r.bytes(r.uniform(50, 400));
      const std::uint64_t expire = r.chance(0.1) ? h.now() + 10'000'000 : 0;
      batch.push_back(upsert(key_of(k), std::move(v), h.next_ts(), expire));
    }
    h.write(std::move(batch));
    h.check(r, false);
  };
  fill();
  REQUIRE(h.height() >= 3);
  const auto key = [&](std::uint64_t k) { return key_of(std::min(k, key_space - 1)); };
  for (int step = 0; step < 20; ++step) {
    // Narrow ranges inside a leaf, wide ones over whole subtrees, keys and probes as ends.
    const std::uint64_t a = r.uniform(0, key_space - 1);
    const std::uint64_t width = r.chance(0.6) ? r.uniform(0, 10) : r.uniform(100, 600);
    std::string begin = key(a);
    std::string end = key(a + width);
    if (r.chance(0.3)) {
      begin += "#";  // between two keys
    }
    if (Cmp{}.compare(begin, end) > 0) {
      std::swap(begin, end);
    }
    h.delete_range(begin, end);
    h.check(r, false);
  }
  CHECK(h.model().size() > key_space / 5);
  // Unbounded ends; an empty range; a reversed range (nothing).
  const std::string mid = key_of(key_space / 2);
  const std::size_t before = h.model().size();
  h.delete_range(mid, mid);
  CHECK(h.model().size() == before);
  h.check(r, false);
  h.delete_range(key_of(key_space / 2 + 50), key_of(key_space / 2 - 50));
  h.check(r, false);
  const std::string lo = key_of(key_space / 4);
  const std::string hi = key_of(3 * key_space / 4);
  const std::string first = Cmp{}.compare(lo, hi) < 0 ? lo : hi;
  const std::string second = Cmp{}.compare(lo, hi) < 0 ? hi : lo;
  h.delete_range({}, first);  // (-inf, first)
  h.check(r);
  h.delete_range(second, {});  // [second, +inf)
  h.check(r);
  CHECK(h.model().size() > 0);
  std::size_t outside = 0;
  for (const auto& kv : h.model()) {
    outside += Cmp{}.compare(kv.first, first) >= 0 && Cmp{}.compare(kv.first, second) < 0 ? 0 : 1;
  }
  CHECK(outside == 0);
  h.delete_range({}, {});
  h.check(r);
  check_empty(h.partition());
  // The partition takes writes again.
  fill();
  CHECK(h.model().size() > 1000);
}

TEST_CASE("tree: truncate_all frees every page and the partition takes writes again") {
  rng r(0x7472756e63);
  tree_harness<eloqstore::bytewise_comparator> h(tiny_config());
  for (int round = 0; round < 3; ++round) {
    for (int step = 0; step < 8; ++step) {
      std::vector<write_entry> batch = random_batch(h, r, 300, 4000, 0.9);
      batch.push_back(upsert(key_of(r.uniform(0, 3999)) + "$big", r.bytes(40000), h.next_ts()));
      batch.push_back(
          upsert(key_of(r.uniform(0, 3999)) + "$ttl", "t", h.next_ts(), h.now() + 1000));
      h.write(std::move(batch));
    }
    h.check(r, false);
    CHECK(h.height() >= 3);
    const std::uint64_t max_fp = h.partition().fps.max_fp();
    h.truncate_all();
    h.check(r);
    CHECK(h.model().empty());
    check_empty(h.partition());
    CHECK(h.partition().next_expire_ts == 0);
    CHECK(h.partition().fps.max_fp() == max_fp);  // the file pages stay for reuse
    CHECK(h.last_stats().manifest_snapshot);      // an empty snapshot replaces the manifest
    h.reopen(true);
    h.check(r);
    check_empty(h.partition());
  }
}

TEST_CASE_TEMPLATE("tree: a partition rebuilt from its manifest after a crash holds the same tree",
                   Cmp, eloqstore::bytewise_comparator, descending_comparator) {
  rng r(0x6d616e);
  detail::writer_config cfg = tiny_config();
  cfg.manifest_limit = 96 * 1024;  // small: snapshots replace the log now and then
  cfg.term = 3;                    // file names carry the term
  tree_harness<Cmp> h(cfg);
  bool snapshot = false;
  bool log = false;
  for (int step = 0; step < 40; ++step) {
    std::vector<write_entry> batch = random_batch(h, r, r.uniform(20, 200), 4000, 0.85);
    if (r.chance(0.3)) {
      batch.push_back(upsert(key_of(r.uniform(0, 3999)), r.bytes(r.uniform(5000, 50000)),
                             h.next_ts(), r.chance(0.5) ? h.now() + 50 : 0));
    }
    h.write(std::move(batch));
    snapshot = snapshot || h.last_stats().manifest_snapshot;
    log = log || !h.last_stats().manifest_snapshot;
    if (step % 3 == 2) {
      h.set_now(h.now() + 40);
      h.reopen(step % 2 == 0);
      h.check(r, step % 9 == 2);
    }
    if (step % 13 == 12) {
      h.clean_expired();
      h.reopen(true);
      h.check(r, false);
    }
  }
  CHECK(snapshot);
  CHECK(log);
  CHECK(h.height() >= 3);
  h.reopen(true);
  h.check(r);
}

TEST_CASE("tree: freed file pages are reused; overwrite rounds keep the files bounded") {
  rng r(0x7265757365);
  tree_harness<eloqstore::bytewise_comparator> h(tiny_config());
  const std::uint64_t keys = 1500;
  // Overwrites every key (every 50th with an overflow value); returns the pages written.
  const auto round = [&] {
    std::size_t pages = 0;
    for (std::uint64_t first = 0; first < keys; first += 250) {
      std::vector<write_entry> batch;
      for (std::uint64_t k = first; k < first + 250; ++k) {
        const std::size_t size = k % 50 == 0 ? r.uniform(5000, 20000) : r.uniform(50, 250);
        batch.push_back(upsert(key_of(k), r.bytes(size), h.next_ts()));
      }
      h.write(std::move(batch));
      pages += h.last_stats().pages_written;
    }
    return pages;
  };
  const auto data_file_bytes = [&] {
    std::vector<std::string> names;
    REQUIRE(h.io().list({"tree", 7}, names) == error::ok);
    std::uint64_t total = 0;
    for (const std::string& n : names) {
      if (detail::parse_file_name(n).kind == detail::file_kind::data) {
        std::string bytes;
        REQUIRE(h.io().read_file({"tree", 7}, n, bytes) == error::ok);
        total += bytes.size();
      }
    }
    return total;
  };
  (void)round();
  (void)round();
  h.check(r, false);
  const std::uint64_t max_fp = h.partition().fps.max_fp();
  const std::size_t live = h.partition().current->mapping.live_count();
  std::size_t written = 0;
  for (int i = 0; i < 20; ++i) {
    written += round();
  }
  h.check(r);
  // 20 rounds rewrote the live pages several times over; the files grew by a fraction of
  // that, never past the most pages in use at once (a file page past it would be one that
  // was freed and never reused).
  const std::uint64_t final_fp = h.partition().fps.max_fp();
  MESSAGE("live pages ", live, ", written ", written, ", max_fp ", max_fp, " -> ", final_fp,
          ", peak in use ", h.peak_in_use());
  CHECK(written > 3 * live);
  CHECK(final_fp <= h.peak_in_use());
  CHECK(final_fp < max_fp + written / 4);
  // The data files hold nothing past max_fp.
  CHECK(data_file_bytes() <= final_fp * page_bytes);
}

TEST_CASE("tree: a version pinned by a reader keeps its pages until it is released") {
  rng r(0x70696e);
  tree_harness<eloqstore::bytewise_comparator> h(tiny_config());
  for (int i = 0; i < 5; ++i) {
    h.write(random_batch(h, r, 300, 2000, 1.0));
  }
  const auto old_model = h.model();
  std::shared_ptr<const detail::partition_version> pinned = h.partition().current;
  const std::uint64_t max_fp = h.partition().fps.max_fp();
  for (int i = 0; i < 10; ++i) {
    std::vector<write_entry> batch;
    for (const auto& kv : old_model) {
      batch.push_back(upsert(kv.first, "new" + std::to_string(i), h.next_ts()));
    }
    h.write(std::move(batch));
  }
  h.check(r, false);
  CHECK_FALSE(h.partition().retired.empty());
  CHECK(h.partition().fps.max_fp() > max_fp);  // nothing the pinned version uses was reused

  // The pinned version still reads as it was, and is still a sound tree.
  {
    detail::tree_reader<memory_io, eloqstore::bytewise_comparator> old_reader(
        h.pages(), h.partition(), pinned, h.cmp(), h.now());
    std::vector<kv_entry> all;
    bool more = false;
    REQUIRE(old_reader.scan({}, {}, true, {}, all, more) == error::ok);
    REQUIRE(all.size() == old_model.size());
    std::size_t wrong = 0;
    auto it = old_model.begin();
    for (const kv_entry& e : all) {
      wrong += same(e, it->first, it->second) ? 0 : 1;
      ++it;
    }
    CHECK(wrong == 0);
    std::string problem;
    detail::tree_verifier<memory_io, eloqstore::bytewise_comparator> v(h.pages(), h.partition(),
                                                                       *pinned, h.cmp());
    CHECK_MESSAGE(v.run(problem) == error::ok, problem);
  }

  // Released: the next commit returns every retired page.
  pinned.reset();
  h.write({upsert(key_of(1), "x", h.next_ts())});
  CHECK(h.partition().retired.empty());
  h.check(r);
  const std::uint64_t grown = h.partition().fps.max_fp();
  for (int i = 0; i < 5; ++i) {
    h.write(random_batch(h, r, 300, 2000, 1.0));
  }
  CHECK(h.partition().fps.max_fp() == grown);  // the freed pages were enough
}

TEST_CASE("tree: last writer wins by timestamp, ties and equal keys to the later change") {
  rng r(5);
  tree_harness<eloqstore::bytewise_comparator> h(tiny_config());
  const auto get = [&](const std::string& k) {
    detail::tree_reader<memory_io, eloqstore::bytewise_comparator> reader(
        h.pages(), h.partition(), h.partition().current, h.cmp(), h.now());
    kv_entry e;
    const error got = reader.get(k, e);
    return got == error::ok ? e.value : std::string("<") + std::string(error_message(got)) + ">";
  };
  h.write({upsert("k", "v1", 10)});
  h.write({upsert("k", "v2", 5)});
  CHECK(get("k") == "v1");
  h.write({erase("k", 9)});
  CHECK(get("k") == "v1");
  h.write({upsert("k", "v3", 10)});  // a tie goes to the newer write
  CHECK(get("k") == "v3");
  h.write({erase("k", 11)});
  CHECK(get("k") == "<not found>");
  h.write({upsert("k", "v4", 1)});  // nothing stored: any timestamp wins
  CHECK(get("k") == "v4");
  // Equal keys in one batch, in batch order.
  h.write({upsert("e", "a", 20), upsert("e", "b", 20)});
  CHECK(get("e") == "b");
  h.write({upsert("f", "c", 30), upsert("f", "d", 25)});
  CHECK(get("f") == "c");
  h.write({upsert("g", "x", 30), erase("g", 31), upsert("g", "y", 2)});
  CHECK(get("g") == "y");
  // An expired record loses to any change.
  h.write({upsert("t", "old", 100, h.now() + 10)});
  h.set_now(h.now() + 10);
  h.write({upsert("t", "new", 1)});
  CHECK(get("t") == "new");
  // Many changes to one key in one batch (more than a leaf patch takes), in batch order.
  std::vector<write_entry> many;
  for (std::uint64_t i = 0; i < 28; ++i) {  // the last one an upsert
    many.push_back(i % 3 == 2 ? erase("m", 200 + i)
                              : upsert("m", "m" + std::to_string(i), 200 + i));
  }
  many.push_back(upsert("m", "stale", 1));  // older than the live record: loses
  h.write(many);
  CHECK(get("m") == "m27");
  h.check(r);
  // Erases alone, of keys never written.
  h.write({erase("a0", 1), erase("zz", 1)});
  CHECK(get("a0") == "<not found>");
  h.check(r);
  h.truncate_all();
  h.write({erase("a0", 1), erase("zz", 1)});  // on an empty tree
  h.check(r);
  check_empty(h.partition());
}

TEST_CASE("tree: a writer that does not commit changes nothing and gives its pages back") {
  rng r(0xab);
  tree_harness<eloqstore::bytewise_comparator> h(tiny_config());
  for (int i = 0; i < 4; ++i) {
    h.write(random_batch(h, r, 300, 3000, 1.0));
  }
  const auto* version = h.partition().current.get();
  const std::size_t live = h.partition().current->mapping.live_count();
  const std::uint64_t manifest = h.partition().manifest_bytes;
  {
    detail::tree_writer<memory_io, eloqstore::bytewise_comparator> w(
        h.pages(), h.partition(), h.cmp(), tiny_config(), h.now());
    std::vector<write_entry> batch = random_batch(h, r, 2000, 3000, 0.8);
    std::stable_sort(batch.begin(), batch.end(),
                     [](const write_entry& a, const write_entry& b) { return a.key < b.key; });
    REQUIRE(w.apply(batch) == error::ok);
    REQUIRE(w.delete_range(key_of(10), key_of(900)) == error::ok);
    CHECK(w.stats().pages_written > 0);  // pages were placed and written already
  }                                      // dropped without commit
  CHECK(h.partition().current.get() == version);
  CHECK(h.partition().current->mapping.live_count() == live);
  CHECK(h.partition().manifest_bytes == manifest);
  h.check(r);  // the model unchanged; every file page the writer took is free again
  h.reopen(true);
  h.check(r);
}

TEST_CASE("tree: verify reports a mapped page that no tree reaches, and a root that is a leaf") {
  rng r(3);
  tree_harness<eloqstore::bytewise_comparator> h(tiny_config());
  h.write(random_batch(h, r, 500, 1000, 1.0));
  h.check(r);
  std::string problem;
  {
    detail::partition_version leaked = *h.partition().current;
    const page_id extra = leaked.mapping.allocate();
    leaked.mapping.set(extra, detail::encode_file_page(detail::file_page_id(0)));
    detail::tree_verifier<memory_io, eloqstore::bytewise_comparator> v(h.pages(), h.partition(),
                                                                       leaked, h.cmp());
    CHECK(v.run(problem) == error::corrupted);
    CHECK(problem.find("reachable pages") != std::string::npos);
  }
  {
    // The leftmost data page as the root: not an index page.
    detail::partition_version wrong = *h.partition().current;
    std::vector<char> bytes;
    for (page_id id = wrong.root;;) {
      REQUIRE(h.pages().read(h.partition(), wrong.mapping, id, bytes) == error::ok);
      detail::index_page page;
      REQUIRE(detail::index_page::open(bytes, page) == error::ok);
      id = page.leftmost();
      if (page.is_leaf_index()) {
        wrong.root = id;
        break;
      }
    }
    detail::tree_verifier<memory_io, eloqstore::bytewise_comparator> v(h.pages(), h.partition(),
                                                                       wrong, h.cmp());
    CHECK(v.run(problem) == error::corrupted);
  }
  // The published version is untouched by the copies' changes.
  h.check(r);
}

TEST_CASE("tree: restart intervals and overflow group sizes over the model") {
  // (data restart interval, index restart interval, overflow pointers): from every entry a
  // restart point to the defaults, so patched leaves copy multi-entry regions as they are.
  struct shape {
    std::uint16_t data;
    std::uint16_t index;
    std::size_t pointers;
  };
  for (const shape s : {shape{2, 1, 1}, shape{4, 3, 2}, shape{16, 16, 16}, shape{7, 5, 128}}) {
    CAPTURE(s.data);
    CAPTURE(s.index);
    detail::writer_config cfg = tiny_config();
    cfg.data_restart_interval = s.data;
    cfg.index_restart_interval = s.index;
    cfg.overflow_pointers = s.pointers;
    rng r(0x7368617065 + s.data);
    tree_harness<eloqstore::bytewise_comparator> h(cfg);
    for (int step = 0; step < 30; ++step) {
      // Mostly small batches (patched leaves), some large ones (rebuilt leaves).
      const std::size_t n = step % 5 == 0 ? r.uniform(200, 400) : r.uniform(1, 12);
      std::vector<write_entry> batch = random_batch(h, r, n, 3000, 0.8);
      if (r.chance(0.3)) {
        batch.push_back(
            upsert(key_of(r.uniform(0, 2999)), r.bytes(r.uniform(5000, 60000)), h.next_ts()));
      }
      h.write(std::move(batch));
      h.check(r, false);
    }
    h.check(r);
    h.reopen(true);
    h.check(r);
  }
}

TEST_CASE_TEMPLATE("tree: keys up to half a page make narrow index pages and a deep tree", Cmp,
                   eloqstore::bytewise_comparator, descending_comparator) {
  rng r(0x6c6f6e67);
  tree_harness<Cmp> h(tiny_config());
  // Long keys that differ only at their end: separators are nearly whole keys, so an index
  // page holds two or three children.
  const auto long_key = [&](std::uint64_t n) {
    std::string k = key_of(n);
    return std::string(r.uniform(400, page_bytes / 2 - k.size()), 'L') + k;
  };
  for (int step = 0; step < 12; ++step) {
    std::vector<write_entry> batch;
    for (int i = 0; i < 40; ++i) {
      const std::uint64_t n = r.uniform(0, 999);
      const std::size_t size = r.chance(0.1) ? r.uniform(3000, 9000) : r.uniform(1, 300);
      if (r.chance(0.85)) {
        batch.push_back(upsert(long_key(n), r.bytes(size), h.next_ts()));
      } else if (!h.model().empty()) {
        auto it = h.model().begin();
        std::advance(it, static_cast<long>(r.uniform(0, h.model().size() - 1)));
        batch.push_back(erase(it->first, h.next_ts()));
      }
    }
    h.write(std::move(batch));
    h.check(r);
  }
  MESSAGE("long keys: ", h.model().size(), " keys, ", h.height(), " levels");
  CHECK(h.height() >= 4);
  h.reopen(true);
  h.check(r);
  h.write(erase_all(h));
  h.check(r);
  check_empty(h.partition());
}

TEST_CASE("tree: values on both sides of the overflow threshold") {
  rng r(0x746872);
  tree_harness<eloqstore::bytewise_comparator> h(tiny_config());
  // Every size from well inside a page to past it, with short and long keys, timestamps of
  // every width and with and without an expiry: each record fits a page alone or goes to
  // overflow pages, never fails.
  for (int pass = 0; pass < 3; ++pass) {
    std::vector<write_entry> batch;
    std::uint64_t n = 0;
    for (std::size_t size = page_bytes - 400; size <= page_bytes + 16; size += 3 + pass) {
      const std::string k = key_of(n++) + std::string(r.uniform(0, 200), 'x');
      const std::uint64_t ts = (std::uint64_t{1} << (20 + 20 * pass)) + n;  // 3 to 9 bytes
      const std::uint64_t expire = r.chance(0.5) ? h.now() + 1'000'000 : 0;
      batch.push_back(upsert(k, r.bytes(size), ts, expire));
    }
    h.write(std::move(batch));
    h.check(r);
  }
  // Shrink and grow them across the threshold one key at a time (patched leaves).
  for (int step = 0; step < 40; ++step) {
    auto it = h.model().begin();
    std::advance(it, static_cast<long>(r.uniform(0, h.model().size() - 1)));
    const std::size_t size = r.uniform(page_bytes - 300, page_bytes + 100);
    const std::uint64_t expire = r.chance(0.3) ? h.now() + 1'000'000 : 0;
    h.write({upsert(it->first, r.bytes(size), std::uint64_t{1} << 50, expire)});
    h.check(r, false);
  }
  // Erases older than the records lose; newer ones win.
  const std::size_t count = h.model().size();
  std::vector<write_entry> stale = erase_all(h);
  h.write(stale);
  CHECK(h.model().size() == count);
  h.check(r, false);
  for (write_entry& w : stale) {
    w.timestamp = detail::timestamp_max;
  }
  h.write(std::move(stale));
  h.check(r);
  check_empty(h.partition());
}

TEST_CASE("tree: several operations in one writer commit as one version") {
  rng r(0x6d756c7469);
  tree_harness<eloqstore::bytewise_comparator> h(tiny_config());
  for (int i = 0; i < 6; ++i) {
    h.write(random_batch(h, r, 300, 4000, 1.0));
  }
  h.check(r, false);
  // Two batches, a range delete, and a third batch through one writer; the model takes the
  // same steps.
  auto model = h.model();
  std::vector<std::vector<write_entry>> batches;
  for (int i = 0; i < 3; ++i) {
    batches.push_back(random_batch(h, r, 200, 4000, 0.7));
    std::stable_sort(batches.back().begin(), batches.back().end(),
                     [](const write_entry& a, const write_entry& b) { return a.key < b.key; });
  }
  const std::string begin = key_of(1000);
  const std::string end = key_of(1400);
  const auto* before = h.partition().current.get();
  {
    detail::tree_writer<memory_io, eloqstore::bytewise_comparator> w(
        h.pages(), h.partition(), h.cmp(), tiny_config(), h.now());
    REQUIRE(w.apply(batches[0]) == error::ok);
    REQUIRE(w.apply(batches[1]) == error::ok);
    REQUIRE(w.delete_range(begin, end) == error::ok);
    REQUIRE(w.apply(batches[2]) == error::ok);
    CHECK(h.partition().current.get() == before);  // nothing published before the commit
    REQUIRE(w.commit() == error::ok);
  }
  CHECK(h.partition().current.get() != before);
  // The expected result, computed through the harness's model on a second partition that
  // takes the same steps one commit at a time.
  tree_harness<eloqstore::bytewise_comparator> twin(tiny_config());
  std::vector<write_entry> initial;
  for (const auto& [k, s] : model) {
    initial.push_back(upsert(k, s.value, s.ts, s.expire_ts));
  }
  twin.write(std::move(initial));
  twin.write(batches[0]);
  twin.write(batches[1]);
  twin.delete_range(begin, end);
  twin.write(batches[2]);
  const auto got = h.stored_records();
  const auto want = twin.stored_records();
  REQUIRE(got.size() == want.size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    differ += got[i].key == want[i].key && got[i].value == want[i].value &&
                      got[i].timestamp == want[i].timestamp
                  ? 0
                  : 1;
  }
  CHECK(differ == 0);
  std::string problem;
  detail::tree_verifier<memory_io, eloqstore::bytewise_comparator> v(
      h.pages(), h.partition(), *h.partition().current, h.cmp());
  CHECK_MESSAGE(v.run(problem) == error::ok, problem);
  h.reopen(true);
  CHECK(h.stored_records().size() == want.size());
}
