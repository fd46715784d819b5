// What an RMB command does when it reaches its twin: the twin's own state and its command
// handlers, as a pure machine (docs/rmb.md, "Twins"). One per hosted twin, owned by that twin's
// actor (actors/rmb/rmb_actor.cpp). No CAF, no clock, no I/O.
//
// Commands (data is UTF-8 text unless said otherwise):
//   echo          -> ok, the request's data unchanged
//   counter.add   data = counter name -> ok, the new value (decimal); state changes
//   counter.get   data = counter name -> ok, the value (decimal, 0 if never added)
//   whoami        -> ok, "<twin did> <source did>": who answered and who asked
//   anything else -> command_failed, "unknown command '<cmd>'"
// The state changes only through counter.add. The agent persists the new state in the same
// transaction as the reply's dedup record, so a command takes effect exactly once: a crash before
// that transaction loses both (the request is redelivered and runs again), a crash after it keeps
// both (a retry gets the cached reply and the handler does not run).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <msgpack.hpp>

#include "messages/error.hpp"
#include "messages/node_id.hpp"
#include "messages/rmb_messages.hpp"

namespace cmesh::rmb {

struct twin_state {
  std::map<std::string, int64_t> counters;
  MSGPACK_DEFINE(counters);
};

struct twin_result {
  status_code code = status_code::ok;  // ok or command_failed
  std::string reason;
  bytes data;
  bool state_changed = false;
};

class twin_machine {
public:
  static constexpr size_t counters_max = 4096;     // names one twin keeps: bounds its state
  static constexpr size_t counter_name_max = 128;  // a name, not a payload

  twin_machine(node_id self, twin_state state) : self_(self), state_(std::move(state)) {}

  // REQUIRES: request is a well-formed, verified request for this twin.
  twin_result handle(const twin_envelope& request);

  const twin_state& state() const { return state_; }
  bytes encode_state() const;
  static result<twin_state> decode_state(const bytes& data);

private:
  node_id self_;
  twin_state state_;
};

}  // namespace cmesh::rmb
