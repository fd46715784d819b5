#include "actors/events/events_machine.hpp"

#include <algorithm>
#include <cassert>
#include <string_view>

namespace cmesh::events {

namespace {

template <class T>
result<wire_message> decode_as(const envelope& env) {
  auto decoded = decode_payload<T>(env);
  if (!decoded) return decoded.err();
  return wire_message{std::move(decoded).value()};
}

// What a node advertises for a line of `count` local subscriptions: plain subscribers only need
// to be present (1), queue members are weights (their count).
uint32_t advertised(const std::string& queue_group, uint32_t count) {
  if (queue_group.empty()) return count > 0 ? 1 : 0;
  return count;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// A node key as 64 lower-case hex characters (the form node_id::hex() writes).
std::optional<node_id> parse_node_hex(std::string_view hex) {
  node_id id;
  if (hex.size() != id.key.size() * 2) return std::nullopt;
  for (size_t i = 0; i < id.key.size(); ++i) {
    const int high = hex_digit(hex[2 * i]);
    const int low = hex_digit(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    id.key[i] = static_cast<uint8_t>(high * 16 + low);
  }
  return id;
}

constexpr std::string_view inbox_root = "_INBOX.";

// Bytes one interest line may take on the wire: a full-length pattern and group and msgpack
// framing. Used to check that lines_per_message_max lines fit an envelope.
constexpr size_t line_bytes_max = subject_chars_max + queue_group_chars_max + 16;

}  // namespace

// ---- free functions ------------------------------------------------------------------------------

status validate(const config& cfg) {
  auto positive = [](auto v) { return v > 0; };
  const std::pair<const char*, bool> checks[] = {
      {"subscriptions_max", positive(cfg.subscriptions_max)},
      {"peers_max", positive(cfg.peers_max)},
      {"remote_lines_per_peer_max", cfg.remote_lines_per_peer_max >= cfg.subscriptions_max},
      {"remote_lines_max", cfg.remote_lines_max >= cfg.remote_lines_per_peer_max},
      {"lines_per_message_max",
       positive(cfg.lines_per_message_max) &&
           cfg.lines_per_message_max <= limits::decode_elements_max &&
           cfg.lines_per_message_max * line_bytes_max <= limits::envelope_bytes_max / 2},
      {"deltas_buffered_max", positive(cfg.deltas_buffered_max)},
      {"payload_bytes_max", positive(cfg.payload_bytes_max) &&
                                cfg.payload_bytes_max + 4096 <= limits::envelope_bytes_max},
      {"pending_messages_default", positive(cfg.pending_messages_default) &&
                                       cfg.pending_messages_default <= cfg.pending_messages_max},
      {"pending_bytes_default", positive(cfg.pending_bytes_default) &&
                                    cfg.pending_bytes_default <= cfg.pending_bytes_max},
      {"slow_consumer_report_interval_us", positive(cfg.slow_consumer_report_interval_us)},
      {"requests_pending_max", positive(cfg.requests_pending_max)},
      {"request_timeout_us_max", positive(cfg.request_timeout_us_max)},
      {"digest_interval_us", positive(cfg.digest_interval_us)},
      {"interest_lease_us", cfg.interest_lease_us > cfg.digest_interval_us},
      {"sync_request_interval_us", positive(cfg.sync_request_interval_us)},
  };
  for (const auto& [name, ok] : checks)
    if (!ok) return error{errc::invalid_argument, std::string("events config: ") + name +
                                                      " is out of range"};
  return ok_status();
}

size_t sync_parts_max(const config& cfg) {
  return (cfg.remote_lines_per_peer_max + cfg.lines_per_message_max - 1) /
         cfg.lines_per_message_max;
}

const char* request_outcome_name(request_outcome outcome) {
  switch (outcome) {
    case request_outcome::reply: return "reply";
    case request_outcome::no_responders: return "no_responders";
    case request_outcome::timeout: return "timeout";
  }
  return "unknown";
}

const char* event_name(event_kind kind) {
  switch (kind) {
    case event_kind::sync_requested: return "sync_requested";
    case event_kind::sync_sent: return "sync_sent";
    case event_kind::sync_applied: return "sync_applied";
    case event_kind::interest_expired: return "interest_expired";
    case event_kind::interest_refused: return "interest_refused";
    case event_kind::queue_group_miss: return "queue_group_miss";
    case event_kind::late_reply: return "late_reply";
  }
  return "unknown";
}

result<wire_message> decode_wire(const envelope& env) {
  if (env.service != events_service)
    return error{errc::unknown_type, "service " + std::to_string(env.service) + " is not events"};
  switch (env.type) {
    case interest_delta::type_id: return decode_as<interest_delta>(env);
    case interest_sync::type_id: return decode_as<interest_sync>(env);
    case interest_sync_request::type_id: return decode_as<interest_sync_request>(env);
    case interest_digest::type_id: return decode_as<interest_digest>(env);
    case routed_message::type_id: return decode_as<routed_message>(env);
  }
  return error{errc::unknown_type, "events message type " + std::to_string(env.type)};
}

// ---- machine: local clients -----------------------------------------------------------------------

machine::machine(config cfg, node_id self, rng random)
    : config_(cfg), self_(self), rng_(random), inbox_prefix_(std::string(inbox_root) +
                                                             self.hex() + ".") {
  assert(validate(config_).ok());
  while (epoch_ == 0) epoch_ = rng_.next();
  // A random start keeps a restarted node's inboxes apart from its previous incarnation's, whose
  // replies may still be in flight.
  next_request_id_ = 1 + rng_.below(uint64_t{1} << 62);
}

status machine::subscribe(uint64_t sid, const std::string& pattern,
                          const std::string& queue_group, pending_limits limits, effects& out) {
  if (auto e = validate_pattern(pattern)) return e;
  if (!queue_group.empty())
    if (auto e = validate_queue_group(queue_group)) return e;
  if (limits.messages > config_.pending_messages_max || limits.bytes > config_.pending_bytes_max)
    return error{errc::invalid_argument, "events: pending limits above pending_messages_max or "
                                         "pending_bytes_max"};
  if (subscriptions_.count(sid) != 0)
    return error{errc::already_exists, "events: sid " + std::to_string(sid) + " in use"};
  if (subscriptions_.size() >= config_.subscriptions_max)
    return error{errc::unavailable, "events: subscriptions_max reached"};
  subscription sub;
  sub.pattern = pattern;
  sub.queue_group = queue_group;
  sub.pending_messages_max = limits.messages ? limits.messages : config_.pending_messages_default;
  sub.pending_bytes_max = limits.bytes ? limits.bytes : config_.pending_bytes_default;
  subscriptions_.emplace(sid, std::move(sub));
  local_index_.insert(pattern, sid);
  change_local_interest(line_key{pattern, queue_group}, +1, out);
  return ok_status();
}

status machine::unsubscribe(uint64_t sid, effects& out) {
  auto it = subscriptions_.find(sid);
  if (it == subscriptions_.end())
    return error{errc::not_found, "events: no subscription " + std::to_string(sid)};
  auto& sub = it->second;
  // The time of a final report does not matter: the subscription is gone right after.
  if (sub.dropped_unreported > 0) report(sid, sub, sub.last_report_us.value_or(0), true, out);
  if (sub.report_due_us) reports_due_.erase({*sub.report_due_us, sid});
  local_index_.erase(sub.pattern, sid);
  const line_key key{sub.pattern, sub.queue_group};
  subscriptions_.erase(it);
  change_local_interest(key, -1, out);
  return ok_status();
}

status machine::delivered(uint64_t sid, uint32_t messages, uint64_t bytes) {
  auto it = subscriptions_.find(sid);
  if (it == subscriptions_.end())
    return error{errc::not_found, "events: no subscription " + std::to_string(sid)};
  auto& sub = it->second;
  const bool over = messages > sub.pending_messages || bytes > sub.pending_bytes;
  sub.pending_messages -= std::min(messages, sub.pending_messages);
  sub.pending_bytes -= std::min(bytes, sub.pending_bytes);
  if (over)
    return error{errc::invalid_argument,
                 "events: sid " + std::to_string(sid) + " acknowledged more than was pending"};
  return ok_status();
}

status machine::publish(const std::string& subject, const std::string& reply_to, bytes payload,
                        int64_t now_us, effects& out) {
  if (auto e = validate_subject(subject)) return e;
  if (!reply_to.empty())
    if (auto e = validate_subject(reply_to)) return e;
  if (payload.size() > config_.payload_bytes_max)
    return error{errc::too_large, "events: payload of " + std::to_string(payload.size()) +
                                      " bytes exceeds " + std::to_string(config_.payload_bytes_max)};
  ++stats_.published;
  // Nobody listens anywhere (no subscription here, no interest from a peer) and no inbox is
  // addressed: nothing to route, so a subject without subscribers costs a check, not a match.
  if (local_index_.empty() && remote_index_.empty() && subject.compare(0, inbox_root.size(), inbox_root) != 0) {
    ++stats_.unmatched;
    return ok_status();
  }
  route(subject, reply_to, std::make_shared<const bytes>(std::move(payload)), now_us, out);
  return ok_status();
}

status machine::publish_view(std::string_view subject, const uint8_t* payload, size_t payload_size,
                             int64_t now_us, effects& out) {
  if (auto e = validate_subject(subject)) return e;
  if (payload_size > config_.payload_bytes_max)
    return error{errc::too_large, "events: payload of " + std::to_string(payload_size) +
                                      " bytes exceeds " + std::to_string(config_.payload_bytes_max)};
  ++stats_.published;
  if (local_index_.empty() && remote_index_.empty() && subject.compare(0, inbox_root.size(), inbox_root) != 0) {
    ++stats_.unmatched;
    return ok_status();
  }
  route(std::string(subject), std::string(), std::make_shared<const bytes>(payload, payload + payload_size), now_us,
        out);
  return ok_status();
}

result<uint64_t> machine::request(const std::string& subject, bytes payload, int64_t timeout_us,
                                  int64_t now_us, effects& out) {
  if (auto e = validate_subject(subject)) return e;
  if (timeout_us <= 0 || timeout_us > config_.request_timeout_us_max)
    return error{errc::invalid_argument, "events: request timeout out of range"};
  if (payload.size() > config_.payload_bytes_max)
    return error{errc::too_large, "events: payload of " + std::to_string(payload.size()) +
                                      " bytes exceeds " + std::to_string(config_.payload_bytes_max)};
  if (requests_.size() >= config_.requests_pending_max)
    return error{errc::unavailable, "events: requests_pending_max requests waiting"};
  const uint64_t id = next_request_id_++;
  ++stats_.requests_started;
  ++stats_.published;
  if (!has_interest(subject)) {
    ++stats_.unmatched;
    ++stats_.requests_no_responders;
    out.requests_done.push_back({id, request_outcome::no_responders, nullptr, {}});
    return id;
  }
  requests_.emplace(id, pending_request{now_us + timeout_us});
  request_deadlines_.insert({now_us + timeout_us, id});
  route(subject, inbox_prefix_ + std::to_string(id),
        std::make_shared<const bytes>(std::move(payload)), now_us, out);
  return id;
}

bool machine::cancel_request(uint64_t request_id) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return false;
  request_deadlines_.erase({it->second.deadline_us, request_id});
  requests_.erase(it);
  return true;
}

// ---- machine: peers -------------------------------------------------------------------------------

status machine::receive(const node_id& from, const wire_message& message, int64_t now_us,
                        effects& out) {
  auto bad = [&](const std::string& what) -> status {
    ++stats_.malformed;
    return error{errc::malformed, "events: " + what};
  };
  if (from == self_) return bad("message from this node itself");

  if (const auto* m = std::get_if<routed_message>(&message)) {
    if (validate_subject(m->subject)) return bad("routed_message subject invalid");
    if (!m->reply_to.empty() && validate_subject(m->reply_to))
      return bad("routed_message reply subject invalid");
    if (m->payload.size() > config_.payload_bytes_max) return bad("routed_message too large");
    if (m->queue_groups.size() > config_.subscriptions_max)
      return bad("routed_message names too many queue groups");
    for (size_t i = 0; i < m->queue_groups.size(); ++i) {
      if (validate_queue_group(m->queue_groups[i])) return bad("routed_message group invalid");
      if (i > 0 && !(m->queue_groups[i - 1] < m->queue_groups[i]))
        return bad("routed_message groups not ascending and distinct");
    }
    if (auto it = remotes_.find(from); it != remotes_.end())
      it->second.last_heard_us = std::max(it->second.last_heard_us, now_us);
    handle_routed(from, *m, now_us, out);
    return ok_status();
  }

  if (const auto* d = std::get_if<interest_delta>(&message)) {
    if (d->epoch == 0 || d->version == 0) return bad("interest_delta epoch or version is 0");
    if (auto e = check_lines(d->changes, false)) return bad("interest_delta: " + e.message);
  } else if (const auto* s = std::get_if<interest_sync>(&message)) {
    if (s->epoch == 0) return bad("interest_sync epoch is 0");
    if (s->parts == 0 || s->part >= s->parts || s->parts > sync_parts_max(config_))
      return bad("interest_sync part " + std::to_string(s->part) + " of " +
                 std::to_string(s->parts));
    if (auto e = check_lines(s->entries, true)) return bad("interest_sync: " + e.message);
  } else if (const auto* g = std::get_if<interest_digest>(&message)) {
    if (g->epoch == 0) return bad("interest_digest epoch is 0");
  }
  remote_peer* peer = remote_for(from, now_us);
  if (peer == nullptr) {
    ++stats_.peers_refused;
    return error{errc::unavailable, "events: peers_max peers tracked"};
  }
  peer->last_heard_us = std::max(peer->last_heard_us, now_us);
  if (const auto* d = std::get_if<interest_delta>(&message)) {
    handle(from, *peer, *d, now_us, out);
  } else if (const auto* s = std::get_if<interest_sync>(&message)) {
    handle(from, *peer, *s, now_us, out);
  } else if (const auto* g = std::get_if<interest_digest>(&message)) {
    handle(from, *peer, *g, now_us, out);
  } else if (std::holds_alternative<interest_sync_request>(message)) {
    if (peer->last_sync_sent_us &&
        now_us - *peer->last_sync_sent_us < config_.sync_request_interval_us / 2) {
      ++stats_.sync_requests_refused;  // the table we just sent answers it
    } else {
      send_sync(from, peer, now_us, out);
    }
  }
  return ok_status();
}

void machine::peer_up(const node_id& peer, int64_t now_us, effects& out) {
  if (peer == self_) return;
  up_.insert(peer);
  if (!next_digest_us_) next_digest_us_ = now_us + config_.digest_interval_us;
  remote_peer* state = remote_for(peer, now_us);
  if (state != nullptr) state->last_heard_us = std::max(state->last_heard_us, now_us);
  send_sync(peer, state, now_us, out);
}

void machine::peer_down(const node_id& peer, effects&) {
  up_.erase(peer);
  auto it = remotes_.find(peer);
  if (it == remotes_.end()) return;
  drop_lines(it->second);
  remotes_.erase(it);
}

// ---- machine: time ------------------------------------------------------------------------------

void machine::tick(int64_t now_us, effects& out) {
  while (!request_deadlines_.empty() && request_deadlines_.begin()->first <= now_us) {
    const uint64_t id = request_deadlines_.begin()->second;
    request_deadlines_.erase(request_deadlines_.begin());
    requests_.erase(id);
    ++stats_.requests_timed_out;
    out.requests_done.push_back({id, request_outcome::timeout, nullptr, {}});
  }
  while (!reports_due_.empty() && reports_due_.begin()->first <= now_us) {
    const uint64_t sid = reports_due_.begin()->second;
    reports_due_.erase(reports_due_.begin());
    auto& sub = subscriptions_.at(sid);
    sub.report_due_us.reset();
    if (sub.dropped_unreported > 0) report(sid, sub, now_us, false, out);
  }
  if (!next_digest_us_) {
    next_digest_us_ = now_us + config_.digest_interval_us;
  } else if (now_us >= *next_digest_us_) {
    for (const auto& peer : up_) {
      ++stats_.digests_sent;
      send(peer, interest_digest{epoch_, version_}, out);
    }
    next_digest_us_ = now_us + config_.digest_interval_us;
  }
  std::vector<node_id> expired;
  for (const auto& [id, peer] : remotes_)
    if (peer.last_heard_us + config_.interest_lease_us <= now_us) expired.push_back(id);
  for (const auto& id : expired) {
    auto& peer = remotes_.at(id);
    const auto lines = static_cast<int64_t>(peer.lines.size());
    drop_lines(peer);
    remotes_.erase(id);
    ++stats_.leases_expired;
    out.events.push_back({event_kind::interest_expired, id, lines});
  }
}

std::optional<int64_t> machine::next_deadline() const {
  std::optional<int64_t> earliest;
  auto consider = [&](int64_t at) {
    if (!earliest || at < *earliest) earliest = at;
  };
  if (!request_deadlines_.empty()) consider(request_deadlines_.begin()->first);
  if (!reports_due_.empty()) consider(reports_due_.begin()->first);
  if (next_digest_us_ && !up_.empty()) consider(*next_digest_us_);
  for (const auto& [id, peer] : remotes_) consider(peer.last_heard_us + config_.interest_lease_us);
  return earliest;
}

// ---- machine: observers ---------------------------------------------------------------------------

size_t machine::remote_line_count(const node_id& peer) const {
  auto it = remotes_.find(peer);
  return it == remotes_.end() ? 0 : it->second.lines.size();
}

bool machine::knows_peer(const node_id& peer) const {
  auto it = remotes_.find(peer);
  return it != remotes_.end() && it->second.known;
}

std::vector<interest_entry> machine::advertised_interest() const {
  std::vector<interest_entry> lines;
  lines.reserve(local_lines_.size());
  for (const auto& [key, count] : local_lines_)
    lines.push_back({key.pattern, key.queue_group, advertised(key.queue_group, count)});
  return lines;
}

std::vector<interest_entry> machine::remote_interest(const node_id& peer) const {
  std::vector<interest_entry> lines;
  auto it = remotes_.find(peer);
  if (it == remotes_.end()) return lines;
  for (const auto& [key, handle] : it->second.lines)
    lines.push_back({key.pattern, key.queue_group, bindings_.at(handle).count});
  return lines;
}

std::pair<uint32_t, uint64_t> machine::pending_of(uint64_t sid) const {
  auto it = subscriptions_.find(sid);
  if (it == subscriptions_.end()) return {0, 0};
  return {it->second.pending_messages, it->second.pending_bytes};
}

bool machine::has_interest(const std::string& subject) const {
  std::vector<uint64_t> found;
  local_index_.match(subject, found);
  if (!found.empty()) return true;
  remote_index_.match(subject, found);
  if (!found.empty()) return true;
  auto owner = inbox_owner(subject);
  return owner && *owner != self_;
}

// ---- machine: our interest ------------------------------------------------------------------------

// One more (+1) or one fewer (-1) local subscription on `key`. When what we advertise for the
// line changes, every peer that is up gets a delta with the new count.
void machine::change_local_interest(const line_key& key, int delta, effects& out) {
  assert(delta == 1 || delta == -1);
  uint32_t& count = local_lines_[key];
  const uint32_t before = advertised(key.queue_group, count);
  assert(delta > 0 || count > 0);
  count = delta > 0 ? count + 1 : count - 1;
  const uint32_t after = advertised(key.queue_group, count);
  if (count == 0) local_lines_.erase(key);
  if (before == after) return;
  ++version_;
  for (const auto& peer : up_) {
    ++stats_.deltas_sent;
    send(peer, interest_delta{epoch_, version_, {interest_entry{key.pattern, key.queue_group, after}}},
         out);
  }
}

// Our whole table, in parts of at most lines_per_message_max lines (one empty part if none).
void machine::send_sync(const node_id& peer, remote_peer* state, int64_t now_us, effects& out) {
  const auto lines = advertised_interest();
  const size_t per_part = config_.lines_per_message_max;
  const auto parts = static_cast<uint32_t>(std::max<size_t>(1, (lines.size() + per_part - 1) / per_part));
  for (uint32_t part = 0; part < parts; ++part) {
    interest_sync message{epoch_, version_, part, parts, {}};
    const size_t first = part * per_part;
    const size_t last = std::min(lines.size(), first + per_part);
    message.entries.assign(lines.begin() + static_cast<std::ptrdiff_t>(first),
                           lines.begin() + static_cast<std::ptrdiff_t>(last));
    send(peer, std::move(message), out);
  }
  ++stats_.syncs_sent;
  out.events.push_back({event_kind::sync_sent, peer, parts});
  if (state != nullptr) state->last_sync_sent_us = now_us;
}

// ---- machine: their interest ----------------------------------------------------------------------

machine::remote_peer* machine::remote_for(const node_id& peer, int64_t now_us) {
  auto it = remotes_.find(peer);
  if (it != remotes_.end()) return &it->second;
  if (remotes_.size() >= config_.peers_max) return nullptr;
  remote_peer fresh;
  fresh.last_heard_us = now_us;
  return &remotes_.emplace(peer, std::move(fresh)).first->second;
}

status machine::check_lines(const std::vector<interest_entry>& lines, bool in_sync) const {
  if (lines.size() > config_.lines_per_message_max)
    return error{errc::malformed, std::to_string(lines.size()) + " lines in one message"};
  for (const auto& line : lines) {
    if (validate_pattern(line.pattern)) return error{errc::malformed, "pattern invalid"};
    if (!line.queue_group.empty() && validate_queue_group(line.queue_group))
      return error{errc::malformed, "queue group invalid"};
    if (line.count > config_.subscriptions_max) return error{errc::malformed, "count too large"};
    if (in_sync && line.count == 0) return error{errc::malformed, "count 0 in a sync"};
  }
  return ok_status();
}

// A delta applies on top of exactly the version before it. Older ones are duplicates; newer ones
// wait in a bounded buffer for the gap to fill (the next digest asks for a sync if it does not);
// one from an epoch we hold no table for asks for a sync at once.
void machine::handle(const node_id& from, remote_peer& peer, const interest_delta& message,
                     int64_t now_us, effects& out) {
  if (peer.known && message.epoch == peer.epoch) {
    if (message.version <= peer.version) {
      ++stats_.deltas_duplicate;
      return;
    }
    if (message.version == peer.version + 1) {
      size_t refused = 0;
      for (const auto& line : message.changes)
        if (!apply_line(from, peer, line)) ++refused;
      if (refused > 0)
        out.events.push_back({event_kind::interest_refused, from, static_cast<int64_t>(refused)});
      peer.version = message.version;
      ++stats_.deltas_applied;
      apply_buffered(from, peer, out);
      return;
    }
  }
  if (peer.buffered.size() >= config_.deltas_buffered_max) {
    peer.buffered.clear();
    request_sync(from, peer, now_us, out);
    return;
  }
  peer.buffered.emplace(std::make_pair(message.epoch, message.version), message.changes);
  ++stats_.deltas_buffered;
  if (!peer.known || message.epoch != peer.epoch) request_sync(from, peer, now_us, out);
}

// Parts of one (epoch, version) are collected; the table is replaced when all have come. A sync
// no newer than what we hold, or older than the one being collected, is ignored.
void machine::handle(const node_id& from, remote_peer& peer, const interest_sync& message,
                     int64_t now_us, effects& out) {
  if (peer.known && message.epoch == peer.epoch && message.version <= peer.version) return;
  auto& staging = peer.staging;
  if (staging && (staging->epoch != message.epoch || staging->version != message.version ||
                  staging->received.size() != message.parts)) {
    if (staging->epoch == message.epoch && staging->version > message.version) return;
    staging.reset();
  }
  if (!staging) {
    staging = staged_sync{};
    staging->epoch = message.epoch;
    staging->version = message.version;
    staging->received.assign(message.parts, false);
  }
  if (staging->received[message.part]) return;  // a duplicate part
  staging->received[message.part] = true;
  ++staging->parts_received;
  staging->entries.insert(staging->entries.end(), message.entries.begin(), message.entries.end());
  if (staging->parts_received == staging->received.size()) commit_sync(from, peer, out);
}

// A digest ahead of what we hold (or from another epoch) means we missed something: ask.
void machine::handle(const node_id& from, remote_peer& peer, const interest_digest& message,
                     int64_t now_us, effects& out) {
  if (peer.known && message.epoch == peer.epoch && message.version <= peer.version) return;
  request_sync(from, peer, now_us, out);
}

void machine::commit_sync(const node_id& from, remote_peer& peer, effects& out) {
  staged_sync staged = std::move(*peer.staging);
  peer.staging.reset();
  drop_lines(peer);
  peer.known = true;
  peer.epoch = staged.epoch;
  peer.version = staged.version;
  size_t refused = 0;
  for (const auto& line : staged.entries)
    if (!apply_line(from, peer, line)) ++refused;
  if (refused > 0)
    out.events.push_back({event_kind::interest_refused, from, static_cast<int64_t>(refused)});
  ++stats_.syncs_applied;
  out.events.push_back({event_kind::sync_applied, from, static_cast<int64_t>(peer.lines.size())});
  std::erase_if(peer.buffered, [&](const auto& item) { return item.first.first != peer.epoch; });
  apply_buffered(from, peer, out);
}

// Applies buffered deltas that now follow on, and forgets those the table already covers.
void machine::apply_buffered(const node_id& from, remote_peer& peer, effects& out) {
  size_t refused = 0;
  while (true) {
    auto it = peer.buffered.find({peer.epoch, peer.version + 1});
    if (it == peer.buffered.end()) break;
    const auto changes = std::move(it->second);
    peer.buffered.erase(it);
    for (const auto& line : changes)
      if (!apply_line(from, peer, line)) ++refused;
    ++peer.version;
    ++stats_.deltas_applied;
  }
  if (refused > 0)
    out.events.push_back({event_kind::interest_refused, from, static_cast<int64_t>(refused)});
  std::erase_if(peer.buffered, [&](const auto& item) {
    return item.first.first == peer.epoch && item.first.second <= peer.version;
  });
}

// Sets one line of `peer_id`'s table (count 0 removes it). Returns false if a new line was
// refused over remote_lines_per_peer_max or remote_lines_max.
bool machine::apply_line(const node_id& peer_id, remote_peer& peer, const interest_entry& line) {
  line_key key{line.pattern, line.queue_group};
  auto it = peer.lines.find(key);
  if (line.count == 0) {
    if (it == peer.lines.end()) return true;
    remote_index_.erase(key.pattern, it->second);
    bindings_.erase(it->second);
    peer.lines.erase(it);
    return true;
  }
  if (it != peer.lines.end()) {
    bindings_.at(it->second).count = line.count;
    return true;
  }
  if (peer.lines.size() >= config_.remote_lines_per_peer_max ||
      bindings_.size() >= config_.remote_lines_max) {
    ++stats_.lines_refused;
    return false;
  }
  const uint64_t handle = next_handle_++;
  remote_index_.insert(key.pattern, handle);
  bindings_.emplace(handle, binding{peer_id, key, line.count});
  peer.lines.emplace(std::move(key), handle);
  return true;
}

void machine::drop_lines(remote_peer& peer) {
  for (const auto& [key, handle] : peer.lines) {
    remote_index_.erase(key.pattern, handle);
    bindings_.erase(handle);
  }
  peer.lines.clear();
}

void machine::request_sync(const node_id& peer_id, remote_peer& peer, int64_t now_us,
                           effects& out) {
  if (peer.last_sync_request_us &&
      now_us - *peer.last_sync_request_us < config_.sync_request_interval_us)
    return;
  peer.last_sync_request_us = now_us;
  ++stats_.sync_requests_sent;
  out.events.push_back({event_kind::sync_requested, peer_id, static_cast<int64_t>(peer.version)});
  send(peer_id, interest_sync_request{peer.known ? peer.epoch : 0, peer.known ? peer.version : 0},
       out);
}

// ---- machine: messages ----------------------------------------------------------------------------

// A message published here. Every matching plain subscriber here gets it. Each matching queue
// group gets one pick, weighted over its members here (1 each) and the peers with members (their
// advertised count): a pick here is delivered here, a pick of a peer is named in that peer's
// routed_message. Each peer with plain interest or a pick gets exactly one routed_message.
void machine::route(const std::string& subject, const std::string& reply_to,
                    const std::shared_ptr<const bytes>& payload, int64_t now_us, effects& out) {
  struct group_draw {
    std::vector<uint64_t> local;             // sids, ascending
    std::map<node_id, uint64_t> remote;      // peer -> weight
  };
  struct peer_plan {
    bool plain = false;
    std::vector<std::string> groups;         // ascending (filled in group order)
  };
  std::vector<uint64_t> sids;
  local_index_.match(subject, sids);
  std::vector<uint64_t> handles;
  remote_index_.match(subject, handles);

  std::vector<uint64_t> plain_local;
  std::map<std::string, group_draw> groups;
  for (auto sid : sids) {
    const auto& sub = subscriptions_.at(sid);
    if (sub.queue_group.empty())
      plain_local.push_back(sid);
    else
      groups[sub.queue_group].local.push_back(sid);
  }
  std::map<node_id, peer_plan> plans;
  for (auto handle : handles) {
    const auto& line = bindings_.at(handle);
    if (line.key.queue_group.empty())
      plans[line.peer].plain = true;
    else
      groups[line.key.queue_group].remote[line.peer] += line.count;
  }
  // Inboxes name their node: a reply goes straight there whatever interest we know of.
  if (auto owner = inbox_owner(subject); owner && *owner != self_) plans[*owner].plain = true;
  if (sids.empty() && plans.empty() && groups.empty()) ++stats_.unmatched;

  for (auto sid : plain_local) offer(sid, subject, reply_to, payload, now_us, out);
  for (const auto& [name, draw] : groups) {
    uint64_t total = draw.local.size();
    for (const auto& [peer, weight] : draw.remote) total += weight;
    assert(total > 0);
    uint64_t pick = rng_.below(total);
    if (pick < draw.local.size()) {
      offer_to_group(draw.local, static_cast<size_t>(pick), subject, reply_to, payload, now_us,
                     out);
      continue;
    }
    pick -= draw.local.size();
    for (const auto& [peer, weight] : draw.remote) {
      if (pick < weight) {
        plans[peer].groups.push_back(name);
        break;
      }
      pick -= weight;
    }
  }
  take_reply(subject, reply_to, payload, out);
  for (auto& [peer, plan] : plans) {
    if (!plan.plain && plan.groups.empty()) continue;
    ++stats_.routed_sent;
    send(peer, routed_message{subject, reply_to, *payload, std::move(plan.groups)}, out);
  }
}

// A message a peer published. Delivered here only: to every matching plain subscriber and to one
// matching member of each group the publisher picked this node for.
void machine::handle_routed(const node_id& from, const routed_message& message, int64_t now_us,
                            effects& out) {
  ++stats_.routed_received;
  const auto payload = std::make_shared<const bytes>(message.payload);
  std::vector<uint64_t> sids;
  local_index_.match(message.subject, sids);
  std::map<std::string, std::vector<uint64_t>> members;
  for (auto sid : sids) {
    const auto& sub = subscriptions_.at(sid);
    if (sub.queue_group.empty())
      offer(sid, message.subject, message.reply_to, payload, now_us, out);
    else if (std::binary_search(message.queue_groups.begin(), message.queue_groups.end(),
                                sub.queue_group))
      members[sub.queue_group].push_back(sid);
  }
  for (const auto& name : message.queue_groups) {
    auto it = members.find(name);
    if (it == members.end()) {  // the member left after the publisher picked us
      ++stats_.queue_group_misses;
      out.events.push_back({event_kind::queue_group_miss, from, 1});
      continue;
    }
    const auto& group = it->second;
    offer_to_group(group, static_cast<size_t>(rng_.below(group.size())), message.subject,
                   message.reply_to, payload, now_us, out);
  }
  take_reply(message.subject, message.reply_to, payload, out);
}

bool machine::has_room(const subscription& sub, uint64_t bytes) const {
  return sub.pending_messages < sub.pending_messages_max &&
         sub.pending_bytes + bytes <= sub.pending_bytes_max;
}

void machine::offer(uint64_t sid, const std::string& subject, const std::string& reply_to,
                    const std::shared_ptr<const bytes>& payload, int64_t now_us, effects& out) {
  auto& sub = subscriptions_.at(sid);
  if (!has_room(sub, payload->size())) {
    record_drop(sid, sub, now_us, out);
    return;
  }
  ++sub.pending_messages;
  sub.pending_bytes += payload->size();
  ++stats_.delivered;
  out.deliveries.push_back({sid, subject, reply_to, payload});
}

// Delivers to members[preferred]; if it is full, to a uniformly drawn member with room; if all
// are full, the message is dropped and counted on members[preferred].
void machine::offer_to_group(const std::vector<uint64_t>& members, size_t preferred,
                             const std::string& subject, const std::string& reply_to,
                             const std::shared_ptr<const bytes>& payload, int64_t now_us,
                             effects& out) {
  uint64_t chosen = members[preferred];
  if (!has_room(subscriptions_.at(chosen), payload->size())) {
    std::vector<uint64_t> with_room;
    for (auto sid : members)
      if (has_room(subscriptions_.at(sid), payload->size())) with_room.push_back(sid);
    if (!with_room.empty()) chosen = with_room[rng_.below(with_room.size())];
  }
  offer(chosen, subject, reply_to, payload, now_us, out);
}

// A message on one of our inboxes ends its request (the first one only).
void machine::take_reply(const std::string& subject, const std::string& reply_to,
                         const std::shared_ptr<const bytes>& payload, effects& out) {
  if (subject.size() <= inbox_prefix_.size() ||
      subject.compare(0, inbox_prefix_.size(), inbox_prefix_) != 0)
    return;
  const std::string_view tail = std::string_view(subject).substr(inbox_prefix_.size());
  uint64_t id = 0;
  for (char c : tail) {
    if (c < '0' || c > '9' || id > (UINT64_MAX - 9) / 10) return;  // not an inbox we made
    id = id * 10 + static_cast<uint64_t>(c - '0');
  }
  if (std::to_string(id) != tail) return;  // leading zeros: not ours either
  auto it = requests_.find(id);
  if (it == requests_.end()) {
    ++stats_.late_replies;
    out.events.push_back({event_kind::late_reply, self_, static_cast<int64_t>(id)});
    return;
  }
  request_deadlines_.erase({it->second.deadline_us, id});
  requests_.erase(it);
  ++stats_.requests_replied;
  out.requests_done.push_back({id, request_outcome::reply, payload, reply_to});
}

// The node an inbox subject "_INBOX.<64 hex>.<more>" names, if it has that form.
std::optional<node_id> machine::inbox_owner(const std::string& subject) const {
  constexpr size_t hex_chars = 64;
  if (subject.size() < inbox_root.size() + hex_chars + 2) return std::nullopt;
  if (subject.compare(0, inbox_root.size(), inbox_root) != 0) return std::nullopt;
  if (subject[inbox_root.size() + hex_chars] != '.') return std::nullopt;
  return parse_node_hex(std::string_view(subject).substr(inbox_root.size(), hex_chars));
}

// ---- machine: slow consumers ----------------------------------------------------------------------

// The first drop after a quiet interval is reported at once; later ones wait for the interval to
// end (tick reports them then), so a stuck subscriber costs one report per interval.
void machine::record_drop(uint64_t sid, subscription& sub, int64_t now_us, effects& out) {
  ++sub.dropped_total;
  ++sub.dropped_unreported;
  ++stats_.dropped_slow_consumer;
  if (sub.report_due_us) return;
  const int64_t interval = config_.slow_consumer_report_interval_us;
  if (!sub.last_report_us || now_us - *sub.last_report_us >= interval) {
    report(sid, sub, now_us, false, out);
    return;
  }
  sub.report_due_us = *sub.last_report_us + interval;
  reports_due_.insert({*sub.report_due_us, sid});
}

void machine::report(uint64_t sid, subscription& sub, int64_t now_us, bool final, effects& out) {
  out.slow_consumers.push_back({sid, sub.dropped_unreported, sub.dropped_total,
                                sub.pending_messages, sub.pending_bytes, final});
  sub.dropped_unreported = 0;
  sub.last_report_us = now_us;
  ++stats_.slow_consumer_reports;
}

void machine::send(const node_id& to, wire_message message, effects& out) {
  out.sends.push_back({to, std::move(message)});
}

}  // namespace cmesh::events
