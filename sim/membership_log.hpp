// Membership changes as each simulated agent sees them, collected from the swim actors' observer
// (sim::agent_options::watcher). Shared by the simulation tests (tests/sim/test_agents_sim.cpp)
// and `cmesh bench membership`.
//
// What it keeps: who each agent currently holds as failed (declared failed and not back since),
// every failure declaration (observer -> member), when each agent first received a rumor, counts
// of suspicion events, refutations and failure declarations, and, for members being watched (a
// crash the caller caused at a known time), the first suspicion and the first failure declaration
// about each by any agent at or after that time.
//
// Single-threaded (the simulator calls it from its one driver thread); not for real mode.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "actors/swim/swim_actor.hpp"

namespace cmesh::sim {

struct membership_log : swim::observer {
  std::map<node_id, std::set<node_id>> failed_now;        // observer -> members it holds failed
  std::map<node_id, std::vector<node_id>> declarations;   // observer -> every member_failed
  struct declaration {
    node_id observer, member;
    int64_t at_us;
  };
  std::vector<declaration> timeline;                      // every member_failed, in time order
  std::map<node_id, int64_t> first_rumor_us;
  uint64_t suspicions = 0;    // member_suspected events, summed over observers
  uint64_t refutations = 0;   // self_refuted events
  uint64_t failures = 0;      // member_failed events, summed over observers

  // Detection: set watch_from_us[m] = t before the run (m crashes at t); the run fills the first
  // member_suspected and member_failed about m at any agent at or after t.
  std::map<node_id, int64_t> watch_from_us;
  std::map<node_id, int64_t> first_suspected_us;
  std::map<node_id, int64_t> first_failed_us;

  void on_event(const node_id& self, const swim::event& e, int64_t now_us) override {
    switch (e.kind) {
      case swim::event_kind::member_failed:
        ++failures;
        failed_now[self].insert(e.member);
        declarations[self].push_back(e.member);
        timeline.push_back({self, e.member, now_us});
        note_first(first_failed_us, e.member, now_us);
        break;
      case swim::event_kind::member_joined:
      case swim::event_kind::member_alive:
        failed_now[self].erase(e.member);
        break;
      case swim::event_kind::member_suspected:
        ++suspicions;
        note_first(first_suspected_us, e.member, now_us);
        break;
      case swim::event_kind::self_refuted: ++refutations; break;
      case swim::event_kind::rumor_received: first_rumor_us.emplace(self, now_us); break;
      default: break;
    }
  }
  void on_sent(const node_id&, size_t, bool, int64_t) override {}

private:
  void note_first(std::map<node_id, int64_t>& first, const node_id& member, int64_t now_us) {
    auto watched = watch_from_us.find(member);
    if (watched == watch_from_us.end() || now_us < watched->second) return;
    first.emplace(member, now_us);  // keeps the earliest: events arrive in time order
  }
};

}  // namespace cmesh::sim
