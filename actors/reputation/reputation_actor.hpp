// Actor shell of reputation (reputation::machine, docs/reputation.md §8): decodes service-7
// envelopes, steps the machine, carries out its sends through the node's transport, and serves
// clients (cmesh reputation). Runs unchanged in real mode and in the simulator.
//
// Contacts: the live members of the node's imAlive membership (the swim actor tells this actor of
// joins and failures); without a membership actor, the transport's connected peers (member_view).
//
// Clients: an endorsement or report_gossip arriving with a non-zero envelope correlation is a
// client's submission: it goes through the machine like any other (verified, replay-checked,
// counted, a report gossiped on) and is answered with a claim_result carrying the verdict. A
// score_query is answered with a score_reply. Peers gossip with correlation 0 and get no answer.
//
// Time: actor clock + epoch_offset_us (mesh time: signed claims carry it across nodes).
// Timers: one per scheduled claim (simulation scenarios).
// In-process API: (status_atom) -> std::string.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "actors/reputation/reputation_machine.hpp"

namespace caf {
class actor;
class actor_system;
}  // namespace caf

namespace cmesh {
class event_sink;
}

namespace cmesh::reputation {

// Told to the simulator's checkers (never in real mode).
class observer {
public:
  virtual ~observer() = default;
  // Every machine event: accepted endorsements and reports, rejections with their verdict.
  virtual void on_event(const node_id& self, const event& e, int64_t now_us) = 0;
  // Every reputation message this node sends to a peer.
  virtual void on_sent(const node_id& self, const node_id& to, const wire_message& message) = 0;
};

struct actor_context {
  node_id self;
  std::optional<identity> signer;   // the node's identity (signs its own claims); REQUIRED
  config reputation;                // validated by the caller
  std::vector<scheduled_claim> claims;
  int64_t epoch_offset_us = 0;      // actor clock + this = mesh time (real mode: Unix time)
  uint64_t rng_seed = 0;
  event_sink* events = nullptr;     // accepted and rejected claims are logged
  observer* watcher = nullptr;
};

// Most cached reports a score_reply carries, whatever the client asks for.
inline constexpr uint32_t score_reply_reports_max = 64;

// `membership` may be an invalid handle: contacts then follow the transport's peers.
caf::actor spawn_reputation_actor(caf::actor_system& system, const caf::actor& transport,
                                  const caf::actor& membership, actor_context context);

}  // namespace cmesh::reputation
