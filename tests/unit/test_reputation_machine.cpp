// Tests for actors/reputation: signed endorsements and reports with real ed25519 keys derived
// from a seed, replay and forgery rejection, the score, and report gossip through a seeded
// in-memory mesh of machines exchanging encoded envelopes (no CAF).
#include <doctest/doctest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "actors/reputation/reputation_machine.hpp"
#include "messages/codec.hpp"
#include "runtime/crypto/identity.hpp"

namespace {

using namespace cmesh;
using namespace cmesh::reputation;

constexpr uint64_t test_seed = 4242;

identity agent_identity(uint64_t n) { return identity::derive_for_simulation(test_seed, n); }

std::unique_ptr<machine> make(uint64_t n, config cfg = {}) {
  const auto id = agent_identity(n);
  return std::make_unique<machine>(cfg, id.public_key, signer_for(id), rng(7000 + n));
}

hash32 hash_of(const std::string& text) {
  return resource_hash(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

template <class T>
std::vector<std::pair<node_id, T>> sends_of(const effects& out) {
  std::vector<std::pair<node_id, T>> found;
  for (const auto& s : out.sends)
    if (auto* m = std::get_if<T>(&s.message)) found.emplace_back(s.to, *m);
  return found;
}

const int64_t second_us = 1'000'000;

// An endorsement by agent `endorser` of agent `subject`, signed properly.
endorsement signed_endorsement(uint64_t endorser, uint64_t subject, const std::string& resource,
                               int64_t at_us, uint64_t nonce) {
  const auto by = agent_identity(endorser);
  const auto of = agent_identity(subject);
  endorsement e;
  e.endorser = bytes(by.public_key.key.begin(), by.public_key.key.end());
  e.subject = bytes(of.public_key.key.begin(), of.public_key.key.end());
  auto h = hash_of(resource);
  e.resource_hash = bytes(h.begin(), h.end());
  e.issued_at_us = at_us;
  e.nonce = nonce;
  auto signed_bytes = endorsement_signed_bytes(e);
  auto sig = by.sign(signed_bytes.data(), signed_bytes.size());
  e.signature = bytes(sig.begin(), sig.end());
  return e;
}

TEST_CASE("reputation resource hash is BLAKE2b-256 and deterministic") {
  auto a = hash_of("https://shop.example/apples");
  CHECK(a == hash_of("https://shop.example/apples"));
  CHECK(a != hash_of("https://shop.example/pears"));
  // BLAKE2b-256 of the empty string (RFC 7693 parameters, 32-byte output).
  auto empty = resource_hash(nullptr, 0);
  CHECK(empty[0] == 0x0e);
  CHECK(empty[1] == 0x57);
  CHECK(empty[31] == 0xa8);
}

TEST_CASE("reputation endorsement verifies and counts for its subject") {
  auto alice = make(1);
  auto bob = make(2);
  effects out;
  auto e = alice->endorse(bob->self(), "sim:2", hash_of("bob's shop page"), 10 * second_us, out);
  REQUIRE(e.ok());
  CHECK(e->signature.size() == 64);
  CHECK(verify_endorsement(*e, 10 * second_us, 0) == verdict::accepted);
  auto sent = sends_of<endorsement>(out);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].first == bob->self());
  CHECK(out.sends[0].address == "sim:2");
  // Anyone can verify it with the public keys alone; the subject counts it.
  effects bob_out;
  REQUIRE(bob->receive(alice->self(), sent[0].second, 11 * second_us, bob_out).ok());
  CHECK(bob->score(bob->self()).endorsers == 1);
  CHECK(bob->score(bob->self()).score == 1);
  CHECK(alice->score(bob->self()).endorsers == 1);  // the endorser counts its own claim too
  CHECK(alice->endorse(alice->self(), "", hash_of("x"), 0, out).err().code ==
        errc::invalid_argument);
  // Signing is deterministic: the same machine state gives the same bytes.
  auto again = make(1);
  effects again_out;
  auto e2 = again->endorse(bob->self(), "sim:2", hash_of("bob's shop page"), 10 * second_us,
                           again_out);
  REQUIRE(e2.ok());
  CHECK(e2->signature == e->signature);
}

TEST_CASE("reputation forged endorsements are rejected") {
  auto carol = make(3);
  const int64_t now = 100 * second_us;
  auto good = signed_endorsement(1, 2, "page", now, 77);
  CHECK(verify_endorsement(good, now, 0) == verdict::accepted);

  auto flipped = good;
  flipped.resource_hash[5] ^= 0x01;  // one bit of what was signed
  CHECK(verify_endorsement(flipped, now, 0) == verdict::bad_signature);
  flipped = good;
  flipped.signature[10] ^= 0x80;  // one bit of the signature
  CHECK(verify_endorsement(flipped, now, 0) == verdict::bad_signature);
  flipped = good;
  flipped.issued_at_us -= 1;
  CHECK(verify_endorsement(flipped, now, 0) == verdict::bad_signature);

  // Wrong key: signed by agent 4 but claiming to be agent 1.
  auto wrong_key = signed_endorsement(4, 2, "page", now, 78);
  wrong_key.endorser = good.endorser;
  CHECK(verify_endorsement(wrong_key, now, 0) == verdict::bad_signature);

  // A report signature cannot pass as an endorsement (domain separation): same fields signed
  // under the report tag.
  auto cross = good;
  {
    report r;
    r.reporter = good.endorser;
    r.subject = good.subject;
    r.reason = 1;
    r.evidence_hash = good.resource_hash;
    r.issued_at_us = good.issued_at_us;
    r.nonce = good.nonce;
    auto signed_bytes = report_signed_bytes(r);
    auto sig = agent_identity(1).sign(signed_bytes.data(), signed_bytes.size());
    cross.signature = bytes(sig.begin(), sig.end());
  }
  CHECK(verify_endorsement(cross, now, 0) == verdict::bad_signature);

  auto versioned = good;
  versioned.version = 2;
  CHECK(verify_endorsement(versioned, now, 0) == verdict::unsupported_version);
  auto self_made = signed_endorsement(1, 1, "page", now, 79);
  CHECK(verify_endorsement(self_made, now, 0) == verdict::self_claim);
  auto future = signed_endorsement(1, 2, "page", now + 61 * second_us, 80);
  CHECK(verify_endorsement(future, now, 60 * second_us) == verdict::from_future);
  CHECK(verify_endorsement(future, now + second_us, 60 * second_us) == verdict::accepted);

  // Through a machine: an error value with the reason, counted, no score change.
  effects out;
  auto s = carol->receive(agent_identity(1).public_key, flipped, now, out);
  CHECK(s.code == errc::bad_signature);
  CHECK(s.message.rfind("bad_signature", 0) == 0);
  CHECK(carol->statistics().rejected[static_cast<size_t>(verdict::bad_signature)] == 1);
  CHECK(carol->score(agent_identity(2).public_key).endorsers == 0);
}

TEST_CASE("reputation replayed endorsements are rejected") {
  auto carol = make(3);
  const int64_t now = 100 * second_us;
  auto e = signed_endorsement(1, 2, "page", now, 500);
  effects out;
  REQUIRE(carol->receive(agent_identity(1).public_key, e, now, out).ok());
  auto replay = carol->receive(agent_identity(5).public_key, e, now + 1, out);
  CHECK(replay.code == errc::replayed);
  CHECK(replay.message.rfind("replay", 0) == 0);
  // Same (endorser, nonce) over different, properly signed content is a replay too.
  auto same_nonce = signed_endorsement(1, 2, "other page", now, 500);
  CHECK(carol->accept(same_nonce, now) == verdict::replay);
  CHECK(carol->score(agent_identity(2).public_key).endorsements == 1);
  CHECK(carol->statistics().rejected[static_cast<size_t>(verdict::replay)] == 2);
}

TEST_CASE("reputation replay window forgets the oldest and refuses it as stale") {
  config cfg;
  cfg.replay_entries_max = 4;
  auto carol = make(3, cfg);
  std::vector<endorsement> sent;
  for (uint64_t i = 0; i < 6; ++i) {
    sent.push_back(signed_endorsement(1, 2, "page" + std::to_string(i), (10 + i) * second_us, i));
    REQUIRE(carol->accept(sent.back(), 20 * second_us) == verdict::accepted);
  }
  // The two oldest were forgotten: a replay of either is refused as stale, never accepted.
  CHECK(carol->accept(sent[0], 20 * second_us) == verdict::stale);
  CHECK(carol->accept(sent[1], 20 * second_us) == verdict::stale);
  CHECK(carol->accept(sent[5], 20 * second_us) == verdict::replay);
  // A fresh claim newer than the floor is still welcome.
  CHECK(carol->accept(signed_endorsement(4, 2, "p", 16 * second_us, 9), 20 * second_us) ==
        verdict::accepted);
  CHECK(carol->score(agent_identity(2).public_key).endorsements == 7);
}

TEST_CASE("reputation score counts distinct endorsers minus weighted reports") {
  auto judge = make(9);
  const auto subject = agent_identity(2).public_key;
  const int64_t now = 50 * second_us;
  // Agents 10..14 endorse; agent 10 endorses twice (two resources): counted once.
  for (uint64_t n = 10; n < 15; ++n)
    REQUIRE(judge->accept(signed_endorsement(n, 2, "r", now, n), now) == verdict::accepted);
  REQUIRE(judge->accept(signed_endorsement(10, 2, "r2", now, 99), now) == verdict::accepted);
  auto card = judge->score(subject);
  CHECK(card.endorsers == 5);
  CHECK(card.endorsements == 6);
  CHECK(card.score == 5);
  // Two spam reports from agent 20 (weight 3, counted once) and one fraud report from 21 (10).
  auto reporter = [&](uint64_t n, report_reason reason, int64_t at) {
    auto m = make(n);
    effects out;
    auto r = m->report_subject(subject, reason, hash_of("evidence"), at, out);
    REQUIRE(r.ok());
    return *r;
  };
  REQUIRE(judge->accept(reporter(20, report_reason::spam, now), now) == verdict::accepted);
  auto second_spam = make(20);
  effects ignored;
  second_spam->report_subject(subject, report_reason::spam, hash_of("e"), now, ignored);
  auto r2 = second_spam->report_subject(subject, report_reason::spam, hash_of("e2"), now, ignored);
  REQUIRE(r2.ok());
  REQUIRE(judge->accept(*r2, now) == verdict::accepted);
  card = judge->score(subject);
  CHECK(card.reporters == 1);
  CHECK(card.score == 5 - 3);
  REQUIRE(judge->accept(reporter(21, report_reason::fraud, now), now) == verdict::accepted);
  card = judge->score(subject);
  CHECK(card.reporters == 2);
  CHECK(card.report_weight == 13);
  CHECK(card.score == 5 - 13);
  CHECK(judge->reports_about(subject).size() == 3);
  CHECK(judge->score(agent_identity(77).public_key).score == 0);  // unknown: neutral
}

TEST_CASE("reputation report cache is bounded in entries and bytes") {
  config cfg;
  cfg.report_cache_entries_max = 5;
  auto judge = make(9, cfg);
  const auto subject = agent_identity(2).public_key;
  auto reporter = make(20);
  effects out;
  for (int i = 0; i < 12; ++i) {
    auto r = reporter->report_subject(subject, report_reason::spam, hash_of(std::to_string(i)),
                                      i * second_us, out);
    REQUIRE(r.ok());
    REQUIRE(judge->accept(*r, 20 * second_us) == verdict::accepted);
  }
  CHECK(judge->report_cache_size() == 5);
  CHECK(judge->report_cache_evictions() == 7);
  const size_t five_bytes = judge->report_cache_bytes();
  CHECK(five_bytes > 0);

  config by_bytes;
  by_bytes.report_cache_bytes_max = five_bytes / 5 * 3;  // room for three reports
  auto small = make(8, by_bytes);
  for (const auto& r : judge->reports_about(subject))
    REQUIRE(small->accept(r, 20 * second_us) == verdict::accepted);
  CHECK(small->report_cache_size() == 3);
  CHECK(small->report_cache_bytes() <= by_bytes.report_cache_bytes_max);
  CHECK(small->report_cache_evictions() == 2);
}

TEST_CASE("reputation malformed input gives an error value and never a crash") {
  auto carol = make(3);
  const auto from = agent_identity(1).public_key;
  effects out;
  auto e = signed_endorsement(1, 2, "page", 0, 1);
  auto short_key = e;
  short_key.endorser.resize(31);
  CHECK(carol->receive(from, short_key, 0, out).code == errc::malformed);
  auto long_sig = e;
  long_sig.signature.push_back(0);
  CHECK(carol->receive(from, long_sig, 0, out).code == errc::malformed);
  report_gossip g;  // every field empty
  CHECK(carol->receive(from, g, 0, out).code == errc::malformed);
  auto reporter = make(1);
  auto r = reporter->report_subject(agent_identity(2).public_key, report_reason::fraud,
                                    hash_of("ev"), 0, out);
  REQUIRE(r.ok());
  g.body = *r;
  g.body.reason = 200;
  CHECK(carol->receive(from, g, 0, out).code == errc::invalid_argument);
  CHECK(carol->statistics().rejected[static_cast<size_t>(verdict::unknown_reason)] == 1);
  CHECK(reporter->report_subject(agent_identity(2).public_key, static_cast<report_reason>(0),
                                 hash_of("ev"), 0, out)
            .err()
            .code == errc::invalid_argument);

  envelope env;
  env.service = services::reputation;
  env.type = 42;
  CHECK(decode_wire(env).err().code == errc::unknown_type);
  env.type = endorsement::type_id;
  env.payload = {0xc1};  // never-used msgpack byte
  CHECK_FALSE(decode_wire(env).ok());
  env.payload = {0x92, 0x01, 0x02};  // wrong shape
  CHECK(decode_wire(env).err().code == errc::malformed);
  auto encoded = encode_message(from, 0, e);
  REQUIRE(encoded.ok());
  auto decoded_env = decode_envelope(encoded->data(), encoded->size());
  REQUIRE(decoded_env.ok());
  auto decoded = decode_wire(*decoded_env);
  REQUIRE(decoded.ok());
  CHECK(carol->receive(from, *decoded, 0, out).ok());
  CHECK(decode_wire(*decoded_env).ok());
}

// ---- report gossip through a mesh ------------------------------------------------------------

// Agents in a seeded random contact graph; messages are encoded, queued FIFO and delivered.
struct reputation_mesh {
  std::vector<std::unique_ptr<machine>> agents;
  std::vector<std::set<uint32_t>> links;
  std::map<node_id, uint32_t> index;
  std::deque<std::pair<uint32_t, effects::send>> queue;
  std::vector<uint64_t> received;  // report_gossip messages delivered to each agent
  uint64_t delivered = 0;
  uint64_t rejected_as_replay = 0;

  reputation_mesh(uint32_t n, uint32_t links_per_agent, uint64_t seed, config cfg)
      : links(n), received(n, 0) {
    rng net(seed);
    for (uint32_t i = 0; i < n; ++i)
      for (uint32_t l = 0; l < links_per_agent; ++l) {
        auto j = static_cast<uint32_t>(net.below(n));
        if (j == i) continue;
        links[i].insert(j);
        links[j].insert(i);
      }
    for (uint32_t i = 0; i < n; ++i) {
      agents.push_back(make(100 + i, cfg));
      index[agents.back()->self()] = i;
    }
    for (uint32_t i = 0; i < n; ++i) {
      std::vector<contact> contacts;
      for (auto j : links[i]) contacts.push_back({agents[j]->self(), "sim:" + std::to_string(j)});
      agents[i]->set_contacts(contacts);
    }
  }

  std::vector<int> distances(uint32_t from) const {
    std::vector<int> d(links.size(), -1);
    std::deque<uint32_t> frontier{from};
    d[from] = 0;
    while (!frontier.empty()) {
      auto v = frontier.front();
      frontier.pop_front();
      for (auto w : links[v])
        if (d[w] < 0) {
          d[w] = d[v] + 1;
          frontier.push_back(w);
        }
    }
    return d;
  }

  void enqueue(uint32_t from, effects& out) {
    for (auto& s : out.sends) queue.emplace_back(from, s);
    out.clear();
  }

  void run(int64_t now_us) {
    while (!queue.empty()) {
      auto [from, s] = queue.front();
      queue.pop_front();
      ++delivered;
      auto encoded = std::visit(
          [&](const auto& m) { return encode_message(agents[from]->self(), 0, m); }, s.message);
      REQUIRE(encoded.ok());
      auto env = decode_envelope_from(agents[from]->self(), *encoded);
      REQUIRE(env.ok());
      auto message = decode_wire(*env);
      REQUIRE(message.ok());
      const uint32_t to = index.at(s.to);
      ++received[to];
      effects out;
      auto status = agents[to]->receive(agents[from]->self(), *message, now_us, out);
      if (status.code == errc::replayed) ++rejected_as_replay;
      else REQUIRE_MESSAGE(status.ok(), status.describe());
      enqueue(to, out);
    }
  }
};

TEST_CASE("reputation report gossip is bounded in hops and messages and cached by neighbours") {
  config cfg;
  cfg.report_hops_max = 3;
  cfg.report_fanout = 4;
  reputation_mesh world(200, 3, 99, cfg);
  const uint32_t reporter = 0;
  // The subject is someone two hops or more away, so it is not a contact of the reporter.
  auto d = world.distances(reporter);
  uint32_t subject_index = 1;
  while (d[subject_index] < 2) ++subject_index;
  const auto subject = world.agents[subject_index]->self();

  effects out;
  auto r = world.agents[reporter]->report_subject(subject, report_reason::fraud,
                                                  hash_of("chat log"), 5 * second_us, out);
  REQUIRE(r.ok());
  CHECK(out.sends.size() == std::min<size_t>(4, world.links[reporter].size()));
  world.enqueue(reporter, out);
  world.run(5 * second_us);

  size_t cached = 0;
  for (uint32_t i = 0; i < world.agents.size(); ++i) {
    CAPTURE(i);
    // Each agent passes the report on at most once (duplicates are refused as replays), to at
    // most report_fanout contacts, and only within the hop bound.
    CHECK(world.agents[i]->statistics().messages_sent <= cfg.report_fanout);
    if (d[i] >= 3) CHECK(world.agents[i]->statistics().messages_sent == 0);
    if (d[i] > 3) CHECK(world.received[i] == 0);
    if (world.agents[i]->reports_about(subject).empty()) continue;
    ++cached;
    CHECK(d[i] <= 3);
    CHECK(i != subject_index);
    CHECK(world.agents[i]->score(subject).score == -10);
    CHECK(world.agents[i]->score(subject).reporters == 1);
  }
  // Geometric bound: 4 + 4 x 4 + 16 x 4 messages over three hops.
  CHECK(world.delivered <= 4 + 16 + 64);
  CHECK(world.delivered == world.rejected_as_replay + (cached - 1));
  CHECK(cached > 20);
  MESSAGE("report over 3 hops in a 200-agent mesh: " << world.delivered
                                                    << " messages (bound 84), cached by " << cached
                                                    << " agents, " << world.rejected_as_replay
                                                    << " duplicate copies refused as replays");
}

}  // namespace
