// Reputation (actors/reputation) in the actor simulator: the same reputation and swim actors as
// real mode over the simulated network, with honest and adversarial claims scheduled on nodes.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <tuple>

#include "actors/reputation/reputation_actor.hpp"
#include "runtime/core/rng.hpp"
#include "runtime/crypto/identity.hpp"
#include "sim/simulation.hpp"

using namespace cmesh;
using kind = reputation::scheduled_claim::kind;

namespace {

struct claim_log : reputation::observer {
  // (observer, kind, sender, subject, verdict) -> count
  std::map<std::tuple<node_id, reputation::event_kind, node_id, node_id, reputation::verdict>, int> events;
  std::map<node_id, int> report_sends;  // report_gossip messages sent, by sender
  uint64_t digest = 0;                  // order-sensitive: same seed, same digest

  void on_event(const node_id& self, const reputation::event& e, int64_t now_us) override {
    ++events[{self, e.kind, e.peer, e.subject, e.outcome}];
    digest = mix_seed(digest, static_cast<uint64_t>(now_us) ^ (uint64_t{self.key[0]} << 40) ^
                                  (static_cast<uint64_t>(e.kind) << 32) ^ e.peer.key[1]);
  }
  void on_sent(const node_id& self, const node_id&, const reputation::wire_message& m) override {
    if (std::holds_alternative<reputation::report_gossip>(m)) ++report_sends[self];
  }
  int count(const node_id& self, reputation::event_kind k, const node_id& subject,
            reputation::verdict v = reputation::verdict::accepted) const {
    int n = 0;
    for (const auto& [key, c] : events)
      if (std::get<0>(key) == self && std::get<1>(key) == k && std::get<3>(key) == subject &&
          std::get<4>(key) == v)
        n += c;
    return n;
  }
};

constexpr uint32_t nodes = 20;
constexpr uint32_t reporter = 1, reported = 7, endorser = 2, endorsed = 5, forger = 3, framed = 4,
                   forged_subject = 9, crashed = 11;

sim::simulation_options scenario(uint64_t seed, claim_log& log) {
  sim::simulation_options o;
  o.nodes = nodes;
  o.seed = seed;
  o.seed_nodes = 0;
  o.join_spread_us = 0;
  o.use_storage = false;
  o.duration_us = 16'000'000;
  o.faults.loss = 0.05;
  o.faults.crashes.push_back({crashed, 4'000'000, -1});
  o.agents.swim = true;
  o.agents.contacts = nodes - 1;
  o.agents.reputation.enabled = true;
  o.agents.reputation.watcher = &log;
  o.agents.reputation.claims = {
      {reporter, 8'000'000, kind::report, reported, 1, 0},
      {endorser, 9'000'000, kind::endorse, endorsed, 0, 0},
      {endorser, 10'000'000, kind::replay_endorsement, endorsed, 0, 0},
      {forger, 11'000'000, kind::forged_report, forged_subject, 1, framed},
  };
  return o;
}

}  // namespace

TEST_CASE("sim reputation: a report reaches every live agent once, an endorsement counts at its subject, a replay and a forged report are refused everywhere") {
  for (uint64_t seed : {61, 62}) {
    claim_log log;
    auto o = scenario(seed, log);
    auto sim = sim::simulation::create(o);
    REQUIRE(sim);
    (*sim)->run_to_end();
    INFO("replay: " << sim::replay_command(o) << " (seed " << seed << ")");
    CHECK((*sim)->report().violations.empty());
    auto id = [&](uint32_t i) { return identity::derive_for_simulation(seed, i).public_key; };
    using ek = reputation::event_kind;

    // The fraud report: every live agent but its reporter and subject counts it exactly once
    // (copies are refused as replays); the crashed agent and the subject never see it.
    int reached = 0, copies_refused = 0;
    for (uint32_t i = 0; i < nodes; ++i) {
      int accepted = log.count(id(i), ek::report_accepted, id(reported));
      copies_refused += log.count(id(i), ek::rejected, id(reported), reputation::verdict::replay);
      CHECK(accepted <= 1);
      if (i == reported || i == crashed || i == reporter) {
        CHECK(accepted == 0);
      } else {
        reached += accepted;
      }
    }
    CHECK(reached == static_cast<int>(nodes) - 3);
    CHECK(copies_refused > 0);  // the gossip did overlap, and dedup held
    // Each agent passes a report on at most once, to at most report_fanout contacts.
    const int fanout = static_cast<int>(reputation::config{}.report_fanout);
    for (const auto& [sender, sends] : log.report_sends)
      if (sender != id(forger)) CHECK(sends <= fanout);

    // The endorsement counted at its subject once; the same bytes sent again were a replay.
    CHECK(log.count(id(endorsed), ek::endorsement_accepted, id(endorsed)) == 1);
    CHECK(log.count(id(endorsed), ek::rejected, id(endorsed), reputation::verdict::replay) == 1);

    // The forged report (names agent 4, signed by agent 3): nobody counts it, every receiver
    // refuses it as a bad signature, and nobody passes it on.
    int forged_refused = 0;
    for (uint32_t i = 0; i < nodes; ++i) {
      CHECK(log.count(id(i), ek::report_accepted, id(forged_subject)) == 0);
      forged_refused += log.count(id(i), ek::rejected, id(forged_subject), reputation::verdict::bad_signature);
    }
    // Sent to every member the forger knows but 9 and 4 (at most 17), some lost (5% loss).
    CHECK(forged_refused > static_cast<int>(nodes) / 2);
    CHECK(forged_refused <= static_cast<int>(nodes) - 3);
    MESSAGE("seed " << seed << ": report reached " << reached << " agents, " << copies_refused
                    << " copies refused as replays, forged copy refused by " << forged_refused);
  }
}

TEST_CASE("sim reputation: same seed, same claims, same outcome") {
  claim_log a, b;
  auto oa = scenario(63, a);
  auto ob = scenario(63, b);
  auto sa = sim::simulation::create(oa);
  auto sb = sim::simulation::create(ob);
  REQUIRE(sa);
  REQUIRE(sb);
  (*sa)->run_to_end();
  (*sb)->run_to_end();
  CHECK(a.digest != 0);
  CHECK(a.digest == b.digest);
  CHECK(a.events == b.events);
}
