// Tests for actors/rmb: the envelope signature, the pure agent machine (acknowledgement, retries,
// expiry, deduplication, errors back to the sender) and its LMDB store across a crash. Agents are
// driven with explicit times through a tiny in-memory network that can drop messages.
#include <doctest/doctest.h>

#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "actors/rmb/rmb_envelope.hpp"
#include "actors/rmb/rmb_machine.hpp"
#include "actors/rmb/rmb_store.hpp"
#include "messages/codec.hpp"
#include "runtime/store/store.hpp"

namespace {

using namespace cmesh;
using namespace cmesh::rmb;

constexpr int64_t t0 = 1'700'000'000'000'000;  // µs since the Unix epoch (late 2023)
constexpr int64_t second = 1'000'000;

identity twin(uint8_t n) {
  std::array<uint8_t, 32> seed{};
  seed.fill(n);
  return identity::from_seed(seed);
}

node_id agent_node(uint8_t n) {
  node_id id;
  id.key.fill(n);
  id.key[31] = 0xa0;
  return id;
}

config config_for(const node_id& self) {
  config cfg;
  cfg.self = self;
  return cfg;
}

// A fresh directory under /tmp, removed recursively when the test ends.
class temp_directory {
public:
  temp_directory() {
    char pattern[] = "/tmp/cmesh-rmb-test-XXXXXX";
    const char* made = ::mkdtemp(pattern);
    REQUIRE(made != nullptr);
    path_ = made;
  }
  ~temp_directory() {
    const std::string command = "rm -rf '" + path_ + "'";
    const int rc = std::system(command.c_str());
    (void)rc;
  }
  const std::string& path() const { return path_; }

private:
  std::string path_;
};

// Agents connected by an in-memory network. Every effect is logged per agent; sends are delivered
// at once (in order) unless `drop` says otherwise; persist lists go to the agent's store if it
// has one (before its sends are delivered: persist before send).
struct world {
  int64_t now = t0;
  std::map<node_id, machine*> agents;
  std::map<node_id, message_store*> stores;
  std::map<node_id, std::vector<delivery>> delivered;
  std::map<node_id, std::vector<outcome>> outcomes;
  std::map<node_id, std::vector<store_op>> persisted;
  std::map<node_id, std::vector<node_id>> lookups;
  std::vector<std::pair<node_id, outgoing>> sent;  // (from, message), dropped ones included
  std::function<bool(const node_id& from, const outgoing&)> drop;

  void settle(const node_id& at, effects& out) {
    std::deque<std::pair<node_id, effects>> pending;
    pending.emplace_back(at, std::move(out));
    out.clear();
    while (!pending.empty()) {
      auto [who, fx] = std::move(pending.front());
      pending.pop_front();
      if (auto store = stores.find(who); store != stores.end() && !fx.persist.empty()) {
        auto st = store->second->persist(fx.persist);
        REQUIRE_MESSAGE(st.ok(), st.describe());
      }
      for (auto& op : fx.persist) persisted[who].push_back(op);
      for (auto& d : fx.deliveries) delivered[who].push_back(d);
      for (auto& o : fx.outcomes) outcomes[who].push_back(o);
      for (auto& l : fx.lookups) lookups[who].push_back(l);
      for (auto& s : fx.sends) {
        REQUIRE(s.to != who);
        sent.emplace_back(who, s);
        if (drop && drop(who, s)) continue;
        auto it = agents.find(s.to);
        if (it == agents.end()) continue;  // nobody there: lost
        effects next;
        it->second->on_message(now, who, s.message, next);
        pending.emplace_back(s.to, std::move(next));
      }
    }
  }
  result<message_uid> send(const node_id& at, const request& r) {
    effects out;
    auto uid = agents.at(at)->send(now, r, out);
    settle(at, out);
    return uid;
  }
  status reply(const node_id& at, const delivery& d, bytes data,
               status_code code = status_code::ok) {
    effects out;
    auto st = agents.at(at)->twin_reply(now, key_of(d.request), code, "", std::move(data), out);
    settle(at, out);
    return st;
  }
  void tick_all() {
    for (auto& [id, m] : agents) {
      effects out;
      m->tick(now, out);
      settle(id, out);
    }
  }
  // Advances time in steps of `step_us`, ticking every agent after each step.
  void run_for(int64_t duration_us, int64_t step_us = 100'000) {
    for (int64_t end = now + duration_us; now < end;) {
      now = std::min(now + step_us, end);
      tick_all();
    }
  }
  // Sends of twin envelopes from `from` (any kind), in order.
  std::vector<twin_envelope> envelopes_from(const node_id& from) const {
    std::vector<twin_envelope> found;
    for (const auto& [who, s] : sent)
      if (who == from)
        if (auto* env = std::get_if<twin_envelope>(&s.message)) found.push_back(*env);
    return found;
  }
  std::vector<envelope_ack> acks_from(const node_id& from) const {
    std::vector<envelope_ack> found;
    for (const auto& [who, s] : sent)
      if (who == from)
        if (auto* ack = std::get_if<envelope_ack>(&s.message)) found.push_back(*ack);
    return found;
  }
};

// Two agents: A hosts twin a, B hosts twin b, each knows where the other's twin lives.
struct two_agents {
  identity a = twin(1), b = twin(2);
  node_id node_a = agent_node(1), node_b = agent_node(2);
  std::unique_ptr<machine> agent_a, agent_b;
  world net;

  explicit two_agents(config cfg_a = config_for(agent_node(1)),
                      config cfg_b = config_for(agent_node(2)), uint64_t seed = 7) {
    agent_a = std::make_unique<machine>(cfg_a, seed);
    agent_b = std::make_unique<machine>(cfg_b, seed + 1);
    REQUIRE(agent_a->host_twin(a).ok());
    REQUIRE(agent_b->host_twin(b).ok());
    net.agents[node_a] = agent_a.get();
    net.agents[node_b] = agent_b.get();
    effects out;
    agent_a->register_twin_location(net.now, b.public_key, node_b, out);
    agent_b->register_twin_location(net.now, a.public_key, node_a, out);
    CHECK(out.sends.empty());
  }
  request command(std::string name = "ping", bytes data = {1, 2, 3}, uint32_t expiry_s = 0) {
    return {a.public_key, b.public_key, std::move(name), std::move(data), expiry_s};
  }
  message_uid send_ok(const request& r) {
    auto uid = net.send(node_a, r);
    REQUIRE_MESSAGE(uid.ok(), uid.err().describe());
    return *uid;
  }
};

// A request signed by `signer` as its source, addressed to `to`, created at `created_ms`.
twin_envelope signed_request(const identity& signer, const node_id& to, uint64_t created_ms,
                             uint32_t expiry_s = 300, uint8_t uid_byte = 1) {
  twin_envelope env;
  env.uid = bytes(uid_bytes, uid_byte);
  env.kind = static_cast<uint8_t>(envelope_kind::request);
  env.created_ms = created_ms;
  env.expiry_s = expiry_s;
  env.destination = to_bytes(to);
  env.command = "do";
  env.data = {9, 9};
  sign_envelope(env, signer);
  return env;
}

const outcome& only_outcome(world& net, const node_id& agent) {
  REQUIRE(net.outcomes[agent].size() == 1);
  return net.outcomes[agent].front();
}

}  // namespace

// ---- envelope signatures ---------------------------------------------------------------------

TEST_CASE("rmb envelope signature verifies and survives the wire encoding") {
  auto a = twin(1);
  auto env = signed_request(a, twin(2).public_key, t0 / 1000);
  CHECK(env.source == to_bytes(a.public_key));
  CHECK(env.signature.size() == signature_bytes);
  CHECK(well_formed(env));
  CHECK(verify_envelope(env));
  auto packed = pack_value(env);
  REQUIRE(packed.ok());
  auto decoded = unpack_value<twin_envelope>(packed->data(), packed->size());
  REQUIRE(decoded.ok());
  CHECK(verify_envelope(*decoded));
  CHECK(encoded_size(env) == packed->size());
  // Deterministic: signing the same fields again gives the same signature.
  auto again = env;
  sign_envelope(again, a);
  CHECK(again.signature == env.signature);
}

TEST_CASE("rmb envelope any tampered field breaks the signature") {
  auto a = twin(1);
  const auto original = signed_request(a, twin(2).public_key, t0 / 1000);
  std::vector<std::pair<const char*, std::function<void(twin_envelope&)>>> tamper = {
      {"uid", [](twin_envelope& e) { e.uid[0] ^= 1; }},
      {"kind", [](twin_envelope& e) { e.kind = 1; }},
      {"created_ms", [](twin_envelope& e) { e.created_ms += 1; }},
      {"expiry_s", [](twin_envelope& e) { e.expiry_s += 1; }},
      {"source", [](twin_envelope& e) { e.source = to_bytes(twin(3).public_key); }},
      {"destination", [](twin_envelope& e) { e.destination[5] ^= 0x80; }},
      {"command", [](twin_envelope& e) { e.command = "dO"; }},
      {"data", [](twin_envelope& e) { e.data.push_back(0); }},
      {"reply_to", [](twin_envelope& e) { e.reply_to = bytes(uid_bytes, 0); }},
      {"status", [](twin_envelope& e) { e.status = 8; }},
      {"reason", [](twin_envelope& e) { e.reason = "x"; }},
      {"signature", [](twin_envelope& e) { e.signature[63] ^= 1; }},
      {"version", [](twin_envelope& e) { e.version = 2; }},
  };
  for (auto& [field, change] : tamper) {
    CAPTURE(field);
    auto copy = original;
    change(copy);
    CHECK_FALSE(verify_envelope(copy));
  }
  auto short_signature = original;
  short_signature.signature.resize(10);
  CHECK_FALSE(verify_envelope(short_signature));  // never reads past the end
}

// ---- refusals --------------------------------------------------------------------------------

TEST_CASE("rmb tampered envelope is refused as bad_signature and the sender is told") {
  two_agents t;
  // Everything A sends is tampered with on the way (its data changes, its signature does not).
  t.net.drop = [&](const node_id& from, const outgoing& s) {
    if (from != t.node_a) return false;
    auto env = std::get<twin_envelope>(s.message);
    env.data = {6, 6, 6};
    effects out;
    t.agent_b->on_message(t.net.now, from, env, out);
    t.net.settle(t.node_b, out);
    return true;
  };
  auto uid = t.send_ok(t.command());
  CHECK(t.net.delivered[t.node_b].empty());
  auto acks = t.net.acks_from(t.node_b);
  REQUIRE(acks.size() == 1);
  CHECK(acks[0].status == static_cast<uint8_t>(status_code::bad_signature));
  const auto& o = only_outcome(t.net, t.node_a);
  CHECK(o.uid == uid);
  CHECK(o.twin == t.a.public_key);
  CHECK(o.code == status_code::bad_signature);
  CHECK_FALSE(o.reason.empty());
  CHECK(t.agent_a->outbox().empty());
  CHECK(t.agent_b->dedup().empty());  // nothing of a refused envelope is remembered
}

TEST_CASE("rmb unknown twin is refused with a reason") {
  two_agents t;
  auto stranger = twin(9).public_key;  // B does not host it, but A believes it does
  effects out;
  t.agent_a->register_twin_location(t.net.now, stranger, t.node_b, out);
  auto r = t.command();
  r.destination = stranger;
  t.send_ok(r);
  CHECK(t.net.delivered[t.node_b].empty());
  const auto& o = only_outcome(t.net, t.node_a);
  CHECK(o.code == status_code::unknown_twin);
  CHECK(o.reason.find("not hosted") != std::string::npos);
  CHECK(t.agent_a->outbox().empty());
}

TEST_CASE("rmb a source twin that is not hosted cannot send") {
  two_agents t;
  auto r = t.command();
  r.source = t.b.public_key;  // hosted by B, not by A
  auto uid = t.net.send(t.node_a, r);
  REQUIRE_FALSE(uid.ok());
  CHECK(uid.err().code == errc::not_found);
  CHECK(t.net.sent.empty());
}

TEST_CASE("rmb oversized envelope is refused as too_large at either end") {
  SUBCASE("the sender refuses to send it") {
    two_agents t;
    auto uid = t.net.send(t.node_a, t.command("big", bytes(70 * 1024, 1)));
    REQUIRE_FALSE(uid.ok());
    CHECK(uid.err().code == errc::too_large);
    CHECK(t.net.sent.empty());
    CHECK(t.agent_a->outbox().empty());
  }
  SUBCASE("the receiver refuses it and the sender is told") {
    auto small = config_for(agent_node(2));
    small.envelope_bytes_max = 1024;
    two_agents t(config_for(agent_node(1)), small);
    t.send_ok(t.command("big", bytes(4000, 1)));
    CHECK(t.net.delivered[t.node_b].empty());
    const auto& o = only_outcome(t.net, t.node_a);
    CHECK(o.code == status_code::too_large);
    CHECK(o.reason.find("exceeds 1024") != std::string::npos);
  }
  SUBCASE("an over-long command is refused before signing") {
    two_agents t;
    auto uid = t.net.send(t.node_a, t.command(std::string(300, 'c')));
    REQUIRE_FALSE(uid.ok());
    CHECK(uid.err().code == errc::too_large);
  }
}

// ---- expiry ----------------------------------------------------------------------------------

TEST_CASE("rmb expiry defaults to 300 s and a requested 3600 s is capped at 1800 s") {
  two_agents t;
  t.net.drop = [](const node_id&, const outgoing&) { return true; };
  t.send_ok(t.command("default"));
  t.send_ok(t.command("long", {}, 3600));
  t.send_ok(t.command("short", {}, 5));
  auto sent = t.net.envelopes_from(t.node_a);
  REQUIRE(sent.size() == 3);
  CHECK(sent[0].expiry_s == 300);
  CHECK(sent[1].expiry_s == 1800);
  CHECK(sent[2].expiry_s == 5);
  CHECK(sent[0].created_ms == static_cast<uint64_t>(t0 / 1000));
}

TEST_CASE("rmb an envelope claiming more than the expiry cap is refused") {
  two_agents t;
  auto env = signed_request(t.a, t.b.public_key, t.net.now / 1000, 3600);
  REQUIRE(verify_envelope(env));
  effects out;
  t.agent_b->on_message(t.net.now, t.node_a, env, out);
  REQUIRE(out.sends.size() == 1);
  auto ack = std::get<envelope_ack>(out.sends[0].message);
  CHECK(ack.status == static_cast<uint8_t>(status_code::malformed));
  CHECK(ack.reason.find("expiry_s") != std::string::npos);
  CHECK(out.deliveries.empty());
}

TEST_CASE("rmb expired envelope is refused and the error goes back to the sender") {
  two_agents t;
  // Hold A's first send and deliver it to B after the envelope's 300 s have passed.
  std::optional<twin_envelope> held;
  t.net.drop = [&](const node_id& from, const outgoing& s) {
    if (from != t.node_a || held) return false;
    held = std::get<twin_envelope>(s.message);
    return true;
  };
  auto uid = t.send_ok(t.command());
  REQUIRE(held);
  t.net.now += 301 * second;
  effects out;
  t.agent_b->on_message(t.net.now, t.node_a, *held, out);
  t.net.settle(t.node_b, out);
  CHECK(t.net.delivered[t.node_b].empty());
  const auto& o = only_outcome(t.net, t.node_a);
  CHECK(o.uid == uid);
  CHECK(o.code == status_code::expired);
}

TEST_CASE("rmb a message that expires before any acknowledgement is reported expired") {
  two_agents t;
  t.net.drop = [](const node_id&, const outgoing&) { return true; };  // B never answers
  auto uid = t.send_ok(t.command("short", {}, 20));
  t.net.run_for(25 * second);
  const auto& o = only_outcome(t.net, t.node_a);
  CHECK(o.uid == uid);
  CHECK(o.code == status_code::expired);
  CHECK(o.reason == "expired before acknowledgement");
  CHECK(t.agent_a->outbox().empty());
}

TEST_CASE("rmb an acknowledged request with no reply before expiry is reported expired") {
  two_agents t;
  t.send_ok(t.command("slow", {}, 30));
  REQUIRE(t.net.delivered[t.node_b].size() == 1);  // B's twin never answers
  t.net.run_for(29 * second);
  CHECK(t.net.outcomes[t.node_a].empty());
  t.net.run_for(2 * second);
  const auto& o = only_outcome(t.net, t.node_a);
  CHECK(o.code == status_code::expired);
  CHECK(o.reason == "no reply before expiry");
  // A late answer from the twin is refused: nobody waits for it any more.
  effects out;
  auto late = t.agent_b->twin_reply(t.net.now, key_of(t.net.delivered[t.node_b][0].request),
                                    status_code::ok, "", {}, out);
  CHECK(late.code == errc::timeout);
  CHECK(out.sends.empty());
}

// ---- retries ---------------------------------------------------------------------------------

TEST_CASE("rmb undeliverable after capped retries produces an error back to the sender") {
  two_agents t;
  t.net.drop = [](const node_id&, const outgoing&) { return true; };
  auto uid = t.send_ok(t.command());
  t.net.run_for(299 * second, 200'000);
  auto attempts = t.net.envelopes_from(t.node_a);
  CHECK(attempts.size() == t.agent_a->configuration().attempts_max);
  for (const auto& env : attempts) CHECK(key_of(env).uid == uid);  // the same envelope each time
  const auto& o = only_outcome(t.net, t.node_a);
  CHECK(o.uid == uid);
  CHECK(o.code == status_code::undeliverable);
  CHECK(o.reason.find("no acknowledgement after 10 attempts") != std::string::npos);
  CHECK(t.agent_a->outbox().empty());
  // The outbox record is erased from storage with it.
  const auto& ops = t.net.persisted[t.node_a];
  REQUIRE(ops.size() == 2);
  CHECK(ops[0].what == store_op::action::put_outbox);
  CHECK(ops[1].what == store_op::action::erase_outbox);
}

TEST_CASE("rmb a twin with no known agent gets lookups then undeliverable") {
  two_agents t;
  auto r = t.command();
  r.destination = twin(5).public_key;  // nobody registered it
  auto uid = t.send_ok(r);
  CHECK(t.net.sent.empty());
  REQUIRE(t.net.lookups[t.node_a].size() == 1);
  CHECK(t.net.lookups[t.node_a][0] == twin(5).public_key);
  t.net.run_for(299 * second, 200'000);
  CHECK(t.net.lookups[t.node_a].size() == t.agent_a->configuration().attempts_max);
  const auto& o = only_outcome(t.net, t.node_a);
  CHECK(o.uid == uid);
  CHECK(o.code == status_code::undeliverable);
  CHECK(o.reason.find("no route") != std::string::npos);
}

TEST_CASE("rmb a registered location sends a waiting message at once") {
  two_agents t;
  auto third = twin(5);
  machine agent_c(config_for(agent_node(3)), 99);
  REQUIRE(agent_c.host_twin(third).ok());
  t.net.agents[agent_node(3)] = &agent_c;
  auto r = t.command();
  r.destination = third.public_key;
  t.send_ok(r);
  CHECK(t.net.delivered[agent_node(3)].empty());
  effects out;
  t.agent_a->register_twin_location(t.net.now, third.public_key, agent_node(3), out);
  t.net.settle(t.node_a, out);
  REQUIRE(t.net.delivered[agent_node(3)].size() == 1);
  CHECK(t.net.delivered[agent_node(3)][0].twin == third.public_key);
}

TEST_CASE("rmb ack stops retries") {
  two_agents t;
  t.send_ok(t.command());
  REQUIRE(t.net.delivered[t.node_b].size() == 1);
  t.net.run_for(200 * second, 200'000);
  CHECK(t.net.envelopes_from(t.node_a).size() == 1);  // sent once, acknowledged, never again
  CHECK(t.net.outcomes[t.node_a].empty());            // still waiting for the reply
  REQUIRE(t.agent_a->outbox().size() == 1);
  CHECK(t.agent_a->outbox().begin()->second.acknowledged);
}

TEST_CASE("rmb retry backoff doubles with seeded jitter up to its cap") {
  auto schedule = [](uint64_t seed) {
    two_agents t(config_for(agent_node(1)), config_for(agent_node(2)), seed);
    std::vector<int64_t> times;
    t.net.drop = [&](const node_id& from, const outgoing&) {
      if (from == t.node_a) times.push_back(t.net.now);
      return true;
    };
    t.send_ok(t.command());
    t.net.run_for(280 * second, 10'000);
    return times;
  };
  auto times = schedule(7);
  const auto& cfg = config_for(agent_node(1));
  REQUIRE(times.size() == cfg.attempts_max);
  for (size_t i = 1; i < times.size(); ++i) {
    CAPTURE(i);
    int64_t base_ms = std::min<int64_t>(int64_t{cfg.retry_delay_ms_min} << (i - 1),
                                        cfg.retry_delay_ms_max);
    int64_t gap_ms = (times[i] - times[i - 1]) / 1000;
    // Jitter is within [0.75, 1.25] of the base; ticks add up to 10 ms.
    CHECK(gap_ms >= base_ms * 3 / 4);
    CHECK(gap_ms <= base_ms * 5 / 4 + 10);
  }
  CHECK(times[4] - times[3] > times[2] - times[1]);  // it grows
  CHECK(schedule(7) == times);                       // same seed, same schedule
  CHECK(schedule(8) != times);                       // the jitter comes from the seed
}

TEST_CASE("rmb a refusal for overload keeps the sender retrying") {
  auto tight = config_for(agent_node(2));
  tight.dedup_entries_max = 1;
  two_agents t(config_for(agent_node(1)), tight);
  t.send_ok(t.command("first", {}, 10));
  auto second_uid = t.send_ok(t.command("second"));
  REQUIRE(t.net.delivered[t.node_b].size() == 1);
  auto acks = t.net.acks_from(t.node_b);
  REQUIRE(acks.size() == 2);
  CHECK(acks[1].status == static_cast<uint8_t>(status_code::overloaded));
  CHECK(t.agent_a->outbox().size() == 2);  // not given up
  // Once the first record is forgotten (10 s expiry + 60 s slack), a retry gets through.
  t.net.run_for(150 * second);
  REQUIRE(t.net.delivered[t.node_b].size() == 2);
  CHECK(key_of(t.net.delivered[t.node_b][1].request).uid == second_uid);
}

// ---- replies and deduplication ---------------------------------------------------------------

TEST_CASE("rmb a reply signed by the destination twin completes the request") {
  two_agents t;
  auto uid = t.send_ok(t.command("add", {2, 3}));
  REQUIRE(t.net.delivered[t.node_b].size() == 1);
  const auto& d = t.net.delivered[t.node_b][0];
  CHECK(d.twin == t.b.public_key);
  CHECK_FALSE(d.redelivery);
  CHECK(d.request.command == "add");
  REQUIRE(t.net.reply(t.node_b, d, {5}).ok());
  const auto& o = only_outcome(t.net, t.node_a);
  CHECK(o.uid == uid);
  CHECK(o.kind == envelope_kind::request);
  CHECK(o.code == status_code::ok);
  REQUIRE(o.reply);
  CHECK(o.reply->data == bytes{5});
  CHECK(o.reply->source == to_bytes(t.b.public_key));
  CHECK(o.reply->reply_to == to_bytes(uid));
  CHECK(verify_envelope(*o.reply));
  CHECK(t.agent_a->outbox().empty());
  // B's twin hears that its reply was delivered.
  const auto& reply_outcome = only_outcome(t.net, t.node_b);
  CHECK(reply_outcome.kind == envelope_kind::reply);
  CHECK(reply_outcome.code == status_code::ok);
  CHECK(t.agent_b->outbox().empty());
  // A second answer to the same request is refused.
  effects out;
  CHECK(t.agent_b->twin_reply(t.net.now, key_of(d.request), status_code::ok, "", {}, out).code ==
        errc::already_exists);
}

TEST_CASE("rmb a failed command comes back as command_failed with its reason") {
  two_agents t;
  t.send_ok(t.command("withdraw"));
  REQUIRE(t.net.delivered[t.node_b].size() == 1);
  effects out;
  REQUIRE(t.agent_b
              ->twin_reply(t.net.now, key_of(t.net.delivered[t.node_b][0].request),
                           status_code::command_failed, "insufficient funds", {}, out)
              .ok());
  t.net.settle(t.node_b, out);
  const auto& o = only_outcome(t.net, t.node_a);
  CHECK(o.code == status_code::command_failed);
  CHECK(o.reason == "insufficient funds");
}

TEST_CASE("rmb duplicate uid runs the handler once and re-sends the cached reply") {
  two_agents t;
  // Lose B's first ack and first reply: A retries the request.
  int acks_lost = 0, replies_lost = 0;
  t.net.drop = [&](const node_id& from, const outgoing& s) -> bool {
    if (from != t.node_b) return false;
    if (std::holds_alternative<envelope_ack>(s.message) && acks_lost == 0) return ++acks_lost;
    if (std::holds_alternative<twin_envelope>(s.message) && replies_lost == 0)
      return ++replies_lost;
    return false;
  };
  auto uid = t.send_ok(t.command("transfer", {100}));
  REQUIRE(t.net.delivered[t.node_b].size() == 1);
  REQUIRE(t.net.reply(t.node_b, t.net.delivered[t.node_b][0], {42}).ok());
  CHECK(t.net.outcomes[t.node_a].empty());  // ack and reply both lost so far
  t.net.run_for(2 * second);                // A's retry arrives at B
  CHECK(t.net.envelopes_from(t.node_a).size() >= 2);
  CHECK(t.net.delivered[t.node_b].size() == 1);  // the handler ran once
  const auto& o = only_outcome(t.net, t.node_a);
  CHECK(o.uid == uid);
  REQUIRE(o.reply);
  CHECK(o.reply->data == bytes{42});
  // The reply that reached A is the cached one: the same uid and signature as the lost one.
  auto replies = t.net.envelopes_from(t.node_b);
  REQUIRE(replies.size() >= 2);
  CHECK(replies[0].uid == replies[1].uid);
  CHECK(replies[0].signature == replies[1].signature);
}

TEST_CASE("rmb the same envelope delivered twice reaches the twin once") {
  two_agents t;
  auto env = signed_request(t.a, t.b.public_key, t.net.now / 1000);
  for (int i = 0; i < 3; ++i) {
    effects out;
    t.agent_b->on_message(t.net.now + i, t.node_a, env, out);
    CHECK(out.deliveries.size() == (i == 0 ? 1u : 0u));
    REQUIRE(out.sends.size() == 1);
    CHECK(std::get<envelope_ack>(out.sends[0].message).status == 0);  // every copy is acked
  }
  CHECK(t.agent_b->dedup().size() == 1);
}

TEST_CASE("rmb twins on one agent talk through its loopback") {
  config cfg = config_for(agent_node(1));
  machine agent(cfg, 3);
  auto a = twin(1), c = twin(3);
  REQUIRE(agent.host_twin(a).ok());
  REQUIRE(agent.host_twin(c).ok());
  effects out;
  auto uid = agent.send(t0, {a.public_key, c.public_key, "hello", {1}, 0}, out);
  REQUIRE(uid.ok());
  CHECK(out.sends.empty());
  REQUIRE(out.deliveries.size() == 1);
  auto request_key = key_of(out.deliveries[0].request);
  out.clear();
  REQUIRE(agent.twin_reply(t0 + 10, request_key, status_code::ok, "", {2}, out).ok());
  CHECK(out.sends.empty());
  REQUIRE(out.outcomes.size() == 2);  // a's request answered, c's reply acknowledged
  CHECK(out.outcomes[0].twin == a.public_key);
  CHECK(out.outcomes[0].uid == *uid);
  REQUIRE(out.outcomes[0].reply);
  CHECK(out.outcomes[0].reply->data == bytes{2});
  CHECK(out.outcomes[1].twin == c.public_key);
  CHECK(out.outcomes[1].kind == envelope_kind::reply);
  CHECK(agent.outbox().empty());
}

TEST_CASE("rmb an ack from an agent the message was not sent to is ignored") {
  two_agents t;
  t.net.drop = [](const node_id&, const outgoing&) { return true; };
  auto uid = t.send_ok(t.command());
  envelope_ack forged{to_bytes(uid), to_bytes(t.a.public_key),
                      static_cast<uint8_t>(status_code::unknown_twin), "lies"};
  effects out;
  t.agent_a->on_message(t.net.now, agent_node(7), forged, out);
  CHECK(out.outcomes.empty());
  REQUIRE(out.events.size() == 1);
  CHECK(out.events[0].kind == event_kind::ack_ignored);
  CHECK(t.agent_a->outbox().size() == 1);
}

// ---- bounds and forgetting -------------------------------------------------------------------

TEST_CASE("rmb dedup table is bounded and forgets entries only after expiry") {
  auto tight = config_for(agent_node(2));
  tight.dedup_entries_max = 2;
  tight.dedup_slack_ms = 5000;
  two_agents t(config_for(agent_node(1)), tight);
  std::vector<twin_envelope> envs;
  for (uint8_t i = 1; i <= 3; ++i)
    envs.push_back(signed_request(t.a, t.b.public_key, t.net.now / 1000, 10, i));
  effects out;
  for (const auto& env : envs) t.agent_b->on_message(t.net.now, t.node_a, env, out);
  CHECK(out.deliveries.size() == 2);
  CHECK(t.agent_b->dedup().size() == 2);
  REQUIRE(out.sends.size() == 3);
  CHECK(std::get<envelope_ack>(out.sends[2].message).status ==
        static_cast<uint8_t>(status_code::overloaded));

  // Kept through expiry + slack (a retry inside that window is still a duplicate) ...
  out.clear();
  t.agent_b->tick(t.net.now + 14 * second, out);
  CHECK(t.agent_b->dedup().size() == 2);
  t.agent_b->on_message(t.net.now + 9 * second, t.node_a, envs[0], out);
  CHECK(out.deliveries.empty());
  // ... then dropped, durably.
  out.clear();
  t.agent_b->tick(t.net.now + 15 * second, out);
  CHECK(t.agent_b->dedup().empty());
  CHECK(t.agent_b->dedup_bytes() == 0);
  size_t erased = 0;
  for (const auto& op : out.persist) erased += op.what == store_op::action::erase_dedup;
  CHECK(erased == 2);
  // Dropping was safe: the forgotten envelope is refused as expired, never delivered again.
  out.clear();
  t.agent_b->on_message(t.net.now + 15 * second, t.node_a, envs[0], out);
  CHECK(out.deliveries.empty());
  REQUIRE(out.sends.size() == 1);
  CHECK(std::get<envelope_ack>(out.sends[0].message).status ==
        static_cast<uint8_t>(status_code::expired));
}

TEST_CASE("rmb outbox and hosted twins are bounded") {
  auto tight = config_for(agent_node(1));
  tight.outbox_entries_max = 2;
  tight.twins_per_agent_max = 1;
  two_agents t(tight);
  t.net.drop = [](const node_id&, const outgoing&) { return true; };
  t.send_ok(t.command());
  t.send_ok(t.command());
  auto third = t.net.send(t.node_a, t.command());
  REQUIRE_FALSE(third.ok());
  CHECK(third.err().code == errc::unavailable);
  CHECK(t.agent_a->host_twin(twin(4)).code == errc::too_large);
  CHECK(t.agent_a->host_twin(t.a).ok());  // re-hosting the same twin is fine
}

TEST_CASE("rmb config validation names the bad field") {
  auto cfg = config_for(agent_node(1));
  CHECK(validate(cfg).ok());
  cfg.expiry_s_default = 3600;
  auto st = validate(cfg);
  CHECK(st.code == errc::invalid_argument);
  CHECK(st.message.find("expiry_s_default") != std::string::npos);
  cfg = config_for(agent_node(1));
  cfg.retry_delay_ms_min = 0;
  CHECK(validate(cfg).message.find("retry_delay_ms_min") != std::string::npos);
}

// ---- crash and restart -----------------------------------------------------------------------

namespace {

// Agent B with its own LMDB store in simulate_crashes mode: a crash keeps exactly what was synced.
struct durable_b {
  temp_directory dir;
  std::unique_ptr<store> storage;
  std::optional<message_store> messages;

  void open() {
    store_options options;
    options.map_bytes = limits::store_map_bytes_sim;
    options.durable = false;
    options.simulate_crashes = true;
    auto opened = store::open(dir.path() + "/b", options);
    REQUIRE_MESSAGE(opened.ok(), opened.err().describe());
    storage = std::move(opened).value();
    auto ms = message_store::open(*storage);
    REQUIRE(ms.ok());
    messages.emplace(std::move(ms).value());
  }
  void crash() {
    messages.reset();
    storage->simulate_crash();
    storage.reset();
  }
  restored_state load() {
    auto state = messages->load();
    REQUIRE_MESSAGE(state.ok(), state.err().describe());
    return std::move(state).value();
  }
};

// Replaces t's agent B by a fresh machine restored from B's store.
void restart_b(two_agents& t, durable_b& disk, effects& out) {
  disk.crash();
  disk.open();
  t.agent_b = std::make_unique<machine>(config_for(t.node_b), 1234);
  REQUIRE(t.agent_b->host_twin(t.b).ok());
  t.net.agents[t.node_b] = t.agent_b.get();
  t.net.stores[t.node_b] = &*disk.messages;
  t.agent_b->restore(t.net.now, disk.load(), out);
}

}  // namespace

TEST_CASE("rmb a retried command takes effect once across a crash of the receiver") {
  two_agents t;
  durable_b disk;
  disk.open();
  t.net.stores[t.node_b] = &*disk.messages;
  // B's acks and replies are lost until B has crashed, and so is the first reply B's restored
  // outbox sends again: A can only get its answer by retrying the request.
  bool b_crashed = false;
  int resends_lost = 0;
  t.net.drop = [&](const node_id& from, const outgoing& s) -> bool {
    if (from != t.node_b) return false;
    if (!b_crashed) return true;
    return std::holds_alternative<twin_envelope>(s.message) && resends_lost++ == 0;
  };
  auto uid = t.send_ok(t.command("credit", {10}));
  REQUIRE(t.net.delivered[t.node_b].size() == 1);
  REQUIRE(t.net.reply(t.node_b, t.net.delivered[t.node_b][0], {1}).ok());
  CHECK(t.net.outcomes[t.node_a].empty());

  effects out;
  restart_b(t, disk, out);
  b_crashed = true;
  CHECK(out.deliveries.empty());  // answered before the crash: nothing to redeliver
  REQUIRE(t.agent_b->dedup().size() == 1);
  CHECK(t.agent_b->dedup().begin()->second.state == dedup_state::replied);
  t.net.settle(t.node_b, out);  // the restored outbox re-sends the reply (lost)
  CHECK(resends_lost == 1);
  CHECK(t.net.outcomes[t.node_a].empty());

  t.net.run_for(3 * second);  // A's retry of the request arrives: a duplicate
  CHECK(t.net.delivered[t.node_b].size() == 1);  // the command took effect once
  const auto& o = only_outcome(t.net, t.node_a);
  CHECK(o.uid == uid);
  CHECK(o.code == status_code::ok);
  REQUIRE(o.reply);
  CHECK(o.reply->data == bytes{1});
}

TEST_CASE("rmb a request accepted but unanswered before a crash is redelivered once") {
  two_agents t;
  durable_b disk;
  disk.open();
  t.net.stores[t.node_b] = &*disk.messages;
  bool b_crashed = false;
  t.net.drop = [&](const node_id& from, const outgoing&) { return from == t.node_b && !b_crashed; };
  t.send_ok(t.command("credit", {10}));
  REQUIRE(t.net.delivered[t.node_b].size() == 1);  // the twin crashed with the node, no reply

  effects out;
  restart_b(t, disk, out);
  b_crashed = true;
  REQUIRE(out.deliveries.size() == 1);
  CHECK(out.deliveries[0].redelivery);
  CHECK(out.deliveries[0].request.command == "credit");
  t.net.settle(t.node_b, out);
  t.net.run_for(3 * second);  // A's retries are duplicates now: no second handover
  REQUIRE(t.net.delivered[t.node_b].size() == 2);  // the original and the one redelivery
  CHECK(t.net.delivered[t.node_b][1].redelivery);
  REQUIRE(t.net.reply(t.node_b, t.net.delivered[t.node_b][1], {7}).ok());
  const auto& o = only_outcome(t.net, t.node_a);
  REQUIRE(o.reply);
  CHECK(o.reply->data == bytes{7});
}

TEST_CASE("rmb without persist before send a crash would run the command twice") {
  // The control for the two tests above: the same scenario with a store that loses B's records
  // (nothing persisted) hands the retried command to the twin a second time. This is what the
  // persist effects prevent.
  two_agents t;
  bool b_crashed = false;
  t.net.drop = [&](const node_id& from, const outgoing&) { return from == t.node_b && !b_crashed; };
  t.send_ok(t.command("credit", {10}));
  REQUIRE(t.net.delivered[t.node_b].size() == 1);
  REQUIRE(t.net.reply(t.node_b, t.net.delivered[t.node_b][0], {1}).ok());
  t.agent_b = std::make_unique<machine>(config_for(t.node_b), 1234);
  REQUIRE(t.agent_b->host_twin(t.b).ok());
  t.net.agents[t.node_b] = t.agent_b.get();
  b_crashed = true;
  effects out;
  t.agent_b->restore(t.net.now, {}, out);
  t.net.run_for(3 * second);
  CHECK(t.net.delivered[t.node_b].size() == 2);
}

TEST_CASE("rmb a restarted sender re-sends its outbox and expired entries get their outcome") {
  two_agents t;
  t.net.drop = [](const node_id&, const outgoing&) { return true; };
  t.send_ok(t.command("keep"));
  t.send_ok(t.command("lapse", {}, 5));
  restored_state saved;
  for (const auto& op : t.net.persisted[t.node_a]) {
    REQUIRE(op.what == store_op::action::put_outbox);
    saved.outbox.push_back(op.outbox);
  }
  REQUIRE(saved.outbox.size() == 2);
  machine fresh(config_for(t.node_a), 77);
  REQUIRE(fresh.host_twin(t.a).ok());
  effects out;
  fresh.restore(t.net.now + 10 * second, saved, out);
  REQUIRE(out.sends.size() == 1);
  CHECK(std::get<twin_envelope>(out.sends[0].message).command == "keep");
  CHECK(out.sends[0].to == t.node_b);
  REQUIRE(out.outcomes.size() == 1);
  CHECK(out.outcomes[0].code == status_code::expired);
  CHECK(fresh.outbox().size() == 1);
}

TEST_CASE("rmb store keeps dedup and outbox records across reopen") {
  durable_b disk;
  disk.open();
  auto a = twin(1);
  auto env = signed_request(a, twin(2).public_key, t0 / 1000);
  dedup_record rec{key_of(env), dedup_state::accepted, 123, agent_node(1), env, std::nullopt};
  outbox_record box{env, agent_node(2)};
  REQUIRE(disk.messages->persist({store_op::put(rec), store_op::put(box)}).ok());
  disk.crash();
  disk.open();
  auto state = disk.load();
  REQUIRE(state.dedup.size() == 1);
  CHECK(state.dedup[0].key == key_of(env));
  CHECK(state.dedup[0].forget_at_ms == 123);
  CHECK(state.dedup[0].reply_node == agent_node(1));
  REQUIRE(state.dedup[0].request);
  CHECK(verify_envelope(*state.dedup[0].request));
  CHECK_FALSE(state.dedup[0].reply);
  REQUIRE(state.outbox.size() == 1);
  CHECK(state.outbox[0].to_node == agent_node(2));
  REQUIRE(disk.messages
              ->persist({store_op::erase(store_op::action::erase_dedup, key_of(env)),
                         store_op::erase(store_op::action::erase_outbox, key_of(env))})
              .ok());
  auto empty = disk.load();
  CHECK(empty.dedup.empty());
  CHECK(empty.outbox.empty());
}

TEST_CASE("rmb hosted twin: the twin's consent verifies for its agent only and breaks when altered") {
  crypto_init();
  auto twin = identity::derive_for_simulation(77, 1);
  auto agent = identity::derive_for_simulation(77, 2).public_key;
  auto other = identity::derive_for_simulation(77, 3).public_key;
  auto entry = sign_hosted(twin, agent);
  CHECK(verify_hosted(entry, agent));
  CHECK_FALSE(verify_hosted(entry, other));  // a peer cannot claim another agent's twin
  auto altered = entry;
  altered.signature[10] ^= 1;
  CHECK_FALSE(verify_hosted(altered, agent));
  auto short_key = entry;
  short_key.twin.pop_back();
  CHECK_FALSE(verify_hosted(short_key, agent));
  // Signed by someone else for the twin: refused.
  auto impostor = sign_hosted(identity::derive_for_simulation(77, 4), agent);
  impostor.twin = entry.twin;
  CHECK_FALSE(verify_hosted(impostor, agent));
  // And it survives the wire.
  auto packed = pack_value(twins_hosted{{entry}});
  REQUIRE(packed.ok());
  auto back = unpack_value<twins_hosted>(packed->data(), packed->size());
  REQUIRE(back.ok());
  REQUIRE(back->twins.size() == 1);
  CHECK(verify_hosted(back->twins[0], agent));
}
