// The RMB agent: one actor per node that hosts twin actors (one per user identity) and carries
// signed envelopes between twins reliably (rmb::machine, docs/rmb.md). Runs unchanged in real
// mode and in the simulator; only the context differs.
//
// The agent persists before it sends: each input's effects are written to the node's store (the
// machine's dedup and outbox records, and the state of a twin whose command changed it, in one
// transaction) before any acknowledgement, reply or delivery leaves.
//
// Routes: a twin whose agent is unknown is assumed to be hosted by the node of the same key (every
// node hosts its own identity as a twin); other agents' addresses come from the transport's
// peer_up events. A client asks an agent where a twin lives with locate_twin.
//
// In-process API (the CLI's client agent, tests, the simulator's clients):
//   (rmb_send_atom, bytes source_twin, bytes destination_twin, std::string command, bytes data,
//    uint32_t expiry_s)
//     -> (uint8_t status_code, std::string reason, bytes reply_data)   once the outcome is known
//   (rmb_where_atom, bytes twin, bytes agent_node, std::string address)
//     the twin is hosted by that agent, which listens at that address (empty = already known)
//   (status_atom) -> std::string
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/atom.hpp>

#include "actors/rmb/rmb_machine.hpp"

namespace caf {
class actor;
class actor_system;
}  // namespace caf

namespace cmesh {
class store;
class event_sink;
}  // namespace cmesh

namespace cmesh::rmb {

using rmb_send_atom = caf::atom_constant<caf::atom("rmb_send")>;
using rmb_where_atom = caf::atom_constant<caf::atom("rmb_where")>;

// Told to the simulator's checkers: a command took effect on a twin (counter.add ran and its
// new state was made durable with the reply).
class agent_observer {
public:
  virtual ~agent_observer() = default;
  virtual void on_effect(const node_id& agent, const node_id& twin, const std::string& command,
                         const bytes& request_uid, const bytes& reply) = 0;
};

struct agent_context {
  node_id self;
  std::vector<identity> twins;     // hosted twins; the node's own identity should be one
  config bus;                      // `self` is filled in by the actor
  uint64_t rng_seed = 0;
  int64_t epoch_offset_us = 0;     // added to the actor clock: mesh time (real mode: Unix time)
  store* storage = nullptr;        // null: nothing survives a restart (command-line clients)
  event_sink* events = nullptr;
  agent_observer* observer = nullptr;
};

caf::actor spawn_rmb_agent(caf::actor_system& system, const caf::actor& transport,
                           agent_context context);

}  // namespace cmesh::rmb
