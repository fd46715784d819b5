// Wire messages of Raft (actors/raft, spec in docs/raft.md). Each is the payload of an envelope
// whose service id names the Raft group: services::raft_group(g). The sender is the envelope's
// source node, so no message repeats it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "messages/node_id.hpp"
#include "messages/services.hpp"

namespace cmesh::raft {

using term_t = uint64_t;
using index_t = uint64_t;

enum class entry_kind : uint8_t {
  normal = 0,  // a state machine command
  config = 1,  // a membership change: data is the msgpack of `membership`
  noop = 2,    // appended by a new leader so it can commit entries of earlier terms
};

struct entry {
  term_t term = 0;
  index_t index = 0;
  uint8_t kind = 0;  // entry_kind
  bytes data;
  MSGPACK_DEFINE(term, index, kind, data);
};

// A group's members, by node key (32 bytes each). Voters elect and count toward commitment;
// learners only receive the log.
struct membership {
  std::vector<bytes> voters;
  std::vector<bytes> learners;
  MSGPACK_DEFINE(voters, learners);
};

struct vote_request {
  static constexpr uint16_t type_id = 1;
  term_t term = 0;          // pre-vote: the term the candidate would use (current + 1)
  index_t last_index = 0;
  term_t last_term = 0;
  bool pre_vote = false;
  bool transfer = false;    // leadership transfer: ignore the leader lease
  MSGPACK_DEFINE(term, last_index, last_term, pre_vote, transfer);
};

struct vote_response {
  static constexpr uint16_t type_id = 2;
  term_t term = 0;          // pre-vote: echoes the requested term when granted
  bool granted = false;
  bool pre_vote = false;
  MSGPACK_DEFINE(term, granted, pre_vote);
};

struct append_request {
  static constexpr uint16_t type_id = 3;
  term_t term = 0;
  index_t prev_index = 0;
  term_t prev_term = 0;
  std::vector<entry> entries;
  index_t commit = 0;
  uint64_t read_context = 0;  // ReadIndex round this heartbeat belongs to (0 = none)
  MSGPACK_DEFINE(term, prev_index, prev_term, entries, commit, read_context);
};

struct append_response {
  static constexpr uint16_t type_id = 4;
  term_t term = 0;
  bool success = false;
  index_t match_index = 0;   // success: last index known to match the leader
  index_t hint_index = 0;    // failure: where the leader should retry from
  index_t last_index = 0;    // the follower's last log index
  uint64_t read_context = 0;
  MSGPACK_DEFINE(term, success, match_index, hint_index, last_index, read_context);
};

// A whole snapshot in one message (state is bounded so it fits one envelope; see docs/raft.md).
struct snapshot_request {
  static constexpr uint16_t type_id = 5;
  term_t term = 0;
  index_t index = 0;
  term_t snapshot_term = 0;
  membership config;
  bytes data;
  MSGPACK_DEFINE(term, index, snapshot_term, config, data);
};

struct snapshot_response {
  static constexpr uint16_t type_id = 6;
  term_t term = 0;
  index_t index = 0;  // the snapshot index now held
  MSGPACK_DEFINE(term, index);
};

// Leadership transfer: the receiver starts an election at once.
struct timeout_now {
  static constexpr uint16_t type_id = 7;
  term_t term = 0;
  MSGPACK_DEFINE(term);
};

}  // namespace cmesh::raft
