// Real dissemination through imAlive rumors across node processes on loopback (bench/gossip_real.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace cmesh::bench {

struct real_options {
  int nodes = 5;
  int seconds = 3;                   // length of each phase
  int rate = 100;                    // latency phase: rumors per second over all nodes
  int throughput_rate = 10000;       // throughput phase: rumors offered per second
  int64_t gossip_interval_us = 200'000;
  uint32_t eager_fanout = 2;         // swim::config::eager_fanout of the nodes
  int64_t warmup_ms = 3000;          // membership forms before the first publish
};

struct real_dissemination {
  double disseminated_per_s = 0;     // throughput phase: rumors that reached every other node
  uint64_t throughput_sent = 0, throughput_incomplete = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;  // latency phase: time to full coverage
  uint64_t sent = 0, incomplete = 0;
};

std::optional<real_dissemination> run_real_dissemination(const real_options& options,
                                                         std::string& error);

}  // namespace cmesh::bench
