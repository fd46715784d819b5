// Node assembly: the one function that spawns a node's service actors. Real mode
// (runtime/cli/cmd_node) and the simulator (sim/simulation) both call it, so the same actor
// graph runs in both; only the transport actor, store, clock and seeds handed in differ.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <map>
#include <optional>

#include "actors/aggregator/aggregator_machine.hpp"
#include "actors/events/events_machine.hpp"
#include "actors/gossip/gossip_machine.hpp"
#include "actors/iam/iam_machine.hpp"
#include "actors/peer/peer_machine.hpp"
#include "actors/reputation/reputation_machine.hpp"
#include "actors/router/router_machine.hpp"
#include "actors/rmb/rmb_machine.hpp"
#include "actors/swim/swim_machine.hpp"
#include "actors/raft/raft_machine.hpp"

namespace caf {
class actor;
class actor_system;
}  // namespace caf

namespace cmesh {

class store;
class event_sink;
namespace raft {
class observer;
}
namespace rmb {
class agent_observer;
}
namespace gossip {
class search_observer;
}
namespace swim {
class observer;
}
namespace aggregator {
class observer;
}
namespace events {
class observer;
}
namespace reputation {
class observer;
}

// imAlive membership (actors/swim): joins through the node's seeds.
struct swim_setup {
  swim::config membership;
  std::vector<swim::member_record> known;  // contacts to start from (benchmarks); may be empty
  swim::observer* watcher = nullptr;       // simulation and benchmarks only
  int64_t broadcast_at_us = -1;            // benchmark: broadcast rumor 1 then (see swim_actor)
};

// The node's RMB agent (actors/rmb): hosts twins and carries signed envelopes between them.
struct rmb_setup {
  std::vector<identity> twins;        // the node's own identity should be among them
  rmb::config bus;
  int64_t epoch_offset_us = 0;        // actor clock + this = mesh time (real mode: Unix time)
  rmb::agent_observer* observer = nullptr;  // simulation checkers only
};

// Cached gossip search (actors/gossip): contacts from the membership when `swim` is set, else
// the transport's peers.
struct gossip_setup {
  gossip::config search;
  gossip::search_tags profile;                // validated by the caller
  gossip::search_observer* observer = nullptr;  // simulation checkers only
  std::function<void(gossip::machine&)> prefill;  // benchmarks only (see gossip::actor_context)
};

// Aggregator directory (actors/aggregator): serve a directory, register the node's identity at
// one, or both.
struct aggregator_setup {
  bool serve = false;
  aggregator::config directory;
  bool register_self = false;            // register `identity` with `tags` at the address below
  identity agent;
  std::string aggregator_address;
  node_id aggregator_id;                 // zero: learned when dialing the address
  std::vector<std::string> tags;         // directory tags ("category:grocery", ...)
  aggregator::client_config client;
  std::vector<aggregator::scheduled_lookup> lookups;  // simulation scenarios only
  int64_t epoch_offset_us = 0;           // actor clock + this = mesh time
  aggregator::observer* watcher = nullptr;  // simulation checkers only
};

// Events bus (actors/events): publish/subscribe between the node's transport peers and its clients.
struct events_setup {
  events::config bus;                    // validated by the caller (events::validate)
  events::observer* observer = nullptr;  // simulation checkers only
};

// Reputation (actors/reputation): endorsements and gossiped reports, signed with `signer` (the
// node's identity); contacts from the membership when `swim` is set, else the transport's peers.
struct reputation_setup {
  identity signer;
  reputation::config reputation;                      // validated by the caller
  std::vector<reputation::scheduled_claim> claims;    // simulation scenarios only
  int64_t epoch_offset_us = 0;                        // actor clock + this = mesh time
  reputation::observer* observer = nullptr;           // simulation checkers only
};

// Router and dispatcher (actors/router): CMTP requests from clients, dispatched to this node's kv
// replica and events bus. Tokens must be issued by this node's IAM for `audience` (empty:
// router::default_audience).
struct router_setup {
  router::config routing;          // validated by the caller
  std::optional<identity> signer;  // the node's identity (self-authentication); REQUIRED to serve
  std::vector<node_id> trusted_issuers;  // other nodes whose tokens it accepts (0xP); default: the Raft group
  std::string audience;
  int64_t epoch_offset_us = 0;     // actor clock + this = mesh time
  // Real mode: the router gets a thread of its own (a CAF detached actor) instead of sharing the
  // scheduler's workers. Every request of the node passes through it, so it is the node's serial
  // hot spot; give the scheduler one worker fewer (tune_scheduler's dedicated_threads). Never in
  // simulation: the deterministic scheduler runs every actor.
  bool own_thread = false;
};

// IAM (actors/iam): the passwordless handshake and session tokens signed with `signer` (the node's
// identity). Real nodes always run it.
struct iam_setup {
  identity signer;
  iam::config iam;                      // validated by the caller (iam::validate)
  std::vector<iam::scope_rule> scopes;  // the scope policy; empty = iam::default_scope_rules()
  // Nonces and token ids. Real mode: jose::secure_random_source(). Empty: a seeded source from
  // the node's rng stream 9 (simulation, tests).
  jose::random_source random;
  int64_t epoch_offset_us = 0;          // actor clock + this = mesh time
};

// A Raft group this node is a member of, serving the replicated key/value store (actors/kv).
struct raft_setup {
  uint32_t group = 0;
  std::vector<node_id> voters;
  std::map<node_id, std::string> addresses;  // where the members listen
  raft::config config;
  uint64_t snapshot_every = 1000;
  raft::observer* observer = nullptr;        // simulation checkers only
};

struct node_setup {
  node_id self;
  std::string listen_address;        // what this node advertises to others
  std::vector<peer::seed> seeds;
  peer::config peer_config;
  uint64_t rng_seed = 0;             // every service derives its own stream from this
  store* storage = nullptr;          // owned by the runner, outlives the services
  // The Raft replica's own store (real mode: a separate LMDB environment, because an environment
  // allows one write transaction at a time and services run on several threads). Null: share
  // `storage` (the simulator, which is single-threaded).
  store* raft_storage = nullptr;
  event_sink* events = nullptr;      // owned by the runner, outlives the services
  // Benchmark workloads (off unless set): answer probes, or keep probes circulating.
  bool bench_echo = false;
  std::shared_ptr<const std::vector<node_id>> bench_flood_nodes;
  uint32_t bench_flood_in_flight = 4;
  uint32_t bench_flood_payload_bytes = 64;
  std::optional<raft_setup> raft;
  std::optional<rmb_setup> rmb;
  std::optional<swim_setup> swim;
  std::optional<gossip_setup> gossip;
  std::optional<aggregator_setup> aggregator;
  std::optional<events_setup> events_bus;
  std::optional<reputation_setup> reputation;
  std::optional<router_setup> router;
  std::optional<iam_setup> iam;
  // The RMB agent's own store (real mode: a separate LMDB environment, as for Raft). Null: share
  // `storage`.
  store* rmb_storage = nullptr;
  // The IAM's own store for revocations (real mode: a separate LMDB environment). Null: share
  // `storage` (the simulator).
  store* iam_storage = nullptr;
  // With an IAM: the kv and events client protocols serve only keys that hold a live session of
  // this node with the needed scope (docs/iam.md §13). cmesh node: on. Simulator: off.
  bool client_sessions_required = false;
};

// Spawns every service of one node; each registers itself with `transport`.
// Returns the spawned actors (the runner sends them exit messages on shutdown or crash).
std::vector<caf::actor> spawn_node_services(caf::actor_system& system, const caf::actor& transport,
                                            const node_setup& setup);

}  // namespace cmesh
