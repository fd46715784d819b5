#include "actors/iam/sd_jwt.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "runtime/crypto/identity.hpp"

namespace cmesh::iam {

namespace {

// Nesting of objects while filling in disclosures. Each disclosed value parses within the JSON
// depth limit, but disclosures can nest inside each other; this bounds the recursion.
constexpr int embed_depth_max = 128;

iam_error refuse(error_kind kind, std::string message) {
  return iam_error{kind, std::move(message)};
}

int64_t saturating_add(int64_t a, int64_t b) {
  int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) return b > 0 ? INT64_MAX : INT64_MIN;
  return sum;
}

bool has_member(const json::object& members, std::string_view name) {
  return std::any_of(members.begin(), members.end(),
                     [&](const auto& member) { return member.first == name; });
}

void erase_member(json::object& members, std::string_view name) {
  members.erase(std::remove_if(members.begin(), members.end(),
                               [&](const auto& member) { return member.first == name; }),
                members.end());
}

bool reserved_for_issuer(std::string_view name) {
  static constexpr std::string_view reserved[] = {"iss", "sub", "iat", "nbf",   "exp",
                                                  "cnf", "_sd", "_sd_alg", "..."};
  return std::find(std::begin(reserved), std::end(reserved), name) != std::end(reserved);
}

// Names must be unique within the set and unreserved; `taken` collects them across sets.
status check_claim_names(const json::object& claims, std::set<std::string>& taken,
                         const char* which) {
  for (const auto& [name, value] : claims) {
    if (reserved_for_issuer(name))
      return error{errc::invalid_argument,
                   std::string(which) + " claim \"" + name + "\" is reserved for the issuer"};
    if (!taken.insert(name).second)
      return error{errc::invalid_argument, "claim \"" + name + "\" appears twice"};
  }
  return ok_status();
}

// The holder key named by a payload's cnf.jwk.
result<node_id> confirmation_key(const json::value& payload) {
  const json::value* cnf = payload.find("cnf");
  const json::value* jwk = cnf != nullptr ? cnf->find("jwk") : nullptr;
  if (jwk == nullptr) return error{errc::malformed, "cnf.jwk missing"};
  auto key = jose::node_id_from_jwk(*jwk);
  if (!key) return error{errc::malformed, "cnf.jwk: " + key.err().message};
  return key;
}

// The disclosures of one presentation, and what processing has used of them.
struct disclosure_pool {
  std::vector<disclosure> items;
  std::map<std::string, size_t> by_digest;
  std::vector<bool> used;
  std::set<std::string> seen_digests;  // every digest met in the payload so far
};

std::optional<iam_error> embed(json::value& node, disclosure_pool& pool, int depth);

std::optional<iam_error> embed_object(json::object& members, disclosure_pool& pool, int depth) {
  std::vector<std::string> digests;
  for (const auto& [name, value] : members) {
    if (name != "_sd") continue;
    if (!value.is_array()) return refuse(error_kind::malformed, "_sd is not an array");
    for (const auto& digest : value.as_array()) {
      if (!digest.is_string()) return refuse(error_kind::malformed, "_sd holds a non-string");
      digests.push_back(digest.as_string());
    }
  }
  erase_member(members, "_sd");
  for (auto& member : members)
    if (auto problem = embed(member.second, pool, depth + 1)) return problem;
  for (const auto& digest : digests) {
    if (!pool.seen_digests.insert(digest).second)
      return refuse(error_kind::disclosure_mismatch, "digest " + digest + " appears twice");
    const auto found = pool.by_digest.find(digest);
    if (found == pool.by_digest.end()) continue;  // not disclosed, or a decoy
    pool.used[found->second] = true;
    const disclosure& disclosed = pool.items[found->second];
    if (has_member(members, disclosed.name))
      return refuse(error_kind::disclosure_mismatch,
                    "disclosed claim \"" + disclosed.name + "\" is already present");
    json::value value = disclosed.value;
    if (auto problem = embed(value, pool, depth + 1)) return problem;
    members.emplace_back(disclosed.name, std::move(value));
  }
  return std::nullopt;
}

std::optional<iam_error> embed(json::value& node, disclosure_pool& pool, int depth) {
  if (depth > embed_depth_max)
    return refuse(error_kind::malformed, "claims nested deeper than " +
                                             std::to_string(embed_depth_max) + " levels");
  if (node.is_object()) return embed_object(node.as_object(), pool, depth);
  if (node.is_array()) {
    for (auto& element : node.as_array()) {
      if (element.is_object() && element.find("...") != nullptr)
        return refuse(error_kind::malformed, "array-element disclosures are not supported");
      if (auto problem = embed(element, pool, depth + 1)) return problem;
    }
  }
  return std::nullopt;
}

// Step 2: the issuer-signed JWT. Returns its payload.
outcome<json::value> verify_issuer_jwt(std::string_view jwt, const node_id& issuer_key) {
  auto parsed = jose::parse_compact(jwt);
  if (!parsed) return refuse(error_kind::malformed, "issuer jwt: " + parsed.err().message);
  if (auto problem = jose::check_ed25519_header(parsed->header))
    return refuse(problem.code == errc::unsupported_version ? error_kind::wrong_algorithm
                                                            : error_kind::malformed,
                  "issuer jwt: " + problem.message);
  const std::string* typ = parsed->header.find_string("typ");
  if (typ == nullptr || *typ != credential_type)
    return refuse(error_kind::malformed,
                  "issuer jwt: typ is not \"" + std::string(credential_type) + "\"");
  auto payload = jose::parse_json_object(parsed->payload, "issuer jwt payload");
  if (!payload) return refuse(error_kind::malformed, payload.err().message);
  const std::string* issuer = payload->find_string("iss");
  const std::string expected = did_from_node_id(issuer_key);
  if (issuer == nullptr || *issuer != expected)
    return refuse(error_kind::wrong_issuer, "issuer jwt: iss is not " + expected);
  if (!jose::signature_valid(*parsed, issuer_key))
    return refuse(error_kind::bad_signature, "issuer jwt: signature does not verify");
  return std::move(*payload);
}

// Step 5: lifetime of the credential, from the signed payload.
std::optional<iam_error> check_lifetime(const json::value& payload,
                                        const presentation_check& check) {
  const auto exp = payload.find_int("exp");
  if (!exp) return refuse(error_kind::malformed, "exp missing or not an integer");
  if (check.now_s >= saturating_add(*exp, check.clock_skew_s))
    return refuse(error_kind::expired, "credential expired at " + std::to_string(*exp));
  for (const char* name : {"nbf", "iat"}) {
    if (payload.find(name) == nullptr) continue;
    const auto when = payload.find_int(name);
    if (!when) return refuse(error_kind::malformed, std::string(name) + " is not an integer");
    if (saturating_add(check.now_s, check.clock_skew_s) < *when)
      return refuse(error_kind::not_yet_valid,
                    std::string("credential ") + name + " " + std::to_string(*when) +
                        " is in the future");
  }
  return std::nullopt;
}

// Step 7: the key-binding JWT.
std::optional<iam_error> check_key_binding(const sd_jwt_parts& parts, const node_id& holder_key,
                                           const presentation_check& check) {
  auto parsed = jose::parse_compact(parts.key_binding_jwt);
  if (!parsed) return refuse(error_kind::malformed, "kb-jwt: " + parsed.err().message);
  if (auto problem = jose::check_ed25519_header(parsed->header))
    return refuse(problem.code == errc::unsupported_version ? error_kind::wrong_algorithm
                                                            : error_kind::malformed,
                  "kb-jwt: " + problem.message);
  const std::string* typ = parsed->header.find_string("typ");
  if (typ == nullptr || *typ != key_binding_type)
    return refuse(error_kind::malformed, "kb-jwt: typ is not \"kb+jwt\"");
  if (!jose::signature_valid(*parsed, holder_key))
    return refuse(error_kind::bad_signature, "kb-jwt: not signed by the credential's cnf key");
  auto payload = jose::parse_json_object(parsed->payload, "kb-jwt payload");
  if (!payload) return refuse(error_kind::malformed, payload.err().message);
  const auto iat = payload->find_int("iat");
  const std::string* aud = payload->find_string("aud");
  const std::string* nonce = payload->find_string("nonce");
  const std::string* sd_hash = payload->find_string("sd_hash");
  if (!iat || aud == nullptr || nonce == nullptr || sd_hash == nullptr)
    return refuse(error_kind::malformed, "kb-jwt: iat, aud, nonce or sd_hash missing");
  const int64_t fresh_until = saturating_add(*iat, check.key_binding_age_s_max);
  if (check.now_s >= saturating_add(fresh_until, check.clock_skew_s))
    return refuse(error_kind::expired, "kb-jwt issued at " + std::to_string(*iat) + " is stale");
  if (saturating_add(check.now_s, check.clock_skew_s) < *iat)
    return refuse(error_kind::not_yet_valid, "kb-jwt issued in the future");
  if (*aud != check.audience)
    return refuse(error_kind::wrong_audience, "kb-jwt is for \"" + *aud + "\"");
  if (*nonce != check.nonce) return refuse(error_kind::wrong_nonce, "kb-jwt nonce is not ours");
  const jose::sha256_digest expected = jose::sha256(parts.hashed_prefix);
  if (*sd_hash != jose::base64url_encode(expected.data(), expected.size()))
    return refuse(error_kind::sd_hash_mismatch,
                  "kb-jwt sd_hash does not match the presented issuer jwt and disclosures");
  return std::nullopt;
}

}  // namespace

std::string disclosure_digest(std::string_view encoded) {
  const jose::sha256_digest digest = jose::sha256(encoded);
  return jose::base64url_encode(digest.data(), digest.size());
}

result<disclosure> make_disclosure(std::string salt, std::string name, json::value value) {
  if (salt.empty()) return error{errc::invalid_argument, "disclosure salt is empty"};
  if (name == "_sd" || name == "...")
    return error{errc::invalid_argument, "\"" + name + "\" cannot be a disclosed claim name"};
  disclosure made;
  made.encoded = jose::base64url_encode(json::dump(json::array{salt, name, value}));
  made.digest = disclosure_digest(made.encoded);
  made.salt = std::move(salt);
  made.name = std::move(name);
  made.value = std::move(value);
  return made;
}

result<disclosure> parse_disclosure(std::string_view encoded) {
  auto raw = jose::base64url_decode(encoded);
  if (!raw) return error{errc::malformed, "disclosure: " + raw.err().message};
  json::parse_error problem;
  auto parsed = json::parse(std::string_view(reinterpret_cast<const char*>(raw->data()),
                                             raw->size()),
                            &problem);
  if (!parsed) return error{errc::malformed, "disclosure is not JSON: " + problem.message};
  if (!parsed->is_array()) return error{errc::malformed, "disclosure is not a JSON array"};
  const json::array& fields = parsed->as_array();
  if (fields.size() == 2)
    return error{errc::malformed, "array-element disclosures are not supported"};
  if (fields.size() != 3 || !fields[0].is_string() || !fields[1].is_string())
    return error{errc::malformed,
                 "disclosure is not [salt, name, value] with string salt and name"};
  if (fields[1].as_string() == "_sd" || fields[1].as_string() == "...")
    return error{errc::malformed, "disclosure names the reserved claim \"" +
                                      fields[1].as_string() + "\""};
  disclosure out;
  out.salt = fields[0].as_string();
  out.name = fields[1].as_string();
  out.value = fields[2];
  out.encoded = std::string(encoded);
  out.digest = disclosure_digest(encoded);
  return out;
}

std::string issued_credential::serialize() const {
  std::string out = issuer_jwt + "~";
  for (const auto& d : disclosures) out += d.encoded + "~";
  return out;
}

result<issued_credential> issue_credential(const credential_request& request,
                                           const jose::signer& issuer,
                                           const jose::random_source& random) {
  if (request.expires_at_s <= request.issued_at_s)
    return error{errc::invalid_argument, "credential exp is not after iat"};
  if (request.selective_claims.size() > disclosures_max)
    return error{errc::invalid_argument, "more than " + std::to_string(disclosures_max) +
                                             " selectively disclosable claims"};
  if (request.decoy_digests > decoy_digests_max)
    return error{errc::invalid_argument, "more than " + std::to_string(decoy_digests_max) +
                                             " decoy digests"};
  std::set<std::string> taken;
  if (auto problem = check_claim_names(request.visible_claims, taken, "visible")) return problem;
  if (auto problem = check_claim_names(request.selective_claims, taken, "selective"))
    return problem;

  issued_credential credential;
  json::array digests;
  for (const auto& [name, value] : request.selective_claims) {
    auto made = make_disclosure(jose::random_base64url(random, salt_bytes), name, value);
    if (!made) return made.err();
    digests.emplace_back(made->digest);
    credential.disclosures.push_back(std::move(*made));
  }
  for (size_t i = 0; i < request.decoy_digests; ++i)
    digests.emplace_back(disclosure_digest(jose::random_base64url(random, salt_bytes)));
  // Sorted, so the position of a digest says nothing about which claim it hides.
  std::sort(digests.begin(), digests.end(), [](const json::value& a, const json::value& b) {
    return a.as_string() < b.as_string();
  });

  json::object payload;
  payload.emplace_back("iss", did_from_node_id(issuer.public_key));
  if (!request.subject.empty()) payload.emplace_back("sub", request.subject);
  payload.emplace_back("iat", request.issued_at_s);
  payload.emplace_back("exp", request.expires_at_s);
  for (const auto& claim : request.visible_claims) payload.push_back(claim);
  json::object confirmation;
  confirmation.emplace_back("jwk", jose::public_jwk(request.holder_key));
  payload.emplace_back("cnf", std::move(confirmation));
  if (!digests.empty()) payload.emplace_back("_sd", std::move(digests));
  payload.emplace_back("_sd_alg", "sha-256");
  credential.issuer_jwt = jose::sign_ed25519(credential_type, json::dump(payload), issuer);
  if (credential.serialize().size() > presentation_chars_max)
    return error{errc::invalid_argument, "credential would exceed presentation_chars_max"};
  return credential;
}

result<sd_jwt_parts> split_sd_jwt(std::string_view text) {
  if (text.size() > presentation_chars_max)
    return error{errc::malformed, "sd-jwt of " + std::to_string(text.size()) +
                                      " characters is over presentation_chars_max"};
  const size_t last_tilde = text.rfind('~');
  if (last_tilde == std::string_view::npos)
    return error{errc::malformed, "sd-jwt has no '~' (a bare JWT is not an SD-JWT)"};
  sd_jwt_parts parts;
  parts.hashed_prefix = std::string(text.substr(0, last_tilde + 1));
  parts.key_binding_jwt = std::string(text.substr(last_tilde + 1));
  std::string_view body = text.substr(0, last_tilde);
  size_t start = 0;
  bool first = true;
  while (true) {
    const size_t tilde = body.find('~', start);
    const std::string_view part = body.substr(
        start, tilde == std::string_view::npos ? std::string_view::npos : tilde - start);
    if (part.empty())
      return error{errc::malformed,
                   first ? "sd-jwt: empty issuer jwt" : "sd-jwt: empty disclosure"};
    if (first) {
      parts.issuer_jwt = std::string(part);
      first = false;
    } else {
      if (parts.disclosures.size() == disclosures_max)
        return error{errc::malformed,
                     "sd-jwt: more than " + std::to_string(disclosures_max) + " disclosures"};
      parts.disclosures.emplace_back(part);
    }
    if (tilde == std::string_view::npos) break;
    start = tilde + 1;
  }
  return parts;
}

result<std::string> present_credential(std::string_view credential,
                                       const std::vector<std::string>& disclose,
                                       const key_binding_request& binding,
                                       const jose::signer& holder) {
  if (binding.audience.empty() || binding.nonce.empty())
    return error{errc::invalid_argument, "key binding needs an audience and a nonce"};
  auto parts = split_sd_jwt(credential);
  if (!parts) return parts.err();
  if (!parts->key_binding_jwt.empty())
    return error{errc::invalid_argument, "credential already carries a key-binding jwt"};
  auto issuer_jwt = jose::parse_compact(parts->issuer_jwt);
  if (!issuer_jwt) return issuer_jwt.err();
  auto payload = jose::parse_json_object(issuer_jwt->payload, "issuer jwt payload");
  if (!payload) return payload.err();
  auto bound_key = confirmation_key(*payload);
  if (!bound_key) return bound_key.err();
  if (!(*bound_key == holder.public_key))
    return error{errc::identity_mismatch, "credential is bound to another key (cnf.jwk)"};

  std::string presentation = parts->issuer_jwt + "~";
  std::set<std::string> found;
  for (const auto& encoded : parts->disclosures) {
    auto parsed = parse_disclosure(encoded);
    if (!parsed) return parsed.err();
    if (std::find(disclose.begin(), disclose.end(), parsed->name) == disclose.end()) continue;
    presentation += encoded + "~";
    found.insert(parsed->name);
  }
  for (const auto& name : disclose)
    if (found.count(name) == 0)
      return error{errc::invalid_argument, "credential has no disclosure for \"" + name + "\""};

  const jose::sha256_digest hash = jose::sha256(presentation);
  json::object claims;
  claims.emplace_back("iat", binding.issued_at_s);
  claims.emplace_back("aud", binding.audience);
  claims.emplace_back("nonce", binding.nonce);
  claims.emplace_back("sd_hash", jose::base64url_encode(hash.data(), hash.size()));
  presentation += jose::sign_ed25519(key_binding_type, json::dump(claims), holder);
  return presentation;
}

outcome<verified_presentation> verify_presentation(std::string_view presentation,
                                                   const presentation_check& check) {
  auto parts = split_sd_jwt(presentation);
  if (!parts) return refuse(error_kind::malformed, parts.err().message);
  auto payload = verify_issuer_jwt(parts->issuer_jwt, check.issuer_key);
  if (!payload) return payload.err();

  if (const json::value* alg = payload->find("_sd_alg");
      alg != nullptr && !(alg->is_string() && alg->as_string() == "sha-256"))
    return refuse(error_kind::malformed, "_sd_alg is not \"sha-256\"");
  disclosure_pool pool;
  for (const auto& encoded : parts->disclosures) {
    auto parsed = parse_disclosure(encoded);
    if (!parsed) return refuse(error_kind::malformed, parsed.err().message);
    if (!pool.by_digest.emplace(parsed->digest, pool.items.size()).second)
      return refuse(error_kind::disclosure_mismatch, "the same disclosure is presented twice");
    pool.items.push_back(std::move(*parsed));
  }
  pool.used.assign(pool.items.size(), false);
  json::value claims = *payload;
  if (auto problem = embed(claims, pool, 0)) return *problem;
  for (size_t i = 0; i < pool.items.size(); ++i)
    if (!pool.used[i])
      return refuse(error_kind::disclosure_mismatch,
                    "disclosure for \"" + pool.items[i].name + "\" is not referenced by any _sd");
  erase_member(claims.as_object(), "_sd_alg");

  if (auto problem = check_lifetime(*payload, check)) return *problem;
  auto holder_key = confirmation_key(*payload);
  if (!holder_key) return refuse(error_kind::malformed, holder_key.err().message);
  if (parts->key_binding_jwt.empty())
    return refuse(error_kind::missing_key_binding,
                  "presentation has no key-binding jwt (the holder must prove its key)");
  if (auto problem = check_key_binding(*parts, *holder_key, check)) return *problem;

  verified_presentation verified;
  verified.issuer = *payload->find_string("iss");
  verified.holder_key = *holder_key;
  verified.claims = std::move(claims);
  for (const auto& item : pool.items) verified.disclosed.push_back(item.name);
  return verified;
}

}  // namespace cmesh::iam
