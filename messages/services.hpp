// Service ids: the `service` field of every envelope and of the transport seam's
// (send, to_node, service, bytes) / (deliver, from_node, service, bytes) messages.
// One registry so two services can never claim the same id.
#pragma once

#include <cstdint>

namespace cmesh::services {

inline constexpr uint16_t peer = 1;    // first protocol: join, peer exchange, ping (actors/peer)
inline constexpr uint16_t bench = 90;  // benchmark workloads: echo and flood (actors/bench)

}  // namespace cmesh::services
