/* The C API (eloqstore/eloqstore_c.h), from C: options and their errors, batch writes (with
 * a key holding a NUL byte), get, floor, scans across pages against the keys written, range
 * deletes, truncation, bad input (errors with messages, nothing changed), a reopen, and the
 * statistics text. Usage: c_api_test [DIRECTORY] (default: a fresh directory under /tmp). */
#define _GNU_SOURCE
#include <eloqstore/eloqstore_c.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                              \
    }                                                                          \
  } while (0)

#define REQUIRE_OK(call)                                                                      \
  do {                                                                                        \
    eloqstore_status require_st_ = (call);                                                    \
    if (require_st_ != ELOQSTORE_OK) {                                                        \
      fprintf(stderr, "%s:%d: %s returned %d (%s)\n", __FILE__, __LINE__, #call, require_st_, \
              eloqstore_status_message(require_st_));                                         \
      exit(1);                                                                                \
    }                                                                                         \
  } while (0)

enum { key_count = 2500 };
static const char table[] = "c_api";

static size_t key_of(unsigned i, char* buf) {
  return (size_t)sprintf(buf, "key%06u", i);
}
static size_t value_of(unsigned i, char* buf) {
  return (size_t)sprintf(buf, "value-%u-%0*u", i, (int)(i % 50), i);
}

/* Counts the records of a scan of [begin, end) and checks they are keys first..first+count-1
 * (of key_of) with their values, in order. Returns the count. */
static unsigned scan_count(eloqstore_store* store, const char* begin, const char* end,
                           unsigned first) {
  eloqstore_scan* scan = eloqstore_scan_create(store, table, 0, begin, begin ? strlen(begin) : 0,
                                               end, end ? strlen(end) : 0);
  CHECK(scan != NULL);
  unsigned n = 0;
  eloqstore_record r;
  eloqstore_status st;
  while ((st = eloqstore_scan_next(scan, &r, NULL)) == ELOQSTORE_OK) {
    char key[32];
    char value[128];
    const size_t kl = key_of(first + n, key);
    const size_t vl = value_of(first + n, value);
    CHECK(r.key_len == kl && memcmp(r.key, key, kl) == 0);
    CHECK(r.value_len == vl && memcmp(r.value, value, vl) == 0);
    CHECK(r.timestamp == 7);
    ++n;
  }
  CHECK(st == ELOQSTORE_SCAN_END);
  CHECK(eloqstore_scan_next(scan, &r, NULL) == ELOQSTORE_SCAN_END); /* stays at the end */
  eloqstore_scan_destroy(scan);
  return n;
}

static eloqstore_store* open_store(const char* dir) {
  eloqstore_options* opts = eloqstore_options_create();
  CHECK(opts != NULL);
  REQUIRE_OK(eloqstore_options_set(opts, "store_path", dir, NULL));
  REQUIRE_OK(eloqstore_options_set(opts, "num_threads", "2", NULL));
  REQUIRE_OK(eloqstore_options_set(opts, "BUFFER_POOL_SIZE", "8MB", NULL)); /* any case */
  eloqstore_store* store = NULL;
  char* msg = NULL;
  const eloqstore_status st = eloqstore_open(opts, &store, &msg);
  if (st != ELOQSTORE_OK) {
    fprintf(stderr, "open: %s\n", msg ? msg : "?");
    exit(1);
  }
  CHECK(msg == NULL);
  eloqstore_options_destroy(opts);
  return store;
}

int main(int argc, char** argv) {
  char dir_buf[] = "/tmp/eloqstore-c-api-XXXXXX";
  const char* dir = argc > 1 ? argv[1] : mkdtemp(dir_buf);
  CHECK(dir != NULL);

  /* Options: unknown keys, bad values and a missing store path are errors with messages. */
  eloqstore_options* opts = eloqstore_options_create();
  char* msg = NULL;
  CHECK(eloqstore_options_set(opts, "no_such_option", "1", &msg) == ELOQSTORE_INVALID_ARGS);
  CHECK(msg != NULL && strstr(msg, "no_such_option") != NULL);
  eloqstore_free(msg);
  msg = NULL;
  CHECK(eloqstore_options_set(opts, "num_threads", "abc", &msg) == ELOQSTORE_INVALID_ARGS);
  CHECK(msg != NULL && strstr(msg, "num_threads") != NULL);
  eloqstore_free(msg);
  msg = NULL;
  CHECK(eloqstore_options_set(opts, "num_threads", "1\n[run]", &msg) == ELOQSTORE_INVALID_ARGS);
  eloqstore_free(msg);
  msg = NULL;
  eloqstore_store* none = NULL;
  CHECK(eloqstore_open(opts, &none, &msg) == ELOQSTORE_INVALID_ARGS);
  CHECK(none == NULL && msg != NULL && strstr(msg, "store_path") != NULL);
  eloqstore_free(msg);
  msg = NULL;
  CHECK(eloqstore_options_load_file(opts, "/nonexistent/eloqstore.ini", &msg) ==
        ELOQSTORE_NOT_FOUND);
  CHECK(msg != NULL);
  eloqstore_free(msg);
  eloqstore_options_destroy(opts);
  CHECK(strcmp(eloqstore_status_message(ELOQSTORE_NOT_FOUND), "not found") == 0);
  CHECK(strcmp(eloqstore_status_message(ELOQSTORE_SCAN_END), "end of scan") == 0);
  CHECK(strcmp(eloqstore_status_message(-5), "unknown status") == 0);

  eloqstore_store* store = open_store(dir);

  /* A partition never written: get is not found, a scan is empty. */
  eloqstore_record r;
  CHECK(eloqstore_get(store, table, 0, "key000001", 9, &r, NULL) == ELOQSTORE_NOT_FOUND);
  CHECK(scan_count(store, NULL, NULL, 0) == 0);

  /* Writes in batches of 500. */
  eloqstore_batch* batch = eloqstore_batch_create();
  for (unsigned i = 0; i < key_count; ++i) {
    char key[32];
    char value[128];
    const size_t kl = key_of(i, key);
    const size_t vl = value_of(i, value);
    REQUIRE_OK(eloqstore_batch_put(batch, key, kl, value, vl, 7, 0));
    if ((i + 1) % 500 == 0) {
      REQUIRE_OK(eloqstore_write(store, table, 0, batch, NULL));
      eloqstore_batch_clear(batch);
    }
  }
  /* A key with a NUL byte, in another partition. */
  static const char nul_key[] = {'a', '\0', 'b'};
  REQUIRE_OK(eloqstore_batch_put(batch, nul_key, sizeof nul_key, "nul", 3, 1, 0));
  REQUIRE_OK(eloqstore_write(store, table, 1, batch, NULL));
  eloqstore_batch_clear(batch);

  REQUIRE_OK(eloqstore_get(store, table, 0, "key001234", 9, &r, NULL));
  char expect[128];
  size_t expect_len = value_of(1234, expect);
  CHECK(r.value_len == expect_len && memcmp(r.value, expect, expect_len) == 0);
  CHECK(r.timestamp == 7 && r.expire_ts == 0 && r.key == NULL);
  eloqstore_record_free(&r);
  REQUIRE_OK(eloqstore_get(store, table, 1, nul_key, sizeof nul_key, &r, NULL));
  CHECK(r.value_len == 3 && memcmp(r.value, "nul", 3) == 0);
  eloqstore_record_free(&r);
  msg = NULL;
  CHECK(eloqstore_get(store, table, 1, "a", 1, &r, &msg) == ELOQSTORE_NOT_FOUND);
  CHECK(msg != NULL && strcmp(msg, "not found") == 0); /* a message like any failure */
  eloqstore_free(msg);
  /* NULL bytes with a length are refused, not read. */
  CHECK(eloqstore_get(store, table, 1, NULL, 3, &r, NULL) == ELOQSTORE_INVALID_ARGS);
  CHECK(eloqstore_truncate(store, table, 1, NULL, 3, NULL) == ELOQSTORE_INVALID_ARGS);
  CHECK(eloqstore_delete_range(store, table, 1, "a", 1, NULL, 2, NULL) == ELOQSTORE_INVALID_ARGS);
  CHECK(eloqstore_scan_create(store, table, 1, NULL, 1, NULL, 0) == NULL);
  CHECK(eloqstore_batch_put(NULL, "k", 1, "v", 1, 0, 0) == ELOQSTORE_INVALID_ARGS);

  /* floor: the largest key <= the one asked. */
  REQUIRE_OK(eloqstore_floor(store, table, 0, "key001234z", 10, &r, NULL));
  CHECK(r.key_len == 9 && memcmp(r.key, "key001234", 9) == 0);
  eloqstore_record_free(&r);
  CHECK(eloqstore_floor(store, table, 0, "a", 1, &r, NULL) == ELOQSTORE_NOT_FOUND);

  /* Scans: everything (three pages of the iterator), and a range. */
  CHECK(scan_count(store, NULL, NULL, 0) == key_count);
  CHECK(scan_count(store, "key000100", "key001300", 100) == 1200);

  /* Bad input: an empty key, a key twice, a NULL table; nothing of the batch is written. */
  REQUIRE_OK(eloqstore_batch_put(batch, "zzz", 3, "x", 1, 9, 0));
  REQUIRE_OK(eloqstore_batch_put(batch, "", 0, "x", 1, 9, 0));
  msg = NULL;
  CHECK(eloqstore_write(store, table, 0, batch, &msg) == ELOQSTORE_INVALID_ARGS);
  CHECK(msg != NULL && strstr(msg, "empty key") != NULL);
  eloqstore_free(msg);
  eloqstore_batch_clear(batch);
  REQUIRE_OK(eloqstore_batch_put(batch, "zzz", 3, "x", 1, 9, 0));
  REQUIRE_OK(eloqstore_batch_put(batch, "zzz", 3, "y", 1, 9, 0));
  CHECK(eloqstore_write(store, table, 0, batch, NULL) == ELOQSTORE_INVALID_ARGS);
  CHECK(eloqstore_write(store, NULL, 0, batch, NULL) == ELOQSTORE_INVALID_ARGS);
  CHECK(eloqstore_write(store, "bad table name!", 0, batch, NULL) == ELOQSTORE_INVALID_ARGS);
  CHECK(eloqstore_get(store, table, 0, "zzz", 3, &r, NULL) == ELOQSTORE_NOT_FOUND);
  eloqstore_batch_clear(batch);

  /* Deletes: one key, a range, then truncation from a key. */
  REQUIRE_OK(eloqstore_batch_delete(batch, "key000000", 9, 8));
  REQUIRE_OK(eloqstore_write(store, table, 0, batch, NULL));
  eloqstore_batch_clear(batch);
  CHECK(eloqstore_get(store, table, 0, "key000000", 9, &r, NULL) == ELOQSTORE_NOT_FOUND);
  REQUIRE_OK(eloqstore_delete_range(store, table, 0, "key002000", 9, "key002100", 9, NULL));
  CHECK(scan_count(store, "key002000", "key002100", 2000) == 0);
  CHECK(scan_count(store, "key001990", "key002000", 1990) == 10);
  CHECK(scan_count(store, "key002100", NULL, 2100) == 400);
  REQUIRE_OK(eloqstore_truncate(store, table, 0, "key002200", 9, NULL));
  CHECK(scan_count(store, "key002100", NULL, 2100) == 100);

  /* Statistics: the requests of this test are counted. */
  char* text = eloqstore_stats_prometheus(store);
  CHECK(text != NULL &&
        strstr(text, "eloqstore_requests_total{shard=\"0\",type=\"batch_write\"}") != NULL);
  CHECK(text != NULL && strstr(text, "# TYPE eloqstore_request_latency_seconds histogram") != NULL);
  eloqstore_free(text);

  /* Reopen: what was written is there. */
  eloqstore_close(store);
  store = open_store(dir);
  CHECK(scan_count(store, "key000001", "key002000", 1) == 1999);
  REQUIRE_OK(eloqstore_get(store, table, 1, nul_key, sizeof nul_key, &r, NULL));
  eloqstore_record_free(&r);
  CHECK(eloqstore_get(store, table, 0, "key002200", 9, &r, NULL) == ELOQSTORE_NOT_FOUND);
  /* A second store on the same path is refused while the first holds it. */
  eloqstore_options* again = eloqstore_options_create();
  REQUIRE_OK(eloqstore_options_set(again, "store_path", dir, NULL));
  msg = NULL;
  CHECK(eloqstore_open(again, &none, &msg) == ELOQSTORE_STORE_LOCKED);
  eloqstore_free(msg);
  eloqstore_options_destroy(again);

  eloqstore_batch_destroy(batch);
  eloqstore_close(store);
  eloqstore_close(NULL);
  eloqstore_free(NULL);

  if (argc <= 1) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
  }
  if (failures != 0) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  printf("c_api_test: all checks passed\n");
  return 0;
}
