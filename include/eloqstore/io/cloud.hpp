// cloud_io<Local, Store>: cloud mode as an io backend (spec section 8). The object store
// (Store, an object_store) holds the truth; the local backend (Local) holds a cache of it.
// Every partition file the engine names lives at `[<prefix>/]<table>.<partition>/<name>` in
// the bucket (detail/cloud/term.hpp), and cloud_io moves files between the two as the commit
// protocol reaches its steps, so the engine's layers stay as they are in local mode:
//
// * Upload at commit. sync(t, name) of a data file or manifest syncs it locally, then PUTs
//   the whole file; write_file_atomic of a manifest (snapshot) or archive PUTs its bytes after
//   the local rename. The commit protocol syncs data files before it writes the manifest that
//   references them, so the bucket never holds a manifest whose files it lacks. A failed
//   upload fails the call, so the request fails (the reference aborts the process).
// * Fencing. The first read of `manifest_<T>` for a partition claims it for term T
//   (CURRENT_TERM compare-and-swap), then takes the manifest from the bucket: manifest_<T>,
//   or the newest older one, which is promoted (written as manifest_<T>, locally and in the
//   bucket). After every manifest upload CURRENT_TERM is read again: if a newer term has
//   claimed the partition, the call fails with expired_term and the partition stays expired
//   in this process (every later write fails the same way). A newer term reads the bucket only
//   after its claim, so whatever was acknowledged here before the claim is in what it reads.
//   A term never uploads or deletes objects of another term's names, and its GC
//   (remove) runs only while CURRENT_TERM is still its own.
// * Download on open. A read of a data file or manifest missing from the cache GETs it and
//   writes it to the cache (atomically), then reads it.
// * list(t) is the bucket's files of the partition (of this term and older terms: a newer
//   term's files are not ours to see or collect) together with the cache's;
//   list_partitions() the bucket's partitions together with the cache's.
//
// Costs: one PUT per synced data file and per manifest write, one GET of CURRENT_TERM per
// manifest write, one GET per cache miss.
//
// Thread safety: as the local backend (calls for one partition come from one thread); the
// partition table is shared under a mutex, the object store is thread-safe.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/cloud/term.hpp>
#include <eloqstore/detail/io/file_names.hpp>
#include <eloqstore/detail/util/parse.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/object/object_store.hpp>
#include <eloqstore/table_ident.hpp>

namespace eloqstore {

template <io_backend Local, object_store Store>
class cloud_io : public Local {
 public:
  using local_type = Local;
  using store_type = Store;

  // `prefix`: the key prefix inside the bucket (the part of cloud_store_path after the
  // bucket, may be empty). The local backend is built from `local_args`.
  template <typename... A>
  cloud_io(std::shared_ptr<Store> store, std::string prefix, A&&... local_args)
      : Local(std::forward<A>(local_args)...),
        store_(std::move(store)),
        prefix_(std::move(prefix)) {
    while (!prefix_.empty() && prefix_.back() == '/') {
      prefix_.pop_back();
    }
  }

  static constexpr bool object_tier = true;

  // Opens the cache, then starts the object store (when it has a start(): s3_store creates
  // its bucket and threads).
  [[nodiscard]] error open() {
    if (const error e = Local::open(); e != error::ok) {
      return e;
    }
    if constexpr (requires(Store & s) {
                    { s.start() } -> std::same_as<error>;
                  }) {
      if (const error e = store_->start(); e != error::ok) {
        Local::close();
        return e;
      }
    }
    return error::ok;
  }

  [[nodiscard]] Store& object_store() noexcept { return *store_; }
  [[nodiscard]] Local& local() noexcept { return *this; }
  [[nodiscard]] const std::string& prefix() const noexcept { return prefix_; }

  // ---- reads: the cache, filled from the bucket on a miss ------------------------------------

  error read(const table_ident& t, std::string_view name, std::uint64_t offset,
             std::span<char> buf) {
    return cached(t, name, [&] { return Local::read(t, name, offset, buf); });
  }

  error read_file(const table_ident& t, std::string_view name, std::string& out) {
    const detail::parsed_file_name f = detail::parse_file_name(name);
    if (f.kind == detail::file_kind::manifest) {
      if (const error e = open_manifest(t, f.term); e != error::ok) {
        return e;
      }
    }
    // (A claimed partition's manifest missing from the cache comes back from the bucket too.)
    return cached(t, name, [&] { return Local::read_file(t, name, out); });
  }

  template <typename Ref>
  requires file_handles<Local> error open_file(const table_ident& t, std::string_view name,
                                               Ref& ref) {
    return cached(t, name, [&] { return Local::open_file(t, name, ref); });
  }

  template <typename Reads>
  requires batched_reads<Local> error read_pages(const table_ident& t, const Reads& reads) {
    error e = Local::read_pages(t, reads);
    if (e != error::not_found) {
      return e;
    }
    // Some file of the batch is not in the cache: bring those the cache's listing lacks.
    std::vector<std::string> cached;
    if (const error le = Local::list(t, cached); le != error::ok && le != error::not_found) {
      return le;
    }
    const std::set<std::string, std::less<>> have(cached.begin(), cached.end());
    std::set<std::string_view> missing;
    for (const page_read& r : reads) {
      if (!have.contains(r.name) && fetchable(r.name)) {
        missing.insert(r.name);
      }
    }
    for (const std::string_view name : missing) {
      if (const error f = fetch(t, name); f != error::ok) {
        return f;
      }
    }
    return Local::read_pages(t, reads);
  }

  // ---- writes: into whole files, uploaded when they become durable ---------------------------
  //
  // A write into a file the cache does not hold (the tail data file after a restart with an
  // empty cache) first brings the file from the bucket: the upload at its sync sends the whole
  // file, which must not be the new pages alone.

  error write(const table_ident& t, std::string_view name, std::uint64_t offset,
              std::span<const char> data) {
    if (const error e = ensure_local(t, name); e != error::ok) {
      return e;
    }
    return Local::write(t, name, offset, data);
  }

  template <typename Writes>
  requires batched_io<Local> error write_pages(const table_ident& t, const Writes& writes) {
    if (const error e = ensure_local_all(t, writes); e != error::ok) {
      return e;
    }
    return Local::write_pages(t, writes);
  }

  template <typename Writes, typename Ticket>
  requires async_page_writes<Local> error begin_write_pages(const table_ident& t,
                                                            const Writes& writes, Ticket& ticket) {
    if (const error e = ensure_local_all(t, writes); e != error::ok) {
      return e;
    }
    return Local::begin_write_pages(t, writes, ticket);
  }

  error sync(const table_ident& t, std::string_view name) {
    if (const error e = writable(t); e != error::ok) {
      return e;
    }
    if (const error e = Local::sync(t, name); e != error::ok) {
      return e;
    }
    const detail::parsed_file_name f = detail::parse_file_name(name);
    if (f.kind != detail::file_kind::data && f.kind != detail::file_kind::manifest) {
      return error::ok;
    }
    std::string bytes;
    if (const error e = read_whole(t, name, bytes); e != error::ok) {
      return e;
    }
    return upload(t, name, f, bytes);
  }

  error write_file_atomic(const table_ident& t, std::string_view name, std::span<const char> data) {
    if (const error e = writable(t); e != error::ok) {
      return e;
    }
    if (const error e = Local::write_file_atomic(t, name, data); e != error::ok) {
      return e;
    }
    const detail::parsed_file_name f = detail::parse_file_name(name);
    if (f.kind != detail::file_kind::data && f.kind != detail::file_kind::manifest &&
        f.kind != detail::file_kind::archive) {
      return error::ok;
    }
    return upload(t, name, f, std::string_view(data.data(), data.size()));
  }

  // A file of the partition leaves the bucket, then the cache. Only while this process's term
  // still owns the partition, and never a file of a newer term.
  error remove(const table_ident& t, std::string_view name) {
    const detail::parsed_file_name f = detail::parse_file_name(name);
    if (f.kind == detail::file_kind::current_term) {
      return error::invalid_args;
    }
    if (f.kind == detail::file_kind::data || f.kind == detail::file_kind::manifest ||
        f.kind == detail::file_kind::archive) {
      std::uint64_t term = 0;
      if (const error e = owner_term(t, term); e != error::ok) {
        return e;
      }
      if (f.term > term) {
        return error::invalid_args;  // a newer term's file
      }
      if (const error e = still_owner(t, term); e != error::ok) {
        return e;
      }
      const object_status s = store_->remove(key(t, name));
      if (s != object_status::ok) {
        return detail_error(s);
      }
    }
    forget_local(t, name);
    const error e = Local::remove(t, name);
    return e == error::not_found ? error::ok : e;
  }

  // ---- listings: the bucket and the cache together -------------------------------------------

  error list(const table_ident& t, std::vector<std::string>& names) {
    std::vector<std::string> local;
    const error le = Local::list(t, local);
    if (le != error::ok && le != error::not_found) {
      return le;
    }
    std::set<std::string> all(local.begin(), local.end());
    const std::string dir = detail::object_dir(prefix_, t);
    std::string after;
    list_page page;
    for (;;) {
      const object_status s = store_->list(dir, "", after, list_page_max, page);
      if (s != object_status::ok) {
        return detail_error(s);
      }
      for (const object_meta& m : page.objects) {
        all.insert(m.key.substr(dir.size()));
      }
      if (page.next.empty()) {
        break;
      }
      after = page.next;
    }
    if (all.empty()) {
      return error::not_found;
    }
    // A newer term's files are not this process's to see (nor to collect).
    std::uint64_t term = 0;
    const bool known = known_term(t, term);
    names.clear();
    for (const std::string& n : all) {
      const detail::parsed_file_name f = detail::parse_file_name(n);
      if (known &&
          (f.kind == detail::file_kind::data || f.kind == detail::file_kind::manifest ||
           f.kind == detail::file_kind::archive) &&
          f.term > term) {
        continue;
      }
      if (f.kind == detail::file_kind::current_term) {
        continue;  // the bucket's bookkeeping, not a partition file
      }
      names.push_back(n);
    }
    return error::ok;
  }

  error list_partitions(std::vector<table_ident>& out) {
    std::vector<table_ident> local;
    if (const error e = Local::list_partitions(local); e != error::ok && e != error::not_found) {
      return e;
    }
    std::set<std::string> seen;
    out.clear();
    for (const table_ident& t : local) {
      if (seen.insert(t.to_string()).second) {
        out.push_back(t);
      }
    }
    const std::string root = prefix_.empty() ? std::string() : prefix_ + "/";
    std::string after;
    list_page page;
    for (;;) {
      const object_status s = store_->list(root, "/", after, list_page_max, page);
      if (s != object_status::ok) {
        return detail_error(s);
      }
      for (const std::string& p : page.prefixes) {
        std::string_view dir = std::string_view(p).substr(root.size());
        if (!dir.empty() && dir.back() == '/') {
          dir.remove_suffix(1);
        }
        if (const auto t = table_ident::parse(dir); t && seen.insert(t->to_string()).second) {
          out.push_back(*t);
        }
      }
      if (page.next.empty()) {
        break;
      }
      after = page.next;
    }
    return error::ok;
  }

 private:
  struct partition_claim {
    std::uint64_t term = 0;
    bool expired = false;
  };

  [[nodiscard]] static bool fetchable(std::string_view name) {
    const detail::file_kind k = detail::parse_file_name(name).kind;
    return k == detail::file_kind::data || k == detail::file_kind::manifest ||
           k == detail::file_kind::archive;
  }

  [[nodiscard]] std::string key(const table_ident& t, std::string_view name) const {
    return detail::object_key(prefix_, t, name);
  }

  // A request's final status as the engine's error (a lost conditional put is a cloud error).
  [[nodiscard]] static error detail_error(object_status s) { return to_error(s); }

  [[nodiscard]] bool known_term(const table_ident& t, std::uint64_t& term) {
    std::lock_guard lock(mu_);
    const auto it = claims_.find(t);
    if (it == claims_.end()) {
      return false;
    }
    term = it->second.term;
    return true;
  }

  // The term this process claimed t with; error::expired_term once a newer one took it.
  [[nodiscard]] error owner_term(const table_ident& t, std::uint64_t& term) {
    std::lock_guard lock(mu_);
    const auto it = claims_.find(t);
    if (it == claims_.end()) {
      return error::invalid_args;  // the engine opens a partition before it writes it
    }
    term = it->second.term;
    return it->second.expired ? error::expired_term : error::ok;
  }

  [[nodiscard]] error writable(const table_ident& t) {
    std::lock_guard lock(mu_);
    const auto it = claims_.find(t);
    return it != claims_.end() && it->second.expired ? error::expired_term : error::ok;
  }

  void mark_expired(const table_ident& t) {
    std::lock_guard lock(mu_);
    claims_[t].expired = true;
  }

  // Whether CURRENT_TERM still names `term` (expired_term, remembered, when a newer term
  // holds it).
  [[nodiscard]] error still_owner(const table_ident& t, std::uint64_t term) {
    std::string body;
    object_meta meta;
    const object_status s = store_->get(key(t, detail::current_term_file_name), body, meta);
    if (s != object_status::ok) {
      // Deleted under us (a dropped bucket): not ours any more either.
      return s == object_status::not_found ? error::expired_term : detail_error(s);
    }
    const auto held = detail::parse_decimal<std::uint64_t>(body);
    if (!held) {
      return error::corrupted;
    }
    if (*held != term) {
      mark_expired(t);
      return error::expired_term;
    }
    return error::ok;
  }

  error upload(const table_ident& t, std::string_view name, const detail::parsed_file_name& f,
               std::string_view bytes) {
    object_meta meta;
    const object_status s = store_->put(key(t, name), bytes, put_condition::always(), meta);
    if (s != object_status::ok) {
      return detail_error(s);
    }
    if (f.kind != detail::file_kind::manifest) {
      return error::ok;
    }
    // Acknowledged only while still the owner: a newer term claims before it reads the bucket,
    // so a check that passes after the upload means the newer term reads this manifest.
    return still_owner(t, f.term);
  }

  // A cached file whole, data files included (a backend that reads data files with O_DIRECT
  // page by page offers read_file_buffered for this).
  error read_whole(const table_ident& t, std::string_view name, std::string& out) {
    if constexpr (requires(Local & l) { l.read_file_buffered(t, name, out); }) {
      return Local::read_file_buffered(t, name, out);
    } else {
      return Local::read_file(t, name, out);
    }
  }

  // Makes sure the cache holds `name` before it is written: fetched from the bucket when the
  // cache lacks it and the bucket has it; a file neither has is new. What the cache holds is
  // learnt from one listing of the partition's cache directory, then kept up to date.
  error ensure_local(const table_ident& t, std::string_view name) {
    if (!fetchable(name)) {
      return error::ok;
    }
    bool listed = false;
    {
      std::lock_guard lock(mu_);
      const auto it = local_.find(t);
      if (it != local_.end()) {
        if (it->second.names.contains(std::string(name))) {
          return error::ok;
        }
        listed = it->second.listed;
      }
    }
    if (!listed) {
      std::vector<std::string> names;
      const error le = Local::list(t, names);
      if (le != error::ok && le != error::not_found) {
        return le;
      }
      std::lock_guard lock(mu_);
      cache_files& c = local_[t];
      c.listed = true;
      c.names.insert(names.begin(), names.end());
      if (c.names.contains(std::string(name))) {
        return error::ok;
      }
    }
    if (const error e = fetch(t, name); e != error::ok && e != error::not_found) {
      return e;
    }
    std::lock_guard lock(mu_);
    local_[t].names.insert(std::string(name));
    return error::ok;
  }

  template <typename Writes>
  error ensure_local_all(const table_ident& t, const Writes& writes) {
    std::string_view last;
    for (const page_write& w : writes) {
      if (w.name == last) {
        continue;  // batches are mostly one file's pages
      }
      last = w.name;
      if (const error e = ensure_local(t, w.name); e != error::ok) {
        return e;
      }
    }
    return error::ok;
  }

  void forget_local(const table_ident& t, std::string_view name) {
    std::lock_guard lock(mu_);
    if (const auto it = local_.find(t); it != local_.end()) {
      it->second.names.erase(std::string(name));
    }
  }

  // `op` on the cache; when the cache lacks the file, once more after fetching it.
  template <typename Op>
  error cached(const table_ident& t, std::string_view name, Op op) {
    const error e = op();
    if (e != error::not_found || !fetchable(name)) {
      return e;
    }
    if (const error f = fetch(t, name); f != error::ok) {
      return f;
    }
    return op();
  }

  // GETs `name` into the cache (atomically: a crash leaves the old state or the whole file).
  error fetch(const table_ident& t, std::string_view name) {
    std::string body;
    object_meta meta;
    const object_status s = store_->get(key(t, name), body, meta);
    if (s != object_status::ok) {
      return detail_error(s);
    }
    if (const error e = Local::write_file_atomic(t, name, body); e != error::ok) {
      return e;
    }
    std::lock_guard lock(mu_);
    local_[t].names.insert(std::string(name));
    return error::ok;
  }

  // The first open of t's manifest in this process: claim t for `term`, then bring the
  // manifest the term opens into the cache as manifest_<term> (promoting an older term's).
  error open_manifest(const table_ident& t, std::uint64_t term) {
    {
      std::lock_guard lock(mu_);
      const auto it = claims_.find(t);
      if (it != claims_.end() && it->second.term == term) {
        return it->second.expired ? error::expired_term : error::ok;
      }
    }
    if (const error e = detail::claim_term(*store_, prefix_, t, term); e != error::ok) {
      return e;
    }
    std::uint64_t chosen = 0;
    std::string body;
    const error e = detail::choose_manifest(*store_, prefix_, t, term, chosen, body);
    if (e != error::ok && e != error::not_found) {
      return e;
    }
    if (e == error::ok) {
      const std::string name = detail::manifest_file_name(term);
      if (const error w = Local::write_file_atomic(t, name, body); w != error::ok) {
        return w;
      }
      if (chosen != term) {
        // Promotion: the newer term continues from the older term's manifest under its own
        // name; the older term's files stay as they are (their names carry their term).
        object_meta meta;
        const object_status s = store_->put(key(t, name), body, put_condition::always(), meta);
        if (s != object_status::ok) {
          return detail_error(s);
        }
      }
    } else {
      // A new partition in the bucket: whatever the cache holds of it is stale (a write whose
      // upload failed) and must not be taken for it.
      std::vector<std::string> cached;
      if (Local::list(t, cached) == error::ok) {
        for (const std::string& n : cached) {
          if (const error r = Local::remove(t, n); r != error::ok && r != error::not_found) {
            return r;
          }
        }
      }
      std::lock_guard lock(mu_);
      local_.erase(t);
    }
    std::lock_guard lock(mu_);
    claims_[t] = partition_claim{term, false};
    return error::ok;
  }

  std::shared_ptr<Store> store_;
  std::string prefix_;
  std::mutex mu_;
  std::unordered_map<table_ident, partition_claim> claims_;  // under mu_
  // The files of a partition known to be in the cache.
  struct cache_files {
    bool listed = false;  // the cache directory was listed once
    std::unordered_set<std::string> names;
  };
  std::unordered_map<table_ident, cache_files> local_;  // under mu_
};

}  // namespace eloqstore
