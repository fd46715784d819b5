// Service ids: the `service` field of every envelope and of the transport seam's
// (send, to_node, service, bytes) / (deliver, from_node, service, bytes) messages.
// One registry so two services can never claim the same id.
#pragma once

#include <cstdint>

namespace cmesh::services {

inline constexpr uint16_t peer = 1;    // first protocol: join, peer exchange, ping (actors/peer)
inline constexpr uint16_t kv = 3;      // key/value and registrar client protocol (actors/kv)
inline constexpr uint16_t rmb = 4;         // reliable message bus: signed envelopes between twins (actors/rmb)
inline constexpr uint16_t swim = 5;        // imAlive membership: probes, suspicion, dissemination (actors/swim)
inline constexpr uint16_t gossip = 6;      // cached tag gossip search (actors/gossip)
inline constexpr uint16_t reputation = 7;  // endorsements and reports (actors/reputation)
inline constexpr uint16_t aggregator = 8;  // tag -> agent directories (actors/aggregator)
inline constexpr uint16_t events = 9;      // events bus: interest and routed messages (actors/events)
inline constexpr uint16_t cmtp = 11;      // router: CMTP requests and responses (actors/router)
inline constexpr uint16_t iam = 10;        // identity: passwordless handshake, session tokens (actors/iam)
inline constexpr uint16_t bench = 90;  // benchmark workloads: echo and flood (actors/bench)

// Raft groups: group g (0 <= g < raft_groups_max) speaks on service raft_group_base + g, so
// several groups share one node and one transport without a demultiplexing hop.
inline constexpr uint16_t raft_group_base = 1000;
inline constexpr uint16_t raft_groups_max = 1000;
constexpr uint16_t raft_group(uint32_t group) { return static_cast<uint16_t>(raft_group_base + group); }

}  // namespace cmesh::services
