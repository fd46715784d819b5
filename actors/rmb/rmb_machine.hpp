// Reliable message bus agent as a pure machine: one agent per node hosts twins (one per user
// identity) and carries signed envelopes between them with acknowledgement, retries with
// backoff, deduplication by (source twin, uid), expiry, and an error back to the sender for
// anything that cannot be delivered. Spec: docs/rmb.md.
//
// Pure: no CAF, no I/O, no clock, no global randomness. Time comes in as `now_us` (mesh epoch:
// Unix epoch in real mode, virtual time in simulation; every agent must use the same epoch because
// envelope times cross nodes). Randomness (uids, retry jitter) comes from the seeded rng handed in.
// Signing and verifying are deterministic ed25519 (runtime/crypto/identity.hpp).
//
// Every input appends to `effects` what the node must do, and the shell carries it out in this
// order: (1) apply `persist` in order in one store transaction and make it durable (rmb_store);
// (2) send `sends` through the transport; (3) hand `deliveries` to twins and `outcomes` to the
// twins that sent. Persist before send is what makes deduplication survive a crash of the
// receiver: the record of an accepted envelope (and later its cached reply) is durable before the
// acknowledgement (or reply) leaves, so a retry after a restart is recognised as a duplicate.
//
// Ownership: one machine per node, owned by that node's RMB agent actor. Not thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "actors/rmb/rmb_envelope.hpp"
#include "messages/error.hpp"
#include "messages/node_id.hpp"
#include "messages/rmb_messages.hpp"
#include "runtime/core/rng.hpp"
#include "runtime/crypto/identity.hpp"

namespace cmesh::rmb {

// Every bound of the bus, each with its reason. Checked by validate().
struct config {
  node_id self;                              // this agent's node (loopback for local twins)
  uint32_t tick_ms = 100;                    // how often the shell calls tick(); retries and
                                             // expiries fire up to one tick late
  uint32_t expiry_s_default = 300;           // lifetime of an envelope sent without one (issue)
  uint32_t expiry_s_max = 1800;              // a longer requested lifetime is capped (issue):
                                             // bounds how long dedup records are kept
  uint32_t retry_delay_ms_min = 500;         // first retry; about one slow round trip
  uint32_t retry_delay_ms_max = 30'000;      // backoff doubles up to this, so a long outage
                                             // costs one send per 30 s per message, not a storm
  uint32_t attempts_max = 10;                // sends of one envelope before it is undeliverable
                                             // (about 2.5 minutes with the defaults)
  uint32_t clock_skew_ms_max = 30'000;       // an envelope may be created this far in the
                                             // receiver's future; more is refused (malformed)
  uint32_t dedup_slack_ms = 60'000;          // dedup records outlive their envelope's expiry by
                                             // this: margin for the receiver's own clock steps
  size_t envelope_bytes_max = 64 * 1024;     // encoded twin_envelope: commands are small; bulk
                                             // data belongs to the state service. Bounds the
                                             // memory one cached reply or outbox entry holds
  size_t command_chars_max = 256;            // a command name, not a payload
  size_t reason_chars_max = 512;             // one human-readable sentence
  size_t outbox_entries_max = 1024;          // messages in flight or awaiting a reply per agent
  size_t outbox_bytes_max = 32u << 20;       // encoded bytes held by the outbox
  size_t dedup_entries_max = 16384;          // uids remembered; at 300 s lifetimes this admits
                                             // about 50 new envelopes a second per agent
  size_t dedup_bytes_max = 32u << 20;        // bytes of requests and cached replies remembered
  size_t twins_per_agent_max = 1024;         // users one node serves
  size_t directory_entries_max = 16384;      // remembered twin -> agent locations (a cache)
};

// Errors (invalid_argument) name the bad field.
status validate(const config& cfg);

// ---- persistence ----------------------------------------------------------------------------

enum class dedup_state : uint8_t {
  accepted = 0,  // a request handed to its twin, no reply yet (redelivered after a restart)
  replied = 1,   // the twin replied; the reply is cached and re-sent to a retrying sender
  done = 2,      // a reply received for a local twin; nothing to keep but the uid
};
const char* dedup_state_name(dedup_state state);

// What the receiver remembers about one envelope (key = its source twin and uid).
struct dedup_record {
  message_key key;
  dedup_state state = dedup_state::accepted;
  int64_t forget_at_ms = 0;              // the envelope's expiry + dedup_slack_ms
  node_id reply_node;                    // the agent it came from; replies go there
  std::optional<twin_envelope> request;  // accepted: the request, for redelivery after a crash
  std::optional<twin_envelope> reply;    // replied: the cached reply
};

// A message this agent sends reliably (a local twin's request, or a local twin's reply).
struct outbox_record {
  twin_envelope message;
  node_id to_node;  // all zero = no route known yet
};

struct restored_state {
  std::vector<dedup_record> dedup;
  std::vector<outbox_record> outbox;
};

// One change to the store. A plain struct rather than a variant: only the field its action names
// is meaningful.
struct store_op {
  enum class action : uint8_t { put_dedup, erase_dedup, put_outbox, erase_outbox };
  action what = action::put_dedup;
  message_key key;       // every action (for put_outbox: key_of(outbox.message))
  dedup_record dedup;    // put_dedup
  outbox_record outbox;  // put_outbox

  static store_op put(dedup_record record);
  static store_op put(outbox_record record);
  static store_op erase(action what, const message_key& key);
};

// ---- effects --------------------------------------------------------------------------------

using wire_message = std::variant<twin_envelope, envelope_ack>;

struct outgoing {
  node_id to;  // an agent node, never config.self (local traffic loops back inside the machine)
  wire_message message;
};

// A request for a local twin's handler. The shell answers with twin_reply(key_of(request), ...).
// redelivery = true: handed over again after a restart because no reply was recorded before the
// crash; a handler whose effects are not committed with its reply must be idempotent by uid.
struct delivery {
  node_id twin;
  twin_envelope request;
  bool redelivery = false;
};

// The one final result of a message a local twin sent: for a request, the reply (code ok or
// command_failed, reply set) or why there is none; for a reply, ok once acknowledged, or why not.
struct outcome {
  node_id twin;  // the local twin that sent the message
  message_uid uid{};
  envelope_kind kind = envelope_kind::request;
  status_code code = status_code::ok;
  std::string reason;
  std::optional<twin_envelope> reply;
};

enum class event_kind : uint8_t {
  refused,          // an incoming envelope was refused (code, detail = reason)
  duplicate,        // an incoming envelope was seen before: re-acknowledged, reply re-sent
  unmatched_reply,  // a verified reply for no outstanding request (late or duplicate): acked
  ack_ignored,      // an ack for nothing we sent to that node
  no_route,         // no known agent for a destination twin; a lookup was asked for
  redelivered,      // after restore: a request handed to its twin again
  forgotten,        // a dedup record passed its forget time and was dropped
};
const char* event_name(event_kind kind);

struct event {
  event_kind kind;
  node_id peer;  // the agent involved, if any
  message_key key;
  status_code code = status_code::ok;
  std::string detail;
};

struct effects {
  std::vector<store_op> persist;     // 1. apply in order, in one transaction, durably
  std::vector<outgoing> sends;       // 2. then send
  std::vector<delivery> deliveries;  // 3. then hand to twins
  std::vector<outcome> outcomes;     // 3. and report to senders
  std::vector<node_id> lookups;      // twins whose agent is unknown: answer with
                                     // register_twin_location (any time, any order)
  std::vector<event> events;         // for logs and counters only

  void clear();
};

// What a local twin asks to send.
struct request {
  node_id source;       // a twin hosted here (it signs)
  node_id destination;  // any twin
  std::string command;
  bytes data;
  uint32_t expiry_s = 0;  // 0 = config.expiry_s_default; capped at config.expiry_s_max
};

// ---- the machine ----------------------------------------------------------------------------

class machine {
public:
  // REQUIRES: validate(cfg) succeeds.
  machine(config cfg, uint64_t rng_seed);

  // Twins hosted by this agent (the shell adds them before restore()). The machine keeps the key
  // pair to sign the twin's envelopes. Errors: too_large past twins_per_agent_max.
  status host_twin(const identity& twin);
  void unhost_twin(const node_id& twin);
  bool hosts(const node_id& twin) const { return twins_.count(twin) != 0; }

  // The twin directory: `twin` is hosted by the agent on `agent_node`. Messages waiting for a
  // route to it are sent at once. Locations of local twins are ignored (local always wins).
  void register_twin_location(int64_t now_us, const node_id& twin, const node_id& agent_node,
                              effects& out);
  void forget_twin_location(const node_id& twin);

  // Boot from the store (rmb_store::load); call once, before any other input, with an empty
  // state on first start. Expired records are dropped (an expired outbox message gets its
  // outcome), unsent messages are sent again, unanswered requests are redelivered.
  void restore(int64_t now_us, restored_state state, effects& out);

  // A local twin sends a request. Returns its uid; the one outcome for it comes later.
  // Errors: not_found (source not hosted here), invalid_argument (empty command), too_large
  // (command or encoded envelope over its bound), unavailable (outbox full).
  result<message_uid> send(int64_t now_us, const request& r, effects& out);

  // A local twin's handler answers the request `request_key` (from a delivery). code is ok or
  // command_failed. The reply is signed by the request's destination twin, cached for duplicates
  // and sent reliably. Errors: not_found (no such request awaiting a reply), already_exists
  // (already answered), invalid_argument (bad code), timeout (the request expired), too_large,
  // unavailable (outbox full).
  status twin_reply(int64_t now_us, const message_key& request_key, status_code code,
                    std::string reason, bytes data, effects& out);

  // A message from agent `from` (authenticated by the transport).
  void on_message(int64_t now_us, const node_id& from, const wire_message& message,
                  effects& out);

  // Retries, expiries and the dedup sweep. Call every config.tick_ms.
  void tick(int64_t now_us, effects& out);

  // ---- introspection (tests, metrics) ----
  struct outbox_entry {
    twin_envelope message;
    node_id to_node;
    bool routed = false;
    bool acknowledged = false;  // a request the receiver accepted: waiting for the reply
    uint32_t attempts = 0;      // sends so far (in this incarnation)
    int64_t next_attempt_us = 0;
    int64_t expires_ms = 0;
    size_t bytes = 0;
  };
  struct dedup_entry {
    dedup_state state = dedup_state::accepted;
    int64_t forget_at_ms = 0;
    node_id reply_node;
    std::optional<twin_envelope> request;
    std::optional<twin_envelope> reply;
    size_t bytes = 0;
  };
  const std::map<message_key, outbox_entry>& outbox() const { return outbox_; }
  const std::map<message_key, dedup_entry>& dedup() const { return dedup_; }
  size_t outbox_bytes() const { return outbox_bytes_; }
  size_t dedup_bytes() const { return dedup_bytes_; }
  const config& configuration() const { return config_; }

private:
  void receive_envelope(int64_t now_us, const node_id& from, const twin_envelope& env,
                        effects& out);
  void receive_ack(const node_id& from, const envelope_ack& ack, effects& out);
  std::optional<std::pair<status_code, std::string>> check_envelope(int64_t now_us,
                                                                    const twin_envelope& env);
  void accept_request(const node_id& from, const message_key& key, const twin_envelope& env,
                      effects& out);
  void accept_reply(const node_id& from, const message_key& key, const twin_envelope& env,
                    effects& out);
  void insert_dedup(const message_key& key, dedup_entry entry);
  dedup_record record_of(const message_key& key, const dedup_entry& entry) const;
  void enqueue(int64_t now_us, const message_key& key, outbox_entry entry, effects& out);
  void transmit(int64_t now_us, const message_key& key, outbox_entry& entry, effects& out);
  void finish(const message_key& key, status_code code, std::string reason,
              std::optional<twin_envelope> reply, effects& out);
  std::optional<node_id> route_to(const node_id& twin) const;
  int64_t retry_delay_us(uint32_t attempts);
  message_uid new_uid(int64_t now_us);
  void send_wire(const node_id& to, wire_message message, effects& out);
  void drain_loopback(int64_t now_us, effects& out);
  void sweep_dedup(int64_t now_ms, effects& out);

  config config_;
  rng rng_;
  std::map<node_id, identity> twins_;  // hosted twins and their key pairs
  struct location {
    node_id agent;
    int64_t registered_us = 0;
  };
  std::map<node_id, location> directory_;
  std::map<message_key, outbox_entry> outbox_;
  size_t outbox_bytes_ = 0;
  std::map<message_key, dedup_entry> dedup_;
  std::set<std::pair<int64_t, message_key>> dedup_by_forget_;  // sweep order
  size_t dedup_bytes_ = 0;
  std::deque<wire_message> loopback_;  // messages from this agent to itself, handled after the
                                       // current input (bounded: each input adds a few)
};

}  // namespace cmesh::rmb
