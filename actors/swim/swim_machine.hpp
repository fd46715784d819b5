// imAlive membership as a SWIM-style pure machine (Das, Gupta, Motivala 2002) with the cheap
// Lifeguard refinements (local health, suspicion shortened by independent confirmations, nacks
// from relays, the suspect told of its suspicion when probed).
//
// What it does: keeps a table of members (node id + address + incarnation + state), probes one
// member per protocol period (round-robin over a list reshuffled every pass), asks
// `indirect_probes` others to probe it when the direct ping goes unanswered, and marks it suspect
// when no ack came by the probe deadline. A suspect that hears of it refutes with a higher
// incarnation; one that does not is declared failed after the suspicion timeout. Joins, leaves,
// suspicions, failures and user rumors are disseminated piggybacked on probe traffic and by a
// dedicated gossip round to `gossip_fanout` random members; push-pull full-state syncs with a
// random member, with recently failed members and with seed addresses heal partitions.
//
// Pure: no CAF, no I/O, no clock, no global randomness, no threads. Time comes in as `now_us`
// (virtual or actor clock, microseconds, non-decreasing); randomness from the seeded `rng` handed
// in. Every input appends what the node must do to `effects`; the actor shell carries them out.
// Iteration on every path that sends is over ordered containers. Owned by one actor; not
// thread-safe. Spec: docs/membership.md.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "messages/error.hpp"
#include "messages/node_id.hpp"
#include "messages/swim_messages.hpp"
#include "runtime/core/flat_map.hpp"
#include "runtime/core/rng.hpp"

namespace cmesh::swim {

// ---- hard bounds (wire-facing; a config cannot raise them) ----------------------------------
// A rumor is a small notice (a tag, a key, a reputation report id), not a data channel: 512 bytes
// keeps one rumor well inside one piggyback budget.
inline constexpr size_t rumor_payload_bytes_max = 512;
// Updates read from one incoming message; the rest are ignored (a hostile peer cannot make one
// message cost more than this many table operations).
inline constexpr size_t updates_per_message_max = 256;
// Indirect probes per failed ping and gossip targets per round: more buys nothing (the miss
// probability is already ~loss^k) and multiplies traffic.
inline constexpr uint32_t indirect_probes_max = 16;
inline constexpr uint32_t gossip_fanout_max = 16;
// Local health (Lifeguard) saturates here: timeouts stretch at most this many times.
inline constexpr uint32_t local_health_limit = 16;

struct config {
  int64_t tick_us = 50'000;                // how often the shell calls tick() (or use
                                           // next_deadline_us()); timers are exact to this
  int64_t protocol_period_us = 1'000'000;  // one probe started per period
  int64_t ping_timeout_us = 150'000;       // no direct ack by then -> indirect probes
  int64_t probe_timeout_us = 400'000;      // no ack at all by then -> suspect (<= period); with
                                           // a probe every period this gives a first suspicion
                                           // ~1.4 periods after a crash on average
  uint32_t indirect_probes = 3;            // k relays asked by ping_req
  int64_t gossip_interval_us = 200'000;    // one dedicated gossip round per interval
  uint32_t gossip_fanout = 4;              // random live members sent pending updates per round
  uint32_t messages_per_round_max = 4;     // send budget per gossip interval: the round's fanout
                                           // shrinks by the probe/relay/sync messages sent since
                                           // the last round (to 0 when they spent it: they
                                           // carry updates too); 0 = no budget
  uint32_t eager_fanout = 0;               // rumors only: on broadcast and on the first copy,
                                           // send the rumor at once, alone, to this many random
                                           // live members (not the sender, not the origin),
                                           // outside the round budget; the rounds still carry
                                           // it for reliability. 0 = rumors move with rounds
  uint32_t retransmit_mult = 8;            // membership news is sent mult * ceil(log10(n+1)) times
  uint32_t rumor_retransmit_mult = 4;      // ...and a user rumor this mult * ceil(log10(n+1)) times
  uint32_t suspicion_mult = 4;             // min suspicion = mult * log10(n) * period
  uint32_t suspicion_max_timeout_mult = 6; // max suspicion = this * min (no confirmations)
  int64_t push_pull_interval_us = 10'000'000;  // full sync with one random member; stretched
                                               // above 32 members like memberlist
  int64_t reconnect_interval_us = 10'000'000;  // full sync with one random failed member (heals
                                               // partitions), or a seed while alone
  int64_t seed_sync_interval_us = 30'000'000;  // full sync with a seed that is not a live member
  int64_t join_retry_us = 250'000;         // a join that has reached no one yet (the seed was not
                                           // up) is retried after this, doubling up to
                                           // reconnect_interval_us, until a member is known
  int64_t tombstone_us = 120'000'000;      // dead/left entries kept this long, then dropped
  int64_t rumor_ttl_us = 120'000'000;      // a rumor id is remembered (deduplicated) this long
  uint32_t local_health_max = 8;           // Lifeguard: timeouts scale by (1 + health), health
                                           // in [0, local_health_max - 1]
  bool stagger_timers = true;              // random phase for the first period and gossip round
                                           // (false: every machine started at the same time
                                           // ticks in lockstep, the worst case for rounds)
  // ---- bounds, each with its reason ----
  size_t member_table_max = 16384;     // full membership for the 10,000-agent target with
                                       // headroom; ~100 bytes each, ~1.6 MB per node
  size_t updates_queue_max = 1024;     // pending updates per queue (membership, rumors); past it
                                       // the most-sent, oldest go first (a mass failure must not
                                       // grow memory without bound)
  size_t piggyback_bytes_max = 1200;   // updates bytes in one message: the whole message stays
                                       // inside one 1,400-byte datagram-sized frame
  size_t rumors_max = 1024;            // rumor ids remembered for deduplication (FIFO)
  size_t relays_max = 256;             // ping_req relays in flight; a flood cannot grow state
  // Partial views: news about a member this node does not hold (its table is smaller than the
  // mesh) is passed on all the same, once per (member, newer state): otherwise a suspicion never
  // reaches the suspect nor its refutation the other holders, and healthy agents are removed.
  // The newest state relayed per member is remembered (FIFO) to tell a repeat from news.
  size_t foreign_relays_max = 256;
  // ...and relayed only while the membership queue holds fewer than this many updates: under a
  // mass failure the members a node holds come first, and memory stays bounded (10,000 agents
  // with full queues of relayed news would take gigabytes).
  size_t foreign_queue_max = 32;
  size_t sync_bytes_max = 512 * 1024;  // one full-state sync (members + rumors): half an envelope
                                       // (limits::envelope_bytes_max) leaves room for framing
};

// Checks intervals and bounds; the message names the field. Errors: invalid_argument.
status validate(const config& c);

enum class member_state : uint8_t { alive = 0, suspect = 1, dead = 2, left = 3 };
const char* member_state_name(member_state state);

struct member {
  std::string address;       // where it listens
  uint64_t incarnation = 0;  // highest incarnation heard for it
  member_state state = member_state::alive;
  int64_t state_since_us = 0;  // when this node saw it enter `state`
};

// A seed address to join through; `pinned` all zero = whoever answers there.
struct seed {
  std::string address;
  node_id pinned;
};

enum class event_kind : uint8_t {
  member_joined,     // new member, or a failed/left one back with a higher incarnation
  member_suspected,  // alive -> suspect
  member_alive,      // suspect -> alive: it refuted
  member_failed,     // declared dead; value_us = how long this node held it suspect (0 = never)
  member_left,       // graceful leave
  rumor_received,    // a user rumor, first copy
  self_refuted,      // this node heard it was suspected/declared dead and bumped its incarnation
};
const char* event_name(event_kind kind);

struct event {
  event_kind kind;
  node_id member;  // the subject (rumor: its origin)
  uint64_t incarnation = 0;
  int64_t value_us = 0;
  std::string address;  // member_joined
  uint64_t rumor_id = 0;
  bytes payload;  // rumor_received
};

using wire_message = std::variant<ping, ack, ping_req, nack, gossip, sync_request, sync_response>;
inline constexpr size_t message_kinds = std::variant_size_v<wire_message>;
const char* message_name(size_t index);  // index of the alternative in wire_message

// Exact msgpack sizes of the payload (the envelope adds its own ~45 bytes).
size_t encoded_bytes(const update& u);
size_t encoded_bytes(const member_record& r);
size_t encoded_bytes(const wire_message& message);

struct effects {
  struct send {
    node_id to;           // all zero: a seed contacted by address only
    std::string address;  // where `to` listens ("" if unknown: reply on the link it came from)
    wire_message message;
  };
  std::vector<send> sends;
  std::vector<event> events;

  void clear() {
    sends.clear();
    events.clear();
  }
};

struct stats {
  std::array<uint64_t, message_kinds> sent{};      // by wire_message alternative
  std::array<uint64_t, message_kinds> received{};
  uint64_t bytes_sent = 0;           // encoded payload bytes of every sent message
  uint64_t update_copies_sent = 0;   // updates carried by sent messages (piggyback + gossip)
  uint64_t rumor_copies_sent = 0;
  uint64_t rumor_duplicates = 0;     // rumor copies received that were already known
  uint64_t eager_pushes = 0;         // rumor copies sent at once (config::eager_fanout)
  uint64_t join_retries = 0;         // joins sent again because no seed had answered
  uint64_t probes = 0;
  uint64_t probes_failed = 0;
  uint64_t ping_reqs_sent = 0;
  uint64_t nacks_received = 0;
  uint64_t suspicions_raised = 0;    // by this node's own probes
  uint64_t failures_declared = 0;    // by this node's suspicion timers
  uint64_t refutations = 0;
  uint64_t tombstones_expired = 0;
  uint64_t members_refused = 0;      // new members not admitted: table full of live members
  uint64_t updates_dropped = 0;      // evicted from a full queue before their transmit limit
  uint64_t foreign_relayed = 0;      // updates about members not held, passed on
  uint64_t foreign_dropped = 0;      // ...not passed on: the membership queue was busy
  uint64_t items_rejected = 0;       // malformed or over-bound items in received messages
  uint64_t relays_refused = 0;       // ping_req dropped: relays_max in flight
  uint64_t syncs_sent = 0;
};

class machine {
public:
  // REQUIRES: validate(cfg).ok(), self not zero, self_address not empty.
  machine(config cfg, node_id self, std::string self_address, rng random);

  // Join through seed addresses: a push-pull sync with each, and our own `alive` queued for
  // dissemination. Seeds are also synced with later (while alone, and every
  // seed_sync_interval_us when a seed is not a live member). Seeds at our own address are dropped.
  // Until some member is known, the syncs are retried with backoff from join_retry_us.
  void join(const std::vector<seed>& seeds, int64_t now_us, effects& out);
  // Adds members persisted by an earlier run (or set up by a harness) as alive, without
  // disseminating them; they are probed like any member. Skips self, bad keys and overflow.
  void restore(const std::vector<member_record>& known, int64_t now_us);
  // Timers: probes, gossip rounds, syncs, suspicion and tombstone expiry. Call every tick_us, or
  // at next_deadline_us().
  void tick(int64_t now_us, effects& out);
  // When tick() must next be called at the latest.
  int64_t next_deadline_us() const;
  // A message from `from` (authenticated by the transport).
  void receive(const node_id& from, const wire_message& message, int64_t now_us, effects& out);
  // Graceful leave: a `left` update is disseminated at once to gossip_fanout members and then by
  // the usual rounds; probing stops. Keep ticking until leave_complete(), then stop the node.
  void leave(int64_t now_us, effects& out);
  // Disseminates an opaque rumor. Errors: too_large (payload over rumor_payload_bytes_max),
  // already_exists (id known here), unavailable (leaving).
  status broadcast_rumor(uint64_t id, bytes payload, int64_t now_us, effects& out);

  // ---- queries ----
  const flat_map<node_id, member>& members() const { return members_; }  // self not included
  size_t live_count() const;  // alive + suspect members, plus self unless leaving
  bool has_rumor(uint64_t id) const { return rumors_.count(id) != 0; }
  const bytes* rumor_payload(uint64_t id) const;
  const stats& statistics() const { return stats_; }
  uint64_t incarnation() const { return incarnation_; }
  uint32_t local_health() const { return health_; }
  size_t pending_updates() const {
    return member_updates_.items.size() + rumor_updates_.items.size();
  }
  size_t suspect_count() const { return suspect_count_; }
  bool leaving() const { return leaving_; }
  bool leave_complete() const;
  const node_id& self() const { return self_; }
  const std::string& self_address() const { return self_address_; }
  const config& configuration() const { return config_; }
  // Transmissions an update gets at the current cluster size: retransmit_mult*ceil(log10(n+1))
  // (rumor_retransmit_mult for user rumors).
  uint32_t transmit_limit(bool rumor = false) const;
  // Current suspicion timeout for a suspect member (0 if it is not suspect here).
  int64_t suspicion_timeout_us(const node_id& id) const;
  // Alive and suspect members as records, for the shell to persist.
  std::vector<member_record> snapshot() const;

private:
  // Updates queue: ordered by (transmits ascending, newest first); one entry per subject.
  struct subject_key {
    uint8_t family = 0;  // 0 = member state, 1 = rumor
    node_id id;
    uint64_t rumor_id = 0;
    friend auto operator<=>(const subject_key&, const subject_key&) = default;
  };
  using queue_position = std::pair<uint32_t, uint64_t>;  // (transmits, ~creation sequence)
  struct queued_update {
    update body;
    subject_key key;
    size_t size = 0;
    int64_t origin_us = 0;  // rumor: local time the origin broadcast it (age_ms is set from it)
  };
  struct probe_state {
    bool active = false;
    node_id target;
    std::string address;
    uint64_t incarnation = 0;
    uint64_t seq = 0;
    int64_t direct_deadline_us = 0;
    int64_t deadline_us = 0;
    bool indirect_sent = false;
    uint32_t nacks_expected = 0;
    uint32_t nacks = 0;
  };
  struct suspicion {
    int64_t start_us = 0;
    int64_t min_us = 0;
    int64_t max_us = 0;
    uint32_t expected = 0;           // confirmations that bring the timeout down to min
    std::vector<node_id> accusers;  // first accuser, then independent confirmations
    int64_t deadline_us = 0;        // start + timeout for the confirmations so far
  };
  struct relay {
    node_id origin;
    uint64_t origin_seq = 0;
    node_id target;  // only its ack is forwarded
    int64_t nack_at_us = 0;
  };
  struct rumor_entry {
    node_id origin;
    bytes payload;
    int64_t origin_us = 0;  // local time of the origin's broadcast: now - age on arrival
  };

  void ensure_started(int64_t now_us);
  // state changes (precedence rules)
  void apply_update(const update& u, bool from_sync, const node_id& from, int64_t now_us,
                    effects& out);
  void on_alive(const node_id& id, uint64_t incarnation, const std::string& address,
                int64_t now_us, effects& out);
  void on_suspect(const node_id& id, uint64_t incarnation, const node_id& accuser,
                  int64_t now_us, effects& out);
  void on_dead(const node_id& id, uint64_t incarnation, const node_id& accuser, bool left,
               bool from_sync, int64_t now_us, effects& out);
  void on_rumor(const update& u, const node_id& from, int64_t now_us, effects& out);
  void eager_push(const update& u, const node_id& from, const node_id& origin, effects& out);
  void refute(uint64_t accused_incarnation, effects& out);
  void set_state(member& m, member_state state, int64_t now_us);
  bool make_room();
  // Passes on news about a member not held, unless the same or a newer state was relayed before.
  void relay_foreign(update u);
  void merge(const std::vector<member_record>& records, const std::vector<update>& rumors,
             const node_id& from, int64_t now_us, effects& out);
  // probing
  void start_probe(int64_t now_us, effects& out);
  void advance_probe(int64_t now_us, effects& out);
  void send_indirect(int64_t now_us, effects& out);
  void probe_finished(bool acked, int64_t now_us, effects& out);
  void on_ping_req(const node_id& from, const ping_req& request, int64_t now_us, effects& out);
  void expire_relays(int64_t now_us, effects& out);
  bool next_probe_target(node_id& target);
  void add_to_probe_order(const node_id& id);
  // dissemination
  void enqueue(update body, int64_t origin_us = 0);
  std::vector<update> take_updates(size_t bytes_budget);
  void gossip_round(int64_t now_us, effects& out);
  // syncs and expiry
  void push_pull(int64_t now_us, effects& out);
  void reconnect(int64_t now_us, effects& out);
  void seed_sync(int64_t now_us, effects& out);
  void retry_join(int64_t now_us, effects& out);
  void send_sync(const node_id& to, const std::string& address, effects& out);
  std::pair<std::vector<member_record>, std::vector<update>> full_state();
  void expire_suspicions(int64_t now_us, effects& out);
  void expire_tombstones(int64_t now_us);
  void expire_rumors(int64_t now_us);
  void store_rumor(uint64_t id, const node_id& origin, bytes payload, int64_t origin_us);
  // helpers
  std::vector<node_id> pick_random(size_t count, bool include_suspect, const node_id& exclude);
  void send(effects& out, const node_id& to, const std::string& address, wire_message message);
  std::string address_of(const node_id& id) const;
  int64_t scaled(int64_t duration_us) const { return duration_us * (1 + health_); }
  void health_add(int32_t delta);
  int64_t push_pull_interval() const;
  int64_t suspicion_deadline(const suspicion& s) const;
  void arm_suspicion(const node_id& id, suspicion& s);
  int64_t end_suspicion(const node_id& id);  // returns its start, or -1 if none
  update alive_update(const node_id& id, uint64_t incarnation, const std::string& address) const;

  config config_;
  node_id self_;
  std::string self_address_;
  rng rng_;
  uint64_t incarnation_ = 0;
  bool started_ = false;
  bool leaving_ = false;
  uint32_t health_ = 0;
  flat_map<node_id, member> members_;
  size_t alive_count_ = 0;
  size_t suspect_count_ = 0;
  size_t tombstone_count_ = 0;
  std::vector<seed> seeds_;

  std::vector<node_id> probe_order_;
  size_t probe_cursor_ = 0;
  probe_state probe_;
  uint64_t next_seq_ = 1;

  std::map<node_id, suspicion> suspicions_;
  std::set<std::pair<int64_t, node_id>> suspicion_timers_;  // (deadline, member), earliest first
  // Two queues so that a burst of membership news (a mass failure) cannot starve user rumors, nor
  // rumors starve refutations: each message gives each queue at least half of its budget.
  struct update_queue {
    std::map<queue_position, queued_update> items;
    std::map<subject_key, queue_position> index;
  };
  update_queue member_updates_;  // alive, suspect, dead, left
  std::map<node_id, uint64_t> foreign_relayed_;  // member -> rank of the newest state relayed
  std::deque<node_id> foreign_order_;            // FIFO for foreign_relays_max
  update_queue rumor_updates_;   // user rumors
  void take_from(const update_queue& queue, size_t& bytes_budget,
                 std::vector<queue_position>& used, std::vector<update>& taken) const;
  void count_transmissions(update_queue& queue, const std::vector<queue_position>& used);
  uint64_t next_update_sequence_ = 1;
  std::map<uint64_t, relay> relays_;  // by relay seq: creation order, so nack times ascend
  std::map<uint64_t, rumor_entry> rumors_;
  std::set<std::pair<int64_t, uint64_t>> rumor_expiry_;      // (origin_us, id), oldest first
  std::deque<std::pair<int64_t, node_id>> tombstone_order_;     // (since_us, id)

  int64_t next_probe_us_ = 0;
  int64_t next_gossip_us_ = 0;
  int64_t next_push_pull_us_ = 0;
  int64_t next_reconnect_us_ = 0;
  int64_t next_seed_sync_us_ = 0;
  int64_t next_join_retry_us_ = std::numeric_limits<int64_t>::max();  // max: not joining
  int64_t join_backoff_us_ = 0;
  int64_t now_us_ = 0;  // time of the current input
  uint32_t sent_since_gossip_ = 0;  // non-gossip messages since the last gossip round
  stats stats_;
};

}  // namespace cmesh::swim
