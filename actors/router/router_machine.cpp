#include "actors/router/router_machine.hpp"

#include <algorithm>
#include <cassert>
#include <limits>
#include <optional>

#include <sodium.h>

#include "messages/codec.hpp"
#include "runtime/crypto/identity.hpp"
#include "runtime/crypto/jose.hpp"

namespace cmesh::router {

namespace {

constexpr std::string_view audit_domain = "cmesh-audit-v1";
// Bytes one rate bucket costs in the LRU (key, value, list and index overhead).
constexpr size_t bucket_bytes = 128;

// BLAKE2b-256 of a msgpack encoding, packed on the stack first (one hash call, not one per field).
template <class Pack>
hash32 hash_packed(Pack&& pack) {
  crypto_init();
  codec_detail::bytes_writer writer;
  msgpack::packer<codec_detail::bytes_writer> packer(writer);
  pack(packer);
  hash32 out{};
  crypto_generichash(out.data(), out.size(), writer.data(), writer.size(), nullptr, 0);
  return out;
}

// The audit records as packed: the same maps as audit_request/response/mined/confirmed (same
// keys, same order; a 32-byte array packs as bin like the structs' bytes), built from views.
struct audit_request_view {
  std::string_view tx;
  std::string_view sub;
  std::string_view fqmn;
  hash32 request_hash;
  MSGPACK_DEFINE_MAP(tx, sub, fqmn, request_hash);
};
struct audit_response_view {
  std::string_view tx;
  uint16_t status = 0;
  hash32 response_hash;
  MSGPACK_DEFINE_MAP(tx, status, response_hash);
};
struct audit_confirmed_view {
  std::string_view tx;
  uint64_t index = 0;
  MSGPACK_DEFINE_MAP(tx, index);
};
struct audit_mined_view {
  std::string_view tx;
  hash32 request_hash;
  hash32 response_hash;
  MSGPACK_DEFINE_MAP(tx, request_hash, response_hash);
};

// `record` msgpack-encoded, on the subject `prefix` + `tail`. msgpack writes a few bytes at a
// time: into a stack buffer, then one append.
template <class Record>
void add_record(effects::publish_list& out, std::string_view prefix, std::string_view tail, const Record& record) {
  codec_detail::bytes_writer packed;
  msgpack::pack(packed, record);
  out.add(prefix, tail, packed.data(), packed.size());
}

// The trailing JSON argument as written ("" without one): the value of a write with no body.
std::string args_text_of(const fqmn& x) {
  if (!x.args) return {};
  return x.args_text.empty() ? json::dump(*x.args) : x.args_text;
}

// A trusted issuer named by the token's (not yet verified) iss claim, or nullopt. Only asked when
// the token failed as wrong_issuer under this node's key, so this node's own tokens never pay for
// the extra base64 and JSON work.
std::optional<node_id> trusted_issuer_of(const std::string& token, const std::set<node_id>& trusted) {
  if (trusted.empty()) return std::nullopt;
  const auto first = token.find('.');
  const auto second = first == std::string::npos ? first : token.find('.', first + 1);
  if (second == std::string::npos) return std::nullopt;
  auto payload = jose::base64url_decode(std::string_view(token).substr(first + 1, second - first - 1));
  if (!payload) return std::nullopt;
  auto claims = json::parse(std::string_view(reinterpret_cast<const char*>(payload->data()), payload->size()));
  const json::value* iss = claims ? claims->find("iss") : nullptr;
  if (iss == nullptr || !iss->is_string()) return std::nullopt;
  auto key = node_id_from_did(iss->as_string());
  if (!key || !trusted.count(*key)) return std::nullopt;
  return *key;
}

bool is_mcom(std::string_view name) {
  constexpr std::string_view suffix = ".mcom";
  return name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
}

}  // namespace

status validate(const config& cfg) {
  const std::pair<const char*, bool> checks[] = {
      {"body_bytes_max", cfg.body_bytes_max > 0},
      {"pending_max", cfg.pending_max > 0},
      {"dispatch_timeout_us", cfg.dispatch_timeout_us > 0},
      {"rate_per_s", cfg.rate_per_s > 0},
      {"rate_burst", cfg.rate_burst > 0},
      {"rate_subjects_max", cfg.rate_subjects_max > 0},
      {"verified_tokens_max", cfg.verified_tokens_max > 0},
      {"revoked_max", cfg.revoked_max > 0},
      {"headers_max", cfg.headers_max > 0},
      {"header_bytes_max", cfg.header_bytes_max > 0},
      {"handshake_rate_per_s", cfg.handshake_rate_per_s > 0},
      {"handshake_burst", cfg.handshake_burst > 0},
      {"handshake_clients_max", cfg.handshake_clients_max > 0},
  };
  for (const auto& [name, ok] : checks)
    if (!ok) return error{errc::invalid_argument, std::string("router config: ") + name + " is out of range"};
  return ok_status();
}

bool valid_tx(std::string_view tx) {
  if (tx.empty() || tx.size() > 64) return false;
  for (char c : tx) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-';
    if (!ok) return false;
  }
  return true;
}

hash32 request_hash(const cmtp::request& r) {
  if (!r.token.empty()) {  // never hash the bearer secret
    cmtp::request copy = r;
    copy.token.clear();
    return request_hash(copy);
  }
  return hash_packed([&](auto& packer) { packer.pack(r); });
}

hash32 response_hash(const cmtp::response& r) {
  // The msgpack array [status, reason, headers, body].
  return hash_packed([&](auto& packer) {
    packer.pack_array(4);
    packer.pack(r.status);
    packer.pack(r.reason);
    packer.pack(r.headers);
    packer.pack(r.body);
  });
}

hash32 audit_hash(std::string_view tx, const hash32& request, const hash32& response) {
  // "cmesh-audit-v1" 0x00 || tx || request || response: at most 15 + 64 + 64 bytes (a longer tx is
  // hashed all the same, through the incremental state).
  crypto_init();
  hash32 out{};
  uint8_t buffer[256];
  const size_t size = audit_domain.size() + 1 + tx.size() + request.size() + response.size();
  if (size <= sizeof(buffer)) {
    uint8_t* at = buffer;
    at = std::copy(audit_domain.begin(), audit_domain.end(), at);
    *at++ = 0;
    at = std::copy(tx.begin(), tx.end(), at);
    at = std::copy(request.begin(), request.end(), at);
    std::copy(response.begin(), response.end(), at);
    crypto_generichash(out.data(), out.size(), buffer, size, nullptr, 0);
    return out;
  }
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, out.size());
  const uint8_t zero = 0;
  crypto_generichash_update(&state, reinterpret_cast<const uint8_t*>(audit_domain.data()), audit_domain.size());
  crypto_generichash_update(&state, &zero, 1);
  crypto_generichash_update(&state, reinterpret_cast<const uint8_t*>(tx.data()), tx.size());
  crypto_generichash_update(&state, request.data(), request.size());
  crypto_generichash_update(&state, response.data(), response.size());
  crypto_generichash_final(&state, out.data(), out.size());
  return out;
}

std::string state_key(const fqmn& x) {
  std::string key = "state/" + x.contract;
  if (!x.function.empty()) key += "/" + x.function;
  return key;
}

effects::publish effects::publish_list::operator[](size_t i) const {
  const uint32_t subject_at = i == 0 ? 0 : subject_ends[i - 1];
  const uint32_t payload_at = i == 0 ? 0 : payload_ends[i - 1];
  return {subjects.substr(subject_at, subject_ends[i] - subject_at),
          bytes(payloads.begin() + payload_at, payloads.begin() + payload_ends[i])};
}

void effects::publish_list::reserve(size_t records, size_t bytes_per_record) {
  subject_ends.reserve(records);
  payload_ends.reserve(records);
  subjects.reserve(records * 32);
  payloads.reserve(records * bytes_per_record);
}

void effects::publish_list::clear() {
  subjects.clear();
  subject_ends.clear();
  payloads.clear();
  payload_ends.clear();
}

void effects::publish_list::append_subject(std::string_view prefix, std::string_view tail) {
  subjects.append(prefix).append(tail);
  subject_ends.push_back(static_cast<uint32_t>(subjects.size()));
}

void effects::publish_list::add(std::string_view prefix, std::string_view tail, const uint8_t* payload, size_t size) {
  append_subject(prefix, tail);
  payloads.insert(payloads.end(), payload, payload + size);
  payload_ends.push_back(static_cast<uint32_t>(payloads.size()));
}

machine::machine(config cfg, node_id issuer_key, std::string audience)
    : config_(std::move(cfg)), issuer_key_(issuer_key), audience_(std::move(audience)),
      tokens_(config_.verified_tokens_max),
      buckets_(config_.rate_subjects_max, config_.rate_subjects_max * bucket_bytes),
      handshake_buckets_(config_.handshake_clients_max, config_.handshake_clients_max * bucket_bytes) {
  assert(validate(config_).ok());
}

void machine::revoke(const node_id& issuer, const std::string& token_id, int64_t expires_at_s) {
  auto& of_issuer = revoked_[issuer];
  if (auto known = of_issuer.find(token_id); known != of_issuer.end()) {
    known->second = std::max(known->second, expires_at_s);
    return;
  }
  if (revoked_count_ >= config_.revoked_max) {
    // Full: drop the revocation that expires first (its token is the closest to dying anyway).
    std::map<std::string, int64_t, std::less<>>* owner = nullptr;
    std::map<std::string, int64_t, std::less<>>::iterator first;
    for (auto& [who, ids] : revoked_)
      for (auto it = ids.begin(); it != ids.end(); ++it)
        if (!owner || it->second < first->second) {
          owner = &ids;
          first = it;
        }
    if (owner) {
      owner->erase(first);
      --revoked_count_;
    }
  }
  of_issuer.emplace(token_id, expires_at_s);
  ++revoked_count_;
  tokens_.forget_token_id(token_id);
}

void machine::refuse(request_id id, uint16_t status, std::string reason, effects& out) {
  ++stats_.answered;
  ++stats_.by_status[status];
  cmtp::response r;
  r.status = status;
  r.reason = std::move(reason);
  out.responses.push_back({id, std::move(r)});
}

machine::rate_verdict machine::take_token(const std::string& sub, int64_t now_us, int64_t& retry_ms,
                                          node_id& caller) {
  const int64_t capacity = int64_t{config_.rate_burst} * 1000;
  bucket* b = buckets_.get(sub);  // updated in place: same size, so no put()
  if (b != nullptr) {
    const int64_t elapsed = std::max<int64_t>(0, now_us - b->last_us);
    // millitokens per microsecond = rate / 1000; capped so a long idle cannot overflow.
    const int64_t refill = std::min<int64_t>(capacity, elapsed / 1000 * config_.rate_per_s +
                                                           elapsed % 1000 * config_.rate_per_s / 1000);
    b->millitokens = std::min(capacity, b->millitokens + refill);
  } else {
    auto key = node_id_from_did(sub);
    if (!key) return rate_verdict::bad_subject;
    bucket fresh;
    fresh.caller = *key;
    fresh.millitokens = capacity;
    buckets_.put(sub, fresh, bucket_bytes);
    b = buckets_.get(sub);
    assert(b != nullptr);
  }
  b->last_us = now_us;
  caller = b->caller;
  const bool ok = b->millitokens >= 1000;
  if (ok) b->millitokens -= 1000;
  else retry_ms = ((1000 - b->millitokens) * 1000 / config_.rate_per_s + 999) / 1000;
  return ok ? rate_verdict::ok : rate_verdict::limited;
}

void machine::on_request(request_id id, cmtp::request&& req, int64_t now_us, effects& out, const node_id& client) {
  ++stats_.requests;
  if (!serving_) return refuse(id, 503, "router has not authenticated its own identity yet", out);
  // 1. Shape.
  if (req.version != cmtp::version_0) return refuse(id, 400, "unsupported CMTP version '" + req.version.substr(0, 16) + "'", out);
  if (!valid_tx(req.tx)) return refuse(id, 400, "tx must be 1 to 64 characters of [A-Za-z0-9_-]", out);
  if (req.body.size() > config_.body_bytes_max)
    return refuse(id, 413, "body of " + std::to_string(req.body.size()) + " bytes exceeds " +
                               std::to_string(config_.body_bytes_max), out);
  size_t header_bytes = 0;
  for (const auto& [k, v] : req.headers) header_bytes += k.size() + v.size();
  if (req.headers.size() > config_.headers_max || header_bytes > config_.header_bytes_max)
    return refuse(id, 413, "headers exceed " + std::to_string(config_.headers_max) + " entries or " +
                               std::to_string(config_.header_bytes_max) + " bytes", out);
  if (by_id_.size() >= config_.pending_max) return refuse(id, 503, "router busy: too many requests in flight", out);
  // The handshake opens a session, so it cannot need one (exact FQMNs: 0xI takes no arguments).
  const std::string_view target = req.fqmn;  // compared by length first (a C string would be strlen'd)
  if (target == std::string_view("0xI:challenge") || target == std::string_view("0xI:session")) {
    const bool session = target == std::string_view("0xI:session");
    return on_handshake(id, std::move(req), session, now_us, out, client);
  }
  // 2. Token (authentication only; the scope is checked once the FQMN is known).
  iam::token_check check;
  check.issuer_key = issuer_key_;
  check.audience = audience_;
  check.now_s = now_us / 1'000'000;
  // Revocations are per issuer: another node can only have revoked its own tokens.
  check.is_revoked = [this, &check](std::string_view jti) {
    auto of_issuer = revoked_.find(check.issuer_key);
    return of_issuer != revoked_.end() && of_issuer->second.find(jti) != of_issuer->second.end();
  };
  auto claims = tokens_.verify_shared(req.token, check);
  if (!claims && claims.kind() == iam::error_kind::wrong_issuer)  // another node's IAM (0xP)?
    if (auto other = trusted_issuer_of(req.token, trusted_)) {
      check.issuer_key = *other;
      claims = tokens_.verify_shared(req.token, check);
    }
  if (!claims) return refuse(id, 401, claims.err().describe(), out);
  const iam::session_claims& session = **claims;
  // 3. Rate (the bucket also remembers the subject's key, decoded once).
  int64_t retry_ms = 0;
  node_id caller;
  switch (take_token(session.subject, now_us, retry_ms, caller)) {
    case rate_verdict::ok: break;
    case rate_verdict::bad_subject: return refuse(id, 401, "malformed: token subject is not a did:key", out);
    case rate_verdict::limited:
      ++stats_.rate_limited;
      return refuse(id, 429, "rate limited: retry after " + std::to_string(retry_ms) + " ms", out);
  }
  // 4. Duplicate tx.
  if (in_flight(caller, req.tx))
    return refuse(id, 409, "tx " + req.tx + " is already in flight for this identity", out);
  // 5. Parse, into a pending entry: a reused slot (it is large: the request and its FQMN), whose
  // strings keep their capacity. A refusal below frees it again.
  pending_request& p = open(id);
  fqmn_error problem;
  if (!parse_fqmn_into(req.fqmn, p.current, &problem)) {
    release(p);
    return refuse(id, 400, "bad FQMN: " + problem.describe(), out);
  }
  // 6. Scope.
  const std::string_view needed = required_scope(p.current);
  if (std::find(session.scopes.begin(), session.scopes.end(), needed) == session.scopes.end()) {
    release(p);
    return refuse(id, 403, "insufficient_scope: " + req.fqmn.substr(0, 64) + " needs scope " + std::string(needed), out);
  }
  // 7. Audit opens.
  if (p.current.op == opcode::proxy) p.token = std::move(req.token);  // forwarded with the request
  req.token.clear();
  req.token.shrink_to_fit();  // the bearer secret is not kept while the request waits
  p.request_hash = request_hash(req);
  p.claims = std::move(*claims);
  p.caller = caller;
  p.req = std::move(req);
  add_record(out.publishes, "events.requests", {}, audit_request_view{p.req.tx, p.claims->subject, p.req.fqmn, p.request_hash});
  mark_in_flight(p);
  dispatch(id, p, now_us, out);
}

namespace {

// The string member `key` of a JSON object, or nullptr.
const std::string* text_member(const json::value& v, std::string_view key) {
  const json::value* m = v.find(key);
  return m != nullptr && m->is_string() ? &m->as_string() : nullptr;
}

}  // namespace

void machine::on_handshake(request_id id, cmtp::request&& req, bool session, int64_t now_us, effects& out,
                           const node_id& client) {
  // Rate per client key: the only limit a caller without a session can be held to.
  const int64_t capacity = int64_t{config_.handshake_burst} * 1000;
  bucket* b = handshake_buckets_.get(client);
  if (b == nullptr) {
    bucket fresh;
    fresh.millitokens = capacity;
    fresh.last_us = now_us;
    handshake_buckets_.put(client, fresh, bucket_bytes);
    b = handshake_buckets_.get(client);
  }
  const int64_t elapsed = std::max<int64_t>(0, now_us - b->last_us);
  b->millitokens = std::min(capacity, b->millitokens + std::min<int64_t>(capacity, elapsed / 1000 * config_.handshake_rate_per_s));
  b->last_us = now_us;
  if (b->millitokens < 1000) {
    ++stats_.rate_limited;
    const int64_t retry_ms = (1000 - b->millitokens + config_.handshake_rate_per_s - 1) / config_.handshake_rate_per_s;
    return refuse(id, 429, "handshake rate limited for this client: retry after " + std::to_string(retry_ms) + " ms", out);
  }
  b->millitokens -= 1000;
  if (in_flight(client, req.tx))
    return refuse(id, 409, "tx " + req.tx + " is already in flight for this client", out);
  effects::iam_call call;
  call.id = id;
  call.session = session;
  call.audience = audience_;
  // The body: optional {"audience"} for a challenge; {"nonce", "holder_did", "scope", "signature"}
  // (the signed answer, docs/iam.md §2) for a session.
  const std::string_view body(reinterpret_cast<const char*>(req.body.data()), req.body.size());
  if (!body.empty() || session) {
    json::parse_error problem;
    auto parsed = json::parse(body, &problem);
    if (!parsed || !parsed->is_object())
      return refuse(id, 400, std::string("0xI body must be a JSON object") +
                                 (parsed ? "" : ": " + problem.message), out);
    if (session) {
      const std::string* nonce = text_member(*parsed, "nonce");
      const std::string* holder = text_member(*parsed, "holder_did");
      const std::string* signature = text_member(*parsed, "signature");
      const std::string* scope = text_member(*parsed, "scope");
      if (!nonce || !holder || !signature || (parsed->find("scope") && !scope))
        return refuse(id, 400, "0xI:session body needs string members nonce, holder_did, signature (and scope)", out);
      call.answer = iam::answer_message{*nonce, *holder, scope ? *scope : std::string(), *signature};
    } else if (const std::string* audience = text_member(*parsed, "audience")) {
      call.audience = *audience;
    }
  }
  ++stats_.handshakes;
  req.token.clear();
  pending_request& p = open(id);
  p.request_hash = request_hash(req);
  p.caller = client;
  p.current = fqmn{};
  p.current.op = opcode::iam;
  p.current.action = session ? "session" : "challenge";
  p.req = std::move(req);
  // No identity yet: the audit record's sub is empty (a session's holder is proved by the IAM).
  add_record(out.publishes, "events.requests", {}, audit_request_view{p.req.tx, std::string_view(), p.req.fqmn, p.request_hash});
  mark_in_flight(p);
  await(id, p, now_us);
  out.iam_calls.push_back(std::move(call));
}

namespace {

// A handshake step's answer: the IAM's status and reason; on 200, `fields` as a JSON object body.
cmtp::response handshake_response(uint16_t status, const std::string& reason, json::object fields) {
  cmtp::response r;
  r.status = status;
  r.reason = reason;
  if (status == iam::status_ok) {
    const std::string text = json::dump(json::value(std::move(fields)));
    r.body.assign(text.begin(), text.end());
  }
  return r;
}

}  // namespace

void machine::on_challenge_reply(request_id id, const iam::challenge_reply& reply, int64_t, effects& out) {
  if (!settle(id)) return;
  json::object o;
  if (reply.status == iam::status_ok)
    o = {{"nonce", json::value(reply.nonce)},
         {"audience", json::value(reply.audience)},
         {"node_did", json::value(reply.node_did)},
         {"expires_at_s", json::value(reply.expires_at_s)}};
  finish(id, handshake_response(reply.status, reply.reason, std::move(o)), out);
}

void machine::on_session_reply(request_id id, const iam::session_reply& reply, int64_t, effects& out) {
  if (!settle(id)) return;
  json::object o;
  if (reply.status == iam::status_ok)
    o = {{"token", json::value(reply.token)},
         {"scope", json::value(reply.scope)},
         {"expires_at_s", json::value(reply.expires_at_s)},
         {"token_id", json::value(reply.token_id)}};
  finish(id, handshake_response(reply.status, reply.reason, std::move(o)), out);
}

void machine::await(request_id id, pending_request& p, int64_t now_us) {
  int64_t deadline = now_us + config_.dispatch_timeout_us;
  if (!deadlines_.empty()) deadline = std::max(deadline, deadlines_.back().deadline_us);  // kept in order
  heads_[p.slot].deadline_us = deadline;
  deadlines_.push_back({deadline, id, p.slot});
}

machine::pending_request* machine::settle(request_id id) {
  pending_request* p = find(id);
  if (p == nullptr || heads_[p->slot].deadline_us == 0) {
    ++stats_.late_answers;
    return nullptr;
  }
  heads_[p->slot].deadline_us = 0;
  trim_deadlines();
  return p;
}

bool machine::stale(const deadline_entry& d) const {
  const slot_head& head = heads_[d.slot];
  return head.id != d.id || head.deadline_us != d.deadline_us;
}

void machine::trim_deadlines() {
  while (!deadlines_.empty() && stale(deadlines_.front())) deadlines_.pop_front();
  // A request that waits long keeps the answered ones behind it: compact once they dominate.
  if (deadlines_.size() > 4 * by_id_.size() + 1024)
    deadlines_.erase(std::remove_if(deadlines_.begin(), deadlines_.end(),
                                    [this](const deadline_entry& d) { return stale(d); }),
                     deadlines_.end());
}

machine::pending_request* machine::find(request_id id) {
  // The index's hash of an id is the id itself: a hash match is the entry (no slot to touch).
  const uint32_t slot = by_id_.find(id_hash(id), [](uint32_t) { return true; });
  return slot == slot_index::npos ? nullptr : &slots_[slot];
}

machine::pending_request& machine::open(request_id id) {
  assert(id != 0 && find(id) == nullptr);
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back().slot = slot;
    heads_.emplace_back();
  }
  heads_[slot] = slot_head{id, 0};
  by_id_.insert(id_hash(id), slot);
  return slots_[slot];
}

uint64_t machine::tx_hash(const node_id& caller, std::string_view tx) {
  return caller.prefix64() ^ std::hash<std::string_view>{}(tx);
}

void machine::mark_in_flight(const pending_request& p) {
  by_tx_.insert(tx_hash(p.caller, p.req.tx), p.slot);
}

bool machine::in_flight(const node_id& caller, std::string_view tx) const {
  return by_tx_.find(tx_hash(caller, tx), [&](uint32_t s) {
    return slots_[s].caller == caller && slots_[s].req.tx == tx;
  }) != slot_index::npos;
}

void machine::release(pending_request& p) {
  const uint32_t slot = p.slot;
  by_tx_.erase(tx_hash(p.caller, p.req.tx), slot);
  by_id_.erase(id_hash(heads_[slot].id), slot);
  heads_[slot] = slot_head{};
  p.req = cmtp::request{};  // a large body is not held by an idle slot
  p.token.clear();
  p.claims.reset();
  p.names.clear();
  p.resolving = false;
  free_slots_.push_back(slot);
}

void machine::call_kv(request_id id, pending_request& p, kv::request req, int64_t now_us, effects& out) {
  ++stats_.kv_calls;
  await(id, p, now_us);
  out.calls.push_back({id, std::move(req), p.caller});
}

void machine::on_proxy_answer(request_id id, const cmtp::response& answer, int64_t, effects& out) {
  if (!settle(id)) return;
  cmtp::response r;
  r.status = answer.status;
  r.reason = answer.reason;
  r.headers = answer.headers;
  r.body = answer.body;
  // The remote router's own audit hash, so the client can check both trails.
  if (!answer.audit.empty()) r.headers["proxied-audit"] = to_hex(answer.audit.data(), answer.audit.size());
  finish(id, std::move(r), out);
}

void machine::on_bus_answer(request_id id, uint16_t status, const std::string& reason, const bytes& payload,
                            int64_t, effects& out) {
  if (!settle(id)) return;
  cmtp::response r;
  r.status = status;
  r.reason = reason;
  if (status == 404 && reason.empty()) r.reason = "no responders on the subject";
  if (status == 200) r.body = payload;
  finish(id, std::move(r), out);
}

void machine::on_consensus_answer(request_id id, uint16_t status, const std::string& text, int64_t,
                                  effects& out) {
  if (!settle(id)) return;
  cmtp::response r;
  r.status = status;
  if (status == 200) r.body.assign(text.begin(), text.end());
  else r.reason = text;
  finish(id, std::move(r), out);
}

void machine::dispatch(request_id id, pending_request& p, int64_t now_us, effects& out) {
  const fqmn& x = p.current;
  cmtp::response r;
  switch (x.op) {
    case opcode::state_read: {
      kv::request q;
      q.operation = static_cast<uint8_t>(kv::op::get);
      q.key = state_key(x);
      return call_kv(id, p, std::move(q), now_us, out);
    }
    case opcode::state_write: {
      kv::request q;
      q.operation = static_cast<uint8_t>(kv::op::put);
      q.key = state_key(x);
      q.value = p.req.body.empty() ? args_text_of(x) : std::string(p.req.body.begin(), p.req.body.end());
      return call_kv(id, p, std::move(q), now_us, out);
    }
    case opcode::events_publish: {
      if (!p.req.body.empty()) {
        out.publishes.add(x.subject, {}, p.req.body.data(), p.req.body.size());
      } else {
        const std::string text = args_text_of(x);
        out.publishes.add(x.subject, {}, reinterpret_cast<const uint8_t*>(text.data()), text.size());
      }
      r.status = 200;
      return finish(id, std::move(r), out);
    }
    case opcode::resolve: {
      if (!is_mcom(x.name)) {
        r.status = 404;
        r.reason = "unknown name " + x.name + ": only .mcom names are registered here";
        return finish(id, std::move(r), out);
      }
      if (std::find(p.names.begin(), p.names.end(), x.name) != p.names.end()) {
        r.status = 508;
        r.reason = "name loop:";
        for (const auto& n : p.names) r.reason += " " + n + " ->";
        r.reason += " " + x.name;
        return finish(id, std::move(r), out);
      }
      if (p.names.size() >= fqmn_nesting_max) {
        r.status = 508;
        r.reason = "more than " + std::to_string(fqmn_nesting_max) + " levels of names";
        return finish(id, std::move(r), out);
      }
      p.names.push_back(x.name);
      p.resolving = true;
      ++stats_.resolutions;
      kv::request q;
      q.operation = static_cast<uint8_t>(kv::op::name_resolve);
      q.key = x.name;
      return call_kv(id, p, std::move(q), now_us, out);
    }
    case opcode::register_name: {
      kv::request q;
      q.operation = static_cast<uint8_t>(kv::op::name_register);
      q.key = x.name;
      q.value = to_string(*x.target);
      return call_kv(id, p, std::move(q), now_us, out);
    }
    case opcode::proxy: {
      const fqmn& target = *x.target;
      const std::string_view needed = required_scope(target);
      if (!granted(p, needed)) {
        r.status = 403;
        r.reason = "insufficient_scope: the proxied " + to_string(target).substr(0, 64) + " needs scope " +
                   std::string(needed);
        return finish(id, std::move(r), out);
      }
      if (x.router_key == issuer_key_) {  // ourselves: dispatch the target here
        fqmn inner = target;
        p.current = std::move(inner);
        return dispatch(id, p, now_us, out);
      }
      ++stats_.proxied;
      cmtp::request forward = p.req;
      forward.fqmn = to_string(target);
      forward.token = p.token;
      await(id, p, now_us);
      out.proxies.push_back({id, x.router_key, std::move(forward)});
      return;
    }
    case opcode::events_read: {
      // A read from the events service is a request: the responders on the subject answer it.
      bytes payload = p.req.body;
      if (payload.empty()) {
        const std::string text = args_text_of(x);
        payload.assign(text.begin(), text.end());
      }
      await(id, p, now_us);
      // The bus gives up first (half the router's deadline), so its 404/408 reaches the client.
      const auto timeout_ms = static_cast<uint32_t>(std::max<int64_t>(1, config_.dispatch_timeout_us / 2'000));
      out.bus_requests.push_back({id, x.subject, std::move(payload), timeout_ms});
      return;
    }
    case opcode::consensus: {
      if (x.service != "kv" || x.action != "status") {
        r.status = 404;
        r.reason = "unknown consensus action " + x.service.substr(0, 32) + ":" + x.action.substr(0, 32) +
                   " (served: kv:status)";
        return finish(id, std::move(r), out);
      }
      await(id, p, now_us);
      out.consensus_queries.push_back({id});
      return;
    }
    case opcode::iam:
      r.status = 404;
      r.reason = "unknown IAM action " + x.action.substr(0, 32) + " (served: 0xI:challenge, 0xI:session)";
      return finish(id, std::move(r), out);
    case opcode::contract:
      r.status = 501;
      r.reason = std::string(opcode_text(x.op)) + " is not served by this router yet";
      return finish(id, std::move(r), out);
  }
}

void machine::on_kv_answer(request_id id, const kv::response& answer, int64_t now_us, effects& out) {
  pending_request* settled = settle(id);
  if (settled == nullptr) return;
  pending_request& p = *settled;
  cmtp::response r;
  if (answer.status == 503) {
    r.status = 503;
    r.reason = answer.reason.empty() ? "state service unavailable" : answer.reason;
    return finish(id, std::move(r), out);
  }
  if (p.resolving) {
    p.resolving = false;
    if (answer.status == 404) {
      r.status = 404;
      r.reason = "unknown name " + p.names.back();
      return finish(id, std::move(r), out);
    }
    if (answer.status != 200) {
      r.status = 500;
      r.reason = "registrar answered " + std::to_string(answer.status) + " " + answer.reason;
      return finish(id, std::move(r), out);
    }
    fqmn_error problem;
    auto target = parse_fqmn(answer.value, &problem);
    if (!target) {
      r.status = 500;
      r.reason = "registrar holds a bad target for " + p.names.back() + ": " + problem.describe();
      return finish(id, std::move(r), out);
    }
    const std::string_view needed = required_scope(*target);
    if (!granted(p, needed)) {
      r.status = 403;
      r.reason = "insufficient_scope: " + p.names.back() + " resolves to " + answer.value.substr(0, 64) +
                 ", which needs scope " + std::string(needed);
      return finish(id, std::move(r), out);
    }
    p.current = std::move(*target);
    return dispatch(id, p, now_us, out);
  }
  const opcode op = p.current.op;
  if (op == opcode::state_read) {
    if (answer.status == 200 && answer.found) {
      r.status = 200;
      r.body.assign(answer.value.begin(), answer.value.end());
    } else {
      r.status = 404;
      r.reason = "no state at " + state_key(p.current);
    }
    return finish(id, std::move(r), out);
  }
  if (op == opcode::state_write) {
    r.status = answer.status == 200 ? 200 : answer.status;
    r.reason = answer.reason;
    if (answer.status == 200) r.headers["raft-index"] = std::to_string(answer.index);
    return finish(id, std::move(r), out, answer.status == 200 ? answer.index : 0);
  }
  // register_name
  r.status = answer.status;
  r.reason = answer.reason;
  if (answer.status == 201) r.headers["raft-index"] = std::to_string(answer.index);
  return finish(id, std::move(r), out, answer.status == 201 ? answer.index : 0);
}

void machine::finish(request_id id, cmtp::response response, effects& out, uint64_t committed_index) {
  pending_request* found = find(id);
  assert(found != nullptr);
  pending_request& p = *found;
  const hash32 answered = response_hash(response);
  const hash32 audit = audit_hash(p.req.tx, p.request_hash, answered);
  response.audit.assign(audit.begin(), audit.end());
  const std::string& tx = p.req.tx;
  add_record(out.publishes, "events.responses.", tx, audit_response_view{tx, response.status, answered});
  add_record(out.publishes, "events.mined.", tx, audit_mined_view{tx, p.request_hash, answered});
  if (committed_index > 0)
    add_record(out.publishes, "events.confirmed.", tx, audit_confirmed_view{tx, committed_index});
  ++stats_.answered;
  ++stats_.by_status[response.status];
  out.responses.push_back({id, std::move(response)});
  release(p);
}

bool machine::granted(const pending_request& p, std::string_view scope) {
  const auto& scopes = p.claims->scopes;
  return std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
}


void machine::tick(int64_t now_us, effects& out) {
  while (!deadlines_.empty() && deadlines_.front().deadline_us <= now_us) {
    const deadline_entry d = deadlines_.front();
    deadlines_.pop_front();
    if (stale(d)) continue;  // answered, or waiting again
    heads_[d.slot].deadline_us = 0;
    const request_id id = d.id;
    ++stats_.timeouts;
    cmtp::response r;
    r.status = 408;
    r.reason = "the service did not answer within " + std::to_string(config_.dispatch_timeout_us / 1000) + " ms";
    finish(id, std::move(r), out);
  }
  const int64_t now_s = now_us / 1'000'000;
  for (auto issuer = revoked_.begin(); issuer != revoked_.end();) {
    auto& ids = issuer->second;
    for (auto it = ids.begin(); it != ids.end();) {
      if (it->second + 60 < now_s) {
        it = ids.erase(it);
        --revoked_count_;
      } else {
        ++it;
      }
    }
    issuer = ids.empty() ? revoked_.erase(issuer) : std::next(issuer);
  }
}

int64_t machine::next_deadline_us() const {
  // The front may be stale (answered): then the caller ticks early, and tick skips it.
  return deadlines_.empty() ? std::numeric_limits<int64_t>::max() : deadlines_.front().deadline_us;
}

}  // namespace cmesh::router
