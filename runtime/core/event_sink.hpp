// Where actors report what happened (peer added, pong, malformed input...). Handed in by the
// runner: real mode prints log lines, the simulator counts and optionally prints them.
// Called synchronously from actor code, so implementations must be cheap and must not block
// for long. Thread safety: real-mode implementations must be safe to call from any thread.
#pragma once

#include <cstdint>
#include <string_view>

#include "messages/node_id.hpp"

namespace cmesh {

struct node_event {
  const node_id& node;       // the node reporting
  std::string_view service;  // "peer", "transport", ...
  std::string_view kind;     // "peer_added", "pong", "malformed", ...
  const node_id& peer;       // the other node concerned, or all-zero
  std::string_view detail;
  int64_t value;
};

class event_sink {
public:
  virtual ~event_sink() = default;
  virtual void record(const node_event& event) = 0;
};

}  // namespace cmesh
