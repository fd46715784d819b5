// A window into every Raft replica for the simulation's checkers (election safety, log matching,
// leader completeness, state machine safety). Called synchronously by the replica actor after it
// persisted a ready and after it applied each committed entry. Real mode passes none.
#pragma once

#include <cstdint>

#include "actors/raft/raft_machine.hpp"

namespace cmesh::raft {

class observer {
public:
  virtual ~observer() = default;
  // After `r` was made durable (before its messages were sent and its entries applied).
  virtual void on_persisted(const node_id& node, uint32_t group, const ready& r,
                            const machine& m) = 0;
  // After the state machine applied `e`; `state_hash` digests the state machine afterwards.
  virtual void on_applied(const node_id& node, uint32_t group, const entry& e,
                          uint64_t state_hash) = 0;
  // The replica was (re)started and restored its state machine up to `applied`.
  virtual void on_restored(const node_id& node, uint32_t group, index_t applied,
                           uint64_t state_hash) = 0;
};

}  // namespace cmesh::raft
