// IAM session tokens: compact JWS (Ed25519) issued by a node to a holder after the passwordless
// handshake (actors/iam/iam_machine.hpp), checked locally by every protected service.
// Spec: docs/iam.md.
//
// Header  {"alg":"Ed25519","typ":"cmesh-session+jwt"}
// Claims  {"iss":<node DID>,"sub":<holder DID>,"aud":<audience>,"iat":<s>,["nbf":<s>,]"exp":<s>,
//          "scope":"<space-separated scope tokens>","jti":<unique id>}
// Times are Unix seconds (mesh time: the actor clock plus the mesh epoch offset); the token id
// comes from a random source handed in (make_token_id). Nothing here reads a clock or draws
// randomness of its own.
//
// Every refusal has its own error_kind so a router can answer the CMTP status the client needs
// (cmtp_status()): 401 "identity required" (start or redo the identity flow) for a missing,
// malformed, wrongly signed, expired, not yet valid, revoked or foreign token; 403 "forbidden"
// when the token is good but its scope does not cover the request.
//
// Pure: no CAF, no I/O. Signing goes through a jose::signer; verification and hashing call
// libsodium's deterministic functions. Errors are values; nothing throws on bad input.
#pragma once

#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "actors/gossip/lru_cache.hpp"
#include "messages/error.hpp"
#include "messages/node_id.hpp"
#include "runtime/crypto/jose.hpp"

namespace cmesh::iam {

// ---- errors -------------------------------------------------------------------------------------
// Why IAM refused something. The generic errc cannot tell these apart, and the difference decides
// the CMTP status, so IAM carries its own kind (the reputation machine's verdict pattern).
enum class error_kind : uint8_t {
  missing_token,        // no token presented                                          401
  malformed,            // not a compact JWS / bad base64url / bad JSON / bad claims   401
  bad_signature,        // signature does not verify with the expected key              401
  wrong_algorithm,      // alg "none" or anything but Ed25519 / EdDSA                   401
  expired,              // exp (plus skew) has passed; also a stale KB-JWT or challenge 401
  not_yet_valid,        // nbf or iat in the future (beyond skew)                       401
  wrong_audience,       // aud is not the audience the checker expects                  401
  wrong_issuer,         // iss is not the node whose key we trust                       401
  revoked,              // jti on the revocation list                                   401
  insufficient_scope,   // authentic token whose scope does not cover the request       403
  // handshake (iam_machine)
  unknown_challenge,    // no such outstanding challenge (never issued, or evicted)     401
  replayed,             // a challenge already answered                                  401
  scope_denied,         // the policy allows none of the scopes requested                403
  // SD-JWT (sd_jwt.hpp)
  disclosure_mismatch,  // a disclosure not referenced by _sd, or referenced twice      401
  missing_key_binding,  // presentation without a KB-JWT                                401
  wrong_nonce,          // KB-JWT nonce is not the one the verifier handed out          401
  sd_hash_mismatch,     // KB-JWT sd_hash does not cover this presentation              401
};
inline constexpr size_t error_kind_count = static_cast<size_t>(error_kind::sd_hash_mismatch) + 1;
const char* error_kind_name(error_kind kind);
// 403 for insufficient_scope and scope_denied, 401 for every other kind.
int cmtp_status(error_kind kind);
// The closest generic code, for logs and for layers that only speak cmesh::error:
// malformed/missing -> malformed, bad_signature -> bad_signature, wrong_algorithm ->
// unsupported_version, replayed -> replayed, insufficient_scope/scope_denied ->
// permission_denied, wrong_issuer -> identity_mismatch, the rest -> auth_failed.
errc generic_code(error_kind kind);

struct iam_error {
  error_kind kind = error_kind::malformed;
  std::string message;

  // "expired: token expired at 1700000060, now 1700000100 (skew 30 s)"
  std::string describe() const;
  error to_error() const { return error{generic_code(kind), describe()}; }
};

// A value or an iam_error: cmesh::result's shape, with the IAM error kind.
template <class T>
class outcome {
public:
  outcome(T value) : state_(std::move(value)) {}
  outcome(iam_error err) : state_(std::move(err)) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(state_); }
  const T& value() const& { assert(ok()); return std::get<0>(state_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const iam_error& err() const { assert(!ok()); return std::get<1>(state_); }
  error_kind kind() const { return err().kind; }

private:
  std::variant<T, iam_error> state_;
};

// ---- limits -------------------------------------------------------------------------------------
// A session token is ~500 characters; 8 KiB allows long audiences and scopes and stops a hostile
// request early, before any base64 or JSON work.
inline constexpr size_t session_token_chars_max = 8 * 1024;
// Scope tokens per token: a session is for one service, a handful of permissions.
inline constexpr size_t scopes_max = 64;
// The "typ" of every session token: explicit typing (RFC 8725 §3.11), so a credential or key
// binding JWT signed by the same node key can never pass as a session token.
inline constexpr std::string_view session_token_type = "cmesh-session+jwt";
// Random bytes in a token id: 128 bits, no collision in any realistic number of tokens.
inline constexpr size_t token_id_bytes = 16;

// ---- scopes (RFC 6749 §3.3, as RFC 8693 carries them) ------------------------------------------
// Splits "a b c" into {"a","b","c"}. Errors (malformed): empty tokens (leading, trailing or double
// spaces), characters outside %x21 / %x23-5B / %x5D-7E, more than scopes_max tokens. Duplicates
// are kept once. "" is the empty scope (no tokens).
result<std::vector<std::string>> parse_scope(std::string_view scope);
// Joins with single spaces.
std::string join_scope(const std::vector<std::string>& scopes);
// True iff every token of `required` is in `granted`.
bool covers(const std::vector<std::string>& granted, const std::vector<std::string>& required);

// ---- claims -------------------------------------------------------------------------------------
struct session_claims {
  std::string issuer;                       // iss: the issuing node's did:key
  std::string subject;                      // sub: the holder's did:key
  std::string audience;                     // aud: the service or router the token is for
  int64_t issued_at_s = 0;                  // iat
  std::optional<int64_t> not_before_s;      // nbf (left out when empty)
  int64_t expires_at_s = 0;                 // exp
  std::vector<std::string> scopes;          // scope, as tokens
  std::string token_id;                     // jti

  friend bool operator==(const session_claims&, const session_claims&) = default;
};

// A fresh token id: token_id_bytes from `source`, base64url (22 characters).
std::string make_token_id(const jose::random_source& source);

// Signs `claims` as a session token with the node key. Errors (invalid_argument): iss is not the
// signer's did:key; sub not a did:key; empty aud or jti; exp <= iat; nbf after exp; a scope token
// with characters RFC 6749 does not allow; more than scopes_max scopes.
result<std::string> issue_session_token(const session_claims& claims, const jose::signer& node);

// ---- verification -------------------------------------------------------------------------------
// What the checker expects. The issuer is named by its key (from configuration or the handshake
// with that node), never taken from the token.
struct token_check {
  node_id issuer_key;                   // the node whose tokens this checker accepts
  std::string audience;                 // must equal aud
  int64_t now_s = 0;                    // mesh time, Unix seconds
  std::string required_scope;           // space-separated; "" asks for no scope
  // Clocks of honest nodes disagree by seconds; 30 s tolerates NTP-less hosts without keeping an
  // expired token alive for long.
  int64_t clock_skew_s = 30;
  // Answers whether a token id is revoked; empty = no revocation list.
  std::function<bool(std::string_view token_id)> is_revoked;
};

// Checks in this order, returning the first refusal:
//   1 empty token                                      missing_token
//   2 over session_token_chars_max, not three canonical base64url parts, header not a JSON
//     object                                           malformed
//   3 alg missing, "none" or not Ed25519/EdDSA         wrong_algorithm
//   4 crit, b64 != true, signature not 64 bytes, typ not session_token_type, payload not a JSON
//     object                                           malformed
//   5 iss not the did:key of issuer_key                wrong_issuer
//   6 signature invalid under issuer_key               bad_signature
//   7 claims missing or of the wrong type, sub not a did:key, bad scope syntax   malformed
//   8 now >= exp + skew                                expired
//   9 now + skew < nbf, or now + skew < iat            not_yet_valid
//  10 aud is not check.audience                      wrong_audience
// aud must be a single string: a session token names one audience (RFC 7519 also allows an array;
// we never issue one, so an array is malformed).
//  11 is_revoked(jti)                                  revoked
//  12 scope does not cover required_scope              insufficient_scope
// Steps 1-7 only depend on the token and the issuer key (authenticate_session_token); 8-12 on the
// moment and the request (check_session_claims). The issuer is compared before the signature so
// a token from another node reads as wrong_issuer rather than bad_signature; both refuse.
outcome<session_claims> verify_session_token(std::string_view token, const token_check& check);
// Steps 1-7.
outcome<session_claims> authenticate_session_token(std::string_view token,
                                                   const node_id& issuer_key);
// Steps 8-12 on claims that passed authenticate_session_token.
outcome<session_claims> check_session_claims(const session_claims& claims,
                                             const token_check& check);
// The same steps without copying the claims: the refusal, or nullopt when they pass.
std::optional<iam_error> claims_refusal(const session_claims& claims, const token_check& check);

// Claims shared with the verified-token cache (a hit copies a pointer, not the claims' strings).
using shared_claims = std::shared_ptr<const session_claims>;

// ---- verified-token cache -----------------------------------------------------------------------
// Remembers tokens that passed steps 1-7 so a repeated check skips base64, JSON and the signature
// (the costly parts) and runs only steps 8-12, which depend on the moment and the request. So an
// expired cached token still fails (its exp is in the entry), a revoked one still fails (the
// revocation lookup runs on every check; forget_token_id() also drops the entry), and a token
// checked against another issuer key is verified afresh. Only authentic, unexpired tokens are
// stored: failures are not cached, so garbage cannot flush good entries faster than fresh tokens
// would. Keyed by SHA-256 of the token text; least recently used entries are evicted.
//
// Not thread-safe; one owner (the IAM actor, or a protected service checking tokens locally).
class verified_token_cache {
public:
  // REQUIRES: entries_max > 0.
  explicit verified_token_cache(size_t entries_max);

  // verify_session_token, through the cache.
  outcome<session_claims> verify(std::string_view token, const token_check& check);
  // The same; the claims are shared with the cache (what a hot path such as the router wants).
  outcome<shared_claims> verify_shared(std::string_view token, const token_check& check);
  // Drops every cached token with this jti (after revoking it). Returns how many.
  size_t forget_token_id(std::string_view token_id);
  void clear() { cache_.clear(); }

  size_t size() const { return cache_.size(); }
  uint64_t hits() const { return hits_; }      // checks answered from the cache
  uint64_t misses() const { return misses_; }  // checks that ran steps 1-7
  uint64_t evictions() const { return cache_.evictions(); }

private:
  // Keyed by a fast hash of the token's tail (its signature); a hit counts only if the whole
  // token matches (a collision, crafted or not, is a miss, never another token's claims).
  static uint64_t cache_key(std::string_view token);
  struct entry {
    std::string token;
    node_id issuer_key;
    shared_claims claims;
  };
  lru_cache<uint64_t, entry> cache_;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

}  // namespace cmesh::iam
