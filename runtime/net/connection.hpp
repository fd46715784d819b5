// One TCP connection as a CAF io broker: handshake, then AEAD frames (docs/wire-protocol.md).
// Internal to runtime/net.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "messages/node_id.hpp"

namespace cmesh {
class event_sink;
}

namespace cmesh::net {

struct connection_params {
  bool initiator = false;
  node_id self;
  std::array<uint8_t, 64> secret_key{};
  std::string advertised_address;
  std::optional<node_id> expected_peer;  // pinned identity (dials only)
  std::string dialed_address;            // dials only: reported back on failure
  event_sink* events = nullptr;
  // Open connections of this node (accepted and dialed), shared by all its connection brokers;
  // the acceptor refuses new sockets at limits::connections_max.
  std::shared_ptr<std::atomic<size_t>> open_connections;
};

// Connection broker behaviour. Reports to `manager`:
//   (conn_up_atom, node_id peer, std::string peer_address, caf::actor self, bool initiator,
//    std::string dialed_address) once authenticated;
//   (deliver_atom, node_id peer, uint16_t service, bytes envelope) per valid frame;
//   (conn_fail_atom, std::string dialed_address, std::string reason, bool retryable) if a dialed
//    connection fails before it is up.
// Accepts (frame_atom, bytes envelope) to send and (close_atom) to close after flushing.
caf::behavior connection_broker(caf::io::broker* self, caf::io::connection_handle handle,
                                caf::actor manager, connection_params params);

}  // namespace cmesh::net
