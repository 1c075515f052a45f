// The tree writer's TTL tree (tree_writer, btree/writer.hpp): every record with an expiry
// has an entry (big-endian expiry + key, bytewise order) in a second tree of the partition;
// changes to records note their entries, which are applied after the main tree, and the
// expiry purge finds the expired records through it.
#pragma once

#include <eloqstore/detail/btree/writer.hpp>

namespace eloqstore::detail {

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::ttl_change(std::string_view key, std::uint64_t expire_ts, write_op op)
    -> void {
  if (ttl_mode_ || expire_ts == 0) {
    return;
  }
  std::string k(8, '\0');
  encode_be64(k.data(), expire_ts);
  k.append(key);
  ttl_changes_.push_back(write_entry{std::move(k), {}, 0, op, 0});
  if (op == write_op::upsert && (min_expire_ == 0 || expire_ts < min_expire_)) {
    min_expire_ = expire_ts;
  }
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::apply_ttl_changes() -> error {
  if (ttl_changes_.empty()) {
    return error::ok;
  }
  std::vector<write_entry> batch = std::move(ttl_changes_);
  ttl_changes_.clear();
  std::sort(batch.begin(), batch.end(),
            [](const write_entry& a, const write_entry& b) { return a.key < b.key; });
  // A key both erased and upserted keeps the upsert (an expiry set again).
  std::vector<write_entry> unique;
  for (write_entry& w : batch) {
    if (!unique.empty() && unique.back().key == w.key) {
      if (w.op == write_op::upsert) {
        unique.back() = std::move(w);
      }
      continue;
    }
    unique.push_back(std::move(w));
  }
  ttl_mode_ = true;
  const error e = apply_tree(ttl_root_, unique);
  ttl_mode_ = false;
  return e;
}

template <io_backend IO, key_comparator Cmp>
auto tree_writer<IO, Cmp>::clean_expired() -> error {
  if (ttl_root_.is_none()) {
    return error::ok;
  }
  auto version = std::make_shared<partition_version>();
  version->root = ttl_root_;
  version->mapping = next_.mapping();
  tree_reader<IO, bytewise_comparator> ttl_reader(pages_, p_, version, ttl_cmp_, 0);
  std::vector<kv_entry> ttl;
  bool more = false;
  char bound[8];
  encode_be64(bound, now_ms_ + 1);  // every TTL key below this has expired
  if (const error e = ttl_reader.scan({}, std::string_view(bound, 8), true, {}, ttl, more);
      e != error::ok) {
    return e;
  }
  // The first expiry still ahead becomes the partition's next check.
  std::vector<kv_entry> ahead;
  if (const error e = ttl_reader.scan(std::string_view(bound, 8), {}, true, {1, 0}, ahead, more);
      e != error::ok) {
    return e;
  }
  purged_ = true;
  purge_next_ = ahead.empty() || ahead[0].key.size() < 8 ? 0 : decode_be64(ahead[0].key.data());
  std::vector<write_entry> purge;
  for (const kv_entry& t : ttl) {
    if (t.key.size() > 8) {
      purge.push_back(write_entry{t.key.substr(8), {}, 0, write_op_purge, 0});
    }
    ttl_changes_.push_back(write_entry{t.key, {}, 0, write_op::erase, 0});
  }
  std::sort(purge.begin(), purge.end(), [&](const write_entry& a, const write_entry& b) {
    return cmp_.compare(a.key, b.key) < 0;
  });
  purge.erase(std::unique(purge.begin(), purge.end(),
                          [&](const write_entry& a, const write_entry& b) {
                            return cmp_.compare(a.key, b.key) == 0;
                          }),
              purge.end());
  return apply(purge);
}

}  // namespace eloqstore::detail
