// Running 64-bit hash over every event a simulation delivers. Not cryptographic: it exists to
// show that two runs of one seed did exactly the same thing, and to be cheap at millions of
// events per second.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace cmesh::sim {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

inline uint64_t hash_bytes(const void* data, size_t size, uint64_t seed = 0) {
  auto p = static_cast<const uint8_t*>(data);
  uint64_t h = seed ^ (size * 0x9e3779b97f4a7c15ULL);
  while (size >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    h = mix64(h ^ word) + 0x9e3779b97f4a7c15ULL;
    p += 8;
    size -= 8;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p, size);
  return mix64(h ^ tail ^ (static_cast<uint64_t>(size) << 56));
}

class trace_hash {
public:
  void add(uint64_t value) { state_ = mix64(state_ ^ value) * 0x100000001b3ULL + (++count_); }
  uint64_t value() const { return mix64(state_ ^ count_); }
  uint64_t events() const { return count_; }

private:
  uint64_t state_ = 0xcbf29ce484222325ULL;
  uint64_t count_ = 0;
};

}  // namespace cmesh::sim
