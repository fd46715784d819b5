// Simulated key/value clients (sim-internal, pulls in CAF): each issues one operation at a time
// against a random live node's kv replica, follows 503 leader hints, retries ambiguous attempts
// with the same (client, sequence) so a write applies once, and records every operation with its
// invocation and completion times for the linearizability checker.
#pragma once

#include <cstdint>
#include <vector>

#include <caf/all.hpp>

#include "sim/model/linearizability.hpp"
#include "sim/world.hpp"

namespace cmesh::sim {

struct kv_client_config {
  uint32_t id = 0;
  uint64_t seed = 0;
  uint32_t keys = 3;
  int64_t think_us = 20'000;        // pause between operations
  int64_t attempt_timeout_us = 500'000;
  int64_t give_up_us = 3'000'000;   // an operation unfinished after this is recorded as unknown
  node_id identity;                 // the caller the replicas see
};

struct kv_history {
  std::vector<kv_operation> operations;
  uint64_t attempts = 0;
  uint64_t redirects = 0;   // 503 with a leader hint followed
  uint64_t ambiguous = 0;   // 408 or no answer
};

caf::actor spawn_kv_client(caf::actor_system& system, world* shared, kv_history* history,
                           kv_client_config config);

}  // namespace cmesh::sim
