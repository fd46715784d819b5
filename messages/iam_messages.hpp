// Wire messages of IAM (actors/iam, spec in docs/iam.md §2 and §9): the passwordless handshake and
// revocation between a client (cmesh id session / cmesh id revoke) and a node's IAM actor.
// Each is the payload of an envelope with service = services::iam and type = T::type_id.
//
//   client -> node  challenge_request{audience}                      -> challenge_reply
//   client -> node  answer_message{nonce, holder_did, scope, sig}     -> session_reply
//   client -> node  revoke_request{token}                             -> revoke_reply
//   node -> node    revocation_notice{entries}                        (no reply)
//
// revocation_notice: an IAM tells the IAMs of the nodes it is connected to which of its OWN tokens
// are revoked, when it revokes one and, in full, when a node connects. A receiver applies each
// entry to tokens issued by the authenticated sender only, so a node can never revoke another
// node's tokens (docs/iam.md §10).
//
// Every request gets exactly one reply carrying the request envelope's correlation. The client
// authenticates to the node with the transport handshake; the holder's identity in the answer is
// proved by its signature, never by the transport peer (a client may run the handshake for a key
// it holds under another transport identity).
//
// Status codes (HTTP meanings, as CMTP uses them; wire values, never renumber):
//   200 ok
//   400 bad request: the payload does not decode, a field has the wrong shape (nonce, DID,
//       signature, scope syntax), an audience that is empty or not printable ASCII
//   401 identity required: unknown or expired challenge, bad signature, a token that does not
//       authenticate (revoke); the client runs the handshake again
//   403 forbidden: the policy grants none of the requested scope
//   409 replayed: this challenge was already answered (an answer is accepted once)
//   413 too large: audience, scope or token over its limit (docs/iam.md §6)
//   429 rate limited: too many challenge requests from this peer within a second
//   503 unavailable: the revocation list is full, or the random source repeated a nonce
// `reason` is "kind: detail" for IAM refusals (kind = iam::error_kind_name), empty on 200.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "messages/services.hpp"

namespace cmesh::iam {

inline constexpr uint16_t status_ok = 200;
inline constexpr uint16_t status_bad_request = 400;
inline constexpr uint16_t status_unauthorized = 401;
inline constexpr uint16_t status_forbidden = 403;
inline constexpr uint16_t status_replayed = 409;
inline constexpr uint16_t status_too_large = 413;
inline constexpr uint16_t status_rate_limited = 429;
inline constexpr uint16_t status_unavailable = 503;

// "ok", "bad_request", ... for the codes above; "status_<n>" for any other.
inline std::string iam_status_name(uint16_t status) {
  switch (status) {
    case status_ok: return "ok";
    case status_bad_request: return "bad_request";
    case status_unauthorized: return "unauthorized";
    case status_forbidden: return "forbidden";
    case status_replayed: return "replayed";
    case status_too_large: return "too_large";
    case status_rate_limited: return "rate_limited";
    case status_unavailable: return "unavailable";
  }
  return "status_" + std::to_string(status);
}

// Step 1: "a challenge please, for a session with `audience`".
struct challenge_request {
  static constexpr uint16_t service_id = services::iam;
  static constexpr uint16_t type_id = 1;
  std::string audience;  // the service or router the session is for (printable, no spaces)
  MSGPACK_DEFINE(audience);
};

// Step 2. On 200 the challenge the holder signs (iam::challenge_signing_input).
struct challenge_reply {
  static constexpr uint16_t service_id = services::iam;
  static constexpr uint16_t type_id = 2;
  uint16_t status = status_ok;
  std::string reason;
  std::string nonce;       // base64url of 32 random bytes
  std::string audience;
  std::string node_did;    // the issuing node's did:key (the client checks it is the peer it dialed)
  int64_t expires_at_s = 0;  // Unix seconds; answer before this
  MSGPACK_DEFINE(status, reason, nonce, audience, node_did, expires_at_s);
};

// Step 3: the holder's answer (iam::challenge_answer).
struct answer_message {
  static constexpr uint16_t service_id = services::iam;
  static constexpr uint16_t type_id = 3;
  std::string nonce;
  std::string holder_did;
  std::string scope;       // requested, space-separated ("" = identity only)
  std::string signature;   // base64url of 64 bytes
  MSGPACK_DEFINE(nonce, holder_did, scope, signature);
};

// Step 4. On 200 the session token and what it grants.
struct session_reply {
  static constexpr uint16_t service_id = services::iam;
  static constexpr uint16_t type_id = 4;
  uint16_t status = status_ok;
  std::string reason;
  std::string token;        // compact JWS (docs/iam.md §3)
  std::string scope;        // granted, space-separated (may be narrower than requested)
  int64_t expires_at_s = 0;
  std::string token_id;     // jti
  MSGPACK_DEFINE(status, reason, token, scope, expires_at_s, token_id);
};

// "Revoke this token" (logout). Anyone holding a token this node issued may revoke it.
struct revoke_request {
  static constexpr uint16_t service_id = services::iam;
  static constexpr uint16_t type_id = 5;
  std::string token;
  MSGPACK_DEFINE(token);
};

struct revoke_reply {
  static constexpr uint16_t service_id = services::iam;
  static constexpr uint16_t type_id = 6;
  uint16_t status = status_ok;
  std::string reason;       // on 200: empty, or why nothing needed revoking (already expired)
  MSGPACK_DEFINE(status, reason);
};

// One revoked token of the sending node: its jti and when it expires anyway (after that the
// entry is forgotten).
struct revocation_entry {
  std::string token_id;
  int64_t expires_at_s = 0;
  MSGPACK_DEFINE(token_id, expires_at_s);
};

inline constexpr size_t revocation_notice_entries_max = 512;
inline constexpr size_t revocation_token_id_chars_max = 128;

struct revocation_notice {
  static constexpr uint16_t service_id = services::iam;
  static constexpr uint16_t type_id = 7;
  std::vector<revocation_entry> entries;  // at most revocation_notice_entries_max
  MSGPACK_DEFINE(entries);
};

}  // namespace cmesh::iam
