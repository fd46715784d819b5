// The IAM actor alone under CAF's test_coordinator, driven by hand: a fake transport records what
// it sends through the seam; the test plays clients (cmesh id session) with real ed25519 keys and
// in-process callers (a router) of iam_verify and iam_watch.
#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/iam/iam_actor.hpp"
#include "messages/codec.hpp"
#include "messages/iam_messages.hpp"
#include "messages/seam.hpp"
#include "messages/services.hpp"
#include "runtime/core/event_sink.hpp"
#include "sim/simulation.hpp"
#include "runtime/store/store.hpp"
#include "tests/sim/fake_seam.hpp"
#include "tests/temp_directory.hpp"

using namespace cmesh::iam;
using namespace std::chrono_literals;
using cmesh::bytes;
using cmesh::identity;
using cmesh::node_id;

using cmesh::testing::encode;
using cmesh::testing::fake_transport;
using cmesh::testing::recording_sink;
using cmesh::testing::sent_message;

namespace {

using revocation = std::pair<std::string, int64_t>;

// A router's side of the watch: records every (iam_revoked, issuer, token_id, expires_at_s) it is
// told (the issuers apart).
caf::behavior watcher(caf::event_based_actor*, std::shared_ptr<std::vector<revocation>> told,
                      std::shared_ptr<std::vector<node_id>> issuers) {
  return {
    [=](iam_revoked_atom, const node_id& issuer, const std::string& token_id, int64_t expires_at_s) {
      told->emplace_back(token_id, expires_at_s);
      issuers->push_back(issuer);
    },
  };
}

using verdict = std::tuple<uint16_t, std::string, std::string, std::string>;

constexpr int64_t epoch_s = 1'700'000'000;

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  std::shared_ptr<std::vector<sent_message>> log = std::make_shared<std::vector<sent_message>>();
  recording_sink sink;
  std::vector<caf::actor> actors;
  caf::actor iam;
  identity node = identity::derive_for_simulation(10, 0);
  identity client = identity::derive_for_simulation(10, 1);
  identity other = identity::derive_for_simulation(10, 2);
  uint64_t next_correlation = 100;


  caf::actor transport;
  actor_context context;

  explicit fixture(cmesh::store* storage = nullptr)
      : sys(cmesh::testing::testing_config(cfg)), sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())) {
    transport = sys.spawn(fake_transport, log);
    actors.push_back(transport);
    context.self = node.public_key;
    context.signer = node;
    context.random = cmesh::jose::seeded_random_source(21);
    context.epoch_offset_us = epoch_s * 1'000'000;
    context.events = &sink;
    context.storage = storage;
    iam = spawn_iam_actor(sys, transport, context);
    actors.push_back(iam);
    sched.run();
  }

  // The node restarts: a new IAM actor over the same store (fresh randomness, so no token id of
  // before comes out again).
  void restart() {
    caf::anon_send_exit(iam, caf::exit_reason::kill);
    sched.run();
    context.random = cmesh::jose::seeded_random_source(22);
    iam = spawn_iam_actor(sys, transport, context);
    actors.push_back(iam);
    sched.run();
  }

  void connect(const node_id& peer, const std::string& address) {
    log->clear();
    caf::anon_send(iam, cmesh::peer_up_atom::value, peer, address);
    sched.run();
  }

  ~fixture() {
    for (const auto& a : actors) caf::anon_send_exit(a, caf::exit_reason::kill);
    sched.run();
  }

  void post(const node_id& from, bytes data) {
    caf::anon_send(iam, cmesh::deliver_atom::value, from, cmesh::services::iam, std::move(data));
  }
  void deliver(const node_id& from, bytes data) {
    log->clear();
    post(from, std::move(data));
    sched.run();
  }

  template <class T>
  std::vector<std::pair<uint64_t, T>> sent_of_type(const node_id& to) const {
    std::vector<std::pair<uint64_t, T>> found;
    for (const auto& s : *log) {
      if (s.to != to || s.service != cmesh::services::iam) continue;
      auto env = cmesh::decode_envelope(s.data.data(), s.data.size());
      REQUIRE(env.ok());
      CHECK(env->source == node.public_key);
      if (env->type != T::type_id) continue;
      auto m = cmesh::decode_payload<T>(*env);
      REQUIRE(m.ok());
      found.push_back({env->correlation, *m});
    }
    return found;
  }

  // Sends `request` from `from` and returns the one reply of type Reply, checking its correlation.
  template <class Reply, class Request>
  Reply ask(const node_id& from, const Request& request) {
    const uint64_t correlation = next_correlation++;
    deliver(from, encode(from, correlation, request));
    auto replies = sent_of_type<Reply>(from);
    REQUIRE(replies.size() == 1);
    CHECK(replies[0].first == correlation);
    CHECK(log->size() == 1);
    return replies[0].second;
  }

  challenge_reply get_challenge(const std::string& audience = "svc", const identity* who = nullptr) {
    return ask<challenge_reply>((who ? *who : client).public_key, challenge_request{audience});
  }

  static answer_message to_wire(const challenge_answer& a) {
    return answer_message{a.nonce, a.holder_did, a.scope, a.signature};
  }
  static challenge from_wire(const challenge_reply& r) {
    return challenge{r.nonce, r.audience, r.node_did, r.expires_at_s};
  }

  // The holder `who` answers `c` for `scope`.
  answer_message answer_for(const challenge_reply& c, const std::string& scope, const identity& who) {
    return to_wire(answer_challenge(from_wire(c), scope, cmesh::jose::signer_for(who)));
  }

  session_reply session(const std::string& scope, const std::string& audience = "svc") {
    auto c = get_challenge(audience);
    REQUIRE(c.status == status_ok);
    return ask<session_reply>(client.public_key, answer_for(c, scope, client));
  }

  verdict verify(const std::string& token, const std::string& audience, const std::string& scope) {
    auto out = std::make_shared<std::optional<verdict>>();
    auto target = iam;
    // The answer to a plain send comes back as a message.
    actors.push_back(sys.spawn([=](caf::event_based_actor* self) -> caf::behavior {
      self->send(target, iam_verify_atom::value, token, audience, scope);
      return {[=](uint16_t status, const std::string& reason, const std::string& subject,
                  const std::string& granted) { *out = verdict{status, reason, subject, granted}; }};
    }));
    sched.run();
    REQUIRE(out->has_value());
    return **out;
  }

  std::shared_ptr<std::vector<revocation>> watch(std::shared_ptr<std::vector<node_id>> issuers = nullptr) {
    auto told = std::make_shared<std::vector<revocation>>();
    if (!issuers) issuers = std::make_shared<std::vector<node_id>>();
    auto w = sys.spawn(watcher, told, issuers);
    actors.push_back(w);
    caf::anon_send(iam, iam_watch_atom::value, w);
    sched.run();
    return told;
  }

  std::string status_line() {
    auto out = std::make_shared<std::string>();
    auto target = iam;
    actors.push_back(sys.spawn([=](caf::event_based_actor* self) -> caf::behavior {
      self->send(target, cmesh::status_atom::value);
      return {[=](const std::string& s) { *out = s; }};
    }));
    sched.run();
    return *out;
  }
};

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

}  // namespace

TEST_CASE("iam actor: the handshake issues a node-signed token for the holder with the granted scope; iam_verify accepts it") {
  fixture f;
  auto c = f.get_challenge("svc");
  CHECK(c.status == status_ok);
  CHECK(c.reason.empty());
  CHECK(c.node_did == f.node.did());
  CHECK(c.audience == "svc");
  CHECK(c.expires_at_s == epoch_s + 60);

  // "admin" is not in the default policy: the grant is narrower than the request.
  auto s = f.ask<session_reply>(f.client.public_key, f.answer_for(c, "state.read admin", f.client));
  REQUIRE(s.status == status_ok);
  CHECK(s.scope == "state.read");
  CHECK(s.expires_at_s == epoch_s + 3600);
  auto claims = authenticate_session_token(s.token, f.node.public_key);
  REQUIRE(claims.ok());
  CHECK(claims->subject == f.client.did());
  CHECK(claims->issuer == f.node.did());
  CHECK(claims->audience == "svc");
  CHECK(claims->token_id == s.token_id);
  CHECK(claims->issued_at_s == epoch_s);

  auto [status, reason, subject, granted] = f.verify(s.token, "svc", "state.read");
  CHECK(status == 200);
  CHECK(reason.empty());
  CHECK(subject == f.client.did());
  CHECK(granted == "state.read");
  // Good token, missing permission: 403; another audience: 401.
  CHECK(std::get<0>(f.verify(s.token, "svc", "state.write")) == 403);
  auto foreign = f.verify(s.token, "other-svc", "");
  CHECK(std::get<0>(foreign) == 401);
  CHECK(starts_with(std::get<1>(foreign), "wrong_audience"));
  CHECK(std::get<0>(f.verify("", "svc", "")) == 401);

  // A request for nothing the policy allows is refused outright.
  auto denied = f.session("admin");
  CHECK(denied.status == status_forbidden);
  CHECK(starts_with(denied.reason, "scope_denied"));
  CHECK(denied.token.empty());
  CHECK(f.sink.count("session_issued", "holder=" + f.client.did()) == 1);
  CHECK(f.status_line().find("sessions=1") != std::string::npos);
}

TEST_CASE("iam actor: a replayed answer is refused with 409 and issues no second token") {
  fixture f;
  auto c = f.get_challenge();
  auto answer = f.answer_for(c, "events.read", f.client);
  auto first = f.ask<session_reply>(f.client.public_key, answer);
  REQUIRE(first.status == status_ok);
  auto again = f.ask<session_reply>(f.client.public_key, answer);
  CHECK(again.status == status_replayed);
  CHECK(starts_with(again.reason, "replayed"));
  CHECK(again.token.empty());
  // The same bytes from another transport peer fare no better.
  auto relayed = f.ask<session_reply>(f.other.public_key, answer);
  CHECK(relayed.status == status_replayed);
  CHECK(f.sink.count("session_issued") == 1);
}

TEST_CASE("iam actor: a wrong signature is refused with 401 and consumes the challenge") {
  fixture f;
  auto c = f.get_challenge();
  // Signed by `other` but claiming to be the client.
  auto forged = f.answer_for(c, "state.read", f.other);
  forged.holder_did = f.client.did();
  auto refused = f.ask<session_reply>(f.client.public_key, forged);
  CHECK(refused.status == status_unauthorized);
  CHECK(starts_with(refused.reason, "bad_signature"));
  // The challenge is gone: the genuine answer now reads as a replay.
  auto late = f.ask<session_reply>(f.client.public_key, f.answer_for(c, "state.read", f.client));
  CHECK(late.status == status_replayed);

  // The scope is signed: widening it in transit breaks the signature.
  auto c2 = f.get_challenge();
  auto widened = f.answer_for(c2, "state.read", f.client);
  widened.scope = "state.read state.write";
  CHECK(f.ask<session_reply>(f.client.public_key, widened).status == status_unauthorized);
  // An answer for a challenge this node never issued.
  auto c3 = f.get_challenge();
  c3.nonce = cmesh::jose::base64url_encode(std::string(32, 'x'));
  auto unknown = f.ask<session_reply>(f.client.public_key, f.answer_for(c3, "", f.client));
  CHECK(unknown.status == status_unauthorized);
  CHECK(starts_with(unknown.reason, "unknown_challenge"));
}

TEST_CASE("iam actor: an answer after the challenge expired is refused - and once forgotten the nonce is unknown") {
  fixture f;
  auto c = f.get_challenge();
  auto c2 = f.get_challenge();
  // The answer is in the mailbox when the clock reaches expires_at (before the tick runs).
  f.log->clear();
  f.post(f.client.public_key, encode(f.client.public_key, 7, f.answer_for(c, "", f.client)));
  f.sched.advance_time(60s);
  f.sched.run();
  auto replies = f.sent_of_type<session_reply>(f.client.public_key);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].first == 7);
  CHECK(replies[0].second.status == status_unauthorized);
  CHECK(starts_with(replies[0].second.reason, "expired"));
  // The tick has pruned the other one: it is unknown now, still 401.
  auto late = f.ask<session_reply>(f.client.public_key, f.answer_for(c2, "", f.client));
  CHECK(late.status == status_unauthorized);
  CHECK(starts_with(late.reason, "unknown_challenge"));
  // Just within the lifetime works.
  auto c3 = f.get_challenge();
  f.sched.advance_time(59s);
  f.sched.run();
  CHECK(f.ask<session_reply>(f.client.public_key, f.answer_for(c3, "", f.client)).status == status_ok);
}

TEST_CASE("iam actor: a revoked token is refused by iam_verify and every watcher is told once - a late watcher gets the live revocations") {
  fixture f;
  auto early = f.watch();
  auto s = f.session("state.read state.write");
  REQUIRE(s.status == status_ok);
  CHECK(std::get<0>(f.verify(s.token, "svc", "state.write")) == 200);  // now in the verified cache

  auto done = f.ask<revoke_reply>(f.other.public_key, revoke_request{s.token});
  CHECK(done.status == status_ok);
  CHECK(done.reason.empty());
  REQUIRE(early->size() == 1);
  CHECK((*early)[0] == revocation{s.token_id, s.expires_at_s});
  auto [status, reason, subject, granted] = f.verify(s.token, "svc", "state.read");
  CHECK(status == 401);
  CHECK(starts_with(reason, "revoked"));
  CHECK(subject.empty());

  // Twice: fine, nobody is told again.
  auto again = f.ask<revoke_reply>(f.client.public_key, revoke_request{s.token});
  CHECK(again.status == status_ok);
  CHECK(again.reason == "already revoked");
  CHECK(early->size() == 1);
  auto late = f.watch();
  REQUIRE(late->size() == 1);
  CHECK((*late)[0].first == s.token_id);

  // Only tokens of this node, and only real ones.
  {
    session_claims claims{f.other.did(), f.client.did(), "svc", epoch_s, std::nullopt, epoch_s + 100,
                          {"state.read"}, "someid"};
    auto foreign = issue_session_token(claims, cmesh::jose::signer_for(f.other));
    REQUIRE(foreign.ok());
    auto refused = f.ask<revoke_reply>(f.client.public_key, revoke_request{*foreign});
    CHECK(refused.status == status_unauthorized);
    CHECK(starts_with(refused.reason, "wrong_issuer"));
    auto garbage = f.ask<revoke_reply>(f.client.public_key, revoke_request{"not.a.token"});
    CHECK(garbage.status == status_bad_request);
    auto huge = f.ask<revoke_reply>(f.client.public_key, revoke_request{std::string(9000, 'a')});
    CHECK(huge.status == status_too_large);
  }
  CHECK(early->size() == 1);
  CHECK(f.sink.count("revoked", "jti=" + s.token_id) == 1);
  // Another session of the same holder is unaffected.
  auto fresh = f.session("state.read");
  CHECK(std::get<0>(f.verify(fresh.token, "svc", "state.read")) == 200);
}

TEST_CASE("iam actor: revocations reach connected nodes at once and in full on connect, a notice revokes only its sender's tokens, and revocations survive a restart") {
  cmesh::testing::temp_directory dir("cmesh-iam-test");
  auto opened = cmesh::store::open(dir.path(), cmesh::store_options{});
  REQUIRE(opened.ok());
  auto storage = std::move(*opened);
  fixture f(storage.get());
  const identity peer_b = identity::derive_for_simulation(10, 3);
  const identity peer_c = identity::derive_for_simulation(10, 4);
  f.connect(peer_b.public_key, "127.0.0.1:7002");  // a node: it advertises an address
  CHECK(f.log->empty());                           // nothing revoked yet: nothing to tell
  f.connect(f.client.public_key, "");              // a client: no router to tell
  auto s = f.session("state.read");
  REQUIRE(s.status == status_ok);

  // Revoke: the client gets its reply, node B a notice with the entry, the client no notice.
  f.deliver(f.client.public_key, encode(f.client.public_key, 7, revoke_request{s.token}));
  auto replies = f.sent_of_type<revoke_reply>(f.client.public_key);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].second.status == status_ok);
  CHECK(f.sent_of_type<revocation_notice>(f.client.public_key).empty());
  auto to_b = f.sent_of_type<revocation_notice>(peer_b.public_key);
  REQUIRE(to_b.size() == 1);
  REQUIRE(to_b[0].second.entries.size() == 1);
  CHECK(to_b[0].second.entries[0].token_id == s.token_id);
  CHECK(to_b[0].second.entries[0].expires_at_s == s.expires_at_s);

  // A node that connects later gets every live revocation.
  f.connect(peer_c.public_key, "127.0.0.1:7003");
  auto to_c = f.sent_of_type<revocation_notice>(peer_c.public_key);
  REQUIRE(to_c.size() == 1);
  REQUIRE(to_c[0].second.entries.size() == 1);
  CHECK(to_c[0].second.entries[0].token_id == s.token_id);

  // B tells us about one of ITS tokens: watchers hear it with B as the issuer. Expired entries
  // are ignored; a bad token id or an oversized notice is malformed and changes nothing.
  auto issuers = std::make_shared<std::vector<node_id>>();
  auto told = f.watch(issuers);
  REQUIRE(told->size() == 1);  // our own revocation
  CHECK((*issuers)[0] == f.node.public_key);
  revocation_notice from_b;
  from_b.entries.push_back({"b-token", epoch_s + 600});
  from_b.entries.push_back({"b-expired", epoch_s - 3600});
  from_b.entries.push_back({std::string(200, 'x'), epoch_s + 600});
  f.deliver(peer_b.public_key, encode(peer_b.public_key, 0, from_b));
  CHECK(f.log->empty());  // a notice gets no reply
  REQUIRE(told->size() == 2);
  CHECK((*told)[1] == revocation{"b-token", epoch_s + 600});
  CHECK((*issuers)[1] == peer_b.public_key);
  CHECK(f.sink.count("malformed", "token id") == 1);
  revocation_notice huge;
  huge.entries.assign(revocation_notice_entries_max + 1, revocation_entry{"h", epoch_s + 600});
  f.deliver(peer_b.public_key, encode(peer_b.public_key, 0, huge));
  CHECK(told->size() == 2);
  f.deliver(peer_b.public_key, encode(peer_b.public_key, 0, from_b));  // again: nothing new
  CHECK(told->size() == 2);
  CHECK(f.status_line().find("foreign_revoked=1") != std::string::npos);

  // Restart over the same store: the own revocation still refuses the token, and a new watcher
  // (the restarted router) is told both revocations with their issuers.
  f.restart();
  CHECK(f.sink.count("revocations_loaded", "2 live") == 1);
  auto [status, reason, subject, granted] = f.verify(s.token, "svc", "state.read");
  CHECK(status == 401);
  CHECK(starts_with(reason, "revoked"));
  auto after_issuers = std::make_shared<std::vector<node_id>>();
  auto after = f.watch(after_issuers);
  REQUIRE(after->size() == 2);
  std::set<std::pair<node_id, std::string>> seen;
  for (size_t i = 0; i < after->size(); ++i) seen.insert({(*after_issuers)[i], (*after)[i].first});
  CHECK(seen.count({f.node.public_key, s.token_id}) == 1);
  CHECK(seen.count({peer_b.public_key, "b-token"}) == 1);
}

TEST_CASE("iam actor: session watchers are told every live session (also when they start watching) and its revocation") {
  fixture f;
  auto s1 = f.session("state.read");
  REQUIRE(s1.status == status_ok);
  struct told_session {
    node_id holder;
    std::string token_id, scope;
    int64_t ttl_us;
  };
  auto sessions = std::make_shared<std::vector<told_session>>();
  auto revoked = std::make_shared<std::vector<std::string>>();
  auto w = f.sys.spawn([=](caf::event_based_actor*) -> caf::behavior {
    return {
      [=](iam_session_atom, const node_id& holder, const std::string& token_id, const std::string& scope,
          int64_t ttl_us) { sessions->push_back({holder, token_id, scope, ttl_us}); },
      [=](iam_revoked_atom, const node_id&, const std::string& token_id, int64_t) { revoked->push_back(token_id); },
    };
  });
  f.actors.push_back(w);
  caf::anon_send(f.iam, iam_watch_sessions_atom::value, w);
  f.sched.run();
  REQUIRE(sessions->size() == 1);  // the one granted before
  CHECK((*sessions)[0].holder == f.client.public_key);
  CHECK((*sessions)[0].token_id == s1.token_id);
  CHECK((*sessions)[0].scope == "state.read");
  CHECK((*sessions)[0].ttl_us == (s1.expires_at_s - epoch_s) * 1'000'000);
  auto s2 = f.session("state.read state.write");
  REQUIRE(sessions->size() == 2);
  CHECK((*sessions)[1].token_id == s2.token_id);
  CHECK((*sessions)[1].scope == "state.read state.write");
  auto done = f.ask<revoke_reply>(f.client.public_key, revoke_request{s1.token});
  CHECK(done.status == status_ok);
  REQUIRE(revoked->size() == 1);
  CHECK((*revoked)[0] == s1.token_id);
}

TEST_CASE("iam actor: malformed requests get 400 in the reply type with their correlation - garbage gets no answer - the actor keeps serving") {
  fixture f;
  auto raw = [&](uint16_t type, bytes payload, uint64_t correlation, const node_id& source) {
    cmesh::envelope env;
    env.type = type;
    env.source = source;
    env.service = cmesh::services::iam;
    env.correlation = correlation;
    env.payload = std::move(payload);
    auto encoded = cmesh::encode_envelope(env);
    REQUIRE(encoded.ok());
    return *encoded;
  };
  const bytes junk = {0xc1, 0x00, 0xff};
  f.deliver(f.client.public_key, raw(challenge_request::type_id, junk, 31, f.client.public_key));
  auto c = f.sent_of_type<challenge_reply>(f.client.public_key);
  REQUIRE(c.size() == 1);
  CHECK(c[0].first == 31);
  CHECK(c[0].second.status == status_bad_request);
  CHECK(starts_with(c[0].second.reason, "malformed"));

  f.deliver(f.client.public_key, raw(answer_message::type_id, junk, 32, f.client.public_key));
  auto a = f.sent_of_type<session_reply>(f.client.public_key);
  REQUIRE(a.size() == 1);
  CHECK(a[0].first == 32);
  CHECK(a[0].second.status == status_bad_request);

  // The right msgpack, the wrong shape (a revoke_request where an answer is expected).
  auto shape = cmesh::pack_value(revoke_request{"x"});
  REQUIRE(shape.ok());
  f.deliver(f.client.public_key, raw(answer_message::type_id, *shape, 33, f.client.public_key));
  auto a2 = f.sent_of_type<session_reply>(f.client.public_key);
  REQUIRE(a2.size() == 1);
  CHECK(a2[0].second.status == status_bad_request);

  f.deliver(f.client.public_key, raw(revoke_request::type_id, junk, 34, f.client.public_key));
  auto r = f.sent_of_type<revoke_reply>(f.client.public_key);
  REQUIRE(r.size() == 1);
  CHECK(r[0].first == 34);
  CHECK(r[0].second.status == status_bad_request);

  // No answer: bytes that are no envelope, an envelope claiming another source, a reply type, an
  // unknown type.
  f.deliver(f.client.public_key, junk);
  CHECK(f.log->empty());
  f.deliver(f.client.public_key, encode(f.other.public_key, 35, challenge_request{"svc"}));
  CHECK(f.log->empty());
  f.deliver(f.client.public_key, encode(f.client.public_key, 36, challenge_reply{}));
  CHECK(f.log->empty());
  f.deliver(f.client.public_key, raw(77, junk, 37, f.client.public_key));
  CHECK(f.log->empty());

  // Fields of the wrong shape or size.
  CHECK(f.get_challenge("").status == status_bad_request);
  CHECK(f.get_challenge("with space").status == status_bad_request);
  CHECK(f.get_challenge(std::string(300, 'a')).status == status_too_large);
  auto ch = f.get_challenge();
  auto bad_nonce = f.answer_for(ch, "", f.client);
  bad_nonce.nonce = "short";
  CHECK(f.ask<session_reply>(f.client.public_key, bad_nonce).status == status_bad_request);
  auto bad_scope = f.answer_for(ch, "", f.client);
  bad_scope.scope = std::string(2000, 's');
  CHECK(f.ask<session_reply>(f.client.public_key, bad_scope).status == status_too_large);

  // Still serving.
  CHECK(f.session("events.publish").status == status_ok);
  CHECK(f.sink.count("malformed") >= 7);
  CHECK(f.status_line().find("malformed=") != std::string::npos);
}

TEST_CASE("iam actor: challenge requests are rate limited per peer within a second") {
  fixture f;
  for (uint32_t i = 0; i < challenges_per_peer_per_s; ++i) REQUIRE(f.get_challenge().status == status_ok);
  auto limited = f.get_challenge();
  CHECK(limited.status == status_rate_limited);
  CHECK(limited.nonce.empty());
  // Another peer is not affected; the next second the first may ask again.
  CHECK(f.get_challenge("svc", &f.other).status == status_ok);
  f.sched.advance_time(1s);
  f.sched.run();
  CHECK(f.get_challenge().status == status_ok);
}

TEST_CASE("iam in the simulator: on every node through a crash and restart - the same seed replays the same trace") {
  auto run = [](uint64_t seed) {
    cmesh::sim::simulation_options o;
    o.nodes = 4;
    o.seed = seed;
    o.duration_us = 6'000'000;
    o.use_storage = false;
    o.faults.crashes.push_back({2, 2'000'000, 1'000'000});
    o.agents.iam = true;
    auto sim = cmesh::sim::simulation::create(o);
    REQUIRE(sim);
    (*sim)->run_to_end();
    return (*sim)->report();
  };
  auto a = run(5), b = run(5);
  CHECK(a.violations.empty());
  CHECK(a.malformed == 0);
  CHECK(a.restarts == 1);
  CHECK(a.nodes_up == 4);
  CHECK(a.trace_hash == b.trace_hash);
  CHECK(a.jobs_run == b.jobs_run);
  // The IAM actor ticks once a second on every node: more jobs than without it.
  cmesh::sim::simulation_options o;
  o.nodes = 4;
  o.seed = 5;
  o.duration_us = 6'000'000;
  o.use_storage = false;
  o.faults.crashes.push_back({2, 2'000'000, 1'000'000});
  auto without = cmesh::sim::simulation::create(o);
  REQUIRE(without);
  (*without)->run_to_end();
  CHECK((*without)->report().jobs_run + 4 * 5 <= a.jobs_run);
}
