// Mesh time in real mode. Services read time from the actor clock (CAF's steady clock, which
// starts at an arbitrary point per machine); protocols whose times cross nodes (RMB envelope
// creation and expiry) need a shared epoch, so the node runner hands each such service the
// offset from the actor clock to Unix time, read once at start. Simulation hands in 0 (virtual
// time is the mesh epoch there). Only runtime/ may call this: it reads the wall clock.
#pragma once

#include <chrono>
#include <cstdint>

namespace cmesh {

inline int64_t mesh_epoch_offset_us() {
  using namespace std::chrono;
  auto unix_us = duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
  auto steady_us = duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
  return unix_us - steady_us;
}

}  // namespace cmesh
