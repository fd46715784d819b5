// Wire messages of the peer protocol (actors/peer, spec in docs/peer-protocol.md).
// Each is the payload of an envelope with service = services::peer and type = T::type_id.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "messages/node_id.hpp"
#include "messages/services.hpp"

namespace cmesh::peer {

struct ping {
  static constexpr uint16_t service_id = services::peer;
  static constexpr uint16_t type_id = 1;
  uint64_t nonce = 0;
  std::string address;  // where the sender listens, so a receiver that did not know it can add it
  MSGPACK_DEFINE(nonce, address);
};

struct pong {
  static constexpr uint16_t service_id = services::peer;
  static constexpr uint16_t type_id = 2;
  uint64_t nonce = 0;
  MSGPACK_DEFINE(nonce);
};

// One known peer: its 32-byte public key and the address it listens on.
struct peer_record {
  bytes key;
  std::string address;
  MSGPACK_DEFINE(key, address);
};

// A sample of the sender's peers (at most limits::peer_list_entries_max).
struct peer_list {
  static constexpr uint16_t service_id = services::peer;
  static constexpr uint16_t type_id = 3;
  std::vector<peer_record> peers;
  MSGPACK_DEFINE(peers);
};

// Sent on clean shutdown: the receiver drops the sender at once instead of waiting for timeouts.
struct goodbye {
  static constexpr uint16_t service_id = services::peer;
  static constexpr uint16_t type_id = 4;
  uint8_t reason = 0;  // 0 = shutdown
  MSGPACK_DEFINE(reason);
};

}  // namespace cmesh::peer
