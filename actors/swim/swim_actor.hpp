// Actor shell of the imAlive membership (swim::machine, docs/membership.md): decodes envelopes,
// steps the machine, carries out its sends through the node's transport and reports its events.
// Runs unchanged in real mode and in the simulator; only the context differs.
//
// Timers: one timer armed at the machine's next deadline (not a fixed tick), so 10,000 simulated
// agents cost timer events only when a probe, gossip round or sync is due.
//
// In-process API:
//   (swim_rumor_atom, uint64_t id, bytes payload) -> std::string   "" = disseminating
//   (swim_members_atom) -> std::vector<std::string>   live members as "DID ADDRESS" lines
//   (swim_watch_atom, caf::actor w)  w is told (swim_member_atom, node_id, std::string address,
//                                    bool alive) for every live member now, then for every join
//                                    (alive) and every failure or leave (not alive)
//   (status_atom) -> std::string
//   (shutdown_atom) -> atom ok: leaves gracefully (the leave is disseminated first)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/atom.hpp>

#include "actors/swim/swim_machine.hpp"

namespace caf {
class actor;
class actor_system;
}  // namespace caf

namespace cmesh {
class event_sink;
}

namespace cmesh::swim {

using swim_rumor_atom = caf::atom_constant<caf::atom("sw_rumor")>;
using swim_members_atom = caf::atom_constant<caf::atom("sw_members")>;
using swim_watch_atom = caf::atom_constant<caf::atom("sw_watch")>;
using swim_member_atom = caf::atom_constant<caf::atom("sw_member")>;

// Told to the simulator and the gossip benchmark (never in real mode).
class observer {
public:
  virtual ~observer() = default;
  virtual void on_event(const node_id& self, const event& e, int64_t now_us) = 0;
  // Every message the node sends (index = wire_message alternative, see message_name);
  // carries_rumor: it carries at least one user rumor update.
  virtual void on_sent(const node_id& self, size_t kind, bool carries_rumor, int64_t now_us) = 0;
};

struct actor_context {
  node_id self;
  std::string listen_address;
  std::vector<seed> seeds;
  config membership;
  uint64_t rng_seed = 0;
  std::vector<member_record> known;  // members to start from (a restart, or a benchmark's
                                     // pre-built contact lists); not disseminated
  event_sink* events = nullptr;      // membership changes are logged; rumors are not
  observer* watcher = nullptr;
  // Benchmark workload: at this time (actor clock, us) broadcast rumor 1 with a 64-byte payload
  // (< 0 = never).
  int64_t broadcast_at_us = -1;
};

caf::actor spawn_swim_actor(caf::actor_system& system, const caf::actor& transport,
                            actor_context context);

}  // namespace cmesh::swim
