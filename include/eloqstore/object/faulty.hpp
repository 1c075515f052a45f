// faulty_object_store<Inner>: an object_store that injects the failures a real bucket shows,
// seeded so that a failing test replays. Each request draws its fault by the probabilities
// in object_faults:
//
//   fail_before   the request is not carried out and answers transient (a 503, a refused
//                 connection)
//   fail_after    a put or remove is carried out, then answers transient (a timeout after
//                 the server completed it: the caller cannot tell the two apart)
//   cut_get       a get answers transient after part of the body arrived (a lost
//                 connection mid-download); `body` holds the part
//   short_list    a list page holds fewer keys than asked, still with a correct `next` (S3
//                 may return short pages)
//   race          a conditional If-Match put finds the object rewritten by another writer
//                 just before (same bytes, new ETag) and answers precondition_failed
//   slow          the request lets the other tasks of the calling shard run before it is
//                 carried out (a request that takes a while on a real server: the caller's
//                 tasks interleave as they do over s3_store); no effect outside a task
//
// Faults can be switched off (set_faults) to check the state they left.
//
// Thread safety: as Inner; the draws are under a mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <string_view>

#include <eloqstore/object/object_store.hpp>
#include <eloqstore/sched/remote.hpp>

namespace eloqstore {

struct object_faults {
  double fail_before = 0;
  double fail_after = 0;
  double cut_get = 0;
  double short_list = 0;
  double race = 0;
  double slow = 0;
};

template <object_store Inner>
class faulty_object_store {
 public:
  struct injected {
    std::uint64_t failed_before = 0;
    std::uint64_t failed_after = 0;
    std::uint64_t cut_gets = 0;
    std::uint64_t short_lists = 0;
    std::uint64_t races = 0;
    std::uint64_t slowed = 0;
  };

  faulty_object_store(Inner& inner, std::uint64_t seed, object_faults faults = {})
      : inner_(inner), rng_(seed), faults_(faults) {}

  void set_faults(const object_faults& f) {
    std::lock_guard lock(mu_);
    faults_ = f;
  }
  [[nodiscard]] injected counts() const {
    std::lock_guard lock(mu_);
    return counts_;
  }

  object_status get(std::string_view key, std::string& body, object_meta& meta) {
    pause();
    if (draw(&object_faults::fail_before, &injected::failed_before)) {
      return object_status::transient;
    }
    const object_status s = inner_.get(key, body, meta);
    if (s == object_status::ok && draw(&object_faults::cut_get, &injected::cut_gets)) {
      body.resize(body.size() / 2);
      return object_status::transient;
    }
    return s;
  }

  object_status put(std::string_view key, std::string_view body, const put_condition& cond,
                    object_meta& meta) {
    pause();
    if (draw(&object_faults::fail_before, &injected::failed_before)) {
      return object_status::transient;
    }
    if (cond.what == put_condition::kind::if_match &&
        draw(&object_faults::race, &injected::races)) {
      std::string current;
      object_meta m;
      if (inner_.get(key, current, m) == object_status::ok) {
        (void)inner_.put(key, current, put_condition::always(), m);  // the other writer
      }
    }
    const object_status s = inner_.put(key, body, cond, meta);
    if (s == object_status::ok && draw(&object_faults::fail_after, &injected::failed_after)) {
      return object_status::transient;
    }
    return s;
  }

  object_status remove(std::string_view key) {
    pause();
    if (draw(&object_faults::fail_before, &injected::failed_before)) {
      return object_status::transient;
    }
    const object_status s = inner_.remove(key);
    if (s == object_status::ok && draw(&object_faults::fail_after, &injected::failed_after)) {
      return object_status::transient;
    }
    return s;
  }

  object_status list(std::string_view prefix, std::string_view delimiter, std::string_view after,
                     std::size_t max_keys, list_page& page) {
    pause();
    if (draw(&object_faults::fail_before, &injected::failed_before)) {
      return object_status::transient;
    }
    std::size_t n = max_keys;
    if (max_keys > 1 && draw(&object_faults::short_list, &injected::short_lists)) {
      std::lock_guard lock(mu_);
      n = std::uniform_int_distribution<std::size_t>(1, max_keys - 1)(rng_);
    }
    return inner_.list(prefix, delimiter, after, n, page);
  }

 private:
  // The `slow` fault: the running task goes to the back of its shard's queue (posted, then
  // parked: the post is drained by this thread only after the park).
  void pause() {
    completion_port* port = completion_port::current();
    void* task = port == nullptr ? nullptr : port->hooks().running_task();
    if (task == nullptr || !draw(&object_faults::slow, &injected::slowed)) {
      return;
    }
    port->post(task);
    port->hooks().park(port->hooks().sched);
  }

  // Whether the fault `which` strikes this request (counted in `count` when it does).
  bool draw(double object_faults::*which, std::uint64_t injected::*count) {
    std::lock_guard lock(mu_);
    const double p = faults_.*which;
    if (p <= 0 || !std::bernoulli_distribution(p)(rng_)) {
      return false;
    }
    ++(counts_.*count);
    return true;
  }

  Inner& inner_;
  mutable std::mutex mu_;
  std::mt19937_64 rng_;
  object_faults faults_;
  injected counts_;
};

}  // namespace eloqstore
