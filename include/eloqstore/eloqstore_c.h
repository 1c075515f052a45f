/* eloqstore C API: the store with the default traits (io_uring, fibers, bytewise keys, 4 KiB
 * pages) behind opaque handles, for C programs and other languages' foreign-function
 * interfaces. Link the library eloqstore::c (CMake) or eloqstore-c (pkg-config).
 *
 * Conventions:
 *  - Functions that can fail return an eloqstore_status: ELOQSTORE_OK (0) or an error code
 *    (the same numbers as eloqstore::error in C++). When `errmsg` is not NULL and the call
 *    fails, *errmsg receives a message in malloc'd memory (free it with eloqstore_free);
 *    on success it is left untouched.
 *  - Keys and values are byte strings with explicit lengths (they may hold NUL bytes).
 *    Output buffers are malloc'd by the library and freed by the caller with eloqstore_free.
 *  - A partition is a table name (NUL-terminated; 1 to 244 bytes, no '/' and no control
 *    characters) and a partition number.
 *  - Lookups that find nothing return ELOQSTORE_NOT_FOUND, with a message like any failure.
 *  - Every function may be called from any thread, except that one scan iterator or one batch
 *    must not be used by two threads at once. eloqstore_close must not race other calls on
 *    the same store, and every scan iterator of a store must be destroyed before it closes.
 *  - No C++ exception leaves the library: a failure to allocate is ELOQSTORE_OUT_OF_MEM, a
 *    failure of the system to create the store's threads ELOQSTORE_IO_FAIL.
 */
#ifndef ELOQSTORE_ELOQSTORE_C_H
#define ELOQSTORE_ELOQSTORE_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's exported functions (the shared library hides everything else). */
#if defined(__GNUC__)
#define ELOQSTORE_C_API __attribute__((visibility("default")))
#else
#define ELOQSTORE_C_API
#endif

typedef int eloqstore_status;

enum {
  ELOQSTORE_OK = 0,
  ELOQSTORE_INVALID_ARGS = 1,
  ELOQSTORE_NOT_FOUND = 2,
  ELOQSTORE_NOT_RUNNING = 3,
  ELOQSTORE_CORRUPTED = 4,
  ELOQSTORE_END_OF_FILE = 5,
  ELOQSTORE_OUT_OF_SPACE = 6,
  ELOQSTORE_OUT_OF_MEM = 7,
  ELOQSTORE_OPEN_FILE_LIMIT = 8,
  ELOQSTORE_TRY_AGAIN = 9,
  ELOQSTORE_BUSY = 10,
  ELOQSTORE_TIMEOUT = 11,
  ELOQSTORE_NO_PERMISSION = 12,
  ELOQSTORE_CLOUD_ERROR = 13,
  ELOQSTORE_IO_FAIL = 14,
  ELOQSTORE_EXPIRED_TERM = 15,
  ELOQSTORE_CLOUD_NO_MANIFEST = 16,
  ELOQSTORE_STORE_LOCKED = 17,
  /* Not an error: a scan iterator has no more entries. */
  ELOQSTORE_SCAN_END = 100
};

/* The message of a status code (static storage; never NULL). */
ELOQSTORE_C_API const char* eloqstore_status_message(eloqstore_status status);

/* Frees memory the library returned (messages, values, keys, text). NULL is a no-op. */
ELOQSTORE_C_API void eloqstore_free(void* p);

/* ---- options ---------------------------------------------------------------------------- */

typedef struct eloqstore_options eloqstore_options;

/* The reference's defaults (NULL only without memory). */
ELOQSTORE_C_API eloqstore_options* eloqstore_options_create(void);
ELOQSTORE_C_API void eloqstore_options_destroy(eloqstore_options* opts);
/* Sets one option by its option-file name, from text as an option file writes it
 * ("store_path", "/data/a:/data/b"; "num_threads", "4"; "buffer_pool_size", "64MB"). */
ELOQSTORE_C_API eloqstore_status eloqstore_options_set(eloqstore_options* opts, const char* key,
                                                       const char* value, char** errmsg);
/* Reads an option file ([run] and [permanent] sections) over the current settings. */
ELOQSTORE_C_API eloqstore_status eloqstore_options_load_file(eloqstore_options* opts,
                                                             const char* path, char** errmsg);

/* ---- the store -------------------------------------------------------------------------- */

typedef struct eloqstore_store eloqstore_store;

/* Validates the options, opens the store at their store_path and starts it; *store receives
 * the handle (unchanged on failure). */
ELOQSTORE_C_API eloqstore_status eloqstore_open(const eloqstore_options* opts,
                                                eloqstore_store** store, char** errmsg);
/* Stops the store (queued requests finish first) and frees the handle. NULL is a no-op. */
ELOQSTORE_C_API void eloqstore_close(eloqstore_store* store);

/* One record as reads return it. eloqstore_get and eloqstore_floor fill it with malloc'd copies
 * (free them with eloqstore_record_free; get leaves key NULL); eloqstore_scan_next points it
 * into the iterator's memory (valid until the next call on the iterator; never free those). */
typedef struct eloqstore_record {
  char* key;
  size_t key_len;
  char* value;
  size_t value_len;
  uint64_t timestamp;
  uint64_t expire_ts; /* 0: never expires */
} eloqstore_record;

/* Frees the key and value of a record filled by eloqstore_get or eloqstore_floor. */
ELOQSTORE_C_API void eloqstore_record_free(eloqstore_record* record);

/* The live record of `key`; ELOQSTORE_NOT_FOUND if absent or expired. */
ELOQSTORE_C_API eloqstore_status eloqstore_get(eloqstore_store* store, const char* table,
                                               uint32_t partition, const char* key, size_t key_len,
                                               eloqstore_record* out, char** errmsg);
/* The live record with the largest key <= `key`; ELOQSTORE_NOT_FOUND if none. */
ELOQSTORE_C_API eloqstore_status eloqstore_floor(eloqstore_store* store, const char* table,
                                                 uint32_t partition, const char* key,
                                                 size_t key_len, eloqstore_record* out,
                                                 char** errmsg);

/* ---- batch writes ----------------------------------------------------------------------- */

typedef struct eloqstore_batch eloqstore_batch;

ELOQSTORE_C_API eloqstore_batch* eloqstore_batch_create(void);
ELOQSTORE_C_API void eloqstore_batch_destroy(eloqstore_batch* batch);
/* Empties the batch for reuse. */
ELOQSTORE_C_API void eloqstore_batch_clear(eloqstore_batch* batch);
/* Adds an upsert (expire_ts 0: never expires) or a delete; the store checks the batch when it
 * is written (non-empty keys of at most half a page, no key twice). */
ELOQSTORE_C_API eloqstore_status eloqstore_batch_put(eloqstore_batch* batch, const char* key,
                                                     size_t key_len, const char* value,
                                                     size_t value_len, uint64_t timestamp,
                                                     uint64_t expire_ts);
ELOQSTORE_C_API eloqstore_status eloqstore_batch_delete(eloqstore_batch* batch, const char* key,
                                                        size_t key_len, uint64_t timestamp);
/* Applies the batch atomically to one partition, durable when it returns. The batch is kept
 * (clear it to reuse it). */
ELOQSTORE_C_API eloqstore_status eloqstore_write(eloqstore_store* store, const char* table,
                                                 uint32_t partition, const eloqstore_batch* batch,
                                                 char** errmsg);

/* Deletes every key >= `from` (from_len 0: every key) of a partition. */
ELOQSTORE_C_API eloqstore_status eloqstore_truncate(eloqstore_store* store, const char* table,
                                                    uint32_t partition, const char* from,
                                                    size_t from_len, char** errmsg);
/* Deletes the keys in [begin, end) (end_len 0: to the last key). */
ELOQSTORE_C_API eloqstore_status eloqstore_delete_range(eloqstore_store* store, const char* table,
                                                        uint32_t partition, const char* begin,
                                                        size_t begin_len, const char* end,
                                                        size_t end_len, char** errmsg);

/* ---- scans ------------------------------------------------------------------------------ */

typedef struct eloqstore_scan eloqstore_scan;

/* An iterator over the live records of [begin, end) in key order (begin_len 0: from the
 * first key; end_len 0: to the last). It reads in pages of records as it goes; each page is
 * a consistent snapshot, pages taken later see later writes. NULL without memory, or for a
 * NULL store or table, or a NULL key with a length. */
ELOQSTORE_C_API eloqstore_scan* eloqstore_scan_create(eloqstore_store* store, const char* table,
                                                      uint32_t partition, const char* begin,
                                                      size_t begin_len, const char* end,
                                                      size_t end_len);
/* The next record: ELOQSTORE_OK with *out filled (its key and value stay valid until the next
 * call on the iterator; do not free them), ELOQSTORE_SCAN_END after the last one, or an
 * error (the iterator then stays at the error). A partition never written scans empty. */
ELOQSTORE_C_API eloqstore_status eloqstore_scan_next(eloqstore_scan* scan, eloqstore_record* out,
                                                     char** errmsg);
ELOQSTORE_C_API void eloqstore_scan_destroy(eloqstore_scan* scan);

/* ---- statistics ------------------------------------------------------------------------- */

/* The store's statistics in the Prometheus text format (malloc'd; NULL without memory). */
ELOQSTORE_C_API char* eloqstore_stats_prometheus(eloqstore_store* store);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ELOQSTORE_ELOQSTORE_C_H */
