#include "actors/iam/token.hpp"

#include <algorithm>

#include "runtime/crypto/identity.hpp"

namespace cmesh::iam {

const char* error_kind_name(error_kind kind) {
  switch (kind) {
    case error_kind::missing_token: return "missing_token";
    case error_kind::malformed: return "malformed";
    case error_kind::bad_signature: return "bad_signature";
    case error_kind::wrong_algorithm: return "wrong_algorithm";
    case error_kind::expired: return "expired";
    case error_kind::not_yet_valid: return "not_yet_valid";
    case error_kind::wrong_audience: return "wrong_audience";
    case error_kind::wrong_issuer: return "wrong_issuer";
    case error_kind::revoked: return "revoked";
    case error_kind::insufficient_scope: return "insufficient_scope";
    case error_kind::unknown_challenge: return "unknown_challenge";
    case error_kind::replayed: return "replayed";
    case error_kind::scope_denied: return "scope_denied";
    case error_kind::disclosure_mismatch: return "disclosure_mismatch";
    case error_kind::missing_key_binding: return "missing_key_binding";
    case error_kind::wrong_nonce: return "wrong_nonce";
    case error_kind::sd_hash_mismatch: return "sd_hash_mismatch";
  }
  return "unknown_iam_error";
}

int cmtp_status(error_kind kind) {
  switch (kind) {
    case error_kind::insufficient_scope:
    case error_kind::scope_denied:
      return 403;
    default:
      return 401;
  }
}

errc generic_code(error_kind kind) {
  switch (kind) {
    case error_kind::missing_token:
    case error_kind::malformed:
      return errc::malformed;
    case error_kind::bad_signature: return errc::bad_signature;
    case error_kind::wrong_algorithm: return errc::unsupported_version;
    case error_kind::replayed: return errc::replayed;
    case error_kind::insufficient_scope:
    case error_kind::scope_denied:
      return errc::permission_denied;
    case error_kind::wrong_issuer: return errc::identity_mismatch;
    default:
      return errc::auth_failed;
  }
}

std::string iam_error::describe() const {
  std::string out = error_kind_name(kind);
  if (!message.empty()) {
    out += ": ";
    out += message;
  }
  return out;
}

namespace {

iam_error refuse(error_kind kind, std::string message) {
  return iam_error{kind, std::move(message)};
}

// a + b clamped to int64's range (times in signed claims are the signer's choice).
int64_t saturating_add(int64_t a, int64_t b) {
  int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) return b > 0 ? INT64_MAX : INT64_MIN;
  return sum;
}

bool scope_char_allowed(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == 0x21 || (u >= 0x23 && u <= 0x5b) || (u >= 0x5d && u <= 0x7e);
}

size_t entry_bytes(const session_claims& claims) {
  size_t total = 128 + claims.issuer.size() + claims.subject.size() + claims.audience.size() +
                 claims.token_id.size();
  for (const auto& scope : claims.scopes) total += scope.size() + 32;
  return total;
}

// Claims from a payload already known to be a JSON object; errors are malformed.
outcome<session_claims> claims_from_json(const json::value& payload) {
  session_claims claims;
  const auto text_member = [&](std::string_view name, std::string& out) -> bool {
    const std::string* found = payload.find_string(name);
    if (found == nullptr || found->empty()) return false;
    out = *found;
    return true;
  };
  if (!text_member("iss", claims.issuer)) return refuse(error_kind::malformed, "iss missing");
  if (!text_member("sub", claims.subject)) return refuse(error_kind::malformed, "sub missing");
  if (payload.find("aud") != nullptr && !payload.find("aud")->is_string())
    return refuse(error_kind::malformed, "aud is not a single string");
  if (!text_member("aud", claims.audience)) return refuse(error_kind::malformed, "aud missing");
  if (!text_member("jti", claims.token_id)) return refuse(error_kind::malformed, "jti missing");
  const auto iat = payload.find_int("iat");
  const auto exp = payload.find_int("exp");
  if (!iat) return refuse(error_kind::malformed, "iat missing or not an integer");
  if (!exp) return refuse(error_kind::malformed, "exp missing or not an integer");
  claims.issued_at_s = *iat;
  claims.expires_at_s = *exp;
  if (payload.find("nbf") != nullptr) {
    const auto nbf = payload.find_int("nbf");
    if (!nbf) return refuse(error_kind::malformed, "nbf is not an integer");
    claims.not_before_s = *nbf;
  }
  const std::string* scope = payload.find_string("scope");
  if (scope == nullptr) return refuse(error_kind::malformed, "scope missing or not a string");
  auto scopes = parse_scope(*scope);
  if (!scopes) return refuse(error_kind::malformed, scopes.err().message);
  claims.scopes = std::move(*scopes);
  if (!node_id_from_did(claims.subject))
    return refuse(error_kind::malformed, "sub is not an ed25519 did:key");
  return claims;
}

json::value claims_to_json(const session_claims& claims) {
  json::object payload;
  payload.emplace_back("iss", claims.issuer);
  payload.emplace_back("sub", claims.subject);
  payload.emplace_back("aud", claims.audience);
  payload.emplace_back("iat", claims.issued_at_s);
  if (claims.not_before_s) payload.emplace_back("nbf", *claims.not_before_s);
  payload.emplace_back("exp", claims.expires_at_s);
  payload.emplace_back("scope", join_scope(claims.scopes));
  payload.emplace_back("jti", claims.token_id);
  return payload;
}

}  // namespace

result<std::vector<std::string>> parse_scope(std::string_view scope) {
  std::vector<std::string> tokens;
  if (scope.empty()) return tokens;
  size_t start = 0;
  while (true) {
    const size_t space = scope.find(' ', start);
    const std::string_view token =
        scope.substr(start, space == std::string_view::npos ? std::string_view::npos
                                                            : space - start);
    if (token.empty())
      return error{errc::malformed, "scope has an empty token (leading, trailing or double space)"};
    for (char c : token)
      if (!scope_char_allowed(c))
        return error{errc::malformed, "scope token \"" + std::string(token) +
                                          "\" has a character RFC 6749 does not allow"};
    if (std::find(tokens.begin(), tokens.end(), token) == tokens.end()) {
      if (tokens.size() == scopes_max)
        return error{errc::malformed,
                     "scope has more than " + std::to_string(scopes_max) + " tokens"};
      tokens.emplace_back(token);
    }
    if (space == std::string_view::npos) break;
    start = space + 1;
  }
  return tokens;
}

std::string join_scope(const std::vector<std::string>& scopes) {
  std::string out;
  for (const auto& scope : scopes) {
    if (!out.empty()) out += ' ';
    out += scope;
  }
  return out;
}

bool covers(const std::vector<std::string>& granted, const std::vector<std::string>& required) {
  return std::all_of(required.begin(), required.end(), [&](const std::string& scope) {
    return std::find(granted.begin(), granted.end(), scope) != granted.end();
  });
}

std::string make_token_id(const jose::random_source& source) {
  return jose::random_base64url(source, token_id_bytes);
}

result<std::string> issue_session_token(const session_claims& claims, const jose::signer& node) {
  if (claims.issuer != did_from_node_id(node.public_key))
    return error{errc::invalid_argument, "iss is not the signing node's did:key"};
  if (!node_id_from_did(claims.subject))
    return error{errc::invalid_argument, "sub is not an ed25519 did:key"};
  if (claims.audience.empty()) return error{errc::invalid_argument, "aud is empty"};
  if (claims.token_id.empty()) return error{errc::invalid_argument, "jti is empty"};
  if (claims.expires_at_s <= claims.issued_at_s)
    return error{errc::invalid_argument, "exp is not after iat"};
  if (claims.not_before_s && *claims.not_before_s >= claims.expires_at_s)
    return error{errc::invalid_argument, "nbf is not before exp"};
  const std::string scope = join_scope(claims.scopes);
  auto reparsed = parse_scope(scope);
  if (!reparsed || reparsed->size() != claims.scopes.size())
    return error{errc::invalid_argument,
                 reparsed ? "scope has duplicate or empty tokens" : reparsed.err().message};
  std::string token =
      jose::sign_ed25519(session_token_type, json::dump(claims_to_json(claims)), node);
  if (token.size() > session_token_chars_max)
    return error{errc::invalid_argument, "token of " + std::to_string(token.size()) +
                                             " characters would exceed session_token_chars_max"};
  return token;
}

outcome<session_claims> authenticate_session_token(std::string_view token,
                                                   const node_id& issuer_key) {
  if (token.empty()) return refuse(error_kind::missing_token, "no session token presented");
  if (token.size() > session_token_chars_max)
    return refuse(error_kind::malformed, "token of " + std::to_string(token.size()) +
                                             " characters is over the limit of " +
                                             std::to_string(session_token_chars_max));
  auto parsed = jose::parse_compact(token);
  if (!parsed) return refuse(error_kind::malformed, parsed.err().message);
  if (auto problem = jose::check_ed25519_header(parsed->header)) {
    const auto kind = problem.code == errc::unsupported_version ? error_kind::wrong_algorithm
                                                                : error_kind::malformed;
    return refuse(kind, problem.message);
  }
  if (parsed->signature.size() != 64)
    return refuse(error_kind::malformed, "signature is not 64 bytes (Ed25519)");
  const std::string* typ = parsed->header.find_string("typ");
  if (typ == nullptr || *typ != session_token_type)
    return refuse(error_kind::malformed,
                  "typ is not \"" + std::string(session_token_type) + "\" (not a session token)");
  auto payload = jose::parse_json_object(parsed->payload, "token payload");
  if (!payload) return refuse(error_kind::malformed, payload.err().message);
  const std::string* issuer = payload->find_string("iss");
  const std::string expected_issuer = did_from_node_id(issuer_key);
  if (issuer == nullptr || *issuer != expected_issuer)
    return refuse(error_kind::wrong_issuer,
                  "iss is " + (issuer ? "\"" + *issuer + "\"" : std::string("missing")) +
                      ", expected " + expected_issuer);
  if (!jose::signature_valid(*parsed, issuer_key))
    return refuse(error_kind::bad_signature, "signature does not verify with the issuer's key");
  return claims_from_json(*payload);
}

std::optional<iam_error> claims_refusal(const session_claims& claims, const token_check& check) {
  const int64_t skew = check.clock_skew_s;
  if (check.now_s >= saturating_add(claims.expires_at_s, skew))
    return refuse(error_kind::expired, "token expired at " + std::to_string(claims.expires_at_s) +
                                           ", now " + std::to_string(check.now_s) + " (skew " +
                                           std::to_string(skew) + " s)");
  if (claims.not_before_s && saturating_add(check.now_s, skew) < *claims.not_before_s)
    return refuse(error_kind::not_yet_valid,
                  "token not valid before " + std::to_string(*claims.not_before_s) + ", now " +
                      std::to_string(check.now_s));
  if (saturating_add(check.now_s, skew) < claims.issued_at_s)
    return refuse(error_kind::not_yet_valid,
                  "token issued in the future (iat " + std::to_string(claims.issued_at_s) +
                      ", now " + std::to_string(check.now_s) + ")");
  if (claims.audience != check.audience)
    return refuse(error_kind::wrong_audience,
                  "token is for \"" + claims.audience + "\", not \"" + check.audience + "\"");
  if (check.is_revoked && check.is_revoked(claims.token_id))
    return refuse(error_kind::revoked, "token " + claims.token_id + " has been revoked");
  if (check.required_scope.empty()) return std::nullopt;
  auto required = parse_scope(check.required_scope);
  if (!required)  // a configuration mistake on our side: refuse rather than allow
    return refuse(error_kind::insufficient_scope,
                  "required scope \"" + check.required_scope + "\" is not valid scope syntax");
  if (!covers(claims.scopes, *required))
    return refuse(error_kind::insufficient_scope,
                  "token scope \"" + join_scope(claims.scopes) + "\" does not cover \"" +
                      check.required_scope + "\"");
  return std::nullopt;
}

outcome<session_claims> check_session_claims(const session_claims& claims,
                                             const token_check& check) {
  if (auto refused = claims_refusal(claims, check)) return std::move(*refused);
  return claims;
}

outcome<session_claims> verify_session_token(std::string_view token, const token_check& check) {
  auto authentic = authenticate_session_token(token, check.issuer_key);
  if (!authentic) return authentic;
  return check_session_claims(*authentic, check);
}

verified_token_cache::verified_token_cache(size_t entries_max)
    : cache_(entries_max, entries_max * session_token_chars_max) {}

outcome<session_claims> verified_token_cache::verify(std::string_view token,
                                                     const token_check& check) {
  auto shared = verify_shared(token, check);
  if (!shared) return shared.err();
  return **shared;
}

uint64_t verified_token_cache::cache_key(std::string_view token) {
  // The signature (after the last '.') differs between any two tokens a key signs, so hashing
  // its last 64 characters spreads the keys as well as hashing all ~500 would, at an eighth of
  // the cost. A hit still compares the whole token.
  return std::hash<std::string_view>{}(token.substr(token.size() > 64 ? token.size() - 64 : 0));
}

outcome<shared_claims> verified_token_cache::verify_shared(std::string_view token,
                                                           const token_check& check) {
  auto checked = [&](shared_claims claims) -> outcome<shared_claims> {
    if (auto refused = claims_refusal(*claims, check)) return std::move(*refused);
    return claims;
  };
  if (token.empty() || token.size() > session_token_chars_max) {
    auto authentic = authenticate_session_token(token, check.issuer_key);
    if (!authentic) return authentic.err();
    return checked(std::make_shared<const session_claims>(std::move(*authentic)));
  }
  const uint64_t key = cache_key(token);
  if (const entry* cached = cache_.peek(key);
      cached != nullptr && cached->issuer_key == check.issuer_key && cached->token == token) {
    ++hits_;
    return checked(cache_.get(key)->claims);
  }
  ++misses_;
  auto authentic = authenticate_session_token(token, check.issuer_key);
  if (!authentic) return authentic.err();
  auto claims = std::make_shared<const session_claims>(std::move(*authentic));
  if (check.now_s < saturating_add(claims->expires_at_s, check.clock_skew_s))
    cache_.put(key, entry{std::string(token), check.issuer_key, claims}, entry_bytes(*claims) + token.size());
  return checked(std::move(claims));
}

size_t verified_token_cache::forget_token_id(std::string_view token_id) {
  std::vector<uint64_t> doomed;
  for (const auto& cached : cache_)
    if (cached.value.claims->token_id == token_id) doomed.push_back(cached.key);
  for (const auto& key : doomed) cache_.erase(key);
  return doomed.size();
}

}  // namespace cmesh::iam
