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

}  // namespace cmesh::events
