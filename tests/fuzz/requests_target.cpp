// Fuzz target: request sequences on a store in memory (memory_traits over memory_io), checked
// against a model of the reference semantics (tests/support/lww_model.hpp).
//
// The input is a program. Its first bytes choose the options (append mode, file size,
// restart intervals, manifest limit, group commit, compression); then each step is one of:
// a batch write (1-12 entries over two partitions: keys from a small space, long keys, empty
// and oversized keys, duplicates, any order; erases; small, page-sized and overflow values;
// timestamps older, newer, above 2^63 and the maximum; expiries past and future), a range
// delete, a truncate, a point read, a floor, a forward or reverse scan with a page size, a
// verify, or a restart of the store over the same memory files.
//
// Properties: a write the rules refuse (empty, oversized or duplicate keys) fails with
// invalid_args and changes nothing; every other write succeeds and the model applies it;
// every read agrees with the model (reads take any key as a probe: an empty or oversized
// one is never found, and its floor is the largest key below it); verify is clean; after the last
// step every partition scans exactly as the model holds it.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <range/v3/algorithm/for_each.hpp>

#include <eloqstore/detail/btree/limits.hpp>
#include <eloqstore/eloqstore.hpp>
#include <eloqstore/io/memory.hpp>

#include "fuzz/fuzz_input.hpp"
#include "support/lww_model.hpp"

using namespace eloqstore;

namespace {

using store_type = EloqStore<memory_traits>;

constexpr std::uint32_t partitions = 2;
constexpr std::uint64_t expired_ts = 1000;           // 1970, epoch milliseconds
constexpr std::uint64_t lasting_ts = 4102444800000;  // 2100
constexpr std::size_t key_most = detail::tree_limits<memory_traits::page_size>::key_bytes_max;

table_ident part(std::uint32_t i) {
  return table_ident{"fuzz", i};
}

std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::string draw_key(fuzz::input& in) {
  const std::uint8_t kind = in.byte();
  char buf[16];
  std::snprintf(buf, sizeof buf, "k%02u", static_cast<unsigned>(in.below_or(47)));
  switch (kind % 32) {
    case 0:
      return std::string(200 + in.below_or(800), 'p') + buf;  // long shared prefixes
    case 1:
      return {};  // refused: empty
    case 2:
      return std::string(key_most + 1 + in.below_or(100), 'x');  // refused: too long
    case 3:
      return std::string(key_most, 'm');  // the longest accepted
    default:
      return buf;
  }
}

std::string draw_value(fuzz::input& in) {
  std::size_t n = 0;
  switch (in.below_or(7)) {
    case 0:
      n = 0;
      break;
    case 1:
      n = 1000 + in.below_or(3500);  // about a page
      break;
    case 2:
      n = 5000 + in.below_or(60000);  // overflow pages
      break;
    default:
      n = in.below_or(64);
  }
  std::string v(n, '\0');
  std::uint64_t x = in.below_or(255) * 0x9E3779B97F4A7C15ULL + 1;
  for (char& c : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return v;
}

class harness {
 public:
  explicit harness(fuzz::input& in) : in_(in) {
    opts_.num_threads = 1;
    opts_.data_append_mode = in.flag();
    opts_.pages_per_file_shift = static_cast<std::uint8_t>(1 + in.below_or(9));
    opts_.data_page_restart_interval = static_cast<std::uint16_t>(1 + in.below_or(31));
    opts_.index_page_restart_interval = static_cast<std::uint16_t>(1 + in.below_or(31));
    opts_.manifest_limit = in.flag() ? 16 * 1024 : 8 * 1024 * 1024;
    opts_.group_commit = in.flag();
    opts_.enable_compression = in.flag();
    opts_.buffer_pool_size = in.flag() ? 64 * 4096 : 32 * 1024 * 1024;
    opts_.init_page_count = 64;
    start();
  }
  ~harness() { store_->stop(); }

  void run() {
    for (int step = 0; step < 64 && !in_.empty(); ++step) {
      switch (in_.below_or(15)) {
        case 0:
        case 1:
        case 2:
        case 3:
        case 4:
          batch();
          break;
        case 5:
          delete_range();
          break;
        case 6:
          truncate();
          break;
        case 7:
        case 8:
          point_read();
          break;
        case 9:
          floor();
          break;
        case 10:
        case 11:
          scan();
          break;
        case 12:
          verify(part(in_.below_or(partitions - 1)));
          break;
        case 13:
          store_->stop();
          opts_.group_commit = in_.flag();
          start();
          break;
        default:
          FUZZ_CHECK(store_->clean_expired(part(in_.below_or(partitions - 1))) == error::ok);
      }
    }
    for (std::uint32_t p = 0; p < partitions; ++p) {
      check_scan(part(p), {}, {}, 1 + in_.below_or(300), false);
      verify(part(p));
    }
  }

 private:
  void start() {
    store_ = std::make_unique<store_type>(opts_, io_);
    FUZZ_CHECK(store_->start() == error::ok);
  }

  test::lww_model& model_of(std::uint32_t p) { return models_[p]; }

  void batch() {
    const std::uint32_t p = static_cast<std::uint32_t>(in_.below_or(partitions - 1));
    std::vector<write_entry> b;
    for (std::uint64_t n = 1 + in_.below_or(11); n > 0; --n) {
      write_entry w;
      w.key = draw_key(in_);
      w.op = in_.below_or(3) == 0 ? write_op::erase : write_op::upsert;
      if (w.op == write_op::upsert) {
        w.value = draw_value(in_);
      }
      switch (in_.below_or(7)) {
        case 0:
          w.timestamp = clock_ > 5 ? clock_ - in_.below_or(5) : 0;  // older
          break;
        case 1:
          w.timestamp = (std::uint64_t{1} << 63) + in_.below_or(1000);  // above 2^63
          break;
        case 2:
          w.timestamp = UINT64_MAX;
          break;
        default:
          w.timestamp = ++clock_;
      }
      if (w.op == write_op::upsert) {
        const std::uint64_t e = in_.below_or(5);
        w.expire_ts = e == 0 ? expired_ts : (e == 1 ? lasting_ts : 0);
      }
      b.push_back(std::move(w));
    }
    // Refused by the rules, in any order: an empty or oversized key, a key twice.
    bool refused = false;
    std::set<std::string> seen;
    for (const write_entry& w : b) {
      refused = refused || w.key.empty() || w.key.size() > key_most || !seen.insert(w.key).second;
    }
    const error e = store_->write(part(p), b);
    if (refused) {
      FUZZ_CHECK(e == error::invalid_args);
      return;
    }
    FUZZ_CHECK(e == error::ok);
    for (write_entry& w : b) {
      w.timestamp = std::min<std::uint64_t>(w.timestamp, INT64_MAX);  // as a page keeps it
    }
    model_of(p).apply(b, now_ms());
  }

  void delete_range() {
    const std::uint32_t p = static_cast<std::uint32_t>(in_.below_or(partitions - 1));
    const std::string a = in_.flag() ? std::string() : draw_key(in_);
    const std::string z = in_.flag() ? std::string() : draw_key(in_);
    FUZZ_CHECK(store_->delete_range(part(p), a, z) == error::ok);
    model_of(p).erase_range(a, z);
  }

  void truncate() {
    const std::uint32_t p = static_cast<std::uint32_t>(in_.below_or(partitions - 1));
    const std::string from = in_.flag() ? std::string() : draw_key(in_);
    FUZZ_CHECK(store_->truncate(part(p), from) == error::ok);
    if (from.empty()) {
      model_of(p).clear();
    } else {
      model_of(p).erase_range(from, {});
    }
  }

  void point_read() {
    const std::uint32_t p = static_cast<std::uint32_t>(in_.below_or(partitions - 1));
    const std::string key = draw_key(in_);
    const auto got = store_->get(part(p), key);  // (a key no write accepts is a probe too)
    const auto& raw = model_of(p).raw();
    const auto it = raw.find(key);
    if (it == raw.end() || !test::lww_model::live(it->second, now_ms())) {
      FUZZ_CHECK(got.status() == error::not_found);
      return;
    }
    FUZZ_CHECK(got.ok() && got->value == it->second.value && got->timestamp == it->second.ts &&
               got->expire_ts == it->second.expire_ts);
  }

  void floor() {
    const std::uint32_t p = static_cast<std::uint32_t>(in_.below_or(partitions - 1));
    const std::string key = draw_key(in_);
    const auto got = store_->floor(part(p), key);
    const auto vis = model_of(p).visible(now_ms());
    auto ub = std::upper_bound(vis.begin(), vis.end(), key,
                               [](const std::string& k, const auto& e) { return k < e.first; });
    if (ub == vis.begin()) {
      FUZZ_CHECK(got.status() == error::not_found);
      return;
    }
    --ub;
    FUZZ_CHECK(got.ok() && got->key == ub->first && got->value == ub->second.value);
  }

  void scan() {
    const std::uint32_t p = static_cast<std::uint32_t>(in_.below_or(partitions - 1));
    const std::string a = in_.flag() ? std::string() : draw_key(in_);
    const std::string z = in_.flag() ? std::string() : draw_key(in_);
    check_scan(part(p), a, z, 1 + in_.below_or(40), in_.flag());
  }

  // A scan of [a, z) in either direction returns exactly the model's live records there.
  void check_scan(const table_ident& t, const std::string& a, const std::string& z,
                  std::size_t page, bool reverse) {
    std::vector<std::pair<std::string, test::lww_record>> want;
    for (auto& e : model_of(t.partition).visible(now_ms())) {
      if (e.first >= a && (z.empty() || e.first < z)) {
        want.push_back(std::move(e));
      }
    }
    if (reverse) {
      std::reverse(want.begin(), want.end());
    }
    std::size_t i = 0;
    bool same = true;
    auto range = reverse ? store_->scan_reverse(t, a, z, page) : store_->scan(t, a, z, page);
    ranges::for_each(range, [&](const kv_entry& e) {
      same = same && i < want.size() && e.key == want[i].first && e.value == want[i].second.value &&
             e.timestamp == want[i].second.ts;
      ++i;
    });
    FUZZ_CHECK(range.status() == error::ok);
    FUZZ_CHECK(same && i == want.size());
  }

  void verify(const table_ident& t) {
    std::string problem;
    const error e = store_->verify(t, problem);
    FUZZ_CHECK(e == error::ok || (e == error::not_found && model_of(t.partition).raw().empty()));
  }

  fuzz::input& in_;
  options opts_;
  memory_io io_;
  std::unique_ptr<store_type> store_;
  test::lww_model models_[partitions];
  std::uint64_t clock_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::input in(data, size);
  harness h(in);
  h.run();
  return 0;
}
