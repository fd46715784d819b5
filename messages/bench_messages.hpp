// Wire message of the benchmark services (actors/bench): a sequence number and opaque padding.
#pragma once

#include <cstdint>

#include <msgpack.hpp>

#include "messages/node_id.hpp"
#include "messages/services.hpp"

namespace cmesh::bench {

struct probe {
  static constexpr uint16_t service_id = services::bench;
  static constexpr uint16_t type_id = 1;
  uint64_t sequence = 0;
  uint32_t hops = 0;
  bytes padding;
  MSGPACK_DEFINE(sequence, hops, padding);
};

}  // namespace cmesh::bench
