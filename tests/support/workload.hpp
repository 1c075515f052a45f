// The random workload of the crash tests and the simulation (tests/store/crash_test.cpp,
// simulation_test.cpp) and the blackbox crash loop (tests/stress/crash_loop.cpp): operations over
// several partitions (batches with small and overflow values and erases, optionally TTLs, range
// deletes, truncates), a model that applies them, and the calls and requests that run them on a
// store.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <eloqstore/eloqstore.hpp>

#include "support/page_store.hpp"

namespace eloqstore::test {

using kv_model = std::map<std::string, std::string>;

inline table_ident part_ident(std::uint32_t part) {
  return table_ident{"crash", part};
}

// ---- workload ------------------------------------------------------------------------------

enum class op_kind { batch, truncate_from, truncate_all, delete_range };

struct op {
  op_kind kind = op_kind::batch;
  std::uint32_t part = 0;
  std::vector<write_entry> batch;
  std::string a;  // truncate_from: from; delete_range: begin
  std::string b;  // delete_range: end
};

inline std::string describe(const op& o) {
  std::ostringstream os;
  os << "part " << o.part << ": ";
  switch (o.kind) {
    case op_kind::batch: {
      std::size_t erases = 0;
      std::size_t large = 0;
      for (const write_entry& w : o.batch) {
        erases += w.op == write_op::erase ? 1 : 0;
        large += w.value.size() >= 5000 ? 1 : 0;
      }
      os << "batch of " << o.batch.size() << " (" << erases << " erases, " << large << " large)";
      break;
    }
    case op_kind::truncate_from:
      os << "truncate from " << o.a;
      break;
    case op_kind::truncate_all:
      os << "truncate all";
      break;
    case op_kind::delete_range:
      os << "delete_range [" << o.a << ", " << o.b << ")";
      break;
  }
  return os.str();
}

inline std::string key_of(std::uint64_t i) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "k%05llu", static_cast<unsigned long long>(i));
  return buf;
}

// A value of n bytes, cheap to make: a xorshift stream from one draw of r.
inline std::string make_value(rng& r, std::size_t n) {
  std::string v(n, '\0');
  std::uint64_t x = r.engine()() | 1;
  for (char& c : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>('a' + x % 26);
  }
  return v;
}

// Random operations: mostly small batches over key_space keys, some with large (overflow)
// values, range deletes and truncates; with bulk_chance > 0 also bulk batches of 1500-3000
// values of 1000 bytes under their own keys (bulk_key_space of them), large enough that the
// writer streams pages to the device while it builds. With ttl_chance > 0 that share of the
// upserts carries an expiry: half far in the future (the record stays), half long past (the
// write hides the key as an erase would).
class workload {
 public:
  workload(std::uint64_t seed, std::uint32_t parts, double bulk_chance = 0, double ttl_chance = 0)
      : r_(seed), parts_(parts), bulk_chance_(bulk_chance), ttl_chance_(ttl_chance) {}

  op next() {
    op o;
    o.part = static_cast<std::uint32_t>(r_.uniform(0, parts_ - 1));
    if (bulk_chance_ > 0 && r_.chance(bulk_chance_)) {
      o.kind = op_kind::batch;
      const std::uint64_t first = r_.uniform(0, bulk_key_space - 3000);
      const std::uint64_t n = r_.uniform(1500, 3000);
      for (std::uint64_t i = first; i < first + n; ++i) {
        char key[24];
        std::snprintf(key, sizeof key, "b%05llu", static_cast<unsigned long long>(i));
        o.batch.push_back(write_entry{key, make_value(r_, 1000), ts_, write_op::upsert, 0});
      }
      ++ts_;
      return o;
    }
    const auto roll = r_.uniform(0, 99);
    if (roll < 82) {
      o.kind = op_kind::batch;
      std::map<std::string, write_entry> unique;
      const std::size_t n = r_.chance(0.15) ? r_.uniform(50, 200) : r_.uniform(1, 20);
      for (std::size_t i = 0; i < n; ++i) {
        write_entry w;
        w.key = key_of(r_.uniform(0, key_space));
        w.timestamp = ts_;
        if (r_.chance(0.2)) {
          w.op = write_op::erase;
        } else {
          w.op = write_op::upsert;
          w.value = make_value(r_, r_.chance(0.08) ? r_.uniform(5000, 40000) : r_.uniform(1, 300));
          if (ttl_chance_ > 0 && r_.chance(ttl_chance_)) {
            w.expire_ts = r_.chance(0.5) ? expired_ts : lasting_ts;
          }
        }
        unique[w.key] = std::move(w);
      }
      for (auto& [k, w] : unique) {
        o.batch.push_back(std::move(w));
      }
      std::shuffle(o.batch.begin(), o.batch.end(), r_.engine());  // the engine sorts
      ++ts_;
    } else if (roll < 91) {
      o.kind = op_kind::delete_range;
      std::uint64_t lo = r_.uniform(0, key_space);
      std::uint64_t hi = r_.uniform(0, key_space);
      if (hi < lo) {
        std::swap(lo, hi);
      }
      o.a = key_of(lo);
      o.b = key_of(hi + 1);
    } else if (roll < 97) {
      o.kind = op_kind::truncate_from;
      o.a = key_of(r_.uniform(key_space / 2, key_space));
    } else {
      o.kind = op_kind::truncate_all;
    }
    return o;
  }

  static constexpr std::uint64_t key_space = 400;
  static constexpr std::uint64_t bulk_key_space = 8000;
  static constexpr std::uint64_t expired_ts = 1000;           // 1970, in epoch milliseconds
  static constexpr std::uint64_t lasting_ts = 4102444800000;  // 2100

 private:
  rng r_;
  std::uint32_t parts_;
  double bulk_chance_;
  double ttl_chance_;
  std::uint64_t ts_ = 1;
};

inline void apply_op(kv_model& m, const op& o) {
  switch (o.kind) {
    case op_kind::batch:
      for (const write_entry& w : o.batch) {
        if (w.op == write_op::erase || w.expire_ts == workload::expired_ts) {
          m.erase(w.key);
        } else {
          m[w.key] = w.value;
        }
      }
      break;
    case op_kind::truncate_from:
      m.erase(m.lower_bound(o.a), m.end());
      break;
    case op_kind::truncate_all:
      m.clear();
      break;
    case op_kind::delete_range:
      if (o.a < o.b) {
        m.erase(m.lower_bound(o.a), m.lower_bound(o.b));
      }
      break;
  }
}

template <typename Store>
error run_op(Store& s, const op& o) {
  const table_ident t = part_ident(o.part);
  switch (o.kind) {
    case op_kind::batch:
      return s.write(t, o.batch);
    case op_kind::truncate_from:
      return s.truncate(t, o.a);
    case op_kind::truncate_all:
      return s.truncate(t);
    case op_kind::delete_range:
      return s.delete_range(t, o.a, o.b);
  }
  return error::invalid_args;
}

// The same operation as a request object, for exec_async.
inline std::unique_ptr<request> make_request(const op& o) {
  const table_ident t = part_ident(o.part);
  switch (o.kind) {
    case op_kind::batch: {
      auto r = std::make_unique<batch_write_request>();
      r->set_args(t, o.batch);
      return r;
    }
    case op_kind::truncate_from: {
      auto r = std::make_unique<truncate_request>();
      r->set_args(t, o.a);
      return r;
    }
    case op_kind::truncate_all: {
      auto r = std::make_unique<truncate_request>();
      r->set_args(t);
      return r;
    }
    case op_kind::delete_range: {
      auto r = std::make_unique<delete_range_request>();
      r->set_args(t, o.a, o.b);
      return r;
    }
  }
  return nullptr;
}

// Empty when equal; otherwise the sizes and the first difference.
inline std::string diff(const kv_model& got, const kv_model& want) {
  if (got == want) {
    return {};
  }
  std::ostringstream os;
  os << "got " << got.size() << " records, want " << want.size() << "; ";
  auto g = got.begin();
  auto w = want.begin();
  while (g != got.end() && w != want.end() && g->first == w->first && g->second == w->second) {
    ++g;
    ++w;
  }
  if (g == got.end()) {
    os << "missing " << w->first;
  } else if (w == want.end()) {
    os << "extra " << g->first;
  } else if (g->first != w->first) {
    os << "first differing keys: got " << g->first << ", want " << w->first;
  } else {
    os << "value of " << g->first << " differs (" << g->second.size() << " vs " << w->second.size()
       << " bytes)";
  }
  return os.str();
}

}  // namespace eloqstore::test
