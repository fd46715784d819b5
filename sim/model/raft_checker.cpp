#include "sim/model/raft_checker.hpp"

#include "sim/model/trace_hash.hpp"

namespace cmesh::sim {

uint64_t digest_entry(const raft::entry& e) {
  return hash_bytes(e.data.data(), e.data.size(), (uint64_t{e.kind} << 56) ^ e.term);
}

void raft_checker::violation(std::string what) {
  ++stats_.violations;
  if (stats_.violations <= 20) report_(std::move(what));
}

void raft_checker::on_persisted(const node_id& node, uint32_t group, const raft::ready& r,
                                const raft::machine& m) {
  auto& g = groups_[group];
  for (const auto& e : r.append) {
    ++stats_.entries_checked;
    uint64_t key = mix64(e.index * 0x9e3779b97f4a7c15ULL ^ e.term);
    uint64_t digest = digest_entry(e);
    auto [it, fresh] = g.entry_digest.emplace(key, digest);
    if (!fresh && it->second != digest)
      violation("log matching: " + name_(node) + " holds a different entry at index " +
                std::to_string(e.index) + " term " + std::to_string(e.term));
    auto c = g.committed.find(e.index);
    if (c != g.committed.end() && c->second.term != e.term && m.commit_index() >= e.index)
      violation("state machine safety: " + name_(node) + " committed index " +
                std::to_string(e.index) + " with term " + std::to_string(e.term) +
                " but term " + std::to_string(c->second.term) + " was committed there");
  }
  for (const auto& ev : r.events) {
    if (ev.kind.rfind("safety_violation", 0) == 0)
      violation(name_(node) + ": " + ev.kind + " at index " + std::to_string(ev.index));
    if (ev.kind != "became_leader") continue;
    ++stats_.leaders_elected;
    if (ev.term > stats_.max_term) stats_.max_term = ev.term;
    auto [it, fresh] = g.leaders.emplace(ev.term, node);
    if (!fresh && it->second != node)
      violation("election safety: " + name_(it->second) + " and " + name_(node) +
                " were both leader in term " + std::to_string(ev.term));
    // Leader completeness: every committed entry is in the new leader's log (or its snapshot).
    for (auto c = g.committed.upper_bound(m.snapshot().index); c != g.committed.end(); ++c) {
      auto t = m.term_at(c->first);
      if (!t || *t != c->second.term) {
        violation("leader completeness: " + name_(node) + " became leader of term " +
                  std::to_string(ev.term) + " without committed index " +
                  std::to_string(c->first) + " (term " + std::to_string(c->second.term) + ")");
        break;
      }
    }
  }
}

void raft_checker::on_applied(const node_id& node, uint32_t group, const raft::entry& e,
                              uint64_t state_hash) {
  auto& g = groups_[group];
  ++stats_.applies_checked;
  auto& last = g.applied[node];
  if (e.index != last + 1)
    violation("apply order: " + name_(node) + " applied index " + std::to_string(e.index) +
              " after " + std::to_string(last));
  last = e.index;
  uint64_t digest = digest_entry(e);
  auto [it, fresh] = g.committed.emplace(e.index, committed_entry{e.term, digest, state_hash});
  if (fresh) {
    if (e.index > stats_.committed_max) stats_.committed_max = e.index;
    return;
  }
  if (it->second.term != e.term || it->second.digest != digest)
    violation("state machine safety: " + name_(node) + " applied a different entry at index " +
              std::to_string(e.index) + " (term " + std::to_string(e.term) + " vs " +
              std::to_string(it->second.term) + ")");
  else if (it->second.state_hash != state_hash)
    violation("state divergence: " + name_(node) + " has a different state after index " +
              std::to_string(e.index));
}

void raft_checker::on_restored(const node_id& node, uint32_t group, raft::index_t applied,
                               uint64_t state_hash) {
  auto& g = groups_[group];
  g.applied[node] = applied;
  if (applied == 0) return;
  auto it = g.committed.find(applied);
  if (it != g.committed.end() && it->second.state_hash != state_hash)
    violation("state divergence: " + name_(node) + " restored a snapshot at index " +
              std::to_string(applied) + " whose state differs from what was applied there");
}

}  // namespace cmesh::sim
