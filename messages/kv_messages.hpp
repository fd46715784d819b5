// Wire messages of the replicated key/value service and its registrar (actors/kv, spec in
// docs/raft.md ("Key/value service")). Each is the payload of an envelope with service = services::kv and
// type = T::type_id. The state machine that gives them meaning is actors/kv/kv_machine.hpp.
//
// Status codes follow HTTP meaning:
//   200 ok                 201 name created
//   400 bad request        (empty key, bad name, reserved "name/" key, stale sequence, ...)
//   403 not the owner      404 not found (get or resolve of an absent key or name)
//   409 conflict           (cas mismatch: found/value carry the current value; name taken)
//   413 too large          503 no leader (filled in by the replica, never by the state machine)
#pragma once

#include <cstdint>
#include <string>

#include <msgpack.hpp>

#include "messages/node_id.hpp"
#include "messages/services.hpp"

namespace cmesh::kv {

enum class op : uint8_t {
  get = 1,            // key                          -> 200 found/value, 404
  put = 2,            // key, value                   -> 200 (found = key existed before)
  del = 3,            // key                          -> 200 (found = key existed before)
  cas = 4,            // key, value, expect_present, expected -> 200, 409 with the current value
  name_register = 5,  // key = name, value = target   -> 201, 409 naming the owner
  name_resolve = 6,   // key = name                   -> 200 value = target, 404
  name_transfer = 7,  // key = name, value = new owner's 32-byte key -> 200, 403, 404
  name_release = 8,   // key = name                   -> 200, 403, 404
};

// A client request. Also the replicated command (see `command`).
struct request {
  static constexpr uint16_t service_id = services::kv;
  static constexpr uint16_t type_id = 1;
  uint8_t operation = 0;        // op
  std::string key;
  std::string value;
  bool expect_present = false;  // cas: true = key must hold `expected`; false = key must be absent
  std::string expected;
  // Exactly-once for writes: (client_id, sequence), sequence increasing per client.
  // client_id 0 or sequence 0 = no deduplication.
  uint64_t client_id = 0;
  uint64_t sequence = 0;
  bool forwarded = false;       // set by a follower forwarding to the leader (forward once)
  MSGPACK_DEFINE(operation, key, value, expect_present, expected, client_id, sequence, forwarded);
};

// CAF 0.17 inspection, so requests travel typed between actors of one process (kv_batch_atom);
// found by ADL, needs no CAF header here.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, request& x) {
  return f(x.operation, x.key, x.value, x.expect_present, x.expected, x.client_id, x.sequence, x.forwarded);
}

struct response {
  static constexpr uint16_t service_id = services::kv;
  static constexpr uint16_t type_id = 2;
  uint16_t status = 0;
  std::string reason;
  bool found = false;
  std::string value;
  bytes leader;                 // 503: the leader's 32-byte node key when known, else empty
  std::string leader_address;
  uint64_t index = 0;           // Raft index at which a write applied / a read was served
  MSGPACK_DEFINE(status, reason, found, value, leader, leader_address, index);

  friend bool operator==(const response&, const response&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, response& x) {
  return f(x.status, x.reason, x.found, x.value, x.leader, x.leader_address, x.index);
}

// The replicated command: the bytes of a Raft entry are the msgpack of `command`. `caller` is the
// authenticated node key (32 bytes) of the client, taken by the node from the transport, never
// from a claim of the client.
struct command {
  request req;
  bytes caller;
  MSGPACK_DEFINE(req, caller);
};

// A follower forwarding a client's request to the leader it knows (once: req.forwarded is set),
// with the caller it authenticated. The leader answers with a `response` of the same correlation.
struct forward {
  static constexpr uint16_t service_id = services::kv;
  static constexpr uint16_t type_id = 3;
  command cmd;
  MSGPACK_DEFINE(cmd);
};

// The value stored for a registrar name under the key "name/" + lowercase(name).
// A plain get of that key returns these msgpack bytes.
struct name_record {
  bytes owner;         // 32-byte node key of the owner
  std::string target;  // the FQMN the name resolves to: non-empty, at most 1024 bytes
  MSGPACK_DEFINE(owner, target);
};

}  // namespace cmesh::kv
