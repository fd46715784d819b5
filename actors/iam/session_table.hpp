// Who holds a live IAM session at this node: for services that authorize their own clients over
// the wire (the kv and events client protocols, docs/iam.md §13). The node's IAM actor tells them
// every session it grants (holder key, token id, scopes, lifetime) and every revocation; a client
// whose transport key is the holder of a live session with the needed scope is served, any other
// gets 401 (no session: run the handshake) or 403 (the scope is missing). Pure: no CAF, no clock
// of its own (deadlines are the caller's actor-clock microseconds).
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "actors/iam/token.hpp"
#include "messages/node_id.hpp"

namespace cmesh::iam {

class session_table {
public:
  enum class verdict { ok, no_session, insufficient_scope };

  // REQUIRES: entries_max > 0.
  explicit session_table(size_t entries_max = 65536) : entries_max_(entries_max) {}

  // A session for `holder` (its token `token_id`) granting `scopes`, live until deadline_us.
  // When the table is full, expired sessions go first, then the one that ends first.
  void add(const node_id& holder, const std::string& token_id, std::vector<std::string> scopes,
           int64_t deadline_us, int64_t now_us) {
    if (holder_of_.count(token_id)) return;
    if (holder_of_.size() >= entries_max_) prune(now_us);
    if (holder_of_.size() >= entries_max_) drop_first_ending();
    by_holder_[holder].push_back(session{token_id, std::move(scopes), deadline_us});
    holder_of_.emplace(token_id, holder);
  }

  // What the IAM actor tells its session watchers: a session with scope text `scope` that lives
  // `ttl_us` more. Returns false (and keeps nothing) if the scope does not parse.
  bool grant(const node_id& holder, const std::string& token_id, std::string_view scope, int64_t ttl_us,
             int64_t now_us) {
    auto scopes = parse_scope(scope);
    if (!scopes) return false;
    add(holder, token_id, std::move(*scopes), now_us + ttl_us, now_us);
    return true;
  }

  // Forgets the session of `token_id` (revoked). Returns whether there was one.
  bool remove(std::string_view token_id, node_id* holder_out = nullptr) {
    auto it = holder_of_.find(token_id);
    if (it == holder_of_.end()) return false;
    const node_id holder = it->second;
    holder_of_.erase(it);
    auto& grants = by_holder_[holder];
    grants.erase(std::remove_if(grants.begin(), grants.end(),
                                [&](const session& g) { return g.token_id == token_id; }),
                 grants.end());
    if (grants.empty()) by_holder_.erase(holder);
    if (holder_out) *holder_out = holder;
    return true;
  }

  // May `holder` do what needs `scope` now? ok if one of its live sessions covers it.
  verdict check(const node_id& holder, const std::string& scope, int64_t now_us) const {
    auto it = by_holder_.find(holder);
    if (it == by_holder_.end()) return verdict::no_session;
    bool live = false;
    for (const auto& g : it->second) {
      if (now_us >= g.deadline_us) continue;
      live = true;
      if (covers(g.scopes, {scope})) return verdict::ok;
    }
    return live ? verdict::insufficient_scope : verdict::no_session;
  }

  bool has_live(const node_id& holder, int64_t now_us) const {
    auto it = by_holder_.find(holder);
    if (it == by_holder_.end()) return false;
    for (const auto& g : it->second)
      if (now_us < g.deadline_us) return true;
    return false;
  }

  // Forgets expired sessions; returns the holders that have none left.
  std::vector<node_id> prune(int64_t now_us) {
    std::vector<node_id> emptied;
    for (auto it = by_holder_.begin(); it != by_holder_.end();) {
      auto& grants = it->second;
      for (auto g = grants.begin(); g != grants.end();) {
        if (now_us >= g->deadline_us) {
          holder_of_.erase(g->token_id);
          g = grants.erase(g);
        } else {
          ++g;
        }
      }
      if (grants.empty()) {
        emptied.push_back(it->first);
        it = by_holder_.erase(it);
      } else {
        ++it;
      }
    }
    return emptied;
  }

  size_t size() const { return holder_of_.size(); }

private:
  struct session {
    std::string token_id;
    std::vector<std::string> scopes;
    int64_t deadline_us = 0;
  };

  void drop_first_ending() {
    const std::string* first = nullptr;
    int64_t first_deadline = 0;
    for (const auto& [holder, grants] : by_holder_)
      for (const auto& g : grants)
        if (!first || g.deadline_us < first_deadline) {
          first = &g.token_id;
          first_deadline = g.deadline_us;
        }
    if (first) remove(std::string(*first));
  }

  size_t entries_max_;
  std::map<node_id, std::vector<session>> by_holder_;
  std::map<std::string, node_id, std::less<>> holder_of_;
};

}  // namespace cmesh::iam
