// The shard loops: each shard thread runs one until the store stops. A fiber shard runs
// every request as a task (reads at once, writes through their partition's lane, one writer
// task per partition taking several batch writes together), and between scheduler rounds
// submits, reaps and blocks on the I/O ring; an inline shard runs requests one after another
// (group commit takes consecutive batch writes of a partition from the queue).
//
// Thread affinity: run_shard runs on its shard's thread; submitters touch only the queue.
#pragma once

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <eloqstore/concepts.hpp>
#include <eloqstore/detail/shard/handlers.hpp>
#include <eloqstore/error.hpp>
#include <eloqstore/request.hpp>
#include <eloqstore/sched/hooks.hpp>
#include <eloqstore/sched/remote.hpp>

namespace eloqstore::detail {

template <typename Traits>
class shard_runtime : public request_handlers<Traits> {
 public:
  using base = request_handlers<Traits>;
  using base::cmp_;
  using base::compact;
  using base::enforce_meta_budget;
  using base::fibers;
  using base::handle;
  using base::handle_group;
  using base::has_ring;
  using base::io_;
  using base::now_ms;
  using base::opts_;
  using base::out_of_mem_guard;
  using base::release_partitions;
  using base::shards_count_;
  using base::term_;
  using base::writer_cfg;
  using base::writer_slice;
  using typename base::comparator_type;
  using typename base::io_type;
  using typename base::pin_guard;
  using typename base::ring_ptr;
  using typename base::shard;
  using typename base::write_lane;

  using base::base;

  // Group commit, the one rule of both loops: moves the front of `queue` into `group`, then,
  // with group commit on and that request a batch write, the batch writes of its partition
  // that follow it in `queue`, up to group_commit_max, stopping at any other request of that
  // partition (a read must not see a write queued after it; a truncate must keep its place).
  // Requests of other partitions stay where they are (a lane holds only its own). REQUIRES: `group`
  // has room for group_commit_max requests (the pushes do not allocate); for the shard queue, s.mu
  // held.
  void take_group(std::deque<request*>& queue, std::vector<request*>& group) const {
    group.push_back(queue.front());
    queue.pop_front();
    if (!opts_.group_commit || group[0]->type() != request_type::batch_write) {
      return;
    }
    const table_ident& t = group[0]->table();
    for (auto it = queue.begin(); it != queue.end() && group.size() < group_most();) {
      if (!((*it)->table() == t)) {
        ++it;
        continue;
      }
      if ((*it)->type() != request_type::batch_write) {
        break;
      }
      group.push_back(*it);
      it = queue.erase(it);
    }
  }
  [[nodiscard]] std::size_t group_most() const {
    return opts_.group_commit ? std::max<std::size_t>(1, opts_.group_commit_max) : 1;
  }

  // Runs a group taken by take_group: one request alone, several as one commit.
  void run_group(shard& s, std::vector<request*>& group) {
    if (!group[0]->read_only()) {
      s.metrics->group(group.size());  // (inline shards run reads here too, one at a time)
    }
    const table_ident t = group[0]->table();
    if (group.size() == 1) {
      handle(s, *group[0]);
    } else {
      handle_group(s, group);
    }
    enforce_meta_budget(s);
    schedule_upload(s, t);
  }

  // ---- cloud mode's background uploads ----------------------------------------------------------
  //
  // After a commit that left its upload to the background (durability::local), a fiber shard
  // starts an upload task for the partition, unless one runs: before each flush it steps
  // aside while writes of the partition wait in its lane (they commit first and go up in the
  // same upload; at most upload_coalesce_max commits, and not while the cache has no room:
  // only uploaded files make room), and it flushes until nothing is pending, or
  // a flush fails (left to the next commit or wait_uploaded; stop() lets the task finish). An
  // inline shard uploads right after the group, its requests acknowledged.
  void schedule_upload(shard& s, const table_ident& t) {
    if constexpr (object_tier_io<io_type>) {
      if (!io_->upload_pending(t) || s.uploading.contains(t)) {
        return;
      }
      if constexpr (fibers) {
        s.uploading.insert(t);
        if (!s.sched.spawn([this, &s, t] { run_upload(s, t); })) {
          s.uploading.erase(t);  // no task slot: the next commit tries again
        }
      } else {
        this->report(log_level::warning, t, "background upload", io_->flush(t));
      }
    } else {
      (void)s;
      (void)t;
    }
  }

  // Most commits of a partition an upload task lets accumulate while writes of the partition
  // keep coming (a steady stream of writes still reaches the bucket in steps of this many).
  static constexpr std::uint64_t upload_coalesce_max = 64;

  [[nodiscard]] std::uint64_t commits_not_uploaded(const table_ident& t) {
    if constexpr (object_tier_io<io_type>) {
      const auto m = io_->uploads_of(t);
      return m.committed - m.uploaded;
    } else {
      (void)t;
      return 0;
    }
  }

  void run_upload(shard& s, const table_ident& t) {
    if constexpr (object_tier_io<io_type>) {
      while (io_->upload_pending(t)) {
        do {
          s.sched.yield_low_priority();
        } while (this->writes_waiting(s, t) && commits_not_uploaded(t) < upload_coalesce_max &&
                 !io_->cache_pressed(t));
        if (const error e = io_->flush(t); e != error::ok) {
          this->report(log_level::warning, t, "background upload", e);
          break;
        }
      }
    }
    s.uploading.erase(t);
  }

  // The shard the calling thread runs, or nullptr for client threads.
  static const void*& current_shard() {
    static thread_local const void* current = nullptr;
    return current;
  }
  static bool on_shard_thread() { return current_shard() != nullptr; }

  void run_shard(shard& s) {
    current_shard() = &s;
    const metrics_scope counting(s.metrics);
    ::pthread_setname_np(::pthread_self(), "eloqstore-shard");  // for top, perf and gdb
    if constexpr (fibers) {
      run_fiber_shard(s);
    } else {
      run_inline_shard(s);
    }
    release_partitions(s);
  }

  // ---- fiber shards -------------------------------------------------------------------------
  //
  // Every request runs as a task of the shard's fiber scheduler. Reads start at once and
  // overlap their I/O; writes go to their partition's lane, where one writer task per
  // partition takes them in order, several at a time (group commit). Between rounds of the
  // scheduler the loop submits and reaps the I/O ring (when the backend has one) and blocks
  // on it, or on the queue's condition variable, when there is nothing to run.
  void run_fiber_shard(shard& s) {
    s.pages.set_yield_hook(&writer_step_aside, &s);
    s.ring = attach_ring(s);
    auto* ring = s.ring.get();
    // Tasks waiting for other threads (an object store's HTTP threads) are woken through the
    // port: the worker posts, the shard thread wakes them between rounds.
    completion_port port(make_suspend_hooks(s.sched), &notify_shard, &s, s.index);
    const completion_port::scope port_scope(&port);
    for (;;) {
      bool stopping = false;
      {
        std::unique_lock ql(s.mu);
        stopping = s.stopping;
        // Out of memory for the backlog, the rest waits in the queue for the next round.
        (void)out_of_mem_guard([&] {
          while (!s.queue.empty()) {
            s.backlog.push_back(s.queue.front());
            s.queue.pop_front();
          }
          return error::ok;
        });
      }
      s.not_full.notify_all();
      while (!s.backlog.empty() && dispatch(s, *s.backlog.front())) {
        s.backlog.pop_front();
      }
      start_prewarm_tasks(s);
      s.sched.run_round();
      port.drain();
      const bool runnable = !s.sched.idle() || port.pending();
      if (stopping && !runnable && s.sched.live_tasks() == 0 && s.backlog.empty()) {
        std::unique_lock ql(s.mu);
        if (s.queue.empty()) {
          break;  // stopping and drained
        }
        continue;
      }
      if constexpr (has_ring) {
        if (ring != nullptr) {
          // Block only with nothing runnable and nothing queued (a submitter notifies the
          // ring after it queues, so a request queued after this check still wakes us).
          bool block = !runnable;
          if (block) {
            std::unique_lock ql(s.mu);
            block = s.queue.empty() && !s.stopping;
          }
          ring->poll(block);
          continue;
        }
      }
      if (!runnable) {
        std::unique_lock ql(s.mu);
        s.cv.wait(ql, [&] { return s.stopping || !s.queue.empty() || s.woken; });
        s.woken = false;
      }
    }
    // The ring stays until release_partitions has done its final manifest rewrites (which
    // run outside tasks and poll it themselves).
  }

  // A completion port's notify: wakes the shard thread wherever it blocks (its ring, or its
  // condition variable). Called from other threads.
  static void notify_shard(void* arg) {
    auto& sh = *static_cast<shard*>(arg);
    std::lock_guard ql(sh.mu);
    sh.woken = true;
    if (sh.notify != nullptr) {
      sh.notify(sh.notify_arg);
    }
    sh.cv.notify_all();
  }

  // The yield hook of a fiber shard's writers: a writer building many pages steps aside
  // (low priority) once it has held the thread for a slice, so reads queued meanwhile run;
  // yielding after every page cost a loop round (queue lock, clock, ring poll) per page.
  static void writer_step_aside(void* arg) {
    auto& sh = *static_cast<shard*>(arg);
    if (sh.sched.current() == nullptr) {
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - sh.writer_yielded < writer_slice) {
      return;
    }
    sh.writer_yielded = now;  // another writer running meanwhile gets its own slice
    sh.sched.yield_low_priority();
    sh.writer_yielded = std::chrono::steady_clock::now();
    if constexpr (has_ring) {
      // Reads the tasks before us prepared and left to the round's end: the device works on
      // them during our slice instead of after it.
      if (sh.ring != nullptr && sh.ring->has_unsubmitted()) {
        sh.ring->submit();
      }
    }
  }

  ring_ptr attach_ring(shard& s) {
    if constexpr (has_ring) {
      auto ring = io_->attach(make_suspend_hooks(s.sched));
      if (ring != nullptr) {
        std::lock_guard ql(s.mu);
        s.notify_arg = ring.get();
        s.notify = [](void* r) { static_cast<typename io_type::shard_ring*>(r)->notify(); };
        if (!s.queue.empty() || s.stopping) {
          ring->notify();
        }
      }
      return ring;  // without a ring, I/O uses blocking system calls
    } else {
      (void)s;
      return nullptr;
    }
  }

  // Starts a request: a task for reads, the partition's lane for writes. False if no task
  // slot is free (the request stays in the backlog). Without the memory to start it, the
  // request completes with error::out_of_mem.
  bool dispatch(shard& s, request& req) {
    bool started = false;
    const error e = out_of_mem_guard([&] {
      started = start_request(s, req);
      return error::ok;
    });
    if (e != error::ok) {
      complete_request(req, e);
      return true;
    }
    return started;
  }

  bool start_request(shard& s, request& req) {
    if (req.type() == request_type::upload_start) {
      schedule_upload(s, req.table());  // its own task, beside the partition's writes
      complete_request(req, error::ok);
      return true;
    }
    if (req.read_only()) {
      return s.sched.spawn([this, &s, &req] {
        handle(s, req);
        enforce_meta_budget(s);
      });
    }
    auto it = s.lanes.find(req.table());
    if (it != s.lanes.end()) {
      it->second.queue.push_back(&req);  // its writer takes it in order
      return true;
    }
    it = s.lanes.emplace(req.table(), write_lane{}).first;
    bool started = false;
    try {
      it->second.queue.push_back(&req);
      const table_ident t = req.table();
      started = s.sched.spawn([this, &s, t] { run_writer(s, t); });
    } catch (...) {
      s.lanes.erase(it);  // no writer task: the lane would never drain
      throw;
    }
    if (!started) {
      s.lanes.erase(it);
    }
    return started;
  }

  // The writer task of partition t: runs its lane's requests in order, consecutive batch
  // writes together, until the lane is empty.
  void run_writer(shard& s, const table_ident& t) {
    std::vector<request*> group;
    for (;;) {
      write_lane& lane = s.lanes.find(t)->second;  // references survive rehashing
      if (lane.queue.empty()) {
        // Background work of the partition (append mode's compaction) runs while no write
        // waits; a write queued meanwhile stops it after its current round.
        if (const auto it = s.partitions.find(t);
            it != s.partitions.end() && it->second->compaction_pending) {
          const pin_guard pin(it->second.get());
          compact(s, *it->second);
          schedule_upload(s, t);
          continue;
        }
        s.lanes.erase(t);
        return;
      }
      group.clear();
      if (out_of_mem_guard([&] {
            group.reserve(group_most());  // take_group's pushes do not allocate
            return error::ok;
          }) != error::ok) {
        request* r = lane.queue.front();
        lane.queue.pop_front();
        // No room to run it; the next one may have.
        complete_request(*r, error::out_of_mem);
        continue;
      }
      take_group(lane.queue, group);
      run_group(s, group);
      // Let the shard loop move newly queued requests (often resubmitted by the callbacks of
      // the group just completed) into the lane first, so the next group includes them.
      s.sched.yield();
    }
  }

  // ---- cloud prewarm ---------------------------------------------------------------------------
  //
  // The store's lister thread hands each shard its list of files (shard.prewarm); the shard
  // brings them into the cache with opts_.prewarm_task_count tasks that step aside (low
  // priority) before every file, so requests always go first; an inline shard takes one file
  // whenever its queue is empty. The list ends when it is done, when the cache is full
  // (out_of_space: prewarm never evicts), at another error, or when the store stops.

  void start_prewarm_tasks(shard& s) {
    if constexpr (object_tier_io<io_type>) {
      while (s.prewarm_tasks < opts_.prewarm_task_count) {
        {
          std::lock_guard ql(s.mu);
          if (s.prewarm.empty()) {
            return;
          }
        }
        bool started = false;
        (void)out_of_mem_guard([&] {
          started = s.sched.spawn([this, &s] { run_prewarm(s); });
          return error::ok;
        });
        if (!started) {
          return;  // no task slot now: next round
        }
        ++s.prewarm_tasks;
      }
    } else {
      (void)s;
    }
  }

  void run_prewarm(shard& s) {
    bool more = true;
    while (more) {
      s.sched.yield_low_priority();  // requests first
      more = prewarm_step(s);
    }
    if (--s.prewarm_tasks == 0) {
      prewarm_finish(s);
    }
  }

  // Brings the shard's next prewarm file into the cache; false when its list is over.
  bool prewarm_step(shard& s) {
    if constexpr (object_tier_io<io_type>) {
      std::pair<table_ident, std::string> next;
      bool over = false;
      {
        std::lock_guard ql(s.mu);
        if (s.stopping && !s.prewarm.empty()) {
          s.prewarm.clear();
          s.prewarm_reason = error::not_running;
        }
        over = s.prewarm.empty();
        if (!over) {
          next = std::move(s.prewarm.front());
          s.prewarm.pop_front();
        }
      }
      if (over) {
        if constexpr (!fibers) {
          prewarm_finish(s);  // (no task ends an inline shard's list)
        }
        return false;
      }
      const error e = io_->prewarm(next.first, next.second);
      this->prewarm_counted(e);
      if (e != error::ok && e != error::not_found) {
        std::lock_guard ql(s.mu);
        s.prewarm.clear();
        s.prewarm_reason = e;
      }
      if constexpr (!fibers) {
        prewarm_finish(s);  // (an inline shard's list ends on its last step)
      }
      return true;
    } else {
      (void)s;
      return false;
    }
  }

  // Reports the shard's list finished once it is empty and no step of it runs.
  void prewarm_finish(shard& s) {
    bool finished = false;
    {
      std::lock_guard ql(s.mu);
      if (s.prewarm_active && s.prewarm.empty() && s.prewarm_tasks == 0) {
        s.prewarm_active = false;
        finished = true;
      }
    }
    if (finished) {
      this->prewarm_shard_done(std::exchange(s.prewarm_reason, error::ok));
    }
  }

  // ---- run-to-completion shards -------------------------------------------------------------

  void run_inline_shard(shard& s) {
    std::vector<request*>& group = s.group;
    (void)out_of_mem_guard([&] {
      group.reserve(group_most());  // else take_group's pushes allocate
      return error::ok;
    });
    for (;;) {
      group.clear();
      {
        std::unique_lock ql(s.mu);
        s.cv.wait(ql, [&] { return s.stopping || !s.queue.empty() || !s.prewarm.empty(); });
        if (s.queue.empty() && !s.prewarm.empty()) {
          // Idle: one file of the prewarm, then requests again.
          ql.unlock();
          prewarm_step(s);
          continue;
        }
        if (s.queue.empty()) {
          break;  // stopping and drained
        }
        take_group(s.queue, group);
      }
      s.not_full.notify_all();
      s.sched.run([&] { run_group(s, group); });
    }
  }
};

}  // namespace eloqstore::detail
