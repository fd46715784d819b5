// Real-mode event sink: one line per event on stdout, safe from any thread.
//   2026-11-21T10:00:00.123Z z6MkqX4v.. peer pong peer=did:key:z6Mk... rtt=1ms
#pragma once

#include <mutex>

#include "runtime/core/event_sink.hpp"

namespace cmesh::cli {

class log_sink : public event_sink {
public:
  explicit log_sink(bool verbose) : verbose_(verbose) {}
  void record(const node_event& event) override;
  // A free-form line with the same timestamp prefix.
  void line(const std::string& text);

private:
  std::mutex mutex_;
  bool verbose_;
};

}  // namespace cmesh::cli
