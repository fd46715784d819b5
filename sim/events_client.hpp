// The simulated events client: at set virtual times it subscribes, publishes and sends requests
// through a node's events actor (its in-process API, actors/events/events_actor.hpp), and records
// every outcome and every message its subscriptions receive. Subscriptions can answer requests
// (respond). Used by the simulator when simulation_options::agents.events_commands is not empty.
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

struct events_command {
  enum class kind { subscribe, unsubscribe, publish, request };
  kind what = kind::publish;
  int64_t at_us = 0;
  uint32_t node = 0;
  std::string subject;      // subscribe: the pattern
  std::string queue_group;  // subscribe
  std::string payload;      // publish, request; subscribe: the answer to requests, if not empty
  uint32_t timeout_ms = 1000;  // request
  size_t subscription = 0;  // unsubscribe: index of the subscribe command
};

struct events_outcome {
  enum class kind { subscribed, unsubscribed, published, reply, message, slow_consumer, refused };
  kind what = kind::refused;
  size_t command_index = 0;  // the command, or for a message the subscribe command
  uint32_t node = 0;
  int64_t at_us = 0;
  uint16_t status = 0;       // the events actor's status code (200, 404, ...)
  std::string reason;
  std::string subject;       // message
  std::string payload;       // message, reply
  bool interest = false;     // published
};

// REQUIRES: every command's node exists; an unsubscribe names an earlier subscribe.
caf::actor spawn_events_client(caf::actor_system& system, world* shared,
                               std::vector<events_command> commands,
                               std::vector<events_outcome>* outcomes);

}  // namespace cmesh::sim
