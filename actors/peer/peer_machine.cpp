#include "actors/peer/peer_machine.hpp"

#include <algorithm>
#include <cassert>

namespace cmesh::peer {

const char* event_name(event_kind kind) {
  switch (kind) {
    case event_kind::peer_added: return "peer_added";
    case event_kind::peer_removed: return "peer_removed";
    case event_kind::pong: return "pong";
    case event_kind::dial_failed: return "dial_failed";
    case event_kind::seed_dialed: return "seed_dialed";
    case event_kind::refused: return "refused";
  }
  return "unknown";
}

machine::machine(node_id self, std::string self_address, std::vector<seed> seeds, config cfg,
                 uint64_t rng_seed)
    : self_(self), self_address_(std::move(self_address)), seeds_(std::move(seeds)),
      config_(cfg), rng_(rng_seed) {
  assert(config_.peer_table_max > 0);
  // A node never dials itself: drop seeds that name our own address.
  std::erase_if(seeds_, [&](const seed& s) { return s.address == self_address_; });
}

void machine::start(int64_t now_ms, const std::vector<peer_record>& remembered, effects& out) {
  for (const auto& record : remembered) {
    if (record.key.size() != 32) continue;
    auto id = node_id::from_bytes(record.key.data());
    if (id == self_ || peers_.size() >= config_.peer_table_max) continue;
    add_peer(now_ms, id, record.address, false, "remembered", out);
    if (peers_.count(id) == 0) continue;
    // A restarted transport knows no addresses: introduce the peer so the ping has a route.
    out.introductions.push_back({id, record.address});
    send_ping(now_ms, id, peers_.at(id), out);
  }
  for (const auto& s : seeds_) {
    out.dials.push_back(s);
    out.events.push_back({event_kind::seed_dialed, s.pinned, s.address});
  }
  last_seed_dial_ms_ = now_ms;
  last_exchange_ms_ = now_ms;
}

void machine::on_peer_up(int64_t now_ms, const node_id& peer, const std::string& address,
                         effects& out) {
  if (peer == self_) return;
  auto it = peers_.find(peer);
  if (it == peers_.end()) {
    add_peer(now_ms, peer, address, true, "connection", out);
    it = peers_.find(peer);
    if (it == peers_.end()) return;  // table full of healthy peers
  } else {
    if (!address.empty() && it->second.address != address) {
      it->second.address = address;
      dirty_ = true;
    }
    it->second.confirmed = true;
  }
  heard_from(now_ms, peer);
  // A new connection gets a sample of our peers: this is how a joiner learns the mesh.
  out.sends.push_back({peer, sample_for(peer, now_ms)});
}

void machine::on_peer_down(int64_t, const node_id&, effects&) {
  // Informational: the connection closed. Liveness is decided by pings, so a transient
  // reconnect does not evict a healthy peer.
}

void machine::on_dial_failed(int64_t, const std::string& address, const std::string& reason,
                             effects& out) {
  out.events.push_back({event_kind::dial_failed, node_id{}, address + ": " + reason});
}

void machine::on_message(int64_t now_ms, const node_id& from, const wire_message& message,
                         effects& out) {
  if (from == self_) return;
  heard_from(now_ms, from);
  if (auto* p = std::get_if<ping>(&message)) {
    // A ping from a node we do not know (it learned of us from a peer list): add it, so that
    // links become symmetric whichever side discovered the other.
    if (peers_.count(from) == 0 && !p->address.empty() &&
        p->address.size() <= limits::address_chars_max && peers_.size() < config_.peer_table_max)
      add_peer(now_ms, from, p->address, true, "ping", out);
    out.sends.push_back({from, pong{p->nonce}});
  } else if (auto* p = std::get_if<pong>(&message)) {
    auto it = peers_.find(from);
    // Late, unknown, or nonce 0 (which answers nothing: 0 means no ping outstanding).
    if (it == peers_.end() || p->nonce == 0 || it->second.ping_nonce != p->nonce) return;
    auto& state = it->second;
    state.rtt_ms = now_ms - state.ping_sent_ms;
    state.ping_nonce = 0;
    state.missed = 0;
    ++state.pongs;
    out.events.push_back({event_kind::pong, from, {}, state.rtt_ms});
  } else if (auto* list = std::get_if<peer_list>(&message)) {
    size_t taken = 0;
    for (const auto& record : list->peers) {
      if (++taken > limits::peer_list_entries_max) break;  // sender over the limit: ignore rest
      if (record.key.size() != 32 || record.address.empty()) continue;
      if (record.address.size() > limits::address_chars_max) continue;
      auto id = node_id::from_bytes(record.key.data());
      if (id == self_ || peers_.count(id) != 0) continue;
      if (peers_.size() >= config_.peer_table_max) break;  // learned peers never evict others
      add_peer(now_ms, id, record.address, false, "peer_list", out);
      out.introductions.push_back({id, record.address});
      if (peers_.count(id)) send_ping(now_ms, id, peers_.at(id), out);
    }
  } else if (std::get_if<goodbye>(&message)) {
    remove_peer(from, "goodbye", out);
  }
}

void machine::tick(int64_t now_ms, effects& out) {
  expire_pings(now_ms, out);
  start_probes(now_ms, out);
  if (now_ms - last_exchange_ms_ >= config_.exchange_interval_ms) exchange(now_ms, out);
  redial_seeds(now_ms, out);
}

void machine::shutdown(effects& out) {
  for (const auto& [id, state] : peers_)
    if (state.confirmed) out.sends.push_back({id, goodbye{0}});
}

std::vector<peer_record> machine::snapshot() const {
  std::vector<peer_record> records;
  records.reserve(peers_.size());
  for (const auto& [id, state] : peers_) {
    if (state.address.empty()) continue;
    records.push_back({bytes(id.key.begin(), id.key.end()), state.address});
  }
  return records;
}

// ---- internals -------------------------------------------------------------------------------

void machine::add_peer(int64_t now_ms, const node_id& peer, const std::string& address,
                       bool confirmed, const char* via, effects& out) {
  if (peers_.size() >= config_.peer_table_max && !(confirmed && make_room(out))) {
    out.events.push_back({event_kind::refused, peer, "peer table full"});
    return;
  }
  peer_state state;
  state.address = address;
  state.added_ms = now_ms;
  state.last_heard_ms = confirmed ? now_ms : 0;
  state.confirmed = confirmed;
  peers_.emplace(peer, std::move(state));
  dirty_ = true;
  out.events.push_back({event_kind::peer_added, peer, std::string(via) + " " + address});
}

void machine::remove_peer(const node_id& peer, const char* reason, effects& out) {
  if (peers_.erase(peer) == 0) return;
  dirty_ = true;
  out.events.push_back({event_kind::peer_removed, peer, reason});
}

// Evict the least healthy peer (most missed pings, then least recently heard) to admit a direct
// connection. Returns false if the table is empty (nothing to evict).
bool machine::make_room(effects& out) {
  if (peers_.empty()) return false;
  auto victim = peers_.begin();
  for (auto it = peers_.begin(); it != peers_.end(); ++it) {  // O(n), only when full
    const auto& a = it->second;
    const auto& b = victim->second;
    if (a.missed > b.missed || (a.missed == b.missed && a.last_heard_ms < b.last_heard_ms))
      victim = it;
  }
  auto id = victim->first;
  remove_peer(id, "evicted", out);
  return true;
}

void machine::send_ping(int64_t now_ms, const node_id& peer, peer_state& state, effects& out) {
  state.ping_nonce = next_nonce_++;
  state.ping_sent_ms = now_ms;
  outstanding_.push_back({now_ms + config_.ping_timeout_ms, peer, state.ping_nonce});
  out.sends.push_back({peer, ping{state.ping_nonce, self_address_}});
}

void machine::expire_pings(int64_t now_ms, effects& out) {
  while (!outstanding_.empty() && outstanding_.front().deadline_ms <= now_ms) {
    auto expired = outstanding_.front();
    outstanding_.pop_front();
    auto it = peers_.find(expired.peer);
    if (it == peers_.end() || it->second.ping_nonce != expired.nonce) continue;  // answered
    it->second.ping_nonce = 0;
    if (++it->second.missed >= config_.missed_pings_max) {
      remove_peer(expired.peer, "ping timeout", out);
      continue;
    }
    // A suspect is probed again at once rather than waiting to be drawn: detection then takes
    // missed_pings_max timeouts from the first miss, whatever the table size.
    send_ping(now_ms, expired.peer, it->second, out);
  }
}

void machine::start_probes(int64_t now_ms, effects& out) {
  // Round-robin over the table (ordered by key): every peer is probed at least once every
  // size / pings_per_tick ticks, so silence is noticed within a bounded time whatever the draw.
  // Peers with a ping in flight or pinged within ping_interval_ms are skipped.
  uint32_t sent = 0;
  for (size_t looked = 0; looked < peers_.size() && sent < config_.pings_per_tick; ++looked) {
    auto& [id, state] = peers_.nth(probe_cursor_++ % peers_.size());
    if (state.ping_nonce != 0 || now_ms - state.ping_sent_ms < config_.ping_interval_ms) continue;
    send_ping(now_ms, id, state, out);
    ++sent;
  }
}

void machine::exchange(int64_t now_ms, effects& out) {
  last_exchange_ms_ = now_ms;
  if (peers_.empty()) return;
  auto receiver = peers_.nth(rng_.below(peers_.size())).first;
  out.sends.push_back({receiver, sample_for(receiver, now_ms)});
}

void machine::redial_seeds(int64_t now_ms, effects& out) {
  uint32_t interval = peers_.empty() ? config_.lonely_redial_ms : config_.seed_redial_ms;
  if (seeds_.empty() || now_ms - last_seed_dial_ms_ < interval) return;
  last_seed_dial_ms_ = now_ms;
  for (const auto& s : seeds_) {
    bool known = std::any_of(peers_.begin(), peers_.end(), [&](const auto& entry) {
      return entry.second.confirmed && entry.second.address == s.address;
    });
    if (known) continue;
    out.dials.push_back(s);
    out.events.push_back({event_kind::seed_dialed, s.pinned, s.address});
  }
}

peer_list machine::sample_for(const node_id& receiver, int64_t now_ms) {
  // Only healthy peers are shared: confirmed, no missed ping, heard from recently. Sharing every
  // peer ever seen would hand a node back a dead peer it had just removed.
  std::vector<const std::pair<node_id, peer_state>*> candidates;
  for (const auto& entry : peers_) {
    const auto& state = entry.second;
    if (entry.first == receiver || !state.confirmed || state.address.empty() || state.missed != 0 ||
        now_ms - state.last_heard_ms > config_.share_heard_within_ms)
      continue;
    candidates.push_back(&entry);
  }
  size_t picks = std::min(limits::peer_list_entries_max, candidates.size());
  peer_list list;
  list.peers.reserve(picks);
  for (size_t i = 0; i < picks; ++i) {
    size_t j = i + rng_.below(candidates.size() - i);
    std::swap(candidates[i], candidates[j]);
    const auto& [id, state] = *candidates[i];
    list.peers.push_back({bytes(id.key.begin(), id.key.end()), state.address});
  }
  return list;
}

void machine::heard_from(int64_t now_ms, const node_id& peer) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  it->second.last_heard_ms = now_ms;
  it->second.confirmed = true;
}

}  // namespace cmesh::peer
