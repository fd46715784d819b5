// A deterministic multi-node simulation: every node's service actors in one CAF actor_system on
// the test_coordinator with one virtual clock, talking through the simulated network actor.
//
// Determinism: the run is a pure function of `simulation_options` (seed included). The driver
// picks the next runnable actor with a seeded generator, advances virtual time to the next timer,
// network delivery or scheduled fault when nothing is runnable, and folds every delivery, drop,
// node event, crash and restart into `trace_hash`. No wall clock is read here: the CLI measures
// wall time around run_until().
//
// Storage: each node has its own LMDB environment in `data_directory/node-N` with fsync off; a
// crash rolls back what the node had not synced (store::simulate_crash) and a restart reopens it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "actors/aggregator/aggregator_machine.hpp"
#include "actors/gossip/gossip_machine.hpp"
#include "actors/peer/peer_machine.hpp"
#include "actors/raft/raft_machine.hpp"
#include "actors/reputation/reputation_machine.hpp"
#include "actors/swim/swim_machine.hpp"
#include "messages/error.hpp"
#include "sim/cmtp_client.hpp"
#include "sim/events_client.hpp"
#include "sim/model/fault_profile.hpp"
#include "sim/model/network_model.hpp"

namespace cmesh::sim {

// A Raft group (group 0) on nodes 0..voters-1 serving the replicated key/value store, with
// simulated clients whose histories are checked for linearizability at the end of the run, and
// Raft's safety properties checked as the run goes (sim/model/raft_checker.hpp).
struct raft_options {
  uint32_t voters = 0;               // 0 = no Raft group
  raft::config config;               // timeouts and limits (self is set per node)
  uint64_t snapshot_every = 200;     // compact each replica after this many applied entries
  uint32_t clients = 0;              // simulated key/value clients
  uint32_t keys = 3;                 // keys the clients touch (few keys: much contention)
  int64_t client_think_us = 20'000;  // pause between a client's operations
  int64_t churn_us = 0;              // > 0: every so often remove a voter or add it back
};

}  // namespace cmesh::sim
namespace cmesh::swim {
class observer;
}
namespace cmesh::rmb {
class agent_observer;
}
namespace cmesh::aggregator {
class observer;
}
namespace cmesh::events {
class observer;
}
namespace cmesh::reputation {
class observer;
}
namespace cmesh::sim {

// Agents of the message bus layer on every node: imAlive membership (actors/swim).
// An RMB command a simulated client hands to node `from_node`'s agent at `at_us`, for the twin
// that is node `to_node`'s own identity.
struct rmb_command {
  int64_t at_us = 0;
  uint32_t from_node = 0;
  uint32_t to_node = 0;
  std::string command;
  std::string data;
};
// How it ended (as the sending agent reports it, or code 255 "no outcome" / "sender down").
struct rmb_outcome {
  size_t command_index = 0;
  uint8_t code = 0;
  std::string reason;
  std::string reply;
  int64_t at_us = 0;
};

// Aggregator directory (actors/aggregator): node 0 serves it; every other node registers its
// identity with the tags "category:grocery" and "name:n<index % 3>" and keeps them alive.
struct aggregator_options {
  bool enabled = false;
  uint32_t ttl_s = 10;
  std::vector<std::pair<uint32_t, aggregator::scheduled_lookup>> lookups;  // (node, lookup)
  aggregator::observer* watcher = nullptr;
};

// A claim node `node`'s reputation actor issues at `at_us` about node `subject` (indices).
struct reputation_claim {
  uint32_t node = 0;
  int64_t at_us = 0;
  reputation::scheduled_claim::kind what = reputation::scheduled_claim::kind::report;
  uint32_t subject = 0;
  uint8_t reason = 1;          // report, forged_report
  uint32_t impersonated = 0;   // forged_report: the node named as reporter
};

// Reputation (actors/reputation) on every node, contacts from the membership when swim is on.
struct reputation_options {
  bool enabled = false;
  std::vector<reputation_claim> claims;
  reputation::observer* watcher = nullptr;
};

struct agent_options {
  // RMB agents (actors/rmb) on every node, each hosting the node's own identity as a twin, with
  // their dedup records and twin states in the node's store.
  bool rmb = false;
  rmb::agent_observer* rmb_observer = nullptr;
  std::vector<rmb_command> rmb_commands;      // needs rmb
  std::vector<rmb_outcome>* rmb_outcomes = nullptr;
  bool swim = false;
  swim::config membership;
  uint32_t contacts = 0;              // > 0: each node starts knowing this many random others
                                      // instead of joining through the seeds
  int64_t broadcast_at_us = -1;       // >= 0: node 0 broadcasts rumor 1 then (gossip benchmark)
  swim::observer* watcher = nullptr;  // benchmark and tests
  aggregator_options aggregator;
  // Cached gossip search (actors/gossip) on every node; contacts are the node's imAlive members
  // when `swim` is on. Node i's profile: category "grocery", name "n<i % 100>".
  bool gossip = false;
  gossip::config search;
  // Benchmarks only: fills node `index`'s gossip machine through its public API before the actor
  // starts (cmesh bench search-memory). Must be deterministic.
  std::function<void(uint32_t index, gossip::machine&)> gossip_prefill;
  // The events bus (actors/events) on every node, and a simulated client driving it.
  bool events = false;
  events::observer* events_observer = nullptr;
  std::vector<events_command> events_commands;  // needs events
  std::vector<events_outcome>* events_outcomes = nullptr;
  reputation_options reputation;
  // The router (actors/router) on every node; a simulated client sends CMTP requests to it.
  bool router = false;
  std::vector<cmtp_command> cmtp_commands;  // needs router
  std::vector<cmtp_outcome>* cmtp_outcomes = nullptr;
  // IAM (actors/iam) on every node: the handshake and session tokens, nonces and token ids from
  // the node's seeded stream, mesh time = virtual time (epoch 0).
  bool iam = false;
};

struct simulation_options {
  uint32_t nodes = 5;
  uint64_t seed = 1;
  int64_t duration_us = 30'000'000;
  uint32_t seed_nodes = 1;          // nodes 0..seed_nodes-1 are the seed addresses everyone dials
  int64_t join_spread_us = 1'000'000;  // nodes start at seeded random times in [0, spread)
  fault_profile faults;
  peer::config peer_config;
  std::string data_directory;       // empty = a fresh folder under $TMPDIR (removed at the end)
  bool keep_data = false;
  bool verbose = false;             // print every node event (small runs only)
  bool use_storage = true;          // false: no LMDB (pure protocol runs, very large n)
  // Benchmark workload: every node also runs the flood service with this many probes in flight
  // (0 = off). See actors/bench.
  uint32_t flood_in_flight = 0;
  uint32_t flood_payload_bytes = 64;
  raft_options raft;
  agent_options agents;
};

// What the simulation knows about a node, from the events its actors report.
struct node_view {
  node_id id;
  std::string address;
  bool up = false;
  bool started = false;
  uint32_t incarnation = 0;
  uint32_t restarts = 0;
  std::set<node_id> peers;
  uint64_t pongs = 0;
  uint64_t malformed = 0;
  // Raft (from the kv replica's events): leader now? since when, in which term.
  bool raft_leader = false;
  uint64_t raft_term = 0;
  int64_t raft_leader_since_us = -1;
};

struct simulation_report {
  uint64_t seed = 0;
  uint64_t trace_hash = 0;
  uint64_t trace_events = 0;
  int64_t virtual_us = 0;
  uint64_t jobs_run = 0;           // actor activations (one message each)
  uint64_t timers_fired = 0;
  uint64_t crashes = 0;
  uint64_t restarts = 0;
  network_stats network;
  uint32_t nodes = 0;
  uint32_t nodes_up = 0;
  double peers_mean = 0;
  size_t peers_min = 0;
  uint64_t pongs = 0;
  uint64_t malformed = 0;
  // Raft runs only.
  uint64_t raft_leaders = 0;        // elections won
  uint64_t raft_max_term = 0;
  uint64_t raft_committed = 0;      // highest index applied anywhere
  uint64_t kv_ok = 0, kv_failed = 0, kv_unknown = 0;
  uint64_t kv_attempts = 0, kv_redirects = 0;
  uint64_t linearizability_states = 0;
  bool linearizability_timed_out = false;
  std::vector<std::string> violations;  // invariant failures, empty when all held
};

class simulation {
public:
  static result<std::unique_ptr<simulation>> create(simulation_options options);
  ~simulation();
  simulation(const simulation&) = delete;
  simulation& operator=(const simulation&) = delete;

  // Runs every event up to virtual time `until_us` (or the end of the run, if earlier).
  void run_until(int64_t until_us);
  void run_to_end() { run_until(options().duration_us); }
  bool finished() const;
  int64_t now_us() const;

  // Fault injection by hand (tests); scheduled crashes in the options use the same path.
  void crash(uint32_t node);
  void restart(uint32_t node);

  const node_view& view(uint32_t node) const;
  const simulation_options& options() const;
  simulation_report report() const;

  class impl;

private:
  explicit simulation(std::unique_ptr<impl> state);
  std::unique_ptr<impl> impl_;
};

// The command that replays a run: every option that shapes it, spelled as `cmesh sim` flags.
std::string replay_command(const simulation_options& options);

}  // namespace cmesh::sim
