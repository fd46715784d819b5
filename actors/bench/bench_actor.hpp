// Benchmark services. Real services over the same seam, codec and transport as every other
// service, with the least protocol logic possible, so a benchmark measures the plumbing.
//   echo:  sends every probe back to its sender (transport benchmark server).
//   flood: keeps `in_flight` probes per node circulating; each delivery is forwarded to a node
//          drawn with the seeded generator (simulator speed benchmark).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "messages/node_id.hpp"

namespace caf {
class actor;
class actor_system;
}  // namespace caf

namespace cmesh::bench {

caf::actor spawn_echo_actor(caf::actor_system& system, const caf::actor& transport, node_id self);

struct flood_config {
  node_id self;
  std::shared_ptr<const std::vector<node_id>> nodes;  // every node of the run, shared
  uint32_t in_flight = 4;
  uint32_t payload_bytes = 64;
  uint64_t rng_seed = 0;
};
caf::actor spawn_flood_actor(caf::actor_system& system, const caf::actor& transport, flood_config config);

}  // namespace cmesh::bench
