// Test helpers for driving one service actor by hand under CAF's test_coordinator: a fake
// transport that records what the actor sends through the seam, an event sink that records what
// it logs, and envelope encoding. Shared by the actor-shell tests (events, IAM, reputation).
#pragma once

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include "messages/codec.hpp"
#include "messages/seam.hpp"
#include "runtime/core/event_sink.hpp"

namespace cmesh::testing {

struct sent_message {
  node_id to;
  uint16_t service = 0;
  bytes data;
};

// Records every (send_atom, to, service, bytes); accepts register and introduce.
inline caf::behavior fake_transport(caf::event_based_actor*, std::shared_ptr<std::vector<sent_message>> log) {
  return {
    [=](send_atom, const node_id& to, uint16_t service, const bytes& data) { log->push_back({to, service, data}); },
    [=](register_atom, uint16_t, const caf::actor&) {},
    [=](introduce_atom, const node_id&, const std::string&) {},
  };
}

struct recording_sink : event_sink {
  std::vector<std::pair<std::string, std::string>> events;  // kind, detail
  void record(const node_event& e) override { events.emplace_back(std::string(e.kind), std::string(e.detail)); }
  // Events of `kind` whose detail contains `detail_part`.
  size_t count(const std::string& kind, const std::string& detail_part = "") const {
    size_t n = 0;
    for (const auto& [k, d] : events) n += k == kind && d.find(detail_part) != std::string::npos ? 1 : 0;
    return n;
  }
};

template <class T>
bytes encode(const node_id& source, uint64_t correlation, const T& message) {
  auto encoded = encode_message(source, correlation, message);
  REQUIRE(encoded.ok());
  return std::move(*encoded);
}

// Deterministic scheduler (test_coordinator), CAF's logging off.
inline caf::actor_system_config& testing_config(caf::actor_system_config& c) {
  c.set("scheduler.policy", caf::atom("testing"));
  c.set("logger.file-verbosity", caf::atom("quiet"));
  c.set("logger.console-verbosity", caf::atom("quiet"));
  return c;
}

}  // namespace cmesh::testing
