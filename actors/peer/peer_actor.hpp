// Actor shell of the peer protocol: decodes envelopes, steps peer::machine, carries out its
// effects through the node's transport, persists the peer table in the node's store.
// Runs unchanged in real mode and in the simulator; only the context differs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "actors/peer/peer_machine.hpp"

namespace caf {
class actor;
class actor_system;
}  // namespace caf

namespace cmesh {
class store;
class event_sink;
}  // namespace cmesh

namespace cmesh::peer {

struct actor_context {
  node_id self;
  std::string listen_address;
  std::vector<seed> seeds;
  config peer_config;
  uint64_t rng_seed = 0;
  store* storage = nullptr;      // owned by the node runner; outlives the actor
  event_sink* events = nullptr;  // owned by the node runner; outlives the actor
};

// Spawns the peer service and registers it with `transport`.
caf::actor spawn_peer_actor(caf::actor_system& system, const caf::actor& transport,
                            actor_context context);

}  // namespace cmesh::peer
