// Open-file budget. Each simulated node's LMDB environment holds one descriptor, so large
// simulations need more than the usual 1024.
#pragma once

#include <cstdint>

#include "messages/error.hpp"

namespace cmesh {

// Raises the soft RLIMIT_NOFILE to at least `needed` (raising the hard limit too when the process
// may). Returns the resulting soft limit, or an error saying how to fix it.
result<uint64_t> ensure_descriptor_limit(uint64_t needed);

// Descriptors a simulation with `nodes` stored nodes needs (one per LMDB environment + slack).
inline uint64_t sim_descriptors_needed(uint32_t nodes) { return uint64_t{nodes} + 512; }

}  // namespace cmesh
