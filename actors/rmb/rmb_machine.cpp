#include "actors/rmb/rmb_machine.hpp"

#include <algorithm>
#include <cassert>

namespace cmesh::rmb {

namespace {

int64_t to_ms(int64_t now_us) { return now_us / 1000; }

}  // namespace

const char* dedup_state_name(dedup_state state) {
  switch (state) {
    case dedup_state::accepted: return "accepted";
    case dedup_state::replied: return "replied";
    case dedup_state::done: return "done";
  }
  return "unknown";
}

const char* event_name(event_kind kind) {
  switch (kind) {
    case event_kind::refused: return "refused";
    case event_kind::duplicate: return "duplicate";
    case event_kind::unmatched_reply: return "unmatched_reply";
    case event_kind::ack_ignored: return "ack_ignored";
    case event_kind::no_route: return "no_route";
    case event_kind::redelivered: return "redelivered";
    case event_kind::forgotten: return "forgotten";
  }
  return "unknown";
}

store_op store_op::put(dedup_record record) {
  store_op op;
  op.what = action::put_dedup;
  op.key = record.key;
  op.dedup = std::move(record);
  return op;
}

store_op store_op::put(outbox_record record) {
  store_op op;
  op.what = action::put_outbox;
  op.key = key_of(record.message);
  op.outbox = std::move(record);
  return op;
}

store_op store_op::erase(action what, const message_key& key) {
  assert(what == action::erase_dedup || what == action::erase_outbox);
  store_op op;
  op.what = what;
  op.key = key;
  return op;
}

void effects::clear() {
  persist.clear();
  sends.clear();
  deliveries.clear();
  outcomes.clear();
  lookups.clear();
  events.clear();
}

status validate(const config& cfg) {
  auto bad = [](const char* field, const char* why) {
    return error{errc::invalid_argument, std::string("rmb config: ") + field + " " + why};
  };
  if (cfg.self.is_zero()) return bad("self", "must be this agent's node id");
  if (cfg.tick_ms == 0) return bad("tick_ms", "must be positive");
  if (cfg.expiry_s_max == 0) return bad("expiry_s_max", "must be positive");
  if (cfg.expiry_s_default == 0 || cfg.expiry_s_default > cfg.expiry_s_max)
    return bad("expiry_s_default", "must be in 1 .. expiry_s_max");
  if (cfg.retry_delay_ms_min == 0 || cfg.retry_delay_ms_min > cfg.retry_delay_ms_max)
    return bad("retry_delay_ms_min", "must be in 1 .. retry_delay_ms_max");
  if (cfg.attempts_max == 0) return bad("attempts_max", "must be positive");
  if (cfg.envelope_bytes_max < 512) return bad("envelope_bytes_max", "must be at least 512");
  if (cfg.command_chars_max == 0) return bad("command_chars_max", "must be positive");
  if (cfg.outbox_entries_max == 0) return bad("outbox_entries_max", "must be positive");
  if (cfg.outbox_bytes_max < cfg.envelope_bytes_max)
    return bad("outbox_bytes_max", "must hold at least one envelope");
  if (cfg.dedup_entries_max == 0) return bad("dedup_entries_max", "must be positive");
  if (cfg.dedup_bytes_max < cfg.envelope_bytes_max)
    return bad("dedup_bytes_max", "must hold at least one envelope");
  if (cfg.twins_per_agent_max == 0) return bad("twins_per_agent_max", "must be positive");
  if (cfg.directory_entries_max == 0) return bad("directory_entries_max", "must be positive");
  return {};
}

machine::machine(config cfg, uint64_t rng_seed) : config_(cfg), rng_(rng_seed) {
  assert(validate(config_).ok());
}

// ---- twins and directory ----------------------------------------------------------------------

status machine::host_twin(const identity& twin) {
  if (!hosts(twin.public_key) && twins_.size() >= config_.twins_per_agent_max)
    return error{errc::too_large, "agent already hosts " + std::to_string(twins_.size()) +
                                      " twins (twins_per_agent_max)"};
  twins_.insert_or_assign(twin.public_key, twin);
  directory_.erase(twin.public_key);
  return {};
}

void machine::unhost_twin(const node_id& twin) { twins_.erase(twin); }

void machine::register_twin_location(int64_t now_us, const node_id& twin,
                                     const node_id& agent_node, effects& out) {
  if (hosts(twin) || agent_node.is_zero()) return;
  if (directory_.count(twin) == 0 && directory_.size() >= config_.directory_entries_max) {
    // A cache: make room by forgetting the oldest registration (O(n), only when full).
    auto oldest = std::min_element(directory_.begin(), directory_.end(), [](auto& a, auto& b) {
      return a.second.registered_us < b.second.registered_us;
    });
    directory_.erase(oldest);
  }
  directory_.insert_or_assign(twin, location{agent_node, now_us});
  for (auto& [key, entry] : outbox_) {
    auto kind = static_cast<envelope_kind>(entry.message.kind);
    if (kind != envelope_kind::request || entry.acknowledged ||
        twin_from(entry.message.destination) != twin)
      continue;
    bool waiting = !entry.routed;
    entry.to_node = agent_node;
    entry.routed = true;
    if (waiting) transmit(now_us, key, entry, out);
  }
  drain_loopback(now_us, out);
}

void machine::forget_twin_location(const node_id& twin) { directory_.erase(twin); }

std::optional<node_id> machine::route_to(const node_id& twin) const {
  if (hosts(twin)) return config_.self;
  auto it = directory_.find(twin);
  if (it == directory_.end()) return std::nullopt;
  return it->second.agent;
}

// ---- restore --------------------------------------------------------------------------------

void machine::restore(int64_t now_us, restored_state state, effects& out) {
  const int64_t now_ms = to_ms(now_us);
  for (auto& record : state.dedup) {
    if (record.forget_at_ms <= now_ms) {
      out.persist.push_back(store_op::erase(store_op::action::erase_dedup, record.key));
      continue;
    }
    dedup_entry entry;
    entry.state = record.state;
    entry.forget_at_ms = record.forget_at_ms;
    entry.reply_node = record.reply_node;
    entry.request = std::move(record.request);
    entry.reply = std::move(record.reply);
    insert_dedup(record.key, std::move(entry));
    const auto& inserted = dedup_.at(record.key);
    if (inserted.state != dedup_state::accepted || !inserted.request) continue;
    node_id twin = twin_from(inserted.request->destination);
    if (!hosts(twin)) continue;
    out.deliveries.push_back({twin, *inserted.request, true});
    out.events.push_back(
        {event_kind::redelivered, inserted.reply_node, record.key, status_code::ok, {}});
  }
  for (auto& record : state.outbox) {
    if (!well_formed(record.message)) continue;
    message_key key = key_of(record.message);
    outbox_entry entry;
    entry.expires_ms = expires_at_ms(record.message);
    entry.to_node = record.to_node;
    entry.routed = !record.to_node.is_zero();
    entry.bytes = encoded_size(record.message);
    entry.message = std::move(record.message);
    if (entry.expires_ms <= now_ms) {
      out.persist.push_back(store_op::erase(store_op::action::erase_outbox, key));
      out.outcomes.push_back({key.twin, key.uid, static_cast<envelope_kind>(entry.message.kind),
                              status_code::expired, "expired while the agent was down", {}});
      continue;
    }
    outbox_bytes_ += entry.bytes;
    auto [it, inserted] = outbox_.emplace(key, std::move(entry));
    if (!inserted) continue;
    transmit(now_us, key, it->second, out);
  }
  drain_loopback(now_us, out);
}

// ---- sending --------------------------------------------------------------------------------

result<message_uid> machine::send(int64_t now_us, const request& r, effects& out) {
  auto twin = twins_.find(r.source);
  if (twin == twins_.end())
    return error{errc::not_found, "source twin " + r.source.short_name() + " is not hosted here"};
  if (r.command.empty()) return error{errc::invalid_argument, "empty command"};
  if (r.command.size() > config_.command_chars_max)
    return error{errc::too_large, "command of " + std::to_string(r.command.size()) +
                                      " chars exceeds " +
                                      std::to_string(config_.command_chars_max)};
  if (outbox_.size() >= config_.outbox_entries_max)
    return error{errc::unavailable, "outbox full (outbox_entries_max)"};
  twin_envelope env;
  env.uid = to_bytes(new_uid(now_us));
  env.kind = static_cast<uint8_t>(envelope_kind::request);
  env.created_ms = static_cast<uint64_t>(to_ms(now_us));
  env.expiry_s = r.expiry_s == 0 ? config_.expiry_s_default
                                 : std::min(r.expiry_s, config_.expiry_s_max);
  env.destination = to_bytes(r.destination);
  env.command = r.command;
  env.data = r.data;
  sign_envelope(env, twin->second);
  size_t size = encoded_size(env);
  if (size > config_.envelope_bytes_max)
    return error{errc::too_large, "envelope of " + std::to_string(size) + " bytes exceeds " +
                                      std::to_string(config_.envelope_bytes_max)};
  if (outbox_bytes_ + size > config_.outbox_bytes_max)
    return error{errc::unavailable, "outbox full (outbox_bytes_max)"};
  message_key key = key_of(env);
  outbox_entry entry;
  entry.expires_ms = expires_at_ms(env);
  entry.bytes = size;
  entry.message = std::move(env);
  if (auto route = route_to(r.destination)) {
    entry.to_node = *route;
    entry.routed = true;
  }
  enqueue(now_us, key, std::move(entry), out);
  drain_loopback(now_us, out);
  return key.uid;
}

status machine::twin_reply(int64_t now_us, const message_key& request_key, status_code code,
                           std::string reason, bytes data, effects& out) {
  auto it = dedup_.find(request_key);
  if (it == dedup_.end() || (it->second.state == dedup_state::accepted && !it->second.request))
    return error{errc::not_found, "no request awaiting a reply under this key"};
  auto& entry = it->second;
  if (entry.state != dedup_state::accepted)
    return error{errc::already_exists, "request already answered"};
  if (code != status_code::ok && code != status_code::command_failed)
    return error{errc::invalid_argument, "a reply's code is ok or command_failed"};
  const twin_envelope& req = *entry.request;
  auto twin = twins_.find(twin_from(req.destination));
  if (twin == twins_.end()) return error{errc::not_found, "destination twin no longer hosted"};
  const int64_t now_ms = to_ms(now_us);
  const int64_t request_expires_ms = expires_at_ms(req);
  if (request_expires_ms <= now_ms) return error{errc::timeout, "request expired"};
  if (reason.size() > config_.reason_chars_max)
    return error{errc::too_large, "reason exceeds reason_chars_max"};
  if (outbox_.size() >= config_.outbox_entries_max)
    return error{errc::unavailable, "outbox full (outbox_entries_max)"};

  twin_envelope reply;
  reply.uid = to_bytes(new_uid(now_us));
  reply.kind = static_cast<uint8_t>(envelope_kind::reply);
  reply.created_ms = static_cast<uint64_t>(now_ms);
  // The reply lives as long as the request: nobody waits for it after that.
  int64_t remaining_s = (request_expires_ms - now_ms + 999) / 1000;
  reply.expiry_s = static_cast<uint32_t>(
      std::clamp<int64_t>(remaining_s, 1, config_.expiry_s_max));
  reply.destination = req.source;
  reply.command = req.command;
  reply.data = std::move(data);
  reply.reply_to = req.uid;
  reply.status = static_cast<uint8_t>(code);
  reply.reason = std::move(reason);
  sign_envelope(reply, twin->second);
  size_t size = encoded_size(reply);
  if (size > config_.envelope_bytes_max)
    return error{errc::too_large, "reply of " + std::to_string(size) + " bytes exceeds " +
                                      std::to_string(config_.envelope_bytes_max)};
  if (outbox_bytes_ + size > config_.outbox_bytes_max)
    return error{errc::unavailable, "outbox full (outbox_bytes_max)"};

  // The dedup record now caches the reply instead of the request. Both changes are persisted
  // with the outbox entry, before the reply is sent.
  dedup_bytes_ -= entry.bytes;
  entry.state = dedup_state::replied;
  entry.request.reset();
  entry.reply = reply;
  entry.bytes = size;
  dedup_bytes_ += entry.bytes;
  out.persist.push_back(store_op::put(record_of(request_key, entry)));

  outbox_entry sending;
  sending.to_node = entry.reply_node;
  sending.routed = true;
  sending.expires_ms = expires_at_ms(reply);
  sending.bytes = size;
  message_key reply_key = key_of(reply);
  sending.message = std::move(reply);
  enqueue(now_us, reply_key, std::move(sending), out);
  drain_loopback(now_us, out);
  return {};
}

void machine::enqueue(int64_t now_us, const message_key& key, outbox_entry entry, effects& out) {
  node_id persisted_route = entry.routed ? entry.to_node : node_id{};
  out.persist.push_back(store_op::put(outbox_record{entry.message, persisted_route}));
  outbox_bytes_ += entry.bytes;
  auto [it, inserted] = outbox_.emplace(key, std::move(entry));
  assert(inserted);  // new_uid never repeats a key in the outbox
  transmit(now_us, key, it->second, out);
}

// One attempt: send (or ask for a route), count it, schedule the next.
void machine::transmit(int64_t now_us, const message_key& key, outbox_entry& entry,
                       effects& out) {
  if (!entry.routed) {
    if (auto route = route_to(twin_from(entry.message.destination))) {
      entry.to_node = *route;
      entry.routed = true;
    }
  }
  ++entry.attempts;
  entry.next_attempt_us = now_us + retry_delay_us(entry.attempts);
  if (!entry.routed) {
    node_id twin = twin_from(entry.message.destination);
    out.lookups.push_back(twin);
    out.events.push_back({event_kind::no_route, node_id{}, key, status_code::ok,
                          "no agent known for twin " + twin.short_name()});
    return;
  }
  send_wire(entry.to_node, entry.message, out);
}

// Delay before attempt `attempts + 1`: retry_delay_ms_min doubled per attempt, capped at
// retry_delay_ms_max, then scaled by a seeded factor in [0.75, 1.25] (jitter spreads retries of
// many messages that failed together).
int64_t machine::retry_delay_us(uint32_t attempts) {
  uint32_t doublings = std::min<uint32_t>(attempts == 0 ? 0 : attempts - 1, 30);
  int64_t base_ms = std::min<int64_t>(int64_t{config_.retry_delay_ms_min} << doublings,
                                      config_.retry_delay_ms_max);
  int64_t permille = 750 + static_cast<int64_t>(rng_.below(501));
  return base_ms * permille;  // ms * permille / 1000 * 1000 us
}

// 8 bytes of the creation time (big-endian µs) then 8 random bytes: unique across restarts of
// this agent as long as its clock moves forward, even if the rng is seeded the same again.
message_uid machine::new_uid(int64_t now_us) {
  for (;;) {
    message_uid uid{};
    uint64_t time = static_cast<uint64_t>(now_us);
    uint64_t random = rng_.next();
    for (int i = 0; i < 8; ++i) {
      uid[i] = static_cast<uint8_t>(time >> (56 - 8 * i));
      uid[8 + i] = static_cast<uint8_t>(random >> (56 - 8 * i));
    }
    bool taken = std::any_of(outbox_.begin(), outbox_.end(),
                             [&](const auto& entry) { return entry.first.uid == uid; });
    if (!taken) return uid;
  }
}

void machine::finish(const message_key& key, status_code code, std::string reason,
                     std::optional<twin_envelope> reply, effects& out) {
  auto it = outbox_.find(key);
  assert(it != outbox_.end());
  auto kind = static_cast<envelope_kind>(it->second.message.kind);
  outbox_bytes_ -= it->second.bytes;
  outbox_.erase(it);
  out.persist.push_back(store_op::erase(store_op::action::erase_outbox, key));
  out.outcomes.push_back({key.twin, key.uid, kind, code, std::move(reason), std::move(reply)});
}

void machine::send_wire(const node_id& to, wire_message message, effects& out) {
  if (to == config_.self) {
    loopback_.push_back(std::move(message));
    return;
  }
  out.sends.push_back({to, std::move(message)});
}

void machine::drain_loopback(int64_t now_us, effects& out) {
  // Each looped-back envelope yields at most an ack (and a cached reply), each ack nothing more:
  // this ends.
  while (!loopback_.empty()) {
    wire_message message = std::move(loopback_.front());
    loopback_.pop_front();
    on_message(now_us, config_.self, message, out);
  }
}

// ---- receiving ------------------------------------------------------------------------------

void machine::on_message(int64_t now_us, const node_id& from, const wire_message& message,
                         effects& out) {
  if (auto* env = std::get_if<twin_envelope>(&message))
    receive_envelope(now_us, from, *env, out);
  else if (auto* ack = std::get_if<envelope_ack>(&message))
    receive_ack(from, *ack, out);
  if (from != config_.self) drain_loopback(now_us, out);
}

// The first reason to refuse `env`, cheapest checks first; nullopt if it is acceptable.
std::optional<std::pair<status_code, std::string>> machine::check_envelope(
    int64_t now_us, const twin_envelope& env) {
  using refusal = std::pair<status_code, std::string>;
  const int64_t now_ms = to_ms(now_us);
  size_t size = encoded_size(env);
  if (size > config_.envelope_bytes_max)
    return refusal{status_code::too_large, "envelope of " + std::to_string(size) +
                                               " bytes exceeds " +
                                               std::to_string(config_.envelope_bytes_max)};
  if (!well_formed(env))
    return refusal{status_code::malformed, "wrong field sizes, version or kind"};
  if (env.command.empty() || env.command.size() > config_.command_chars_max ||
      env.reason.size() > config_.reason_chars_max)
    return refusal{status_code::malformed, "command or reason length out of bounds"};
  if (env.expiry_s == 0 || env.expiry_s > config_.expiry_s_max)
    return refusal{status_code::malformed, "expiry_s " + std::to_string(env.expiry_s) +
                                               " not in 1 .. " +
                                               std::to_string(config_.expiry_s_max)};
  if (env.created_ms > static_cast<uint64_t>(now_ms) + config_.clock_skew_ms_max)
    return refusal{status_code::malformed, "created in the future beyond clock_skew_ms_max"};
  if (!verify_envelope(env))
    return refusal{status_code::bad_signature, "signature does not verify for the source twin"};
  if (expires_at_ms(env) <= now_ms)
    return refusal{status_code::expired, "expired " + std::to_string(now_ms - expires_at_ms(env)) +
                                             " ms ago"};
  if (!hosts(twin_from(env.destination)))
    return refusal{status_code::unknown_twin, "twin " + twin_from(env.destination).short_name() +
                                                  " is not hosted by this agent"};
  return std::nullopt;
}

void machine::receive_envelope(int64_t now_us, const node_id& from, const twin_envelope& env,
                               effects& out) {
  auto ack_to_sender = [&](status_code code, std::string reason) {
    envelope_ack ack;
    // Echo the key only if it has its proper shape (a hostile sender gets nothing big back).
    if (env.uid.size() == uid_bytes && env.source.size() == twin_key_bytes) {
      ack.uid = env.uid;
      ack.source = env.source;
    }
    ack.status = static_cast<uint8_t>(code);
    ack.reason = std::move(reason);
    send_wire(from, std::move(ack), out);
  };
  if (auto refusal = check_envelope(now_us, env)) {
    message_key key = well_formed(env) ? key_of(env) : message_key{};
    out.events.push_back({event_kind::refused, from, key, refusal->first, refusal->second});
    ack_to_sender(refusal->first, std::move(refusal->second));
    return;
  }
  message_key key = key_of(env);
  auto seen = dedup_.find(key);
  if (seen != dedup_.end()) {
    out.events.push_back({event_kind::duplicate, from, key, status_code::ok,
                          dedup_state_name(seen->second.state)});
    ack_to_sender(status_code::ok, {});
    if (seen->second.state == dedup_state::replied && seen->second.reply)
      send_wire(from, *seen->second.reply, out);  // the ack or reply was lost: send it again
    return;
  }
  size_t size = encoded_size(env);
  if (dedup_.size() >= config_.dedup_entries_max || dedup_bytes_ + size > config_.dedup_bytes_max) {
    out.events.push_back({event_kind::refused, from, key, status_code::overloaded,
                          "dedup table full"});
    ack_to_sender(status_code::overloaded, "dedup table full, retry later");
    return;
  }
  if (static_cast<envelope_kind>(env.kind) == envelope_kind::request)
    accept_request(from, key, env, out);
  else
    accept_reply(from, key, env, out);
  ack_to_sender(status_code::ok, {});  // after the persist ops above, by effect order
}

// A new request for a local twin: remember it (persisted first), acknowledge, hand it over.
void machine::accept_request(const node_id& from, const message_key& key, const twin_envelope& env,
                             effects& out) {
  dedup_entry entry;
  entry.state = dedup_state::accepted;
  entry.forget_at_ms = expires_at_ms(env) + config_.dedup_slack_ms;
  entry.reply_node = from;
  entry.request = env;
  entry.bytes = encoded_size(env);
  insert_dedup(key, std::move(entry));
  out.persist.push_back(store_op::put(record_of(key, dedup_.at(key))));
  out.deliveries.push_back({twin_from(env.destination), env, false});
}

// A new reply for a local twin: remember its uid, complete the request it answers.
void machine::accept_reply(const node_id& from, const message_key& key, const twin_envelope& env,
                           effects& out) {
  dedup_entry entry;
  entry.state = dedup_state::done;
  entry.forget_at_ms = expires_at_ms(env) + config_.dedup_slack_ms;
  entry.reply_node = from;
  insert_dedup(key, std::move(entry));
  out.persist.push_back(store_op::put(record_of(key, dedup_.at(key))));
  message_key request_key{twin_from(env.destination), uid_from(env.reply_to)};
  auto it = outbox_.find(request_key);
  bool matches = it != outbox_.end() &&
                 static_cast<envelope_kind>(it->second.message.kind) == envelope_kind::request &&
                 it->second.message.destination == env.source;
  if (!matches) {
    out.events.push_back({event_kind::unmatched_reply, from, key, status_code::ok,
                          "no outstanding request for this reply"});
    return;
  }
  auto code = static_cast<status_code>(env.status);
  finish(request_key, code, env.reason, env, out);
}

void machine::receive_ack(const node_id& from, const envelope_ack& ack, effects& out) {
  if (ack.uid.size() != uid_bytes || ack.source.size() != twin_key_bytes ||
      ack.status > static_cast<uint8_t>(status_code::command_failed)) {
    out.events.push_back({event_kind::ack_ignored, from, {}, status_code::malformed,
                          "malformed ack"});
    return;
  }
  message_key key{twin_from(ack.source), uid_from(ack.uid)};
  auto it = outbox_.find(key);
  if (it == outbox_.end() || !it->second.routed || it->second.to_node != from) {
    out.events.push_back({event_kind::ack_ignored, from, key, static_cast<status_code>(ack.status),
                          "no such message sent to this agent"});
    return;
  }
  auto& entry = it->second;
  auto code = static_cast<status_code>(ack.status);
  if (code == status_code::overloaded) return;  // keep retrying on schedule
  if (code != status_code::ok) {
    finish(key, code, ack.reason.empty() ? std::string(status_code_name(code)) : ack.reason,
           std::nullopt, out);
    return;
  }
  if (static_cast<envelope_kind>(entry.message.kind) == envelope_kind::reply) {
    finish(key, status_code::ok, {}, std::nullopt, out);  // a reply needs no answer
    return;
  }
  entry.acknowledged = true;  // stop retrying; the reply (or expiry) completes it
}

// ---- time -----------------------------------------------------------------------------------

void machine::tick(int64_t now_us, effects& out) {
  const int64_t now_ms = to_ms(now_us);
  std::vector<std::pair<message_key, std::pair<status_code, std::string>>> failed;
  for (auto& [key, entry] : outbox_) {
    if (entry.expires_ms <= now_ms) {
      failed.push_back({key, {status_code::expired, entry.acknowledged
                                                        ? "no reply before expiry"
                                                        : "expired before acknowledgement"}});
      continue;
    }
    if (entry.acknowledged || entry.next_attempt_us > now_us) continue;
    if (entry.attempts >= config_.attempts_max) {
      std::string why = entry.routed ? "no acknowledgement after " +
                                           std::to_string(entry.attempts) + " attempts"
                                     : "no route to the destination twin after " +
                                           std::to_string(entry.attempts) + " attempts";
      failed.push_back({key, {status_code::undeliverable, std::move(why)}});
      continue;
    }
    transmit(now_us, key, entry, out);
  }
  for (auto& [key, why] : failed) finish(key, why.first, std::move(why.second), std::nullopt, out);
  sweep_dedup(now_ms, out);
  drain_loopback(now_us, out);
}

// Forgetting a record is safe once its forget time has passed: any copy of that envelope is then
// past its own expiry, and check_envelope refuses it as expired before looking at dedup_.
void machine::sweep_dedup(int64_t now_ms, effects& out) {
  while (!dedup_by_forget_.empty() && dedup_by_forget_.begin()->first <= now_ms) {
    message_key key = dedup_by_forget_.begin()->second;
    dedup_by_forget_.erase(dedup_by_forget_.begin());
    auto it = dedup_.find(key);
    if (it == dedup_.end()) continue;
    dedup_bytes_ -= it->second.bytes;
    dedup_.erase(it);
    out.persist.push_back(store_op::erase(store_op::action::erase_dedup, key));
    out.events.push_back({event_kind::forgotten, node_id{}, key, status_code::ok, {}});
  }
}

void machine::insert_dedup(const message_key& key, dedup_entry entry) {
  if (entry.bytes == 0) {
    if (entry.request) entry.bytes += encoded_size(*entry.request);
    if (entry.reply) entry.bytes += encoded_size(*entry.reply);
  }
  dedup_by_forget_.insert({entry.forget_at_ms, key});
  dedup_bytes_ += entry.bytes;
  auto [it, inserted] = dedup_.insert_or_assign(key, std::move(entry));
  (void)it;
  assert(inserted);
}

dedup_record machine::record_of(const message_key& key, const dedup_entry& entry) const {
  return {key, entry.state, entry.forget_at_ms, entry.reply_node, entry.request, entry.reply};
}

}  // namespace cmesh::rmb
