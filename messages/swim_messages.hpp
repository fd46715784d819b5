// Wire messages of the imAlive membership protocol (actors/swim, spec in docs/membership.md).
// Each is the payload of an envelope with service = services::swim and type = T::type_id.
//
// SWIM failure detection (ping, ack, ping_req, nack), the dedicated gossip round (gossip) and the
// push-pull state sync (sync_request, sync_response). Probe and gossip messages carry a bounded
// list of piggybacked `update`s; the receiver (swim::machine) checks every field and skips items
// that are malformed or over their bounds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "messages/node_id.hpp"
#include "messages/services.hpp"

namespace cmesh::swim {

// What one disseminated update says. Values are on the wire: never renumber.
enum class update_kind : uint8_t {
  alive = 0,    // subject is alive at `incarnation`, listening at `address`
  suspect = 1,  // `accuser` suspects subject at `incarnation`
  dead = 2,     // `accuser` declared subject failed at `incarnation`
  left = 3,     // subject left gracefully at `incarnation` (only the subject issues it)
  rumor = 4,    // a user rumor: `rumor_id` + `payload`, first broadcast by `subject`
};

// One piggybacked or gossiped update. Fields a kind does not use are empty (or 0).
struct update {
  uint8_t kind = 0;          // update_kind
  bytes subject;             // 32-byte node id the update is about (rumor: its origin)
  uint64_t incarnation = 0;  // subject's incarnation the claim refers to
  std::string address;       // alive: where the subject listens
  bytes accuser;             // suspect, dead: the node making the claim (32 bytes)
  uint64_t rumor_id = 0;     // rumor: opaque id chosen by the origin
  bytes payload;             // rumor: opaque bytes
  uint64_t age_ms = 0;       // rumor: time since the origin broadcast it, summed over the time
                             // each holder kept it (transit not counted); a rumor older than the
                             // receiver's rumor_ttl is ignored, so it cannot circulate forever
  MSGPACK_DEFINE(kind, subject, incarnation, address, accuser, rumor_id, payload, age_ms);
};

// Direct probe. `target` names the node the sender means to reach: a node that is not the
// target (an address reused by someone else) does not answer.
struct ping {
  static constexpr uint16_t service_id = services::swim;
  static constexpr uint16_t type_id = 1;
  uint64_t seq = 0;
  bytes target;
  std::vector<update> updates;
  MSGPACK_DEFINE(seq, target, updates);
};

// Answer to a ping (seq of that ping) or, forwarded by a relay, to a ping_req (the origin's seq).
struct ack {
  static constexpr uint16_t service_id = services::swim;
  static constexpr uint16_t type_id = 2;
  uint64_t seq = 0;
  std::vector<update> updates;
  MSGPACK_DEFINE(seq, updates);
};

// Indirect probe: "ping `target` for me and forward its ack; my probe is `seq`".
struct ping_req {
  static constexpr uint16_t service_id = services::swim;
  static constexpr uint16_t type_id = 3;
  uint64_t seq = 0;
  bytes target;
  std::string target_address;
  std::vector<update> updates;
  MSGPACK_DEFINE(seq, target, target_address, updates);
};

// Lifeguard: a relay tells the origin it got no ack from the target in time (so the origin can
// tell "target is down" from "my own links are bad").
struct nack {
  static constexpr uint16_t service_id = services::swim;
  static constexpr uint16_t type_id = 4;
  uint64_t seq = 0;
  MSGPACK_DEFINE(seq);
};

// A dedicated gossip round's message: pending updates only, no answer expected.
struct gossip {
  static constexpr uint16_t service_id = services::swim;
  static constexpr uint16_t type_id = 5;
  std::vector<update> updates;
  MSGPACK_DEFINE(updates);
};

// One member's state in a full-state sync.
struct member_record {
  bytes key;  // 32-byte node id
  std::string address;
  uint64_t incarnation = 0;
  uint8_t state = 0;  // swim::member_state: 0 alive, 1 suspect, 2 dead, 3 left
  MSGPACK_DEFINE(key, address, incarnation, state);
};

// Push-pull anti-entropy: the sender's membership (itself first) and its live rumors. The
// receiver merges it and answers with a sync_response carrying its own.
struct sync_request {
  static constexpr uint16_t service_id = services::swim;
  static constexpr uint16_t type_id = 6;
  std::vector<member_record> members;
  std::vector<update> rumors;
  MSGPACK_DEFINE(members, rumors);
};

struct sync_response {
  static constexpr uint16_t service_id = services::swim;
  static constexpr uint16_t type_id = 7;
  std::vector<member_record> members;
  std::vector<update> rumors;
  MSGPACK_DEFINE(members, rumors);
};

}  // namespace cmesh::swim
