// The simulated CMTP client: at set virtual times it sends CMTP requests to a node's router
// through its in-process API (actors/router/router_actor.hpp) and records every response.
//
// Session tokens: the client holds identities derived from the simulation seed and carries
// session tokens signed with the node's simulation key (the key the node's IAM signs with), made
// when the request leaves. The IAM handshake itself is exercised by the IAM tests; here the real
// router verifies real tokens. Used when simulation_options::agents.cmtp_commands is not empty.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace caf {
class actor;
class actor_system;
}  // namespace caf

namespace cmesh::sim {

struct world;

struct cmtp_command {
  int64_t at_us = 0;
  uint32_t node = 0;         // the router asked
  uint32_t client = 0;       // which client identity: derive_for_simulation(seed, 1'000'000 + client)
  std::string tx;
  std::string fqmn;
  std::string body;
  std::string scope = "state.read state.write events.publish names.resolve names.register proxy";
  // Sent in one in-process batch call (router_batch_atom) with every other batched command of the
  // same at_us and node, in command order.
  bool batched = false;
};

struct cmtp_outcome {
  size_t command_index = 0;
  int64_t at_us = 0;
  uint16_t status = 0;       // 0: no answer (node down)
  std::string reason;
  std::string body;
  std::string audit;         // 32 bytes when the request reached the audit trail
};

// The identity index of client `client` (for checks in tests).
inline uint64_t cmtp_client_identity_index(uint32_t client) { return 1'000'000 + uint64_t{client}; }

// REQUIRES: every command's node exists.
caf::actor spawn_cmtp_client(caf::actor_system& system, world* shared, uint64_t seed,
                             std::vector<cmtp_command> commands, std::vector<cmtp_outcome>* outcomes);

}  // namespace cmesh::sim
