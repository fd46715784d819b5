#include "actors/swim/swim_machine.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "runtime/core/limits.hpp"

namespace cmesh::swim {

namespace {

bytes key_bytes(const node_id& id) { return bytes(id.key.begin(), id.key.end()); }

// msgpack sizes (the encodings msgpack-c picks: the smallest form that holds the value).
size_t uint_bytes(uint64_t v) {
  if (v < 128) return 1;
  if (v < 256) return 2;
  if (v < 65536) return 3;
  if (v <= 0xffffffffULL) return 5;
  return 9;
}
size_t str_bytes(size_t n) {
  if (n < 32) return 1 + n;
  if (n < 256) return 2 + n;
  if (n < 65536) return 3 + n;
  return 5 + n;
}
size_t bin_bytes(size_t n) {
  if (n < 256) return 2 + n;
  if (n < 65536) return 3 + n;
  return 5 + n;
}
size_t array_bytes(size_t n) {
  if (n < 16) return 1;
  if (n < 65536) return 3;
  return 5;
}
size_t updates_bytes(const std::vector<update>& updates) {
  size_t total = array_bytes(updates.size());
  for (const auto& u : updates) total += encoded_bytes(u);
  return total;
}

// ceil(log10(n)) for n >= 1, in integers (so every platform agrees).
uint32_t ceil_log10(uint64_t n) {
  uint32_t digits = 0;
  for (uint64_t power = 1; power < n; power *= 10) ++digits;
  return digits;
}

event make_event(event_kind kind, const node_id& id, uint64_t incarnation, int64_t value_us = 0,
                 std::string address = {}) {
  event e{};
  e.kind = kind;
  e.member = id;
  e.incarnation = incarnation;
  e.value_us = value_us;
  e.address = std::move(address);
  return e;
}

// Smallest encoded update (a member update with a one-char address and small numbers): below
// this many bytes left, no further update can fit in a message.
constexpr size_t update_bytes_min = 42;
// Queue entries that do not fit a message's remaining budget are skipped at most this many
// times per message before the scan stops (bounds the cost of one message).
constexpr size_t queue_skips_max = 32;

}  // namespace

// ---- names, sizes, validation ----------------------------------------------------------------

const char* member_state_name(member_state state) {
  switch (state) {
    case member_state::alive: return "alive";
    case member_state::suspect: return "suspect";
    case member_state::dead: return "dead";
    case member_state::left: return "left";
  }
  return "unknown";
}

const char* event_name(event_kind kind) {
  switch (kind) {
    case event_kind::member_joined: return "member_joined";
    case event_kind::member_suspected: return "member_suspected";
    case event_kind::member_alive: return "member_alive";
    case event_kind::member_failed: return "member_failed";
    case event_kind::member_left: return "member_left";
    case event_kind::rumor_received: return "rumor_received";
    case event_kind::self_refuted: return "self_refuted";
  }
  return "unknown";
}

const char* message_name(size_t index) {
  static const char* const names[message_kinds] = {"ping",   "ack",          "ping_req",
                                                   "nack",   "gossip",       "sync_request",
                                                   "sync_response"};
  return index < message_kinds ? names[index] : "unknown";
}

size_t encoded_bytes(const update& u) {
  return array_bytes(8) + uint_bytes(u.age_ms) + uint_bytes(u.kind) + bin_bytes(u.subject.size()) +
         uint_bytes(u.incarnation) + str_bytes(u.address.size()) + bin_bytes(u.accuser.size()) +
         uint_bytes(u.rumor_id) + bin_bytes(u.payload.size());
}

size_t encoded_bytes(const member_record& r) {
  return array_bytes(4) + bin_bytes(r.key.size()) + str_bytes(r.address.size()) +
         uint_bytes(r.incarnation) + uint_bytes(r.state);
}

size_t encoded_bytes(const wire_message& message) {
  if (auto* m = std::get_if<ping>(&message))
    return array_bytes(3) + uint_bytes(m->seq) + bin_bytes(m->target.size()) +
           updates_bytes(m->updates);
  if (auto* m = std::get_if<ack>(&message))
    return array_bytes(2) + uint_bytes(m->seq) + updates_bytes(m->updates);
  if (auto* m = std::get_if<ping_req>(&message))
    return array_bytes(4) + uint_bytes(m->seq) + bin_bytes(m->target.size()) +
           str_bytes(m->target_address.size()) + updates_bytes(m->updates);
  if (auto* m = std::get_if<nack>(&message)) return array_bytes(1) + uint_bytes(m->seq);
  if (auto* m = std::get_if<gossip>(&message)) return array_bytes(1) + updates_bytes(m->updates);
  auto sync_bytes = [](const std::vector<member_record>& members,
                       const std::vector<update>& rumors) {
    size_t total = array_bytes(2) + array_bytes(members.size()) + updates_bytes(rumors);
    for (const auto& r : members) total += encoded_bytes(r);
    return total;
  };
  if (auto* m = std::get_if<sync_request>(&message)) return sync_bytes(m->members, m->rumors);
  if (auto* m = std::get_if<sync_response>(&message)) return sync_bytes(m->members, m->rumors);
  return 0;
}

status validate(const config& c) {
  auto bad = [](const char* what) { return status{errc::invalid_argument, what}; };
  if (c.tick_us <= 0) return bad("tick_us must be positive");
  if (c.protocol_period_us <= 0) return bad("protocol_period_us must be positive");
  if (c.ping_timeout_us <= 0 || c.ping_timeout_us >= c.probe_timeout_us)
    return bad("ping_timeout_us must be positive and below probe_timeout_us");
  if (c.probe_timeout_us > c.protocol_period_us)
    return bad("probe_timeout_us must not exceed protocol_period_us");
  if (c.indirect_probes > indirect_probes_max) return bad("indirect_probes over its bound");
  if (c.gossip_interval_us <= 0) return bad("gossip_interval_us must be positive");
  if (c.gossip_fanout == 0 || c.gossip_fanout > gossip_fanout_max)
    return bad("gossip_fanout must be in [1, gossip_fanout_max]");
  if (c.retransmit_mult == 0) return bad("retransmit_mult must be positive");
  if (c.rumor_retransmit_mult == 0) return bad("rumor_retransmit_mult must be positive");
  if (c.suspicion_mult == 0) return bad("suspicion_mult must be positive");
  if (c.suspicion_max_timeout_mult == 0) return bad("suspicion_max_timeout_mult must be positive");
  if (c.push_pull_interval_us <= 0 || c.reconnect_interval_us <= 0 ||
      c.seed_sync_interval_us <= 0)
    return bad("sync intervals must be positive");
  if (c.join_retry_us <= 0 || c.join_retry_us > c.reconnect_interval_us)
    return bad("join_retry_us must be positive and at most reconnect_interval_us");
  if (c.tombstone_us <= 0) return bad("tombstone_us must be positive");
  if (c.rumor_ttl_us <= 0) return bad("rumor_ttl_us must be positive");
  if (c.local_health_max == 0 || c.local_health_max > local_health_limit)
    return bad("local_health_max must be in [1, local_health_limit]");
  if (c.member_table_max == 0) return bad("member_table_max must be positive");
  if (c.updates_queue_max == 0) return bad("updates_queue_max must be positive");
  // The largest update (a rumor with a full payload) must fit one message.
  if (c.piggyback_bytes_max < rumor_payload_bytes_max + 128 ||
      c.piggyback_bytes_max > limits::envelope_bytes_max / 2)
    return bad("piggyback_bytes_max must hold one full rumor and stay under half an envelope");
  if (c.rumors_max == 0) return bad("rumors_max must be positive");
  if (c.relays_max == 0) return bad("relays_max must be positive");
  if (c.foreign_relays_max == 0 || c.foreign_queue_max == 0)
    return bad("foreign_relays_max and foreign_queue_max must be positive");
  if (c.sync_bytes_max < 4096 || c.sync_bytes_max > limits::envelope_bytes_max - 4096)
    return bad("sync_bytes_max must be in [4096, envelope_bytes_max - 4096]");
  return ok_status();
}

// ---- construction and inputs -----------------------------------------------------------------

machine::machine(config cfg, node_id self, std::string self_address, rng random)
    : config_(cfg), self_(self), self_address_(std::move(self_address)), rng_(random) {
  assert(validate(config_).ok());
  assert(!self_.is_zero());
  assert(!self_address_.empty());
}

void machine::ensure_started(int64_t now_us) {
  now_us_ = std::max(now_us_, now_us);
  if (started_) return;
  started_ = true;
  // Staggered: a random first phase so that machines started together do not tick in lockstep.
  auto first = [&](int64_t interval) {
    return now_us + (config_.stagger_timers ? 1 + static_cast<int64_t>(rng_.below(interval))
                                            : interval);
  };
  next_probe_us_ = first(config_.protocol_period_us);
  next_gossip_us_ = first(config_.gossip_interval_us);
  next_push_pull_us_ = first(push_pull_interval());
  next_reconnect_us_ = first(config_.reconnect_interval_us);
  next_seed_sync_us_ = first(config_.seed_sync_interval_us);
}

void machine::join(const std::vector<seed>& seeds, int64_t now_us, effects& out) {
  ensure_started(now_us);
  for (const auto& s : seeds)
    if (!s.address.empty() && s.address != self_address_ && s.pinned != self_) seeds_.push_back(s);
  enqueue(alive_update(self_, incarnation_, self_address_));
  for (const auto& s : seeds_) send_sync(s.pinned, s.address, out);
  if (!seeds_.empty()) {
    join_backoff_us_ = config_.join_retry_us;
    next_join_retry_us_ = now_us + join_backoff_us_;
  }
}

// A node started before its seed is listening must not wait a whole reconnect interval: while
// no member is known, sync with every seed again, backing off to reconnect_interval_us.
void machine::retry_join(int64_t now_us, effects& out) {
  if (leaving_ || alive_count_ + suspect_count_ != 0) {
    next_join_retry_us_ = std::numeric_limits<int64_t>::max();
    return;
  }
  for (const auto& s : seeds_) send_sync(s.pinned, s.address, out);
  ++stats_.join_retries;
  join_backoff_us_ = std::min(join_backoff_us_ * 2, config_.reconnect_interval_us);
  next_join_retry_us_ = now_us + join_backoff_us_;
}

void machine::restore(const std::vector<member_record>& known, int64_t now_us) {
  ensure_started(now_us);
  // Insert in key order: each flat_map insert then lands at the end (no O(n) moves).
  std::vector<const member_record*> sorted;
  sorted.reserve(known.size());
  for (const auto& r : known)
    if (r.key.size() == 32 && !r.address.empty() && r.address.size() <= limits::address_chars_max)
      sorted.push_back(&r);
  std::sort(sorted.begin(), sorted.end(), [](const member_record* a, const member_record* b) {
    return node_id::from_bytes(a->key.data()) < node_id::from_bytes(b->key.data());
  });
  for (const auto* r : sorted) {
    auto id = node_id::from_bytes(r->key.data());
    if (id == self_ || members_.count(id) != 0) continue;
    if (members_.size() >= config_.member_table_max) break;
    member m;
    m.address = r->address;
    m.incarnation = r->incarnation;
    m.state_since_us = now_us;
    members_.emplace(id, std::move(m));
    ++alive_count_;
  }
  probe_cursor_ = probe_order_.size();  // the next probe reshuffles, including the newcomers
  // The push-pull interval grows with the table: re-phase it for the restored size.
  int64_t interval = push_pull_interval();
  next_push_pull_us_ =
      now_us + (config_.stagger_timers ? 1 + static_cast<int64_t>(rng_.below(interval)) : interval);
}

void machine::tick(int64_t now_us, effects& out) {
  ensure_started(now_us);
  expire_relays(now_us, out);
  advance_probe(now_us, out);
  if (!leaving_ && !probe_.active && now_us >= next_probe_us_) {
    start_probe(now_us, out);
    next_probe_us_ = now_us + scaled(config_.protocol_period_us);
  }
  if (now_us >= next_gossip_us_) {
    // Stay on the round grid; a stalled machine skips the rounds it missed rather than bursting.
    int64_t interval = config_.gossip_interval_us;
    next_gossip_us_ += ((now_us - next_gossip_us_) / interval + 1) * interval;
    gossip_round(now_us, out);
  }
  if (now_us >= next_push_pull_us_) {
    next_push_pull_us_ = now_us + push_pull_interval();
    push_pull(now_us, out);
  }
  if (now_us >= next_reconnect_us_) {
    next_reconnect_us_ = now_us + config_.reconnect_interval_us;
    reconnect(now_us, out);
  }
  if (now_us >= next_seed_sync_us_) {
    next_seed_sync_us_ = now_us + config_.seed_sync_interval_us;
    seed_sync(now_us, out);
  }
  if (now_us >= next_join_retry_us_) retry_join(now_us, out);
  expire_suspicions(now_us, out);
  expire_tombstones(now_us);
  expire_rumors(now_us);
}

int64_t machine::next_deadline_us() const {
  if (!started_) return 0;
  int64_t t = std::min({next_gossip_us_, next_push_pull_us_, next_reconnect_us_,
                        next_seed_sync_us_, next_join_retry_us_});
  if (probe_.active) {
    t = std::min(t, probe_.deadline_us);
    if (!probe_.indirect_sent) t = std::min(t, probe_.direct_deadline_us);
  } else if (!leaving_) {
    t = std::min(t, next_probe_us_);
  }
  if (!suspicion_timers_.empty()) t = std::min(t, suspicion_timers_.begin()->first);
  if (!tombstone_order_.empty())
    t = std::min(t, tombstone_order_.front().first + config_.tombstone_us);
  if (!rumor_expiry_.empty()) t = std::min(t, rumor_expiry_.begin()->first + config_.rumor_ttl_us);
  if (!relays_.empty()) t = std::min(t, relays_.begin()->second.nack_at_us);
  return t;
}

void machine::receive(const node_id& from, const wire_message& message, int64_t now_us,
                      effects& out) {
  ensure_started(now_us);
  if (from == self_) return;
  ++stats_.received[message.index()];
  auto apply_all = [&](const std::vector<update>& updates) {
    size_t count = std::min(updates.size(), updates_per_message_max);
    stats_.items_rejected += updates.size() - count;
    for (size_t i = 0; i < count; ++i) apply_update(updates[i], false, from, now_us, out);
  };
  if (auto* p = std::get_if<ping>(&message)) {
    apply_all(p->updates);
    if (!p->target.empty() &&
        (p->target.size() != 32 || node_id::from_bytes(p->target.data()) != self_)) {
      ++stats_.items_rejected;  // meant for whoever had this address before us
      return;
    }
    send(out, from, address_of(from), ack{p->seq, take_updates(config_.piggyback_bytes_max)});
  } else if (auto* a = std::get_if<ack>(&message)) {
    apply_all(a->updates);
    auto relayed = relays_.find(a->seq);
    if (relayed != relays_.end()) {
      if (relayed->second.target != from) return;
      relay r = relayed->second;
      relays_.erase(relayed);
      send(out, r.origin, address_of(r.origin),
           ack{r.origin_seq, take_updates(config_.piggyback_bytes_max)});
      return;
    }
    if (probe_.active && a->seq == probe_.seq) probe_finished(true, now_us, out);
  } else if (auto* r = std::get_if<ping_req>(&message)) {
    apply_all(r->updates);
    on_ping_req(from, *r, now_us, out);
  } else if (auto* n = std::get_if<nack>(&message)) {
    if (probe_.active && n->seq == probe_.seq && probe_.nacks < probe_.nacks_expected) {
      ++probe_.nacks;
      ++stats_.nacks_received;
    }
  } else if (auto* g = std::get_if<gossip>(&message)) {
    apply_all(g->updates);
  } else if (auto* s = std::get_if<sync_request>(&message)) {
    merge(s->members, s->rumors, from, now_us, out);
    auto [members, rumors] = full_state();
    send(out, from, address_of(from), sync_response{std::move(members), std::move(rumors)});
  } else if (auto* s = std::get_if<sync_response>(&message)) {
    merge(s->members, s->rumors, from, now_us, out);
  }
}

void machine::leave(int64_t now_us, effects& out) {
  ensure_started(now_us);
  if (leaving_) return;
  leaving_ = true;
  probe_.active = false;
  update u;
  u.kind = static_cast<uint8_t>(update_kind::left);
  u.subject = key_bytes(self_);
  u.incarnation = incarnation_;
  u.accuser = key_bytes(self_);
  enqueue(std::move(u));
  gossip_round(now_us, out);  // at once: the shell may not wait long
}

status machine::broadcast_rumor(uint64_t id, bytes payload, int64_t now_us, effects& out) {
  ensure_started(now_us);
  if (payload.size() > rumor_payload_bytes_max)
    return status{errc::too_large, "rumor payload of " + std::to_string(payload.size()) +
                                       " bytes exceeds " +
                                       std::to_string(rumor_payload_bytes_max)};
  if (leaving_) return status{errc::unavailable, "this node is leaving"};
  if (has_rumor(id)) return status{errc::already_exists, "rumor id already known"};
  store_rumor(id, self_, payload, now_us);
  int64_t origin_us = now_us;
  update u;
  u.kind = static_cast<uint8_t>(update_kind::rumor);
  u.subject = key_bytes(self_);
  u.rumor_id = id;
  u.payload = std::move(payload);
  enqueue(u, origin_us);
  eager_push(u, self_, self_, out);
  return ok_status();
}

// ---- queries ---------------------------------------------------------------------------------

size_t machine::live_count() const { return alive_count_ + suspect_count_ + (leaving_ ? 0 : 1); }

const bytes* machine::rumor_payload(uint64_t id) const {
  auto it = rumors_.find(id);
  return it == rumors_.end() ? nullptr : &it->second.payload;
}

bool machine::leave_complete() const {
  return leaving_ && member_updates_.index.count(subject_key{0, self_, 0}) == 0;
}

uint32_t machine::transmit_limit(bool rumor) const {
  const uint32_t mult = rumor ? config_.rumor_retransmit_mult : config_.retransmit_mult;
  return mult * std::max<uint32_t>(1, ceil_log10(live_count() + 1));
}

int64_t machine::suspicion_timeout_us(const node_id& id) const {
  auto it = suspicions_.find(id);
  return it == suspicions_.end() ? 0 : it->second.deadline_us - it->second.start_us;
}

std::vector<member_record> machine::snapshot() const {
  std::vector<member_record> records;
  for (const auto& [id, m] : members_)
    if (m.state == member_state::alive || m.state == member_state::suspect)
      records.push_back({key_bytes(id), m.address, m.incarnation, 0});
  return records;
}

// ---- state changes: the precedence rules -----------------------------------------------------

void machine::apply_update(const update& u, bool from_sync, const node_id& from, int64_t now_us,
                           effects& out) {
  if (u.kind > static_cast<uint8_t>(update_kind::rumor) || u.subject.size() != 32 ||
      u.address.size() > limits::address_chars_max ||
      (!u.accuser.empty() && u.accuser.size() != 32) ||
      u.payload.size() > rumor_payload_bytes_max) {
    ++stats_.items_rejected;
    return;
  }
  auto subject = node_id::from_bytes(u.subject.data());
  // Without a named accuser the messenger is the accuser (it vouches for the claim).
  auto accuser = u.accuser.empty() ? from : node_id::from_bytes(u.accuser.data());
  switch (static_cast<update_kind>(u.kind)) {
    case update_kind::alive: on_alive(subject, u.incarnation, u.address, now_us, out); break;
    case update_kind::suspect: on_suspect(subject, u.incarnation, accuser, now_us, out); break;
    case update_kind::dead:
      on_dead(subject, u.incarnation, accuser, false, from_sync, now_us, out);
      break;
    case update_kind::left:
      on_dead(subject, u.incarnation, accuser, true, from_sync, now_us, out);
      break;
    case update_kind::rumor: on_rumor(u, from, now_us, out); break;
  }
}

// alive(i) overrides suspect(j) and alive(j) iff i > j, and revives dead/left(j) iff i > j.
void machine::on_alive(const node_id& id, uint64_t incarnation, const std::string& address,
                       int64_t now_us, effects& out) {
  if (id == self_) {
    // Someone holds a newer incarnation of us (we restarted and forgot ours): outbid it.
    if (!leaving_ && incarnation > incarnation_) refute(incarnation, out);
    return;
  }
  auto it = members_.find(id);
  if (it == members_.end()) {
    if (address.empty()) {
      ++stats_.items_rejected;  // cannot reach a member without its address
      return;
    }
    if (!make_room()) {
      ++stats_.members_refused;
      // Not stored. Passed on only as the refutation of a suspicion we passed on (other holders
      // wait for it); plain news of a member would flood a mesh of partial views.
      if (foreign_relayed_.count(id)) relay_foreign(alive_update(id, incarnation, address));
      return;
    }
    member m;
    m.address = address;
    m.incarnation = incarnation;
    m.state_since_us = now_us;
    members_.emplace(id, std::move(m));
    ++alive_count_;
    add_to_probe_order(id);
    out.events.push_back(make_event(event_kind::member_joined, id, incarnation, 0, address));
    enqueue(alive_update(id, incarnation, address));
    return;
  }
  member& m = it->second;
  if (incarnation <= m.incarnation) return;
  member_state previous = m.state;
  m.incarnation = incarnation;
  if (!address.empty()) m.address = address;
  if (previous != member_state::alive) set_state(m, member_state::alive, now_us);
  end_suspicion(id);
  if (previous == member_state::suspect) {
    out.events.push_back(make_event(event_kind::member_alive, id, incarnation));
  } else if (previous == member_state::dead || previous == member_state::left) {
    out.events.push_back(make_event(event_kind::member_joined, id, incarnation, 0, m.address));
    add_to_probe_order(id);
  }
  enqueue(alive_update(id, incarnation, m.address));
}

// suspect(i) overrides alive(j) iff i >= j. On a member already suspect it is a confirmation
// (Lifeguard): each independent accuser, up to the expected number, shortens the timeout.
void machine::on_suspect(const node_id& id, uint64_t incarnation, const node_id& accuser,
                         int64_t now_us, effects& out) {
  if (id == self_) {
    if (!leaving_ && incarnation >= incarnation_) refute(incarnation, out);
    return;
  }
  auto make_update = [&](uint64_t inc) {
    update u;
    u.kind = static_cast<uint8_t>(update_kind::suspect);
    u.subject = key_bytes(id);
    u.incarnation = inc;
    u.accuser = key_bytes(accuser);
    return u;
  };
  auto it = members_.find(id);
  if (it == members_.end()) return relay_foreign(make_update(incarnation));
  member& m = it->second;
  if (m.state == member_state::dead || m.state == member_state::left) return;
  if (incarnation < m.incarnation) return;
  if (m.state == member_state::suspect) {
    auto s = suspicions_.find(id);
    assert(s != suspicions_.end());
    m.incarnation = incarnation;
    auto& accusers = s->second.accusers;
    bool known = std::find(accusers.begin(), accusers.end(), accuser) != accusers.end();
    if (known || accusers.size() >= 1 + s->second.expected) return;
    accusers.push_back(accuser);
    arm_suspicion(id, s->second);
    enqueue(make_update(m.incarnation));  // spread the confirmation: it shortens others' timers
    return;
  }
  m.incarnation = incarnation;
  set_state(m, member_state::suspect, now_us);
  size_t n = live_count();
  suspicion s;
  s.start_us = now_us;
  double scale = std::max(1.0, std::log10(static_cast<double>(std::max<size_t>(1, n))));
  s.min_us = static_cast<int64_t>(config_.suspicion_mult * scale *
                                  static_cast<double>(config_.protocol_period_us));
  s.max_us = s.min_us * config_.suspicion_max_timeout_mult;
  s.expected = config_.suspicion_mult > 2 ? config_.suspicion_mult - 2 : 0;
  if (n < s.expected + 2) s.expected = 0;  // too few members to expect confirmations
  s.accusers.push_back(accuser);
  arm_suspicion(id, suspicions_[id] = std::move(s));
  out.events.push_back(make_event(event_kind::member_suspected, id, incarnation));
  enqueue(make_update(incarnation));
}

// dead(i) / left(i) override alive(j) and suspect(j) iff i >= j. A `dead` learned from a full
// sync is only a suspicion here (memberlist's rule): a live member gets the chance to refute,
// which is what lets two halves that declared each other dead merge again.
void machine::on_dead(const node_id& id, uint64_t incarnation, const node_id& accuser, bool left,
                      bool from_sync, int64_t now_us, effects& out) {
  if (id == self_) {
    if (!leaving_ && incarnation >= incarnation_) refute(incarnation, out);
    return;
  }
  if (from_sync && !left) {
    on_suspect(id, incarnation, accuser, now_us, out);
    return;
  }
  auto it = members_.find(id);
  if (it == members_.end()) return;  // its holders decide by their own timers
  member& m = it->second;
  if (m.state == member_state::dead || m.state == member_state::left) return;
  if (incarnation < m.incarnation) return;
  int64_t suspected_since = end_suspicion(id);
  int64_t suspected_for = suspected_since < 0 ? 0 : now_us - suspected_since;
  m.incarnation = incarnation;
  set_state(m, left ? member_state::left : member_state::dead, now_us);
  tombstone_order_.push_back({now_us, id});
  out.events.push_back(make_event(left ? event_kind::member_left : event_kind::member_failed, id,
                                  incarnation, suspected_for));
  update u;
  u.kind = static_cast<uint8_t>(left ? update_kind::left : update_kind::dead);
  u.subject = key_bytes(id);
  u.incarnation = incarnation;
  u.accuser = key_bytes(left ? id : accuser);
  enqueue(std::move(u));
}

void machine::eager_push(const update& u, const node_id& from, const node_id& origin,
                         effects& out) {
  if (config_.eager_fanout == 0) return;
  // One spare pick stands in for the sender (pick_random excludes only the origin).
  uint32_t sent = 0;
  for (const auto& target : pick_random(config_.eager_fanout + 1, false, origin)) {
    if (target == from || sent == config_.eager_fanout) continue;
    send(out, target, address_of(target), gossip{std::vector<update>{u}});
    ++sent;
    ++stats_.eager_pushes;
  }
}

void machine::on_rumor(const update& u, const node_id& from, int64_t now_us, effects& out) {
  if (has_rumor(u.rumor_id)) {
    ++stats_.rumor_duplicates;
    return;
  }
  if (u.age_ms >= static_cast<uint64_t>(config_.rumor_ttl_us / 1000)) return;  // expired
  int64_t origin_us = now_us - static_cast<int64_t>(u.age_ms) * 1000;
  auto origin = node_id::from_bytes(u.subject.data());
  store_rumor(u.rumor_id, origin, u.payload, origin_us);
  auto e = make_event(event_kind::rumor_received, origin, 0);
  e.rumor_id = u.rumor_id;
  e.payload = u.payload;
  out.events.push_back(std::move(e));
  enqueue(u, origin_us);
  eager_push(u, from, origin, out);
}

void machine::refute(uint64_t accused_incarnation, effects& out) {
  incarnation_ = std::max(incarnation_, accused_incarnation) + 1;
  ++stats_.refutations;
  health_add(1);  // Lifeguard: being suspected hints that our own links or clock are slow
  out.events.push_back(make_event(event_kind::self_refuted, self_, incarnation_));
  enqueue(alive_update(self_, incarnation_, self_address_));
}

void machine::set_state(member& m, member_state state, int64_t now_us) {
  auto counter = [&](member_state s) -> size_t& {
    if (s == member_state::alive) return alive_count_;
    if (s == member_state::suspect) return suspect_count_;
    return tombstone_count_;
  };
  --counter(m.state);
  ++counter(state);
  m.state = state;
  m.state_since_us = now_us;
}

// Room for one more member: free if under the bound, else by dropping the oldest tombstone.
// Live members are never evicted for a newcomer.
void machine::relay_foreign(update u) {
  // SWIM's precedence: a higher incarnation wins; at equal incarnation dead/left > suspect > alive.
  uint64_t precedence = u.kind == static_cast<uint8_t>(update_kind::alive) ? 0
                        : u.kind == static_cast<uint8_t>(update_kind::suspect) ? 1 : 2;
  uint64_t rank = u.incarnation * 4 + precedence;
  auto id = node_id::from_bytes(u.subject.data());
  if (member_updates_.items.size() >= config_.foreign_queue_max) {
    ++stats_.foreign_dropped;  // not remembered either: a later copy may still be relayed
    return;
  }
  auto known = foreign_relayed_.find(id);
  if (known != foreign_relayed_.end()) {
    if (known->second >= rank) return;  // a repeat, or older news
    known->second = rank;
  } else {
    foreign_relayed_.emplace(id, rank);
    foreign_order_.push_back(id);
    while (foreign_order_.size() > config_.foreign_relays_max) {
      foreign_relayed_.erase(foreign_order_.front());
      foreign_order_.pop_front();
    }
  }
  ++stats_.foreign_relayed;
  enqueue(std::move(u));
}

bool machine::make_room() {
  if (members_.size() < config_.member_table_max) return true;
  if (tombstone_count_ == 0) return false;
  const node_id* oldest = nullptr;
  int64_t oldest_since = 0;
  for (const auto& [id, m] : members_) {  // O(n), only when full
    if (m.state != member_state::dead && m.state != member_state::left) continue;
    if (oldest == nullptr || m.state_since_us < oldest_since) {
      oldest = &id;
      oldest_since = m.state_since_us;
    }
  }
  assert(oldest != nullptr);
  node_id victim = *oldest;
  members_.erase(victim);
  --tombstone_count_;
  ++stats_.tombstones_expired;
  return true;
}

void machine::merge(const std::vector<member_record>& records, const std::vector<update>& rumors,
                    const node_id& from, int64_t now_us, effects& out) {
  size_t count = std::min(records.size(), config_.member_table_max + 1);
  stats_.items_rejected += records.size() - count;
  for (size_t i = 0; i < count; ++i) {
    const auto& r = records[i];
    if (r.key.size() != 32 || r.address.size() > limits::address_chars_max ||
        r.state > static_cast<uint8_t>(member_state::left)) {
      ++stats_.items_rejected;
      continue;
    }
    auto id = node_id::from_bytes(r.key.data());
    switch (static_cast<member_state>(r.state)) {
      case member_state::alive: on_alive(id, r.incarnation, r.address, now_us, out); break;
      case member_state::suspect: on_suspect(id, r.incarnation, from, now_us, out); break;
      case member_state::dead: on_dead(id, r.incarnation, from, false, true, now_us, out); break;
      case member_state::left: on_dead(id, r.incarnation, id, true, true, now_us, out); break;
    }
  }
  size_t rumor_count = std::min(rumors.size(), config_.rumors_max);
  stats_.items_rejected += rumors.size() - rumor_count;
  for (size_t i = 0; i < rumor_count; ++i) {
    if (rumors[i].kind != static_cast<uint8_t>(update_kind::rumor)) {
      ++stats_.items_rejected;
      continue;
    }
    apply_update(rumors[i], true, from, now_us, out);
  }
}

// ---- probing ---------------------------------------------------------------------------------

void machine::start_probe(int64_t now_us, effects& out) {
  node_id target;
  if (!next_probe_target(target)) return;
  const member& m = members_.at(target);
  probe_ = probe_state{};
  probe_.active = true;
  probe_.target = target;
  probe_.address = m.address;
  probe_.incarnation = m.incarnation;
  probe_.seq = next_seq_++;
  probe_.direct_deadline_us = now_us + scaled(config_.ping_timeout_us);
  probe_.deadline_us = now_us + scaled(config_.probe_timeout_us);
  ++stats_.probes;
  ping p;
  p.seq = probe_.seq;
  p.target = key_bytes(target);
  size_t budget = config_.piggyback_bytes_max;
  if (m.state == member_state::suspect) {
    // Lifeguard's buddy system: tell a suspect it is suspected, so it can refute at once.
    update u;
    u.kind = static_cast<uint8_t>(update_kind::suspect);
    u.subject = key_bytes(target);
    u.incarnation = m.incarnation;
    u.accuser = key_bytes(self_);
    budget -= encoded_bytes(u);
    p.updates.push_back(std::move(u));
  }
  for (auto& u : take_updates(budget)) p.updates.push_back(std::move(u));
  send(out, target, m.address, std::move(p));
}

void machine::advance_probe(int64_t now_us, effects& out) {
  if (!probe_.active) return;
  if (!probe_.indirect_sent && now_us >= probe_.direct_deadline_us) {
    send_indirect(now_us, out);
    // A machine that stalled past the deadline still gives its relays a full window.
    probe_.deadline_us =
        std::max(probe_.deadline_us,
                 now_us + scaled(config_.probe_timeout_us - config_.ping_timeout_us));
  }
  if (now_us >= probe_.deadline_us) probe_finished(false, now_us, out);
}

void machine::send_indirect(int64_t now_us, effects& out) {
  probe_.indirect_sent = true;
  auto helpers = pick_random(config_.indirect_probes, false, probe_.target);
  probe_.nacks_expected = static_cast<uint32_t>(helpers.size());
  for (const auto& helper : helpers) {
    ping_req r;
    r.seq = probe_.seq;
    r.target = key_bytes(probe_.target);
    r.target_address = probe_.address;
    r.updates = take_updates(config_.piggyback_bytes_max);
    ++stats_.ping_reqs_sent;
    send(out, helper, address_of(helper), std::move(r));
  }
}

void machine::probe_finished(bool acked, int64_t now_us, effects& out) {
  probe_.active = false;
  if (acked) {
    health_add(-1);
    return;
  }
  ++stats_.probes_failed;
  // Lifeguard: relays that answered with a nack prove our own links work, so the target is the
  // likely problem. No relay at all, or no nack from any: suspect ourselves a little.
  if (probe_.nacks_expected == 0 || probe_.nacks == 0) health_add(1);
  auto it = members_.find(probe_.target);
  if (it == members_.end()) return;
  const member& m = it->second;
  if (m.incarnation != probe_.incarnation) return;  // it refuted meanwhile
  if (m.state == member_state::alive) {
    ++stats_.suspicions_raised;
    on_suspect(probe_.target, m.incarnation, self_, now_us, out);
  } else if (m.state == member_state::suspect) {
    on_suspect(probe_.target, m.incarnation, self_, now_us, out);  // our own confirmation
  }
}

void machine::on_ping_req(const node_id& from, const ping_req& request, int64_t now_us,
                          effects& out) {
  if (request.target.size() != 32 || request.target_address.size() > limits::address_chars_max) {
    ++stats_.items_rejected;
    return;
  }
  auto target = node_id::from_bytes(request.target.data());
  if (target == self_) {
    send(out, from, address_of(from), ack{request.seq, take_updates(config_.piggyback_bytes_max)});
    return;
  }
  if (relays_.size() >= config_.relays_max) {
    ++stats_.relays_refused;
    return;
  }
  std::string address = address_of(target);
  if (address.empty()) address = request.target_address;
  if (address.empty()) {
    ++stats_.items_rejected;
    return;
  }
  uint64_t seq = next_seq_++;
  // Nack a little before the origin gives up, so the nack can still arrive in time.
  int64_t window = (config_.probe_timeout_us - config_.ping_timeout_us) * 4 / 5;
  relays_[seq] = relay{from, request.seq, target, now_us + window};
  send(out, target, address,
       ping{seq, key_bytes(target), take_updates(config_.piggyback_bytes_max)});
}

void machine::expire_relays(int64_t now_us, effects& out) {
  while (!relays_.empty() && relays_.begin()->second.nack_at_us <= now_us) {
    relay r = relays_.begin()->second;
    relays_.erase(relays_.begin());
    send(out, r.origin, address_of(r.origin), nack{r.origin_seq});
  }
}

// Round-robin over a shuffled list of the alive and suspect members, reshuffled every pass
// (SWIM section 4.3): every member is probed once per pass, so detection time is bounded.
bool machine::next_probe_target(node_id& target) {
  bool rebuilt = false;
  while (true) {
    if (probe_cursor_ >= probe_order_.size()) {
      if (rebuilt) return false;
      rebuilt = true;
      probe_order_.clear();
      probe_cursor_ = 0;
      for (const auto& [id, m] : members_)
        if (m.state == member_state::alive || m.state == member_state::suspect)
          probe_order_.push_back(id);
      for (size_t i = probe_order_.size(); i > 1; --i)
        std::swap(probe_order_[i - 1], probe_order_[rng_.below(i)]);
      if (probe_order_.empty()) return false;
    }
    const node_id& id = probe_order_[probe_cursor_++];
    auto it = members_.find(id);
    if (it != members_.end() &&
        (it->second.state == member_state::alive || it->second.state == member_state::suspect)) {
      target = id;
      return true;
    }
  }
}

// A newcomer goes to a random place in the rest of the current pass (not only the next pass).
void machine::add_to_probe_order(const node_id& id) {
  if (probe_cursor_ >= probe_order_.size()) return;  // the next pass includes it
  size_t remaining = probe_order_.size() - probe_cursor_;
  size_t position = probe_cursor_ + rng_.below(remaining + 1);
  probe_order_.insert(probe_order_.begin() + static_cast<std::ptrdiff_t>(position), id);
}

// ---- dissemination ---------------------------------------------------------------------------

update machine::alive_update(const node_id& id, uint64_t incarnation,
                             const std::string& address) const {
  update u;
  u.kind = static_cast<uint8_t>(update_kind::alive);
  u.subject = key_bytes(id);
  u.incarnation = incarnation;
  u.address = address;
  return u;
}

// One queued update per subject: a newer claim about a member (or a repeat of a rumor) replaces
// the older one and starts again at zero transmissions.
void machine::enqueue(update body, int64_t origin_us) {
  bool rumor = body.kind == static_cast<uint8_t>(update_kind::rumor);
  update_queue& queue = rumor ? rumor_updates_ : member_updates_;
  subject_key key;
  if (rumor) {
    key.family = 1;
    key.rumor_id = body.rumor_id;
  } else {
    key.id = node_id::from_bytes(body.subject.data());
  }
  if (auto old = queue.index.find(key); old != queue.index.end()) {
    queue.items.erase(old->second);
    queue.index.erase(old);
  }
  queue_position position{0, ~next_update_sequence_++};
  size_t size = encoded_bytes(body);
  queue.items.emplace(position, queued_update{std::move(body), key, size, origin_us});
  queue.index[key] = position;
  if (queue.items.size() > config_.updates_queue_max) {
    auto last = std::prev(queue.items.end());  // most transmissions, then oldest
    queue.index.erase(last->second.key);
    queue.items.erase(last);
    ++stats_.updates_dropped;
  }
}

// Fills up to `bytes_budget` with the least-sent, newest updates (memberlist's order): membership
// news first within half the budget (all of it if no rumor waits), then rumors, then more
// membership news if room is left. Each taken update counts one transmission and leaves its
// queue at transmit_limit().
std::vector<update> machine::take_updates(size_t bytes_budget) {
  std::vector<update> taken;
  std::vector<queue_position> member_used, rumor_used;
  size_t member_share = rumor_updates_.items.empty() ? bytes_budget : bytes_budget / 2;
  size_t member_left = member_share;
  take_from(member_updates_, member_left, member_used, taken);
  bytes_budget -= member_share - member_left;
  take_from(rumor_updates_, bytes_budget, rumor_used, taken);
  take_from(member_updates_, bytes_budget, member_used, taken);
  count_transmissions(member_updates_, member_used);
  count_transmissions(rumor_updates_, rumor_used);
  return taken;
}

void machine::take_from(const update_queue& queue, size_t& bytes_budget,
                        std::vector<queue_position>& used, std::vector<update>& taken) const {
  size_t skips = 0;
  for (auto it = queue.items.begin(); it != queue.items.end(); ++it) {
    if (bytes_budget < update_bytes_min || skips >= queue_skips_max) break;
    if (std::find(used.begin(), used.end(), it->first) != used.end()) continue;
    if (it->second.size > bytes_budget) {
      ++skips;
      continue;
    }
    bytes_budget -= it->second.size;
    used.push_back(it->first);
    taken.push_back(it->second.body);
    if (taken.back().kind == static_cast<uint8_t>(update_kind::rumor))
      taken.back().age_ms =
          static_cast<uint64_t>(std::max<int64_t>(0, now_us_ - it->second.origin_us) / 1000);
  }
}

void machine::count_transmissions(update_queue& queue, const std::vector<queue_position>& used) {
  uint32_t limit = transmit_limit(&queue == &rumor_updates_);
  for (const auto& position : used) {
    auto node = queue.items.extract(position);
    queue_position next{position.first + 1, position.second};
    if (next.first >= limit) {
      queue.index.erase(node.mapped().key);
      continue;
    }
    queue.index[node.mapped().key] = next;
    node.key() = next;
    queue.items.insert(std::move(node));
  }
}

// The dedicated round (memberlist's gossip): pending updates to gossip_fanout random live
// members, each message filled separately. Under the send budget the messages the failure
// detector sent since the last round come off the fanout; what a round overspends is carried as
// debt into the next one (at most four rounds' budget). A round whose budget the detector already
// spent sends nothing: every probe, ack and relay carries pending updates too, so news still
// moves. A node thus sends at most messages_per_round_max messages per round on average, whatever
// the churn, unless the detector alone needs more.
void machine::gossip_round(int64_t now_us, effects& out) {
  uint32_t overhead = sent_since_gossip_;
  sent_since_gossip_ = 0;
  if (pending_updates() == 0) return;
  uint32_t fanout = config_.gossip_fanout;
  uint32_t budget = config_.messages_per_round_max;
  if (budget > 0) {
    uint32_t allowed = budget > overhead ? budget - overhead : 0;
    fanout = std::min<uint32_t>(allowed, config_.gossip_fanout);
  }
  uint32_t sent = 0;
  for (const auto& target : pick_random(fanout, true, node_id{})) {
    auto updates = take_updates(config_.piggyback_bytes_max);
    if (updates.empty()) break;
    send(out, target, address_of(target), gossip{std::move(updates)});
    ++sent;
  }
  if (budget > 0 && overhead + sent > budget)
    sent_since_gossip_ = std::min(overhead + sent - budget, 4 * budget);
}

// ---- syncs and expiry ------------------------------------------------------------------------

void machine::push_pull(int64_t now_us, effects& out) {
  auto partner = pick_random(1, false, node_id{});
  if (!partner.empty()) send_sync(partner[0], address_of(partner[0]), out);
}

// Heal partitions: while alone, sync with a seed; otherwise with one random failed member (the
// other half of a healed partition looks failed from here).
void machine::reconnect(int64_t now_us, effects& out) {
  if (leaving_) return;
  if (alive_count_ + suspect_count_ == 0) {
    if (!seeds_.empty()) {
      const auto& s = seeds_[rng_.below(seeds_.size())];
      send_sync(s.pinned, s.address, out);
    }
    return;
  }
  if (tombstone_count_ == 0) return;
  size_t n = members_.size();
  size_t start = rng_.below(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& [id, m] = members_.nth((start + i) % n);
    if (m.state != member_state::dead) continue;  // left members left on purpose
    send_sync(id, m.address, out);
    return;
  }
}

void machine::seed_sync(int64_t now_us, effects& out) {
  if (leaving_ || seeds_.empty()) return;
  const auto& s = seeds_[rng_.below(seeds_.size())];
  for (const auto& [id, m] : members_) {
    bool is_seed = s.pinned.is_zero() ? m.address == s.address : id == s.pinned;
    if (is_seed && (m.state == member_state::alive || m.state == member_state::suspect))
      return;  // a live member: ordinary push-pull covers it
  }
  send_sync(s.pinned, s.address, out);
}

void machine::send_sync(const node_id& to, const std::string& address, effects& out) {
  auto [members, rumors] = full_state();
  ++stats_.syncs_sent;
  send(out, to, address, sync_request{std::move(members), std::move(rumors)});
}

// Ourselves first, then members from a random offset (all of them when they fit
// sync_bytes_max), then the newest rumors that still fit.
std::pair<std::vector<member_record>, std::vector<update>> machine::full_state() {
  std::vector<member_record> records;
  std::vector<update> rumors;
  size_t budget = config_.sync_bytes_max;
  member_record own{key_bytes(self_), self_address_, incarnation_,
                    static_cast<uint8_t>(leaving_ ? member_state::left : member_state::alive)};
  budget -= encoded_bytes(own);
  records.push_back(std::move(own));
  size_t n = members_.size();
  size_t start = n == 0 ? 0 : rng_.below(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& [id, m] = members_.nth((start + i) % n);
    member_record r{key_bytes(id), m.address, m.incarnation, static_cast<uint8_t>(m.state)};
    size_t size = encoded_bytes(r);
    if (size > budget) break;
    budget -= size;
    records.push_back(std::move(r));
  }
  for (auto it = rumor_expiry_.rbegin(); it != rumor_expiry_.rend(); ++it) {  // newest first
    const auto& entry = rumors_.at(it->second);
    update u;
    u.kind = static_cast<uint8_t>(update_kind::rumor);
    u.subject = key_bytes(entry.origin);
    u.rumor_id = it->second;
    u.payload = entry.payload;
    u.age_ms = static_cast<uint64_t>(std::max<int64_t>(0, now_us_ - entry.origin_us) / 1000);
    size_t size = encoded_bytes(u);
    if (size > budget) break;
    budget -= size;
    rumors.push_back(std::move(u));
  }
  return {std::move(records), std::move(rumors)};
}

// memberlist's formula: from max (no confirmation) down to min (all expected confirmations),
// logarithmically in the number of independent confirmations.
int64_t machine::suspicion_deadline(const suspicion& s) const {
  int64_t timeout = s.min_us;
  if (s.expected > 0) {
    double confirmations = static_cast<double>(s.accusers.size() - 1);
    double fraction = std::log(confirmations + 1.0) / std::log(s.expected + 1.0);
    timeout = s.max_us - static_cast<int64_t>(static_cast<double>(s.max_us - s.min_us) * fraction);
    timeout = std::max(timeout, s.min_us);
  }
  return s.start_us + timeout;
}

void machine::arm_suspicion(const node_id& id, suspicion& s) {
  if (s.deadline_us != 0) suspicion_timers_.erase({s.deadline_us, id});
  s.deadline_us = suspicion_deadline(s);
  suspicion_timers_.insert({s.deadline_us, id});
}

int64_t machine::end_suspicion(const node_id& id) {
  auto it = suspicions_.find(id);
  if (it == suspicions_.end()) return -1;
  int64_t start = it->second.start_us;
  suspicion_timers_.erase({it->second.deadline_us, id});
  suspicions_.erase(it);
  return start;
}

void machine::expire_suspicions(int64_t now_us, effects& out) {
  while (!suspicion_timers_.empty() && suspicion_timers_.begin()->first <= now_us) {
    node_id id = suspicion_timers_.begin()->second;
    const member& m = members_.at(id);
    assert(m.state == member_state::suspect);
    ++stats_.failures_declared;
    on_dead(id, m.incarnation, self_, false, false, now_us, out);  // ends the suspicion
  }
}

void machine::expire_tombstones(int64_t now_us) {
  while (!tombstone_order_.empty() &&
         tombstone_order_.front().first + config_.tombstone_us <= now_us) {
    auto [since, id] = tombstone_order_.front();
    tombstone_order_.pop_front();
    auto it = members_.find(id);
    if (it == members_.end() || it->second.state_since_us != since ||
        (it->second.state != member_state::dead && it->second.state != member_state::left))
      continue;  // revived, or already dropped: a stale entry
    members_.erase(id);
    --tombstone_count_;
    ++stats_.tombstones_expired;
  }
}

void machine::expire_rumors(int64_t now_us) {
  while (!rumor_expiry_.empty() &&
         rumor_expiry_.begin()->first + config_.rumor_ttl_us <= now_us) {
    rumors_.erase(rumor_expiry_.begin()->second);
    rumor_expiry_.erase(rumor_expiry_.begin());
  }
}

void machine::store_rumor(uint64_t id, const node_id& origin, bytes payload, int64_t origin_us) {
  while (rumors_.size() >= config_.rumors_max) {  // forget the oldest
    rumors_.erase(rumor_expiry_.begin()->second);
    rumor_expiry_.erase(rumor_expiry_.begin());
  }
  rumors_[id] = rumor_entry{origin, std::move(payload), origin_us};
  rumor_expiry_.insert({origin_us, id});
}

// ---- helpers ---------------------------------------------------------------------------------

// `count` distinct random members that are alive (or suspect, if asked), never `exclude`.
// Small or mostly-dead tables: scan and partially shuffle. Large ones: rejection sampling by
// position (flat_map has O(1) access by index), falling back to the scan if unlucky.
std::vector<node_id> machine::pick_random(size_t count, bool include_suspect,
                                          const node_id& exclude) {
  std::vector<node_id> picked;
  size_t n = members_.size();
  if (count == 0 || n == 0) return picked;
  auto eligible = [&](const std::pair<node_id, member>& entry) {
    return entry.first != exclude &&
           (entry.second.state == member_state::alive ||
            (include_suspect && entry.second.state == member_state::suspect));
  };
  size_t eligible_count = alive_count_ + (include_suspect ? suspect_count_ : 0);
  if (n > 8 * count + 16 && eligible_count * 2 >= n) {
    for (size_t tries = 0; tries < 16 * count && picked.size() < count; ++tries) {
      const auto& entry = members_.nth(rng_.below(n));
      if (!eligible(entry)) continue;
      if (std::find(picked.begin(), picked.end(), entry.first) != picked.end()) continue;
      picked.push_back(entry.first);
    }
    if (picked.size() == count) return picked;
    picked.clear();
  }
  std::vector<size_t> candidates;
  for (size_t i = 0; i < n; ++i)
    if (eligible(members_.nth(i))) candidates.push_back(i);
  size_t take = std::min(count, candidates.size());
  for (size_t i = 0; i < take; ++i) {
    size_t j = i + rng_.below(candidates.size() - i);
    std::swap(candidates[i], candidates[j]);
    picked.push_back(members_.nth(candidates[i]).first);
  }
  return picked;
}

void machine::send(effects& out, const node_id& to, const std::string& address,
                   wire_message message) {
  ++stats_.sent[message.index()];
  if (!std::holds_alternative<gossip>(message)) ++sent_since_gossip_;
  stats_.bytes_sent += encoded_bytes(message);
  auto count = [&](const std::vector<update>& updates) {
    stats_.update_copies_sent += updates.size();
    for (const auto& u : updates)
      if (u.kind == static_cast<uint8_t>(update_kind::rumor)) ++stats_.rumor_copies_sent;
  };
  if (auto* m = std::get_if<ping>(&message)) count(m->updates);
  else if (auto* m = std::get_if<ack>(&message)) count(m->updates);
  else if (auto* m = std::get_if<ping_req>(&message)) count(m->updates);
  else if (auto* m = std::get_if<gossip>(&message)) count(m->updates);
  out.sends.push_back({to, address, std::move(message)});
}

std::string machine::address_of(const node_id& id) const {
  auto it = members_.find(id);
  return it == members_.end() ? std::string() : it->second.address;
}

void machine::health_add(int32_t delta) {
  int64_t next = static_cast<int64_t>(health_) + delta;
  next = std::clamp<int64_t>(next, 0, static_cast<int64_t>(config_.local_health_max) - 1);
  health_ = static_cast<uint32_t>(next);
}

// memberlist's pushPullScale: above 32 members the interval grows with log2(n / 32), so the
// sync traffic (O(n) bytes each) per node stays roughly flat as the mesh grows.
int64_t machine::push_pull_interval() const {
  size_t n = live_count();
  if (n <= 32) return config_.push_pull_interval_us;
  uint32_t doublings = 0;
  for (size_t v = 32; v < n; v *= 2) ++doublings;
  return config_.push_pull_interval_us * (1 + doublings);
}

}  // namespace cmesh::swim
