// Wire messages of the reliable message bus (actors/rmb, spec in docs/rmb.md).
// Each is the payload of an envelope with service = services::rmb and type = T::type_id. They
// travel between RMB agents (one per node); the envelope's source is the sending agent's node.
//
// Twins (one per user identity) are named by their 32-byte ed25519 public keys. A twin_envelope
// is signed by its source twin, so it can be checked by anyone who sees it; an envelope_ack is a
// hop-level answer between two agents and is not signed (the transport authenticated the agent).
//
// Times inside messages are milliseconds since the mesh epoch (the Unix epoch in real mode, the
// start of virtual time in simulation); expiry is in whole seconds after creation.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <msgpack.hpp>

#include "messages/node_id.hpp"
#include "messages/services.hpp"

namespace cmesh::rmb {

inline constexpr uint8_t envelope_version = 1;
inline constexpr size_t uid_bytes = 16;
inline constexpr size_t twin_key_bytes = 32;
inline constexpr size_t signature_bytes = 64;

enum class envelope_kind : uint8_t {
  request = 0,  // a command for the destination twin
  reply = 1,    // the destination twin's answer; reply_to names the request
};

// Outcome and refusal codes. Wire values: never renumber.
enum class status_code : uint8_t {
  ok = 0,              // accepted / delivered / the command succeeded
  bad_signature = 1,   // the source twin's signature does not verify
  unknown_twin = 2,    // the destination twin is not hosted by the receiving agent
  too_large = 3,       // the encoded envelope (or a field) is over its bound
  expired = 4,         // created_ms + expiry_s has passed (or no reply came before it)
  undeliverable = 5,   // every attempt went unacknowledged, or no route to the twin
  malformed = 6,       // a field has the wrong size or an impossible value
  overloaded = 7,      // the receiver's dedup table is full: retryable, the sender keeps trying
  command_failed = 8,  // replies only: the twin's handler ran and reports failure (see reason)
};

constexpr std::string_view status_code_name(status_code code) {
  switch (code) {
    case status_code::ok: return "ok";
    case status_code::bad_signature: return "bad_signature";
    case status_code::unknown_twin: return "unknown_twin";
    case status_code::too_large: return "too_large";
    case status_code::expired: return "expired";
    case status_code::undeliverable: return "undeliverable";
    case status_code::malformed: return "malformed";
    case status_code::overloaded: return "overloaded";
    case status_code::command_failed: return "command_failed";
  }
  return "unknown";
}

// A signed message between twins. The signature (ed25519 by `source`) covers every other field;
// see actors/rmb/rmb_envelope.hpp for the exact signed bytes.
struct twin_envelope {
  static constexpr uint16_t service_id = services::rmb;
  static constexpr uint16_t type_id = 1;
  uint8_t version = envelope_version;
  bytes uid;                // 16 bytes, chosen by the source agent; (source, uid) is unique
  uint8_t kind = 0;         // envelope_kind
  uint64_t created_ms = 0;  // when the source agent created it (mesh epoch, ms)
  uint32_t expiry_s = 0;    // lifetime after created_ms, 1 .. 1800 seconds
  bytes source;             // 32-byte key of the sending twin (the signer)
  bytes destination;        // 32-byte key of the receiving twin
  std::string command;      // requests: what to do; replies: the request's command
  bytes data;               // command arguments or reply body (opaque to the bus)
  bytes reply_to;           // replies: uid of the request (16 bytes); requests: empty
  uint8_t status = 0;       // replies: status_code::ok or command_failed; requests: 0
  std::string reason;       // replies: the handler's reason when status != ok
  bytes signature;          // 64 bytes
  MSGPACK_DEFINE(version, uid, kind, created_ms, expiry_s, source, destination, command, data,
                 reply_to, status, reason, signature);
};

// Hop-level answer from the receiving agent for the twin_envelope (source, uid). status ok means
// accepted (recorded for deduplication, so the sender stops retrying); overloaded means try
// again later; any other code refuses the envelope for good, with a human-readable reason.
struct envelope_ack {
  static constexpr uint16_t service_id = services::rmb;
  static constexpr uint16_t type_id = 2;
  bytes uid;           // as in the acknowledged envelope
  bytes source;        // as in the acknowledged envelope (the key is the pair)
  uint8_t status = 0;  // status_code
  std::string reason;  // empty when ok
  MSGPACK_DEFINE(uid, source, status, reason);
};

// A client asks an agent where a twin lives (client -> agent, answered with twin_location and the
// same envelope correlation).
struct locate_twin {
  static constexpr uint16_t service_id = services::rmb;
  static constexpr uint16_t type_id = 3;
  bytes twin;  // 32 bytes
  MSGPACK_DEFINE(twin);
};

struct twin_location {
  static constexpr uint16_t service_id = services::rmb;
  static constexpr uint16_t type_id = 4;
  bytes twin;
  bool found = false;   // false: the agent knows no address for it
  bytes agent;          // the hosting agent's node key (32 bytes)
  std::string address;  // where that agent listens
  MSGPACK_DEFINE(twin, found, agent, address);
};

// "Twin `twin` is hosted by the agent of the node that sent this": one entry of twins_hosted.
// `signature` is the twin's ed25519 signature over "cmesh/rmb/hosted/v1" 0x00 || twin(32) ||
// agent(32), where agent is the sending node's key: only the twin's key holder can place it on a
// node, so a peer cannot draw another node's twin traffic to itself.
struct hosted_twin {
  bytes twin;       // 32 bytes
  bytes signature;  // 64 bytes
  MSGPACK_DEFINE(twin, signature);
};

// Agent -> agent, when a peer comes up: the twins this agent hosts besides the node's own identity
// (which every agent reaches by the node's key). The receiver verifies every entry and routes the
// twin to the sender (docs/rmb.md, "Where twins live").
struct twins_hosted {
  static constexpr uint16_t service_id = services::rmb;
  static constexpr uint16_t type_id = 5;
  std::vector<hosted_twin> twins;
  MSGPACK_DEFINE(twins);
};

}  // namespace cmesh::rmb
