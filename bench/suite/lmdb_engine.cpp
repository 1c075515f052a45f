// The LMDB adapter (Debian's liblmdb-dev 0.9.24): one unnamed database, one write
// transaction per batch committed with LMDB's default durability (mdb_txn_commit writes the
// pages, fdatasyncs, writes the meta page and fdatasyncs again: no MDB_NOSYNC,
// MDB_NOMETASYNC, MDB_MAPASYNC or MDB_WRITEMAP). Readers reuse one read-only transaction per
// session (mdb_txn_reset / mdb_txn_renew, LMDB's recommended pattern). MDB_NOTLS ties read
// transactions to sessions rather than threads; MDB_NORDAHEAD turns off the kernel's
// readahead on the map, as LMDB advises for random reads of a data set larger than its cache.
// LMDB has no cache of its own: the OS page cache (the map) is its cache.
#include <lmdb.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "engine.hpp"

namespace bench {
namespace {

constexpr unsigned env_flags = MDB_NOTLS | MDB_NORDAHEAD;
constexpr unsigned readers_max = 1024;
constexpr std::uint64_t map_bytes_min = std::uint64_t{4} << 30;

MDB_val val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};  // LMDB's API is not const-correct
}
std::string_view view(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}
std::string lmdb_error(const char* what, int rc) {
  return std::string(what) + ": " + mdb_strerror(rc);
}

class lmdb_session final : public session {
 public:
  lmdb_session(MDB_env* env, MDB_dbi dbi) : env_(env), dbi_(dbi) {}
  ~lmdb_session() override {
    if (rtxn_ != nullptr) {
      mdb_txn_abort(rtxn_);
    }
  }

  [[nodiscard]] bool write(std::span<const kv_ref> batch) override {
    MDB_txn* txn = nullptr;
    if (const int rc = mdb_txn_begin(env_, nullptr, 0, &txn); rc != 0) {
      return fail(lmdb_error("mdb_txn_begin", rc));
    }
    for (const kv_ref& r : batch) {
      MDB_val k = val(r.key);
      MDB_val v = val(r.value);
      if (const int rc = mdb_put(txn, dbi_, &k, &v, 0); rc != 0) {
        mdb_txn_abort(txn);
        return fail(lmdb_error("mdb_put", rc));
      }
    }
    const int rc = mdb_txn_commit(txn);  // frees txn whatever the outcome
    return rc == 0 || fail(lmdb_error("mdb_txn_commit", rc));
  }

  [[nodiscard]] bool get(std::string_view key, std::string& value, bool& found) override {
    if (!begin_read()) {
      return false;
    }
    MDB_val k = val(key);
    MDB_val v{};
    const int rc = mdb_get(rtxn_, dbi_, &k, &v);
    found = rc == 0;
    if (found) {
      value.assign(view(v));
    }
    mdb_txn_reset(rtxn_);
    return rc == 0 || rc == MDB_NOTFOUND || fail(lmdb_error("mdb_get", rc));
  }

  [[nodiscard]] bool scan(std::string_view begin, bool inclusive, std::size_t count,
                          scan_result& out) override {
    out = scan_result{};
    if (!begin_read()) {
      return false;
    }
    MDB_cursor* c = nullptr;
    if (const int rc = mdb_cursor_open(rtxn_, dbi_, &c); rc != 0) {
      mdb_txn_reset(rtxn_);
      return fail(lmdb_error("mdb_cursor_open", rc));
    }
    MDB_val k = val(begin);
    MDB_val v{};
    int rc = mdb_cursor_get(c, &k, &v, begin.empty() ? MDB_FIRST : MDB_SET_RANGE);
    if (rc == 0 && !inclusive && view(k) == begin) {
      rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    for (; rc == 0 && out.records < count; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
      scratch_.assign(view(v));
      out.bytes += k.mv_size + v.mv_size;
      out.last_key.assign(view(k));
      ++out.records;
    }
    mdb_cursor_close(c);
    mdb_txn_reset(rtxn_);
    return rc == 0 || rc == MDB_NOTFOUND || fail(lmdb_error("mdb_cursor_get", rc));
  }

 private:
  bool begin_read() {
    const int rc =
        rtxn_ == nullptr ? mdb_txn_begin(env_, nullptr, MDB_RDONLY, &rtxn_) : mdb_txn_renew(rtxn_);
    return rc == 0 || fail(lmdb_error("read transaction", rc));
  }

  MDB_env* env_;
  MDB_dbi dbi_;
  MDB_txn* rtxn_ = nullptr;  // reset between operations
  std::string scratch_;
};

class lmdb_engine final : public engine {
 public:
  ~lmdb_engine() override { close(); }

  [[nodiscard]] std::string name() const override { return "lmdb"; }

  [[nodiscard]] std::string settings() const override {
    int major = 0;
    int minor = 0;
    int patch = 0;
    mdb_version(&major, &minor, &patch);
    std::string s;
    const auto line = [&](const std::string& k, const std::string& v) {
      s += k + " = " + v + "\n";
    };
    line("version",
         std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch));
    line("mdb_env_open flags", "MDB_NOTLS | MDB_NORDAHEAD");
    line("sync flags", "none of MDB_NOSYNC, MDB_NOMETASYNC, MDB_MAPASYNC, MDB_WRITEMAP");
    line("mdb_env_set_mapsize", std::to_string(map_bytes_));
    line("mdb_env_set_maxreaders", std::to_string(readers_max));
    line("write path", "one write transaction per batch, mdb_put(flags 0), mdb_txn_commit");
    line("read path", "one read-only transaction per session, reset/renewed per operation");
    line("cache", "none of its own: the OS page cache through the read-only map");
    return s;
  }

  [[nodiscard]] bool open(const engine_config& cfg, std::string& error) override {
    close();
    map_bytes_ = std::max(map_bytes_min, cfg.logical_bytes_max * 4);
    map_bytes_ = (map_bytes_ + (std::uint64_t{1} << 20) - 1) & ~((std::uint64_t{1} << 20) - 1);
    int rc = mdb_env_create(&env_);
    if (rc == 0) {
      rc = mdb_env_set_maxreaders(env_, readers_max);
    }
    if (rc == 0) {
      rc = mdb_env_set_mapsize(env_, map_bytes_);
    }
    if (rc == 0) {
      rc = mdb_env_open(env_, cfg.dir.c_str(), env_flags, 0644);
    }
    MDB_txn* txn = nullptr;
    if (rc == 0) {
      rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    }
    if (rc == 0) {
      rc = mdb_dbi_open(txn, nullptr, 0, &dbi_);
      if (rc == 0) {
        rc = mdb_txn_commit(txn);
      } else {
        mdb_txn_abort(txn);
      }
    }
    if (rc != 0) {
      error = lmdb_error("lmdb open", rc);
      close();
      return false;
    }
    return true;
  }

  void close() override {
    if (env_ != nullptr) {
      mdb_env_close(env_);
      env_ = nullptr;
    }
  }

  [[nodiscard]] std::unique_ptr<session> new_session() override {
    return std::make_unique<lmdb_session>(env_, dbi_);
  }

 private:
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
  std::uint64_t map_bytes_ = 0;
};

}  // namespace

std::unique_ptr<engine> make_lmdb_engine() {
  return std::make_unique<lmdb_engine>();
}

}  // namespace bench
