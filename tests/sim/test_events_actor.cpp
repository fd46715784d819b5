// The events actor alone under CAF's test_coordinator, driven by hand: a fake transport records
// what it sends through the seam, and the test plays the node's peers and clients (client_*
// messages of messages/events_messages.hpp).
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/events/events_actor.hpp"
#include "actors/iam/iam_actor.hpp"
#include "messages/codec.hpp"
#include "messages/events_messages.hpp"
#include "messages/seam.hpp"
#include "messages/services.hpp"
#include "runtime/core/event_sink.hpp"
#include "tests/sim/fake_seam.hpp"

using namespace std::chrono_literals;
using namespace cmesh::events;
using cmesh::bytes;
using cmesh::node_id;

using cmesh::testing::encode;
using cmesh::testing::fake_transport;
using cmesh::testing::recording_sink;
using cmesh::testing::sent_message;

namespace {

node_id make_id(uint8_t tag) {
  node_id id;
  for (size_t i = 0; i < id.key.size(); ++i) id.key[i] = static_cast<uint8_t>(tag + i * 7);
  return id;
}

template <class T>
struct received {
  uint64_t correlation = 0;
  T message;
};

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  std::shared_ptr<std::vector<sent_message>> log = std::make_shared<std::vector<sent_message>>();
  recording_sink sink;
  std::vector<caf::actor> actors;
  caf::actor bus;
  node_id self = make_id(1);
  node_id client = make_id(50);
  node_id peer = make_id(90);


  explicit fixture(bool require_session = false)
      : sys(cmesh::testing::testing_config(cfg)), sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())) {
    auto transport = sys.spawn(fake_transport, log);
    actors.push_back(transport);
    actor_context c;
    c.self = self;
    c.rng_seed = 7;
    c.events = &sink;
    c.require_session = require_session;
    bus = spawn_events_actor(sys, transport, caf::actor{}, c);
    actors.push_back(bus);
    sched.run();
  }

  ~fixture() {
    for (const auto& a : actors) caf::anon_send_exit(a, caf::exit_reason::kill);
    sched.run();
  }

  void deliver(const node_id& from, bytes data) {
    caf::anon_send(bus, cmesh::deliver_atom::value, from, cmesh::services::events, std::move(data));
    sched.run();
  }
  void up(const node_id& who) {
    caf::anon_send(bus, cmesh::peer_up_atom::value, who, std::string("sim:9"));
    sched.run();
  }
  void down(const node_id& who) {
    caf::anon_send(bus, cmesh::peer_down_atom::value, who);
    sched.run();
  }
  void advance(std::chrono::milliseconds total) {
    for (auto step = 0ms; step < total; step += 100ms) {
      sched.advance_time(100ms);
      sched.run();
    }
  }

  // What the actor sent to `to` that decodes as a T (envelopes from `self` on the events service).
  template <class T>
  std::vector<received<T>> sent_as(const node_id& to) const {
    std::vector<received<T>> out;
    for (const auto& m : *log) {
      if (m.to != to) continue;
      CHECK(m.service == cmesh::services::events);
      auto env = cmesh::decode_envelope(m.data.data(), m.data.size());
      REQUIRE(env.ok());
      CHECK(env->source == self);
      if (env->type != T::type_id) continue;
      auto decoded = cmesh::decode_payload<T>(*env);
      REQUIRE(decoded.ok());
      out.push_back({env->correlation, std::move(*decoded)});
    }
    return out;
  }

  uint64_t subscribe(const std::string& pattern, uint32_t pending_messages = 0) {
    client_subscribe s;
    s.pattern = pattern;
    s.pending_messages = pending_messages;
    log->clear();
    deliver(client, encode(client, 1000 + pattern.size(), s));
    auto replies = sent_as<client_reply>(client);
    REQUIRE(replies.size() == 1);
    CHECK(replies[0].correlation == 1000 + pattern.size());
    REQUIRE(replies[0].message.status == client_ok);
    CHECK(replies[0].message.sid != 0);
    return replies[0].message.sid;
  }
};

}  // namespace

TEST_CASE_FIXTURE(fixture, "events actor: a client's subscription gets what a peer routes and ends when the client goes down") {
  up(peer);
  up(client);
  auto sid = subscribe("orders.>");
  // The peer node hears of the new interest; the client is not a node and gets no interest traffic.
  auto deltas = sent_as<interest_delta>(peer);
  REQUIRE(deltas.size() == 1);
  REQUIRE(deltas[0].message.changes.size() == 1);
  CHECK(deltas[0].message.changes[0].pattern == "orders.>");
  CHECK(deltas[0].message.changes[0].count == 1);
  CHECK(sent_as<interest_delta>(client).empty());
  CHECK(sink.count("subscribed", "orders.>") == 1);

  log->clear();
  routed_message m;
  m.subject = "orders.eu.created";
  m.payload = {'h', 'i'};
  deliver(peer, encode(peer, 0, m));
  m.subject = "billing.paid";  // routed to us by mistake: matches nothing here
  deliver(peer, encode(peer, 0, m));
  auto messages = sent_as<client_message>(client);
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].message.sid == sid);
  CHECK(messages[0].message.subject == "orders.eu.created");
  CHECK(messages[0].message.payload == bytes{'h', 'i'});

  // Digests keep going to the peer, never to the client.
  log->clear();
  advance(2500ms);
  CHECK(sent_as<interest_digest>(peer).size() >= 2);
  CHECK(sent_as<interest_digest>(client).empty());

  log->clear();
  down(client);
  deltas = sent_as<interest_delta>(peer);
  REQUIRE(deltas.size() == 1);
  CHECK(deltas[0].message.changes[0].pattern == "orders.>");
  CHECK(deltas[0].message.changes[0].count == 0);
  CHECK(sink.count("unsubscribed", "client down") == 1);
}

TEST_CASE("events actor: with sessions required a client needs a live IAM session with the scope - 401, 403, then served - and a revoked session ends its subscriptions") {
  fixture f(true);
  f.up(f.client);
  auto ask = [&](const auto& message, uint64_t correlation) {
    f.log->clear();
    f.deliver(f.client, encode(f.client, correlation, message));
    auto replies = f.sent_as<client_reply>(f.client);
    REQUIRE(replies.size() == 1);
    CHECK(replies[0].correlation == correlation);
    return replies[0].message;
  };
  client_subscribe sub;
  sub.pattern = "orders.>";
  client_publish pub;
  pub.subject = "orders.new";
  pub.payload = {'x'};
  // No session: 401 for subscribe, publish and request.
  auto refused = ask(sub, 1);
  CHECK(refused.status == client_unauthorized);
  CHECK(refused.reason.rfind("no_session", 0) == 0);
  CHECK(ask(pub, 2).status == client_unauthorized);
  client_request req;
  req.subject = "svc.echo";
  req.timeout_ms = 100;
  CHECK(ask(req, 3).status == client_unauthorized);
  CHECK(f.sink.count("client_refused", "401") == 3);

  // A session for reading only: subscribe is served, publish gets 403.
  caf::anon_send(f.bus, cmesh::iam::iam_session_atom::value, f.client, std::string("jti-read"),
                 std::string("events.read"), int64_t{60'000'000});
  f.sched.run();
  auto subscribed = ask(sub, 4);
  REQUIRE(subscribed.status == client_ok);
  auto forbidden = ask(pub, 5);
  CHECK(forbidden.status == client_forbidden);
  CHECK(forbidden.reason == "insufficient_scope: needs scope events.publish");
  // Another key's session does not count for this client.
  caf::anon_send(f.bus, cmesh::iam::iam_session_atom::value, f.peer, std::string("jti-peer"),
                 std::string("events.read events.publish"), int64_t{60'000'000});
  f.sched.run();
  CHECK(ask(pub, 6).status == client_forbidden);
  // A second session that covers publishing: served.
  caf::anon_send(f.bus, cmesh::iam::iam_session_atom::value, f.client, std::string("jti-pub"),
                 std::string("events.publish"), int64_t{60'000'000});
  f.sched.run();
  CHECK(ask(pub, 7).status == client_ok);

  // Revoking one of two sessions keeps the subscription; revoking the last ends it with a notice.
  f.log->clear();
  caf::anon_send(f.bus, cmesh::iam::iam_revoked_atom::value, f.self, std::string("jti-pub"), int64_t{0});
  f.sched.run();
  CHECK(f.sent_as<client_notice>(f.client).empty());
  CHECK(ask(pub, 8).status == client_forbidden);
  f.log->clear();
  caf::anon_send(f.bus, cmesh::iam::iam_revoked_atom::value, f.self, std::string("jti-read"), int64_t{0});
  f.sched.run();
  auto notices = f.sent_as<client_notice>(f.client);
  REQUIRE(notices.size() == 1);
  CHECK(notices[0].message.kind == "session_ended");
  CHECK(notices[0].message.sid == subscribed.sid);
  CHECK(f.sink.count("unsubscribed", "session revoked") == 1);
  CHECK(ask(sub, 9).status == client_unauthorized);

  // A session runs out: its subscriptions end with a notice, and the client is refused again.
  caf::anon_send(f.bus, cmesh::iam::iam_session_atom::value, f.client, std::string("jti-short"),
                 std::string("events.read"), int64_t{1'000'000});
  f.sched.run();
  auto short_lived = ask(sub, 10);
  REQUIRE(short_lived.status == client_ok);
  f.log->clear();
  f.advance(1500ms);
  auto expired = f.sent_as<client_notice>(f.client);
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].message.kind == "session_ended");
  CHECK(expired[0].message.sid == short_lived.sid);
  CHECK(f.sink.count("unsubscribed", "session expired") == 1);
  CHECK(ask(sub, 11).status == client_unauthorized);
}

TEST_CASE_FIXTURE(fixture, "events actor: a client that does not acknowledge is a slow consumer - every drop is reported to it and to the log") {
  up(client);
  auto sid = subscribe("a.*", 2);
  log->clear();
  client_publish p;
  p.subject = "a.b";
  p.payload = {'x'};
  for (int i = 0; i < 5; ++i) deliver(client, encode(client, 10 + i, p));
  auto replies = sent_as<client_reply>(client);
  REQUIRE(replies.size() == 5);
  for (const auto& r : replies) {
    CHECK(r.message.status == client_ok);
    CHECK(r.message.interest);
  }
  CHECK(sent_as<client_message>(client).size() == 2);  // the bound
  // The first drop is reported at once, the next ones at the end of the report interval.
  auto notices = sent_as<client_notice>(client);
  REQUIRE(notices.size() == 1);
  CHECK(notices[0].message.kind == "slow_consumer");
  CHECK(notices[0].message.sid == sid);
  CHECK(notices[0].message.dropped == 1);
  advance(1200ms);
  notices = sent_as<client_notice>(client);
  REQUIRE(notices.size() == 2);
  CHECK(notices[1].message.dropped == 2);
  CHECK(notices[1].message.dropped_total == 3);
  CHECK(notices[1].message.pending_messages == 2);
  CHECK(sink.count("slow_consumer") == 2);

  // Acknowledging makes room again.
  client_ack ack;
  ack.sid = sid;
  ack.messages = 2;
  ack.payload_bytes = 2;
  deliver(client, encode(client, 0, ack));
  log->clear();
  deliver(client, encode(client, 20, p));
  CHECK(sent_as<client_message>(client).size() == 1);
  CHECK(sent_as<client_notice>(client).empty());
  // Acknowledging more than was delivered is the client's bug: logged, nothing breaks.
  ack.messages = 5;
  deliver(client, encode(client, 0, ack));
  CHECK(sink.count("malformed", "client_ack") == 1);
}

TEST_CASE_FIXTURE(fixture, "events actor: max_messages ends a subscription - requests end with no responders or a reply") {
  up(peer);
  up(client);
  client_subscribe s;
  s.pattern = "jobs.*";
  s.max_messages = 2;
  deliver(client, encode(client, 5, s));
  log->clear();
  routed_message m;
  m.payload = {'1'};
  for (const char* subject : {"jobs.a", "jobs.b", "jobs.c"}) {
    m.subject = subject;
    deliver(peer, encode(peer, 0, m));
  }
  CHECK(sent_as<client_message>(client).size() == 2);
  auto notices = sent_as<client_notice>(client);
  REQUIRE(notices.size() == 1);
  CHECK(notices[0].message.kind == "ended");
  auto deltas = sent_as<interest_delta>(peer);
  REQUIRE(deltas.size() == 1);
  CHECK(deltas[0].message.changes[0].count == 0);

  // No interest anywhere: no responders at once.
  log->clear();
  client_request r;
  r.subject = "svc.echo";
  r.payload = {'?'};
  r.timeout_ms = 500;
  deliver(client, encode(client, 31, r));
  auto replies = sent_as<client_reply>(client);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].correlation == 31);
  CHECK(replies[0].message.status == client_no_responders);

  // The peer answers svc.echo: the request goes there, the reply comes back on our inbox.
  interest_sync table;
  table.epoch = 77;
  table.version = 1;
  table.entries = {{"svc.echo", "", 1}};
  deliver(peer, encode(peer, 0, table));
  log->clear();
  deliver(client, encode(client, 32, r));
  auto routed = sent_as<routed_message>(peer);
  REQUIRE(routed.size() == 1);
  CHECK(routed[0].message.subject == "svc.echo");
  REQUIRE_FALSE(routed[0].message.reply_to.empty());
  routed_message answer;
  answer.subject = routed[0].message.reply_to;
  answer.payload = {'!'};
  deliver(peer, encode(peer, 0, answer));
  replies = sent_as<client_reply>(client);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].correlation == 32);
  CHECK(replies[0].message.status == client_ok);
  CHECK(replies[0].message.payload == bytes{'!'});

  // And one that nobody answers times out.
  log->clear();
  deliver(client, encode(client, 33, r));
  advance(700ms);
  replies = sent_as<client_reply>(client);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].correlation == 33);
  CHECK(replies[0].message.status == client_timeout);
}

TEST_CASE_FIXTURE(fixture, "events actor: malformed client input gets a 400 with the reason and the actor keeps serving") {
  up(client);
  log->clear();
  deliver(client, bytes{0x01, 0x02, 0x03});  // not an envelope: no correlation to answer
  CHECK(sink.count("malformed") == 1);
  CHECK(log->empty());

  cmesh::envelope env;
  env.type = client_subscribe::type_id;
  env.source = client;
  env.service = cmesh::services::events;
  env.correlation = 41;
  env.payload = {0xc1};  // never valid msgpack
  auto raw = cmesh::encode_envelope(env);
  REQUIRE(raw.ok());
  deliver(client, *raw);
  auto replies = sent_as<client_reply>(client);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].correlation == 41);
  CHECK(replies[0].message.status == client_bad_request);
  CHECK_FALSE(replies[0].message.reason.empty());

  log->clear();
  client_subscribe bad;
  bad.pattern = "a.>.b";
  deliver(client, encode(client, 42, bad));
  bad.pattern = "ok.*";
  bad.queue_group = "has.dot";
  deliver(client, encode(client, 43, bad));
  client_message wrong_way;  // a node-to-client message sent by a client
  deliver(client, encode(client, 44, wrong_way));
  client_publish huge;
  huge.subject = "big";
  huge.payload.resize(cmesh::events::config{}.payload_bytes_max + 1);
  deliver(client, encode(client, 45, huge));
  replies = sent_as<client_reply>(client);
  REQUIRE(replies.size() == 4);
  CHECK(replies[0].message.status == client_bad_request);
  CHECK(replies[0].message.reason.find("'>'") != std::string::npos);
  CHECK(replies[1].message.status == client_bad_request);
  CHECK(replies[2].message.status == client_bad_request);
  CHECK(replies[3].message.status == client_too_large);
  // An envelope claiming another source is dropped.
  deliver(client, encode(peer, 46, bad));
  CHECK(sent_as<client_reply>(client).size() == 4);

  // Still serving.
  CHECK(subscribe("ok.*") != 0);
}

TEST_CASE_FIXTURE(fixture, "events actor: in-process subscribers get messages and their subscriptions end when they terminate") {
  auto got = std::make_shared<std::vector<std::string>>();
  auto subscriber = sys.spawn([got](caf::event_based_actor*) -> caf::behavior {
    return {
      [=](events_msg_atom, uint64_t, const std::string& subject, const std::string&, const bytes& payload) {
        got->push_back(subject + " " + std::string(payload.begin(), payload.end()));
      },
    };
  });
  actors.push_back(subscriber);
  up(peer);
  log->clear();
  caf::anon_send(bus, events_sub_atom::value, std::string("news.>"), std::string(), subscriber);
  sched.run();
  REQUIRE(sent_as<interest_delta>(peer).size() == 1);
  routed_message m;
  m.subject = "news.today";
  m.payload = {'o', 'k'};
  deliver(peer, encode(peer, 0, m));
  caf::anon_send(bus, events_pub_atom::value, std::string("news.local"), std::string(), bytes{'l'});
  sched.run();
  REQUIRE(got->size() == 2);
  CHECK((*got)[0] == "news.today ok");
  CHECK((*got)[1] == "news.local l");
  log->clear();
  caf::anon_send_exit(subscriber, caf::exit_reason::kill);
  sched.run();
  auto deltas = sent_as<interest_delta>(peer);
  REQUIRE(deltas.size() == 1);
  CHECK(deltas[0].message.changes[0].count == 0);
  CHECK(sink.count("unsubscribed", "subscriber terminated") == 1);
}

TEST_CASE_FIXTURE(fixture, "events actor: a publish with correlation 0 is delivered without an acknowledgement, but its refusal is still answered") {
  up(client);
  subscribe("fire.*");
  log->clear();
  client_publish p;
  p.subject = "fire.and";
  p.payload = {'f'};
  deliver(client, encode(client, 0, p));
  CHECK(sent_as<client_reply>(client).empty());
  REQUIRE(sent_as<client_message>(client).size() == 1);
  CHECK(sent_as<client_message>(client)[0].message.subject == "fire.and");
  // The same with a correlation is acknowledged.
  log->clear();
  deliver(client, encode(client, 5, p));
  REQUIRE(sent_as<client_reply>(client).size() == 1);
  CHECK(sent_as<client_reply>(client)[0].correlation == 5);
  // A refused fire-and-forget publish is not silent.
  log->clear();
  p.subject = "bad..subject";
  deliver(client, encode(client, 0, p));
  auto refused = sent_as<client_reply>(client);
  REQUIRE(refused.size() == 1);
  CHECK(refused[0].correlation == 0);
  CHECK(refused[0].message.status == client_bad_request);
  CHECK(sent_as<client_message>(client).empty());
}

TEST_CASE_FIXTURE(fixture, "events actor: packed publishes are published in order, a bad subject is skipped and logged, bad offsets stop the batch") {
  up(client);
  subscribe("audit.>");
  log->clear();
  auto send_packed = [&](const std::vector<std::pair<std::string, std::string>>& records,
                         std::vector<uint32_t> subject_ends = {}, std::vector<uint32_t> payload_ends = {}) {
    std::string subjects;
    bytes payloads;
    const bool given = !subject_ends.empty();
    for (const auto& [subject, payload] : records) {
      subjects += subject;
      payloads.insert(payloads.end(), payload.begin(), payload.end());
      if (!given) {
        subject_ends.push_back(static_cast<uint32_t>(subjects.size()));
        payload_ends.push_back(static_cast<uint32_t>(payloads.size()));
      }
    }
    caf::anon_send(bus, events_pub_packed_atom::value, subjects, subject_ends, payloads, payload_ends);
    sched.run();
  };
  send_packed({{"audit.one", "1"}, {"bad..subject", "x"}, {"audit.two", "22"}, {"elsewhere", "e"}});
  auto got = sent_as<client_message>(client);
  REQUIRE(got.size() == 2);
  CHECK(got[0].message.subject == "audit.one");
  CHECK(got[0].message.payload == bytes{'1'});
  CHECK(got[1].message.subject == "audit.two");
  CHECK(got[1].message.payload == bytes{'2', '2'});
  CHECK(sink.count("publish_refused", "bad..subject") == 1);
  // Offsets past the buffers: nothing from there on is published, and it is logged.
  log->clear();
  send_packed({{"audit.three", "3"}, {"audit.four", "4"}}, {11, 999}, {1, 2});
  got = sent_as<client_message>(client);
  REQUIRE(got.size() == 1);
  CHECK(got[0].message.subject == "audit.three");
  CHECK(sink.count("publish_refused", "bad offsets") == 1);
}
