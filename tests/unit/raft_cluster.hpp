// A tiny in-memory harness for raft::machine unit tests: N machines, a FIFO message queue with
// directed cuts, a fake disk per node (so restarts restore what was "persisted"), and a clock
// advanced in 1 ms steps. Everything pure and deterministic.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "actors/raft/raft_machine.hpp"

namespace cmesh::raft::testing {

inline node_id test_id(int i) {
  node_id id;
  id.key[0] = static_cast<uint8_t>(i + 1);
  return id;
}

struct fake_disk {
  hard_state state;
  std::optional<snapshot_record> snapshot;
  std::vector<entry> log;

  void persist(const ready& r) {
    if (r.snapshot) {
      snapshot = r.snapshot;
      std::vector<entry> kept;
      for (auto& e : log)
        if (e.index > r.snapshot->index) kept.push_back(e);
      log = std::move(kept);
    }
    if (r.truncate_from)
      while (!log.empty() && log.back().index >= *r.truncate_from) log.pop_back();
    for (const auto& e : r.append) log.push_back(e);
    if (r.hard_state_changed) state = r.state;
  }
};

struct cluster {
  struct in_flight {
    int from;
    int to;
    wire_message message;
  };

  std::vector<node_id> ids;
  std::vector<std::unique_ptr<machine>> nodes;
  std::vector<fake_disk> disks;
  std::vector<std::vector<entry>> applied;  // per node, in apply order
  std::vector<std::vector<read_state>> reads;
  std::vector<std::vector<uint64_t>> reads_failed;
  std::vector<bool> down;
  std::deque<in_flight> network;
  std::set<std::pair<int, int>> cuts;  // (from, to) pairs whose messages are dropped
  std::vector<config> configs;
  membership initial;
  int64_t now = 0;

  explicit cluster(int n, int voters = -1, config base = {}) {
    if (voters < 0) voters = n;
    for (int i = 0; i < n; ++i) ids.push_back(test_id(i));
    for (int i = 0; i < voters; ++i) initial.voters.emplace_back(ids[i].key.begin(), ids[i].key.end());
    disks.resize(n);
    applied.resize(n);
    reads.resize(n);
    reads_failed.resize(n);
    down.assign(n, false);
    for (int i = 0; i < n; ++i) {
      config c = base;
      c.self = ids[i];
      configs.push_back(c);
      nodes.push_back(nullptr);
      boot(i);
    }
  }

  void boot(int i) {
    nodes[i] = std::make_unique<machine>(configs[i], initial, 1000 + i * 7919 + now);
    ready r;
    restored_state s{disks[i].state, disks[i].snapshot, disks[i].log};
    if (disks[i].snapshot) {
      applied[i].clear();  // the state machine restarts from the snapshot
    } else {
      applied[i].clear();
    }
    nodes[i]->restore(now, std::move(s), r);
    handle(i, r);
    down[i] = false;
  }

  void crash(int i) {
    down[i] = true;
    nodes[i].reset();
  }

  int index_of(const node_id& id) const {
    for (size_t i = 0; i < ids.size(); ++i)
      if (ids[i] == id) return static_cast<int>(i);
    return -1;
  }

  void handle(int i, ready& r) {
    disks[i].persist(r);
    for (auto& m : r.messages) network.push_back({i, index_of(m.to), std::move(m.message)});
    for (auto& e : r.committed) applied[i].push_back(e);
    for (auto& rs : r.reads) reads[i].push_back(rs);
    for (auto id : r.reads_failed) reads_failed[i].push_back(id);
    r.clear();
  }

  void isolate(int i) {
    for (int j = 0; j < static_cast<int>(ids.size()); ++j) {
      if (j == i) continue;
      cuts.insert({i, j});
      cuts.insert({j, i});
    }
  }
  void heal() { cuts.clear(); }

  // Delivers queued messages (and what they cause) until the network is quiet or `limit`.
  void deliver(size_t limit = 100000) {
    while (!network.empty() && limit-- > 0) {
      auto m = std::move(network.front());
      network.pop_front();
      if (m.to < 0 || down[m.to] || down[m.from] || cuts.count({m.from, m.to})) continue;
      ready r;
      nodes[m.to]->step(now, ids[m.from], std::move(m.message), r);
      handle(m.to, r);
    }
  }

  // Advances time in 1 ms steps, ticking nodes whose deadline passed and delivering messages.
  void run_for(int64_t us) {
    int64_t end = now + us;
    while (now < end) {
      now += 1000;
      for (size_t i = 0; i < nodes.size(); ++i) {
        if (down[i]) continue;
        if (nodes[i]->next_deadline_us() <= now) {
          ready r;
          nodes[i]->tick(now, r);
          handle(static_cast<int>(i), r);
        }
      }
      deliver();
    }
  }

  int leader() const {
    int found = -1;
    term_t best = 0;
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (down[i] || nodes[i]->current_role() != role::leader) continue;
      if (found < 0 || nodes[i]->term() > best) {
        found = static_cast<int>(i);
        best = nodes[i]->term();
      }
    }
    return found;
  }

  int elect(int64_t within_us = 5'000'000) {
    for (int64_t t = 0; t < within_us; t += 10'000) {
      int l = leader();
      if (l >= 0) return l;
      run_for(10'000);
    }
    return leader();
  }

  result<index_t> propose(int i, const std::string& data) {
    ready r;
    auto res = nodes[i]->propose(now, bytes(data.begin(), data.end()), r);
    handle(i, r);
    deliver();
    return res;
  }

  // Normal entries applied at node i, as strings.
  std::vector<std::string> commands(int i) const {
    std::vector<std::string> out;
    for (const auto& e : applied[i])
      if (e.kind == static_cast<uint8_t>(entry_kind::normal))
        out.emplace_back(e.data.begin(), e.data.end());
    return out;
  }
};

}  // namespace cmesh::raft::testing
