// The reputation actor alone under CAF's test_coordinator, driven by hand: a fake transport
// records what it sends through the seam; the test plays the node's peers and a client
// (cmesh reputation) with real ed25519 keys.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/reputation/reputation_actor.hpp"
#include "messages/codec.hpp"
#include "messages/reputation_messages.hpp"
#include "messages/seam.hpp"
#include "messages/services.hpp"
#include "runtime/core/event_sink.hpp"
#include "tests/sim/fake_seam.hpp"

using namespace cmesh::reputation;
using cmesh::bytes;
using cmesh::identity;
using cmesh::node_id;

using cmesh::testing::encode;
using cmesh::testing::fake_transport;
using cmesh::testing::recording_sink;
using cmesh::testing::sent_message;

namespace {

hash32 hash_of(const std::string& text) {
  return resource_hash(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  std::shared_ptr<std::vector<sent_message>> log = std::make_shared<std::vector<sent_message>>();
  recording_sink sink;
  std::vector<caf::actor> actors;
  caf::actor rep;
  identity node = identity::derive_for_simulation(9, 0);
  identity client = identity::derive_for_simulation(9, 1);
  identity subject = identity::derive_for_simulation(9, 2);
  std::vector<identity> peers = {identity::derive_for_simulation(9, 3), identity::derive_for_simulation(9, 4),
                                 identity::derive_for_simulation(9, 5)};
  int64_t now_us = 0;  // the test coordinator's clock starts at the epoch


  fixture() : sys(cmesh::testing::testing_config(cfg)), sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())) {
    auto transport = sys.spawn(fake_transport, log);
    actors.push_back(transport);
    actor_context c;
    c.self = node.public_key;
    c.signer = node;
    c.rng_seed = 11;
    c.events = &sink;
    rep = spawn_reputation_actor(sys, transport, caf::actor{}, c);
    actors.push_back(rep);
    sched.run();
    for (const auto& p : peers) caf::anon_send(rep, cmesh::peer_up_atom::value, p.public_key, std::string("sim:1"));
    sched.run();
    sched.run();
  }

  ~fixture() {
    for (const auto& a : actors) caf::anon_send_exit(a, caf::exit_reason::kill);
    sched.run();
  }

  void deliver(const node_id& from, bytes data) {
    log->clear();
    caf::anon_send(rep, cmesh::deliver_atom::value, from, cmesh::services::reputation, std::move(data));
    sched.run();
  }

  template <class T>
  std::vector<std::pair<uint64_t, T>> sent_of_type(const node_id& to) const {
    std::vector<std::pair<uint64_t, T>> found;
    for (const auto& s : *log) {
      if (s.to != to || s.service != cmesh::services::reputation) continue;
      auto env = cmesh::decode_envelope(s.data.data(), s.data.size());
      REQUIRE(env.ok());
      if (env->type != T::type_id) continue;
      auto m = cmesh::decode_payload<T>(*env);
      REQUIRE(m.ok());
      found.push_back({env->correlation, *m});
    }
    return found;
  }

  // The client submits `claim` with correlation 77; returns the node's claim_result.
  claim_result submit(const wire_message& claim) {
    deliver(client.public_key,
            std::visit([&](const auto& m) { return encode(client.public_key, 77, m); }, claim));
    auto answers = sent_of_type<claim_result>(client.public_key);
    REQUIRE(answers.size() == 1);
    CHECK(answers[0].first == 77);
    return answers[0].second;
  }

  score_reply query(const node_id& who, uint32_t reports_max = 16) {
    deliver(client.public_key,
            encode(client.public_key, 5, score_query{bytes(who.key.begin(), who.key.end()), reports_max}));
    auto answers = sent_of_type<score_reply>(client.public_key);
    REQUIRE(answers.size() == 1);
    return answers[0].second;
  }

  size_t gossip_sends() const {
    size_t n = 0;
    for (const auto& p : peers) n += sent_of_type<report_gossip>(p.public_key).size();
    return n;
  }
};

}  // namespace

TEST_CASE("reputation actor: a client's endorsement is verified, counted and answered; a replay or a tampered copy is refused with the verdict") {
  fixture f;
  auto e = sign_endorsement(f.client.public_key, signer_for(f.client), f.subject.public_key,
                            hash_of("https://shop/order/17"), f.now_us, 1001);
  auto first = f.submit(e);
  CHECK(first.verdict == 0);
  CHECK(first.reason.empty());
  CHECK(first.score == 1);

  auto again = f.submit(e);
  CHECK(again.verdict == static_cast<uint8_t>(verdict::replay));
  CHECK(again.reason.rfind("replay:", 0) == 0);
  CHECK(again.score == 1);  // counted once

  auto tampered = sign_endorsement(f.client.public_key, signer_for(f.client), f.subject.public_key,
                                   hash_of("https://shop/order/18"), f.now_us, 1002);
  tampered.resource_hash[0] ^= 1;
  CHECK(f.submit(tampered).verdict == static_cast<uint8_t>(verdict::bad_signature));

  auto future = sign_endorsement(f.client.public_key, signer_for(f.client), f.subject.public_key,
                                 hash_of("x"), f.now_us + 3'600'000'000, 1003);
  CHECK(f.submit(future).verdict == static_cast<uint8_t>(verdict::from_future));

  auto card = f.query(f.subject.public_key);
  CHECK(card.status == score_ok);
  CHECK(card.score == 1);
  CHECK(card.endorsers == 1);
  CHECK(card.endorsements == 1);
  CHECK(f.sink.count("rejected", "verdict=replay") == 1);
  CHECK(f.sink.count("rejected", "verdict=bad_signature") == 1);
}

TEST_CASE("reputation actor: a client's report is gossiped to contacts once; a peer's copy gets no answer and is not passed on twice; a forged report goes nowhere") {
  fixture f;
  auto r = sign_report(f.client.public_key, signer_for(f.client), f.subject.public_key, 1,
                       hash_of("evidence"), f.now_us, 42);
  auto result = f.submit(report_gossip{r, 255});
  CHECK(result.verdict == 0);
  CHECK(result.score == -10);
  // Passed on to every contact (3 < fanout 8), never back to the client.
  CHECK(f.gossip_sends() == 3);
  for (const auto& p : f.peers) {
    auto copies = f.sent_of_type<report_gossip>(p.public_key);
    REQUIRE(copies.size() == 1);
    CHECK(copies[0].first == 0);  // peers get correlation 0: gossip, no answer expected
    CHECK(copies[0].second.hops_left == 1);  // clamped to report_hops_max - 1, then one hop used
    CHECK(copies[0].second.body.signature == r.signature);
  }

  // A peer's copy of the same report (correlation 0): refused as a replay, silently.
  f.deliver(f.peers[0].public_key, encode(f.peers[0].public_key, 0, report_gossip{r, 1}));
  CHECK(f.log->empty());

  // A report naming peer 1 as reporter but signed by peer 2: refused, not passed on.
  auto forged = sign_report(f.peers[1].public_key, signer_for(f.peers[2]), f.subject.public_key, 1,
                            hash_of("lies"), f.now_us, 43);
  f.deliver(f.peers[2].public_key, encode(f.peers[2].public_key, 0, report_gossip{forged, 2}));
  CHECK(f.log->empty());
  CHECK(f.sink.count("rejected", "verdict=bad_signature") == 1);

  auto card = f.query(f.subject.public_key);
  CHECK(card.score == -10);
  CHECK(card.reporters == 1);
  REQUIRE(card.reports.size() == 1);
  CHECK(card.reports[0].signature == r.signature);
  CHECK(verify_report(card.reports[0], f.now_us, 60'000'000) == verdict::accepted);
  CHECK(f.query(f.subject.public_key, 0).reports.empty());
}

TEST_CASE("reputation actor: malformed submissions and queries are answered with a reason and the actor keeps serving") {
  fixture f;
  // A claim_result type from a client is not a request: counted malformed, no answer.
  f.deliver(f.client.public_key, encode(f.client.public_key, 9, claim_result{0, "", 0}));
  CHECK(f.log->empty());
  CHECK(f.sink.count("malformed") == 1);

  // An endorsement whose payload is not one: answered "malformed".
  cmesh::envelope env;
  env.service = cmesh::services::reputation;
  env.type = endorsement::type_id;
  env.correlation = 3;
  env.source = f.client.public_key;
  env.payload = {0xc1};  // never valid msgpack
  auto raw = cmesh::encode_envelope(env);
  REQUIRE(raw.ok());
  f.deliver(f.client.public_key, *raw);
  auto answers = f.sent_of_type<claim_result>(f.client.public_key);
  REQUIRE(answers.size() == 1);
  CHECK(answers[0].second.verdict == static_cast<uint8_t>(verdict::malformed));

  // A query for a key of the wrong length.
  f.deliver(f.client.public_key, encode(f.client.public_key, 4, score_query{bytes(5, 1), 4}));
  auto replies = f.sent_of_type<score_reply>(f.client.public_key);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].second.status == score_bad_request);
  CHECK(replies[0].second.reason.find("32-byte") != std::string::npos);

  // Still serving: a good endorsement goes through.
  auto e = sign_endorsement(f.client.public_key, signer_for(f.client), f.subject.public_key, hash_of("r"),
                            f.now_us, 5);
  CHECK(f.submit(e).verdict == 0);
}
