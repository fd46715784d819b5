// Selective-disclosure credentials: SD-JWT with key binding (RFC 9901), signed with Ed25519.
// Spec: docs/iam.md §5.
//
// Issuer (a node)   signs a JWT whose selectively disclosable claims are replaced by digests:
//                   each such claim becomes a disclosure base64url(JSON [salt, name, value]) with
//                   a 16-byte random salt, and its digest base64url(SHA-256(the disclosure's ASCII
//                   text)) goes into the "_sd" array (sorted, so its order says nothing about the
//                   claims'), with "_sd_alg":"sha-256" and "cnf":{"jwk":<holder's public key>}.
//                   The holder receives  <issuer-jwt>~<disclosure>~...~<disclosure>~
// Holder            presents the issuer JWT, only the disclosures it chooses, and a key-binding JWT
//                   (typ "kb+jwt", signed by the cnf key) with iat, aud, nonce and
//                   sd_hash = base64url(SHA-256(everything before it, up to the last '~'))
//                   <issuer-jwt>~<chosen disclosure>~...~<kb-jwt>
// Verifier          checks the issuer signature (against the issuer key it trusts), that every
//                   disclosure's digest is referenced exactly once, the credential's lifetime, and
//                   the KB-JWT: signature by the cnf key, typ, freshness, aud, nonce, sd_hash. It
//                   returns the claims with the disclosed ones filled in: claims not disclosed are
//                   not there.
//
// Supported: object-property disclosures at any depth (nested "_sd" inside objects and inside
// disclosed values). Not supported (refused as malformed): array-element disclosures ({"...":..}),
// hash algorithms other than sha-256. Key binding is always required.
//
// Pure: salts and decoys come from the jose::random_source handed in, time from `now_s`. Errors
// are values; nothing throws on bad input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "actors/iam/token.hpp"
#include "messages/error.hpp"
#include "messages/node_id.hpp"
#include "runtime/core/json.hpp"
#include "runtime/crypto/jose.hpp"

namespace cmesh::iam {

// ---- limits and names ---------------------------------------------------------------------------
// A presentation is an issuer JWT (a few KB) and its disclosures; 64 KiB is ample and bounds the
// work a hostile presentation can cause before the first signature check.
inline constexpr size_t presentation_chars_max = 64 * 1024;
// Disclosures per credential: attribute sets are small (name, birth date, address, ...).
inline constexpr size_t disclosures_max = 64;
// Decoy digests an issuer may add (they hide how many claims are selectively disclosable).
inline constexpr size_t decoy_digests_max = 64;
// Salt entropy (RFC 9901 §9.3 recommends 128 bits).
inline constexpr size_t salt_bytes = 16;
// Explicit types (RFC 9901 §9.11 / §4.3).
inline constexpr std::string_view credential_type = "cmesh+sd-jwt";
inline constexpr std::string_view key_binding_type = "kb+jwt";

// ---- disclosures --------------------------------------------------------------------------------
struct disclosure {
  std::string salt;
  std::string name;
  json::value value;
  std::string encoded;  // base64url(UTF-8 JSON array [salt, name, value])
  std::string digest;   // disclosure_digest(encoded)
};

// base64url(SHA-256(encoded)), hashing the ASCII text as given (not its decoding).
std::string disclosure_digest(std::string_view encoded);
// A disclosure for claim `name`. Errors (invalid_argument): empty salt, name "_sd" or "...".
result<disclosure> make_disclosure(std::string salt, std::string name, json::value value);
// Decodes a disclosure string. Errors (malformed): not canonical base64url, not a JSON array of
// [string salt, string name, value], a reserved name ("_sd", "..."), or a two-element
// (array-element) disclosure, which this implementation does not support.
result<disclosure> parse_disclosure(std::string_view encoded);

// ---- issuing ------------------------------------------------------------------------------------
struct credential_request {
  std::string subject;             // sub; "" leaves it out (a stable sub links presentations)
  node_id holder_key;              // becomes cnf.jwk: only this key can present the credential
  int64_t issued_at_s = 0;         // iat
  int64_t expires_at_s = 0;        // exp
  json::object visible_claims;     // always disclosed (e.g. a credential type)
  json::object selective_claims;   // one disclosure each
  size_t decoy_digests = 0;        // extra random digests in _sd, at most decoy_digests_max
};

struct issued_credential {
  std::string issuer_jwt;
  std::vector<disclosure> disclosures;  // in the order of request.selective_claims
  // "<issuer-jwt>~<disclosure>~...~" (an SD-JWT without key binding): what the holder stores.
  std::string serialize() const;
};

// Errors (invalid_argument): exp <= iat; a claim name reserved for the issuer (iss, sub, iat,
// nbf, exp, cnf, _sd, _sd_alg, "...") in either claim set; a name in both sets or twice in one;
// more than disclosures_max selective claims or decoy_digests_max decoys.
result<issued_credential> issue_credential(const credential_request& request,
                                           const jose::signer& issuer,
                                           const jose::random_source& random);

// ---- presenting (holder) ------------------------------------------------------------------------
// The parts of an SD-JWT or SD-JWT+KB, split on '~' without interpreting them.
struct sd_jwt_parts {
  std::string issuer_jwt;
  std::vector<std::string> disclosures;
  std::string key_binding_jwt;  // empty when the text ends with '~' (no key binding)
  std::string hashed_prefix;    // everything up to and including the last '~': what sd_hash covers
};
// Errors (malformed): over presentation_chars_max, no '~', an empty issuer JWT or disclosure, more
// than disclosures_max disclosures.
result<sd_jwt_parts> split_sd_jwt(std::string_view text);

struct key_binding_request {
  std::string audience;  // the verifier
  std::string nonce;     // the verifier's fresh nonce
  int64_t issued_at_s = 0;
};

// Builds a presentation of `credential` (an SD-JWT without key binding, as serialize() gives)
// holding exactly the disclosures for the claim names in `disclose`, in credential order, and a
// KB-JWT signed by `holder`. Errors: malformed (credential does not split or its disclosures do
// not parse, issuer JWT payload unreadable or without cnf.jwk), identity_mismatch (cnf.jwk is
// not holder's key), invalid_argument (a name in `disclose` with no disclosure; a credential that
// already carries a KB-JWT; empty audience or nonce).
result<std::string> present_credential(std::string_view credential,
                                       const std::vector<std::string>& disclose,
                                       const key_binding_request& binding,
                                       const jose::signer& holder);

// ---- verifying ----------------------------------------------------------------------------------
struct presentation_check {
  node_id issuer_key;    // the issuer this verifier trusts for these credentials
  std::string audience;  // this verifier, as the holder must name it in the KB-JWT
  std::string nonce;     // the nonce this verifier handed to the holder for this presentation
  int64_t now_s = 0;
  int64_t clock_skew_s = 30;
  // A KB-JWT older than this is stale: the nonce already makes it single-use, the age bounds how
  // long a verifier must remember its nonces.
  int64_t key_binding_age_s_max = 300;
};

struct verified_presentation {
  std::string issuer;               // iss
  node_id holder_key;               // cnf.jwk
  json::value claims;               // issuer claims with disclosed ones filled in; no _sd, _sd_alg
  std::vector<std::string> disclosed;  // names of the disclosed claims, in presentation order
};

// Checks in this order, returning the first refusal:
//   1 over presentation_chars_max, bad '~' structure                      malformed
//   2 issuer JWT: not a compact JWS                                       malformed
//                 alg not Ed25519/EdDSA                                   wrong_algorithm
//                 crit, b64, typ not credential_type, payload not JSON    malformed
//                 iss not the did:key of issuer_key                       wrong_issuer
//                 signature                                               bad_signature
//   3 _sd_alg other than sha-256, _sd not an array of strings, a disclosure that does not parse,
//     an array-element digest                                              malformed
//   4 the same disclosure twice, a digest twice in the payload, a disclosure whose digest is not
//     referenced, a disclosed name already present in its object         disclosure_mismatch
//   5 exp missing or not an integer, cnf.jwk missing or not an ed25519 key malformed
//     now >= exp + skew                                                    expired
//     now + skew < nbf or iat                                              not_yet_valid
//   6 no KB-JWT                                                            missing_key_binding
//   7 KB-JWT: not a compact JWS, typ not kb+jwt, claims missing           malformed
//             alg                                                          wrong_algorithm
//             signature by the cnf key                                     bad_signature
//             iat + key_binding_age_s_max + skew <= now                    expired
//             now + skew < iat                                             not_yet_valid
//             aud                                                          wrong_audience
//             nonce                                                        wrong_nonce
//             sd_hash                                                      sd_hash_mismatch
outcome<verified_presentation> verify_presentation(std::string_view presentation,
                                                   const presentation_check& check);

}  // namespace cmesh::iam
