// The reference engine's write semantics kept in a std::map, for tests that check a store
// against a model: last writer wins by timestamp (an incoming write applies iff its timestamp
// is >= the stored live record's), expired records are invisible and never win.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <eloqstore/types.hpp>

namespace eloqstore::test {

struct lww_record {
  std::string value;
  std::uint64_t ts = 0;
  std::uint64_t expire_ts = 0;
};

class lww_model {
 public:
  void apply(const std::vector<write_entry>& batch, std::uint64_t now) {
    for (const write_entry& w : batch) {
      auto it = m_.find(w.key);
      if (it != m_.end() && live(it->second, now) && w.timestamp < it->second.ts) {
        continue;
      }
      if (w.op == write_op::erase || (w.expire_ts != 0 && w.expire_ts <= now)) {
        if (it != m_.end()) {
          m_.erase(it);
        }
        continue;
      }
      m_[w.key] = lww_record{w.value, w.timestamp, w.expire_ts};
    }
  }
  void erase_range(const std::string& begin, const std::string& end) {
    auto first = m_.lower_bound(begin);
    auto last = end.empty() ? m_.end() : m_.lower_bound(end);
    if (first != m_.end() && (end.empty() || begin < end)) {
      m_.erase(first, last);
    }
  }
  void clear() { m_.clear(); }

  static bool live(const lww_record& r, std::uint64_t now) {
    return r.expire_ts == 0 || r.expire_ts > now;
  }
  std::vector<std::pair<std::string, lww_record>> visible(std::uint64_t now) const {
    std::vector<std::pair<std::string, lww_record>> out;
    for (const auto& [k, r] : m_) {
      if (live(r, now)) {
        out.emplace_back(k, r);
      }
    }
    return out;
  }
  const std::map<std::string, lww_record>& raw() const { return m_; }

 private:
  std::map<std::string, lww_record> m_;
};

}  // namespace eloqstore::test
