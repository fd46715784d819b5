// Peer protocol machine: join through seed addresses, exchange peer lists, ping peers.
//
// The first protocol over the transport seam, small on purpose (full membership replaces it later).
// Pure: no CAF, no I/O, no clock, no global randomness. Time comes in as `now_ms` (virtual or actor
// clock), randomness from the seeded `rng` handed in at construction. Every input appends what the
// node must do to `effects`; the actor shell (peer_actor) carries them out.
// Spec: docs/peer-protocol.md.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <variant>
#include <vector>

#include "messages/node_id.hpp"
#include "messages/peer_messages.hpp"
#include "runtime/core/flat_map.hpp"
#include "runtime/core/limits.hpp"
#include "runtime/core/rng.hpp"

namespace cmesh::peer {

struct config {
  uint32_t tick_ms = 500;                    // how often the shell calls tick()
  uint32_t ping_interval_ms = 1000;          // a peer is pinged at most this often
  uint32_t pings_per_tick = 3;               // probes started per tick, round-robin (bounds traffic)
  uint32_t ping_timeout_ms = 2000;           // an unanswered ping counts as missed after this
  uint32_t missed_pings_max = 3;             // consecutive misses before a peer is removed
  uint32_t exchange_interval_ms = 2000;      // one peer-list sample to one random peer this often
  uint32_t seed_redial_ms = 10000;           // re-dial seeds that are not peers (heals partitions)
  uint32_t lonely_redial_ms = 2000;          // re-dial seeds this often while we have no peers
  uint32_t persist_interval_ms = 1000;       // the shell persists a dirty table at most this often
  uint32_t share_heard_within_ms = 5000;     // peer lists carry only peers heard from this recently
  size_t peer_table_max = limits::peer_table_max;
};

struct seed {
  std::string address;
  node_id pinned;  // all zero = accept whoever answers at that address
};

struct peer_state {
  std::string address;            // where it listens; may be empty if never told
  int64_t added_ms = 0;
  int64_t last_heard_ms = 0;
  uint64_t ping_nonce = 0;        // outstanding ping, 0 = none
  int64_t ping_sent_ms = 0;
  uint32_t missed = 0;
  int64_t rtt_ms = -1;            // last measured round trip, -1 = none yet
  uint64_t pongs = 0;
  bool confirmed = false;         // heard from directly (peer_up or any message)
};

enum class event_kind { peer_added, peer_removed, pong, dial_failed, seed_dialed, refused };
const char* event_name(event_kind kind);

struct event {
  event_kind kind;
  node_id peer;
  std::string detail;  // reason or address
  int64_t value = 0;   // rtt for pong
};

using wire_message = std::variant<ping, pong, peer_list, goodbye>;

struct effects {
  struct send {
    node_id to;
    wire_message message;
  };
  struct introduction {
    node_id peer;
    std::string address;
  };
  std::vector<send> sends;
  std::vector<seed> dials;
  std::vector<introduction> introductions;  // tell the transport where a peer listens
  std::vector<event> events;

  void clear() {
    sends.clear();
    dials.clear();
    introductions.clear();
    events.clear();
  }
};

class machine {
public:
  machine(node_id self, std::string self_address, std::vector<seed> seeds, config cfg,
          uint64_t rng_seed);

  // First input. `remembered` are peers persisted by an earlier run (restart after a crash).
  void start(int64_t now_ms, const std::vector<peer_record>& remembered, effects& out);
  // The transport authenticated a connection to `peer`, which listens at `address`.
  void on_peer_up(int64_t now_ms, const node_id& peer, const std::string& address, effects& out);
  void on_peer_down(int64_t now_ms, const node_id& peer, effects& out);
  void on_dial_failed(int64_t now_ms, const std::string& address, const std::string& reason,
                      effects& out);
  void on_message(int64_t now_ms, const node_id& from, const wire_message& message, effects& out);
  void tick(int64_t now_ms, effects& out);
  // Clean shutdown: goodbye to every peer.
  void shutdown(effects& out);

  const flat_map<node_id, peer_state>& peers() const { return peers_; }
  const node_id& self() const { return self_; }
  const config& configuration() const { return config_; }
  // True when the table changed since the last clear_dirty(); the shell persists it.
  bool dirty() const { return dirty_; }
  void clear_dirty() { dirty_ = false; }
  std::vector<peer_record> snapshot() const;

private:
  void add_peer(int64_t now_ms, const node_id& peer, const std::string& address, bool confirmed,
                const char* via, effects& out);
  void remove_peer(const node_id& peer, const char* reason, effects& out);
  bool make_room(effects& out);
  void send_ping(int64_t now_ms, const node_id& peer, peer_state& state, effects& out);
  void expire_pings(int64_t now_ms, effects& out);
  void start_probes(int64_t now_ms, effects& out);
  void exchange(int64_t now_ms, effects& out);
  void redial_seeds(int64_t now_ms, effects& out);
  peer_list sample_for(const node_id& receiver, int64_t now_ms);
  void heard_from(int64_t now_ms, const node_id& peer);

  node_id self_;
  std::string self_address_;
  std::vector<seed> seeds_;
  config config_;
  rng rng_;
  flat_map<node_id, peer_state> peers_;
  // Outstanding pings in send order; deadlines are monotonic because the timeout is constant,
  // so expiry pops from the front. Entries whose nonce no longer matches are stale and skipped.
  struct outstanding_ping {
    int64_t deadline_ms;
    node_id peer;
    uint64_t nonce;
  };
  std::deque<outstanding_ping> outstanding_;
  int64_t last_exchange_ms_ = 0;
  int64_t last_seed_dial_ms_ = 0;
  uint64_t next_nonce_ = 1;
  size_t probe_cursor_ = 0;  // round-robin position for probes
  bool dirty_ = false;
};

}  // namespace cmesh::peer
