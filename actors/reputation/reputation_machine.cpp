#include "actors/reputation/reputation_machine.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <optional>
#include <string_view>

#include <sodium.h>

namespace cmesh::reputation {

namespace {

// Domain tags (docs/reputation.md section 2): a signature over one kind of claim can never be
// taken for a signature over another kind, or over anything else the key signs (handshakes).
constexpr std::string_view endorsement_domain_v1 = "cmesh/reputation/endorsement/v1";
constexpr std::string_view report_domain_v1 = "cmesh/reputation/report/v1";
// Bytes one cached report costs: three keys/hashes, a signature, two 64-bit fields, two bytes.
constexpr size_t report_bytes = 32 * 3 + 64 + 8 * 2 + 2;

std::optional<node_id> key_of(const bytes& key) {
  if (key.size() != 32) return std::nullopt;
  return node_id::from_bytes(key.data());
}

void append(bytes& out, std::string_view text) {
  out.insert(out.end(), text.begin(), text.end());
  out.push_back(0);  // the tag ends with a zero byte: no tag is a prefix of another's encoding
}
void append(bytes& out, const bytes& field) { out.insert(out.end(), field.begin(), field.end()); }
void append_le64(bytes& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

bytes to_bytes(const node_id& id) { return bytes(id.key.begin(), id.key.end()); }
template <size_t N>
bytes to_bytes(const std::array<uint8_t, N>& a) {
  return bytes(a.begin(), a.end());
}

size_t subject_bytes(size_t endorsers, size_t reporters) {
  return 32 + 8 + 32 * endorsers + 33 * reporters;
}

template <class T>
result<wire_message> decode_as(const envelope& env) {
  auto decoded = decode_payload<T>(env);
  if (!decoded) return decoded.err();
  return wire_message{std::move(decoded).value()};
}

}  // namespace

// ---- free functions --------------------------------------------------------------------------

sign_function signer_for(const identity& id) {
  return [id](const uint8_t* data, size_t size) { return id.sign(data, size); };
}

hash32 resource_hash(const uint8_t* data, size_t size) {
  crypto_init();
  static const uint8_t empty = 0;
  hash32 out{};
  const int rc = crypto_generichash(out.data(), out.size(), size == 0 ? &empty : data, size,
                                    nullptr, 0);
  assert(rc == 0);
  (void)rc;
  return out;
}

bytes endorsement_signed_bytes(const endorsement& e) {
  bytes out;
  out.reserve(endorsement_domain_v1.size() + 1 + 96 + 16);
  append(out, endorsement_domain_v1);
  append(out, e.endorser);
  append(out, e.subject);
  append(out, e.resource_hash);
  append_le64(out, static_cast<uint64_t>(e.issued_at_us));
  append_le64(out, e.nonce);
  return out;
}

bytes report_signed_bytes(const report& r) {
  bytes out;
  out.reserve(report_domain_v1.size() + 1 + 97 + 16);
  append(out, report_domain_v1);
  append(out, r.reporter);
  append(out, r.subject);
  out.push_back(r.reason);
  append(out, r.evidence_hash);
  append_le64(out, static_cast<uint64_t>(r.issued_at_us));
  append_le64(out, r.nonce);
  return out;
}

endorsement sign_endorsement(const node_id& signer, const sign_function& sign, const node_id& subject,
                             const hash32& resource, int64_t issued_at_us, uint64_t nonce) {
  endorsement e;
  e.endorser = to_bytes(signer);
  e.subject = to_bytes(subject);
  e.resource_hash = to_bytes(resource);
  e.issued_at_us = issued_at_us;
  e.nonce = nonce;
  const bytes signed_bytes = endorsement_signed_bytes(e);
  e.signature = to_bytes(sign(signed_bytes.data(), signed_bytes.size()));
  return e;
}

report sign_report(const node_id& signer, const sign_function& sign, const node_id& subject,
                   uint8_t reason, const hash32& evidence, int64_t issued_at_us, uint64_t nonce) {
  report r;
  r.reporter = to_bytes(signer);
  r.subject = to_bytes(subject);
  r.reason = reason;
  r.evidence_hash = to_bytes(evidence);
  r.issued_at_us = issued_at_us;
  r.nonce = nonce;
  const bytes signed_bytes = report_signed_bytes(r);
  r.signature = to_bytes(sign(signed_bytes.data(), signed_bytes.size()));
  return r;
}

namespace {
constexpr const char* reason_names[report_reason_max + 1] = {
    "unknown", "fraud", "impersonation", "spam", "malformed", "unresponsive"};
}

const char* reason_name(uint8_t reason) {
  return reason <= report_reason_max ? reason_names[reason] : "unknown";
}

uint8_t reason_from_name(std::string_view name) {
  for (uint8_t code = 1; code <= report_reason_max; ++code)
    if (name == reason_names[code]) return code;
  return 0;
}

const char* verdict_name(verdict v) {
  switch (v) {
    case verdict::accepted: return "accepted";
    case verdict::malformed: return "malformed";
    case verdict::unsupported_version: return "unsupported_version";
    case verdict::bad_signature: return "bad_signature";
    case verdict::from_future: return "from_future";
    case verdict::stale: return "stale";
    case verdict::replay: return "replay";
    case verdict::self_claim: return "self_claim";
    case verdict::unknown_reason: return "unknown_reason";
  }
  return "unknown";
}

errc verdict_code(verdict v) {
  assert(v != verdict::accepted);
  switch (v) {
    case verdict::malformed: return errc::malformed;
    case verdict::unsupported_version: return errc::unsupported_version;
    case verdict::bad_signature: return errc::bad_signature;
    case verdict::replay: return errc::replayed;
    default: return errc::invalid_argument;
  }
}

verdict verify_endorsement(const endorsement& e, int64_t now_us, int64_t clock_skew_us_max) {
  if (e.endorser.size() != 32 || e.subject.size() != 32 || e.resource_hash.size() != 32 ||
      e.signature.size() != 64)
    return verdict::malformed;
  if (e.version != signed_format_version) return verdict::unsupported_version;
  if (e.endorser == e.subject) return verdict::self_claim;
  if (e.issued_at_us > now_us + clock_skew_us_max) return verdict::from_future;
  const bytes signed_bytes = endorsement_signed_bytes(e);
  if (!verify_signature(*key_of(e.endorser), signed_bytes.data(), signed_bytes.size(),
                        e.signature.data()))
    return verdict::bad_signature;
  return verdict::accepted;
}

verdict verify_report(const report& r, int64_t now_us, int64_t clock_skew_us_max) {
  if (r.reporter.size() != 32 || r.subject.size() != 32 || r.evidence_hash.size() != 32 ||
      r.signature.size() != 64)
    return verdict::malformed;
  if (r.version != signed_format_version) return verdict::unsupported_version;
  if (r.reporter == r.subject) return verdict::self_claim;
  if (r.reason == 0 || r.reason > report_reason_max) return verdict::unknown_reason;
  if (r.issued_at_us > now_us + clock_skew_us_max) return verdict::from_future;
  const bytes signed_bytes = report_signed_bytes(r);
  if (!verify_signature(*key_of(r.reporter), signed_bytes.data(), signed_bytes.size(),
                        r.signature.data()))
    return verdict::bad_signature;
  return verdict::accepted;
}

status validate(const config& cfg) {
  const std::pair<const char*, bool> checks[] = {
      {"clock_skew_us_max", cfg.clock_skew_us_max >= 0},
      {"replay_entries_max", cfg.replay_entries_max > 0},
      {"subjects_max", cfg.subjects_max > 0},
      {"subject_bytes_max",
       cfg.subject_bytes_max >=
           subject_bytes(cfg.endorsers_per_subject_max, cfg.reporters_per_subject_max)},
      {"endorsers_per_subject_max", cfg.endorsers_per_subject_max > 0},
      {"reporters_per_subject_max", cfg.reporters_per_subject_max > 0},
      {"report_cache_entries_max", cfg.report_cache_entries_max > 0},
      {"report_cache_bytes_max", cfg.report_cache_bytes_max >= report_bytes},
      {"report_hops_max", cfg.report_hops_max >= 1},
      {"report_fanout", cfg.report_fanout > 0},
      {"contacts_max", cfg.contacts_max > 0},
  };
  for (const auto& [name, ok] : checks)
    if (!ok) return error{errc::invalid_argument, std::string("reputation config: ") + name +
                                                      " is out of range"};
  for (auto weight : cfg.reason_weight)
    if (weight < 0)
      return error{errc::invalid_argument, "reputation config: reason_weight is negative"};
  return ok_status();
}

const char* event_name(event_kind kind) {
  switch (kind) {
    case event_kind::endorsement_accepted: return "endorsement_accepted";
    case event_kind::report_accepted: return "report_accepted";
    case event_kind::rejected: return "rejected";
  }
  return "unknown";
}

result<wire_message> decode_wire(const envelope& env) {
  if (env.service != services::reputation)
    return error{errc::unknown_type,
                 "service " + std::to_string(env.service) + " is not reputation"};
  switch (env.type) {
    case endorsement::type_id: return decode_as<endorsement>(env);
    case report_gossip::type_id: return decode_as<report_gossip>(env);
  }
  return error{errc::unknown_type, "reputation message type " + std::to_string(env.type)};
}

// ---- replay guard ----------------------------------------------------------------------------

void machine::replay_guard::remember(const node_id& signer, uint64_t nonce,
                                     int64_t issued_at_us) {
  if (!by_key_.emplace(std::make_pair(signer, nonce), issued_at_us).second) return;
  by_time_.emplace(issued_at_us, signer, nonce);
  while (by_time_.size() > entries_max_) {
    auto oldest = by_time_.begin();
    const auto& [time_us, old_signer, old_nonce] = *oldest;
    floor_us_ = has_floor_ ? std::max(floor_us_, time_us) : time_us;
    has_floor_ = true;
    by_key_.erase({old_signer, old_nonce});
    by_time_.erase(oldest);
  }
}

// ---- machine ---------------------------------------------------------------------------------

machine::machine(config cfg, node_id self, sign_function sign, rng random)
    : config_(std::move(cfg)), self_(self), sign_(std::move(sign)), rng_(random),
      endorsement_replays_(config_.replay_entries_max),
      report_replays_(config_.replay_entries_max),
      subjects_(config_.subjects_max, config_.subject_bytes_max),
      report_cache_(config_.report_cache_entries_max, config_.report_cache_bytes_max) {
  assert(validate(config_).ok());
  assert(sign_);
}

void machine::set_contacts(const std::vector<contact>& contacts) {
  contacts_.clear();
  for (const auto& c : contacts) {
    if (contacts_.size() >= config_.contacts_max) break;
    if (c.id == self_) continue;
    contacts_.emplace(c.id, c.address);
  }
}

result<endorsement> machine::endorse(const node_id& subject, const std::string& subject_address,
                                     const hash32& resource, int64_t now_us, effects& out) {
  if (subject == self_) return error{errc::invalid_argument, "an agent cannot endorse itself"};
  endorsement e = sign_endorsement(self_, sign_, subject, resource, now_us, rng_.next());
  const verdict v = accept(e, now_us);
  // Our own fresh claim fails only if `sign` does not sign for `self` (a programmer error) or the
  // nonce collided (2^-64).
  if (v != verdict::accepted)
    return error{verdict_code(v), std::string(verdict_name(v)) + ": own endorsement refused"};
  ++stats_.endorsements_issued;
  send(subject, subject_address, e, out);
  return e;
}

result<report> machine::report_subject(const node_id& subject, report_reason reason,
                                       const hash32& evidence, int64_t now_us, effects& out) {
  if (subject == self_) return error{errc::invalid_argument, "an agent cannot report itself"};
  const auto code = static_cast<uint8_t>(reason);
  if (code == 0 || code > report_reason_max)
    return error{errc::invalid_argument, "unknown report reason " + std::to_string(code)};
  report r = sign_report(self_, sign_, subject, code, evidence, now_us, rng_.next());
  const verdict v = accept(r, now_us);
  if (v != verdict::accepted)
    return error{verdict_code(v), std::string(verdict_name(v)) + ": own report refused"};
  ++stats_.reports_issued;
  gossip_report(r, static_cast<uint8_t>(config_.report_hops_max - 1), self_, out);
  return r;
}

status machine::receive(const node_id& from, const wire_message& message, int64_t now_us,
                        effects& out) {
  if (const auto* e = std::get_if<endorsement>(&message)) {
    const verdict v = accept(*e, now_us);
    const node_id subject = key_of(e->subject).value_or(node_id{});
    if (v != verdict::accepted) return rejected(v, from, subject, out);
    out.events.push_back({event_kind::endorsement_accepted, from, subject});
    return ok_status();
  }
  const auto& gossip = std::get<report_gossip>(message);
  const verdict v = accept(gossip.body, now_us);
  const node_id subject = key_of(gossip.body.subject).value_or(node_id{});
  if (v != verdict::accepted) return rejected(v, from, subject, out);
  out.events.push_back({event_kind::report_accepted, from, subject});
  const auto hops_left =
      std::min<uint8_t>(gossip.hops_left, static_cast<uint8_t>(config_.report_hops_max - 1));
  if (hops_left > 0) gossip_report(gossip.body, static_cast<uint8_t>(hops_left - 1), from, out);
  return ok_status();
}

verdict machine::accept(const endorsement& e, int64_t now_us) {
  // A copy we already hold is refused before paying for a signature check (gossip repeats).
  const auto signer = key_of(e.endorser);
  verdict v = signer && endorsement_replays_.seen(*signer, e.nonce)
                  ? verdict::replay
                  : verify_endorsement(e, now_us, config_.clock_skew_us_max);
  if (v == verdict::accepted)
    v = check_replay(endorsement_replays_, *key_of(e.endorser), e.nonce, e.issued_at_us);
  if (v != verdict::accepted) {
    ++stats_.rejected[static_cast<size_t>(v)];
    return v;
  }
  endorsement_replays_.remember(*key_of(e.endorser), e.nonce, e.issued_at_us);
  ++stats_.endorsements_accepted;
  record_endorsement(*key_of(e.endorser), *key_of(e.subject));
  return v;
}

verdict machine::accept(const report& r, int64_t now_us) {
  const auto signer = key_of(r.reporter);
  verdict v = signer && report_replays_.seen(*signer, r.nonce)
                  ? verdict::replay
                  : verify_report(r, now_us, config_.clock_skew_us_max);
  if (v == verdict::accepted)
    v = check_replay(report_replays_, *key_of(r.reporter), r.nonce, r.issued_at_us);
  if (v != verdict::accepted) {
    ++stats_.rejected[static_cast<size_t>(v)];
    return v;
  }
  report_replays_.remember(*key_of(r.reporter), r.nonce, r.issued_at_us);
  ++stats_.reports_accepted;
  report_cache_.put({*key_of(r.reporter), r.nonce}, r, report_bytes);
  record_report(r);
  return v;
}

score_card machine::score(const node_id& subject) const {
  score_card card;
  const auto* record = subjects_.peek(subject);
  if (record == nullptr) return card;
  card.endorsers = static_cast<uint32_t>(record->endorsers.size());
  card.reporters = static_cast<uint32_t>(record->reporters.size());
  card.endorsements = record->endorsements;
  for (const auto& [reporter, reason] : record->reporters)
    card.report_weight += config_.reason_weight[reason];
  card.score = static_cast<int64_t>(card.endorsers) - card.report_weight;
  return card;
}

std::vector<report> machine::reports_about(const node_id& subject) const {
  std::vector<report> found;
  const bytes key = to_bytes(subject);
  for (const auto& entry : report_cache_)
    if (entry.value.subject == key) found.push_back(entry.value);
  return found;
}

// ---- internals -------------------------------------------------------------------------------

verdict machine::check_replay(replay_guard& guard, const node_id& signer, uint64_t nonce,
                              int64_t issued_at_us) const {
  if (guard.seen(signer, nonce)) return verdict::replay;
  if (guard.stale(issued_at_us)) return verdict::stale;
  return verdict::accepted;
}

void machine::record_endorsement(const node_id& endorser, const node_id& subject) {
  subject_record record;
  if (const auto* old = subjects_.peek(subject)) record = *old;
  ++record.endorsements;
  auto at = std::lower_bound(record.endorsers.begin(), record.endorsers.end(), endorser);
  if ((at == record.endorsers.end() || *at != endorser) &&
      record.endorsers.size() < config_.endorsers_per_subject_max)
    record.endorsers.insert(at, endorser);
  put_subject(subject, std::move(record));
}

void machine::record_report(const report& r) {
  const node_id reporter = *key_of(r.reporter);
  const node_id subject = *key_of(r.subject);
  subject_record record;
  if (const auto* old = subjects_.peek(subject)) record = *old;
  auto at = std::lower_bound(record.reporters.begin(), record.reporters.end(), reporter,
                             [](const auto& entry, const node_id& k) { return entry.first < k; });
  if (at != record.reporters.end() && at->first == reporter) {
    if (config_.reason_weight[r.reason] > config_.reason_weight[at->second]) at->second = r.reason;
  } else if (record.reporters.size() < config_.reporters_per_subject_max) {
    record.reporters.insert(at, {reporter, r.reason});
  }
  put_subject(subject, std::move(record));
}

void machine::put_subject(const node_id& subject, subject_record record) {
  const size_t size = subject_bytes(record.endorsers.size(), record.reporters.size());
  subjects_.put(subject, std::move(record), size);
}

// Passes `r` to up to report_fanout contacts, seeded sample, never back to the one it came from,
// its reporter or its subject.
void machine::gossip_report(const report& r, uint8_t hops_left, const node_id& received_from,
                            effects& out) {
  const node_id reporter = *key_of(r.reporter);
  const node_id subject = *key_of(r.subject);
  std::vector<node_id> targets;
  for (const auto& [id, address] : contacts_)
    if (id != received_from && id != reporter && id != subject) targets.push_back(id);
  const size_t picks = std::min(config_.report_fanout, targets.size());
  for (size_t i = 0; i < picks; ++i) {
    std::swap(targets[i], targets[i + rng_.below(targets.size() - i)]);
    if (reporter != self_) ++stats_.reports_forwarded;
    send(targets[i], {}, report_gossip{r, hops_left}, out);
  }
}

status machine::rejected(verdict v, const node_id& from, const node_id& subject, effects& out) {
  out.events.push_back({event_kind::rejected, from, subject, v});
  return error{verdict_code(v), std::string(verdict_name(v)) + ": claim from " +
                                    from.short_name() + " refused"};
}

void machine::send(const node_id& to, const std::string& address, wire_message message,
                   effects& out) {
  ++stats_.messages_sent;
  out.sends.push_back({to, address, std::move(message)});
}

}  // namespace cmesh::reputation
