#include "runtime/crypto/jose.hpp"

#include <cassert>
#include <cstring>
#include <memory>

#include <sodium.h>

#include "runtime/core/rng.hpp"

namespace cmesh::jose {

namespace {

constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// The 6-bit value of a base64url character, or -1.
int sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

const uint8_t* bytes_of(std::string_view text) {
  return reinterpret_cast<const uint8_t*>(text.data());
}

// Why `text` is not canonical unpadded base64url, or an empty string if it is.
std::string base64url_problem(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '=') return "padding '=' at position " + std::to_string(i) + " (JOSE uses none)";
    if (sextet(text[i]) < 0)
      return "character " + std::to_string(static_cast<unsigned char>(text[i])) +
             " at position " + std::to_string(i) + " is not base64url";
  }
  const size_t tail = text.size() % 4;
  if (tail == 1) return "length " + std::to_string(text.size()) + " is 1 mod 4";
  // The last character of a 2- or 3-character group carries 4 or 2 bits that encode nothing;
  // they must be zero, or two spellings would decode to the same bytes.
  if (tail != 0) {
    const int last = sextet(text.back());
    const int unused_mask = tail == 2 ? 0x0f : 0x03;
    if ((last & unused_mask) != 0)
      return "non-zero unused bits in the last character (non-canonical encoding)";
  }
  return {};
}

}  // namespace

std::string base64url_encode(const uint8_t* data, size_t size) {
  std::string out;
  out.reserve((size * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const uint32_t group = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out += alphabet[(group >> 18) & 63];
    out += alphabet[(group >> 12) & 63];
    out += alphabet[(group >> 6) & 63];
    out += alphabet[group & 63];
  }
  const size_t rest = size - i;
  if (rest == 1) {
    const uint32_t group = uint32_t{data[i]} << 16;
    out += alphabet[(group >> 18) & 63];
    out += alphabet[(group >> 12) & 63];
  } else if (rest == 2) {
    const uint32_t group = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8);
    out += alphabet[(group >> 18) & 63];
    out += alphabet[(group >> 12) & 63];
    out += alphabet[(group >> 6) & 63];
  }
  return out;
}

std::string base64url_encode(std::string_view text) {
  return base64url_encode(bytes_of(text), text.size());
}

bool is_canonical_base64url(std::string_view text) { return base64url_problem(text).empty(); }

result<bytes> base64url_decode(std::string_view text) {
  if (auto problem = base64url_problem(text); !problem.empty())
    return error{errc::malformed, "base64url: " + problem};
  bytes out;
  out.reserve(text.size() * 3 / 4);
  uint32_t accumulator = 0;
  int bits = 0;
  for (char c : text) {
    accumulator = (accumulator << 6) | static_cast<uint32_t>(sextet(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>(accumulator >> bits));
      accumulator &= (1u << bits) - 1;
    }
  }
  return out;
}

sha256_digest sha256(const uint8_t* data, size_t size) {
  crypto_init();
  static const uint8_t empty = 0;
  sha256_digest out{};
  const int rc = crypto_hash_sha256(out.data(), size == 0 ? &empty : data, size);
  assert(rc == 0);
  (void)rc;
  return out;
}

sha256_digest sha256(std::string_view text) { return sha256(bytes_of(text), text.size()); }

random_source secure_random_source() {
  crypto_init();
  return [](uint8_t* out, size_t size) {
    if (size != 0) randombytes_buf(out, size);
  };
}

random_source seeded_random_source(uint64_t seed) {
  // Shared so that copies of the std::function draw from one stream instead of repeating it.
  auto generator = std::make_shared<rng>(seed);
  return [generator](uint8_t* out, size_t size) {
    for (size_t i = 0; i < size; i += 8) {
      const uint64_t word = generator->next();
      const size_t take = size - i < 8 ? size - i : 8;
      for (size_t j = 0; j < take; ++j) out[i + j] = static_cast<uint8_t>(word >> (8 * j));
    }
  };
}

std::string random_base64url(const random_source& source, size_t size) {
  assert(source);
  bytes raw(size);
  if (size != 0) source(raw.data(), size);
  return base64url_encode(raw.data(), raw.size());
}

signer signer_for(const identity& id) {
  return signer{id.public_key,
                [id](const uint8_t* data, size_t size) { return id.sign(data, size); }};
}

json::value public_jwk(const node_id& key) {
  json::object jwk;
  jwk.emplace_back("kty", "OKP");
  jwk.emplace_back("crv", "Ed25519");
  jwk.emplace_back("x", base64url_encode(key.key.data(), key.key.size()));
  return jwk;
}

result<node_id> node_id_from_jwk(const json::value& jwk) {
  if (!jwk.is_object()) return error{errc::malformed, "jwk: not a JSON object"};
  const std::string* kty = jwk.find_string("kty");
  if (kty == nullptr || *kty != "OKP")
    return error{errc::malformed, "jwk: kty is not \"OKP\" (only ed25519 keys are supported)"};
  const std::string* crv = jwk.find_string("crv");
  if (crv == nullptr || *crv != "Ed25519")
    return error{errc::malformed, "jwk: crv is not \"Ed25519\""};
  if (jwk.find("d") != nullptr)
    return error{errc::malformed, "jwk: holds private key material (\"d\") where a public key "
                                  "is expected"};
  const std::string* x = jwk.find_string("x");
  if (x == nullptr) return error{errc::malformed, "jwk: x missing or not a string"};
  auto raw = base64url_decode(*x);
  if (!raw) return error{errc::malformed, "jwk: x: " + raw.err().message};
  if (raw->size() != 32)
    return error{errc::malformed,
                 "jwk: x is " + std::to_string(raw->size()) + " bytes, expected 32"};
  return node_id::from_bytes(raw->data());
}

std::string jwk_thumbprint(const node_id& key) {
  // RFC 7638 §3.2: the required members only, in lexicographic order, no whitespace.
  const std::string canonical = "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"" +
                                base64url_encode(key.key.data(), key.key.size()) + "\"}";
  const sha256_digest digest = sha256(canonical);
  return base64url_encode(digest.data(), digest.size());
}

json::value ed25519_header(std::string_view typ) {
  json::object header;
  header.emplace_back("alg", "Ed25519");
  if (!typ.empty()) header.emplace_back("typ", std::string(typ));
  return header;
}

std::string sign_compact(std::string_view header_json, std::string_view payload,
                         const signer& key) {
  assert(key.sign);
  std::string token = base64url_encode(header_json);
  token += '.';
  token += base64url_encode(payload);
  const signature64 signature = key.sign(bytes_of(token), token.size());
  token += '.';
  token += base64url_encode(signature.data(), signature.size());
  return token;
}

std::string sign_ed25519(std::string_view typ, std::string_view payload, const signer& key) {
  return sign_compact(json::dump(ed25519_header(typ)), payload, key);
}

result<json::value> parse_json_object(std::string_view text, std::string_view what) {
  json::parse_error problem;
  auto parsed = json::parse(text, &problem);
  if (!parsed)
    return error{errc::malformed, std::string(what) + " is not JSON (at byte " +
                                      std::to_string(problem.offset) + ": " + problem.message +
                                      ")"};
  if (!parsed->is_object())
    return error{errc::malformed, std::string(what) + " is not a JSON object"};
  return std::move(*parsed);
}

result<compact_jws> parse_compact(std::string_view token) {
  if (token.size() > compact_jws_chars_max)
    return error{errc::malformed, "jws of " + std::to_string(token.size()) +
                                      " characters is over the limit of " +
                                      std::to_string(compact_jws_chars_max)};
  const size_t first_dot = token.find('.');
  const size_t second_dot =
      first_dot == std::string_view::npos ? first_dot : token.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos || token.find('.', second_dot + 1) != token.npos)
    return error{errc::malformed, "jws: not three '.'-separated parts (compact serialization)"};
  const std::string_view header_part = token.substr(0, first_dot);
  const std::string_view payload_part = token.substr(first_dot + 1, second_dot - first_dot - 1);
  const std::string_view signature_part = token.substr(second_dot + 1);

  auto header_bytes = base64url_decode(header_part);
  if (!header_bytes) return error{errc::malformed, "jws header: " + header_bytes.err().message};
  auto payload_bytes = base64url_decode(payload_part);
  if (!payload_bytes) return error{errc::malformed, "jws payload: " + payload_bytes.err().message};
  auto signature_bytes = base64url_decode(signature_part);
  if (!signature_bytes)
    return error{errc::malformed, "jws signature: " + signature_bytes.err().message};

  const std::string header_text(header_bytes->begin(), header_bytes->end());
  auto header = parse_json_object(header_text, "jws header");
  if (!header) return header.err();

  compact_jws parsed;
  parsed.signing_input = std::string(token.substr(0, second_dot));
  parsed.header = std::move(*header);
  parsed.payload.assign(payload_bytes->begin(), payload_bytes->end());
  parsed.signature = std::move(*signature_bytes);
  return parsed;
}

status check_ed25519_header(const json::value& header) {
  if (!header.is_object()) return error{errc::malformed, "jws header is not a JSON object"};
  const std::string* alg = header.find_string("alg");
  if (alg == nullptr)
    return error{errc::unsupported_version, "jws header: alg missing or not a string"};
  if (*alg == "none")
    return error{errc::unsupported_version, "jws header: alg \"none\" (unsigned) is refused"};
  if (*alg != "Ed25519" && *alg != "EdDSA")
    return error{errc::unsupported_version,
                 "jws header: alg \"" + *alg + "\" is not supported (expected Ed25519 or EdDSA)"};
  if (header.find("crit") != nullptr)
    return error{errc::malformed, "jws header: crit names extensions this verifier does not "
                                  "implement"};
  if (const json::value* b64 = header.find("b64"); b64 != nullptr) {
    if (!b64->is_bool() || !b64->as_bool())
      return error{errc::malformed, "jws header: b64 other than true (unencoded payload) is "
                                    "not supported"};
  }
  return ok_status();
}

bool signature_valid(const compact_jws& parsed, const node_id& key) {
  if (parsed.signature.size() != 64) return false;
  return verify_signature(key, bytes_of(parsed.signing_input), parsed.signing_input.size(),
                          parsed.signature.data());
}

result<compact_jws> verify_compact(std::string_view token, const node_id& key) {
  auto parsed = parse_compact(token);
  if (!parsed) return parsed.err();
  if (auto problem = check_ed25519_header(parsed->header)) return problem;
  if (parsed->signature.size() != 64)
    return error{errc::malformed, "jws signature is " + std::to_string(parsed->signature.size()) +
                                      " bytes, expected 64 (Ed25519)"};
  if (!signature_valid(*parsed, key))
    return error{errc::bad_signature, "jws signature does not verify with the expected key"};
  return parsed;
}

}  // namespace cmesh::jose
