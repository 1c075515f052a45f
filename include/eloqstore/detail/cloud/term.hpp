// Term fencing in the bucket (spec 8.5): which process term owns a partition, and which
// manifest a term opens.
//
// Object keys are the reference's: `[<prefix>/]<table>.<partition>/<file name>`, with the
// file names of io/file_names.hpp. Each partition has a CURRENT_TERM object holding the
// decimal term of its owner.
//
// claim_term: the first open of a partition by a process (term T) compares and swaps
// CURRENT_TERM up to T. Absent: created with If-None-Match: *. Holding a term above T: the
// partition belongs to a newer process, error::expired_term. Holding a lower term: replaced
// with If-Match on the ETag read. A lost race (another writer changed it between the read and
// the put), or an answer that leaves the outcome unknown (transient: the put may have taken
// effect), is resolved by reading again; after claim_attempts_max reads the claim fails
// (cloud_error, or timeout when the store kept failing transiently).
//
// choose_manifest: the manifest term T opens, and its bytes: manifest_<T> if the bucket has
// it, else the newest manifest of an older term (the caller promotes it, spec 8.5 step 3).
// Only a newer term's manifest means T is expired; a partition with data files or archives
// but no manifest is cloud_no_manifest; one with none is not_found (new).
//
// Thread affinity: the calling task (calls into the object store may suspend it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <eloqstore/detail/io/file_names.hpp>
#include <eloqstore/detail/util/parse.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/object/object_store.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore::detail {

// Reads of CURRENT_TERM a claim makes before it gives up (the reference retries conflicts 10
// times).
inline constexpr int claim_attempts_max = 10;

// `[<prefix>/]<table>.<partition>/`: where a partition's objects live.
[[nodiscard]] inline std::string object_dir(std::string_view prefix, const table_ident& t) {
  std::string key(prefix);
  if (!key.empty() && key.back() != '/') {
    key.push_back('/');
  }
  key.append(t.to_string()).push_back('/');
  return key;
}

[[nodiscard]] inline std::string object_key(std::string_view prefix, const table_ident& t,
                                            std::string_view file) {
  return object_dir(prefix, t).append(file);
}

template <object_store Store>
[[nodiscard]] error claim_term(Store& store, std::string_view prefix, const table_ident& t,
                               std::uint64_t term) {
  const std::string key = object_key(prefix, t, current_term_file_name);
  const std::string mine = std::to_string(term);
  object_status last = object_status::ok;
  for (int attempt = 0; attempt < claim_attempts_max; ++attempt) {
    std::string body;
    object_meta meta;
    const object_status got = store.get(key, body, meta);
    if (got == object_status::transient) {
      last = got;
      continue;
    }
    if (got != object_status::ok && got != object_status::not_found) {
      return to_error(got);  // denied, failed
    }
    put_condition cond = put_condition::absent();
    if (got == object_status::ok) {
      const auto held = parse_decimal<std::uint64_t>(body);
      if (!held) {
        return error::corrupted;
      }
      if (*held > term) {
        return error::expired_term;
      }
      if (*held == term) {
        return error::ok;  // ours already (perhaps a put whose answer was lost)
      }
      cond = put_condition::match(meta.etag);
    }
    object_meta written;
    last = store.put(key, mine, cond, written);
    if (last == object_status::ok) {
      return error::ok;
    }
    if (last == object_status::denied || last == object_status::failed) {
      return to_error(last);
    }
    // precondition_failed, not_found (If-Match on a key deleted meanwhile), transient: the
    // next read tells what happened.
  }
  return last == object_status::transient ? error::timeout : error::cloud_error;
}

// The manifest term `term` opens for partition t (see the header comment): its term in
// `chosen` and its bytes in `body`. One GET when the bucket has manifest_<term>, as the
// reference; else a listing, then a GET of the newest older manifest.
template <object_store Store>
[[nodiscard]] error choose_manifest(Store& store, std::string_view prefix, const table_ident& t,
                                    std::uint64_t term, std::uint64_t& chosen, std::string& body) {
  object_meta meta;
  const object_status own = store.get(object_key(prefix, t, manifest_file_name(term)), body, meta);
  if (own == object_status::ok) {
    chosen = term;
    return error::ok;
  }
  if (own != object_status::not_found) {
    return to_error(own);
  }
  const std::string dir = object_dir(prefix, t);
  bool found = false;
  bool anything = false;
  std::uint64_t newest = 0;
  std::string after;
  list_page page;
  for (;;) {
    if (const object_status s = store.list(dir, "", after, list_page_max, page);
        s != object_status::ok) {
      return to_error(s);
    }
    for (const object_meta& m : page.objects) {
      const parsed_file_name f = parse_file_name(std::string_view(m.key).substr(dir.size()));
      anything = anything || f.kind == file_kind::data || f.kind == file_kind::archive ||
                 f.kind == file_kind::manifest;
      if (f.kind == file_kind::manifest && (!found || f.term > newest)) {
        newest = f.term;
        found = true;
      }
    }
    if (page.next.empty()) {
      break;
    }
    after = page.next;
  }
  if (!found) {
    return anything ? error::cloud_no_manifest : error::not_found;
  }
  if (newest > term) {
    return error::expired_term;
  }
  const object_status got =
      store.get(object_key(prefix, t, manifest_file_name(newest)), body, meta);
  if (got != object_status::ok) {
    // Deleted since the listing (a newer term's GC): not_found would read as a new partition.
    return got == object_status::not_found ? error::cloud_no_manifest : to_error(got);
  }
  chosen = newest;
  return error::ok;
}

}  // namespace eloqstore::detail
