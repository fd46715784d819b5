// Tests for actors/iam/sd_jwt.hpp: the RFC 9901 disclosure digest vector, issuing, presenting a
// chosen subset with key binding, verifying, and refusing tampered presentations.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "actors/iam/sd_jwt.hpp"
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

// RFC 9901 §5.1 example: the disclosure of family_name "Möbius" and its SHA-256 digest.
constexpr const char* rfc_disclosure = "WyI2cU1RdlJMNWhhaiIsICJmYW1pbHlfbmFtZSIsICJNw7ZiaXVzIl0";
constexpr const char* rfc_digest = "uutlBuYeMDyjLLTpf6Jxi7yNkEF35jdyWMn9U7b_RYY";

struct fixture {
  identity issuer = identity::derive_for_simulation(31, 0);
  identity holder = identity::derive_for_simulation(31, 1);
  identity attacker = identity::derive_for_simulation(31, 2);
  jose::random_source random = jose::seeded_random_source(31);

  credential_request request() const {
    credential_request r;
    r.subject = holder.did();
    r.holder_key = holder.public_key;
    r.issued_at_s = t0;
    r.expires_at_s = t0 + 86400;
    r.visible_claims.emplace_back("credential", "person");
    r.selective_claims.emplace_back("given_name", "Erika");
    r.selective_claims.emplace_back("family_name", "Mustermann");
    r.selective_claims.emplace_back("birthdate", "1963-08-12");
    json::object address;
    address.emplace_back("locality", "Berlin");
    address.emplace_back("country", "DE");
    r.selective_claims.emplace_back("address", std::move(address));
    r.selective_claims.emplace_back("age_over_18", true);
    return r;
  }
  issued_credential issue(const credential_request& r) {
    auto issued = issue_credential(r, jose::signer_for(issuer), random);
    REQUIRE(issued.ok());
    return *issued;
  }
  key_binding_request binding(int64_t iat = t0 + 100) const {
    return {"verifier.mcom", "nonce-123", iat};
  }
  presentation_check check(int64_t now_s = t0 + 110) const {
    presentation_check c;
    c.issuer_key = issuer.public_key;
    c.audience = "verifier.mcom";
    c.nonce = "nonce-123";
    c.now_s = now_s;
    return c;
  }
  std::string present(const issued_credential& credential, std::vector<std::string> names) {
    auto presented = present_credential(credential.serialize(), names, binding(),
                                        jose::signer_for(holder));
    REQUIRE(presented.ok());
    return *presented;
  }
};

template <class T>
error_kind kind_of(const outcome<T>& refused) {
  REQUIRE(!refused.ok());
  return refused.kind();
}

// Re-signs a KB-JWT over `prefix` with `key` (to build presentations an attacker could make).
std::string with_key_binding(const std::string& prefix, const identity& key,
                             const std::string& nonce = "nonce-123",
                             const std::string& audience = "verifier.mcom",
                             int64_t iat = t0 + 100) {
  const jose::sha256_digest hash = jose::sha256(prefix);
  json::object claims;
  claims.emplace_back("iat", iat);
  claims.emplace_back("aud", audience);
  claims.emplace_back("nonce", nonce);
  claims.emplace_back("sd_hash", jose::base64url_encode(hash.data(), hash.size()));
  return prefix + jose::sign_ed25519("kb+jwt", json::dump(claims), jose::signer_for(key));
}

std::string prefix_of(const std::string& presentation) {
  return presentation.substr(0, presentation.rfind('~') + 1);
}

// Every part of a presentation decoded to text (JWT parts and disclosures), for leak checks.
std::string decoded_text(const std::string& presentation) {
  std::string out;
  size_t start = 0;
  while (start <= presentation.size()) {
    size_t end = presentation.find_first_of("~.", start);
    if (end == std::string::npos) end = presentation.size();
    if (auto raw = jose::base64url_decode(presentation.substr(start, end - start)))
      out += std::string(raw->begin(), raw->end()) + "\n";
    start = end + 1;
  }
  return out;
}

}  // namespace

TEST_CASE("sd-jwt: the RFC 9901 example disclosure hashes to the RFC digest") {
  CHECK(disclosure_digest(rfc_disclosure) == rfc_digest);
  auto parsed = parse_disclosure(rfc_disclosure);
  REQUIRE(parsed.ok());
  CHECK(parsed->salt == "6qMQvRL5haj");
  CHECK(parsed->name == "family_name");
  CHECK(parsed->value == json::value("M\xc3\xb6" "bius"));
  CHECK(parsed->encoded == rfc_disclosure);
  CHECK(parsed->digest == rfc_digest);
  // The digest is over the string as sent: our own encoding of the same triple (no spaces) is a
  // different string and so a different digest.
  auto ours = make_disclosure("6qMQvRL5haj", "family_name", "M\xc3\xb6" "bius");
  REQUIRE(ours.ok());
  CHECK(ours->encoded != rfc_disclosure);
  CHECK(ours->digest != rfc_digest);
  CHECK(ours->digest == disclosure_digest(ours->encoded));
}

TEST_CASE("sd-jwt: disclosures round-trip and bad ones are refused") {
  json::object nested;
  nested.emplace_back("a", json::array{1, "two", nullptr});
  auto made = make_disclosure("salt", "claim", nested);
  REQUIRE(made.ok());
  auto back = parse_disclosure(made->encoded);
  REQUIRE(back.ok());
  CHECK(back->name == "claim");
  CHECK(back->value == made->value);
  CHECK(back->digest == made->digest);

  CHECK(!make_disclosure("", "x", 1).ok());
  CHECK(!make_disclosure("s", "_sd", 1).ok());
  CHECK(!make_disclosure("s", "...", 1).ok());
  for (const std::string& text : {std::string("[\"s\",\"v\"]"), std::string("[\"s\",\"_sd\",1]"),
                                 std::string("[\"s\",1,2]"), std::string("{\"s\":1}"),
                                 std::string("[\"s\",\"n\",1,2]"), std::string("not json")}) {
    CAPTURE(text);
    CHECK(code_of(parse_disclosure(jose::base64url_encode(text))) == errc::malformed);
  }
  CHECK(!parse_disclosure(std::string(rfc_disclosure) + "=").ok());
}

TEST_CASE("sd-jwt: issued credential hides selective claims behind sorted digests") {
  fixture f;
  const issued_credential credential = f.issue(f.request());
  REQUIRE(credential.disclosures.size() == 5);
  auto parsed = jose::verify_compact(credential.issuer_jwt, f.issuer.public_key);
  REQUIRE(parsed.ok());
  CHECK(*parsed->header.find_string("typ") == "cmesh+sd-jwt");
  auto payload = jose::parse_json_object(parsed->payload, "payload");
  REQUIRE(payload.ok());
  CHECK(*payload->find_string("iss") == f.issuer.did());
  CHECK(*payload->find_string("_sd_alg") == "sha-256");
  CHECK(*payload->find_string("credential") == "person");
  CHECK(payload->find("given_name") == nullptr);
  CHECK(parsed->payload.find("Erika") == std::string::npos);
  CHECK(*jose::node_id_from_jwk(*payload->find("cnf")->find("jwk")) == f.holder.public_key);
  const json::array& sd = payload->find("_sd")->as_array();
  REQUIRE(sd.size() == 5);
  std::vector<std::string> digests;
  for (const auto& d : sd) digests.push_back(d.as_string());
  CHECK(std::is_sorted(digests.begin(), digests.end()));
  for (const auto& d : credential.disclosures) {
    CHECK(std::count(digests.begin(), digests.end(), d.digest) == 1);
    CHECK(jose::base64url_decode(d.salt)->size() == salt_bytes);
  }
  // Serialized form: issuer JWT, every disclosure, trailing '~'.
  const std::string serialized = credential.serialize();
  CHECK(serialized.back() == '~');
  CHECK(std::count(serialized.begin(), serialized.end(), '~') == 6);
}

TEST_CASE("sd-jwt: the holder discloses a chosen subset; the verifier sees only that") {
  fixture f;
  const issued_credential credential = f.issue(f.request());
  const std::string presentation = f.present(credential, {"given_name", "age_over_18"});

  auto verified = verify_presentation(presentation, f.check());
  REQUIRE(verified.ok());
  CHECK(verified->issuer == f.issuer.did());
  CHECK(verified->holder_key == f.holder.public_key);
  const json::value& claims = verified->claims;
  CHECK(*claims.find_string("given_name") == "Erika");
  CHECK(claims.find("age_over_18")->as_bool());
  CHECK(*claims.find_string("credential") == "person");
  CHECK(claims.find("family_name") == nullptr);
  CHECK(claims.find("birthdate") == nullptr);
  CHECK(claims.find("address") == nullptr);
  CHECK(claims.find("_sd") == nullptr);
  CHECK(claims.find("_sd_alg") == nullptr);
  std::vector<std::string> disclosed = verified->disclosed;
  std::sort(disclosed.begin(), disclosed.end());
  CHECK(disclosed == std::vector<std::string>{"age_over_18", "given_name"});

  // The presentation holds exactly the chosen disclosures, and no undisclosed value anywhere.
  auto parts = split_sd_jwt(presentation);
  REQUIRE(parts.ok());
  std::set<std::string> chosen;
  for (const auto& d : credential.disclosures)
    if (d.name == "given_name" || d.name == "age_over_18") chosen.insert(d.encoded);
  CHECK(std::set<std::string>(parts->disclosures.begin(), parts->disclosures.end()) == chosen);
  CHECK(parts->disclosures.size() == 2);
  const std::string visible = decoded_text(presentation);
  CHECK(visible.find("Erika") != std::string::npos);
  for (const char* hidden : {"Mustermann", "1963-08-12", "Berlin", "family_name", "birthdate"}) {
    CAPTURE(hidden);
    CHECK(visible.find(hidden) == std::string::npos);
  }

  // Disclosing nothing is allowed; disclosing everything too.
  auto none = verify_presentation(f.present(credential, {}), f.check());
  REQUIRE(none.ok());
  CHECK(none->disclosed.empty());
  auto all = verify_presentation(
      f.present(credential, {"given_name", "family_name", "birthdate", "address", "age_over_18"}),
      f.check());
  REQUIRE(all.ok());
  CHECK(*all->claims.find("address")->find_string("locality") == "Berlin");
}

TEST_CASE("sd-jwt: the holder refuses what it cannot honestly present") {
  fixture f;
  const issued_credential credential = f.issue(f.request());
  const std::string serialized = credential.serialize();
  const jose::signer holder = jose::signer_for(f.holder);
  const jose::signer attacker = jose::signer_for(f.attacker);
  CHECK(code_of(present_credential(serialized, {"nickname"}, f.binding(), holder)) ==
        errc::invalid_argument);
  CHECK(code_of(present_credential(serialized, {"given_name"}, f.binding(), attacker)) ==
        errc::identity_mismatch);
  const std::string presented = f.present(credential, {"given_name"});
  CHECK(!present_credential(presented, {}, f.binding(), jose::signer_for(f.holder)).ok());
  key_binding_request no_nonce = f.binding();
  no_nonce.nonce.clear();
  CHECK(!present_credential(serialized, {}, no_nonce, jose::signer_for(f.holder)).ok());
}

TEST_CASE("sd-jwt: tampered presentations are refused, each for its reason") {
  fixture f;
  const issued_credential credential = f.issue(f.request());
  const std::string good = f.present(credential, {"given_name", "birthdate"});
  REQUIRE(verify_presentation(good, f.check()).ok());
  auto parts = *split_sd_jwt(good);
  const std::string jwt = parts.issuer_jwt;

  SUBCASE("a changed disclosure is not referenced by _sd") {
    auto changed = make_disclosure(parse_disclosure(parts.disclosures[0])->salt, "given_name",
                                   "Mallory");
    std::string prefix = jwt + "~" + changed->encoded + "~" + parts.disclosures[1] + "~";
    CHECK(kind_of(verify_presentation(with_key_binding(prefix, f.holder), f.check())) ==
          error_kind::disclosure_mismatch);
  }
  SUBCASE("a disclosure from another credential is not referenced") {
    const issued_credential other = f.issue(f.request());
    std::string prefix = jwt + "~" + other.disclosures[0].encoded + "~";
    CHECK(kind_of(verify_presentation(with_key_binding(prefix, f.holder), f.check())) ==
          error_kind::disclosure_mismatch);
  }
  SUBCASE("the same disclosure twice") {
    std::string prefix = jwt + "~" + parts.disclosures[0] + "~" + parts.disclosures[0] + "~";
    CHECK(kind_of(verify_presentation(with_key_binding(prefix, f.holder), f.check())) ==
          error_kind::disclosure_mismatch);
  }
  SUBCASE("key binding removed") {
    CHECK(kind_of(verify_presentation(prefix_of(good), f.check())) ==
          error_kind::missing_key_binding);
    CHECK(kind_of(verify_presentation(credential.serialize(), f.check())) ==
          error_kind::missing_key_binding);
  }
  SUBCASE("a disclosure removed or added after key binding") {
    const std::string kb = parts.key_binding_jwt;
    CHECK(kind_of(verify_presentation(jwt + "~" + parts.disclosures[0] + "~" + kb, f.check())) ==
          error_kind::sd_hash_mismatch);
    std::string unselected;
    for (const auto& d : credential.disclosures)
      if (d.name == "family_name") unselected = d.encoded;
    CHECK(kind_of(verify_presentation(prefix_of(good) + unselected + "~" + kb, f.check())) ==
          error_kind::sd_hash_mismatch);
  }
  SUBCASE("wrong nonce, wrong audience") {
    presentation_check other_nonce = f.check();
    other_nonce.nonce = "nonce-456";
    CHECK(kind_of(verify_presentation(good, other_nonce)) == error_kind::wrong_nonce);
    presentation_check other_verifier = f.check();
    other_verifier.audience = "elsewhere.mcom";
    CHECK(kind_of(verify_presentation(good, other_verifier)) == error_kind::wrong_audience);
  }
  SUBCASE("swapped holder key: an attacker binds a stolen credential with its own key") {
    CHECK(kind_of(verify_presentation(with_key_binding(prefix_of(good), f.attacker), f.check())) ==
          error_kind::bad_signature);
  }
  SUBCASE("stale or future key binding") {
    CHECK(kind_of(verify_presentation(good, f.check(t0 + 100 + 300 + 30))) ==
          error_kind::expired);
    CHECK(verify_presentation(good, f.check(t0 + 100 + 300 + 29)).ok());
    CHECK(kind_of(verify_presentation(good, f.check(t0 + 69))) == error_kind::not_yet_valid);
  }
  SUBCASE("kb-jwt of the wrong type") {
    const jose::sha256_digest hash = jose::sha256(prefix_of(good));
    json::object claims;
    claims.emplace_back("iat", t0 + 100);
    claims.emplace_back("aud", "verifier.mcom");
    claims.emplace_back("nonce", "nonce-123");
    claims.emplace_back("sd_hash", jose::base64url_encode(hash.data(), hash.size()));
    const std::string kb =
        jose::sign_ed25519("JWT", json::dump(claims), jose::signer_for(f.holder));
    CHECK(kind_of(verify_presentation(prefix_of(good) + kb, f.check())) == error_kind::malformed);
  }
  SUBCASE("issuer jwt tampered, foreign, or unsigned") {
    auto parsed = *jose::parse_compact(jwt);
    parsed.signature[1] ^= 2;
    const std::string forged_jwt = parsed.signing_input + "." +
                                   jose::base64url_encode(parsed.signature.data(), 64);
    std::string prefix = forged_jwt + good.substr(jwt.size(), prefix_of(good).size() - jwt.size());
    CHECK(kind_of(verify_presentation(with_key_binding(prefix, f.holder), f.check())) ==
          error_kind::bad_signature);
    presentation_check other_issuer = f.check();
    other_issuer.issuer_key = f.attacker.public_key;
    CHECK(kind_of(verify_presentation(good, other_issuer)) == error_kind::wrong_issuer);
    const std::string none_jwt =
        jose::base64url_encode("{\"alg\":\"none\",\"typ\":\"cmesh+sd-jwt\"}") + "." +
        jose::base64url_encode(parsed.payload) + ".";
    CHECK(kind_of(verify_presentation(with_key_binding(none_jwt + "~", f.holder), f.check())) ==
          error_kind::wrong_algorithm);
  }
  SUBCASE("expired credential") {
    CHECK(kind_of(verify_presentation(good, f.check(t0 + 86400 + 30))) == error_kind::expired);
  }
  SUBCASE("structure") {
    CHECK(kind_of(verify_presentation(jwt, f.check())) == error_kind::malformed);
    CHECK(kind_of(verify_presentation("~" + parts.key_binding_jwt, f.check())) ==
          error_kind::malformed);
    CHECK(kind_of(verify_presentation(jwt + "~~" + parts.key_binding_jwt, f.check())) ==
          error_kind::malformed);
    CHECK(kind_of(verify_presentation(std::string(presentation_chars_max + 1, '~'), f.check())) ==
          error_kind::malformed);
  }
}

TEST_CASE("sd-jwt: nested _sd in an object claim, and duplicate digests") {
  fixture f;
  const jose::signer issuer = jose::signer_for(f.issuer);
  auto street = *make_disclosure("salt-1", "street", "Heidestrasse 17");
  auto city = *make_disclosure("salt-2", "city", "Koeln");
  const auto sign_payload = [&](json::value address) {
    json::object payload;
    payload.emplace_back("iss", f.issuer.did());
    payload.emplace_back("exp", t0 + 1000);
    payload.emplace_back("address", std::move(address));
    json::object cnf;
    cnf.emplace_back("jwk", jose::public_jwk(f.holder.public_key));
    payload.emplace_back("cnf", std::move(cnf));
    payload.emplace_back("_sd_alg", "sha-256");
    return jose::sign_ed25519("cmesh+sd-jwt", json::dump(payload), issuer);
  };

  json::object address;
  address.emplace_back("country", "DE");
  address.emplace_back("_sd", json::array{street.digest, city.digest});
  const std::string jwt = sign_payload(address);
  auto verified = verify_presentation(
      with_key_binding(jwt + "~" + city.encoded + "~", f.holder), f.check());
  REQUIRE(verified.ok());
  const json::value* shown = verified->claims.find("address");
  REQUIRE(shown != nullptr);
  CHECK(*shown->find_string("city") == "Koeln");
  CHECK(*shown->find_string("country") == "DE");
  CHECK(shown->find("street") == nullptr);
  CHECK(shown->find("_sd") == nullptr);

  // The same digest twice in the payload is refused even when nothing is disclosed.
  json::object twice;
  twice.emplace_back("_sd", json::array{street.digest, street.digest});
  CHECK(kind_of(verify_presentation(with_key_binding(sign_payload(twice) + "~", f.holder),
                                    f.check())) == error_kind::disclosure_mismatch);
  // A disclosed name that already exists in its object is refused.
  auto clash = *make_disclosure("salt-3", "country", "FR");
  json::object clashing;
  clashing.emplace_back("country", "DE");
  clashing.emplace_back("_sd", json::array{clash.digest});
  CHECK(kind_of(verify_presentation(
            with_key_binding(sign_payload(clashing) + "~" + clash.encoded + "~", f.holder),
            f.check())) == error_kind::disclosure_mismatch);
  // Array-element digests are not supported.
  json::object with_array;
  json::object element;
  element.emplace_back("...", street.digest);
  with_array.emplace_back("items", json::array{element});
  CHECK(kind_of(verify_presentation(with_key_binding(sign_payload(with_array) + "~", f.holder),
                                    f.check())) == error_kind::malformed);
}

TEST_CASE("sd-jwt: decoys and issuing errors") {
  fixture f;
  credential_request r = f.request();
  r.decoy_digests = 7;
  const issued_credential credential = f.issue(r);
  auto payload = *jose::parse_json_object(jose::parse_compact(credential.issuer_jwt)->payload, "p");
  CHECK(payload.find("_sd")->as_array().size() == 12);
  CHECK(verify_presentation(f.present(credential, {"birthdate"}), f.check()).ok());

  const jose::signer issuer = jose::signer_for(f.issuer);
  r = f.request();
  r.expires_at_s = r.issued_at_s;
  CHECK(!issue_credential(r, issuer, f.random).ok());
  r = f.request();
  r.selective_claims.emplace_back("exp", 5);
  CHECK(!issue_credential(r, issuer, f.random).ok());
  r = f.request();
  r.visible_claims.emplace_back("cnf", 5);
  CHECK(!issue_credential(r, issuer, f.random).ok());
  r = f.request();
  r.visible_claims.emplace_back("given_name", "x");
  CHECK(!issue_credential(r, issuer, f.random).ok());
  r = f.request();
  r.decoy_digests = decoy_digests_max + 1;
  CHECK(!issue_credential(r, issuer, f.random).ok());
}

TEST_CASE("sd-jwt: the same seed gives the same credential") {
  fixture a;
  fixture b;
  CHECK(a.issue(a.request()).serialize() == b.issue(b.request()).serialize());
}
