// The events bus shell (actors/events/events_actor) in the actor simulator: the same events actors
// as real mode over the simulated network, driven through their in-process API by the simulated
// events client (sim/events_client). Wildcard delivery across nodes, a queue group spread over two
// nodes, request/reply, and no routed message to a node without interest.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "actors/events/events_actor.hpp"
#include "runtime/crypto/identity.hpp"
#include "sim/simulation.hpp"

using namespace cmesh;
using sim::events_command;
using sim::events_outcome;

namespace {

// Counts every events envelope by (sender, receiver, type).
struct envelope_counter : events::observer {
  std::map<std::tuple<node_id, node_id, uint16_t>, uint64_t> sent;
  void on_sent(const node_id& self, const node_id& to, uint16_t type) override {
    ++sent[{self, to, type}];
  }
  uint64_t count(const node_id& from, const node_id& to, uint16_t type) const {
    auto it = sent.find({from, to, type});
    return it == sent.end() ? 0 : it->second;
  }
};

events_command subscribe(int64_t at_us, uint32_t node, std::string pattern, std::string group = "",
                         std::string answer = "") {
  events_command c;
  c.what = events_command::kind::subscribe;
  c.at_us = at_us;
  c.node = node;
  c.subject = std::move(pattern);
  c.queue_group = std::move(group);
  c.payload = std::move(answer);
  return c;
}

events_command publish(int64_t at_us, uint32_t node, std::string subject, std::string payload) {
  events_command c;
  c.what = events_command::kind::publish;
  c.at_us = at_us;
  c.node = node;
  c.subject = std::move(subject);
  c.payload = std::move(payload);
  return c;
}

events_command request(int64_t at_us, uint32_t node, std::string subject, std::string payload) {
  events_command c;
  c.what = events_command::kind::request;
  c.at_us = at_us;
  c.node = node;
  c.subject = std::move(subject);
  c.payload = std::move(payload);
  c.timeout_ms = 1000;
  return c;
}

struct run_result {
  std::vector<events_outcome> outcomes;
  envelope_counter counter;
  sim::simulation_report report;
  std::vector<node_id> ids;
};

// 4 nodes joining through node 0. Subscriptions at 3 s: node 2 on orders.>, nodes 1 and 2 in
// queue group "workers" on work.*, node 1 answers svc.echo. Node 3 subscribes to nothing.
// Node 0 publishes at 4 s, sends requests at 5 s; node 2 unsubscribes orders.> at 5.5 s.
std::vector<events_command> scenario() {
  std::vector<events_command> commands;
  commands.push_back(subscribe(3'000'000, 2, "orders.>"));                   // 0
  commands.push_back(subscribe(3'000'000, 1, "work.*", "workers"));          // 1
  commands.push_back(subscribe(3'000'000, 2, "work.*", "workers"));          // 2
  commands.push_back(subscribe(3'000'000, 1, "svc.echo", "", "pong"));       // 3
  commands.push_back(publish(4'000'000, 0, "orders.created", "o1"));         // 4
  commands.push_back(publish(4'001'000, 0, "orders.eu.shipped", "o2"));      // 5
  commands.push_back(publish(4'002'000, 0, "billing.invoice", "nobody"));    // 6
  for (int i = 0; i < 20; ++i)                                               // 7..26
    commands.push_back(publish(4'100'000 + i * 10'000, 0, "work.j" + std::to_string(i),
                               "j" + std::to_string(i)));
  commands.push_back(request(5'000'000, 0, "svc.echo", "ping"));             // 27
  commands.push_back(request(5'000'000, 0, "svc.nobody", "ping"));           // 28
  events_command unsubscribe;                                                // 29
  unsubscribe.what = events_command::kind::unsubscribe;
  unsubscribe.at_us = 5'500'000;
  unsubscribe.node = 2;
  unsubscribe.subscription = 0;
  commands.push_back(unsubscribe);
  commands.push_back(publish(6'500'000, 0, "orders.late", "o3"));            // 30
  return commands;
}

void run(uint64_t seed, run_result& r) {
  sim::simulation_options o;
  o.nodes = 4;
  o.seed = seed;
  o.duration_us = 8'000'000;
  o.use_storage = false;
  o.agents.events = true;
  o.agents.events_observer = &r.counter;
  o.agents.events_commands = scenario();
  o.agents.events_outcomes = &r.outcomes;
  auto sim = sim::simulation::create(o);
  REQUIRE(sim);
  (*sim)->run_to_end();
  r.report = (*sim)->report();
  for (uint32_t i = 0; i < o.nodes; ++i)
    r.ids.push_back(identity::derive_for_simulation(seed, i).public_key);
}

std::vector<const events_outcome*> of_command(const run_result& r, size_t index,
                                              events_outcome::kind what) {
  std::vector<const events_outcome*> out;
  for (const auto& o : r.outcomes)
    if (o.command_index == index && o.what == what) out.push_back(&o);
  return out;
}

}  // namespace

TEST_CASE("sim events: wildcard delivery across nodes - a queue group over two nodes gets each message once - nothing is routed to a node without interest") {
  for (uint64_t seed : {1, 2, 3}) {
    INFO("seed " << seed);
    run_result r;
    run(seed, r);
    CHECK(r.report.violations.empty());
    for (size_t i = 0; i < 4; ++i) {
      auto ok = of_command(r, i, events_outcome::kind::subscribed);
      REQUIRE(ok.size() == 1);
      CHECK(ok[0]->status == 200);
    }
    // orders.> on node 2 saw both orders published on node 0, and nothing after unsubscribing.
    // (In either order: the simulated network keeps no per-link order, as the spec allows.)
    std::set<std::string> orders;
    for (const auto* m : of_command(r, 0, events_outcome::kind::message))
      orders.insert(m->subject + " " + m->payload);
    CHECK(orders == std::set<std::string>{"orders.created o1", "orders.eu.shipped o2"});
    CHECK(of_command(r, 0, events_outcome::kind::message).size() == 2);
    CHECK(of_command(r, 29, events_outcome::kind::unsubscribed).size() == 1);
    // Publish outcomes say whether anyone was interested.
    REQUIRE(of_command(r, 4, events_outcome::kind::published).size() == 1);
    CHECK(of_command(r, 4, events_outcome::kind::published)[0]->interest);
    REQUIRE(of_command(r, 6, events_outcome::kind::published).size() == 1);
    CHECK_FALSE(of_command(r, 6, events_outcome::kind::published)[0]->interest);
    REQUIRE(of_command(r, 30, events_outcome::kind::published).size() == 1);
    CHECK_FALSE(of_command(r, 30, events_outcome::kind::published)[0]->interest);

    // The queue group: every work message exactly once, and both members took part.
    std::map<std::string, int> copies;
    auto on1 = of_command(r, 1, events_outcome::kind::message);
    auto on2 = of_command(r, 2, events_outcome::kind::message);
    for (const auto* m : on1) ++copies[m->subject];
    for (const auto* m : on2) ++copies[m->subject];
    CHECK(copies.size() == 20);
    for (const auto& [subject, n] : copies) CHECK_MESSAGE(n == 1, subject);
    CHECK(on1.size() + on2.size() == 20);
    CHECK(on1.size() > 0);
    CHECK(on2.size() > 0);

    // Request/reply through node 1's responder, and no responders.
    auto echo = of_command(r, 27, events_outcome::kind::reply);
    REQUIRE(echo.size() == 1);
    CHECK(echo[0]->status == 200);
    CHECK(echo[0]->payload == "pong");
    auto nobody = of_command(r, 28, events_outcome::kind::reply);
    REQUIRE(nobody.size() == 1);
    CHECK(nobody[0]->status == 404);

    // Routed messages from node 0: exactly one per message a node wanted, none to node 3.
    constexpr uint16_t routed = events::routed_message::type_id;
    const auto& n = r.ids;
    CHECK(r.counter.count(n[0], n[3], routed) == 0);
    CHECK(r.counter.count(n[0], n[2], routed) == 2 + on2.size());
    CHECK(r.counter.count(n[0], n[1], routed) == on1.size() + 1);  // + the echo request
    // The reply went straight back to the requester.
    CHECK(r.counter.count(n[1], n[0], routed) == 1);
    // Node 3 still took part in the interest protocol (it is a peer, just not interested).
    CHECK(r.counter.count(n[0], n[3], events::interest_digest::type_id) > 0);
    uint64_t routed_total = 0;
    for (const auto& [key, count] : r.counter.sent)
      if (std::get<2>(key) == routed) routed_total += count;
    CHECK(routed_total == 2 + 20 + 1 + 1);
  }
}

TEST_CASE("sim events: the same seed gives the same deliveries and trace") {
  run_result a, b;
  run(9, a);
  run(9, b);
  CHECK(a.report.trace_hash == b.report.trace_hash);
  REQUIRE(a.outcomes.size() == b.outcomes.size());
  for (size_t i = 0; i < a.outcomes.size(); ++i) {
    CHECK(a.outcomes[i].command_index == b.outcomes[i].command_index);
    CHECK(a.outcomes[i].subject == b.outcomes[i].subject);
    CHECK(a.outcomes[i].at_us == b.outcomes[i].at_us);
  }
}
