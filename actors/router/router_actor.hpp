// Actor shell of the router and dispatcher (router::machine, docs/router.md §8). One per node,
// registered with the transport for service `services::cmtp`.
//
//   over the transport: envelope cmtp::request (type 1) from any authenticated peer (a client);
//     answered with a cmtp::response (type 2) carrying the request envelope's correlation.
//   in-process:         (router_call_atom, bytes packed cmtp::request) -> bytes packed response
//     (the simulator's clients and the in-process benchmark), or (router_batch_atom, requests)
//     -> responses for many at once, typed.
//
// Start: the router authenticates its own identity before it serves (seed 000). It runs the IAM
// handshake in process with the node's IAM actor (iam_challenge_atom, then iam_redeem_atom with
// the challenge signed by the node key), checks the token it gets (signed by the node, for the
// node), logs "router authenticated", and only then serves; meanwhile every request is answered
// 503. A failed attempt is retried every second. Without an IAM actor or a signer it never serves.
//
// Proxy (0xP:<router>:<target>): the target goes to that node's router over the transport as a
// CMTP request with the client's token; its answer (a cmtp::response envelope with our
// correlation) answers the client. The remote router accepts the token when it trusts this node's
// IAM (trusted_issuers: in real mode the Raft group's members).
//
// Dispatch: kv calls go to the node's kv replica in process, all of one step in one message
// ((kv_batch_atom, requests, callers, tags), answered by kv_answers; the caller is the token's
// subject, so the registrar's owner is never the transport peer); publishes, the audit
// trail included, go to the node's events bus ((events_pub_atom, ...)). Without a kv replica on
// this node a state or name request is answered 503. Revocations come from the node's IAM actor
// (when given): the router subscribes and keeps its own revoked set, so tokens are checked
// locally and never by asking.
//
// Time: actor clock + epoch_offset_us (mesh time; token times are Unix seconds). Timer: one,
// armed at the earliest call deadline, plus a revocation sweep every second.
// In-process API also: (status_atom) -> std::string.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <caf/atom.hpp>

#include "actors/router/router_machine.hpp"
#include "runtime/crypto/identity.hpp"

namespace caf {
class actor;
class actor_system;
}  // namespace caf

namespace cmesh {
class event_sink;
}

namespace cmesh::router {

using router_call_atom = caf::atom_constant<caf::atom("rt_call")>;
// (router_batch_atom, std::vector<cmtp::request>) -> std::vector<cmtp::response>, in the same
// order, typed (one process): many in-process requests in one call, answered once all are (their
// kv calls and audit records travel in one message per step, not per request).
using router_batch_atom = caf::atom_constant<caf::atom("rt_batch")>;

struct actor_context {
  node_id self;
  std::optional<identity> signer;  // the node's identity: the router earns its own session with it
  std::vector<node_id> trusted_issuers;  // other nodes whose session tokens are accepted (0xP)
  std::string audience;            // tokens must name this audience (default: the node's DID)
  config routing;                  // validated by the caller
  int64_t epoch_offset_us = 0;     // actor clock + this = mesh time (real mode: Unix time)
  event_sink* events = nullptr;
};

// Any of kv, bus and iam may be invalid handles (no such service on this node). `own_thread`:
// spawned detached (a thread of its own; the runtime's choice in real mode, never in simulation).
caf::actor spawn_router_actor(caf::actor_system& system, const caf::actor& transport,
                              const caf::actor& kv, const caf::actor& bus, const caf::actor& iam,
                              actor_context context, bool own_thread = false);

}  // namespace cmesh::router
