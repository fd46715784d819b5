// imAlive membership (actors/swim) in the actor simulator: the same swim actors as real mode over
// the simulated network. Dissemination coverage and detection of crashed agents.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>

#include "actors/aggregator/aggregator_actor.hpp"
#include "actors/rmb/rmb_actor.hpp"
#include "actors/swim/swim_actor.hpp"
#include "runtime/crypto/identity.hpp"
#include "sim/membership_log.hpp"
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

sim::simulation_options agents(uint32_t nodes, uint64_t seed, swim::observer& r) {
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
  o.agents.membership.rumor_retransmit_mult = 8;
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

namespace {

using sim::membership_log;

node_id key_of(uint64_t seed, uint32_t index) {
  return identity::derive_for_simulation(seed, index).public_key;
}

}  // namespace

TEST_CASE("sim agents: 80 percent of agents crash at once - survivors declare them failed - never each other - and still disseminate") {
  for (uint64_t seed : {11, 12}) {
    membership_log log;
    auto o = agents(100, seed, log);
    std::set<uint32_t> down;
    for (uint32_t i = 1; i < o.nodes; ++i)
      if (i % 5 != 0) down.insert(i);  // 80 of 100; node 0 and every fifth survive
    for (auto i : down) o.faults.crashes.push_back({i, 5'000'000, -1});
    o.agents.broadcast_at_us = 40'000'000;
    o.duration_us = 40'000'000 + 15 * o.agents.membership.gossip_interval_us;
    auto sim = sim::simulation::create(o);
    REQUIRE(sim);
    (*sim)->run_to_end();
    INFO("replay: " << sim::replay_command(o));
    CHECK((*sim)->report().violations.empty());
    std::set<node_id> crashed;
    for (auto i : down) crashed.insert(key_of(seed, i));
    size_t survivors = 0, reached = 0;
    std::set<node_id> declared_by_someone;
    for (uint32_t i = 0; i < o.nodes; ++i) {
      if (down.count(i)) continue;
      auto self = key_of(seed, i);
      ++survivors;
      if (i == 0 || log.first_rumor_us.count(self)) ++reached;
      for (const auto& member : log.declarations[self]) {
        CHECK(crashed.count(member) == 1);  // a survivor never declares another survivor failed
        declared_by_someone.insert(member);
      }
    }
    CHECK(survivors == 20);
    // Every crashed agent was declared failed by the survivors that knew it.
    CHECK(declared_by_someone.size() == crashed.size());
    // Membership still works for the 20 survivors: a rumor reaches all of them.
    CHECK(reached == survivors);
  }
}

TEST_CASE("sim agents: a 50/50 partition that heals is merged without operator action") {
  for (uint64_t seed : {21, 22}) {
    membership_log log;
    auto o = agents(60, seed, log);
    // Full membership (the default table): with a partial view an agent may forget a failed member
    // (its tombstone makes room for a live one) instead of taking it back, which this test could not
    // tell from a merge that never happened.
    o.agents.membership.member_table_max = swim::config{}.member_table_max;
    sim::partition halves;
    halves.start_us = 5'000'000;
    halves.end_us = 25'000'000;
    for (uint32_t i = 0; i < 30; ++i) halves.from_side.push_back(i);
    for (uint32_t i = 30; i < 60; ++i) halves.to_side.push_back(i);
    o.faults.partitions.push_back(halves);
    o.agents.broadcast_at_us = 60'000'000;
    o.duration_us = 60'000'000 + 15 * o.agents.membership.gossip_interval_us;
    auto sim = sim::simulation::create(o);
    REQUIRE(sim);
    (*sim)->run_to_end();
    INFO("replay: " << sim::replay_command(o));
    CHECK((*sim)->report().violations.empty());
    // During the partition each side declared (some of) the other side failed...
    size_t cross_declarations = 0;
    for (const auto& [who, members] : log.declarations) cross_declarations += members.size();
    CHECK(cross_declarations > 0);
    // ...and after it healed every agent took every one of them back.
    for (uint32_t i = 0; i < o.nodes; ++i) {
      auto self = key_of(seed, i);
      INFO("agent " << i << " still holds " << log.failed_now[self].size() << " members failed");
      CHECK(log.failed_now[self].empty());
      if (i != 0) CHECK(log.first_rumor_us.count(self) == 1);  // one mesh again: the rumor crosses
    }
  }
}

TEST_CASE("sim agents: 10 percent of agents frozen for 2 s under 5 percent loss are suspected - refute - and are never removed") {
  uint64_t member_periods = 0, false_removals = 0, suspicions = 0, refutations = 0;
  for (uint64_t seed : {31, 32, 33}) {
    membership_log log;
    auto o = agents(100, seed, log);
    o.faults.loss = 0.05;
    for (uint32_t i = 3; i < o.nodes; i += 10) o.faults.freezes.push_back({i, 10'000'000, 12'000'000});
    REQUIRE(o.faults.freezes.size() == 10);
    o.duration_us = 40'000'000;
    auto sim = sim::simulation::create(o);
    REQUIRE(sim);
    (*sim)->run_to_end();
    INFO("replay: " << sim::replay_command(o));
    CHECK((*sim)->report().violations.empty());
    for (const auto& [who, members] : log.declarations) false_removals += members.size();
    member_periods += uint64_t{o.nodes} * (o.duration_us / o.agents.membership.protocol_period_us);
    suspicions += log.suspicions;
    refutations += log.refutations;
  }
  MESSAGE("frozen agents: " << suspicions << " suspicions, " << refutations << " refutations, "
          << false_removals << " false removals in " << member_periods << " member-periods");
  CHECK(suspicions > 0);   // the freeze was felt
  CHECK(refutations > 0);  // and answered
  CHECK(false_removals == 0);
}

namespace {

struct effect_log : rmb::agent_observer {
  std::map<bytes, int> effects_by_uid;
  void on_effect(const node_id&, const node_id&, const std::string& command, const bytes& uid,
                 const bytes&) override {
    if (command == "counter.add") ++effects_by_uid[uid];
  }
};

// Node 0's agent sends counter.add to node 1's twin at 2 s. Node 1's answers to node 0 are cut
// from 1.9 s to 4 s (so the acknowledgement and the reply are lost and node 0 retries), and node 1
// crashes at 3 s and restarts 1 s later on its store. At 8 s counter.get asks the twin's value.
sim::simulation_options retried_across_a_crash(uint64_t seed, bool storage, effect_log& log,
                                               std::vector<sim::rmb_outcome>& outcomes) {
  sim::simulation_options o;
  o.nodes = 3;
  o.seed = seed;
  o.duration_us = 20'000'000;
  o.use_storage = storage;
  o.agents.rmb = true;
  o.agents.rmb_observer = &log;
  o.agents.rmb_outcomes = &outcomes;
  o.agents.rmb_commands = {{2'000'000, 0, 1, "counter.add", "visits"},
                           {8'000'000, 2, 1, "counter.get", "visits"}};
  sim::partition cut;
  cut.start_us = 1'900'000;
  cut.end_us = 4'000'000;
  cut.from_side = {1};
  cut.to_side = {0};
  cut.one_way = true;
  o.faults.partitions.push_back(cut);
  o.faults.crashes.push_back({1, 3'000'000, 1'000'000});
  return o;
}

}  // namespace

TEST_CASE("sim rmb: a retried command takes effect exactly once across a crash of the receiving node") {
  for (uint64_t seed : {41, 42, 43}) {
    effect_log log;
    std::vector<sim::rmb_outcome> outcomes;
    auto o = retried_across_a_crash(seed, true, log, outcomes);
    auto sim = sim::simulation::create(o);
    REQUIRE(sim);
    (*sim)->run_to_end();
    INFO("seed " << seed << "; replay: sim_tests -tc='sim rmb*' (network and crashes: "
                 << sim::replay_command(o) << ")");
    CHECK((*sim)->report().violations.empty());
    REQUIRE(outcomes.size() == 2);
    std::sort(outcomes.begin(), outcomes.end(),
              [](const auto& a, const auto& b) { return a.command_index < b.command_index; });
    CHECK(outcomes[0].code == 0);
    CHECK(outcomes[0].reply == "1");
    CHECK(outcomes[0].at_us > 4'000'000);  // answered only after the cut healed: it was retried
    CHECK(outcomes[1].code == 0);
    CHECK(outcomes[1].reply == "1");       // the twin counted the command once
    REQUIRE(log.effects_by_uid.size() == 1);
    CHECK(log.effects_by_uid.begin()->second == 1);
  }
}

TEST_CASE("sim rmb: without the store the same run executes the command twice - the check can fail") {
  effect_log log;
  std::vector<sim::rmb_outcome> outcomes;
  auto o = retried_across_a_crash(41, false, log, outcomes);
  auto sim = sim::simulation::create(o);
  REQUIRE(sim);
  (*sim)->run_to_end();
  REQUIRE(log.effects_by_uid.size() == 1);
  CHECK(log.effects_by_uid.begin()->second == 2);  // the restarted twin forgot it had run it
}

namespace {

struct directory_recorder : aggregator::observer {
  struct lookup_seen {
    node_id by;
    int64_t at_us;
    std::set<node_id> agents;
    bool timed_out;
    size_t discarded;
  };
  std::vector<std::tuple<node_id, aggregator::event_kind, node_id, int64_t>> events;
  std::vector<lookup_seen> lookups;
  void on_event(const node_id& self, const aggregator::event& e, int64_t now_us) override {
    events.emplace_back(self, e.kind, e.agent, now_us);
  }
  void on_lookup(const node_id& self, const aggregator::lookup_result& r, int64_t now_us) override {
    std::set<node_id> agents;
    for (const auto& a : r.agents) agents.insert(node_id::from_bytes(a.agent.data()));
    lookups.push_back({self, now_us, std::move(agents), r.timed_out, r.discarded});
  }
};

}  // namespace

// Node 0 serves the directory; nodes 1-9 register "category:grocery" and "name:n<i % 3>" with a
// 10 s lifetime. Node 4 crashes at 4 s and never comes back; node 0 crashes at 22 s and restarts
// at 23 s with an empty directory (soft state).
TEST_CASE("sim aggregator: lookups find exactly the matching agents - a crashed agent expires - a restarted aggregator is rebuilt by refreshes") {
  for (uint64_t seed : {51, 52}) {
    directory_recorder r;
    sim::simulation_options o;
    o.nodes = 10;
    o.seed = seed;
    o.seed_nodes = 1;
    o.use_storage = false;
    o.duration_us = 32'000'000;
    o.faults.crashes.push_back({4, 4'000'000, -1});
    o.faults.crashes.push_back({0, 22'000'000, 1'000'000});
    o.agents.aggregator.enabled = true;
    o.agents.aggregator.ttl_s = 10;
    o.agents.aggregator.watcher = &r;
    o.agents.aggregator.lookups = {{5, {3'000'000, {"name:n1"}, 0}},
                                   {5, {20'000'000, {"name:n1"}, 0}},
                                   {8, {30'000'000, {"category:grocery"}, 0}},
                                   {2, {30'000'000, {"name:n2", "category:grocery"}, 0}}};
    auto sim = sim::simulation::create(o);
    REQUIRE(sim);
    (*sim)->run_to_end();
    INFO("seed " << seed << "; replay: sim_tests -tc='sim aggregator*'");
    CHECK((*sim)->report().violations.empty());
    auto id = [&](uint32_t i) { return identity::derive_for_simulation(seed, i).public_key; };
    auto ids = [&](std::initializer_list<uint32_t> list) {
      std::set<node_id> out;
      for (auto i : list) out.insert(id(i));
      return out;
    };
    REQUIRE(r.lookups.size() == 4);
    std::sort(r.lookups.begin(), r.lookups.end(),
              [&](const auto& a, const auto& b) { return std::tie(a.at_us, a.by) < std::tie(b.at_us, b.by); });
    for (const auto& l : r.lookups) {
      CHECK_FALSE(l.timed_out);
      CHECK(l.discarded == 0);
    }
    CHECK(r.lookups[0].agents == ids({1, 4, 7}));
    CHECK(r.lookups[1].agents == ids({1, 7}));  // node 4's entry expired
    // After the aggregator's restart every live agent registered again.
    for (const auto& l : {r.lookups[2], r.lookups[3]}) {
      if (l.by == id(8)) CHECK(l.agents == ids({1, 2, 3, 5, 6, 7, 8, 9}));
      else CHECK(l.agents == ids({2, 5, 8}));
    }
    // Node 4 expired at the aggregator one lifetime after its last refresh (before 4 s).
    size_t expired_4 = 0, expired_other = 0, registered_after_restart = 0;
    for (const auto& [self, kind, agent, at] : r.events) {
      if (self != id(0)) continue;
      if (kind == aggregator::event_kind::expired) {
        if (agent == id(4)) {
          ++expired_4;
          CHECK(at >= 10'000'000);
          CHECK(at <= 15'500'000);
        } else {
          ++expired_other;
        }
      }
      if (kind == aggregator::event_kind::registered && at >= 23'000'000) ++registered_after_restart;
    }
    CHECK(expired_4 == 1);
    CHECK(expired_other == 0);
    CHECK(registered_after_restart == 8);
  }
}
