// The transport seam: the only way services talk to other nodes, in real mode and in simulation.
//
//   service -> transport:  (send_atom, node_id to, uint16_t service, bytes envelope)
//                          (dial_atom, std::string address, node_id pinned /*zero = any*/)
//                          (introduce_atom, node_id peer, std::string address)
//                          (register_atom, uint16_t service, caf::actor service_actor)
//   transport -> services: (deliver_atom, node_id from, uint16_t service, bytes envelope)
//                          (peer_up_atom, node_id peer, std::string address)
//                          (peer_down_atom, node_id peer)
//                          (dial_failed_atom, std::string address, std::string reason)
//
// A service that registers is told peer_up for every peer connected at that moment, and a dial to
// an address whose node is already connected answers the asker with that peer's peer_up at once
// (the real transport; in the simulator services register before any connection exists), so a
// service started late still learns who is there.
// `deliver` goes to the actor registered for that service; peer_up/peer_down/dial_failed go to
// every registered service of the node. `from` is the authenticated peer (real mode: the handshake
// identity; simulation: the sending node), never a claim read from the bytes.
// Only CAF's small atom header is included here; keep caf/all.hpp out of widely included headers.
#pragma once

#include <caf/atom.hpp>

namespace cmesh {

using send_atom = caf::atom_constant<caf::atom("send")>;
using deliver_atom = caf::atom_constant<caf::atom("deliver")>;
using dial_atom = caf::atom_constant<caf::atom("dial")>;
using introduce_atom = caf::atom_constant<caf::atom("introduce")>;
using register_atom = caf::atom_constant<caf::atom("register")>;
using peer_up_atom = caf::atom_constant<caf::atom("peer_up")>;
using peer_down_atom = caf::atom_constant<caf::atom("peer_down")>;
using dial_failed_atom = caf::atom_constant<caf::atom("dial_fail")>;
// Node-internal control.
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
using status_atom = caf::atom_constant<caf::atom("status")>;

}  // namespace cmesh
