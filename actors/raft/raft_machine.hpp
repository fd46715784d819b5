// Raft as a pure state machine (etcd-raft's Step/Ready shape): leader election with randomized
// timeouts, PreVote, CheckQuorum with leader leases, log replication with pipelining and batching,
// snapshots and log compaction, single-server membership changes with non-voting learners,
// ReadIndex linearizable reads and leadership transfer.
//
// Pure: no CAF, no I/O, no clock, no global randomness. Time comes in as `now_us`; randomness from
// the seeded rng handed in at construction. Every input appends to a `ready` what the node must do,
// in this order: persist (snapshot, truncation, new entries, hard state) durably, then send the
// messages, then apply the committed entries and answer confirmed reads. Persist-before-send is
// what makes a vote or an acknowledged entry survive a crash. Spec: docs/raft.md.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "messages/error.hpp"
#include "messages/node_id.hpp"
#include "messages/raft_messages.hpp"
#include "runtime/core/rng.hpp"

namespace cmesh::raft {

enum class role : uint8_t { follower, pre_candidate, candidate, leader };
const char* role_name(role r);

// Test-only: deliberately break one rule so the simulation's checkers can prove they catch it.
// Never set outside tests and `cmesh sim --raft-planted-bug` (docs/raft.md, "Planted bugs").
enum class planted_bug : uint8_t {
  none = 0,
  vote_ignores_log,   // grant votes without the election restriction (log up-to-date check)
  commit_old_terms,   // commit entries of earlier terms by counting replicas (Figure 8)
  vote_not_persisted, // never persist the vote (a restarted node may vote twice in a term)
  read_without_quorum,// ReadIndex answers at once, without confirming leadership with a quorum
};
const char* planted_bug_name(planted_bug bug);
result<planted_bug> parse_planted_bug(std::string_view name);

struct config {
  node_id self;
  int64_t election_timeout_min_us = 150'000;  // randomized uniformly in [min, max]
  int64_t election_timeout_max_us = 300'000;
  int64_t heartbeat_interval_us = 50'000;
  bool pre_vote = true;
  bool check_quorum = true;                   // also enables the leader lease for votes
  size_t max_entries_per_append = 256;        // batching
  size_t max_bytes_per_append = 256 * 1024;
  uint64_t max_inflight_entries = 8192;       // pipelining window per follower (entries sent
                                              // but not acknowledged)
  planted_bug bug = planted_bug::none;
};

// Validates timeouts and limits; the reason names the field.
status validate(const config& c);

struct hard_state {
  term_t term = 0;
  node_id vote;       // all zero = none
  index_t commit = 0;
  friend bool operator==(const hard_state&, const hard_state&) = default;
};

struct snapshot_record {
  index_t index = 0;
  term_t term = 0;
  membership config;
  std::shared_ptr<const bytes> data;  // the state machine's snapshot bytes
};

using wire_message = std::variant<vote_request, vote_response, append_request, append_response,
                                  snapshot_request, snapshot_response, timeout_now>;

struct outgoing {
  node_id to;
  wire_message message;
};

// A ReadIndex request confirmed by a quorum: answer it once the state machine applied `index`.
struct read_state {
  uint64_t id = 0;
  index_t index = 0;
};

struct event {
  std::string kind;   // "became_leader", "became_follower", "became_candidate", "membership", ...
  term_t term = 0;
  index_t index = 0;
  node_id peer;
};

struct ready {
  // 1. Persist, in this order, and make it durable:
  std::optional<snapshot_record> snapshot;  // installed from the leader: replace the state
                                            // machine with it; drop persisted entries <= index
  std::optional<index_t> truncate_from;     // drop persisted entries >= this index
  std::vector<entry> append;                // then append these
  bool hard_state_changed = false;
  hard_state state;                         // the hard state to persist when changed
  // 2. Then send:
  std::vector<outgoing> messages;
  // 3. Then apply, in order, and serve reads:
  std::vector<entry> committed;
  std::vector<read_state> reads;
  std::vector<uint64_t> reads_failed;       // lost leadership before the read was confirmed
  std::vector<event> events;

  bool must_persist() const {
    return snapshot || truncate_from || !append.empty() || hard_state_changed;
  }
  void clear();
};

// What storage held at boot.
struct restored_state {
  hard_state state;
  std::optional<snapshot_record> snapshot;
  std::vector<entry> log;  // entries after the snapshot, contiguous
};

enum class membership_change : uint8_t { add_voter, add_learner, remove };

class machine {
public:
  // `initial` is the group's membership before any config entry or snapshot says otherwise.
  machine(config c, membership initial, uint64_t rng_seed);

  // Boot from persisted state; call once before anything else (with an empty restored_state on
  // first start). Committed entries after the snapshot come out in the next ready's `committed`.
  void restore(int64_t now_us, restored_state state, ready& out);

  void tick(int64_t now_us, ready& out);
  // When tick() must next be called (the shell sets one timer for it).
  int64_t next_deadline_us() const;

  void step(int64_t now_us, const node_id& from, wire_message message, ready& out);

  // Leader only. Errors: unavailable (not leader, or a leadership transfer is under way).
  result<index_t> propose(int64_t now_us, bytes data, ready& out);
  // Leader only; one change at a time. Errors: unavailable, invalid_argument (already a member,
  // not a member, last voter), already_exists (a change is still uncommitted).
  result<index_t> change_membership(int64_t now_us, membership_change change, const node_id& who,
                                    ready& out);
  // Leader only. The read is confirmed later through ready.reads (or ready.reads_failed).
  status read_index(int64_t now_us, uint64_t id, ready& out);
  // The index a read may be served at now, without a ReadIndex round, or nullopt. Only a leader
  // that is the group's sole voter (the latest configuration in its log) and has committed in its
  // term knows without asking anyone that no other leader can exist: then the commit index.
  std::optional<index_t> local_read_index() const;
  // Leader only; `to` must be a voter. Proposals are refused until it completes or times out.
  status transfer_leadership(int64_t now_us, const node_id& to, ready& out);
  // Replaces the log up to `index` (<= applied) with a snapshot of the state machine at `index`.
  // The shell persists the snapshot and deletes the entries. Errors: invalid_argument.
  status compact(index_t index, std::shared_ptr<const bytes> data);

  // ---- queries ----
  const config& configuration() const { return config_; }
  role current_role() const { return role_; }
  term_t term() const { return term_; }
  const node_id& vote() const { return vote_; }
  const node_id& leader() const { return leader_; }  // all zero = unknown
  index_t commit_index() const { return commit_; }
  index_t applied_index() const { return applied_; }
  index_t first_index() const { return snapshot_.index + 1; }
  index_t last_index() const { return snapshot_.index + log_.size(); }
  term_t last_term() const;
  std::optional<term_t> term_at(index_t index) const;
  const entry* entry_at(index_t index) const;  // nullptr if compacted or beyond the log
  const membership& members() const { return members_; }
  bool is_voter(const node_id& id) const;
  bool is_member(const node_id& id) const;
  const snapshot_record& snapshot() const { return snapshot_; }
  bool transferring() const { return !transfer_target_.is_zero(); }
  // What must be persisted. (With the planted bug vote_not_persisted the vote is left out.)
  hard_state current_hard_state() const {
    return {term_, config_.bug == planted_bug::vote_not_persisted ? node_id{} : vote_, commit_};
  }

  struct progress {
    index_t match = 0;
    index_t next = 1;
    enum class mode : uint8_t { probe, replicate, snapshot } state = mode::probe;
    bool probe_sent = false;      // probe mode: one append in flight until answered or heartbeat
    bool recent_active = false;   // heard from since the last CheckQuorum round
    bool progressed = false;      // match advanced since the last heartbeat
    index_t pending_snapshot = 0; // snapshot mode: index sent
    int64_t snapshot_sent_us = 0;
    uint64_t read_ack = 0;        // highest ReadIndex round acknowledged
  };
  const std::map<node_id, progress>& progress_map() const { return progress_; }

private:
  void become_follower(int64_t now, term_t term, const node_id& leader, ready& out);
  void become_pre_candidate(int64_t now, ready& out);
  void become_candidate(int64_t now, bool transfer, ready& out);
  void become_leader(int64_t now, ready& out);
  void campaign(int64_t now, bool transfer, ready& out);
  void reset_election_timer(int64_t now);
  void set_hard_state_dirty(ready& out);

  void on_vote_request(int64_t now, const node_id& from, const vote_request& m, ready& out);
  void on_vote_response(int64_t now, const node_id& from, const vote_response& m, ready& out);
  void on_append_request(int64_t now, const node_id& from, append_request& m, ready& out);
  void on_append_response(int64_t now, const node_id& from, const append_response& m,
                          ready& out);
  void on_snapshot_request(int64_t now, const node_id& from, snapshot_request& m, ready& out);
  void on_snapshot_response(int64_t now, const node_id& from, const snapshot_response& m,
                            ready& out);
  void on_timeout_now(int64_t now, const node_id& from, const timeout_now& m, ready& out);

  progress* follower_progress(const node_id& id);  // leader only; nullptr otherwise
  void append_local(entry e, ready& out);
  void truncate_local(index_t from, ready& out);
  void send_append(int64_t now, const node_id& to, progress& pr, ready& out);
  void send_heartbeat(const node_id& to, const progress& pr, ready& out);
  void broadcast_append(int64_t now, ready& out);
  void maybe_commit(int64_t now, ready& out);
  void advance_commit(index_t index, ready& out);
  void emit_committed(ready& out);
  void quorum_reads(ready& out);
  void start_read_round(ready& out);
  void fail_reads(ready& out);
  bool committed_in_current_term() const;
  bool log_up_to_date(index_t last_index, term_t last_term) const;
  size_t quorum() const { return members_.voters.size() / 2 + 1; }

  void recompute_membership(ready* out);
  void sync_progress();
  membership membership_at(index_t index) const;

  config config_;
  rng rng_;
  membership initial_;
  membership members_;             // latest in the log (applies when appended)
  index_t members_index_ = 0;      // index of the config entry it came from (0: snapshot/initial)
  std::vector<node_id> voter_ids_; // members_.voters as node ids (sorted)
  std::vector<node_id> learner_ids_;

  role role_ = role::follower;
  term_t term_ = 0;
  node_id vote_;
  node_id leader_;
  index_t commit_ = 0;
  index_t applied_ = 0;            // last index handed out in ready.committed or by a snapshot

  snapshot_record snapshot_;
  std::deque<entry> log_;          // entries snapshot_.index+1 .. last_index()

  int64_t election_deadline_us_ = 0;
  int64_t heartbeat_deadline_us_ = 0;
  int64_t check_quorum_deadline_us_ = 0;
  int64_t leader_contact_us_ = INT64_MIN / 2;  // last time we heard from a current leader
  std::map<node_id, bool> votes_;

  std::map<node_id, progress> progress_;
  node_id transfer_target_;
  int64_t transfer_deadline_us_ = 0;

  struct pending_read {
    uint64_t id;
    index_t index;
    uint64_t round;  // 0 = waiting for the next round
  };
  std::vector<pending_read> reads_;
  std::vector<uint64_t> reads_waiting_commit_;  // before the leader committed in its term
  uint64_t read_round_ = 0;       // last round started
  uint64_t read_round_done_ = 0;  // last round confirmed
};

// Membership helpers.
std::vector<node_id> to_node_ids(const std::vector<bytes>& keys);
std::vector<bytes> to_keys(const std::vector<node_id>& ids);

}  // namespace cmesh::raft
