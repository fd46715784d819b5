#include "actors/iam/iam_machine.hpp"

#include <algorithm>
#include <cassert>
#include <utility>

#include "runtime/crypto/identity.hpp"

namespace cmesh::iam {

namespace {

// Bytes charged per remembered challenge (nonce, audience, bookkeeping); the caches are bounded by
// entries, this only keeps their byte bound meaningful.
size_t challenge_bytes(std::string_view nonce, std::string_view audience) {
  return 96 + nonce.size() + audience.size();
}

constexpr size_t token_id_chars_max = 128;

bool printable_without_spaces(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
}

void append_field(std::string& out, std::string_view field) {
  const auto size = static_cast<uint32_t>(field.size());
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((size >> shift) & 0xff);
  out.append(field);
}

int64_t saturating_add(int64_t a, int64_t b) {
  int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) return b > 0 ? INT64_MAX : INT64_MIN;
  return sum;
}

}  // namespace

status validate(const config& cfg) {
  const auto positive = [](int64_t value, const char* name) -> status {
    if (value > 0) return ok_status();
    return error{errc::invalid_argument, std::string("iam config: ") + name + " must be positive"};
  };
  if (auto e = positive(cfg.challenge_ttl_s, "challenge_ttl_s")) return e;
  if (auto e = positive(static_cast<int64_t>(cfg.challenges_max), "challenges_max")) return e;
  if (auto e = positive(static_cast<int64_t>(cfg.answered_max), "answered_max")) return e;
  if (auto e = positive(cfg.session_ttl_s, "session_ttl_s")) return e;
  if (cfg.clock_skew_s < 0)
    return error{errc::invalid_argument, "iam config: clock_skew_s must not be negative"};
  if (auto e = positive(static_cast<int64_t>(cfg.revocations_max), "revocations_max")) return e;
  if (auto e = positive(static_cast<int64_t>(cfg.verified_tokens_max), "verified_tokens_max"))
    return e;
  if (auto e = positive(static_cast<int64_t>(cfg.audience_chars_max), "audience_chars_max"))
    return e;
  if (auto e = positive(static_cast<int64_t>(cfg.scope_chars_max), "scope_chars_max")) return e;
  // A token must fit session_token_chars_max whatever the audience and scope: base64 grows the
  // claims by 4/3, and iss, sub, jti, times and the header take under 600 characters.
  if ((cfg.audience_chars_max + cfg.scope_chars_max) * 4 / 3 + 600 > session_token_chars_max)
    return error{errc::invalid_argument,
                 "iam config: audience_chars_max + scope_chars_max too large for a session token"};
  return ok_status();
}

scope_policy scope_table(std::vector<scope_rule> rules) {
  return [rules = std::move(rules)](std::string_view holder_did, std::string_view audience) {
    std::vector<std::string> allowed;
    for (const auto& rule : rules) {
      if (rule.holder_did != "*" && rule.holder_did != holder_did) continue;
      if (rule.audience != "*" && rule.audience != audience) continue;
      for (const auto& scope : rule.scopes)
        if (std::find(allowed.begin(), allowed.end(), scope) == allowed.end())
          allowed.push_back(scope);
    }
    return allowed;
  };
}

std::string challenge_signing_input(const challenge& c, std::string_view holder_did,
                                    std::string_view scope) {
  std::string out(challenge_domain_tag);
  append_field(out, c.nonce);
  append_field(out, c.audience);
  append_field(out, c.node_did);
  append_field(out, holder_did);
  append_field(out, scope);
  return out;
}

challenge_answer answer_challenge(const challenge& c, std::string_view scope,
                                  const jose::signer& holder) {
  challenge_answer answer;
  answer.nonce = c.nonce;
  answer.holder_did = did_from_node_id(holder.public_key);
  answer.scope = std::string(scope);
  const std::string input = challenge_signing_input(c, answer.holder_did, scope);
  const jose::signature64 signature =
      holder.sign(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  answer.signature = jose::base64url_encode(signature.data(), signature.size());
  return answer;
}

machine::machine(config cfg, jose::signer node, scope_policy policy, jose::random_source random)
    : config_(cfg),
      node_(std::move(node)),
      did_(did_from_node_id(node_.public_key)),
      policy_(std::move(policy)),
      random_(std::move(random)),
      pending_(cfg.challenges_max,
               cfg.challenges_max * challenge_bytes(std::string(64, 'n'),
                                                    std::string(cfg.audience_chars_max, 'a'))),
      answered_(cfg.answered_max, cfg.answered_max * 256),
      verified_(cfg.verified_tokens_max) {
  assert(validate(config_).ok());
  assert(node_.sign && policy_ && random_);
}

result<challenge> machine::issue_challenge(std::string_view audience, int64_t now_s) {
  if (audience.empty()) return error{errc::invalid_argument, "audience is empty"};
  if (audience.size() > config_.audience_chars_max)
    return error{errc::invalid_argument, "audience of " + std::to_string(audience.size()) +
                                             " characters is over audience_chars_max"};
  if (!printable_without_spaces(audience))
    return error{errc::invalid_argument, "audience is not printable ASCII without spaces"};
  challenge issued;
  issued.nonce = jose::random_base64url(random_, challenge_nonce_bytes);
  issued.audience = std::string(audience);
  issued.node_did = did_;
  issued.expires_at_s = saturating_add(now_s, config_.challenge_ttl_s);
  // A repeated nonce would mean a broken random source; refuse to hand out a challenge twice.
  if (pending_.contains(issued.nonce) || answered_.contains(issued.nonce))
    return error{errc::unavailable, "random source repeated a nonce"};
  const uint64_t evictions_before = pending_.evictions();
  pending_.put(issued.nonce, pending_challenge{issued.audience, issued.expires_at_s},
               challenge_bytes(issued.nonce, issued.audience));
  stats_.challenges_evicted += pending_.evictions() - evictions_before;
  ++stats_.challenges_issued;
  return issued;
}

outcome<session_grant> machine::refused(iam_error err) {
  ++stats_.refusals[static_cast<size_t>(err.kind)];
  return err;
}

outcome<session_claims> machine::refused_claims(iam_error err) {
  ++stats_.refusals[static_cast<size_t>(err.kind)];
  return err;
}

outcome<session_grant> machine::redeem(const challenge_answer& answer, int64_t now_s) {
  // Shapes first: nothing is looked up, nothing consumed.
  auto nonce_bytes = jose::base64url_decode(answer.nonce);
  if (!nonce_bytes || nonce_bytes->size() != challenge_nonce_bytes)
    return refused({error_kind::malformed, "nonce is not base64url of " +
                                               std::to_string(challenge_nonce_bytes) + " bytes"});
  if (answer.holder_did.empty() || answer.holder_did.size() > holder_did_chars_max)
    return refused({error_kind::malformed, "holder DID missing or too long"});
  if (answer.scope.size() > config_.scope_chars_max)
    return refused({error_kind::malformed, "requested scope over scope_chars_max"});
  auto signature = jose::base64url_decode(answer.signature);
  if (!signature || signature->size() != 64)
    return refused({error_kind::malformed, "signature is not base64url of 64 bytes"});

  // Look up and consume.
  const pending_challenge* found = pending_.peek(answer.nonce);
  if (found == nullptr) {
    if (answered_.contains(answer.nonce))
      return refused({error_kind::replayed, "challenge already answered"});
    return refused({error_kind::unknown_challenge,
                    "no outstanding challenge with this nonce (never issued, expired and "
                    "forgotten, or evicted): ask for a new one"});
  }
  challenge consumed{answer.nonce, found->audience, did_, found->expires_at_s};
  pending_.erase(answer.nonce);
  answered_.put(answer.nonce, consumed.expires_at_s, challenge_bytes(answer.nonce, ""));

  if (now_s >= consumed.expires_at_s)
    return refused({error_kind::expired, "challenge expired at " +
                                             std::to_string(consumed.expires_at_s) + ", now " +
                                             std::to_string(now_s)});
  auto holder = node_id_from_did(answer.holder_did);
  if (!holder) return refused({error_kind::malformed, "holder DID: " + holder.err().message});
  auto requested = parse_scope(answer.scope);
  if (!requested) return refused({error_kind::malformed, requested.err().message});
  const std::string input = challenge_signing_input(consumed, answer.holder_did, answer.scope);
  if (!verify_signature(*holder, reinterpret_cast<const uint8_t*>(input.data()), input.size(),
                        signature->data()))
    return refused({error_kind::bad_signature,
                    "answer is not signed by the holder's key over this challenge and scope"});

  const std::vector<std::string> allowed = policy_(answer.holder_did, consumed.audience);
  std::vector<std::string> granted;
  for (const auto& scope : *requested)
    if (std::find(allowed.begin(), allowed.end(), scope) != allowed.end()) granted.push_back(scope);
  if (!requested->empty() && granted.empty())
    return refused({error_kind::scope_denied, "policy allows none of \"" + answer.scope +
                                                  "\" for " + consumed.audience});

  session_claims claims;
  claims.issuer = did_;
  claims.subject = answer.holder_did;
  claims.audience = consumed.audience;
  claims.issued_at_s = now_s;
  claims.expires_at_s = saturating_add(now_s, config_.session_ttl_s);
  claims.scopes = std::move(granted);
  claims.token_id = make_token_id(random_);
  auto token = issue_session_token(claims, node_);
  // Every input was checked above and validate(config) bounds the token's size.
  assert(token.ok());
  if (!token) return refused({error_kind::malformed, token.err().message});
  ++stats_.sessions_issued;
  return session_grant{std::move(*token), std::move(claims)};
}

outcome<session_claims> machine::verify(std::string_view token, std::string_view audience,
                                        std::string_view required_scope, int64_t now_s) {
  token_check check;
  check.issuer_key = node_.public_key;
  check.audience = std::string(audience);
  check.now_s = now_s;
  check.required_scope = std::string(required_scope);
  check.clock_skew_s = config_.clock_skew_s;
  check.is_revoked = [this](std::string_view token_id) { return is_revoked(token_id); };
  auto checked = verified_.verify(token, check);
  if (!checked) return refused_claims(checked.err());
  ++stats_.tokens_verified;
  return checked;
}

bool machine::is_revoked(std::string_view token_id) const {
  return revoked_.find(token_id) != revoked_.end();
}

void machine::prune_revocations(int64_t now_s) {
  for (auto it = revoked_.begin(); it != revoked_.end();) {
    if (now_s >= saturating_add(it->second, config_.clock_skew_s))
      it = revoked_.erase(it);
    else
      ++it;
  }
}

status machine::revoke(std::string_view token_id, int64_t expires_at_s, int64_t now_s) {
  if (token_id.empty() || token_id.size() > token_id_chars_max)
    return error{errc::invalid_argument, "token id empty or over 128 characters"};
  if (now_s >= saturating_add(expires_at_s, config_.clock_skew_s)) return ok_status();
  if (auto existing = revoked_.find(token_id); existing != revoked_.end()) {
    existing->second = std::max(existing->second, expires_at_s);
    return ok_status();
  }
  if (revoked_.size() >= config_.revocations_max) prune_revocations(now_s);
  if (revoked_.size() >= config_.revocations_max)
    return error{errc::too_large, "revocation list full (" +
                                      std::to_string(config_.revocations_max) +
                                      " live revocations); not forgetting one to make room"};
  revoked_.emplace(std::string(token_id), expires_at_s);
  verified_.forget_token_id(token_id);
  ++stats_.revocations;
  return ok_status();
}

result<session_claims> machine::revoke_token(std::string_view token, int64_t now_s) {
  auto authentic = authenticate_session_token(token, node_.public_key);
  if (!authentic) return refused_claims(authentic.err()).err().to_error();
  if (auto problem = revoke(authentic->token_id, authentic->expires_at_s, now_s)) return problem;
  return std::move(*authentic);
}

void machine::tick(int64_t now_s) {
  // Challenges are issued with a fixed lifetime, so the least recent expires first.
  while (!pending_.empty() && now_s >= pending_.least_recent().value.expires_at_s)
    pending_.erase(pending_.least_recent().key);
  while (!answered_.empty() && now_s >= answered_.least_recent().value)
    answered_.erase(answered_.least_recent().key);
  prune_revocations(now_s);
}

}  // namespace cmesh::iam
