// Tests for actors/iam/iam_machine.hpp: the passwordless handshake driven with explicit times and
// a seeded random source, the scope policy, single-use challenges, revocation, bounds, and the
// security matrix (each attack refused with its own error kind and CMTP status).
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "actors/iam/iam_machine.hpp"
#include "runtime/crypto/identity.hpp"
#include "runtime/crypto/jose.hpp"

namespace {

using namespace cmesh;
using namespace cmesh::iam;

constexpr int64_t t0 = 1'700'000'000;

// The error code of a result that must have failed; a success fails the test instead of tripping
// result's assertion.
template <class T>
errc code_of(const result<T>& failed) {
  REQUIRE(!failed.ok());
  return failed.err().code;
}

const identity& node_identity() {
  static const identity id = identity::derive_for_simulation(21, 0);
  return id;
}
const identity& holder_identity() {
  static const identity id = identity::derive_for_simulation(21, 1);
  return id;
}
const identity& stranger_identity() {
  static const identity id = identity::derive_for_simulation(21, 2);
  return id;
}

scope_policy test_policy() {
  return scope_table({
      {"*", "router.mcom", {"state.read"}},
      {holder_identity().did(), "router.mcom", {"state.write", "events.publish"}},
      {holder_identity().did(), "*", {"registrar.register"}},
  });
}

machine make_machine(config cfg = {}, uint64_t seed = 1,
                     const identity& node = node_identity()) {
  return machine(cfg, jose::signer_for(node), test_policy(), jose::seeded_random_source(seed));
}

challenge_answer answer(const challenge& c, std::string_view scope,
                        const identity& holder = holder_identity()) {
  return answer_challenge(c, scope, jose::signer_for(holder));
}

session_grant handshake(machine& m, std::string_view scope, int64_t now_s = t0,
                        std::string_view audience = "router.mcom") {
  auto c = m.issue_challenge(audience, now_s);
  REQUIRE(c.ok());
  auto grant = m.redeem(answer(*c, scope), now_s + 1);
  REQUIRE(grant.ok());
  return *grant;
}

// The refusal kind; a success fails the test (instead of tripping outcome's assertion).
template <class T>
error_kind kind_of(const outcome<T>& refused) {
  REQUIRE(!refused.ok());
  return refused.kind();
}

}  // namespace

TEST_CASE("iam machine: config bounds are validated") {
  CHECK(validate(config{}).ok());
  config cfg;
  cfg.challenge_ttl_s = 0;
  CHECK(validate(cfg).code == errc::invalid_argument);
  cfg = config{};
  cfg.challenges_max = 0;
  CHECK(!validate(cfg).ok());
  cfg = config{};
  cfg.clock_skew_s = -1;
  CHECK(!validate(cfg).ok());
  cfg = config{};
  cfg.scope_chars_max = 8000;
  CHECK(!validate(cfg).ok());
}

TEST_CASE("iam machine: the handshake issues a token for the holder, audience and scope") {
  machine m = make_machine();
  auto c = m.issue_challenge("router.mcom", t0);
  REQUIRE(c.ok());
  CHECK(c->node_did == node_identity().did());
  CHECK(c->audience == "router.mcom");
  CHECK(c->expires_at_s == t0 + 60);
  CHECK(jose::base64url_decode(c->nonce)->size() == challenge_nonce_bytes);
  CHECK(m.outstanding_challenges() == 1);

  auto grant = m.redeem(answer(*c, "state.read state.write"), t0 + 5);
  REQUIRE(grant.ok());
  CHECK(grant->claims.issuer == node_identity().did());
  CHECK(grant->claims.subject == holder_identity().did());
  CHECK(grant->claims.audience == "router.mcom");
  CHECK(grant->claims.issued_at_s == t0 + 5);
  CHECK(grant->claims.expires_at_s == t0 + 5 + 3600);
  CHECK(grant->claims.scopes == std::vector<std::string>{"state.read", "state.write"});
  CHECK(grant->claims.token_id.size() == 22);
  CHECK(m.outstanding_challenges() == 0);

  // The node and any other checker holding the node's key accept it.
  auto checked = m.verify(grant->token, "router.mcom", "state.write", t0 + 10);
  REQUIRE(checked.ok());
  CHECK(*checked == grant->claims);
  token_check elsewhere;
  elsewhere.issuer_key = node_identity().public_key;
  elsewhere.audience = "router.mcom";
  elsewhere.now_s = t0 + 10;
  elsewhere.required_scope = "state.read";
  CHECK(verify_session_token(grant->token, elsewhere).ok());
  CHECK(m.statistics().sessions_issued == 1);
  CHECK(m.statistics().challenges_issued == 1);
}

TEST_CASE("iam machine: the router authenticates its own DID through the same handshake") {
  // Seed 000: "Each router itself must authenticate their DID". The router's key answers a
  // challenge from its own IAM like any holder.
  machine m = make_machine();
  auto c = m.issue_challenge("router.mcom", t0);
  REQUIRE(c.ok());
  auto grant = m.redeem(answer(*c, "state.read", node_identity()), t0);
  REQUIRE(grant.ok());
  CHECK(grant->claims.subject == node_identity().did());
}

TEST_CASE("iam machine: the policy caps the requested scope") {
  machine m = make_machine();
  // Part allowed: the token carries the allowed part only.
  session_grant g = handshake(m, "state.read admin state.write");
  CHECK(g.claims.scopes == std::vector<std::string>{"state.read", "state.write"});
  // A holder without its own rules gets only what "*" allows.
  auto c = m.issue_challenge("router.mcom", t0);
  auto stranger = m.redeem(answer(*c, "state.read state.write", stranger_identity()), t0);
  REQUIRE(stranger.ok());
  CHECK(stranger->claims.scopes == std::vector<std::string>{"state.read"});
  // Nothing requested is allowed: refused with 403.
  c = m.issue_challenge("router.mcom", t0);
  auto denied = m.redeem(answer(*c, "admin"), t0);
  CHECK(kind_of(denied) == error_kind::scope_denied);
  CHECK(cmtp_status(kind_of(denied)) == 403);
  // Another audience: only the "*" audience rule applies.
  g = handshake(m, "registrar.register state.read", t0, "registrar.mcom");
  CHECK(g.claims.scopes == std::vector<std::string>{"registrar.register"});
  CHECK(g.claims.audience == "registrar.mcom");
  // An empty request is an identity-only session.
  g = handshake(m, "");
  CHECK(g.claims.scopes.empty());
  CHECK(m.verify(g.token, "router.mcom", "", t0 + 2).ok());
  CHECK(kind_of(m.verify(g.token, "router.mcom", "state.read", t0 + 2)) ==
        error_kind::insufficient_scope);
}

TEST_CASE("iam machine: a challenge is single-use") {
  machine m = make_machine();
  auto c = m.issue_challenge("router.mcom", t0);
  const challenge_answer a = answer(*c, "state.read");
  REQUIRE(m.redeem(a, t0 + 1).ok());
  CHECK(kind_of(m.redeem(a, t0 + 2)) == error_kind::replayed);
  // Still refused after the memory of answered challenges is pruned (then it is just unknown).
  m.tick(t0 + 61);
  CHECK(kind_of(m.redeem(a, t0 + 62)) == error_kind::unknown_challenge);
}

TEST_CASE("iam machine: a failed answer consumes its challenge too") {
  machine m = make_machine();
  auto c = m.issue_challenge("router.mcom", t0);
  const challenge_answer forged = answer(*c, "state.read", stranger_identity());
  challenge_answer claimed = forged;
  claimed.holder_did = holder_identity().did();  // claims the holder, signed by the stranger
  CHECK(kind_of(m.redeem(claimed, t0 + 1)) == error_kind::bad_signature);
  CHECK(kind_of(m.redeem(answer(*c, "state.read"), t0 + 2)) == error_kind::replayed);
}

TEST_CASE("iam machine: malformed answers are refused without consuming the challenge") {
  machine m = make_machine();
  auto c = m.issue_challenge("router.mcom", t0);
  const challenge_answer good = answer(*c, "state.read");
  std::vector<challenge_answer> bad(6, good);
  bad[0].nonce = "short";
  bad[1].nonce = good.nonce + "A";
  bad[2].signature = good.signature.substr(4);
  bad[3].signature = good.signature + "==";
  bad[4].holder_did.clear();
  bad[5].scope = std::string(2000, 'a');
  for (const auto& a : bad) CHECK(kind_of(m.redeem(a, t0 + 1)) == error_kind::malformed);
  CHECK(m.outstanding_challenges() == 1);
  CHECK(m.redeem(good, t0 + 1).ok());

  // A holder DID or scope that only fails after lookup does consume it.
  c = m.issue_challenge("router.mcom", t0);
  challenge_answer not_did = answer(*c, "state.read");
  not_did.holder_did = "did:web:example.com";
  CHECK(kind_of(m.redeem(not_did, t0 + 1)) == error_kind::malformed);
  c = m.issue_challenge("router.mcom", t0);
  CHECK(kind_of(m.redeem(answer(*c, "state.read  state.write"), t0 + 1)) ==
        error_kind::malformed);
}

TEST_CASE("iam machine: the signature binds nonce, audience, node, holder and scope") {
  machine m = make_machine();
  machine other_node = make_machine({}, 99, stranger_identity());
  const auto signed_over = [](challenge c, std::string_view scope) { return answer(c, scope); };

  SUBCASE("scope changed after signing") {
    auto c = m.issue_challenge("router.mcom", t0);
    challenge_answer a = signed_over(*c, "state.read");
    a.scope = "state.read state.write";
    CHECK(kind_of(m.redeem(a, t0)) == error_kind::bad_signature);
  }
  SUBCASE("signed for another audience") {
    auto c = m.issue_challenge("router.mcom", t0);
    challenge altered = *c;
    altered.audience = "registrar.mcom";
    CHECK(kind_of(m.redeem(signed_over(altered, "state.read"), t0)) == error_kind::bad_signature);
  }
  SUBCASE("signed for another node") {
    auto c = m.issue_challenge("router.mcom", t0);
    challenge altered = *c;
    altered.node_did = other_node.did();
    CHECK(kind_of(m.redeem(signed_over(altered, "state.read"), t0)) == error_kind::bad_signature);
  }
  SUBCASE("an answer taken to another node") {
    auto c = m.issue_challenge("router.mcom", t0);
    CHECK(kind_of(other_node.redeem(signed_over(*c, "state.read"), t0)) ==
          error_kind::unknown_challenge);
  }
  SUBCASE("the signed bytes are the documented layout") {
    challenge c{"n", "aud", "did:x", 0};
    const std::string input = challenge_signing_input(c, "h", "");
    const std::string expected = std::string("cmesh-iam-challenge-v1") +
                                 std::string("\0\0\0\1n", 5) + std::string("\0\0\0\3aud", 7) +
                                 std::string("\0\0\0\5did:x", 9) + std::string("\0\0\0\1h", 5) +
                                 std::string("\0\0\0\0", 4);
    CHECK(input == expected);
  }
}

TEST_CASE("iam machine: challenges expire") {
  config cfg;
  cfg.challenge_ttl_s = 60;
  machine m = make_machine(cfg);
  auto c = m.issue_challenge("router.mcom", t0);
  CHECK(m.redeem(answer(*c, "state.read"), t0 + 59).ok());
  c = m.issue_challenge("router.mcom", t0);
  const challenge_answer late = answer(*c, "state.read");
  CHECK(kind_of(m.redeem(late, t0 + 60)) == error_kind::expired);
  CHECK(kind_of(m.redeem(late, t0 + 61)) == error_kind::replayed);
  // tick forgets expired challenges.
  c = m.issue_challenge("router.mcom", t0 + 100);
  m.tick(t0 + 159);
  CHECK(m.outstanding_challenges() == 1);
  m.tick(t0 + 160);
  CHECK(m.outstanding_challenges() == 0);
  CHECK(kind_of(m.redeem(answer(*c, "state.read"), t0 + 160)) == error_kind::unknown_challenge);
}

TEST_CASE("iam machine: outstanding challenges are bounded, oldest evicted") {
  config cfg;
  cfg.challenges_max = 4;
  machine m = make_machine(cfg);
  std::vector<challenge> issued;
  for (int i = 0; i < 6; ++i) issued.push_back(*m.issue_challenge("router.mcom", t0 + i));
  CHECK(m.outstanding_challenges() == 4);
  CHECK(m.statistics().challenges_evicted == 2);
  CHECK(kind_of(m.redeem(answer(issued[0], "state.read"), t0 + 10)) ==
        error_kind::unknown_challenge);
  CHECK(kind_of(m.redeem(answer(issued[1], "state.read"), t0 + 10)) ==
        error_kind::unknown_challenge);
  for (int i = 2; i < 6; ++i) CHECK(m.redeem(answer(issued[i], "state.read"), t0 + 10).ok());
}

TEST_CASE("iam machine: audiences are checked") {
  machine m = make_machine();
  CHECK(code_of(m.issue_challenge("", t0)) == errc::invalid_argument);
  CHECK(!m.issue_challenge("has space", t0).ok());
  CHECK(!m.issue_challenge("new\nline", t0).ok());
  CHECK(!m.issue_challenge(std::string(257, 'a'), t0).ok());
  CHECK(m.issue_challenge(std::string(256, 'a'), t0).ok());
  CHECK(m.issue_challenge("0xS:0x001", t0).ok());
}

TEST_CASE("iam machine: the same seed gives the same nonces and tokens") {
  machine a = make_machine({}, 77);
  machine b = make_machine({}, 77);
  for (int i = 0; i < 5; ++i) {
    const session_grant from_a = handshake(a, "state.read", t0 + i);
    const session_grant from_b = handshake(b, "state.read", t0 + i);
    CHECK(from_a.token == from_b.token);
  }
  machine c = make_machine({}, 78);
  CHECK(handshake(c, "state.read").token != handshake(a, "state.read").token);
  std::set<std::string> nonces;
  for (int i = 0; i < 200; ++i) nonces.insert(a.issue_challenge("router.mcom", t0)->nonce);
  CHECK(nonces.size() == 200);
}

TEST_CASE("iam machine: revocation refuses a token, also when it was cached") {
  machine m = make_machine();
  const session_grant g = handshake(m, "state.read");
  REQUIRE(m.verify(g.token, "router.mcom", "state.read", t0 + 2).ok());
  REQUIRE(m.verify(g.token, "router.mcom", "state.read", t0 + 3).ok());
  CHECK(m.token_cache().hits() == 1);
  auto revoked = m.revoke_token(g.token, t0 + 4);
  REQUIRE(revoked.ok());
  CHECK(revoked->token_id == g.claims.token_id);
  CHECK(m.is_revoked(g.claims.token_id));
  CHECK(m.token_cache().size() == 0);
  auto after = m.verify(g.token, "router.mcom", "state.read", t0 + 5);
  CHECK(kind_of(after) == error_kind::revoked);
  CHECK(cmtp_status(kind_of(after)) == 401);
  // Other tokens are unaffected.
  const session_grant other = handshake(m, "state.read", t0 + 5);
  CHECK(m.verify(other.token, "router.mcom", "state.read", t0 + 6).ok());
  // revoke_token only accepts real tokens of this node.
  CHECK(code_of(m.revoke_token("x.y.z", t0)) == errc::malformed);
  CHECK(!m.revoke_token("", t0).ok());
}

TEST_CASE("iam machine: the revocation list is bounded by expiry and by count") {
  config cfg;
  cfg.revocations_max = 2;
  cfg.clock_skew_s = 30;
  machine m = make_machine(cfg);
  CHECK(m.revoke("a", t0 + 100, t0).ok());
  CHECK(m.revoke("b", t0 + 200, t0).ok());
  CHECK(m.revoke("a", t0 + 150, t0).ok());  // already there: extended, not added
  CHECK(m.revocation_count() == 2);
  // Full of live revocations: refused, nothing forgotten.
  CHECK(m.revoke("c", t0 + 300, t0).code == errc::too_large);
  CHECK(m.is_revoked("a"));
  CHECK(m.is_revoked("b"));
  // Once "a" is past its expiry plus skew it makes room.
  CHECK(m.revoke("c", t0 + 300, t0 + 180).ok());
  CHECK(!m.is_revoked("a"));
  CHECK(m.is_revoked("c"));
  // Revoking something already expired is a no-op.
  CHECK(m.revoke("d", t0, t0 + 100).ok());
  CHECK(!m.is_revoked("d"));
  m.tick(t0 + 400);
  CHECK(m.revocation_count() == 0);
  CHECK(m.revoke("", t0, t0).code == errc::invalid_argument);
  CHECK(m.revoke(std::string(129, 'x'), t0 + 10, t0).code == errc::invalid_argument);
}

TEST_CASE("iam machine: security matrix") {
  // Every row is one attack or mistake; each must be refused with its own kind and status.
  machine m = make_machine();
  const session_grant g = handshake(m, "state.read");
  const auto check = [&](std::string_view token, std::string_view audience,
                         std::string_view scope, int64_t now_s) {
    return m.verify(token, audience, scope, now_s);
  };
  struct row {
    const char* name;
    error_kind kind;
    int status;
    error_kind got;
  };
  std::vector<row> rows;

  rows.push_back({"no token", error_kind::missing_token, 401,
                  kind_of(check("", "router.mcom", "state.read", t0 + 2))});
  rows.push_back({"garbage token", error_kind::malformed, 401,
                  kind_of(check("Bearer abc", "router.mcom", "state.read", t0 + 2))});
  rows.push_back({"expired", error_kind::expired, 401,
                  kind_of(check(g.token, "router.mcom", "state.read",
                                g.claims.expires_at_s + 30))});
  rows.push_back({"wrong audience", error_kind::wrong_audience, 401,
                  kind_of(check(g.token, "state.mcom", "state.read", t0 + 2))});
  {
    auto parsed = *jose::parse_compact(g.token);
    parsed.signature[63] ^= 0x04;
    const std::string tampered = parsed.signing_input + "." +
                                 jose::base64url_encode(parsed.signature.data(), 64);
    rows.push_back({"tampered signature", error_kind::bad_signature, 401,
                    kind_of(check(tampered, "router.mcom", "state.read", t0 + 2))});
  }
  {
    const std::string payload = jose::parse_compact(g.token)->payload;
    const std::string none = jose::base64url_encode(
                                 "{\"alg\":\"none\",\"typ\":\"cmesh-session+jwt\"}") +
                             "." + jose::base64url_encode(payload) + ".";
    rows.push_back({"alg none", error_kind::wrong_algorithm, 401,
                    kind_of(check(none, "router.mcom", "state.read", t0 + 2))});
  }
  {
    machine other = make_machine({}, 5, stranger_identity());
    const session_grant foreign = handshake(other, "state.read");
    rows.push_back({"token from another node", error_kind::wrong_issuer, 401,
                    kind_of(check(foreign.token, "router.mcom", "state.read", t0 + 2))});
  }
  {
    const session_grant doomed = handshake(m, "state.read");
    REQUIRE(m.revoke_token(doomed.token, t0 + 2).ok());
    rows.push_back({"revoked", error_kind::revoked, 401,
                    kind_of(check(doomed.token, "router.mcom", "state.read", t0 + 3))});
  }
  {
    auto c = m.issue_challenge("router.mcom", t0);
    const challenge_answer a = answer(*c, "state.read");
    REQUIRE(m.redeem(a, t0 + 1).ok());
    rows.push_back({"replayed handshake answer", error_kind::replayed, 401,
                    kind_of(m.redeem(a, t0 + 2))});
  }
  {
    challenge never{jose::random_base64url(jose::seeded_random_source(1234), 32), "router.mcom",
                    m.did(), t0 + 60};
    rows.push_back({"answer to a challenge never issued", error_kind::unknown_challenge, 401,
                    kind_of(m.redeem(answer(never, "state.read"), t0 + 1))});
  }
  rows.push_back({"insufficient scope", error_kind::insufficient_scope, 403,
                  kind_of(check(g.token, "router.mcom", "state.write", t0 + 2))});

  for (const auto& r : rows) {
    CAPTURE(r.name);
    CHECK(error_kind_name(r.got) == std::string(error_kind_name(r.kind)));
    CHECK(cmtp_status(r.got) == r.status);
  }
  // The good token still passes after all that.
  CHECK(check(g.token, "router.mcom", "state.read", t0 + 2).ok());
  CHECK(m.statistics().refusals[static_cast<size_t>(error_kind::replayed)] == 1);
}
