// imAlive membership (actors/swim) in the actor simulator: the same swim actors as real mode over
// the simulated network. Dissemination coverage and detection of crashed agents.
#include <doctest/doctest.h>

#include <map>

#include "actors/swim/swim_actor.hpp"
#include "runtime/crypto/identity.hpp"
#include "sim/simulation.hpp"

using namespace cmesh;

namespace {

struct recorder : swim::observer {
  std::map<node_id, int64_t> first_rumor_us;
  std::map<node_id, std::map<node_id, int64_t>> failed_at;  // observer -> member -> time
  uint64_t sent = 0;
  void on_event(const node_id& self, const swim::event& e, int64_t now_us) override {
    if (e.kind == swim::event_kind::rumor_received) first_rumor_us.emplace(self, now_us);
    if (e.kind == swim::event_kind::member_failed) failed_at[self].emplace(e.member, now_us);
  }
  void on_sent(const node_id&, size_t, bool, int64_t) override { ++sent; }
};

sim::simulation_options agents(uint32_t nodes, uint64_t seed, recorder& r) {
  sim::simulation_options o;
  o.nodes = nodes;
  o.seed = seed;
  o.seed_nodes = 0;
  o.join_spread_us = 0;
  o.use_storage = false;
  o.agents.swim = true;
  o.agents.contacts = 32;
  o.agents.membership.member_table_max = 48;
  o.agents.membership.retransmit_mult = 8;
  o.agents.watcher = &r;
  return o;
}

}  // namespace

TEST_CASE("sim agents: a rumor reaches every live agent of 300 within 10 gossip rounds under 10 percent loss with 20 percent crashed") {
  for (uint64_t seed : {1, 2, 3}) {
    recorder r;
    auto o = agents(300, seed, r);
    o.faults.loss = 0.10;
    o.agents.broadcast_at_us = 2'000'000;
    o.duration_us = 2'000'000 + 10 * o.agents.membership.gossip_interval_us;
    std::set<uint32_t> down;
    for (uint32_t i = 1; down.size() < 60; i += 5) down.insert(i);
    for (auto i : down) o.faults.crashes.push_back({i, 1'999'000, -1});
    auto sim = sim::simulation::create(o);
    REQUIRE(sim);
    (*sim)->run_to_end();
    INFO("replay: seed " << seed);
    CHECK((*sim)->report().violations.empty());
    size_t reached = 0;
    for (uint32_t i = 1; i < o.nodes; ++i)
      if (!down.count(i) && r.first_rumor_us.count(identity::derive_for_simulation(seed, i).public_key)) ++reached;
    CHECK(reached == o.nodes - 1 - down.size());
    // Nobody hears the rumor from a crashed agent: crashed agents never report it.
    for (auto i : down) CHECK_FALSE(r.first_rumor_us.count(identity::derive_for_simulation(seed, i).public_key));
  }
}

TEST_CASE("sim agents: a crashed agent is declared failed by the agents that know it and a healthy one never is") {
  recorder r;
  auto o = agents(50, 7, r);
  o.duration_us = 25'000'000;
  o.faults.crashes.push_back({9, 5'000'000, -1});
  auto sim = sim::simulation::create(o);
  REQUIRE(sim);
  (*sim)->run_to_end();
  auto crashed = identity::derive_for_simulation(7, 9).public_key;
  size_t noticed = 0;
  for (const auto& [who, failures] : r.failed_at) {
    for (const auto& [member, at] : failures) {
      CHECK(member == crashed);  // no false removal
      CHECK(at > 5'000'000);
      CHECK(at < 15'000'000);    // within 10 s: suspicion timeout at this size plus probing
    }
    noticed += failures.count(crashed);
  }
  CHECK(noticed >= 1);
}
