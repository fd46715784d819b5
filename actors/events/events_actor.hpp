// Actor shell of the events bus (events::machine, docs/events.md section 8): decodes envelopes,
// steps the machine, carries out its sends through the node's transport, hands deliveries to the
// local subscribers, and serves two kinds of local clients. Runs unchanged in real mode and in
// the simulator.
//
// Peers of the bus: the transport's peers (peer_up / peer_down), and any peer an interest
// message comes from (its peer_up may have gone out before this actor registered with the
// transport: real mode starts the node's connections and its services concurrently). A peer that
// speaks the client protocol (below) before it sent any interest table is a client, not a node:
// the machine stops sending it interest traffic. With a membership actor (swim), a member declared failed leaves the
// bus at once (peer_down) instead of after the interest lease, and rejoins if declared alive
// while its connection is up.
//
// Timers: one timer armed at the machine's next deadline (actor clock).
//
// In-process clients (other actors, the simulator), status codes as in client_reply:
//   (events_sub_atom, std::string pattern, std::string queue_group, caf::actor subscriber)
//       -> (uint16_t status, std::string reason, uint64_t sid)
//   (events_unsub_atom, uint64_t sid) -> (uint16_t status, std::string reason)
//   (events_pub_atom, std::string subject, std::string reply_to, bytes payload)
//       -> (uint16_t status, std::string reason, bool interest)
//   (events_pub_packed_atom, std::string subjects, std::vector<uint32_t> subject_ends, bytes payloads,
//    std::vector<uint32_t> payload_ends)
//       no answer: publishes each (subject i, payload i) in order, no reply subject; a refused one
//       is logged (`publish_refused`) and skipped. For producers of many small messages at once
//       (the router's audit trail), one mailbox message instead of two per publish.
//   (events_request_atom, std::string subject, bytes payload, uint32_t timeout_ms)
//       -> (uint16_t status, std::string reason, bytes reply_payload)
//          status 200 reply, 404 no responders, 408 timeout, 400/413/503 refused
//   to the subscriber: (events_msg_atom, uint64_t sid, std::string subject, std::string reply_to,
//                       bytes payload)
//                      (events_slow_atom, uint64_t sid, uint64_t dropped, uint64_t dropped_total)
//   An in-process delivery is acknowledged to the machine (delivered()) as soon as it is in the
//   subscriber's mailbox. The subscriber is monitored: its subscriptions end when it terminates.
//   (status_atom) -> std::string, (shutdown_atom) -> ok.
//
// Remote clients (cmesh events): the client_* messages of messages/events_messages.hpp from any
// authenticated peer. Their deliveries count against the subscription's pending bounds until the
// client acknowledges them (client_ack); drops past the bounds are reported to the client
// (client_notice "slow_consumer") and to the event log. When the transport reports the client
// down, its subscriptions end and its requests are forgotten.
#pragma once

#include <cstdint>

#include <caf/atom.hpp>

#include "actors/events/events_machine.hpp"

namespace caf {
class actor;
class actor_system;
}  // namespace caf

namespace cmesh {
class event_sink;
}

namespace cmesh::events {

using events_sub_atom = caf::atom_constant<caf::atom("ev_sub")>;
using events_unsub_atom = caf::atom_constant<caf::atom("ev_unsub")>;
using events_pub_atom = caf::atom_constant<caf::atom("ev_pub")>;
// (events_pub_packed_atom, std::string subjects, std::vector<uint32_t> subject_ends, bytes payloads,
//  std::vector<uint32_t> payload_ends): many publishes in four buffers (message i is
// subjects[subject_ends[i-1], subject_ends[i]) and the same for its payload), so a burst costs four
// allocations, not two per message. No reply; refusals are logged.
using events_pub_packed_atom = caf::atom_constant<caf::atom("ev_pubp")>;
using events_request_atom = caf::atom_constant<caf::atom("ev_req")>;
using events_msg_atom = caf::atom_constant<caf::atom("ev_msg")>;
using events_slow_atom = caf::atom_constant<caf::atom("ev_slow")>;

// Told to the simulator's checkers and tests (never in real mode).
class observer {
public:
  virtual ~observer() = default;
  // Node `self` sent an events envelope of `type` (interest_delta::type_id, ...) to `to`.
  virtual void on_sent(const node_id& self, const node_id& to, uint16_t type) = 0;
};

struct actor_context {
  node_id self;
  config bus;                  // validated by the caller (events::validate)
  uint64_t rng_seed = 0;       // must differ per incarnation of the node
  event_sink* events = nullptr;
  observer* watcher = nullptr;
  // Wire clients need a live IAM session of this node (told by the IAM actor through
  // iam_watch_sessions; docs/iam.md §13): subscribe needs events.read, publish and request
  // events.publish. Off: any authenticated peer may (the simulator's default).
  bool require_session = false;
};

// `membership` may be an invalid handle (no swim): peers then follow the transport only.
caf::actor spawn_events_actor(caf::actor_system& system, const caf::actor& transport,
                              const caf::actor& membership, actor_context context);

}  // namespace cmesh::events
