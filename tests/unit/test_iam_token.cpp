// Tests for actors/iam/token.hpp: session tokens issued and verified with explicit times, every
// refusal kind and its CMTP status, scope syntax, and the verified-token cache.
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "actors/iam/token.hpp"
#include "runtime/crypto/identity.hpp"
#include "runtime/crypto/jose.hpp"

namespace {

using namespace cmesh;
using namespace cmesh::iam;

constexpr int64_t t0 = 1'700'000'000;  // an arbitrary mesh time, Unix seconds

// The error code of a result that must have failed; a success fails the test instead of tripping
// result's assertion.
template <class T>
errc code_of(const result<T>& failed) {
  REQUIRE(!failed.ok());
  return failed.err().code;
}

struct fixture {
  identity node = identity::derive_for_simulation(11, 0);
  identity holder = identity::derive_for_simulation(11, 1);
  identity other_node = identity::derive_for_simulation(11, 2);
  jose::signer node_signer = jose::signer_for(node);

  session_claims claims(std::vector<std::string> scopes = {"state.read", "state.write"}) const {
    session_claims c;
    c.issuer = node.did();
    c.subject = holder.did();
    c.audience = "router.mcom";
    c.issued_at_s = t0;
    c.expires_at_s = t0 + 3600;
    c.scopes = std::move(scopes);
    c.token_id = "tok-1";
    return c;
  }
  std::string token(const session_claims& c) const {
    auto issued = issue_session_token(c, node_signer);
    REQUIRE(issued.ok());
    return *issued;
  }
  token_check check(int64_t now_s = t0 + 10, std::string scope = "state.read") const {
    token_check k;
    k.issuer_key = node.public_key;
    k.audience = "router.mcom";
    k.now_s = now_s;
    k.required_scope = std::move(scope);
    return k;
  }
};

// A session-token-typed JWS over an arbitrary payload, signed by `key`.
std::string raw_token(const std::string& payload, const identity& key,
                      std::string_view typ = session_token_type) {
  return jose::sign_ed25519(typ, payload, jose::signer_for(key));
}

// The refusal kind; a success fails the test (instead of tripping outcome's assertion).
template <class T>
error_kind kind_of(const outcome<T>& checked) {
  REQUIRE(!checked.ok());
  return checked.kind();
}

}  // namespace

TEST_CASE("iam token: issued token verifies and carries its claims") {
  fixture f;
  const session_claims c = f.claims();
  const std::string token = f.token(c);
  auto checked = verify_session_token(token, f.check());
  REQUIRE(checked.ok());
  CHECK(*checked == c);

  // The header and payload are exactly what docs/iam.md describes.
  auto parsed = jose::parse_compact(token);
  REQUIRE(parsed.ok());
  CHECK(json::dump(parsed->header) == "{\"alg\":\"Ed25519\",\"typ\":\"cmesh-session+jwt\"}");
  CHECK(parsed->payload == "{\"iss\":\"" + f.node.did() + "\",\"sub\":\"" + f.holder.did() +
                              "\",\"aud\":\"router.mcom\",\"iat\":1700000000,\"exp\":1700003600,"
                              "\"scope\":\"state.read state.write\",\"jti\":\"tok-1\"}");
  // Deterministic: the same claims give the same token (Ed25519 has no per-signature randomness).
  CHECK(f.token(c) == token);
}

TEST_CASE("iam token: issuing refuses claims the verifier would refuse") {
  fixture f;
  session_claims c = f.claims();
  c.issuer = f.other_node.did();
  CHECK(code_of(issue_session_token(c, f.node_signer)) == errc::invalid_argument);
  c = f.claims();
  c.subject = "alice";
  CHECK(!issue_session_token(c, f.node_signer).ok());
  c = f.claims();
  c.expires_at_s = c.issued_at_s;
  CHECK(!issue_session_token(c, f.node_signer).ok());
  c = f.claims();
  c.not_before_s = c.expires_at_s;
  CHECK(!issue_session_token(c, f.node_signer).ok());
  c = f.claims({"state read"});
  CHECK(!issue_session_token(c, f.node_signer).ok());
  c = f.claims({"a", "a"});
  CHECK(!issue_session_token(c, f.node_signer).ok());
  c = f.claims({"quote\"d"});
  CHECK(!issue_session_token(c, f.node_signer).ok());
  c = f.claims();
  c.token_id.clear();
  CHECK(!issue_session_token(c, f.node_signer).ok());
  c = f.claims();
  c.audience.clear();
  CHECK(!issue_session_token(c, f.node_signer).ok());
  c = f.claims();
  c.audience = std::string(session_token_chars_max, 'a');
  CHECK(!issue_session_token(c, f.node_signer).ok());
}

TEST_CASE("iam token: each refusal has its own kind") {
  fixture f;
  const std::string good = f.token(f.claims());

  SUBCASE("missing") { CHECK(kind_of(verify_session_token("", f.check())) ==
                             error_kind::missing_token); }
  SUBCASE("malformed structure") {
    for (const std::string& bad : {std::string("garbage"), std::string("a.b.c"), good + "=",
                                  good.substr(0, good.size() - 1), good + ".x",
                                  std::string(session_token_chars_max + 1, 'a')}) {
      CAPTURE(bad.substr(0, 40));
      CHECK(kind_of(verify_session_token(bad, f.check())) == error_kind::malformed);
    }
  }
  SUBCASE("expired, with the skew counted") {
    token_check k = f.check(t0 + 3600 + 29);
    CHECK(verify_session_token(good, k).ok());
    k.now_s = t0 + 3600 + 30;
    CHECK(kind_of(verify_session_token(good, k)) == error_kind::expired);
    k.clock_skew_s = 0;
    k.now_s = t0 + 3600;
    CHECK(kind_of(verify_session_token(good, k)) == error_kind::expired);
  }
  SUBCASE("not yet valid: nbf or iat ahead of now beyond the skew") {
    session_claims c = f.claims();
    c.not_before_s = t0 + 100;
    const std::string later = f.token(c);
    CHECK(kind_of(verify_session_token(later, f.check(t0 + 69))) == error_kind::not_yet_valid);
    CHECK(verify_session_token(later, f.check(t0 + 70)).ok());
    CHECK(kind_of(verify_session_token(good, f.check(t0 - 31))) == error_kind::not_yet_valid);
    CHECK(verify_session_token(good, f.check(t0 - 30)).ok());
  }
  SUBCASE("wrong audience") {
    token_check k = f.check();
    k.audience = "state.mcom";
    CHECK(kind_of(verify_session_token(good, k)) == error_kind::wrong_audience);
  }
  SUBCASE("wrong issuer: another node's token, or our key but a foreign iss") {
    session_claims c = f.claims();
    c.issuer = f.other_node.did();
    auto foreign = issue_session_token(c, jose::signer_for(f.other_node));
    REQUIRE(foreign.ok());
    CHECK(kind_of(verify_session_token(*foreign, f.check())) == error_kind::wrong_issuer);
    token_check k = f.check();
    k.issuer_key = f.other_node.public_key;
    CHECK(kind_of(verify_session_token(good, k)) == error_kind::wrong_issuer);
  }
  SUBCASE("bad signature: flipped signature byte, or claims changed under the signature") {
    auto parsed = *jose::parse_compact(good);
    parsed.signature[0] ^= 0x80;
    const std::string flipped = parsed.signing_input + "." +
                                jose::base64url_encode(parsed.signature.data(), 64);
    CHECK(kind_of(verify_session_token(flipped, f.check())) == error_kind::bad_signature);

    session_claims wider = f.claims({"state.read", "state.write", "admin"});
    const std::string resigned = f.token(wider);
    const std::string spliced =
        resigned.substr(0, resigned.rfind('.')) + good.substr(good.rfind('.'));
    CHECK(kind_of(verify_session_token(spliced, f.check())) == error_kind::bad_signature);

    // Signed by the holder instead of the node, naming the node as issuer.
    const std::string forged = raw_token(json::dump(*jose::parse_json_object(
                                             parsed.payload, "payload")),
                                         f.holder);
    CHECK(kind_of(verify_session_token(forged, f.check())) == error_kind::bad_signature);
  }
  SUBCASE("wrong algorithm") {
    const std::string payload = (*jose::parse_compact(good)).payload;
    const std::string none =
        jose::base64url_encode("{\"alg\":\"none\",\"typ\":\"cmesh-session+jwt\"}") + "." +
        jose::base64url_encode(payload) + ".";
    CHECK(kind_of(verify_session_token(none, f.check())) == error_kind::wrong_algorithm);
    const std::string hs256 = jose::sign_compact(
        "{\"alg\":\"HS256\",\"typ\":\"cmesh-session+jwt\"}", payload, f.node_signer);
    CHECK(kind_of(verify_session_token(hs256, f.check())) == error_kind::wrong_algorithm);
    const std::string eddsa = jose::sign_compact(
        "{\"alg\":\"EdDSA\",\"typ\":\"cmesh-session+jwt\"}", payload, f.node_signer);
    CHECK(verify_session_token(eddsa, f.check()).ok());
  }
  SUBCASE("another JWT type signed by the node is not a session token") {
    const std::string payload = (*jose::parse_compact(good)).payload;
    CHECK(kind_of(verify_session_token(raw_token(payload, f.node, "kb+jwt"), f.check())) ==
          error_kind::malformed);
    CHECK(kind_of(verify_session_token(raw_token(payload, f.node, ""), f.check())) ==
          error_kind::malformed);
  }
  SUBCASE("authentic but malformed claims") {
    const std::string iss = "\"iss\":\"" + f.node.did() + "\"";
    const std::string sub = "\"sub\":\"" + f.holder.did() + "\"";
    for (const std::string& payload :
         {"{" + iss + "}",
          "{" + iss + "," + sub + ",\"aud\":[\"router.mcom\"],\"iat\":1,\"exp\":2,\"scope\":\"\","
                                  "\"jti\":\"j\"}",
          "{" + iss + "," + sub + ",\"aud\":\"router.mcom\",\"iat\":1.5,\"exp\":2,\"scope\":\"\","
                                  "\"jti\":\"j\"}",
          "{" + iss + "," + sub + ",\"aud\":\"router.mcom\",\"iat\":1,\"exp\":\"2\",\"scope\":\"\","
                                  "\"jti\":\"j\"}",
          "{" + iss + "," + sub + ",\"aud\":\"router.mcom\",\"iat\":1,\"exp\":2,\"scope\":\"a  b\","
                                  "\"jti\":\"j\"}",
          "{" + iss + "," + sub + ",\"aud\":\"router.mcom\",\"iat\":1,\"exp\":2,\"jti\":\"j\"}",
          "{" + iss + ",\"sub\":\"bob\",\"aud\":\"router.mcom\",\"iat\":1,\"exp\":2,\"scope\":\"\","
                      "\"jti\":\"j\"}",
          "{" + iss + "," + sub + ",\"aud\":\"router.mcom\",\"iat\":1,\"nbf\":null,\"exp\":2,"
                                  "\"scope\":\"\",\"jti\":\"j\"}",
          std::string("[1]")}) {
      CAPTURE(payload);
      CHECK(kind_of(verify_session_token(raw_token(payload, f.node), f.check())) ==
            error_kind::malformed);
    }
  }
  SUBCASE("revoked") {
    token_check k = f.check();
    k.is_revoked = [](std::string_view id) { return id == "tok-1"; };
    CHECK(kind_of(verify_session_token(good, k)) == error_kind::revoked);
    k.is_revoked = [](std::string_view id) { return id == "tok-2"; };
    CHECK(verify_session_token(good, k).ok());
  }
  SUBCASE("insufficient scope") {
    CHECK(verify_session_token(good, f.check(t0, "state.write state.read")).ok());
    CHECK(verify_session_token(good, f.check(t0, "")).ok());
    CHECK(kind_of(verify_session_token(good, f.check(t0, "state.admin"))) ==
          error_kind::insufficient_scope);
    CHECK(kind_of(verify_session_token(good, f.check(t0, "state.read state.admin"))) ==
          error_kind::insufficient_scope);
    // A required scope that is not scope syntax refuses rather than allows.
    CHECK(kind_of(verify_session_token(good, f.check(t0, "state.read "))) ==
          error_kind::insufficient_scope);
  }
}

TEST_CASE("iam token: refusal kinds map to CMTP 401 or 403") {
  for (size_t i = 0; i < error_kind_count; ++i) {
    const auto kind = static_cast<error_kind>(i);
    CAPTURE(error_kind_name(kind));
    const bool forbidden =
        kind == error_kind::insufficient_scope || kind == error_kind::scope_denied;
    CHECK(cmtp_status(kind) == (forbidden ? 403 : 401));
    CHECK(std::string(error_kind_name(kind)) != "unknown_iam_error");
  }
  CHECK(generic_code(error_kind::bad_signature) == errc::bad_signature);
  CHECK(generic_code(error_kind::replayed) == errc::replayed);
  CHECK(generic_code(error_kind::insufficient_scope) == errc::permission_denied);
  const iam_error e{error_kind::expired, "token expired at 5"};
  CHECK(e.describe() == "expired: token expired at 5");
  CHECK(e.to_error().describe() == "auth_failed: expired: token expired at 5");
}

TEST_CASE("iam token: scope syntax") {
  CHECK(parse_scope("")->empty());
  CHECK(*parse_scope("a b c") == std::vector<std::string>{"a", "b", "c"});
  CHECK(*parse_scope("a b a") == std::vector<std::string>{"a", "b"});
  CHECK(*parse_scope("0xS:read urn:x!#$%&'()*+,-./[]^_`{|}~") ==
        std::vector<std::string>{"0xS:read", "urn:x!#$%&'()*+,-./[]^_`{|}~"});
  for (const char* bad : {" a", "a ", "a  b", "a\tb", "a\"b", "a\\b", "caf\xc3\xa9"}) {
    CAPTURE(bad);
    CHECK(!parse_scope(bad).ok());
  }
  std::string many;
  for (size_t i = 0; i <= scopes_max; ++i) many += (i ? " s" : "s") + std::to_string(i);
  CHECK(!parse_scope(many).ok());
  CHECK(join_scope({"a", "b"}) == "a b");
  CHECK(covers({"a", "b"}, {"b"}));
  CHECK(covers({"a"}, {}));
  CHECK(!covers({"a"}, {"a", "b"}));
}

TEST_CASE("iam token: token ids come from the random source handed in") {
  const auto a = jose::seeded_random_source(5);
  const auto b = jose::seeded_random_source(5);
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string id = make_token_id(a);
    CHECK(id.size() == 22);
    CHECK(id == make_token_id(b));
    seen.insert(id);
  }
  CHECK(seen.size() == 100);
}

TEST_CASE("iam token cache: a repeated check is a hit and still checks time, audience, scope") {
  fixture f;
  verified_token_cache cache(8);
  const std::string token = f.token(f.claims());
  REQUIRE(cache.verify(token, f.check()).ok());
  CHECK(cache.misses() == 1);
  CHECK(cache.size() == 1);
  REQUIRE(cache.verify(token, f.check(t0 + 20)).ok());
  CHECK(cache.hits() == 1);

  // Every moment- and request-dependent check still runs on a hit.
  CHECK(kind_of(cache.verify(token, f.check(t0 + 3600 + 30))) == error_kind::expired);
  CHECK(kind_of(cache.verify(token, f.check(t0 + 10, "admin"))) == error_kind::insufficient_scope);
  token_check elsewhere = f.check();
  elsewhere.audience = "other";
  CHECK(kind_of(cache.verify(token, elsewhere)) == error_kind::wrong_audience);
  token_check revoked = f.check();
  revoked.is_revoked = [](std::string_view id) { return id == "tok-1"; };
  CHECK(kind_of(cache.verify(token, revoked)) == error_kind::revoked);
  CHECK(cache.hits() == 5);

  // A different issuer key never reuses the entry.
  token_check foreign = f.check();
  foreign.issuer_key = f.other_node.public_key;
  CHECK(kind_of(cache.verify(token, foreign)) == error_kind::wrong_issuer);
  CHECK(cache.hits() == 5);

  // forget_token_id drops it; the next check verifies afresh.
  CHECK(cache.forget_token_id("tok-1") == 1);
  CHECK(cache.size() == 0);
  REQUIRE(cache.verify(token, f.check()).ok());
  CHECK(cache.misses() == 3);
}

TEST_CASE("iam token cache: failures and expired tokens are not stored; LRU bound holds") {
  fixture f;
  verified_token_cache cache(3);
  const std::string token = f.token(f.claims());
  auto parsed = *jose::parse_compact(token);
  parsed.signature[5] ^= 1;
  const std::string forged = parsed.signing_input + "." +
                             jose::base64url_encode(parsed.signature.data(), 64);
  CHECK(kind_of(cache.verify(forged, f.check())) == error_kind::bad_signature);
  CHECK(kind_of(cache.verify("", f.check())) == error_kind::missing_token);
  CHECK(kind_of(cache.verify("x.y.z", f.check())) == error_kind::malformed);
  CHECK(kind_of(cache.verify(token, f.check(t0 + 5000))) == error_kind::expired);
  CHECK(cache.size() == 0);
  // A tampered token is never answered from the good token's entry.
  REQUIRE(cache.verify(token, f.check()).ok());
  CHECK(kind_of(cache.verify(forged, f.check())) == error_kind::bad_signature);

  std::vector<std::string> tokens;
  for (int i = 0; i < 5; ++i) {
    session_claims c = f.claims();
    c.token_id = "tok-" + std::to_string(10 + i);
    tokens.push_back(f.token(c));
    REQUIRE(cache.verify(tokens.back(), f.check()).ok());
  }
  CHECK(cache.size() == 3);
  CHECK(cache.evictions() == 3);
  const uint64_t hits = cache.hits();
  REQUIRE(cache.verify(tokens[4], f.check()).ok());
  CHECK(cache.hits() == hits + 1);
  REQUIRE(cache.verify(tokens[0], f.check()).ok());  // evicted: verified again
  CHECK(cache.hits() == hits + 1);
}

TEST_CASE("iam token cache: verify_shared hands out the cached claims themselves and refuses as verify does") {
  fixture f;
  verified_token_cache cache(8);
  const std::string token = f.token(f.claims());
  auto first = cache.verify_shared(token, f.check());
  REQUIRE(first.ok());
  auto second = cache.verify_shared(token, f.check(t0 + 20));
  REQUIRE(second.ok());
  CHECK(first->get() == second->get());  // one copy of the claims, shared with the cache
  CHECK(**second == *cache.verify(token, f.check(t0 + 20)));
  CHECK(cache.hits() == 2);
  CHECK(kind_of(cache.verify_shared(token, f.check(t0 + 3600 + 30))) == error_kind::expired);
  token_check revoked = f.check();
  revoked.is_revoked = [](std::string_view id) { return id == "tok-1"; };
  CHECK(kind_of(cache.verify_shared(token, revoked)) == error_kind::revoked);
  std::string tampered = token;
  char& c = tampered[tampered.size() - 3];
  c = c == 'A' ? 'B' : 'A';
  CHECK(kind_of(cache.verify_shared(tampered, f.check())) == error_kind::bad_signature);
  CHECK(kind_of(cache.verify_shared("", f.check())) == error_kind::missing_token);
}
