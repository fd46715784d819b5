// Tests for actors/aggregator: the pure aggregator directory (signed registration, imAlive,
// lookup by tags, expiry, bounds) and the agent-side client, driven with explicit times.
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "actors/aggregator/aggregator_machine.hpp"

namespace {

using namespace cmesh;
using namespace cmesh::aggregator;

constexpr int64_t t0 = 1'700'000'000'000'000;  // µs since the Unix epoch
constexpr int64_t second = 1'000'000;

identity agent_key(uint8_t n) {
  std::array<uint8_t, 32> seed{};
  seed.fill(n);
  seed[0] = 0xa6;
  return identity::from_seed(seed);
}

const node_id aggregator_node = [] {
  node_id id;
  id.key.fill(0xee);
  return id;
}();

node_id node_of(uint8_t n) {
  node_id id;
  id.key.fill(n);
  return id;
}

agent_registration registration_of(const identity& agent, std::vector<std::string> tags,
                                   int64_t now_us, uint32_t ttl_s = 60, uint64_t sequence = 1) {
  agent_registration r;
  r.address = "10.0.0." + std::to_string(agent.public_key.key[0]) + ":7000";
  r.tags = std::move(tags);
  r.ttl_s = ttl_s;
  r.sequence = sequence;
  r.signed_ms = static_cast<uint64_t>(now_us / 1000);
  sign_registration(r, agent);
  return r;
}

i_am_alive alive_of(const identity& agent, int64_t now_us, uint64_t sequence) {
  i_am_alive a;
  a.request_id = 77;
  a.sequence = sequence;
  a.signed_ms = static_cast<uint64_t>(now_us / 1000);
  sign_alive(a, agent);
  return a;
}

// Sends one request and returns the one reply it must produce.
template <class Reply>
Reply ask(machine& m, int64_t now_us, const request_message& request,
          const node_id& from = node_of(1)) {
  effects out;
  m.on_message(now_us, from, request, out);
  REQUIRE(out.sends.size() == 1);
  CHECK(out.sends[0].to == from);
  REQUIRE(std::holds_alternative<Reply>(out.sends[0].message));
  return std::get<Reply>(out.sends[0].message);
}

status_code register_at(machine& m, int64_t now_us, const agent_registration& r,
                        uint64_t request_id = 5) {
  auto reply = ask<registration_reply>(m, now_us, register_agent{request_id, r});
  CHECK(reply.request_id == request_id);
  return static_cast<status_code>(reply.status);
}

std::set<node_id> agents_in(const lookup_reply& reply) {
  std::set<node_id> found;
  for (const auto& r : reply.agents) {
    REQUIRE(r.agent.size() == 32);
    found.insert(node_id::from_bytes(r.agent.data()));
  }
  return found;
}

lookup_reply look(machine& m, int64_t now_us, std::vector<std::string> tags, uint32_t limit = 0) {
  return ask<lookup_reply>(m, now_us, lookup_agents{42, std::move(tags), limit});
}

}  // namespace

TEST_CASE("aggregator register then lookup by tags in one round trip") {
  machine m({}, 1);
  auto apples = agent_key(1), pears = agent_key(2), both = agent_key(3);
  REQUIRE(register_at(m, t0, registration_of(apples, {"name:apple", "location:dubai"}, t0)) ==
          status_code::ok);
  REQUIRE(register_at(m, t0, registration_of(pears, {"name:pear", "location:dubai"}, t0)) ==
          status_code::ok);
  REQUIRE(register_at(m, t0, registration_of(both, {"name:apple", "name:pear"}, t0)) ==
          status_code::ok);
  auto reply = look(m, t0 + 1, {"name:apple"});
  CHECK(reply.request_id == 42);
  CHECK(reply.status == 0);
  CHECK(agents_in(reply) == std::set<node_id>{apples.public_key, both.public_key});
  // Several tags: agents that carry all of them.
  CHECK(agents_in(look(m, t0 + 1, {"location:dubai", "name:apple"})) ==
        std::set<node_id>{apples.public_key});
  CHECK(look(m, t0 + 1, {"name:plum"}).agents.empty());
  // Replies carry the agents' own signed registrations.
  for (const auto& r : reply.agents) CHECK(verify_registration(r));
}

TEST_CASE("aggregator forged registration is refused") {
  machine m({}, 1);
  auto victim = agent_key(1), forger = agent_key(2);
  SUBCASE("signed by another key") {
    auto r = registration_of(forger, {"category:tech"}, t0);
    r.agent.assign(victim.public_key.key.begin(), victim.public_key.key.end());
    CHECK(register_at(m, t0, r) == status_code::bad_signature);
  }
  SUBCASE("a signed registration with its address changed") {
    auto r = registration_of(victim, {"category:tech"}, t0);
    r.address = "evil.example:1";
    CHECK(register_at(m, t0, r) == status_code::bad_signature);
  }
  SUBCASE("a signed registration with a tag added") {
    auto r = registration_of(victim, {"category:tech"}, t0);
    r.tags.push_back("category:banking");
    CHECK(register_at(m, t0, r) == status_code::bad_signature);
  }
  SUBCASE("an imAlive signed by another key") {
    REQUIRE(register_at(m, t0, registration_of(victim, {"category:tech"}, t0)) == status_code::ok);
    auto a = alive_of(forger, t0, 5);
    a.agent.assign(victim.public_key.key.begin(), victim.public_key.key.end());
    auto reply = ask<registration_reply>(m, t0, a);
    CHECK(reply.status == static_cast<uint8_t>(status_code::bad_signature));
    CHECK(m.entries().at(victim.public_key).last_sequence == 1);
    return;
  }
  CHECK(m.entries().empty());
  CHECK(m.agents_with_tag("category:tech") == 0);
}

TEST_CASE("aggregator refresh extends an entry and a stale one expires") {
  machine m({}, 1);
  auto kept = agent_key(1), dropped = agent_key(2);
  REQUIRE(register_at(m, t0, registration_of(kept, {"t"}, t0, 30)) == status_code::ok);
  REQUIRE(register_at(m, t0, registration_of(dropped, {"t"}, t0, 30)) == status_code::ok);
  auto reply = ask<registration_reply>(m, t0 + 20 * second, alive_of(kept, t0 + 20 * second, 2));
  CHECK(reply.request_id == 77);
  CHECK(reply.status == 0);
  CHECK(reply.expires_ms == static_cast<uint64_t>((t0 + 50 * second) / 1000));
  // At 30 s `dropped` has lapsed: lookups stop returning it even before the sweep ...
  CHECK(agents_in(look(m, t0 + 30 * second, {"t"})) == std::set<node_id>{kept.public_key});
  CHECK(m.agents_with_tag("t") == 2);
  // ... and the sweep forgets it.
  effects out;
  m.tick(t0 + 31 * second, out);
  REQUIRE(out.events.size() == 1);
  CHECK(out.events[0].kind == event_kind::expired);
  CHECK(out.events[0].agent == dropped.public_key);
  CHECK(m.entries().size() == 1);
  CHECK(m.agents_with_tag("t") == 1);
  out.clear();
  m.tick(t0 + 49 * second, out);
  CHECK(m.entries().size() == 1);
  m.tick(t0 + 50 * second, out);
  CHECK(m.entries().empty());
  CHECK(m.agents_with_tag("t") == 0);
}

TEST_CASE("aggregator replayed registration or imAlive is stale") {
  machine m({}, 1);
  auto agent = agent_key(1);
  auto first = registration_of(agent, {"t"}, t0, 60, 10);
  REQUIRE(register_at(m, t0, first) == status_code::ok);
  CHECK(register_at(m, t0 + second, first) == status_code::stale);  // same sequence again
  auto alive = alive_of(agent, t0, 11);
  CHECK(ask<registration_reply>(m, t0, alive).status == 0);
  CHECK(ask<registration_reply>(m, t0, alive).status == static_cast<uint8_t>(status_code::stale));
  // A newer registration with other tags replaces the old one; the old one cannot come back.
  auto newer = registration_of(agent, {"u"}, t0 + 2 * second, 60, 12);
  REQUIRE(register_at(m, t0 + 2 * second, newer) == status_code::ok);
  CHECK(m.agents_with_tag("t") == 0);
  CHECK(m.agents_with_tag("u") == 1);
  CHECK(register_at(m, t0 + 3 * second, first) == status_code::stale);
  CHECK(m.agents_with_tag("u") == 1);
  // Signed too long ago (even with a fresh sequence): a captured message ages out.
  auto old = registration_of(agent, {"t"}, t0, 60, 99);
  CHECK(register_at(m, t0 + 61 * second, old) == status_code::stale);
  auto future = registration_of(agent, {"t"}, t0 + 600 * second, 60, 100);
  CHECK(register_at(m, t0, future) == status_code::malformed);
}

TEST_CASE("aggregator imAlive for an unknown agent asks it to register again") {
  machine m({}, 1);
  auto reply = ask<registration_reply>(m, t0, alive_of(agent_key(1), t0, 3));
  CHECK(reply.status == static_cast<uint8_t>(status_code::unknown_agent));
  CHECK(reply.reason.find("register again") != std::string::npos);
}

TEST_CASE("aggregator malformed requests are refused with reasons") {
  machine m({}, 1);
  auto agent = agent_key(1);
  CHECK(register_at(m, t0, registration_of(agent, {}, t0)) == status_code::malformed);
  CHECK(register_at(m, t0, registration_of(agent, {"a", "a"}, t0)) == status_code::malformed);
  CHECK(register_at(m, t0, registration_of(agent, {""}, t0)) == status_code::malformed);
  CHECK(register_at(m, t0, registration_of(agent, {std::string(65, 'x')}, t0)) ==
        status_code::too_large);
  std::vector<std::string> many;
  for (int i = 0; i < 17; ++i) many.push_back("tag" + std::to_string(i));
  CHECK(register_at(m, t0, registration_of(agent, many, t0)) == status_code::too_large);
  CHECK(register_at(m, t0, registration_of(agent, {"t"}, t0, 5)) == status_code::malformed);
  CHECK(register_at(m, t0, registration_of(agent, {"t"}, t0, 7200)) == status_code::malformed);
  auto short_key = registration_of(agent, {"t"}, t0);
  short_key.agent.resize(31);
  CHECK(register_at(m, t0, short_key) == status_code::malformed);
  auto reply = look(m, t0, {});
  CHECK(reply.status == static_cast<uint8_t>(status_code::malformed));
  CHECK(reply.reason == "no tags");
  CHECK(look(m, t0, {"1", "2", "3", "4", "5", "6", "7", "8", "9"}).status ==
        static_cast<uint8_t>(status_code::too_large));
  CHECK(m.entries().empty());
}

TEST_CASE("aggregator bounds the agents per tag and in total") {
  config cfg;
  cfg.agents_per_tag_max = 2;
  cfg.agents_max = 3;
  machine m(cfg, 1);
  REQUIRE(register_at(m, t0, registration_of(agent_key(1), {"busy"}, t0)) == status_code::ok);
  REQUIRE(register_at(m, t0, registration_of(agent_key(2), {"busy"}, t0)) == status_code::ok);
  auto reply = ask<registration_reply>(
      m, t0, register_agent{9, registration_of(agent_key(3), {"busy", "x"}, t0)});
  CHECK(reply.status == static_cast<uint8_t>(status_code::full));
  CHECK(reply.reason.find("busy") != std::string::npos);
  CHECK(m.agents_with_tag("x") == 0);  // refused as a whole
  // An agent already listed may re-register under a full tag.
  CHECK(register_at(m, t0, registration_of(agent_key(2), {"busy", "y"}, t0, 60, 2)) ==
        status_code::ok);
  REQUIRE(register_at(m, t0, registration_of(agent_key(3), {"calm"}, t0)) == status_code::ok);
  CHECK(register_at(m, t0, registration_of(agent_key(4), {"calm"}, t0)) == status_code::full);
  CHECK(m.entries().size() == 3);
}

TEST_CASE("aggregator lookup results are bounded and a seeded fair sample") {
  config cfg;
  cfg.lookup_results_max = 4;
  auto fill = [&](uint64_t seed) {
    auto m = std::make_unique<machine>(cfg, seed);
    for (uint8_t n = 1; n <= 20; ++n)
      REQUIRE(register_at(*m, t0, registration_of(agent_key(n), {"t"}, t0)) == status_code::ok);
    return m;
  };
  auto m = fill(1);
  auto first = look(*m, t0, {"t"});
  CHECK(first.agents.size() == 4);
  CHECK(look(*m, t0, {"t"}, 2).agents.size() == 2);
  CHECK(look(*m, t0, {"t"}, 100).agents.size() == 4);
  // Every agent gets its turn over many lookups; the same seed draws the same samples.
  std::set<node_id> seen;
  for (int i = 0; i < 100; ++i)
    for (const auto& id : agents_in(look(*m, t0, {"t"}))) seen.insert(id);
  CHECK(seen.size() == 20);
  CHECK(agents_in(look(*fill(1), t0, {"t"})) == agents_in(first));
  CHECK(agents_in(look(*fill(2), t0, {"t"})) != agents_in(first));
}

TEST_CASE("aggregator config validation names the bad field") {
  config cfg;
  CHECK(validate(cfg).ok());
  cfg.ttl_s_min = 4000;
  CHECK(validate(cfg).message.find("ttl_s_min") != std::string::npos);
  cfg = {};
  cfg.lookup_results_max = 0;
  CHECK(validate(cfg).message.find("lookup_results_max") != std::string::npos);
}

// ---- the client ------------------------------------------------------------------------------

namespace {

// One client and one aggregator joined by an in-memory link that can be cut.
struct client_link {
  std::unique_ptr<machine> server = std::make_unique<machine>(config{}, 3);
  identity key = agent_key(1);
  node_id client_node = node_of(1);
  client agent{key, "10.0.0.1:7000", {"category:tech", "location:dubai"}, aggregator_node,
               client_config{}};
  int64_t now = t0;
  bool cut = false;
  std::vector<lookup_result> results;
  std::vector<event> client_events;

  void carry(client_effects& out) {
    for (auto& r : out.lookups) results.push_back(r);
    for (auto& e : out.events) client_events.push_back(e);
    auto sends = std::move(out.sends);
    out.clear();
    for (auto& s : sends) {
      CHECK(s.to == aggregator_node);
      if (cut) continue;
      effects server_out;
      server->on_message(now, client_node, s.message, server_out);
      for (auto& reply : server_out.sends) {
        client_effects next;
        agent.on_message(now, aggregator_node, reply.message, next);
        carry(next);
      }
    }
  }
  void run_for(int64_t duration_us, int64_t step_us = second) {
    for (int64_t end = now + duration_us; now < end;) {
      now += step_us;
      effects server_out;
      server->tick(now, server_out);
      client_effects out;
      agent.tick(now, out);
      carry(out);
    }
  }
};

}  // namespace

TEST_CASE("aggregator client registers and refreshes before expiry") {
  client_link l;
  client_effects out;
  l.agent.start(l.now, out);
  l.carry(out);
  CHECK(l.agent.registered());
  CHECK(l.server->entries().count(l.key.public_key) == 1);
  l.run_for(600 * second);  // ten minutes, five times the 120 s ttl
  CHECK(l.agent.registered());
  CHECK(l.server->entries().count(l.key.public_key) == 1);
  CHECK(l.server->entries().at(l.key.public_key).expires_ms > l.now / 1000 + 60'000);
  size_t refreshes = std::count_if(l.client_events.begin(), l.client_events.end(),
                                   [](const event& e) { return e.kind == event_kind::refreshed; });
  CHECK(refreshes >= 14);  // every 40 s
}

TEST_CASE("aggregator client re-registers after the aggregator forgets it") {
  client_link l;
  client_effects out;
  l.agent.start(l.now, out);
  l.carry(out);
  l.server = std::make_unique<machine>(config{}, 4);  // the aggregator restarted: soft state gone
  l.run_for(45 * second);                              // the next imAlive gets unknown_agent
  CHECK(l.agent.registered());
  CHECK(l.server->entries().count(l.key.public_key) == 1);
  bool told = std::any_of(l.client_events.begin(), l.client_events.end(), [](const event& e) {
    return e.kind == event_kind::refused && e.code == status_code::unknown_agent;
  });
  CHECK(told);
}

TEST_CASE("aggregator an agent cut off from its aggregator expires there and comes back") {
  client_link l;
  client_effects out;
  l.agent.start(l.now, out);
  l.carry(out);
  l.cut = true;
  l.run_for(130 * second);
  CHECK(l.server->entries().empty());  // 120 s without imAlive
  CHECK_FALSE(l.agent.registered());   // and the client knows its registration lapsed
  l.cut = false;
  l.run_for(10 * second);
  CHECK(l.agent.registered());
  CHECK(l.server->entries().count(l.key.public_key) == 1);
}

TEST_CASE("aggregator client lookup verifies what the aggregator returns") {
  client_link l;
  client_effects out;
  l.agent.start(l.now, out);
  l.carry(out);
  REQUIRE(register_at(*l.server, l.now, registration_of(agent_key(2), {"category:tech"}, l.now)) ==
          status_code::ok);
  auto id = l.agent.lookup(l.now, {"category:tech"}, 0, out);
  REQUIRE(id.ok());
  l.carry(out);
  REQUIRE(l.results.size() == 1);
  CHECK(l.results[0].request_id == *id);
  CHECK(l.results[0].code == status_code::ok);
  CHECK(l.results[0].agents.size() == 2);
  CHECK(l.results[0].discarded == 0);

  // A lying aggregator: an entry with a rewritten address, one without the tag asked for.
  auto lie = l.agent.lookup(l.now, {"category:tech"}, 0, out);
  REQUIRE(lie.ok());
  out.clear();
  lookup_reply forged;
  forged.request_id = *lie;
  auto rewritten = registration_of(agent_key(2), {"category:tech"}, l.now);
  rewritten.address = "evil.example:1";
  forged.agents.push_back(rewritten);
  forged.agents.push_back(registration_of(agent_key(3), {"category:food"}, l.now));
  forged.agents.push_back(registration_of(agent_key(4), {"category:tech"}, l.now));
  l.agent.on_message(l.now, aggregator_node, forged, out);
  REQUIRE(out.lookups.size() == 1);
  CHECK(out.lookups[0].agents.size() == 1);
  CHECK(out.lookups[0].discarded == 2);
  // A reply from another node is not from our aggregator.
  out.clear();
  l.agent.on_message(l.now, node_of(9), forged, out);
  CHECK(out.lookups.empty());
}

TEST_CASE("aggregator client lookup without a reply times out") {
  client_link l;
  l.cut = true;
  client_effects out;
  auto id = l.agent.lookup(l.now, {"x"}, 0, out);
  REQUIRE(id.ok());
  l.carry(out);
  l.run_for(4 * second);
  CHECK(l.results.empty());
  l.run_for(2 * second);
  REQUIRE(l.results.size() == 1);
  CHECK(l.results[0].request_id == *id);
  CHECK(l.results[0].timed_out);
}
