// Actor shell of the cached gossip search (gossip::machine, docs/gossip-search.md §8): decodes
// envelopes, steps the machine, carries out its sends through the node's transport, and runs
// searches on behalf of clients (cmesh search). Runs unchanged in real mode and in the simulator.
//
// Contacts: the live members of the node's imAlive membership (the swim actor tells this actor
// about joins and failures); without a membership actor, the transport's connected peers. The
// machine gets them in a per-node pseudo-random order (seeded), so with more than contacts_max
// members every agent keeps a different sample.
//
// Timers: one timer armed at the earliest running search's deadline.
//
// Clients: a search_request envelope (from any authenticated peer, e.g. cmesh search) starts a
// search with this node as origin; the search_response goes back with the request's correlation.
// In-process API: (status_atom) -> std::string.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "actors/gossip/gossip_machine.hpp"

namespace caf {
class actor;
class actor_system;
}  // namespace caf

namespace cmesh {
class event_sink;
}

namespace cmesh::gossip {

// Told to the simulator's checkers (never in real mode).
class search_observer {
public:
  virtual ~search_observer() = default;
  virtual void on_done(const node_id& self, const search_done& done) = 0;
};

struct actor_context {
  node_id self;
  std::string listen_address;
  config search;
  search_tags profile;             // validated by the caller
  uint64_t rng_seed = 0;
  event_sink* events = nullptr;    // searches started and finished are logged
  search_observer* observer = nullptr;
  // Benchmarks only (cmesh bench search-memory): called once with the fresh machine, before the
  // actor handles anything, to fill its caches through the machine's public API. Must be
  // deterministic (it runs inside the simulation).
  std::function<void(machine&)> prefill;
};

// `membership` may be an invalid handle: contacts then follow the transport's peers.
caf::actor spawn_gossip_actor(caf::actor_system& system, const caf::actor& transport,
                              const caf::actor& membership, actor_context context);

}  // namespace cmesh::gossip
