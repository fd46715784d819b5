// IAM (seed 000: "passwordless, identity requiring"): the handshake that turns possession of an
// ed25519 key into a session token, the revocation list, and local token checks.
// Spec: docs/iam.md.
//
// Handshake (two round trips, both over the node's authenticated transport or a CMTP 0xI: call):
//   1 client -> node   "challenge please" for an audience (the service or router it wants)
//   2 node -> client   challenge {nonce, audience, node DID, expires_at}; the nonce is 32 bytes
//                      from the random source handed in; the challenge is remembered, single-use
//   3 client -> node   answer {nonce, holder DID, requested scope, signature}; the signature is by
//                      the holder's key over challenge_signing_input() (a domain tag, then nonce,
//                      audience, node DID, holder DID and scope, each length-prefixed)
//   4 node -> client   a session token (token.hpp) for sub = holder DID, aud = the challenge's
//                      audience, scope = requested scope capped by the node's scope_policy
// Looking an answer up consumes its challenge whatever happens next, so an answer is accepted at
// most once: a second copy is refused as `replayed` (or `unknown_challenge` once the memory of
// answered challenges has moved on, which refuses all the same).
//
// Pure machine: no CAF, no I/O, no clock, no randomness of its own. Time comes in as `now_s`
// (mesh time, Unix seconds); nonces and token ids come from the jose::random_source handed in
// (real mode: jose::secure_random_source(), from runtime/; simulation: a seeded one). Signing goes
// through the jose::signer handed in. No unordered container is iterated.
//
// Thread confinement: one owner (the IAM actor of the node); not thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "actors/gossip/lru_cache.hpp"
#include "actors/iam/token.hpp"
#include "messages/error.hpp"
#include "messages/node_id.hpp"
#include "runtime/crypto/jose.hpp"

namespace cmesh::iam {

// Every bound of the handshake and the session, with the reason for its value. Checked by
// validate().
struct config {
  // A client answers at once; 60 s also covers a human confirming on a slow device.
  int64_t challenge_ttl_s = 60;
  // Outstanding challenges (~250 B each: 4,096 = 1 MB). Past it the oldest is evicted (its client
  // gets unknown_challenge and asks again): a flood of challenge requests costs memory only up to
  // here. The transport's per-peer rate limit keeps one flooder from evicting everybody.
  size_t challenges_max = 4096;
  // Answered challenges remembered until they expire, only to report a replay as `replayed`
  // instead of `unknown_challenge`; forgetting one never lets a replay through.
  size_t answered_max = 4096;
  // Session lifetime. An hour keeps a stolen token's use short; a client re-runs the handshake
  // (two round trips, one signature) when its token expires.
  int64_t session_ttl_s = 3600;
  // Tolerated disagreement between the clocks of the node and the checker (see token_check).
  int64_t clock_skew_s = 30;
  // Revoked token ids kept until their tokens expire (~100 B each: 65,536 = 6.5 MB). Far more than
  // anyone revokes within one session_ttl_s; revoke() refuses past it rather than forget one.
  size_t revocations_max = 65536;
  // Verified tokens cached for cheap repeated checks (~400 B each: 10,000 = 4 MB), one per active
  // client session; more sessions just verify more signatures.
  size_t verified_tokens_max = 10000;
  // An audience is a service name, FQMN prefix or DID: 256 printable characters is plenty.
  size_t audience_chars_max = 256;
  // A requested scope (space-separated): scopes_max short tokens.
  size_t scope_chars_max = 1024;
};

// Checks every bound above (all positive); the reason names the field.
status validate(const config& cfg);

// The node's policy: which scopes `holder_did` may hold for `audience`. The granted scope is the
// requested one capped by it.
using scope_policy =
    std::function<std::vector<std::string>(std::string_view holder_did, std::string_view audience)>;

// One line of a policy table: `holder_did` ("*" = any holder) may hold `scopes` for `audience`
// ("*" = any audience).
struct scope_rule {
  std::string holder_did;
  std::string audience;
  std::vector<std::string> scopes;
};
// A policy granting the union of the scopes of every rule that matches, in rule order.
scope_policy scope_table(std::vector<scope_rule> rules);

// Random bytes in a challenge nonce: 256 bits, never repeated, never guessed.
inline constexpr size_t challenge_nonce_bytes = 32;
// A did:key for ed25519 is 56 characters; longer is not one.
inline constexpr size_t holder_did_chars_max = 128;
// The domain tag opening every signed challenge answer: a signature made for the IAM handshake
// can never be presented as any other signed statement, and vice versa.
inline constexpr std::string_view challenge_domain_tag = "cmesh-iam-challenge-v1";

// Step 2.
struct challenge {
  std::string nonce;     // base64url of challenge_nonce_bytes random bytes
  std::string audience;  // what the session token will be for
  std::string node_did;  // the issuing node: an answer made for one node is useless at another
  int64_t expires_at_s = 0;
};

// Step 3.
struct challenge_answer {
  std::string nonce;
  std::string holder_did;
  std::string scope;      // requested, space-separated ("" = identity only, no permissions)
  std::string signature;  // base64url of the Ed25519 signature over challenge_signing_input()
};

// The exact bytes an answer signs: challenge_domain_tag, then for each of nonce, audience,
// node_did, holder_did, scope: its length as a big-endian u32 and its bytes.
std::string challenge_signing_input(const challenge& c, std::string_view holder_did,
                                    std::string_view scope);

// The holder's side of step 3: signs `c` for `scope` with `holder`.
challenge_answer answer_challenge(const challenge& c, std::string_view scope,
                                  const jose::signer& holder);

// Step 4.
struct session_grant {
  std::string token;
  session_claims claims;  // what the token says (the granted scope may be narrower than asked)
};

struct stats {
  uint64_t challenges_issued = 0;
  uint64_t challenges_evicted = 0;  // outstanding challenges pushed out by newer ones
  uint64_t sessions_issued = 0;
  uint64_t tokens_verified = 0;     // verify() calls that accepted
  uint64_t revocations = 0;
  std::array<uint64_t, error_kind_count> refusals{};  // by error_kind: redeem, verify, revoke_token
};

class machine {
public:
  // REQUIRES: validate(cfg) is ok; `node` signs with the node key; `policy` and `random` are set.
  machine(config cfg, jose::signer node, scope_policy policy, jose::random_source random);

  // Step 2. Errors (invalid_argument): an audience that is empty, longer than audience_chars_max
  // or not printable ASCII without spaces.
  result<challenge> issue_challenge(std::string_view audience, int64_t now_s);

  // Step 3 -> 4. Refusals, in the order checked:
  //   malformed          nonce, holder DID, scope or signature of the wrong shape (the challenge
  //                      is not consumed: nothing was looked up)
  //   replayed           the challenge was already answered
  //   unknown_challenge  no such outstanding challenge
  //   -- from here on the challenge is consumed --
  //   expired            answered at or after expires_at_s
  //   malformed          holder DID is not an ed25519 did:key, scope not valid RFC 6749 syntax
  //   bad_signature      signature not by the holder's key over this challenge, DID and scope
  //   scope_denied       the policy allows none of a non-empty requested scope
  outcome<session_grant> redeem(const challenge_answer& answer, int64_t now_s);

  // Checks a token for a request to `audience` needing `required_scope`, through the verified-
  // token cache and the revocation list. Refusals as verify_session_token.
  outcome<session_claims> verify(std::string_view token, std::string_view audience,
                                 std::string_view required_scope, int64_t now_s);

  // Revokes token id `token_id` until `expires_at_s` (its token's exp; kept clock_skew_s longer).
  // Errors: invalid_argument (empty or over 128 characters), too_large (revocations_max live
  // revocations: nothing is forgotten to make room).
  status revoke(std::string_view token_id, int64_t expires_at_s, int64_t now_s);
  // Revokes a token this node issued (authenticated first: anyone may revoke a token they hold,
  // e.g. at logout, and only a real one). Errors: an authenticate_session_token refusal as
  // iam_error::to_error() (generic code, "kind: reason" message), or revoke()'s errors. An expired
  // token is accepted (there is nothing left to revoke). Returns the token's claims.
  result<session_claims> revoke_token(std::string_view token, int64_t now_s);
  bool is_revoked(std::string_view token_id) const;

  // Forgets expired challenges, answered challenges past their expiry, and revocations of tokens
  // that have expired (plus skew). Call about once a second; correctness does not depend on it.
  void tick(int64_t now_s);

  const std::string& did() const { return did_; }
  const node_id& key() const { return node_.public_key; }
  const config& configuration() const { return config_; }
  const stats& statistics() const { return stats_; }
  size_t outstanding_challenges() const { return pending_.size(); }
  size_t revocation_count() const { return revoked_.size(); }
  // Live revocations: token id -> its token's exp (the IAM actor replays them to a new watcher).
  const std::map<std::string, int64_t, std::less<>>& revocations() const { return revoked_; }
  const verified_token_cache& token_cache() const { return verified_; }

private:
  struct pending_challenge {
    std::string audience;
    int64_t expires_at_s = 0;
  };

  outcome<session_grant> refused(iam_error err);
  outcome<session_claims> refused_claims(iam_error err);
  void prune_revocations(int64_t now_s);

  config config_;
  jose::signer node_;
  std::string did_;
  scope_policy policy_;
  jose::random_source random_;
  lru_cache<std::string, pending_challenge> pending_;  // by nonce; never get(): oldest first out
  lru_cache<std::string, int64_t> answered_;           // nonce -> expires_at_s
  std::map<std::string, int64_t, std::less<>> revoked_;  // token id -> expires_at_s
  verified_token_cache verified_;
  stats stats_;
};

}  // namespace cmesh::iam
