// Actor shell of the aggregator directory (aggregator::machine and aggregator::client,
// docs/aggregator.md §7). One actor per node speaks service 8 and plays either role or both:
//
//   - serving (`serve`): answers register_agent, i_am_alive and lookup_agents from any
//     authenticated peer with exactly one reply carrying the request envelope's correlation, so
//     a one-shot client (cmesh lookup) gets its answer in one round trip; sweeps expired entries
//     every directory.tick_ms. A node that does not serve answers every request `not_served`.
//   - agent (`agent` set): registers the node's identity with its tags at the aggregator, keeps
//     the registration alive with signed imAlives, registers again when the aggregator forgot it
//     (restart: the directory is soft state). The aggregator is given by address, with or
//     without its identity; without, it is dialed and learned from the transport's peer_up.
//
// Time: actor clock + epoch_offset_us (mesh time; signed times cross nodes). One periodic timer
// (directory.tick_ms). Runs unchanged in real mode and in the simulator.
//
// In-process API: (status_atom) -> std::string.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "actors/aggregator/aggregator_machine.hpp"

namespace caf {
class actor;
class actor_system;
}  // namespace caf

namespace cmesh {
class event_sink;
}

namespace cmesh::aggregator {

// Told to the simulator's checkers (never in real mode).
class observer {
public:
  virtual ~observer() = default;
  // Directory events (serving node) and the agent's own registered/refused events.
  virtual void on_event(const node_id& self, const event& e, int64_t now_us) = 0;
  virtual void on_lookup(const node_id& self, const lookup_result& result, int64_t now_us) = 0;
};

struct actor_context {
  node_id self;
  std::string listen_address;
  bool serve = false;
  config directory;
  std::optional<identity> agent;   // set: register this identity at the aggregator below
  std::string aggregator_address;  // where the aggregator listens (agent only)
  node_id aggregator_id;           // zero: learned from the transport when dialing the address
  std::vector<std::string> tags;   // the agent's directory tags ("category:grocery", ...)
  client_config client;
  std::vector<scheduled_lookup> lookups;
  int64_t epoch_offset_us = 0;     // actor clock + this = mesh time (real mode: Unix time)
  uint64_t rng_seed = 0;
  event_sink* events = nullptr;
  observer* watcher = nullptr;
};

caf::actor spawn_aggregator_actor(caf::actor_system& system, const caf::actor& transport,
                                  actor_context context);

}  // namespace cmesh::aggregator
