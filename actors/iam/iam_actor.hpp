// Actor shell of IAM (iam::machine, docs/iam.md §10): one per node. Serves the passwordless
// handshake and revocation to clients over service 10 (messages/iam_messages.hpp), signs session
// tokens with the node's identity, and answers other actors of the node in-process. Runs
// unchanged in real mode and in the simulator.
//
// Wire: challenge_request -> challenge_reply, answer_message -> session_reply, revoke_request ->
// revoke_reply; exactly one reply per request, with the request envelope's correlation, including
// for a payload that does not decode (400). Replies arriving here and unknown message types are
// counted as malformed and not answered. Challenge requests are rate limited per transport peer
// (challenges_per_peer_per_s within each one-second tick, then 429): one flooder cannot push
// everybody's outstanding challenges out of the machine's bounded table.
//
// In-process API (for the router and other protected services of the node):
//   (iam_watch_atom, caf::actor watcher)
//       the watcher is told (iam_revoked_atom, node_id issuer, std::string token_id,
//       int64_t expires_at_s) for every live revocation at once and for every later one, until it
//       terminates (monitored). issuer is this node for its own revocations, or another node whose
//       IAM told us about one of ITS tokens (revocation_notice; a receiver applies it to that
//       issuer's tokens only).
//       A router keeps its own verified-token cache and revoked set with this and never has to
//       trust a caller; revocations are dropped from its set once expires_at_s + skew passed.
//   (iam_watch_sessions_atom, caf::actor watcher)
//       for services that authorize their own wire clients (kv, events; docs/iam.md §13): the
//       watcher is told (iam_session_atom, node_id holder, std::string token_id, std::string scope,
//       int64_t ttl_us) for every live session at once and every later one, and
//       (iam_revoked_atom, node_id issuer = this node, token_id, expires_at_s) when one of them
//       is revoked. ttl_us is relative: the watcher adds its own actor clock.
//   (iam_verify_atom, std::string token, std::string audience, std::string scope)
//       -> (uint16_t status, std::string reason, std::string subject_did, std::string scope)
//       status 200 (subject and granted scope filled in), 401 or 403 (iam::cmtp_status of the
//       refusal; reason "kind: detail"). Through the machine's verified-token cache.
//   (iam_challenge_atom, std::string audience) -> bytes: a packed challenge_reply
//   (iam_redeem_atom, bytes packed answer_message) -> bytes: a packed session_reply
//       the handshake in process, for the node's own services: the router earns its session
//       with these before it serves (docs/router.md §8). Challenges count against the node's own
//       per-peer window like any peer's.
//   (status_atom) -> std::string, (shutdown_atom) -> ok.
//
// Time: actor clock + epoch_offset_us = mesh time; the machine gets whole Unix seconds. One
// periodic timer (1 s): machine.tick() and the rate-limit window. Randomness: the random source
// handed in (real mode: jose::secure_random_source(), from runtime/; simulation and tests: a
// seeded one), never one of its own. Events go to the event sink: challenge_issued,
// session_issued, refused (kind), revoked, revocation_learned, revocations_loaded, storage_error,
// malformed, rate_limited.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <caf/atom.hpp>

#include "actors/iam/iam_machine.hpp"
#include "runtime/crypto/identity.hpp"

namespace caf {
class actor;
class actor_system;
}  // namespace caf

namespace cmesh {
class event_sink;
class store;
}

namespace cmesh::iam {

using iam_watch_atom = caf::atom_constant<caf::atom("iam_watch")>;
using iam_revoked_atom = caf::atom_constant<caf::atom("iam_revkd")>;
using iam_verify_atom = caf::atom_constant<caf::atom("iam_verify")>;
using iam_watch_sessions_atom = caf::atom_constant<caf::atom("iam_wsess")>;
using iam_session_atom = caf::atom_constant<caf::atom("iam_sess")>;
using iam_challenge_atom = caf::atom_constant<caf::atom("iam_chall")>;
using iam_redeem_atom = caf::atom_constant<caf::atom("iam_redeem")>;

// The node-wide default scope policy: any holder may hold these for any audience.
inline constexpr const char* default_scopes =
    "state.read state.write events.read events.publish names.resolve names.register proxy consensus";
// {"*", "*", default_scopes}.
std::vector<scope_rule> default_scope_rules();

// Challenge requests answered per transport peer within one tick (1 s) before 429. A client needs
// one per session; 10 leaves room for retries and several clients behind one identity.
inline constexpr uint32_t challenges_per_peer_per_s = 10;

struct actor_context {
  node_id self;
  std::optional<identity> signer;     // the node's identity (signs session tokens); REQUIRED
  config iam;                         // validated by the caller (iam::validate)
  std::vector<scope_rule> scopes;     // the policy table; empty = default_scope_rules()
  jose::random_source random;         // nonces and token ids; REQUIRED
  int64_t epoch_offset_us = 0;        // actor clock + this = mesh time (real mode: Unix time)
  event_sink* events = nullptr;
  // Revocations (own and learned) are kept here across restarts; own ones are saved before the
  // revoke is acknowledged. Null: memory only (tests). Real mode: the node's own iam environment.
  store* storage = nullptr;
};

caf::actor spawn_iam_actor(caf::actor_system& system, const caf::actor& transport,
                           actor_context context);

}  // namespace cmesh::iam
