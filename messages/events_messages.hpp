// Wire messages of the events bus between nodes (actors/events, spec in docs/events.md).
// Each is the payload of an envelope with service = events_service and type = T::type_id.
// Subjects, patterns and queue group names travel as strings and are validated by the machine,
// which returns an error value for anything malformed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "messages/node_id.hpp"
#include "messages/services.hpp"

namespace cmesh::events {

inline constexpr uint16_t events_service = services::events;

// One line of a node's interest table: "I have `count` local subscriptions on `pattern` in
// `queue_group`" (empty group = plain subscribers; their count is always advertised as 1, since
// only presence matters). In a delta, count 0 means the line is gone.
struct interest_entry {
  std::string pattern;
  std::string queue_group;
  uint32_t count = 0;
  MSGPACK_DEFINE(pattern, queue_group, count);
  friend bool operator==(const interest_entry&, const interest_entry&) = default;
};

// Changes to the sender's interest table, moving it from version `version - 1` to `version`
// within incarnation `epoch`. Sent to every peer that is up whenever a local subscribe or
// unsubscribe changes a line. Counts are absolute, so a duplicate is harmless.
struct interest_delta {
  static constexpr uint16_t service_id = events_service;
  static constexpr uint16_t type_id = 1;
  uint64_t epoch = 0;    // random per incarnation of the sender, never 0
  uint64_t version = 0;  // >= 1
  std::vector<interest_entry> changes;
  MSGPACK_DEFINE(epoch, version, changes);
};

// One part of the sender's whole interest table at (epoch, version); `parts` parts make the table
// (an empty table is one part with no entries). Sent on peer up and in answer to a sync request.
// The receiver replaces what it knew of the sender once every part of one (epoch, version) came.
struct interest_sync {
  static constexpr uint16_t service_id = events_service;
  static constexpr uint16_t type_id = 2;
  uint64_t epoch = 0;
  uint64_t version = 0;
  uint32_t part = 0;   // 0 .. parts - 1
  uint32_t parts = 1;
  std::vector<interest_entry> entries;  // count >= 1 each
  MSGPACK_DEFINE(epoch, version, part, parts, entries);
};

// "Send me your whole interest table": the receiver noticed a gap, an unknown epoch or a digest
// ahead of what it knows. The fields say what it has (for logs; the answer is always a full sync).
struct interest_sync_request {
  static constexpr uint16_t service_id = events_service;
  static constexpr uint16_t type_id = 3;
  uint64_t known_epoch = 0;
  uint64_t known_version = 0;
  MSGPACK_DEFINE(known_epoch, known_version);
};

// Periodic "my table is at (epoch, version)" to every peer that is up: anti-entropy for lost or
// reordered deltas, and the lease that keeps the sender's interest alive at the receiver.
struct interest_digest {
  static constexpr uint16_t service_id = events_service;
  static constexpr uint16_t type_id = 4;
  uint64_t epoch = 0;
  uint64_t version = 0;
  MSGPACK_DEFINE(epoch, version);
};

// A message published on the sending node, forwarded once to a node with matching interest.
// The receiver delivers it to its matching plain subscribers, and to one matching member of each
// group in `queue_groups` (the groups the sender chose this node for); it never forwards it.
struct routed_message {
  static constexpr uint16_t service_id = events_service;
  static constexpr uint16_t type_id = 5;
  std::string subject;
  std::string reply_to;  // empty = none
  bytes payload;
  std::vector<std::string> queue_groups;  // ascending, no duplicates
  MSGPACK_DEFINE(subject, reply_to, payload, queue_groups);
};


// ---- clients of a node's bus over the wire (cmesh events, docs/events.md section 8) -------------
//
// A client is any authenticated peer of the node (the CLI connects with its own identity through
// the transport). Where the node requires sessions (cmesh node does), the client's transport key
// must hold a live IAM session of this node: subscribe needs scope events.read, publish and
// request events.publish; otherwise 401 or 403 (docs/iam.md §13). Requests carry a correlation in their envelope; the node answers each with one
// client_reply with the same correlation. Subscriptions are the connection's: when the transport
// reports the client down, the node removes them. Type ids 10-17 (1-9 are node-to-node).

// Status codes of client_reply (HTTP-like, like the other client protocols).
inline constexpr uint16_t client_ok = 200;
inline constexpr uint16_t client_bad_request = 400;     // invalid subject, pattern, group, limits
inline constexpr uint16_t client_unauthorized = 401;    // no live IAM session at this node
inline constexpr uint16_t client_forbidden = 403;       // the session lacks the scope
inline constexpr uint16_t client_no_responders = 404;   // request: nobody subscribed anywhere
inline constexpr uint16_t client_timeout = 408;         // request: no reply before the deadline
inline constexpr uint16_t client_too_large = 413;       // payload over the node's bound
inline constexpr uint16_t client_unavailable = 503;     // a node-wide bound is reached

// Subscribe this connection to `pattern` (in `queue_group` if not empty). Answered with a
// client_reply carrying the new sid; messages then arrive as client_message. `max_messages` > 0:
// the node unsubscribes after that many deliveries (NATS UNSUB <sid> <max>). Pending bounds:
// deliveries not yet acknowledged with client_ack (0 = the node's default).
struct client_subscribe {
  static constexpr uint16_t service_id = events_service;
  static constexpr uint16_t type_id = 10;
  std::string pattern;
  std::string queue_group;
  uint32_t max_messages = 0;
  uint32_t pending_messages = 0;
  uint64_t pending_bytes = 0;
  MSGPACK_DEFINE(pattern, queue_group, max_messages, pending_messages, pending_bytes);
};

// Ends subscription `sid` of this connection. Answered with a client_reply (404 if unknown).
struct client_unsubscribe {
  static constexpr uint16_t service_id = events_service;
  static constexpr uint16_t type_id = 11;
  uint64_t sid = 0;
  MSGPACK_DEFINE(sid);
};

// Publishes on the node. Answered with a client_reply whose `interest` says whether any
// subscription (local or a peer's, as the node knows it) matched. Sent with correlation 0, it is
// not acknowledged when it succeeds (fire-and-forget, as NATS's PUB); a refusal is still answered,
// with correlation 0.
struct client_publish {
  static constexpr uint16_t service_id = events_service;
  static constexpr uint16_t type_id = 12;
  std::string subject;
  std::string reply_to;  // empty = none
  bytes payload;
  MSGPACK_DEFINE(subject, reply_to, payload);
};

// Request/reply through the node's inbox. Answered with a client_reply: 200 with the reply's
// payload, 404 no responders, 408 timeout (timeout_ms in (0, 60,000]).
struct client_request {
  static constexpr uint16_t service_id = events_service;
  static constexpr uint16_t type_id = 13;
  std::string subject;
  bytes payload;
  uint32_t timeout_ms = 0;
  MSGPACK_DEFINE(subject, payload, timeout_ms);
};

// A message for subscription `sid` of this connection, pushed by the node (correlation 0). The
// client acknowledges it with client_ack once consumed, or the node stops delivering (slow
// consumer) when the subscription's pending bounds are reached.
struct client_message {
  static constexpr uint16_t service_id = events_service;
  static constexpr uint16_t type_id = 14;
  uint64_t sid = 0;
  std::string subject;
  std::string reply_to;
  bytes payload;
  MSGPACK_DEFINE(sid, subject, reply_to, payload);
};

// The answer to client_subscribe, client_unsubscribe, client_publish and client_request (same
// correlation), and to any malformed client message (status 400, correlation of the envelope).
struct client_reply {
  static constexpr uint16_t service_id = events_service;
  static constexpr uint16_t type_id = 15;
  uint16_t status = client_ok;
  std::string reason;     // why, when status != 200
  uint64_t sid = 0;       // subscribe: the new subscription
  bool interest = false;  // publish: some subscription matched
  bytes payload;          // request: the reply's payload
  std::string reply_to;   // request: the reply's own reply subject (rarely set)
  MSGPACK_DEFINE(status, reason, sid, interest, payload, reply_to);
};

// "I consumed `messages` deliveries (`payload_bytes` payload bytes) of subscription `sid`": frees room in
// its pending bounds. Not answered.
struct client_ack {
  static constexpr uint16_t service_id = events_service;
  static constexpr uint16_t type_id = 16;
  uint64_t sid = 0;
  uint32_t messages = 0;
  uint64_t payload_bytes = 0;
  MSGPACK_DEFINE(sid, messages, payload_bytes);
};

// Something the client must know about subscription `sid`, pushed by the node (correlation 0):
//   "slow_consumer"  `dropped` deliveries were dropped since the last notice (`dropped_total` in
//                    all): the client did not acknowledge fast enough
//   "ended"          the node ended the subscription (max_messages reached)
//   "session_ended"  the node ended it: the client's IAM session was revoked
struct client_notice {
  static constexpr uint16_t service_id = events_service;
  static constexpr uint16_t type_id = 17;
  uint64_t sid = 0;
  std::string kind;
  uint64_t dropped = 0;
  uint64_t dropped_total = 0;
  uint32_t pending_messages = 0;
  uint64_t pending_bytes = 0;
  MSGPACK_DEFINE(sid, kind, dropped, dropped_total, pending_messages, pending_bytes);
};

}  // namespace cmesh::events
