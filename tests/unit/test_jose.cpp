// Tests for runtime/crypto/jose.hpp: strict base64url, SHA-256, compact JWS with Ed25519 (RFC 8037
// Appendix A vectors), header checks, and the JWK form of an ed25519 key.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "runtime/crypto/identity.hpp"
#include "runtime/crypto/jose.hpp"

namespace {

using namespace cmesh;

// RFC 8037 Appendix A.1: the Ed25519 private key d (the seed) and public key x.
constexpr const char* rfc8037_d = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
constexpr const char* rfc8037_x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
// RFC 8037 Appendix A.3: the JWK thumbprint of that key.
constexpr const char* rfc8037_thumbprint = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
// RFC 8037 Appendix A.4: {"alg":"EdDSA"} over "Example of Ed25519 signing".
constexpr const char* rfc8037_jws =
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

identity rfc8037_identity() {
  auto d = jose::base64url_decode(rfc8037_d);
  REQUIRE(d.ok());
  REQUIRE(d->size() == 32);
  std::array<uint8_t, 32> seed{};
  std::copy(d->begin(), d->end(), seed.begin());
  return identity::from_seed(seed);
}

std::string text_of(const bytes& raw) { return std::string(raw.begin(), raw.end()); }

// The error code of a result that must have failed; a success fails the test instead of tripping
// result's assertion.
template <class T>
errc code_of(const result<T>& failed) {
  REQUIRE(!failed.ok());
  return failed.err().code;
}

std::string hex_of(const jose::sha256_digest& digest) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (auto b : digest) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

// A compact JWS with an arbitrary header, signed by `key` (to build hostile tokens).
std::string signed_with_header(const std::string& header_json, const std::string& payload,
                               const identity& key) {
  return jose::sign_compact(header_json, payload, jose::signer_for(key));
}

}  // namespace

TEST_CASE("jose: base64url encodes the RFC 4648 vectors without padding") {
  CHECK(jose::base64url_encode("") == "");
  CHECK(jose::base64url_encode("f") == "Zg");
  CHECK(jose::base64url_encode("fo") == "Zm8");
  CHECK(jose::base64url_encode("foo") == "Zm9v");
  CHECK(jose::base64url_encode("foob") == "Zm9vYg");
  CHECK(jose::base64url_encode("fooba") == "Zm9vYmE");
  CHECK(jose::base64url_encode("foobar") == "Zm9vYmFy");
  const uint8_t url_chars[] = {0xfb, 0xff, 0xbf};
  CHECK(jose::base64url_encode(url_chars, 3) == "-_-_");
}

TEST_CASE("jose: base64url round-trips every length and byte value") {
  bytes data;
  for (int i = 0; i < 300; ++i) {
    const std::string encoded = jose::base64url_encode(data.data(), data.size());
    CHECK(encoded.find('=') == std::string::npos);
    auto decoded = jose::base64url_decode(encoded);
    REQUIRE(decoded.ok());
    CHECK(*decoded == data);
    CHECK(jose::is_canonical_base64url(encoded));
    data.push_back(static_cast<uint8_t>(i * 37 + 11));
  }
}

TEST_CASE("jose: base64url decoding is strict") {
  CHECK(jose::base64url_decode("Zg").ok());
  for (const char* bad : {"Zg==", "Zg=", "Zm9v=", "Z", "Zm9vY", "Zh", "Zm9", "ab+c", "ab/c",
                          "a b", "ab\nc", "\xc3\xa9xx"}) {
    CAPTURE(bad);
    auto decoded = jose::base64url_decode(bad);
    REQUIRE(!decoded.ok());
    CHECK(code_of(decoded) == errc::malformed);
    CHECK(!jose::is_canonical_base64url(bad));
  }
  // "Zh" and "Zg" would decode to the same byte in a lenient decoder: only "Zg" is canonical.
  auto respelled = jose::base64url_decode("Zh");
  REQUIRE(!respelled.ok());
  CHECK(respelled.err().message.find("non-canonical") != std::string::npos);
}

TEST_CASE("jose: SHA-256 matches the FIPS 180-2 vectors") {
  CHECK(hex_of(jose::sha256("abc")) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hex_of(jose::sha256("")) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("jose: RFC 8037 A.1 and A.3: the key, its JWK and thumbprint") {
  const identity id = rfc8037_identity();
  CHECK(jose::base64url_encode(id.public_key.key.data(), 32) == rfc8037_x);
  CHECK(json::dump(jose::public_jwk(id.public_key)) ==
        std::string("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"") + rfc8037_x + "\"}");
  CHECK(jose::jwk_thumbprint(id.public_key) == rfc8037_thumbprint);
}

TEST_CASE("jose: RFC 8037 A.4 and A.5: Ed25519 signing is reproduced exactly and verifies") {
  const identity id = rfc8037_identity();
  CHECK(jose::sign_compact("{\"alg\":\"EdDSA\"}", "Example of Ed25519 signing",
                           jose::signer_for(id)) == rfc8037_jws);
  auto verified = jose::verify_compact(rfc8037_jws, id.public_key);
  REQUIRE(verified.ok());
  CHECK(verified->payload == "Example of Ed25519 signing");
  CHECK(*verified->header.find_string("alg") == "EdDSA");
  CHECK(verified->signing_input == "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc");
}

TEST_CASE("jose: our own header is {alg:Ed25519, typ} and verifies") {
  const identity id = identity::derive_for_simulation(7, 0);
  const std::string token = jose::sign_ed25519("example+jwt", "{\"a\":1}", jose::signer_for(id));
  auto verified = jose::verify_compact(token, id.public_key);
  REQUIRE(verified.ok());
  CHECK(json::dump(verified->header) == "{\"alg\":\"Ed25519\",\"typ\":\"example+jwt\"}");
  CHECK(verified->payload == "{\"a\":1}");
  // No typ: the header is just the algorithm.
  const std::string bare = jose::sign_ed25519("", "x", jose::signer_for(id));
  CHECK(text_of(*jose::base64url_decode(bare.substr(0, bare.find('.')))) ==
        "{\"alg\":\"Ed25519\"}");
}

TEST_CASE("jose: verification refuses other keys, tampering and non-canonical encodings") {
  const identity id = rfc8037_identity();
  const identity other = identity::derive_for_simulation(7, 1);
  const std::string token = rfc8037_jws;

  auto wrong_key = jose::verify_compact(token, other.public_key);
  REQUIRE(!wrong_key.ok());
  CHECK(code_of(wrong_key) == errc::bad_signature);

  // Another payload under the same signature.
  const std::string swapped_payload =
      "eyJhbGciOiJFZERTQSJ9." + jose::base64url_encode("Example of Ed25519 signinG") +
      token.substr(token.rfind('.'));
  CHECK(code_of(jose::verify_compact(swapped_payload, id.public_key)) == errc::bad_signature);

  // One flipped signature bit.
  auto signature = *jose::base64url_decode(token.substr(token.rfind('.') + 1));
  signature[10] ^= 0x01;
  const std::string flipped = token.substr(0, token.rfind('.') + 1) +
                              jose::base64url_encode(signature.data(), signature.size());
  CHECK(code_of(jose::verify_compact(flipped, id.public_key)) == errc::bad_signature);

  // The same signature bytes spelled differently: the last character's unused bits set.
  std::string respelled = token;
  REQUIRE(respelled.back() == 'g');
  respelled.back() = 'h';
  CHECK(code_of(jose::verify_compact(respelled, id.public_key)) == errc::malformed);
  // Padding.
  CHECK(code_of(jose::verify_compact(token + "==", id.public_key)) == errc::malformed);
  // Structure.
  CHECK(code_of(jose::verify_compact("a.b", id.public_key)) == errc::malformed);
  CHECK(code_of(jose::verify_compact(token + ".x", id.public_key)) == errc::malformed);
  CHECK(code_of(jose::verify_compact("", id.public_key)) == errc::malformed);
  const std::string huge(jose::compact_jws_chars_max + 1, 'a');
  CHECK(code_of(jose::verify_compact(huge, id.public_key)) == errc::malformed);
  // Header not JSON, or JSON but not an object.
  const std::string signature_part = token.substr(token.rfind('.') + 1);
  const std::string not_json = jose::base64url_encode("{alg") + ".e30." + signature_part;
  CHECK(code_of(jose::verify_compact(not_json, id.public_key)) == errc::malformed);
  const std::string array = jose::base64url_encode("[\"EdDSA\"]") + ".e30." + signature_part;
  CHECK(code_of(jose::verify_compact(array, id.public_key)) == errc::malformed);
  // A signature of the wrong length.
  CHECK(code_of(jose::verify_compact(token.substr(0, token.size() - 4), id.public_key)) ==
        errc::malformed);
}

TEST_CASE("jose: header checks refuse none, other algorithms, crit and b64=false") {
  const identity id = identity::derive_for_simulation(7, 0);
  const auto code_for = [&](const std::string& header) {
    auto verified = jose::verify_compact(signed_with_header(header, "{}", id), id.public_key);
    return verified.ok() ? errc::ok : verified.err().code;
  };
  CHECK(code_for("{\"alg\":\"Ed25519\"}") == errc::ok);
  CHECK(code_for("{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}") == errc::ok);
  CHECK(code_for("{\"alg\":\"none\"}") == errc::unsupported_version);
  CHECK(code_for("{\"alg\":\"HS256\"}") == errc::unsupported_version);
  CHECK(code_for("{\"alg\":\"ES256\"}") == errc::unsupported_version);
  CHECK(code_for("{\"alg\":\"ed25519\"}") == errc::unsupported_version);
  CHECK(code_for("{\"typ\":\"JWT\"}") == errc::unsupported_version);
  CHECK(code_for("{\"alg\":5}") == errc::unsupported_version);
  CHECK(code_for("{\"alg\":\"EdDSA\",\"crit\":[\"exp\"],\"exp\":1}") == errc::malformed);
  CHECK(code_for("{\"alg\":\"EdDSA\",\"b64\":false,\"crit\":[\"b64\"]}") == errc::malformed);
  CHECK(code_for("{\"alg\":\"EdDSA\",\"b64\":false}") == errc::malformed);
  CHECK(code_for("{\"alg\":\"EdDSA\",\"b64\":true}") == errc::ok);
  // A duplicate member is refused by the JSON parser (RFC 7515 §5.2).
  CHECK(code_for("{\"alg\":\"EdDSA\",\"alg\":\"none\"}") == errc::malformed);
  // The classic unsigned token: "alg":"none" and an empty signature is refused for its algorithm.
  const std::string unsigned_token =
      jose::base64url_encode("{\"alg\":\"none\"}") + "." + jose::base64url_encode("{}") + ".";
  CHECK(code_of(jose::verify_compact(unsigned_token, id.public_key)) ==
        errc::unsupported_version);
  // An embedded jwk is ignored: the expected key decides.
  const identity attacker = identity::derive_for_simulation(7, 9);
  const std::string embedded =
      "{\"alg\":\"EdDSA\",\"jwk\":" + json::dump(jose::public_jwk(attacker.public_key)) + "}";
  const std::string self_keyed = signed_with_header(embedded, "{}", attacker);
  CHECK(code_of(jose::verify_compact(self_keyed, id.public_key)) == errc::bad_signature);
}

TEST_CASE("jose: JWK of an ed25519 public key, both ways") {
  const identity id = identity::derive_for_simulation(7, 3);
  auto back = jose::node_id_from_jwk(jose::public_jwk(id.public_key));
  REQUIRE(back.ok());
  CHECK(*back == id.public_key);

  const auto parse = [](const std::string& text) {
    auto value = json::parse(text);
    REQUIRE(value.has_value());
    return jose::node_id_from_jwk(*value);
  };
  const std::string x = std::string("\"") + rfc8037_x + "\"";
  CHECK(parse("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":" + x + "}").ok());
  CHECK(parse("{\"crv\":\"Ed25519\",\"x\":" + x + ",\"kty\":\"OKP\",\"use\":\"sig\"}").ok());
  for (const std::string& bad :
       {"{\"kty\":\"EC\",\"crv\":\"Ed25519\",\"x\":" + x + "}",
        "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":" + x + "}",
        std::string("{\"kty\":\"OKP\",\"crv\":\"Ed25519\"}"),
        std::string("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}"),
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" + std::string(rfc8037_x) + "=\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":" + x + ",\"d\":\"" + rfc8037_d + "\"}",
        std::string("[1,2]"), std::string("\"OKP\"")}) {
    CAPTURE(bad);
    auto parsed = parse(bad);
    REQUIRE(!parsed.ok());
    CHECK(code_of(parsed) == errc::malformed);
  }
}

TEST_CASE("jose: seeded random sources are deterministic and copies share one stream") {
  const auto a = jose::seeded_random_source(42);
  const auto b = jose::seeded_random_source(42);
  const std::string first = jose::random_base64url(a, 16);
  CHECK(first.size() == 22);
  CHECK(first == jose::random_base64url(b, 16));
  const auto copy = a;
  const std::string second = jose::random_base64url(copy, 16);
  CHECK(second != first);
  CHECK(jose::random_base64url(a, 16) != second);
  CHECK(jose::random_base64url(jose::seeded_random_source(43), 16) != first);
}
