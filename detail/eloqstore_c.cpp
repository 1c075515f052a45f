// The C API (include/eloqstore/eloqstore_c.h) over eloqstore::default_store. No exception
// crosses the boundary: allocation failures become ELOQSTORE_OUT_OF_MEM.
#include <eloqstore/eloqstore_c.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <eloqstore/default_store.hpp>
#include <eloqstore/options_file.hpp>

struct eloqstore_options {
  eloqstore::options opts;
};

struct eloqstore_store {
  explicit eloqstore_store(const ::eloqstore::options& o) : store(o) {}
  ::eloqstore::default_store store;
};

struct eloqstore_batch {
  std::vector<::eloqstore::write_entry> entries;
};

struct eloqstore_scan {
  ::eloqstore_store* owner = nullptr;
  ::eloqstore::table_ident table;
  std::string next_begin;  // where the next page starts
  bool begin_inclusive = true;
  std::string end;
  std::vector<::eloqstore::kv_entry> page;  // the page being handed out
  std::size_t at = 0;                       // its next entry
  bool last_page = false;                   // no page after this one
  eloqstore_status failed = ELOQSTORE_OK;   // sticky
};

namespace {

namespace es = ::eloqstore;

constexpr std::size_t scan_page_entries = 1024;

eloqstore_status code(es::error e) {
  return static_cast<eloqstore_status>(e);
}

// A malloc'd copy of bytes (NUL-terminated for convenience), or nullptr without memory.
char* copy_out(std::string_view bytes) noexcept {
  auto* p = static_cast<char*>(std::malloc(bytes.size() + 1));
  if (p != nullptr) {
    std::memcpy(p, bytes.data(), bytes.size());
    p[bytes.size()] = '\0';
  }
  return p;
}

eloqstore_status fail(eloqstore_status status, std::string_view message, char** errmsg) noexcept {
  if (errmsg != nullptr) {
    *errmsg = copy_out(message);  // (nullptr without memory: the code still says what failed)
  }
  return status;
}
eloqstore_status fail(es::error e, char** errmsg) noexcept {
  return fail(code(e), es::error_message(e), errmsg);
}

// Runs f; no exception leaves: an allocation failure becomes ELOQSTORE_OUT_OF_MEM, anything
// else (a thread the system refuses to create, std::system_error) ELOQSTORE_IO_FAIL.
template <typename F>
eloqstore_status guarded(char** errmsg, F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return fail(es::error::out_of_mem, errmsg);
  } catch (const std::exception& e) {
    return fail(ELOQSTORE_IO_FAIL, e.what(), errmsg);
  } catch (...) {
    return fail(es::error::io_fail, errmsg);
  }
}

std::string_view bytes(const char* p, std::size_t n) {
  return n == 0 ? std::string_view() : std::string_view(p, n);
}

bool args_ok(const void* handle, const char* table, char** errmsg, eloqstore_status& status) {
  if (handle == nullptr || table == nullptr) {
    status = fail(ELOQSTORE_INVALID_ARGS, "a NULL store, batch or table name", errmsg);
    return false;
  }
  return true;
}

eloqstore_status fill(const es::kv_entry& kv, bool with_key, eloqstore_record* out, char** errmsg) {
  char* key = with_key ? copy_out(kv.key) : nullptr;
  char* value = copy_out(kv.value);
  if ((with_key && key == nullptr) || value == nullptr) {
    std::free(key);
    std::free(value);
    return fail(es::error::out_of_mem, errmsg);
  }
  out->key = key;
  out->key_len = with_key ? kv.key.size() : 0;
  out->value = value;
  out->value_len = kv.value.size();
  out->timestamp = kv.timestamp;
  out->expire_ts = kv.expire_ts;
  return ELOQSTORE_OK;
}

// A change of one partition: f(partition) returns the store's error.
template <typename F>
eloqstore_status on_partition(eloqstore_store* store, const char* table, std::uint32_t partition,
                              char** errmsg, F&& f) {
  eloqstore_status status = ELOQSTORE_OK;
  if (!args_ok(store, table, errmsg, status)) {
    return status;
  }
  return guarded(errmsg, [&]() -> eloqstore_status {
    const es::error e = f(es::table_ident{table, partition});
    return e == es::error::ok ? ELOQSTORE_OK : fail(e, errmsg);
  });
}

// get and floor: both look a key up and hand back one record.
template <typename Lookup>
eloqstore_status lookup(eloqstore_store* store, const char* table, std::uint32_t partition,
                        const char* key, std::size_t key_len, eloqstore_record* out, char** errmsg,
                        bool with_key, Lookup&& how) {
  eloqstore_status status = ELOQSTORE_OK;
  if (!args_ok(store, table, errmsg, status)) {
    return status;
  }
  if (out == nullptr || (key == nullptr && key_len != 0)) {
    return fail(ELOQSTORE_INVALID_ARGS, "a NULL record or key", errmsg);
  }
  return guarded(errmsg, [&]() -> eloqstore_status {
    const auto r = how(store->store, es::table_ident{table, partition}, bytes(key, key_len));
    if (!r.ok()) {
      return fail(r.status(), errmsg);
    }
    return fill(r.value(), with_key, out, errmsg);
  });
}

// Reads the scan's next page.
eloqstore_status next_page(eloqstore_scan& s) {
  es::scan_request req;
  req.set_args(s.table, s.next_begin, s.end, s.begin_inclusive);
  req.set_pagination(scan_page_entries, 0);
  const es::error e = s.owner->store.exec_sync(req);
  if (e == es::error::not_found) {  // a partition never written
    s.page.clear();
    s.at = 0;
    s.last_page = true;
    return ELOQSTORE_OK;
  }
  if (e != es::error::ok) {
    return code(e);
  }
  s.page = req.entries();
  s.at = 0;
  s.last_page = !req.has_remaining() || s.page.empty();
  if (!s.page.empty()) {
    s.next_begin = s.page.back().key;
    s.begin_inclusive = false;
  }
  return ELOQSTORE_OK;
}

// Appends one change to a batch (value empty for a delete).
eloqstore_status add_to_batch(eloqstore_batch* batch, const char* key, size_t key_len,
                              const char* value, size_t value_len, es::write_entry entry) {
  if (batch == nullptr || (key == nullptr && key_len != 0) ||
      (value == nullptr && value_len != 0)) {
    return ELOQSTORE_INVALID_ARGS;
  }
  return guarded(nullptr, [&]() -> eloqstore_status {
    entry.key = std::string(bytes(key, key_len));
    entry.value = std::string(bytes(value, value_len));
    batch->entries.push_back(std::move(entry));
    return ELOQSTORE_OK;
  });
}

}  // namespace

extern "C" {

const char* eloqstore_status_message(eloqstore_status status) {
  if (status == ELOQSTORE_SCAN_END) {
    return "end of scan";
  }
  if (status < 0 || status >= es::error_count) {
    return "unknown status";
  }
  // error_message returns views of string literals: NUL-terminated.
  return es::error_message(static_cast<es::error>(status)).data();
}

void eloqstore_free(void* p) {
  std::free(p);
}

eloqstore_options* eloqstore_options_create(void) {
  return new (std::nothrow) eloqstore_options;
}

void eloqstore_options_destroy(eloqstore_options* opts) {
  delete opts;
}

eloqstore_status eloqstore_options_set(eloqstore_options* opts, const char* key, const char* value,
                                       char** errmsg) {
  if (opts == nullptr || key == nullptr || value == nullptr) {
    return fail(ELOQSTORE_INVALID_ARGS, "a NULL options, key or value", errmsg);
  }
  return guarded(errmsg, [&]() -> eloqstore_status {
    const es::validation_result r = es::set_option(key, value, opts->opts);
    return r.ok() ? ELOQSTORE_OK : fail(code(r.code), r.message, errmsg);
  });
}

eloqstore_status eloqstore_options_load_file(eloqstore_options* opts, const char* path,
                                             char** errmsg) {
  if (opts == nullptr || path == nullptr) {
    return fail(ELOQSTORE_INVALID_ARGS, "a NULL options or path", errmsg);
  }
  return guarded(errmsg, [&]() -> eloqstore_status {
    const es::validation_result r = es::load_options_file(path, opts->opts);
    return r.ok() ? ELOQSTORE_OK : fail(code(r.code), r.message, errmsg);
  });
}

eloqstore_status eloqstore_open(const eloqstore_options* opts, eloqstore_store** store,
                                char** errmsg) {
  if (opts == nullptr || store == nullptr) {
    return fail(ELOQSTORE_INVALID_ARGS, "a NULL options or store pointer", errmsg);
  }
  if (opts->opts.store_path.empty()) {
    // (The C++ store would run in memory; a C user who forgot the path wants an error.)
    return fail(ELOQSTORE_INVALID_ARGS, "store_path is not set", errmsg);
  }
  return guarded(errmsg, [&]() -> eloqstore_status {
    auto s = std::make_unique<eloqstore_store>(opts->opts);
    if (const es::error e = s->store.start(); e != es::error::ok) {
      const std::string& why = s->store.last_message();
      return fail(code(e), why.empty() ? es::error_message(e) : std::string_view(why), errmsg);
    }
    *store = s.release();
    return ELOQSTORE_OK;
  });
}

void eloqstore_close(eloqstore_store* store) {
  if (store != nullptr) {
    (void)guarded(nullptr, [&]() -> eloqstore_status {
      store->store.stop();
      return ELOQSTORE_OK;
    });
    delete store;
  }
}

void eloqstore_record_free(eloqstore_record* record) {
  if (record != nullptr) {
    std::free(record->key);
    std::free(record->value);
    record->key = nullptr;
    record->value = nullptr;
  }
}

eloqstore_status eloqstore_get(eloqstore_store* store, const char* table, uint32_t partition,
                               const char* key, size_t key_len, eloqstore_record* out,
                               char** errmsg) {
  return lookup(store, table, partition, key, key_len, out, errmsg, false,
                [](es::default_store& s, const es::table_ident& t, std::string_view k) {
                  return s.get(t, k);
                });
}

eloqstore_status eloqstore_floor(eloqstore_store* store, const char* table, uint32_t partition,
                                 const char* key, size_t key_len, eloqstore_record* out,
                                 char** errmsg) {
  return lookup(store, table, partition, key, key_len, out, errmsg, true,
                [](es::default_store& s, const es::table_ident& t, std::string_view k) {
                  return s.floor(t, k);
                });
}

eloqstore_batch* eloqstore_batch_create(void) {
  return new (std::nothrow) eloqstore_batch;
}

void eloqstore_batch_destroy(eloqstore_batch* batch) {
  delete batch;
}

void eloqstore_batch_clear(eloqstore_batch* batch) {
  if (batch != nullptr) {
    batch->entries.clear();
  }
}

eloqstore_status eloqstore_batch_put(eloqstore_batch* batch, const char* key, size_t key_len,
                                     const char* value, size_t value_len, uint64_t timestamp,
                                     uint64_t expire_ts) {
  return add_to_batch(batch, key, key_len, value, value_len,
                      es::write_entry{{}, {}, timestamp, es::write_op::upsert, expire_ts});
}

eloqstore_status eloqstore_batch_delete(eloqstore_batch* batch, const char* key, size_t key_len,
                                        uint64_t timestamp) {
  return add_to_batch(batch, key, key_len, nullptr, 0,
                      es::write_entry{{}, {}, timestamp, es::write_op::erase, 0});
}

eloqstore_status eloqstore_write(eloqstore_store* store, const char* table, uint32_t partition,
                                 const eloqstore_batch* batch, char** errmsg) {
  eloqstore_status status = ELOQSTORE_OK;
  if (!args_ok(store, table, errmsg, status) || !args_ok(batch, table, errmsg, status)) {
    return status;
  }
  return guarded(errmsg, [&]() -> eloqstore_status {
    es::batch_write_request req;
    req.set_args(es::table_ident{table, partition}, batch->entries);
    const es::error e = store->store.exec_sync(req);
    return e == es::error::ok ? ELOQSTORE_OK : fail(code(e), req.message(), errmsg);
  });
}

eloqstore_status eloqstore_truncate(eloqstore_store* store, const char* table, uint32_t partition,
                                    const char* from, size_t from_len, char** errmsg) {
  if (from == nullptr && from_len != 0) {
    return fail(ELOQSTORE_INVALID_ARGS, "a NULL key with a length", errmsg);
  }
  return on_partition(store, table, partition, errmsg, [&](const es::table_ident& t) {
    return store->store.truncate(t, std::string(bytes(from, from_len)));
  });
}

eloqstore_status eloqstore_delete_range(eloqstore_store* store, const char* table,
                                        uint32_t partition, const char* begin, size_t begin_len,
                                        const char* end, size_t end_len, char** errmsg) {
  if ((begin == nullptr && begin_len != 0) || (end == nullptr && end_len != 0)) {
    return fail(ELOQSTORE_INVALID_ARGS, "a NULL key with a length", errmsg);
  }
  return on_partition(store, table, partition, errmsg, [&](const es::table_ident& t) {
    return store->store.delete_range(t, std::string(bytes(begin, begin_len)),
                                     std::string(bytes(end, end_len)));
  });
}

eloqstore_scan* eloqstore_scan_create(eloqstore_store* store, const char* table, uint32_t partition,
                                      const char* begin, size_t begin_len, const char* end,
                                      size_t end_len) {
  if (store == nullptr || table == nullptr || (begin == nullptr && begin_len != 0) ||
      (end == nullptr && end_len != 0)) {
    return nullptr;
  }
  try {
    auto s = std::make_unique<eloqstore_scan>();
    s->owner = store;
    s->table = es::table_ident{table, partition};
    s->next_begin = std::string(bytes(begin, begin_len));
    s->end = std::string(bytes(end, end_len));
    return s.release();
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

eloqstore_status eloqstore_scan_next(eloqstore_scan* scan, eloqstore_record* out, char** errmsg) {
  if (scan == nullptr || out == nullptr) {
    return fail(ELOQSTORE_INVALID_ARGS, "a NULL scan or record", errmsg);
  }
  if (scan->failed != ELOQSTORE_OK) {
    return fail(scan->failed, eloqstore_status_message(scan->failed), errmsg);
  }
  return guarded(errmsg, [&]() -> eloqstore_status {
    while (scan->at == scan->page.size()) {
      if (scan->last_page) {
        return ELOQSTORE_SCAN_END;
      }
      if (const eloqstore_status st = next_page(*scan); st != ELOQSTORE_OK) {
        scan->failed = st;
        return fail(st, eloqstore_status_message(st), errmsg);
      }
    }
    es::kv_entry& kv = scan->page[scan->at++];
    out->key = kv.key.data();
    out->key_len = kv.key.size();
    out->value = kv.value.data();
    out->value_len = kv.value.size();
    out->timestamp = kv.timestamp;
    out->expire_ts = kv.expire_ts;
    return ELOQSTORE_OK;
  });
}

void eloqstore_scan_destroy(eloqstore_scan* scan) {
  delete scan;
}

char* eloqstore_stats_prometheus(eloqstore_store* store) {
  if (store == nullptr) {
    return nullptr;
  }
  try {
    return copy_out(es::to_prometheus_text(store->store.stats()));
  } catch (...) {
    return nullptr;
  }
}

}  // extern "C"
