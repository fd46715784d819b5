#include "runtime/node/node_services.hpp"

#include <caf/all.hpp>

#include "actors/peer/peer_actor.hpp"
#include "runtime/core/rng.hpp"

namespace cmesh {

std::vector<caf::actor> spawn_node_services(caf::actor_system& system, const caf::actor& transport,
                                            const node_setup& setup) {
  std::vector<caf::actor> services;
  peer::actor_context peer_context;
  peer_context.self = setup.self;
  peer_context.listen_address = setup.listen_address;
  peer_context.seeds = setup.seeds;
  peer_context.peer_config = setup.peer_config;
  peer_context.rng_seed = mix_seed(setup.rng_seed, /*stream: peer service*/ 1);
  peer_context.storage = setup.storage;
  peer_context.events = setup.events;
  services.push_back(peer::spawn_peer_actor(system, transport, std::move(peer_context)));
  return services;
}

}  // namespace cmesh
