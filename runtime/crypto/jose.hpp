// JOSE pieces for IAM: base64url, SHA-256, compact JWS signed with Ed25519, and the JWK form of an
// ed25519 public key. Spec page: docs/iam.md.
//
// - base64url (RFC 4648 §5) without padding, as JOSE uses it (RFC 7515 §2). Decoding is strict:
//   '=' padding, characters outside [A-Za-z0-9_-], a length of 1 mod 4 and non-zero unused
//   trailing bits are all refused, so every byte string has exactly one accepted encoding (no
//   second spelling of a signature or a digest).
// - SHA-256 through libsodium (crypto_hash_sha256). Deterministic.
// - Compact JWS (RFC 7515 §7.1) with Ed25519 (RFC 8032). We sign with header
//   {"alg":"Ed25519","typ":...} ("Ed25519" is the fully specified name of RFC 9864). Verification
//   accepts alg "Ed25519" or "EdDSA" (RFC 8037; the curve is the expected key's, Ed25519) and
//   refuses "none" and every other algorithm, any "crit" (we implement no extension), "b64" other
//   than true (RFC 7797 unencoded payloads), and non-canonical base64url. The signature is checked
//   against the key the caller expects, never one named or embedded in the header (jwk, kid, x5u
//   are ignored).
// - JWK of an ed25519 public key (RFC 8037 §2): {"kty":"OKP","crv":"Ed25519","x":...}, and its
//   thumbprint (RFC 7638).
//
// Randomness: nothing here draws random bytes except secure_random_source() (REAL MODE ONLY,
// called from runtime/). Salts, nonces and token ids elsewhere come from a random_source handed in.
// Errors are values (result/status), never exceptions. Pure functions; safe from any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "messages/error.hpp"
#include "messages/node_id.hpp"
#include "runtime/core/json.hpp"
#include "runtime/crypto/identity.hpp"

namespace cmesh::jose {

// ---- limits -------------------------------------------------------------------------------------
// Longest compact JWS accepted by parse_compact(). Session tokens are ~500 characters and SD-JWT
// issuer JWTs a few KB; 64 KiB leaves room for large credentials and stops hostile input early.
inline constexpr size_t compact_jws_chars_max = 64 * 1024;

// ---- base64url ----------------------------------------------------------------------------------
// Encodes [data, data + size) as base64url without padding (data may be null if size == 0).
std::string base64url_encode(const uint8_t* data, size_t size);
std::string base64url_encode(std::string_view text);
// Decodes unpadded base64url. Errors (malformed, the message names the position): padding, a
// character outside the alphabet, a length of 1 mod 4, non-zero unused bits in the last character.
// The empty string decodes to no bytes.
result<bytes> base64url_decode(std::string_view text);
// True iff base64url_decode(text) would succeed (no allocation).
bool is_canonical_base64url(std::string_view text);

// ---- SHA-256 ------------------------------------------------------------------------------------
using sha256_digest = std::array<uint8_t, 32>;
sha256_digest sha256(const uint8_t* data, size_t size);
sha256_digest sha256(std::string_view text);

// ---- randomness ---------------------------------------------------------------------------------
// Fills [out, out + size) with random bytes. Handed to whatever needs salts, nonces or ids: in real
// mode a cryptographic source (secure_random_source), in simulation and tests a seeded one.
using random_source = std::function<void(uint8_t* out, size_t size)>;
// libsodium randombytes_buf. REAL MODE ONLY: call it from runtime/, never from actors/ or sim/.
random_source secure_random_source();
// A deterministic source seeded with `seed` (xoshiro256**, runtime/core/rng.hpp): for simulation
// and tests only. Predictable by design: never use it where an attacker must not guess the output.
random_source seeded_random_source(uint64_t seed);
// `size` bytes from `source`, base64url-encoded (16 bytes -> 22 characters).
std::string random_base64url(const random_source& source, size_t size);

// ---- signing ------------------------------------------------------------------------------------
using signature64 = std::array<uint8_t, 64>;

// Who signs: a public key and a function that signs with its secret key (the closure owns the
// secret; do not log it). Lets machines sign without holding key material themselves.
struct signer {
  node_id public_key;
  std::function<signature64(const uint8_t* data, size_t size)> sign;
};
// A signer holding its own copy of `id`'s key pair.
signer signer_for(const identity& id);

// ---- JWK ----------------------------------------------------------------------------------------
// {"kty":"OKP","crv":"Ed25519","x":"<base64url(key)>"} as a JSON value, members in that order.
json::value public_jwk(const node_id& key);
// Reads an ed25519 public JWK. Errors (malformed): not an object, kty not "OKP", crv not "Ed25519",
// x missing, not canonical base64url or not 32 bytes, or a "d" member (private key material has
// no business in a public key; refusing it keeps a leaked secret from being accepted silently).
result<node_id> node_id_from_jwk(const json::value& jwk);
// RFC 7638 thumbprint: base64url(SHA-256({"crv":"Ed25519","kty":"OKP","x":...})).
std::string jwk_thumbprint(const node_id& key);

// ---- compact JWS --------------------------------------------------------------------------------
// The header every JWS we create carries: {"alg":"Ed25519","typ":<typ>} ("typ" left out if empty).
json::value ed25519_header(std::string_view typ);

// BASE64URL(header_json) "." BASE64URL(payload) "." BASE64URL(signature), the signature made by
// `key` over the first two parts. `header_json` is encoded byte for byte (callers pass JSON text
// naming an algorithm the key implements; tests use it to reproduce RFC 8037's {"alg":"EdDSA"}).
std::string sign_compact(std::string_view header_json, std::string_view payload, const signer& key);
// sign_compact(json::dump(ed25519_header(typ)), payload, key).
std::string sign_ed25519(std::string_view typ, std::string_view payload, const signer& key);

// A compact JWS split and decoded, not yet verified.
struct compact_jws {
  std::string signing_input;  // BASE64URL(header) "." BASE64URL(payload): what the signature covers
  json::value header;         // a JSON object
  std::string payload;        // the decoded payload bytes
  bytes signature;            // any length here; signature_valid() wants 64 bytes
};

// Splits and decodes. Errors (malformed): longer than compact_jws_chars_max, not exactly three
// '.'-separated parts, a part that is not canonical base64url, a header that is not a JSON object.
// Neither the payload nor the signature length is interpreted (so an "alg":"none" token with an
// empty signature reaches check_ed25519_header and is refused there for its algorithm).
result<compact_jws> parse_compact(std::string_view token);

// Checks the protected header of a JWS we are about to verify with an Ed25519 key.
// Errors: unsupported_version for a missing or non-string alg, "none", or any alg other than
// "Ed25519" / "EdDSA" (the message names it); malformed for any "crit" member, or "b64" other
// than true.
status check_ed25519_header(const json::value& header);

// True iff parsed.signature is 64 bytes and a valid Ed25519 signature by `key` over
// parsed.signing_input.
bool signature_valid(const compact_jws& parsed, const node_id& key);

// parse_compact + check_ed25519_header + signature_valid (bad_signature if not; a signature that
// is not 64 bytes long is malformed).
result<compact_jws> verify_compact(std::string_view token, const node_id& key);

// Parses `text` as one JSON object. Errors (malformed): not JSON (the message carries `what` and
// the parser's offset and reason), or JSON that is not an object.
result<json::value> parse_json_object(std::string_view text, std::string_view what);

}  // namespace cmesh::jose
