// The events bus of one node (NATS-style): local subscriptions with '*' and '>' wildcards, queue
// groups, request/reply with inboxes, and the node-to-node protocol that tells each peer which
// subjects this node wants and forwards a published message once to each node that wants it.
// Spec: docs/events.md.
//
// One machine per node. Local clients (the router, the NATS gateway, services) reach it through
// the events actor shell, which gives each subscription a `sid` unique on the node. Nodes form a
// full mesh: every node forwards only what was published on it, straight to each interested peer,
// and delivers what it receives from a peer only locally (never forwards it again). Two nodes that
// are not peers do not see each other's messages.
//
// Pure: no CAF, no I/O, no clock, no global randomness. Time comes in as `now_us`; the interest
// epoch, the first request id and every queue group pick come from the seeded `rng` handed in at
// construction. No unordered container is used. Every input appends what the node must do to
// `effects`; the shell sends `effects::sends` through the transport (service events_service),
// hands `effects::deliveries` to the subscribers, and reports the rest. After each input it
// arms a timer for next_deadline() (or calls tick() at least every ~100 ms).
//
// Thread confinement: one owner (the events actor of the node); not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "actors/events/subject.hpp"
#include "messages/codec.hpp"
#include "messages/error.hpp"
#include "messages/events_messages.hpp"
#include "messages/node_id.hpp"
#include "runtime/core/limits.hpp"
#include "runtime/core/rng.hpp"

namespace cmesh::events {

// Every bound of the protocol, with the reason for its value. Checked by validate().
struct config {
  // Local subscriptions on this node, all clients together. A subscription costs ~400 B of
  // bookkeeping (pattern, group, counters, index entry): 16,384 cost ~6.5 MB.
  size_t subscriptions_max = 16384;
  // Peers whose interest is tracked. Full mesh: each is a transport connection, which
  // limits::connections_max (1,024) already bounds.
  size_t peers_max = 1024;
  // Interest lines held for one peer. A peer with the same config has at most subscriptions_max
  // lines, so this must be at least that (validate checks it).
  size_t remote_lines_per_peer_max = 16384;
  // Interest lines held for all peers together: ~330 B each at most (256-char pattern, 64-char
  // group, index entry), so ~86 MB in the worst case. Lines past a bound are refused and counted.
  size_t remote_lines_max = 262144;
  // Lines in one interest_delta or interest_sync part: 1,024 x ~330 B ~ 338 KB, a third of an
  // envelope (limits::envelope_bytes_max).
  size_t lines_per_message_max = 1024;
  // Out-of-order deltas held per peer until the missing one arrives; past this, ask for a sync.
  size_t deltas_buffered_max = 64;
  // Largest payload: an envelope less 4 KiB for subjects, groups and framing (NATS: 1 MB).
  size_t payload_bytes_max = limits::envelope_bytes_max - 4096;
  // Pending bounds per subscriber (delivered by the machine, not yet acknowledged by the shell
  // with delivered()). A subscribe that asks for 0 gets the default; asking above the max is an
  // error. 8,192 messages / 8 MiB keep one stuck client from holding much of the node's memory.
  uint32_t pending_messages_default = 8192;
  uint64_t pending_bytes_default = uint64_t{8} << 20;
  uint32_t pending_messages_max = 65536;
  uint64_t pending_bytes_max = uint64_t{64} << 20;
  // A subscriber dropping messages is reported at most once per interval; drops in between are
  // counted and reported when the interval ends, so no drop goes unreported.
  int64_t slow_consumer_report_interval_us = 1'000'000;
  // Requests waiting for a reply on this node; each holds one row until reply or timeout.
  size_t requests_pending_max = 4096;
  // Longest request timeout a caller may ask for.
  int64_t request_timeout_us_max = 60'000'000;
  // Every interval, each peer that is up gets a digest of our interest table (epoch, version):
  // it repairs lost or reordered deltas within one interval and renews our lease there.
  int64_t digest_interval_us = 1'000'000;
  // A peer's interest is dropped after this long without any message from it (five digests
  // lost in a row): a crashed or partitioned node stops attracting messages and queue picks.
  int64_t interest_lease_us = 5'000'000;
  // At most one sync request to a peer per interval (the sync may take a round trip to come);
  // a peer gets at most one full sync from us per half interval (amplification bound).
  int64_t sync_request_interval_us = 500'000;
};

// Checks every bound above (all positive, remote_lines_per_peer_max >= subscriptions_max,
// interest_lease_us > digest_interval_us, payload fits an envelope, defaults <= maxima); the
// reason names the field.
status validate(const config& cfg);

// The most parts one interest_sync may announce: enough for remote_lines_per_peer_max lines.
size_t sync_parts_max(const config& cfg);

// Per-subscriber pending bounds asked for at subscribe; 0 = the config default.
struct pending_limits {
  uint32_t messages = 0;
  uint64_t bytes = 0;
};

using wire_message = std::variant<interest_delta, interest_sync, interest_sync_request,
                                  interest_digest, routed_message>;

// Decodes the payload of an events envelope into a wire_message.
// Errors: unknown_type (not events_service or an unknown type), then as decode_payload.
result<wire_message> decode_wire(const envelope& env);

// A message for local subscriber `sid`. The payload is shared by every delivery of one message.
// The shell must later acknowledge it with delivered(sid, 1, payload->size()).
struct delivery {
  uint64_t sid = 0;
  std::string subject;
  std::string reply_to;  // empty = none
  std::shared_ptr<const bytes> payload;
};

// Subscriber `sid` is too slow: `dropped` messages were dropped since its last report
// (`dropped_total` since it subscribed). `final` is set on the report made at unsubscribe.
struct slow_consumer {
  uint64_t sid = 0;
  uint64_t dropped = 0;
  uint64_t dropped_total = 0;
  uint32_t pending_messages = 0;
  uint64_t pending_bytes = 0;
  bool final = false;
};

enum class request_outcome { reply, no_responders, timeout };
const char* request_outcome_name(request_outcome outcome);

// A request started with request() ended: the first reply on its inbox, no interest anywhere at
// the time of the request, or its deadline passed.
struct request_done {
  uint64_t request_id = 0;
  request_outcome outcome = request_outcome::timeout;
  std::shared_ptr<const bytes> payload;  // the reply's payload; null unless outcome == reply
  std::string reply_to;                  // the reply's own reply subject (rarely set)
};

enum class event_kind {
  sync_requested,    // we asked `peer` for its whole table (value: our known version)
  sync_sent,         // we sent `peer` our whole table (value: parts)
  sync_applied,      // we replaced `peer`'s table (value: lines)
  interest_expired,  // `peer`'s lease ran out: its interest is dropped (value: lines)
  interest_refused,  // lines of `peer` refused over a bound (value: lines)
  queue_group_miss,  // `peer` routed us a group with no matching member here (value: 1)
  late_reply,        // a message on our inbox for no pending request (value: request id)
};
const char* event_name(event_kind kind);

struct event {
  event_kind kind;
  node_id peer;
  int64_t value = 0;
};

struct effects {
  struct send {
    node_id to;
    wire_message message;
  };
  std::vector<send> sends;
  std::vector<delivery> deliveries;  // in the order the subscribers must see them
  std::vector<slow_consumer> slow_consumers;
  std::vector<request_done> requests_done;
  std::vector<event> events;

  void clear() {
    sends.clear();
    deliveries.clear();
    slow_consumers.clear();
    requests_done.clear();
    events.clear();
  }
};

struct stats {
  uint64_t published = 0;               // local publishes (requests included)
  uint64_t unmatched = 0;               // local publishes with no interest anywhere
  uint64_t routed_sent = 0;             // routed_message sent to peers
  uint64_t routed_received = 0;
  uint64_t delivered = 0;               // deliveries to local subscribers
  uint64_t dropped_slow_consumer = 0;   // deliveries dropped over a subscriber's pending bound
  uint64_t slow_consumer_reports = 0;
  uint64_t queue_group_misses = 0;      // routed groups with no local member
  uint64_t requests_started = 0;
  uint64_t requests_replied = 0;
  uint64_t requests_no_responders = 0;
  uint64_t requests_timed_out = 0;
  uint64_t late_replies = 0;
  uint64_t deltas_sent = 0;
  uint64_t deltas_applied = 0;
  uint64_t deltas_duplicate = 0;
  uint64_t deltas_buffered = 0;
  uint64_t syncs_sent = 0;              // whole tables sent (each may be several messages)
  uint64_t syncs_applied = 0;
  uint64_t sync_requests_sent = 0;
  uint64_t sync_requests_refused = 0;   // answered with nothing: a sync went out very recently
  uint64_t digests_sent = 0;
  uint64_t leases_expired = 0;
  uint64_t lines_refused = 0;           // remote interest lines over a bound
  uint64_t malformed = 0;
  uint64_t peers_refused = 0;           // interest messages from a peer over peers_max
};

class machine {
public:
  // REQUIRES: validate(cfg) is ok (the shell checks it when it loads the configuration).
  // `random` must be seeded differently per incarnation of the node (the epoch comes from it).
  machine(config cfg, node_id self, rng random);

  // ---- local clients --------------------------------------------------------------------------

  // Subscribes `sid` to `pattern`, in `queue_group` if not empty. Tells the peers that are up
  // when this changes what the node advertises.
  // Errors: invalid_argument (pattern, group, or a limit above its max), already_exists (sid in
  // use), unavailable (subscriptions_max reached).
  status subscribe(uint64_t sid, const std::string& pattern, const std::string& queue_group,
                   pending_limits limits, effects& out);
  // Ends `sid`. Drops not yet reported are reported now (slow_consumer with final = true).
  // Errors: not_found.
  status unsubscribe(uint64_t sid, effects& out);
  // The shell handed `messages` deliveries of `bytes` payload bytes to subscriber `sid`'s client.
  // Errors: not_found (unknown sid: harmless after unsubscribe), invalid_argument (more than
  // pending; the counters are clamped to zero).
  status delivered(uint64_t sid, uint32_t messages, uint64_t bytes);

  // Publishes on `subject` (no wildcards) with an optional `reply_to`: delivers to every
  // matching local plain subscriber, picks one member of each matching queue group mesh-wide,
  // and sends one routed_message to each peer that has plain interest or was picked.
  // Errors: invalid_argument (subject, reply subject), too_large (payload_bytes_max).
  status publish(const std::string& subject, const std::string& reply_to, bytes payload,
                 int64_t now_us, effects& out);
  // The same without a reply subject, from views: nothing is copied unless the message is routed
  // (with nobody listening anywhere it is only counted).
  status publish_view(std::string_view subject, const uint8_t* payload, size_t payload_size, int64_t now_us,
                      effects& out);

  // Publishes `payload` on `subject` with reply subject `_INBOX.<node hex>.<request id>` and
  // waits for the first message on that inbox until now_us + timeout_us. Returns the request id.
  // The outcome arrives as one request_done: at once (no_responders) if no subscription anywhere
  // matches `subject`, later with the reply, or from tick() at the deadline (timeout).
  // Errors: invalid_argument (subject, timeout not in (0, request_timeout_us_max]), too_large,
  // unavailable (requests_pending_max requests waiting).
  result<uint64_t> request(const std::string& subject, bytes payload, int64_t timeout_us,
                           int64_t now_us, effects& out);
  // Forgets a pending request (its caller went away). Returns false if it was not pending.
  bool cancel_request(uint64_t request_id);

  // ---- peers ----------------------------------------------------------------------------------

  // A message from peer `from` (the transport authenticated it).
  // Errors (the message is dropped and counted, nothing else changes): malformed (bad subject,
  // pattern, group, counts, parts, sizes, or from == self), unavailable (a new peer over
  // peers_max).
  status receive(const node_id& from, const wire_message& message, int64_t now_us, effects& out);
  // The transport connected `peer`: send it our whole table, and digests from now on.
  void peer_up(const node_id& peer, int64_t now_us, effects& out);
  // The transport closed `peer`, or membership declared it failed: forget its interest and stop
  // sending it digests and deltas.
  void peer_down(const node_id& peer, effects& out);

  // ---- time -----------------------------------------------------------------------------------

  // Times out requests, makes slow-consumer reports that are due, sends digests, expires leases.
  void tick(int64_t now_us, effects& out);
  // The earliest time tick() has something to do; nullopt if nothing is scheduled.
  std::optional<int64_t> next_deadline() const;

  // ---- observers ------------------------------------------------------------------------------

  const node_id& self() const { return self_; }
  const config& configuration() const { return config_; }
  const stats& statistics() const { return stats_; }
  // "_INBOX.<64 hex chars of our key>." (inboxes of our requests start with this).
  const std::string& inbox_prefix() const { return inbox_prefix_; }
  uint64_t interest_epoch() const { return epoch_; }
  uint64_t interest_version() const { return version_; }
  size_t subscription_count() const { return subscriptions_.size(); }
  size_t pending_requests() const { return requests_.size(); }
  size_t peers_up() const { return up_.size(); }
  // Lines known for `peer` (0 if none), and whether we hold a complete table for it.
  size_t remote_line_count(const node_id& peer) const;
  bool knows_peer(const node_id& peer) const;
  size_t remote_line_count() const { return bindings_.size(); }
  // Our advertised lines, ascending by (pattern, group).
  std::vector<interest_entry> advertised_interest() const;
  // The lines we hold for `peer`, ascending by (pattern, group) (for status pages and tests).
  std::vector<interest_entry> remote_interest(const node_id& peer) const;
  // Pending counters of `sid` (zeros if unknown).
  std::pair<uint32_t, uint64_t> pending_of(uint64_t sid) const;
  // True if some local subscription or some peer's interest matches `subject` (valid subject).
  bool has_interest(const std::string& subject) const;

private:
  struct line_key {
    std::string pattern;
    std::string queue_group;
    friend auto operator<=>(const line_key&, const line_key&) = default;
    friend bool operator==(const line_key&, const line_key&) = default;
  };
  struct subscription {
    std::string pattern;
    std::string queue_group;
    uint32_t pending_messages_max = 0;
    uint64_t pending_bytes_max = 0;
    uint32_t pending_messages = 0;
    uint64_t pending_bytes = 0;
    uint64_t dropped_total = 0;
    uint64_t dropped_unreported = 0;
    std::optional<int64_t> last_report_us;
    std::optional<int64_t> report_due_us;  // set while a deferred report is scheduled
  };
  // One remote interest line; the key of bindings_ is the handle stored in remote_index_.
  struct binding {
    node_id peer;
    line_key key;
    uint32_t count = 0;
  };
  struct staged_sync {
    uint64_t epoch = 0;
    uint64_t version = 0;
    std::vector<bool> received;  // one per part
    size_t parts_received = 0;
    std::vector<interest_entry> entries;
  };
  // What we know of one peer's interest (created by its first interest message or peer_up).
  struct remote_peer {
    bool known = false;  // a whole table was applied
    uint64_t epoch = 0;
    uint64_t version = 0;
    std::map<line_key, uint64_t> lines;  // -> handle
    std::map<std::pair<uint64_t, uint64_t>, std::vector<interest_entry>> buffered;  // (epoch, v)
    std::optional<staged_sync> staging;
    int64_t last_heard_us = 0;
    std::optional<int64_t> last_sync_request_us;  // we asked it
    std::optional<int64_t> last_sync_sent_us;     // we sent it our table
  };
  struct pending_request {
    int64_t deadline_us = 0;
  };

  // Interest, ours.
  void change_local_interest(const line_key& key, int delta, effects& out);
  void send_sync(const node_id& peer, remote_peer* state, int64_t now_us, effects& out);
  // Interest, theirs.
  remote_peer* remote_for(const node_id& peer, int64_t now_us);
  status check_lines(const std::vector<interest_entry>& lines, bool in_sync) const;
  void handle(const node_id& from, remote_peer& peer, const interest_delta& message,
              int64_t now_us, effects& out);
  void handle(const node_id& from, remote_peer& peer, const interest_sync& message,
              int64_t now_us, effects& out);
  void handle(const node_id& from, remote_peer& peer, const interest_digest& message,
              int64_t now_us, effects& out);
  void handle_routed(const node_id& from, const routed_message& message, int64_t now_us,
                     effects& out);
  bool apply_line(const node_id& peer_id, remote_peer& peer, const interest_entry& line);
  void apply_buffered(const node_id& peer_id, remote_peer& peer, effects& out);
  void commit_sync(const node_id& peer_id, remote_peer& peer, effects& out);
  void drop_lines(remote_peer& peer);
  void request_sync(const node_id& peer_id, remote_peer& peer, int64_t now_us, effects& out);
  // Messages.
  bool has_room(const subscription& sub, uint64_t bytes) const;
  void route(const std::string& subject, const std::string& reply_to,
             const std::shared_ptr<const bytes>& payload, int64_t now_us, effects& out);
  void offer(uint64_t sid, const std::string& subject, const std::string& reply_to,
             const std::shared_ptr<const bytes>& payload, int64_t now_us, effects& out);
  void offer_to_group(const std::vector<uint64_t>& members, size_t preferred,
                      const std::string& subject, const std::string& reply_to,
                      const std::shared_ptr<const bytes>& payload, int64_t now_us, effects& out);
  void take_reply(const std::string& subject, const std::string& reply_to,
                  const std::shared_ptr<const bytes>& payload, effects& out);
  std::optional<node_id> inbox_owner(const std::string& subject) const;
  // Slow consumers.
  void record_drop(uint64_t sid, subscription& sub, int64_t now_us, effects& out);
  void report(uint64_t sid, subscription& sub, int64_t now_us, bool final, effects& out);
  void send(const node_id& to, wire_message message, effects& out);

  config config_;
  node_id self_;
  rng rng_;
  std::string inbox_prefix_;
  uint64_t epoch_ = 0;
  uint64_t version_ = 0;

  std::map<uint64_t, subscription> subscriptions_;  // by sid
  subject_index local_index_;                       // pattern -> sid
  std::map<line_key, uint32_t> local_lines_;        // (pattern, group) -> local subscriptions

  std::set<node_id> up_;
  std::map<node_id, remote_peer> remotes_;
  std::map<uint64_t, binding> bindings_;  // handle -> remote line
  subject_index remote_index_;            // pattern -> handle
  uint64_t next_handle_ = 1;

  std::map<uint64_t, pending_request> requests_;        // by request id
  std::set<std::pair<int64_t, uint64_t>> request_deadlines_;  // (deadline, request id)
  uint64_t next_request_id_ = 1;
  std::set<std::pair<int64_t, uint64_t>> reports_due_;  // (due, sid)
  std::optional<int64_t> next_digest_us_;
  stats stats_;
};

}  // namespace cmesh::events
