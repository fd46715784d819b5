// The replicated key/value service: one actor per node and Raft group that hosts the group's
// replica (raft::machine), its LMDB log (raft::log_store) and the key/value state machine
// (kv::machine, which also holds the registrar's names). Spec: docs/raft.md.
//
// Clients reach it two ways, both answered with a kv::response:
//   over the transport: envelope kv::request (service kv) from the client's node; the caller is the
//     authenticated sender of the connection, never a claim in the request;
//   in-process:         (kv_request_atom, bytes request, node_id caller) -> bytes response;
//                       or many at once, typed: (kv_batch_atom, std::vector<kv::request>,
//                       std::vector<node_id> callers, std::vector<uint64_t> tags), no reply; the
//                       answers go back to the sender as (kv_answers_atom, std::vector<uint64_t>
//                       tags, std::vector<kv::response>) as they are ready, gathered: the
//                       answers given while one message is handled leave together (reads served
//                       by one flush, writes of one commit).
// A follower forwards a client request once to the leader it knows and relays the answer; with
// no known leader it answers 503 naming whatever leader it last heard of.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/atom.hpp>

#include "actors/raft/raft_machine.hpp"

namespace caf {
class actor;
class actor_system;
}  // namespace caf

namespace cmesh {
class store;
class event_sink;
}  // namespace cmesh

namespace cmesh::raft {
class observer;
}

namespace cmesh::kv {

using kv_request_atom = caf::atom_constant<caf::atom("kv_req")>;
using kv_batch_atom = caf::atom_constant<caf::atom("kv_batch")>;
using kv_answers_atom = caf::atom_constant<caf::atom("kv_answers")>;
// (raft_admin_atom, uint8_t raft::membership_change, node_id who) -> std::string ("" = accepted)
using raft_admin_atom = caf::atom_constant<caf::atom("raft_admin")>;
// (transfer_atom, node_id to) -> std::string ("" = started)
using transfer_atom = caf::atom_constant<caf::atom("transfer")>;

struct replica_context {
  node_id self;
  uint32_t group = 0;
  std::vector<node_id> voters;                 // the group's initial voters
  std::map<node_id, std::string> addresses;    // where members listen (introduced to the transport)
  raft::config raft_config;                    // `self` is filled in by the actor
  uint64_t rng_seed = 0;
  uint64_t snapshot_every = 1000;              // compact after this many newly applied entries
  int64_t forward_timeout_us = 2'000'000;      // a forwarded request unanswered this long: 408
  store* storage = nullptr;                    // owned by the runner; outlives the actor
  event_sink* events = nullptr;
  raft::observer* observer = nullptr;          // simulation checkers; null in real mode
  // Wire clients need a live IAM session of this node (told by the IAM actor through
  // iam_watch_sessions; docs/iam.md §13): reads need state.read, writes state.write; otherwise
  // 401 or 403. Forwards from group members and in-process callers (the router, which checked
  // the token) are not gated. Off: any authenticated peer may (the simulator's default).
  bool require_session = false;
};

caf::actor spawn_kv_replica(caf::actor_system& system, const caf::actor& transport,
                            replica_context context);

}  // namespace cmesh::kv
