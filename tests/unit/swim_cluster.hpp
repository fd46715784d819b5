// A pure in-process harness for swim::machine: N machines, one virtual clock, an event queue
// ordered by (time, insertion order), and a simple simulated network with per-message latency
// (uniform in [latency_min_us, latency_max_us]), loss, crashes, freezes (a paused process: input
// waits in its socket and is read on resume) and partitions. Every random choice comes from one
// seeded rng, so a seed replays exactly. No CAF, no threads. Used by test_swim_machine.cpp and
// usable by a benchmark driver.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "actors/swim/swim_machine.hpp"

namespace cmesh::swim::testing {

inline node_id cluster_node_id(uint64_t seed, size_t index) {
  node_id id;
  uint64_t state = mix_seed(seed, index + 1);
  for (size_t word = 0; word < 4; ++word) {
    uint64_t v = splitmix64(state);
    std::memcpy(id.key.data() + 8 * word, &v, 8);
  }
  return id;
}

inline std::string cluster_address(size_t index) { return "sim:" + std::to_string(index); }

struct network_config {
  int64_t latency_min_us = 1'000;
  int64_t latency_max_us = 5'000;
  double loss = 0.0;  // probability that one message is dropped
};

struct observed_event {
  int64_t time_us;
  size_t node;
  event what;
};

class cluster {
public:
  cluster(size_t n, config base, uint64_t seed, network_config net = {})
      : net_(net), rng_(mix_seed(seed, 0x5317)), seed_(seed) {
    nodes_.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      node_id id = cluster_node_id(seed, i);
      ids_.push_back(id);
      by_id_[id] = i;
      by_address_[cluster_address(i)] = i;
      nodes_.push_back(std::make_unique<machine>(base, id, cluster_address(i),
                                                 rng(mix_seed(seed, 1000 + i))));
    }
    state_.resize(n);
  }

  // ---- bootstrap ----
  // Every machine knows every other (what a converged join would give), without traffic.
  void know_everyone() {
    std::vector<member_record> all;
    all.reserve(size());
    for (size_t i = 0; i < size(); ++i)
      all.push_back({bytes(ids_[i].key.begin(), ids_[i].key.end()), cluster_address(i), 0, 0});
    for (size_t i = 0; i < size(); ++i) {
      nodes_[i]->restore(all, now_);
      schedule(i);
    }
  }
  // Each machine knows `view` others drawn at random (a partial view: memory N * view).
  void know_random(size_t view) {
    for (size_t i = 0; i < size(); ++i) {
      std::vector<member_record> some;
      std::vector<bool> taken(size(), false);
      taken[i] = true;
      while (some.size() < std::min(view, size() - 1)) {
        size_t j = rng_.below(size());
        if (taken[j]) continue;
        taken[j] = true;
        some.push_back({bytes(ids_[j].key.begin(), ids_[j].key.end()), cluster_address(j), 0, 0});
      }
      nodes_[i]->restore(some, now_);
      schedule(i);
    }
  }
  // Node i joins through the addresses of `seeds` (node indexes).
  void join(size_t i, const std::vector<size_t>& seeds) {
    std::vector<swim::seed> list;
    for (size_t s : seeds) list.push_back({cluster_address(s), node_id{}});
    effects out;
    nodes_[i]->join(list, now_, out);
    carry_out(i, out);
    schedule(i);
  }

  // ---- running ----
  void run_until(int64_t until_us) {
    while (!queue_.empty() && queue_.front().time_us <= until_us) {
      std::pop_heap(queue_.begin(), queue_.end(), later);
      item next = std::move(queue_.back());
      queue_.pop_back();
      now_ = next.time_us;
      step(std::move(next));
    }
    now_ = std::max(now_, until_us);
  }
  void run_for(int64_t duration_us) { run_until(now_ + duration_us); }

  // Calls f(machine&, effects&) on node i now and carries out what it produced.
  template <class F>
  void with_node(size_t i, F f) {
    effects out;
    f(*nodes_[i], out);
    carry_out(i, out);
    schedule(i);
  }

  // ---- faults ----
  void crash(size_t i) { state_[i].crashed = true; }
  void freeze(size_t i, int64_t duration_us) {
    state_[i].frozen_until = std::max(state_[i].frozen_until, now_ + duration_us);
  }
  // group[i] = side of node i; messages between different sides are dropped.
  void partition(std::vector<int> group) {
    assert(group.size() == size());
    for (size_t i = 0; i < size(); ++i) state_[i].group = group[i];
  }
  void heal() {
    for (auto& s : state_) s.group = 0;
  }
  void set_loss(double loss) { net_.loss = loss; }
  // Drops every message from a to b (one direction); uncut() restores it.
  void cut(size_t a, size_t b) { cuts_.insert({a, b}); }
  void uncut(size_t a, size_t b) { cuts_.erase({a, b}); }

  // ---- queries ----
  size_t size() const { return nodes_.size(); }
  machine& node(size_t i) { return *nodes_[i]; }
  const machine& node(size_t i) const { return *nodes_[i]; }
  const node_id& id(size_t i) const { return ids_[i]; }
  size_t index_of(const node_id& id) const { return by_id_.at(id); }
  bool crashed(size_t i) const { return state_[i].crashed; }
  int64_t now() const { return now_; }
  uint64_t seed() const { return seed_; }

  // Fraction of live (not crashed) nodes that hold the rumor.
  double coverage(uint64_t rumor_id) const {
    size_t live = 0, have = 0;
    for (size_t i = 0; i < size(); ++i) {
      if (state_[i].crashed) continue;
      ++live;
      if (nodes_[i]->has_rumor(rumor_id)) ++have;
    }
    return live == 0 ? 0.0 : static_cast<double>(have) / static_cast<double>(live);
  }
  size_t live_nodes() const {
    size_t live = 0;
    for (const auto& s : state_) live += s.crashed ? 0 : 1;
    return live;
  }
  // Pairs (observer, subject) of live observers whose view is wrong: a live subject not alive
  // (or, with allow_suspect, not alive-or-suspect), or a crashed subject still alive/suspect.
  size_t wrong_views(bool allow_suspect = false) const {
    size_t wrong = 0;
    for (size_t i = 0; i < size(); ++i) {
      if (state_[i].crashed) continue;
      const auto& table = nodes_[i]->members();
      for (size_t j = 0; j < size(); ++j) {
        if (j == i) continue;
        auto it = table.find(ids_[j]);
        bool listed_live = it != table.end() &&
                           (it->second.state == member_state::alive ||
                            (allow_suspect && it->second.state == member_state::suspect));
        bool listed_any_live = it != table.end() && (it->second.state == member_state::alive ||
                                                     it->second.state == member_state::suspect);
        if (state_[j].crashed ? listed_any_live : !listed_live) ++wrong;
      }
    }
    return wrong;
  }
  // Sum of every machine's counters (crashed ones included: what they sent before crashing).
  stats total_stats() const {
    stats total;
    for (const auto& n : nodes_) {
      const auto& s = n->statistics();
      for (size_t k = 0; k < message_kinds; ++k) {
        total.sent[k] += s.sent[k];
        total.received[k] += s.received[k];
      }
      total.bytes_sent += s.bytes_sent;
      total.update_copies_sent += s.update_copies_sent;
      total.rumor_copies_sent += s.rumor_copies_sent;
      total.rumor_duplicates += s.rumor_duplicates;
      total.probes += s.probes;
      total.probes_failed += s.probes_failed;
      total.refutations += s.refutations;
      total.failures_declared += s.failures_declared;
      total.members_refused += s.members_refused;
      total.updates_dropped += s.updates_dropped;
      total.items_rejected += s.items_rejected;
      total.syncs_sent += s.syncs_sent;
    }
    return total;
  }
  static uint64_t messages(const stats& s) {
    uint64_t total = 0;
    for (auto v : s.sent) total += v;
    return total;
  }

  // Observation: called for every event a machine emits (also recorded when record_events).
  std::function<void(size_t node, const event& e, int64_t now_us)> on_event;
  bool record_events = false;
  std::vector<observed_event> events;
  // Network counters.
  uint64_t delivered = 0;
  uint64_t dropped_loss = 0;
  uint64_t dropped_partition = 0;
  uint64_t dropped_crashed = 0;
  uint64_t dropped_unknown = 0;
  uint64_t stuck_timers = 0;  // next_deadline_us() not after a tick: a machine bug

private:
  struct item {
    int64_t time_us = 0;
    uint64_t order = 0;
    uint32_t node = 0;
    uint32_t from = 0;
    bool tick = false;
    wire_message message;
  };
  struct node_state {
    bool crashed = false;
    int64_t frozen_until = 0;
    int group = 0;
    int64_t scheduled = std::numeric_limits<int64_t>::max();
  };
  static bool later(const item& a, const item& b) {
    return a.time_us != b.time_us ? a.time_us > b.time_us : a.order > b.order;
  }
  void push(item i) {
    i.order = next_order_++;
    queue_.push_back(std::move(i));
    std::push_heap(queue_.begin(), queue_.end(), later);
  }
  void schedule(size_t i) {
    int64_t t = std::max(nodes_[i]->next_deadline_us(), now_);
    if (t >= state_[i].scheduled) return;
    state_[i].scheduled = t;
    item tick;
    tick.time_us = t;
    tick.node = static_cast<uint32_t>(i);
    tick.tick = true;
    push(std::move(tick));
  }
  void step(item next) {
    size_t i = next.node;
    auto& st = state_[i];
    if (st.crashed) {
      if (!next.tick) ++dropped_crashed;
      return;
    }
    if (next.tick && next.time_us != st.scheduled) return;  // superseded
    if (now_ < st.frozen_until) {  // paused: resume later, input waits in the socket
      if (next.tick) {
        st.scheduled = st.frozen_until;
      }
      next.time_us = st.frozen_until;
      push(std::move(next));
      return;
    }
    effects out;
    if (next.tick) {
      st.scheduled = std::numeric_limits<int64_t>::max();
      nodes_[i]->tick(now_, out);
      if (nodes_[i]->next_deadline_us() <= now_) ++stuck_timers;
    } else {
      ++delivered;
      nodes_[i]->receive(ids_[next.from], next.message, now_, out);
    }
    carry_out(i, out);
    schedule(i);
  }
  void carry_out(size_t from, effects& out) {
    for (auto& s : out.sends) {
      size_t to;
      if (s.to.is_zero()) {
        auto it = by_address_.find(s.address);
        if (it == by_address_.end()) {
          ++dropped_unknown;
          continue;
        }
        to = it->second;
      } else {
        auto it = by_id_.find(s.to);
        if (it == by_id_.end()) {
          ++dropped_unknown;
          continue;
        }
        to = it->second;
      }
      if (state_[from].group != state_[to].group || cuts_.count({from, to}) != 0) {
        ++dropped_partition;
        continue;
      }
      if (rng_.chance(net_.loss)) {
        ++dropped_loss;
        continue;
      }
      item delivery;
      int64_t spread = net_.latency_max_us - net_.latency_min_us;
      delivery.time_us = now_ + net_.latency_min_us +
                         (spread > 0 ? static_cast<int64_t>(rng_.below(spread + 1)) : 0);
      delivery.node = static_cast<uint32_t>(to);
      delivery.from = static_cast<uint32_t>(from);
      delivery.message = std::move(s.message);
      push(std::move(delivery));
    }
    for (auto& e : out.events) {
      if (on_event) on_event(from, e, now_);
      if (record_events) events.push_back({now_, from, std::move(e)});
    }
  }

  network_config net_;
  rng rng_;
  uint64_t seed_;
  std::vector<std::unique_ptr<machine>> nodes_;
  std::vector<node_id> ids_;
  std::map<node_id, size_t> by_id_;
  std::map<std::string, size_t> by_address_;
  std::vector<node_state> state_;
  std::set<std::pair<size_t, size_t>> cuts_;
  std::vector<item> queue_;
  uint64_t next_order_ = 0;
  int64_t now_ = 0;
};

}  // namespace cmesh::swim::testing
