// The contacts a gossiping service uses (cached gossip search, reputation reports): the live
// members of the node's imAlive membership when the node runs one (the swim actor tells the
// service of joins and failures), else the transport's connected peers. Handed to a machine in a
// per-node pseudo-random but stable order (a keyed hash of the member id), so with more members
// than a machine's contacts_max every agent keeps a different sample.
//
// Pure: no CAF, no clock. One owner (the service actor); not thread-safe.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "messages/node_id.hpp"
#include "runtime/core/rng.hpp"

namespace cmesh {

class member_view {
public:
  member_view(node_id self, bool membership_driven)
      : self_(self), membership_driven_(membership_driven) {}

  // Each returns true when the candidate contacts changed.
  // The membership said `member` is alive at `address`, or (alive = false) failed or left.
  bool on_member(const node_id& member, const std::string& address, bool alive) {
    if (member == self_) return false;
    if (!alive) return members_.erase(member) > 0;
    auto& known = members_[member];
    if (known == address) return false;
    known = address;
    return true;
  }
  // Transport notifications: used only without a membership.
  bool on_peer_up(const node_id& peer, const std::string& address) {
    if (membership_driven_ || peer == self_ || address.empty()) return false;
    auto& known = members_[peer];
    if (known == address) return false;
    known = address;
    return true;
  }
  bool on_peer_down(const node_id& peer) {
    return !membership_driven_ && members_.erase(peer) > 0;
  }

  // The candidates ordered by mix_seed(seed, first 8 key bytes), ties by id. `Contact` is
  // constructible as Contact{node_id, std::string}.
  template <class Contact>
  std::vector<Contact> ordered(uint64_t seed) const {
    std::vector<std::pair<uint64_t, const std::pair<const node_id, std::string>*>> ranked;
    ranked.reserve(members_.size());
    for (const auto& entry : members_) {
      uint64_t prefix = 0;
      for (int i = 0; i < 8; ++i) prefix = (prefix << 8) | entry.first.key[i];
      ranked.push_back({mix_seed(seed, prefix), &entry});
    }
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      return a.first < b.first || (a.first == b.first && a.second->first < b.second->first);
    });
    std::vector<Contact> contacts;
    contacts.reserve(ranked.size());
    for (const auto& [rank, entry] : ranked) contacts.push_back(Contact{entry->first, entry->second});
    return contacts;
  }

  bool membership_driven() const { return membership_driven_; }
  size_t size() const { return members_.size(); }

private:
  node_id self_;
  bool membership_driven_;
  std::map<node_id, std::string> members_;
};

}  // namespace cmesh
