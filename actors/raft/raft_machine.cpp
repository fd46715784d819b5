#include "actors/raft/raft_machine.hpp"

#include <algorithm>
#include <cassert>

#include "messages/codec.hpp"

namespace cmesh::raft {

const char* role_name(role r) {
  switch (r) {
    case role::follower: return "follower";
    case role::pre_candidate: return "pre_candidate";
    case role::candidate: return "candidate";
    case role::leader: return "leader";
  }
  return "?";
}

const char* planted_bug_name(planted_bug bug) {
  switch (bug) {
    case planted_bug::none: return "none";
    case planted_bug::vote_ignores_log: return "vote-ignores-log";
    case planted_bug::commit_old_terms: return "commit-old-terms";
    case planted_bug::vote_not_persisted: return "vote-not-persisted";
    case planted_bug::read_without_quorum: return "read-without-quorum";
  }
  return "?";
}

result<planted_bug> parse_planted_bug(std::string_view name) {
  for (auto bug : {planted_bug::none, planted_bug::vote_ignores_log, planted_bug::commit_old_terms,
                   planted_bug::vote_not_persisted, planted_bug::read_without_quorum})
    if (name == planted_bug_name(bug)) return bug;
  return error{errc::invalid_argument,
               "unknown planted bug '" + std::string(name) +
                   "' (known: none, vote-ignores-log, commit-old-terms, vote-not-persisted, "
                   "read-without-quorum)"};
}

status validate(const config& c) {
  if (c.election_timeout_min_us <= 0)
    return {errc::invalid_argument, "election_timeout_min_us must be positive"};
  if (c.election_timeout_max_us < c.election_timeout_min_us)
    return {errc::invalid_argument, "election_timeout_max_us must be >= election_timeout_min_us"};
  if (c.heartbeat_interval_us <= 0 || c.heartbeat_interval_us >= c.election_timeout_min_us)
    return {errc::invalid_argument,
            "heartbeat_interval_us must be positive and below election_timeout_min_us"};
  if (c.max_entries_per_append == 0)
    return {errc::invalid_argument, "max_entries_per_append must be positive"};
  if (c.max_bytes_per_append == 0)
    return {errc::invalid_argument, "max_bytes_per_append must be positive"};
  if (c.max_inflight_entries == 0)
    return {errc::invalid_argument, "max_inflight_entries must be positive"};
  return {};
}

void ready::clear() {
  snapshot.reset();
  truncate_from.reset();
  append.clear();
  hard_state_changed = false;
  messages.clear();
  committed.clear();
  reads.clear();
  reads_failed.clear();
  events.clear();
}

std::vector<node_id> to_node_ids(const std::vector<bytes>& keys) {
  std::vector<node_id> ids;
  ids.reserve(keys.size());
  for (const auto& k : keys)
    if (k.size() == 32) ids.push_back(node_id::from_bytes(k.data()));
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

std::vector<bytes> to_keys(const std::vector<node_id>& ids) {
  std::vector<bytes> keys;
  keys.reserve(ids.size());
  for (const auto& id : ids) keys.emplace_back(id.key.begin(), id.key.end());
  return keys;
}

// ---- construction and boot ----------------------------------------------------------------------

machine::machine(config c, membership initial, uint64_t rng_seed)
    : config_(std::move(c)), rng_(rng_seed), initial_(std::move(initial)) {
  assert(validate(config_).ok());
  snapshot_.config = initial_;
  members_ = initial_;
  voter_ids_ = to_node_ids(members_.voters);
  learner_ids_ = to_node_ids(members_.learners);
}

void machine::restore(int64_t now, restored_state state, ready& out) {
  term_ = state.state.term;
  vote_ = state.state.vote;
  if (state.snapshot) {
    snapshot_ = std::move(*state.snapshot);
  } else {
    snapshot_ = snapshot_record{};
    snapshot_.config = initial_;
  }
  log_.clear();
  for (auto& e : state.log) {
    if (e.index <= snapshot_.index) continue;
    if (e.index != last_index() + 1) break;  // storage holds a contiguous run; stop at a gap
    log_.push_back(std::move(e));
  }
  applied_ = snapshot_.index;
  commit_ = std::max(snapshot_.index, std::min(state.state.commit, last_index()));
  recompute_membership(nullptr);
  role_ = role::follower;
  leader_ = node_id{};
  reset_election_timer(now);
  emit_committed(out);
}

// ---- small helpers ------------------------------------------------------------------------------

term_t machine::last_term() const {
  return log_.empty() ? snapshot_.term : log_.back().term;
}

std::optional<term_t> machine::term_at(index_t index) const {
  if (index == snapshot_.index) return snapshot_.term;
  if (index < snapshot_.index || index > last_index()) return std::nullopt;
  return log_[index - snapshot_.index - 1].term;
}

const entry* machine::entry_at(index_t index) const {
  if (index <= snapshot_.index || index > last_index()) return nullptr;
  return &log_[index - snapshot_.index - 1];
}

bool machine::is_voter(const node_id& id) const {
  return std::binary_search(voter_ids_.begin(), voter_ids_.end(), id);
}

bool machine::is_member(const node_id& id) const {
  return is_voter(id) || std::binary_search(learner_ids_.begin(), learner_ids_.end(), id);
}

bool machine::log_up_to_date(index_t index, term_t term) const {
  return term > last_term() || (term == last_term() && index >= last_index());
}

bool machine::committed_in_current_term() const {
  auto t = term_at(commit_);
  return t && *t == term_;
}

void machine::reset_election_timer(int64_t now) {
  auto span = static_cast<uint64_t>(config_.election_timeout_max_us -
                                    config_.election_timeout_min_us);
  election_deadline_us_ =
      now + config_.election_timeout_min_us + static_cast<int64_t>(rng_.below(span + 1));
}

void machine::set_hard_state_dirty(ready& out) {
  out.hard_state_changed = true;
  out.state = current_hard_state();
}

int64_t machine::next_deadline_us() const {
  if (role_ == role::leader) {
    int64_t d = std::min(heartbeat_deadline_us_, check_quorum_deadline_us_);
    if (transferring()) d = std::min(d, transfer_deadline_us_);
    return d;
  }
  return election_deadline_us_;
}

// ---- membership ---------------------------------------------------------------------------------

membership machine::membership_at(index_t index) const {
  for (index_t i = std::min(index, last_index()); i > snapshot_.index; --i) {
    const entry* e = entry_at(i);
    if (e->kind == static_cast<uint8_t>(entry_kind::config)) {
      auto m = unpack_value<membership>(e->data.data(), e->data.size());
      if (m) return std::move(*m);
    }
  }
  return snapshot_.config;
}

void machine::recompute_membership(ready* out) {
  members_ = snapshot_.config;
  members_index_ = 0;
  for (index_t i = last_index(); i > snapshot_.index; --i) {
    const entry* e = entry_at(i);
    if (e->kind != static_cast<uint8_t>(entry_kind::config)) continue;
    auto m = unpack_value<membership>(e->data.data(), e->data.size());
    if (!m) continue;  // a config entry that does not decode is ignored (never written by us)
    members_ = std::move(*m);
    members_index_ = i;
    break;
  }
  voter_ids_ = to_node_ids(members_.voters);
  learner_ids_ = to_node_ids(members_.learners);
  if (out) out->events.push_back({"membership", term_, members_index_, {}});
  sync_progress();
}

void machine::sync_progress() {
  if (role_ != role::leader) return;
  for (auto it = progress_.begin(); it != progress_.end();)
    it = is_member(it->first) ? std::next(it) : progress_.erase(it);
  auto add = [&](const node_id& id) {
    if (id == config_.self || progress_.count(id)) return;
    progress pr;
    pr.next = last_index() + 1;
    pr.recent_active = true;
    progress_.emplace(id, pr);
  };
  for (const auto& id : voter_ids_) add(id);
  for (const auto& id : learner_ids_) add(id);
}

// ---- log ----------------------------------------------------------------------------------------

void machine::append_local(entry e, ready& out) {
  assert(e.index == last_index() + 1);
  bool is_config = e.kind == static_cast<uint8_t>(entry_kind::config);
  out.append.push_back(e);
  log_.push_back(std::move(e));
  if (is_config) recompute_membership(&out);
}

void machine::truncate_local(index_t from, ready& out) {
  if (from <= commit_) {
    // Only reachable with a planted bug (a leader that lost a committed entry). Report it for the
    // simulation's checkers and keep going so the run can show the damage.
    out.events.push_back({"safety_violation: truncating committed entries", term_, from, leader_});
    commit_ = from - 1;
    applied_ = std::min(applied_, commit_);
  }
  bool config_lost = members_index_ >= from;
  while (last_index() >= from) log_.pop_back();
  // Entries queued for persistence in this ready that were just dropped must not be written.
  while (!out.append.empty() && out.append.back().index >= from) out.append.pop_back();
  if (!out.truncate_from || *out.truncate_from > from) out.truncate_from = from;
  if (config_lost) recompute_membership(&out);
}

// ---- roles --------------------------------------------------------------------------------------

void machine::become_follower(int64_t now, term_t term, const node_id& leader, ready& out) {
  bool changed = role_ != role::follower || term != term_;
  if (term != term_) {
    term_ = term;
    vote_ = node_id{};
    set_hard_state_dirty(out);
  }
  if (role_ == role::leader) fail_reads(out);
  role_ = role::follower;
  leader_ = leader;
  progress_.clear();
  transfer_target_ = node_id{};
  reset_election_timer(now);
  if (changed) out.events.push_back({"became_follower", term_, last_index(), leader});
}

void machine::become_pre_candidate(int64_t now, ready& out) {
  role_ = role::pre_candidate;
  leader_ = node_id{};
  votes_.clear();
  votes_[config_.self] = true;
  reset_election_timer(now);
  out.events.push_back({"became_pre_candidate", term_, last_index(), {}});
  if (votes_.size() >= quorum()) return become_candidate(now, false, out);
  for (const auto& id : voter_ids_) {
    if (id == config_.self) continue;
    out.messages.push_back({id, vote_request{term_ + 1, last_index(), last_term(), true, false}});
  }
}

void machine::become_candidate(int64_t now, bool transfer, ready& out) {
  role_ = role::candidate;
  ++term_;
  vote_ = config_.self;
  leader_ = node_id{};
  set_hard_state_dirty(out);
  votes_.clear();
  votes_[config_.self] = true;
  reset_election_timer(now);
  out.events.push_back({"became_candidate", term_, last_index(), {}});
  if (votes_.size() >= quorum()) return become_leader(now, out);
  for (const auto& id : voter_ids_) {
    if (id == config_.self) continue;
    out.messages.push_back(
        {id, vote_request{term_, last_index(), last_term(), false, transfer}});
  }
}

void machine::become_leader(int64_t now, ready& out) {
  role_ = role::leader;
  leader_ = config_.self;
  leader_contact_us_ = now;
  transfer_target_ = node_id{};
  progress_.clear();
  sync_progress();
  heartbeat_deadline_us_ = now + config_.heartbeat_interval_us;
  check_quorum_deadline_us_ = now + config_.election_timeout_min_us;
  read_round_ = read_round_done_ = 0;
  for (auto& [id, pr] : progress_) pr.read_ack = 0;
  out.events.push_back({"became_leader", term_, last_index(), {}});
  // A no-op entry of the new term: committing it commits everything before it (Raft §5.4.2)
  // and lets ReadIndex serve reads.
  append_local({term_, last_index() + 1, static_cast<uint8_t>(entry_kind::noop), {}}, out);
  maybe_commit(now, out);
  broadcast_append(now, out);
}

void machine::campaign(int64_t now, bool transfer, ready& out) {
  if (!is_voter(config_.self)) return;  // learners and removed nodes never campaign
  if (config_.pre_vote && !transfer)
    become_pre_candidate(now, out);
  else
    become_candidate(now, transfer, out);
}

// ---- time ---------------------------------------------------------------------------------------

void machine::tick(int64_t now, ready& out) {
  if (role_ != role::leader) {
    if (now >= election_deadline_us_) {
      if (is_voter(config_.self))
        campaign(now, false, out);
      else
        reset_election_timer(now);
    }
    return;
  }
  if (transferring() && now >= transfer_deadline_us_) {
    out.events.push_back({"transfer_aborted", term_, last_index(), transfer_target_});
    transfer_target_ = node_id{};
  }
  if (now >= check_quorum_deadline_us_) {
    check_quorum_deadline_us_ = now + config_.election_timeout_min_us;
    if (config_.check_quorum) {
      size_t active = is_voter(config_.self) ? 1 : 0;
      for (auto& [id, pr] : progress_) {
        if (pr.recent_active && is_voter(id)) ++active;
        pr.recent_active = false;
      }
      if (active < quorum()) {
        out.events.push_back({"check_quorum_lost", term_, last_index(), {}});
        become_follower(now, term_, node_id{}, out);
        return;
      }
    }
  }
  if (now >= heartbeat_deadline_us_) {
    heartbeat_deadline_us_ = now + config_.heartbeat_interval_us;
    for (auto& [id, pr] : progress_) {
      // Pipelined appends that were lost: nothing acknowledged since the last heartbeat while
      // entries are outstanding means start over from what is known to match.
      if (pr.state == progress::mode::replicate && !pr.progressed && pr.match < last_index() &&
          pr.next > pr.match + 1) {
        pr.state = progress::mode::probe;
        pr.next = pr.match + 1;
      }
      pr.progressed = false;
      pr.probe_sent = false;
      if (pr.state == progress::mode::snapshot &&
          now - pr.snapshot_sent_us >= config_.election_timeout_min_us) {
        pr.state = progress::mode::probe;  // snapshot lost: try again
        pr.next = pr.match + 1;
      }
      if (pr.match < last_index() && pr.state != progress::mode::snapshot)
        send_append(now, id, pr, out);
      else
        send_heartbeat(id, pr, out);
    }
  }
}

// ---- messages -----------------------------------------------------------------------------------

void machine::step(int64_t now, const node_id& from, wire_message message, ready& out) {
  if (from == config_.self) return;
  term_t m_term = std::visit([](const auto& m) { return m.term; }, message);
  auto* vote_req = std::get_if<vote_request>(&message);
  auto* vote_resp = std::get_if<vote_response>(&message);

  if (m_term > term_) {
    if (vote_req && config_.check_quorum && !vote_req->transfer && !leader_.is_zero() &&
        now - leader_contact_us_ < config_.election_timeout_min_us) {
      // Leader lease: we heard from a live leader recently, so a node that wants a new term is
      // partitioned or disruptive. Ignore it without adopting its term.
      return;
    }
    if (vote_req && vote_req->pre_vote) {
      // A pre-vote never changes our term.
    } else if (vote_resp && vote_resp->pre_vote && vote_resp->granted) {
      // Granted pre-votes carry the future term we asked for.
    } else {
      bool from_leader = std::holds_alternative<append_request>(message) ||
                         std::holds_alternative<snapshot_request>(message) ||
                         std::holds_alternative<timeout_now>(message);
      become_follower(now, m_term, from_leader ? from : node_id{}, out);
    }
  } else if (m_term < term_) {
    // A stale leader: tell it our term so it steps down (it may be cut off from everyone else,
    // and with CheckQuorum and PreVote it would otherwise never learn).
    if (std::holds_alternative<append_request>(message) ||
        std::holds_alternative<snapshot_request>(message)) {
      append_response r;
      r.term = term_;
      r.last_index = last_index();
      out.messages.push_back({from, r});
    } else if (vote_req && vote_req->pre_vote) {
      out.messages.push_back({from, vote_response{term_, false, true}});
    }
    return;
  }

  std::visit(
      [&](auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, vote_request>) on_vote_request(now, from, m, out);
        else if constexpr (std::is_same_v<T, vote_response>) on_vote_response(now, from, m, out);
        else if constexpr (std::is_same_v<T, append_request>) on_append_request(now, from, m, out);
        else if constexpr (std::is_same_v<T, append_response>)
          on_append_response(now, from, m, out);
        else if constexpr (std::is_same_v<T, snapshot_request>)
          on_snapshot_request(now, from, m, out);
        else if constexpr (std::is_same_v<T, snapshot_response>)
          on_snapshot_response(now, from, m, out);
        else if constexpr (std::is_same_v<T, timeout_now>) on_timeout_now(now, from, m, out);
      },
      message);
}

void machine::on_vote_request(int64_t now, const node_id& from, const vote_request& m,
                              ready& out) {
  bool up_to_date = config_.bug == planted_bug::vote_ignores_log ||
                    log_up_to_date(m.last_index, m.last_term);
  if (m.pre_vote) {
    // Would we vote for it in term m.term? (Our term is lower or equal here.)
    bool granted = m.term > term_ && up_to_date;
    out.messages.push_back({from, vote_response{granted ? m.term : term_, granted, true}});
    return;
  }
  // Real vote, m.term == term_ here.
  bool can_vote = vote_ == from || (vote_.is_zero() && leader_.is_zero());
  bool granted = can_vote && up_to_date;
  if (granted) {
    vote_ = from;
    reset_election_timer(now);
    if (config_.bug != planted_bug::vote_not_persisted) set_hard_state_dirty(out);
  }
  out.messages.push_back({from, vote_response{term_, granted, false}});
}

void machine::on_vote_response(int64_t now, const node_id& from, const vote_response& m,
                               ready& out) {
  bool expected = (role_ == role::pre_candidate && m.pre_vote) ||
                  (role_ == role::candidate && !m.pre_vote && m.term == term_);
  if (!expected || !is_voter(from)) return;
  if (role_ == role::pre_candidate && m.granted && m.term != term_ + 1) return;
  votes_[from] = m.granted;
  size_t granted = 0, rejected = 0;
  for (const auto& [id, g] : votes_) (g ? granted : rejected) += 1;
  if (granted >= quorum()) {
    if (role_ == role::pre_candidate)
      become_candidate(now, false, out);
    else
      become_leader(now, out);
  } else if (rejected >= quorum()) {
    become_follower(now, term_, node_id{}, out);
  }
}

void machine::on_append_request(int64_t now, const node_id& from, append_request& m,
                                 ready& out) {
  if (role_ != role::follower) become_follower(now, term_, from, out);
  if (leader_ != from) {
    leader_ = from;
    out.events.push_back({"leader_known", term_, last_index(), from});
  }
  leader_contact_us_ = now;
  reset_election_timer(now);

  append_response r;
  r.term = term_;
  r.read_context = m.read_context;

  index_t prev = m.prev_index;
  term_t prev_term = m.prev_term;
  size_t skip = 0;
  // Entries at or below our commit index are committed, so they match the leader's (Leader
  // Completeness): skip them and check from our commit index instead.
  if (prev < commit_) {
    while (skip < m.entries.size() && m.entries[skip].index <= commit_) ++skip;
    prev = commit_;
    prev_term = *term_at(commit_);
  }
  auto ours = term_at(prev);
  if (!ours || *ours != prev_term) {
    r.success = false;
    r.match_index = m.prev_index;  // the index that was rejected
    if (!ours) {
      r.hint_index = last_index() + 1;
    } else {
      // Skip back over the whole conflicting term (one round trip per term, not per entry).
      index_t i = prev;
      while (i > commit_ + 1 && term_at(i - 1) == ours) --i;
      r.hint_index = std::max<index_t>(i, commit_ + 1);
    }
    r.last_index = last_index();
    out.messages.push_back({from, r});
    return;
  }
  index_t last_new = prev;
  for (size_t k = skip; k < m.entries.size(); ++k) {
    auto& e = m.entries[k];
    if (e.index != last_new + 1) break;  // malformed batch: stop at the gap
    auto existing = term_at(e.index);
    if (existing && *existing == e.term) {
      last_new = e.index;
      continue;
    }
    if (existing) truncate_local(e.index, out);
    append_local(std::move(e), out);
    last_new = last_index();
  }
  index_t new_commit = std::min(m.commit, last_new);
  if (new_commit > commit_) advance_commit(new_commit, out);
  r.success = true;
  r.match_index = last_new;
  r.last_index = last_index();
  out.messages.push_back({from, r});
}

void machine::on_append_response(int64_t now, const node_id& from, const append_response& m,
                                 ready& out) {
  progress* found = follower_progress(from);
  if (!found) return;
  auto& pr = *found;
  pr.recent_active = true;
  if (m.read_context > pr.read_ack) {
    pr.read_ack = m.read_context;
    quorum_reads(out);
  }
  if (m.success) {
    if (m.match_index > pr.match) {
      pr.match = std::min(m.match_index, last_index());
      pr.progressed = true;
      maybe_commit(now, out);
      if (role_ != role::leader) return;  // the commit removed us from the group
    }
    if (pr.next < pr.match + 1) pr.next = pr.match + 1;
    if (pr.state == progress::mode::probe) pr.state = progress::mode::replicate;
    pr.probe_sent = false;
    if (transfer_target_ == from && pr.match == last_index()) {
      out.messages.push_back({from, timeout_now{term_}});
    }
    if (pr.next <= last_index()) send_append(now, from, pr, out);
    return;
  }
  // Rejected: the follower's log does not hold prev_index with the leader's term.
  if (m.match_index == 0 && m.hint_index == 0) return;  // a stale-term answer (handled above)
  if (pr.state == progress::mode::replicate) {
    if (m.match_index <= pr.match) return;  // stale rejection from before a later success
  } else if (pr.state == progress::mode::probe) {
    if (m.match_index != pr.next - 1) return;  // answer to an older probe
  } else {
    return;
  }
  pr.state = progress::mode::probe;
  pr.next = std::max(pr.match + 1, std::min(m.hint_index, m.match_index));
  if (pr.next == 0) pr.next = 1;
  pr.probe_sent = false;
  send_append(now, from, pr, out);
}

void machine::on_snapshot_request(int64_t now, const node_id& from, snapshot_request& m,
                                  ready& out) {
  if (role_ != role::follower) become_follower(now, term_, from, out);
  leader_ = from;
  leader_contact_us_ = now;
  reset_election_timer(now);
  snapshot_response r;
  r.term = term_;
  if (m.index <= commit_) {
    r.index = commit_;
    out.messages.push_back({from, r});
    return;
  }
  snapshot_record snap;
  snap.index = m.index;
  snap.term = m.snapshot_term;
  snap.config = std::move(m.config);
  snap.data = std::make_shared<const bytes>(std::move(m.data));
  auto ours = term_at(m.index);
  if (ours && *ours == m.snapshot_term) {
    // We hold the snapshot's last entry: keep what follows it (Raft §7).
    while (!log_.empty() && log_.front().index <= m.index) log_.pop_front();
  } else {
    log_.clear();
    out.truncate_from = 1;
    out.append.clear();
  }
  snapshot_ = snap;
  out.snapshot = snap;
  commit_ = std::max(commit_, m.index);
  applied_ = m.index;
  set_hard_state_dirty(out);
  recompute_membership(&out);
  out.events.push_back({"snapshot_installed", term_, m.index, from});
  emit_committed(out);
  r.index = m.index;
  out.messages.push_back({from, r});
}

void machine::on_snapshot_response(int64_t now, const node_id& from, const snapshot_response& m,
                                   ready& out) {
  progress* found = follower_progress(from);
  if (!found) return;
  auto& pr = *found;
  pr.recent_active = true;
  if (m.index > pr.match) {
    pr.match = std::min(m.index, last_index());
    pr.progressed = true;
  }
  pr.next = pr.match + 1;
  pr.state = progress::mode::replicate;
  maybe_commit(now, out);
  if (role_ != role::leader) return;
  if (pr.next <= last_index()) send_append(now, from, pr, out);
}

void machine::on_timeout_now(int64_t now, const node_id& from, const timeout_now& m, ready& out) {
  if (role_ == role::leader || !is_voter(config_.self)) return;
  out.events.push_back({"transfer_started", term_, last_index(), from});
  become_candidate(now, /*transfer=*/true, out);
}

machine::progress* machine::follower_progress(const node_id& id) {
  if (role_ != role::leader) return nullptr;
  auto it = progress_.find(id);
  return it == progress_.end() ? nullptr : &it->second;
}

// ---- replication --------------------------------------------------------------------------------

void machine::send_heartbeat(const node_id& to, const progress& pr, ready& out) {
  // prev = what is known to match, so a heartbeat never fails on a follower that is behind and
  // never lets it commit beyond what it holds.
  append_request m;
  m.term = term_;
  m.prev_index = pr.match >= snapshot_.index ? pr.match : snapshot_.index;
  auto t = term_at(m.prev_index);
  if (!t) {
    m.prev_index = snapshot_.index;
    t = snapshot_.term;
  }
  m.prev_term = *t;
  m.commit = std::min(commit_, m.prev_index);
  m.read_context = read_round_;
  out.messages.push_back({to, std::move(m)});
}

void machine::send_append(int64_t now, const node_id& to, progress& pr, ready& out) {
  if (pr.state == progress::mode::snapshot) return;
  if (pr.state == progress::mode::probe && pr.probe_sent) return;
  if (pr.state == progress::mode::replicate && pr.next - 1 - pr.match >= config_.max_inflight_entries)
    return;  // window full: wait for acknowledgements
  if (pr.next <= snapshot_.index) {
    // What the follower needs was compacted away: send the snapshot.
    if (!snapshot_.data) return;
    snapshot_request s;
    s.term = term_;
    s.index = snapshot_.index;
    s.snapshot_term = snapshot_.term;
    s.config = snapshot_.config;
    s.data = *snapshot_.data;
    pr.state = progress::mode::snapshot;
    pr.pending_snapshot = snapshot_.index;
    pr.snapshot_sent_us = now;
    out.messages.push_back({to, std::move(s)});
    return;
  }
  append_request m;
  m.term = term_;
  m.prev_index = pr.next - 1;
  m.prev_term = *term_at(m.prev_index);
  m.read_context = read_round_;
  size_t bytes_total = 0;
  for (index_t i = pr.next; i <= last_index() && m.entries.size() < config_.max_entries_per_append;
       ++i) {
    const entry* e = entry_at(i);
    if (!m.entries.empty() && bytes_total + e->data.size() > config_.max_bytes_per_append) break;
    bytes_total += e->data.size() + 24;
    m.entries.push_back(*e);
  }
  index_t last_sent = m.prev_index + m.entries.size();
  m.commit = std::min(commit_, last_sent);
  if (pr.state == progress::mode::replicate)
    pr.next = last_sent + 1;  // pipelining: the next batch goes out without waiting
  else
    pr.probe_sent = true;
  out.messages.push_back({to, std::move(m)});
}

void machine::broadcast_append(int64_t now, ready& out) {
  for (auto& [id, pr] : progress_)
    if (pr.next <= last_index()) send_append(now, id, pr, out);
}

void machine::maybe_commit(int64_t now, ready& out) {
  std::vector<index_t> matches;
  for (const auto& id : voter_ids_) {
    if (id == config_.self) {
      matches.push_back(last_index());
      continue;
    }
    auto it = progress_.find(id);
    matches.push_back(it == progress_.end() ? 0 : it->second.match);
  }
  if (matches.empty()) return;
  std::sort(matches.begin(), matches.end(), std::greater<>());
  index_t candidate = matches[quorum() - 1];
  if (candidate <= commit_) return;
  // Only entries of the current term are committed by counting replicas (Raft §5.4.2); earlier
  // ones commit with them.
  if (config_.bug != planted_bug::commit_old_terms && term_at(candidate) != term_) return;
  advance_commit(candidate, out);
  // Tell followers at once (commit-only heartbeats), rather than at the next heartbeat.
  for (auto& [id, pr] : progress_)
    if (pr.state != progress::mode::snapshot && pr.next > last_index()) send_heartbeat(id, pr, out);
  if (!reads_waiting_commit_.empty() && committed_in_current_term()) {
    for (auto id : reads_waiting_commit_) reads_.push_back({id, commit_, 0});
    reads_waiting_commit_.clear();
    start_read_round(out);
  }
  // A leader that is no longer a voter steps down once its removal is committed.
  if (!is_voter(config_.self) && members_index_ <= commit_) {
    out.events.push_back({"removed_self", term_, commit_, {}});
    become_follower(now, term_, node_id{}, out);
  }
}

void machine::advance_commit(index_t index, ready& out) {
  commit_ = std::min(index, last_index());
  set_hard_state_dirty(out);
  emit_committed(out);
}

void machine::emit_committed(ready& out) {
  while (applied_ < commit_) {
    ++applied_;
    out.committed.push_back(*entry_at(applied_));
  }
}

// ---- ReadIndex ----------------------------------------------------------------------------------

void machine::start_read_round(ready& out) {
  // One round at a time; the rest join the next. Checked first: reads arriving during a round
  // then cost O(1) each, not a scan of every waiting read.
  if (read_round_ > read_round_done_) return;
  bool waiting = false;
  for (const auto& r : reads_) waiting |= r.round == 0;
  if (!waiting) return;
  ++read_round_;
  for (auto& r : reads_)
    if (r.round == 0) r.round = read_round_;
  quorum_reads(out);  // a single-voter group confirms at once
  for (auto& [id, pr] : progress_)
    if (is_voter(id)) send_heartbeat(id, pr, out);
}

void machine::quorum_reads(ready& out) {
  if (role_ != role::leader) return;
  // The highest round acknowledged by a quorum (we acknowledge every round we started).
  std::vector<uint64_t> acks;
  for (const auto& id : voter_ids_) {
    if (id == config_.self) {
      acks.push_back(read_round_);
      continue;
    }
    auto it = progress_.find(id);
    acks.push_back(it == progress_.end() ? 0 : it->second.read_ack);
  }
  if (acks.empty()) return;
  std::sort(acks.begin(), acks.end(), std::greater<>());
  uint64_t confirmed = acks[quorum() - 1];
  if (confirmed <= read_round_done_) return;
  read_round_done_ = confirmed;
  std::vector<pending_read> rest;
  for (const auto& r : reads_) {
    if (r.round != 0 && r.round <= confirmed)
      out.reads.push_back({r.id, r.index});
    else
      rest.push_back(r);
  }
  reads_ = std::move(rest);
  start_read_round(out);
}

void machine::fail_reads(ready& out) {
  for (const auto& r : reads_) out.reads_failed.push_back(r.id);
  for (auto id : reads_waiting_commit_) out.reads_failed.push_back(id);
  reads_.clear();
  reads_waiting_commit_.clear();
}

status machine::read_index(int64_t now, uint64_t id, ready& out) {
  if (role_ != role::leader) return {errc::unavailable, "not the leader"};
  if (!committed_in_current_term()) {
    reads_waiting_commit_.push_back(id);
    return {};
  }
  if (config_.bug == planted_bug::read_without_quorum) {
    out.reads.push_back({id, commit_});  // trusts that it is still the leader: stale reads
    return {};
  }
  reads_.push_back({id, commit_, 0});
  start_read_round(out);
  return {};
}

std::optional<index_t> machine::local_read_index() const {
  if (role_ != role::leader || voter_ids_.size() != 1 || voter_ids_[0] != config_.self) return std::nullopt;
  if (config_.bug == planted_bug::read_without_quorum) return std::nullopt;  // the checker's planted bug stays reachable
  if (!committed_in_current_term()) return std::nullopt;
  return commit_;
}

// ---- client-facing ------------------------------------------------------------------------------

result<index_t> machine::propose(int64_t now, bytes data, ready& out) {
  if (role_ != role::leader) return error{errc::unavailable, "not the leader"};
  if (transferring()) return error{errc::unavailable, "leadership transfer in progress"};
  append_local({term_, last_index() + 1, static_cast<uint8_t>(entry_kind::normal), std::move(data)},
               out);
  index_t index = last_index();
  maybe_commit(now, out);  // a single-voter group commits at once
  broadcast_append(now, out);
  return index;
}

result<index_t> machine::change_membership(int64_t now, membership_change change,
                                           const node_id& who, ready& out) {
  if (role_ != role::leader) return error{errc::unavailable, "not the leader"};
  if (transferring()) return error{errc::unavailable, "leadership transfer in progress"};
  if (members_index_ > commit_)
    return error{errc::already_exists, "a membership change is still uncommitted"};
  if (!committed_in_current_term())
    return error{errc::unavailable, "leader has not committed in its term yet"};
  auto voters = voter_ids_;
  auto learners = learner_ids_;
  auto erase = [](std::vector<node_id>& v, const node_id& id) {
    auto it = std::find(v.begin(), v.end(), id);
    if (it == v.end()) return false;
    v.erase(it);
    return true;
  };
  switch (change) {
    case membership_change::add_voter:
      if (is_voter(who)) return error{errc::invalid_argument, "already a voter"};
      erase(learners, who);  // promotion
      voters.push_back(who);
      break;
    case membership_change::add_learner:
      if (is_member(who)) return error{errc::invalid_argument, "already a member"};
      learners.push_back(who);
      break;
    case membership_change::remove:
      if (!erase(voters, who) && !erase(learners, who))
        return error{errc::invalid_argument, "not a member"};
      if (voters.empty()) return error{errc::invalid_argument, "cannot remove the last voter"};
      break;
  }
  std::sort(voters.begin(), voters.end());
  std::sort(learners.begin(), learners.end());
  membership next{to_keys(voters), to_keys(learners)};
  auto data = pack_value(next);
  if (!data) return data.err();
  append_local({term_, last_index() + 1, static_cast<uint8_t>(entry_kind::config),
                std::move(data).value()},
               out);
  index_t index = last_index();
  maybe_commit(now, out);
  if (role_ == role::leader) broadcast_append(now, out);
  return index;
}

status machine::transfer_leadership(int64_t now, const node_id& to, ready& out) {
  if (role_ != role::leader) return {errc::unavailable, "not the leader"};
  if (to == config_.self) return {errc::invalid_argument, "already the leader"};
  if (!is_voter(to)) return {errc::invalid_argument, "transfer target is not a voter"};
  transfer_target_ = to;
  transfer_deadline_us_ = now + config_.election_timeout_min_us;
  auto& pr = progress_[to];
  if (pr.match == last_index())
    out.messages.push_back({to, timeout_now{term_}});
  else
    send_append(now, to, pr, out);
  return {};
}

status machine::compact(index_t index, std::shared_ptr<const bytes> data) {
  if (index > applied_) return {errc::invalid_argument, "cannot compact past the applied index"};
  if (index <= snapshot_.index) return {errc::invalid_argument, "already compacted to that index"};
  snapshot_record snap;
  snap.index = index;
  snap.term = *term_at(index);
  snap.config = membership_at(index);
  snap.data = std::move(data);
  while (!log_.empty() && log_.front().index <= index) log_.pop_front();
  snapshot_ = std::move(snap);
  return {};
}

}  // namespace cmesh::raft
