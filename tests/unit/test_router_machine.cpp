// The router machine (docs/router.md) with real session tokens signed by a node key, driven by
// hand: the test plays the kv service (answers kv_calls) and reads the publishes.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "actors/router/router_machine.hpp"
#include "messages/codec.hpp"
#include "runtime/crypto/identity.hpp"

using namespace cmesh;
using namespace cmesh::router;

namespace {

constexpr int64_t t0_us = 1'800'000'000'000'000;  // mesh time, Unix microseconds

struct fixture {
  identity node = identity::derive_for_simulation(21, 0);
  identity alice = identity::derive_for_simulation(21, 1);
  identity bob = identity::derive_for_simulation(21, 2);
  identity rogue_issuer = identity::derive_for_simulation(21, 7);
  std::string audience = node.did();
  config cfg;
  std::unique_ptr<machine> m;
  effects out;
  request_id next_id = 1;

  fixture() { rebuild(); }
  void rebuild() {
    m = std::make_unique<machine>(cfg, node.public_key, audience);
    m->set_serving(true);
  }

  std::string token(const identity& who, std::string scopes = "state.read state.write events.publish names.resolve names.register proxy",
                    std::string aud = "", int64_t exp_s = t0_us / 1'000'000 + 3600, std::string jti = "jti-1",
                    const identity* signer = nullptr) {
    iam::session_claims c;
    c.issuer = (signer ? *signer : node).did();
    c.subject = who.did();
    c.audience = aud.empty() ? audience : aud;
    c.issued_at_s = std::min(t0_us / 1'000'000 - 10, exp_s - 60);
    c.expires_at_s = exp_s;
    auto parsed = iam::parse_scope(scopes);
    REQUIRE(parsed.ok());
    c.scopes = *parsed;
    c.token_id = jti;
    auto t = iam::issue_session_token(c, jose::signer_for(signer ? *signer : node));
    REQUIRE(t.ok());
    return *t;
  }

  // Sends a request; returns its id. out holds the effects.
  request_id send(const std::string& fqmn, const std::string& tok, const std::string& tx = "tx1",
                  const std::string& body = "", int64_t now = t0_us) {
    out.clear();
    cmtp::request r;
    r.tx = tx;
    r.fqmn = fqmn;
    r.token = tok;
    r.body.assign(body.begin(), body.end());
    request_id id = next_id++;
    m->on_request(id, r, now, out);
    return id;
  }
  // The only response in out (REQUIREs exactly one).
  const cmtp::response& answer() const {
    REQUIRE(out.responses.size() == 1);
    return out.responses[0].response;
  }
  void kv_answer(request_id id, uint16_t status, std::string value = "", bool found = true, uint64_t index = 0,
                 int64_t now = t0_us + 1000) {
    out.clear();
    kv::response r;
    r.status = status;
    r.value = std::move(value);
    r.found = found;
    r.index = index;
    m->on_kv_answer(id, r, now, out);
  }
  std::vector<std::string> subjects() const {
    std::vector<std::string> s;
    for (size_t i = 0; i < out.publishes.size(); ++i) s.push_back(out.publishes[i].subject);
    return s;
  }
};

template <class T>
T unpack_record(const bytes& b) {
  auto v = unpack_value<T>(b.data(), b.size());
  REQUIRE(v.ok());
  return *v;
}

}  // namespace

TEST_CASE("router: a state write is dispatched to kv with the caller from the token, answered once committed, with the whole audit trail") {
  fixture f;
  auto tok = f.token(f.alice);
  auto id = f.send("0xSW:0x001:hello_world", tok, "w1", "hello");
  REQUIRE(f.out.calls.size() == 1);
  CHECK(f.out.responses.empty());
  const auto& call = f.out.calls[0];
  CHECK(call.caller == f.alice.public_key);
  CHECK(call.req.operation == static_cast<uint8_t>(kv::op::put));
  CHECK(call.req.key == "state/0x001/hello_world");
  CHECK(call.req.value == "hello");
  REQUIRE(f.subjects() == std::vector<std::string>{"events.requests"});
  auto opened = unpack_record<audit_request>(f.out.publishes[0].payload);
  CHECK(opened.tx == "w1");
  CHECK(opened.sub == f.alice.did());
  CHECK(opened.fqmn == "0xSW:0x001:hello_world");
  // The token never reaches the bus.
  const auto& payload = f.out.publishes[0].payload;
  CHECK(std::string(payload.begin(), payload.end()).find(tok.substr(0, 20)) == std::string::npos);

  f.kv_answer(id, 200, "", false, 42);
  const auto& r = f.answer();
  CHECK(r.status == 200);
  CHECK(r.headers.at("raft-index") == "42");
  CHECK(f.subjects() == std::vector<std::string>{"events.responses.w1", "events.mined.w1", "events.confirmed.w1"});
  auto mined = unpack_record<audit_mined>(f.out.publishes[1].payload);
  CHECK(mined.request_hash == opened.request_hash);
  auto responded = unpack_record<audit_response>(f.out.publishes[0].payload);
  CHECK(responded.status == 200);
  CHECK(mined.response_hash == responded.response_hash);
  // The response's audit field is recomputable from the request and the response.
  hash32 req_h{}, resp_h{};
  std::copy(mined.request_hash.begin(), mined.request_hash.end(), req_h.begin());
  CHECK(response_hash(r) == [&] { std::copy(mined.response_hash.begin(), mined.response_hash.end(), resp_h.begin()); return resp_h; }());
  auto expected = audit_hash("w1", req_h, resp_h);
  CHECK(r.audit == bytes(expected.begin(), expected.end()));
  CHECK(unpack_record<audit_confirmed>(f.out.publishes[2].payload).index == 42);
  CHECK(f.m->pending() == 0);
}

TEST_CASE("router: the security matrix - no token, expired, wrong audience, tampered, revoked, other issuer, other scope - each refused with its status and no service call") {
  fixture f;
  struct row {
    const char* what;
    std::string token;
    uint16_t status;
    const char* reason_part;
  };
  std::string good = f.token(f.alice, "state.read", "", t0_us / 1'000'000 + 3600, "good");
  std::string tampered = good;
  tampered[tampered.size() - 5] = tampered[tampered.size() - 5] == 'A' ? 'B' : 'A';
  identity rogue = identity::derive_for_simulation(21, 9);
  std::vector<row> rows = {
      {"no token", "", 401, "missing_token"},
      {"expired", f.token(f.alice, "state.read", "", t0_us / 1'000'000 - 100, "old"), 401, "expired"},
      {"wrong audience", f.token(f.alice, "state.read", "did:key:z6MkOther", t0_us / 1'000'000 + 3600, "aud"), 401,
       "wrong_audience"},
      {"tampered signature", tampered, 401, "bad_signature"},
      {"another issuer", f.token(f.alice, "state.read", "", t0_us / 1'000'000 + 3600, "rogue", &rogue), 401,
       "wrong_issuer"},
      {"scope for reads only, asking a write", good, 403, "insufficient_scope"},
  };
  // Every protected service the router fronts, each refused the same way.
  const std::vector<std::string> services = {"0xS:0x001:f", "0xR:helloWorld.mcom", "0xEW:orders.created", "0xE:svc.echo",
                                             "0xRW:register:x.mcom:0xS:0x001", "0xP:" + f.node.did() + ":0xS:0x001"};
  int tx = 0;
  for (const auto& service : services) {
    for (const auto& r : rows) {
      INFO(r.what << " for " << service);
      // The read-only token asks for something it does not cover: any write, or 0xP/0xR.
      const std::string fqmn = r.status == 403 && service.rfind("0xS:", 0) == 0 ? "0xSW:0x001:f" : service;
      f.send(fqmn, r.token, "t" + std::to_string(tx++));
      CHECK(f.out.calls.empty());
      CHECK(f.out.proxies.empty());
      CHECK(f.out.bus_requests.empty());
      CHECK(f.out.publishes.empty());  // refusals before the audit leave no trail
      CHECK(f.answer().status == r.status);
      CHECK(f.answer().reason.find(r.reason_part) != std::string::npos);
    }
  }
  // Revoked: accepted once (and cached), refused after the IAM actor's revocation.
  auto id = f.send("0xS:0x001:f", good, "r1");
  REQUIRE(f.out.calls.size() == 1);
  f.kv_answer(id, 404, "", false);
  // Another node can only revoke its own tokens: the same jti revoked by another issuer leaves
  // this node's token alone.
  f.m->revoke(f.rogue_issuer.public_key, "good", t0_us / 1'000'000 + 3600);
  auto still = f.send("0xS:0x001:f", good, "r1b");
  REQUIRE(f.out.calls.size() == 1);
  f.kv_answer(still, 404, "", false);
  f.m->revoke(f.node.public_key, "good", t0_us / 1'000'000 + 3600);
  f.send("0xS:0x001:f", good, "r2");
  CHECK(f.out.calls.empty());
  CHECK(f.answer().status == 401);
  CHECK(f.answer().reason.find("revoked") != std::string::npos);
}

TEST_CASE("router: names resolve through the registrar up to three levels, loops and depth are refused, .mcom only, a bad FQMN names its column") {
  fixture f;
  auto tok = f.token(f.alice);
  // Registration: the owner handed to the registrar is the token's subject.
  auto reg = f.send("0xRW:register:helloWorld.mcom:0xS:0x001", tok, "reg1");
  REQUIRE(f.out.calls.size() == 1);
  CHECK(f.out.calls[0].req.operation == static_cast<uint8_t>(kv::op::name_register));
  CHECK(f.out.calls[0].req.key == "helloWorld.mcom");
  CHECK(f.out.calls[0].req.value == "0xS:0x001");
  CHECK(f.out.calls[0].caller == f.alice.public_key);
  f.kv_answer(reg, 201, "", false, 7);
  CHECK(f.answer().status == 201);
  auto taken = f.send("0xRW:register:helloWorld.mcom:0xS:0x002", tok, "reg2");
  kv::response conflict;
  conflict.status = 409;
  conflict.reason = "name taken by someone";
  f.out.clear();
  f.m->on_kv_answer(taken, conflict, t0_us, f.out);
  CHECK(f.answer().status == 409);
  CHECK(f.subjects() == std::vector<std::string>{"events.responses.reg2", "events.mined.reg2"});  // not confirmed

  // a.mcom -> b.mcom -> 0xS:0x001:f : two resolutions, then the read.
  auto id = f.send("0xR:a.mcom", tok, "res1");
  REQUIRE(f.out.calls.size() == 1);
  CHECK(f.out.calls[0].req.operation == static_cast<uint8_t>(kv::op::name_resolve));
  f.kv_answer(id, 200, "0xR:b.mcom");
  REQUIRE(f.out.calls.size() == 1);
  CHECK(f.out.calls[0].req.key == "b.mcom");
  f.kv_answer(id, 200, "0xS:0x001:f");
  REQUIRE(f.out.calls.size() == 1);
  CHECK(f.out.calls[0].req.key == "state/0x001/f");
  f.kv_answer(id, 200, "stored", true);
  CHECK(f.answer().status == 200);
  CHECK(std::string(f.answer().body.begin(), f.answer().body.end()) == "stored");

  // A loop: a.mcom -> b.mcom -> a.mcom.
  id = f.send("0xR:a.mcom", tok, "loop");
  f.kv_answer(id, 200, "0xR:b.mcom");
  f.kv_answer(id, 200, "0xR:a.mcom");
  CHECK(f.answer().status == 508);
  CHECK(f.answer().reason == "name loop: a.mcom -> b.mcom -> a.mcom");
  // Four levels: refused after the third.
  id = f.send("0xR:l1.mcom", tok, "deep");
  f.kv_answer(id, 200, "0xR:l2.mcom");
  f.kv_answer(id, 200, "0xR:l3.mcom");
  f.kv_answer(id, 200, "0xR:l4.mcom");
  CHECK(f.out.calls.empty());
  CHECK(f.answer().status == 508);
  // Unknown name and a name outside .mcom.
  id = f.send("0xR:nobody.mcom", tok, "nf");
  f.kv_answer(id, 404, "", false);
  CHECK(f.answer().status == 404);
  f.send("0xR:google.com", tok, "g");
  CHECK(f.out.calls.empty());
  CHECK(f.answer().status == 404);
  // A resolved target needs its own scope.
  auto reader = f.token(f.bob, "names.resolve", "", t0_us / 1'000'000 + 3600, "bob");
  id = f.send("0xR:helloWorld.mcom", reader, "s");
  f.kv_answer(id, 200, "0xS:0x001");
  CHECK(f.answer().status == 403);
  // A bad FQMN: 400 with the column.
  f.send("0xQ:nothing", tok, "bad");
  CHECK(f.answer().status == 400);
  CHECK(f.answer().reason.find("column 0") != std::string::npos);
}

TEST_CASE("router: every request gets exactly one answer - timeouts 408, late answers dropped, duplicate tx 409, rate limit 429, limits 413 and 503") {
  fixture f;
  f.cfg.rate_per_s = 10;
  f.cfg.rate_burst = 3;
  f.cfg.pending_max = 3;
  f.cfg.body_bytes_max = 8;
  f.rebuild();
  auto tok = f.token(f.alice);
  auto first = f.send("0xS:0x001:a", tok, "same");
  CHECK(f.out.calls.size() == 1);
  f.send("0xS:0x001:b", tok, "same");
  CHECK(f.answer().status == 409);
  auto second = f.send("0xS:0x001:c", tok, "other");
  CHECK(f.out.calls.size() == 1);
  (void)second;
  // Burst of 3 used (the 409 took one too); the next is limited until a token refills (100 ms).
  f.send("0xS:0x001:d", tok, "x1");
  CHECK(f.answer().status == 429);
  CHECK(f.answer().reason.find("retry after") != std::string::npos);
  // After 200 ms two tokens are back: one more call fits (3 in flight = pending_max), then 503.
  f.send("0xS:0x001:e", tok, "x2", "", t0_us + 200'000);
  CHECK(f.out.calls.size() == 1);
  f.send("0xS:0x001:e", tok, "x2b", "", t0_us + 200'000);
  CHECK(f.answer().status == 503);
  f.send("0xSW:0x001:e", tok, "x3", "123456789", t0_us + 400'000);
  CHECK(f.answer().status == 413);
  // Timeouts: both calls expire at t0 + 5 s.
  CHECK(f.m->next_deadline_us() == t0_us + f.cfg.dispatch_timeout_us);
  f.out.clear();
  f.m->tick(t0_us + f.cfg.dispatch_timeout_us, f.out);
  REQUIRE(f.out.responses.size() == 2);  // the first two; the third expires 200 ms later
  for (const auto& r : f.out.responses) CHECK(r.response.status == 408);
  CHECK(f.m->pending() == 1);
  f.out.clear();
  f.m->tick(t0_us + 200'000 + f.cfg.dispatch_timeout_us, f.out);
  CHECK(f.answer().status == 408);
  CHECK(f.m->pending() == 0);
  // The late kv answer is counted and dropped: no second response.
  f.kv_answer(first, 200, "v");
  CHECK(f.out.responses.empty());
  CHECK(f.m->statistics().late_answers == 1);
  CHECK(f.m->statistics().requests == f.m->statistics().answered);
}

TEST_CASE("router: a publish goes to the bus with the body or the JSON argument, and unserved opcodes answer 501") {
  fixture f;
  auto tok = f.token(f.alice);
  f.send("0xEW:orders.created:{\"id\":7}", tok, "p1");
  CHECK(f.answer().status == 200);
  REQUIRE(f.out.publishes.size() == 4);  // requests, the publish, responses, mined
  CHECK(f.out.publishes[1].subject == "orders.created");
  const auto published = f.out.publishes[1];  // a copy: operator[] copies publish i out
  CHECK(std::string(published.payload.begin(), published.payload.end()) == "{\"id\":7}");
  auto admin = f.token(f.alice, "contracts consensus proxy iam events.read", "", t0_us / 1'000'000 + 3600, "all");
  f.send("0xA:*:0x001:f", admin, "u");
  CHECK(f.answer().status == 501);
  // 0xI actions other than the handshake need a token with scope iam, then are unknown.
  f.send("0xI:credential", admin, "u2");
  CHECK(f.answer().status == 404);
  CHECK(f.answer().reason.find("0xI:challenge") != std::string::npos);
  f.send("0xI:credential", f.token(f.alice, "state.read", "", t0_us / 1'000'000 + 3600, "ro"), "u3");
  CHECK(f.answer().status == 403);
  f.send("0xI:credential", "", "u4");
  CHECK(f.answer().status == 401);
}

TEST_CASE("router: the handshake through CMTP - 0xI:challenge and 0xI:session need no token, go to the IAM, answer JSON, are audited and rate-limited per client") {
  fixture f;
  const node_id client = f.bob.public_key;  // the transport peer
  auto send_tokenless = [&](const std::string& fqmn, const std::string& tx, const std::string& body,
                            int64_t now = t0_us, const node_id& from = node_id{}) {
    f.out.clear();
    cmtp::request r;
    r.tx = tx;
    r.fqmn = fqmn;
    r.body.assign(body.begin(), body.end());
    const request_id id = f.next_id++;
    f.m->on_request(id, r, now, f.out, from.is_zero() ? client : from);
    return id;
  };

  // A challenge: no token, the router's audience by default.
  auto id = send_tokenless("0xI:challenge", "h1", "");
  CHECK(f.out.responses.empty());
  REQUIRE(f.out.iam_calls.size() == 1);
  CHECK_FALSE(f.out.iam_calls[0].session);
  CHECK(f.out.iam_calls[0].audience == f.audience);
  REQUIRE(f.subjects() == std::vector<std::string>{"events.requests"});
  CHECK(unpack_record<audit_request>(f.out.publishes[0].payload).sub.empty());  // nobody yet
  f.out.clear();
  iam::challenge_reply c;
  c.nonce = "bm9uY2U";
  c.audience = f.audience;
  c.node_did = f.node.did();
  c.expires_at_s = 1'800'000'060;
  f.m->on_challenge_reply(id, c, t0_us + 10, f.out);
  {
    const auto& r = f.answer();
    CHECK(r.status == 200);
    CHECK(r.audit.size() == 32);
    auto body = json::parse(std::string(r.body.begin(), r.body.end()));
    REQUIRE(body);
    CHECK(body->find("nonce")->as_string() == "bm9uY2U");
    CHECK(body->find("node_did")->as_string() == f.node.did());
    CHECK(body->find("expires_at_s")->as_int() == 1'800'000'060);
    CHECK(f.subjects() == std::vector<std::string>{"events.responses.h1", "events.mined.h1"});
  }

  // A session: the signed answer goes to the IAM as it came; its refusal is the CMTP status.
  id = send_tokenless("0xI:session", "h2",
                      R"({"nonce":"bm9uY2U","holder_did":")" + f.alice.did() + R"(","scope":"state.read","signature":"c2ln"})");
  REQUIRE(f.out.iam_calls.size() == 1);
  CHECK(f.out.iam_calls[0].session);
  CHECK(f.out.iam_calls[0].answer.nonce == "bm9uY2U");
  CHECK(f.out.iam_calls[0].answer.holder_did == f.alice.did());
  CHECK(f.out.iam_calls[0].answer.scope == "state.read");
  CHECK(f.out.iam_calls[0].answer.signature == "c2ln");
  f.out.clear();
  iam::session_reply refused;
  refused.status = 401;
  refused.reason = "replayed: challenge already answered";
  f.m->on_session_reply(id, refused, t0_us + 10, f.out);
  CHECK(f.answer().status == 401);
  CHECK(f.answer().reason == "replayed: challenge already answered");
  CHECK(f.answer().body.empty());
  id = send_tokenless("0xI:session", "h3", R"({"nonce":"n","holder_did":"d","signature":"s"})");
  f.out.clear();
  iam::session_reply granted;
  granted.token = "a.b.c";
  granted.scope = "state.read";
  granted.expires_at_s = 1'800'003'600;
  granted.token_id = "jti-9";
  f.m->on_session_reply(id, granted, t0_us + 10, f.out);
  {
    auto body = json::parse(std::string(f.answer().body.begin(), f.answer().body.end()));
    REQUIRE(body);
    CHECK(body->find("token")->as_string() == "a.b.c");
    CHECK(body->find("token_id")->as_string() == "jti-9");
  }

  // Bad bodies: 400 before the IAM is asked, and no audit trail.
  for (const char* bad : {"", "not json", "[1]", R"({"nonce":"n","holder_did":"d"})", R"({"nonce":"n","holder_did":"d","signature":"s","scope":7})"}) {
    INFO(bad);
    send_tokenless("0xI:session", "hb", bad);
    CHECK(f.answer().status == 400);
    CHECK(f.out.iam_calls.empty());
    CHECK(f.out.publishes.empty());
  }

  // Per client: the burst (10, already 8 used above), then 429; another client is not affected;
  // the bucket refills at handshake_rate_per_s.
  const identity other = identity::derive_for_simulation(21, 9);
  send_tokenless("0xI:challenge", "x1", "", t0_us + 20);
  CHECK(f.out.iam_calls.size() == 1);
  send_tokenless("0xI:challenge", "x2", "", t0_us + 20);
  CHECK(f.out.iam_calls.size() == 1);
  send_tokenless("0xI:challenge", "x3", "", t0_us + 20);
  CHECK(f.answer().status == 429);
  CHECK(f.out.iam_calls.empty());
  send_tokenless("0xI:challenge", "x3", "", t0_us + 20, other.public_key);
  CHECK(f.out.iam_calls.size() == 1);
  send_tokenless("0xI:challenge", "x4", "", t0_us + 20 + 1'000'000);  // 5 more tokens a second later
  CHECK(f.out.iam_calls.size() == 1);
  // A tx still in flight for this client: 409.
  send_tokenless("0xI:challenge", "x4", "", t0_us + 20 + 1'000'000);
  CHECK(f.answer().status == 409);
  // A handshake that the IAM never answers: 408 at the deadline.
  f.out.clear();
  f.m->tick(t0_us + 20 + 1'000'000 + f.cfg.dispatch_timeout_us, f.out);
  CHECK(f.out.responses.size() >= 1);
  for (const auto& r : f.out.responses) CHECK(r.response.status == 408);
}

TEST_CASE("router: 0xE is a request on the events bus - the reply's payload is the body, no responders 404, a bus that never answers 408") {
  fixture f;
  auto tok = f.token(f.alice, "events.read");
  auto id = f.send("0xE:svc.echo:{\"n\":1}", tok, "e1");
  CHECK(f.out.responses.empty());
  REQUIRE(f.out.bus_requests.size() == 1);
  CHECK(f.out.bus_requests[0].id == id);
  CHECK(f.out.bus_requests[0].subject == "svc.echo");
  CHECK(std::string(f.out.bus_requests[0].payload.begin(), f.out.bus_requests[0].payload.end()) == "{\"n\":1}");
  CHECK(f.out.bus_requests[0].timeout_ms > 0);
  f.out.clear();
  f.m->on_bus_answer(id, 200, "", bytes{'o', 'k'}, t0_us + 1000, f.out);
  CHECK(f.answer().status == 200);
  CHECK(f.answer().body == bytes{'o', 'k'});
  CHECK(f.subjects() == std::vector<std::string>{"events.responses.e1", "events.mined.e1"});
  // A second answer to the same request is late and changes nothing.
  f.out.clear();
  f.m->on_bus_answer(id, 200, "", bytes{}, t0_us + 2000, f.out);
  CHECK(f.out.responses.empty());
  // The body, when there is one, is the request's payload; nobody listening is 404.
  auto id2 = f.send("0xE:svc.none", tok, "e2", "payload");
  REQUIRE(f.out.bus_requests.size() == 1);
  CHECK(std::string(f.out.bus_requests[0].payload.begin(), f.out.bus_requests[0].payload.end()) == "payload");
  f.out.clear();
  f.m->on_bus_answer(id2, 404, "", bytes{}, t0_us + 1000, f.out);
  CHECK(f.answer().status == 404);
  CHECK(f.answer().reason == "no responders on the subject");
  // A bus that never answers: the router's own deadline.
  f.send("0xE:svc.slow", tok, "e3");
  REQUIRE(f.out.bus_requests.size() == 1);
  f.out.clear();
  f.m->tick(t0_us + 60'000'000, f.out);
  CHECK(f.answer().status == 408);
}

TEST_CASE("router: 0xC:kv:status answers the replica's status line - other consensus actions are 404 - scope consensus") {
  fixture f;
  auto tok = f.token(f.alice, "consensus");
  auto id = f.send("0xC:kv:status", tok, "c1");
  REQUIRE(f.out.consensus_queries.size() == 1);
  CHECK(f.out.consensus_queries[0].id == id);
  f.out.clear();
  f.m->on_consensus_answer(id, 200, "kv role=leader term=3", t0_us + 1000, f.out);
  CHECK(f.answer().status == 200);
  CHECK(std::string(f.answer().body.begin(), f.answer().body.end()) == "kv role=leader term=3");
  f.send("0xC:kv:transfer", tok, "c2");
  CHECK(f.out.consensus_queries.empty());
  CHECK(f.answer().status == 404);
  CHECK(f.answer().reason.find("served: kv:status") != std::string::npos);
  f.send("0xC:kv:status", f.token(f.alice, "state.read"), "c3");
  CHECK(f.out.consensus_queries.empty());
  CHECK(f.answer().status == 403);
}

TEST_CASE("router: nothing is served before the router has authenticated its own identity") {
  fixture f;
  f.m->set_serving(false);
  f.send("0xS:0x001:f", f.token(f.alice), "early");
  CHECK(f.out.calls.empty());
  CHECK(f.out.publishes.empty());
  CHECK(f.answer().status == 503);
  CHECK(f.answer().reason.find("authenticated") != std::string::npos);
  f.m->set_serving(true);
  f.send("0xS:0x001:f", f.token(f.alice), "later");
  CHECK(f.out.calls.size() == 1);
}

TEST_CASE("router: 0xP dispatches to itself locally, forwards to another router with the client's token, answers with its answer; trusted issuers only") {
  fixture f;
  auto tok = f.token(f.alice);
  identity other = identity::derive_for_simulation(21, 5);
  // To ourselves: the target runs here.
  auto self_id = f.send("0xP:" + f.node.did() + ":0xS:0x001:f", tok, "self");
  REQUIRE(f.out.calls.size() == 1);
  CHECK(f.out.calls[0].req.key == "state/0x001/f");
  CHECK(f.out.proxies.empty());
  f.kv_answer(self_id, 200, "local", true);
  CHECK(f.answer().status == 200);
  // To another router: forwarded with the token and the target as its FQMN.
  auto id = f.send("0xP:" + other.did() + ":0xR:helloWorld.mcom", tok, "px");
  CHECK(f.out.calls.empty());
  REQUIRE(f.out.proxies.size() == 1);
  CHECK(f.out.proxies[0].router == other.public_key);
  CHECK(f.out.proxies[0].request.fqmn == "0xR:helloWorld.mcom");
  CHECK(f.out.proxies[0].request.token == tok);
  CHECK(f.out.proxies[0].request.tx == "px");
  cmtp::response remote;
  remote.status = 200;
  remote.body = {'h', 'i'};
  remote.audit = bytes(32, 0xab);
  f.out.clear();
  f.m->on_proxy_answer(id, remote, t0_us + 1000, f.out);
  CHECK(f.answer().status == 200);
  std::string remote_audit_hex;
  for (int i = 0; i < 32; ++i) remote_audit_hex += "ab";
  CHECK(f.answer().headers.at("proxied-audit") == remote_audit_hex);
  CHECK(f.answer().audit.size() == 32);  // our own audit of the proxied request
  // The target's scope is checked here too.
  auto reader = f.token(f.bob, "proxy names.resolve", "", t0_us / 1'000'000 + 3600, "bob");
  f.send("0xP:" + other.did() + ":0xSW:0x001:f", reader, "px2");
  CHECK(f.out.proxies.empty());
  CHECK(f.answer().status == 403);
  // Unanswered: 408 at the deadline, a late answer dropped.
  id = f.send("0xP:" + other.did() + ":0xS:0x001:f", tok, "px3");
  f.out.clear();
  f.m->tick(t0_us + f.cfg.dispatch_timeout_us, f.out);
  CHECK(f.answer().status == 408);
  f.out.clear();
  f.m->on_proxy_answer(id, remote, t0_us + f.cfg.dispatch_timeout_us + 1, f.out);
  CHECK(f.out.responses.empty());
  // Tokens from another node's IAM: refused unless that node is trusted.
  auto foreign = f.token(f.alice, "state.read", "", t0_us / 1'000'000 + 3600, "foreign", &other);
  f.send("0xS:0x001:f", foreign, "t1");
  CHECK(f.answer().status == 401);
  CHECK(f.answer().reason.find("wrong_issuer") != std::string::npos);
  f.m->trust_issuer(other.public_key);
  f.send("0xS:0x001:f", foreign, "t2");
  CHECK(f.out.calls.size() == 1);
  // Trust in one foreign issuer is not trust in any: a rogue issuer is still refused.
  identity rogue = identity::derive_for_simulation(21, 6);
  f.send("0xS:0x001:f", f.token(f.alice, "state.read", "", t0_us / 1'000'000 + 3600, "rogue", &rogue), "t3");
  CHECK(f.answer().status == 401);
}

TEST_CASE("router: deadlines - a resolved name waits again from its answer, a clock stepping back delays no earlier timeout, answered requests never time out, and freed slots serve new requests") {
  fixture f;
  auto tok = f.token(f.alice);
  const int64_t timeout = f.cfg.dispatch_timeout_us;
  // A resolution answered at t0 + 1 s: its second call (the read) waits until t0 + 1 s + timeout.
  auto resolved = f.send("0xR:a.mcom", tok, "r1");
  f.kv_answer(resolved, 200, "0xS:0x001:f", true, 0, t0_us + 1'000'000);
  REQUIRE(f.out.calls.size() == 1);
  // The clock steps back 2 s: this call's deadline is clamped to the last one (no earlier).
  auto stepped = f.send("0xS:0x001:g", tok, "r2", "", t0_us - 1'000'000);
  // Answered at once: never times out.
  auto answered = f.send("0xS:0x001:h", tok, "r3");
  f.kv_answer(answered, 200, "v", true);
  CHECK(f.answer().status == 200);
  CHECK(f.m->pending() == 2);
  // At the first call's old deadline nothing is due: it waits again since its answer.
  f.out.clear();
  f.m->tick(t0_us + timeout, f.out);
  CHECK(f.out.responses.empty());
  CHECK(f.m->pending() == 2);
  f.out.clear();
  f.m->tick(t0_us + 1'000'000 + timeout, f.out);
  REQUIRE(f.out.responses.size() == 2);  // both: the stepped-back one was clamped to this deadline
  CHECK(f.out.responses[0].id == resolved);
  CHECK(f.out.responses[1].id == stepped);
  for (const auto& r : f.out.responses) CHECK(r.response.status == 408);
  CHECK(f.m->pending() == 0);
  CHECK(f.m->next_deadline_us() == std::numeric_limits<int64_t>::max());
  // The same tx again: its slot and its in-flight mark were freed.
  auto again = f.send("0xS:0x001:g", tok, "r2");
  REQUIRE(f.out.calls.size() == 1);
  f.kv_answer(again, 200, "w", true);
  CHECK(f.answer().status == 200);
  CHECK(f.m->statistics().timeouts == 2);
}

TEST_CASE("router: audit records decode as their structs for every length class - a 64-character tx, a 300-byte FQMN, large Raft indexes") {
  fixture f;
  auto tok = f.token(f.alice);
  const std::string tx(64, 't');
  const std::string fqmn = "0xSW:0x001:f:\"" + std::string(280, 'x') + "\"";
  REQUIRE(fqmn.size() > 256);  // str16 in msgpack
  for (uint64_t index : {uint64_t{1}, uint64_t{200}, uint64_t{70'000}, uint64_t{5'000'000'000}}) {
    auto id = f.send(fqmn, tok, tx);
    REQUIRE(f.out.calls.size() == 1);
    auto opened = unpack_record<audit_request>(f.out.publishes[0].payload);
    CHECK(opened.tx == tx);
    CHECK(opened.sub == f.alice.did());
    CHECK(opened.fqmn == fqmn);
    CHECK(opened.request_hash.size() == 32);
    f.kv_answer(id, 200, "", false, index);
    REQUIRE(f.out.publishes.size() == 3);
    auto responded = unpack_record<audit_response>(f.out.publishes[0].payload);
    CHECK(responded.tx == tx);
    CHECK(responded.status == 200);
    auto mined = unpack_record<audit_mined>(f.out.publishes[1].payload);
    CHECK(mined.request_hash == opened.request_hash);
    CHECK(mined.response_hash == responded.response_hash);
    auto confirmed = unpack_record<audit_confirmed>(f.out.publishes[2].payload);
    CHECK(confirmed.tx == tx);
    CHECK(confirmed.index == index);
    CHECK(f.out.publishes[2].subject == "events.confirmed." + tx);
  }
}
