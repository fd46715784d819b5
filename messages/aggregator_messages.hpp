// Wire messages of the aggregator directory (actors/aggregator, spec in docs/aggregator.md).
// Each is the payload of an envelope with service = services::aggregator and type = T::type_id.
//
// An aggregator keeps tag -> agent lists. Agents register (signed, so nobody registers for
// someone else), refresh with i_am_alive (signed) and look up by tags; every request gets exactly
// one reply carrying the request's request_id. Times are milliseconds since the mesh epoch.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <msgpack.hpp>

#include "messages/node_id.hpp"
#include "messages/services.hpp"

namespace cmesh::aggregator {

// Reply codes. Wire values: never renumber.
enum class status_code : uint8_t {
  ok = 0,
  bad_signature = 1,  // the agent's signature does not verify
  malformed = 2,      // wrong field sizes, empty or duplicate tags, ttl out of range
  too_large = 3,      // too many tags, a tag or address too long
  stale = 4,          // sequence not newer than the last one seen, or signed too long ago
  unknown_agent = 5,  // i_am_alive for an agent with no live registration: register again
  full = 6,           // the directory or one of the tag lists is at its bound
  not_served = 7,     // the node asked runs no directory (started without --aggregator)
};

constexpr std::string_view status_code_name(status_code code) {
  switch (code) {
    case status_code::ok: return "ok";
    case status_code::bad_signature: return "bad_signature";
    case status_code::malformed: return "malformed";
    case status_code::too_large: return "too_large";
    case status_code::stale: return "stale";
    case status_code::unknown_agent: return "unknown_agent";
    case status_code::full: return "full";
    case status_code::not_served: return "not_served";
  }
  return "unknown";
}

// What an agent says about itself, signed by its key. Lookups return these as registered, so a
// looker can check them itself instead of trusting the aggregator.
struct agent_registration {
  bytes agent;                    // 32-byte ed25519 public key (the signer)
  std::string address;            // where to reach it (opaque to the aggregator)
  std::vector<std::string> tags;  // e.g. "category:tech", "location:dubai"
  uint32_t ttl_s = 0;             // forgotten this long after the last register or refresh
  uint64_t sequence = 0;          // strictly increasing per agent (replay protection)
  uint64_t signed_ms = 0;         // when it was signed
  bytes signature;                // 64 bytes over the fields above (aggregator_machine.hpp)
  MSGPACK_DEFINE(agent, address, tags, ttl_s, sequence, signed_ms, signature);
};

struct register_agent {
  static constexpr uint16_t service_id = services::aggregator;
  static constexpr uint16_t type_id = 1;
  uint64_t request_id = 0;
  agent_registration registration;
  MSGPACK_DEFINE(request_id, registration);
};

// imAlive: keeps a registration for another ttl_s. Signed so nobody can keep a departed agent
// listed.
struct i_am_alive {
  static constexpr uint16_t service_id = services::aggregator;
  static constexpr uint16_t type_id = 2;
  uint64_t request_id = 0;
  bytes agent;            // 32 bytes
  uint64_t sequence = 0;  // newer than every sequence the aggregator has seen from the agent
  uint64_t signed_ms = 0;
  bytes signature;        // 64 bytes
  MSGPACK_DEFINE(request_id, agent, sequence, signed_ms, signature);
};

// The answer to register_agent and i_am_alive.
struct registration_reply {
  static constexpr uint16_t service_id = services::aggregator;
  static constexpr uint16_t type_id = 3;
  uint64_t request_id = 0;
  uint8_t status = 0;       // status_code
  std::string reason;       // empty when ok
  uint64_t expires_ms = 0;  // ok: when the entry lapses unless refreshed
  MSGPACK_DEFINE(request_id, status, reason, expires_ms);
};

// Agents that carry every one of `tags`.
struct lookup_agents {
  static constexpr uint16_t service_id = services::aggregator;
  static constexpr uint16_t type_id = 4;
  uint64_t request_id = 0;
  std::vector<std::string> tags;
  uint32_t limit = 0;  // most agents wanted; 0 or above the aggregator's bound = its bound
  MSGPACK_DEFINE(request_id, tags, limit);
};

struct lookup_reply {
  static constexpr uint16_t service_id = services::aggregator;
  static constexpr uint16_t type_id = 5;
  uint64_t request_id = 0;
  uint8_t status = 0;  // status_code
  std::string reason;
  std::vector<agent_registration> agents;  // a seeded random sample when more match
  MSGPACK_DEFINE(request_id, status, reason, agents);
};

}  // namespace cmesh::aggregator
