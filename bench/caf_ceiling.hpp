#pragma once
#include <cstdint>
namespace cmesh::bench {
// Messages per wall second; see caf_ceiling.cpp.
double caf_ceiling_messages_per_second(uint32_t actors, uint32_t in_flight, uint64_t messages, uint64_t seed);
}  // namespace cmesh::bench
