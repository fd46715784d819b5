// Raft safety checkers, run as the simulation goes (Raft paper, Figure 3):
//   election safety      at most one leader per term;
//   log matching         two logs holding an entry with the same index and term hold the same
//                        entry (checked on every entry any replica persists);
//   leader completeness  a new leader's log holds every entry committed before its election;
//   state machine safety no two replicas apply different entries at one index, and replicas that
//                        applied the same prefix have the same state (state hash per index);
// plus each replica applies indices in order without gaps, and any "safety_violation" event a
// machine reports. Pure (no CAF): the replica actors call it through raft::observer.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/raft/raft_observer.hpp"

namespace cmesh::sim {

class raft_checker : public raft::observer {
public:
  // `name` turns a node key into something a human reads in a violation ("n3").
  // `report` receives each violation once.
  raft_checker(std::function<std::string(const node_id&)> name,
               std::function<void(std::string)> report)
      : name_(std::move(name)), report_(std::move(report)) {}

  void on_persisted(const node_id& node, uint32_t group, const raft::ready& r,
                    const raft::machine& m) override;
  void on_applied(const node_id& node, uint32_t group, const raft::entry& e,
                  uint64_t state_hash) override;
  void on_restored(const node_id& node, uint32_t group, raft::index_t applied,
                   uint64_t state_hash) override;

  struct stats {
    uint64_t leaders_elected = 0;
    uint64_t max_term = 0;
    uint64_t entries_checked = 0;
    uint64_t applies_checked = 0;
    uint64_t committed_max = 0;
    uint64_t violations = 0;
  };
  const stats& statistics() const { return stats_; }

private:
  struct committed_entry {
    raft::term_t term;
    uint64_t digest;
    uint64_t state_hash;
  };
  struct group_state {
    std::map<raft::term_t, node_id> leaders;
    std::unordered_map<uint64_t, uint64_t> entry_digest;  // hash(index, term) -> data digest
    std::map<raft::index_t, committed_entry> committed;
    std::map<node_id, raft::index_t> applied;  // per replica: last applied index
  };
  void violation(std::string what);

  std::function<std::string(const node_id&)> name_;
  std::function<void(std::string)> report_;
  std::map<uint32_t, group_state> groups_;
  stats stats_;
};

uint64_t digest_entry(const raft::entry& e);

}  // namespace cmesh::sim
