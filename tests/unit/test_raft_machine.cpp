// raft::machine, keyed to the rules of the Raft paper (Ongaro & Ousterhout 2014, Figure 2 and
// Figure 3) and the dissertation's extensions (PreVote, CheckQuorum, ReadIndex, transfer,
// single-server membership changes).
#include <doctest/doctest.h>

#include "messages/codec.hpp"
#include "tests/unit/raft_cluster.hpp"

using namespace cmesh;
using namespace cmesh::raft;
using cmesh::raft::testing::cluster;
using cmesh::raft::testing::test_id;

namespace {

entry make_entry(term_t term, index_t index, const std::string& data = "x") {
  return {term, index, static_cast<uint8_t>(entry_kind::normal), bytes(data.begin(), data.end())};
}

membership members_of(std::initializer_list<int> voters) {
  membership m;
  for (int v : voters) {
    auto id = test_id(v);
    m.voters.emplace_back(id.key.begin(), id.key.end());
  }
  return m;
}

// A machine restored with the given term and log.
std::unique_ptr<machine> machine_with_log(int self, std::initializer_list<int> voters, term_t term,
                                          std::vector<entry> log, bool pre_vote = false) {
  config c;
  c.self = test_id(self);
  c.pre_vote = pre_vote;
  auto m = std::make_unique<machine>(c, members_of(voters), 42);
  restored_state s;
  s.state.term = term;
  s.log = std::move(log);
  ready r;
  m->restore(0, std::move(s), r);
  return m;
}

template <class T>
const T* find_message(const ready& r, const node_id& to) {
  for (const auto& m : r.messages)
    if (m.to == to)
      if (auto* p = std::get_if<T>(&m.message)) return p;
  return nullptr;
}

}  // namespace

TEST_CASE("raft: a single voter elects itself and commits at once") {
  cluster c(1);
  CHECK(c.elect() == 0);
  auto idx = c.propose(0, "a");
  REQUIRE(idx.ok());
  CHECK(c.nodes[0]->commit_index() == idx.value());
  CHECK(c.commands(0) == std::vector<std::string>{"a"});
}

TEST_CASE("raft: three nodes elect exactly one leader and replicate to all") {
  cluster c(3);
  int l = c.elect();
  REQUIRE(l >= 0);
  int leaders = 0;
  for (auto& n : c.nodes) leaders += n->current_role() == role::leader;
  CHECK(leaders == 1);
  for (int i = 0; i < 20; ++i) REQUIRE(c.propose(l, "v" + std::to_string(i)).ok());
  c.run_for(200'000);
  for (int i = 0; i < 3; ++i) {
    CHECK(c.commands(i).size() == 20);
    CHECK(c.commands(i) == c.commands(l));
  }
}

TEST_CASE("raft: followers refuse proposals") {
  cluster c(3);
  int l = c.elect();
  int f = (l + 1) % 3;
  auto res = c.propose(f, "nope");
  REQUIRE_FALSE(res.ok());
  CHECK(res.err().code == errc::unavailable);
}

TEST_CASE("raft: election restriction - a voter refuses a candidate whose log is behind") {
  // Voter 1 has an entry of term 2; candidate 0 only has term 1 entries.
  auto voter = machine_with_log(1, {0, 1, 2}, 2, {make_entry(1, 1), make_entry(2, 2)});
  ready r;
  voter->step(0, test_id(0), vote_request{3, 5, 1, false, false}, r);
  auto* resp = find_message<vote_response>(r, test_id(0));
  REQUIRE(resp);
  CHECK_FALSE(resp->granted);
  CHECK(voter->term() == 3);  // adopted the higher term all the same
  // Same last term but a shorter log: refused too.
  ready r2;
  voter->step(0, test_id(2), vote_request{3, 1, 2, false, false}, r2);
  REQUIRE(find_message<vote_response>(r2, test_id(2)));
  CHECK_FALSE(find_message<vote_response>(r2, test_id(2))->granted);
  // Up-to-date candidate: granted, and the vote is persisted in the same ready as the answer.
  ready r3;
  voter->step(0, test_id(2), vote_request{3, 2, 2, false, false}, r3);
  REQUIRE(find_message<vote_response>(r3, test_id(2)));
  CHECK(find_message<vote_response>(r3, test_id(2))->granted);
  CHECK(r3.hard_state_changed);
  CHECK(r3.state.vote == test_id(2));
}

TEST_CASE("raft: planted bug vote-ignores-log grants a stale candidate") {
  config c;
  c.self = test_id(1);
  c.pre_vote = false;
  c.bug = planted_bug::vote_ignores_log;
  machine voter(c, members_of({0, 1, 2}), 1);
  restored_state s;
  s.state.term = 2;
  s.log = {make_entry(1, 1), make_entry(2, 2)};
  ready r;
  voter.restore(0, s, r);
  voter.step(0, test_id(0), vote_request{3, 1, 1, false, false}, r);
  REQUIRE(find_message<vote_response>(r, test_id(0)));
  CHECK(find_message<vote_response>(r, test_id(0))->granted);
}

TEST_CASE("raft: at most one vote per term - a second candidate in the same term is refused") {
  auto voter = machine_with_log(1, {0, 1, 2}, 1, {});
  ready r;
  voter->step(0, test_id(0), vote_request{2, 0, 0, false, false}, r);
  CHECK(find_message<vote_response>(r, test_id(0))->granted);
  ready r2;
  voter->step(0, test_id(2), vote_request{2, 0, 0, false, false}, r2);
  CHECK_FALSE(find_message<vote_response>(r2, test_id(2))->granted);
  // Asking again (a retransmission) gets the same answer.
  ready r3;
  voter->step(0, test_id(0), vote_request{2, 0, 0, false, false}, r3);
  CHECK(find_message<vote_response>(r3, test_id(0))->granted);
}

TEST_CASE("raft: a restarted voter remembers its vote") {
  cluster c(3);
  ready r;
  c.nodes[1]->step(0, test_id(0), vote_request{5, 0, 0, false, false}, r);
  c.handle(1, r);
  c.network.clear();
  c.crash(1);
  c.boot(1);
  CHECK(c.nodes[1]->term() == 5);
  CHECK(c.nodes[1]->vote() == test_id(0));
  ready r2;
  c.nodes[1]->step(0, test_id(2), vote_request{5, 0, 0, false, false}, r2);
  CHECK_FALSE(find_message<vote_response>(r2, test_id(2))->granted);
}

TEST_CASE("raft: log matching - a follower drops a conflicting suffix and takes the leader's") {
  auto f = machine_with_log(1, {0, 1, 2}, 2,
                            {make_entry(1, 1), make_entry(2, 2, "old"), make_entry(2, 3, "old")});
  append_request m;
  m.term = 3;
  m.prev_index = 1;
  m.prev_term = 1;
  m.entries = {make_entry(3, 2, "new"), make_entry(3, 3, "new"), make_entry(3, 4, "new")};
  m.commit = 4;
  ready r;
  f->step(0, test_id(0), m, r);
  auto* resp = find_message<append_response>(r, test_id(0));
  REQUIRE(resp);
  CHECK(resp->success);
  CHECK(resp->match_index == 4);
  REQUIRE(r.truncate_from);
  CHECK(*r.truncate_from == 2);
  CHECK(r.append.size() == 3);
  CHECK(f->last_index() == 4);
  CHECK(*f->term_at(2) == 3);
  CHECK(f->commit_index() == 4);
  CHECK(r.committed.size() == 4);
}

TEST_CASE("raft: append with a mismatching prev entry is rejected with a hint past the term") {
  auto f = machine_with_log(1, {0, 1, 2}, 3,
                            {make_entry(1, 1), make_entry(2, 2), make_entry(2, 3), make_entry(2, 4)});
  append_request m;
  m.term = 3;
  m.prev_index = 4;
  m.prev_term = 3;
  ready r;
  f->step(0, test_id(0), m, r);
  auto* resp = find_message<append_response>(r, test_id(0));
  REQUIRE(resp);
  CHECK_FALSE(resp->success);
  CHECK(resp->hint_index == 2);  // the first entry of the conflicting term 2
  // prev beyond our log: hint = our last + 1
  m.prev_index = 9;
  ready r2;
  f->step(0, test_id(0), m, r2);
  CHECK(find_message<append_response>(r2, test_id(0))->hint_index == 5);
  CHECK(f->last_index() == 4);  // nothing was changed by rejected appends
}

TEST_CASE("raft: a follower commits no further than the leader's commit and its own last new entry") {
  auto f = machine_with_log(1, {0, 1, 2}, 1, {make_entry(1, 1), make_entry(1, 2), make_entry(1, 3)});
  // Heartbeat with prev=1 and commit=3: only index 1 is known to match, so commit stops at 1.
  append_request m;
  m.term = 1;
  m.prev_index = 1;
  m.prev_term = 1;
  m.commit = 3;
  ready r;
  f->step(0, test_id(0), m, r);
  CHECK(f->commit_index() == 1);
}

TEST_CASE("raft: an old-term entry is not committed by counting replicas (Figure 8)") {
  // Leader 0 in term 4 holds entry (2,2) from an earlier term, and a follower has it too. A
  // majority (0 and 1) holds index 2, but it must not commit until an entry of term 4 does.
  for (auto bug : {planted_bug::none, planted_bug::commit_old_terms}) {
    config c;
    c.self = test_id(0);
    c.pre_vote = false;
    c.bug = bug;
    machine leader(c, members_of({0, 1, 2, 3, 4}), 3);
    restored_state s;
    s.state.term = 3;
    s.log = {make_entry(1, 1), make_entry(2, 2)};
    ready r;
    leader.restore(0, s, r);
    r.clear();
    leader.tick(1'000'000, r);  // campaigns for term 4
    REQUIRE(leader.current_role() == role::candidate);
    for (int v : {1, 2}) leader.step(1'000'000, test_id(v), vote_response{4, true, false}, r);
    REQUIRE(leader.current_role() == role::leader);
    CHECK(leader.last_index() == 3);  // the no-op of term 4
    r.clear();
    // Followers 1 and 2 acknowledge index 2 (they hold the old entry), but not the no-op.
    for (int v : {1, 2}) {
      append_response a;
      a.term = 4;
      a.success = true;
      a.match_index = 2;
      a.last_index = 2;
      leader.step(1'000'000, test_id(v), a, r);
    }
    if (bug == planted_bug::none) {
      CHECK(leader.commit_index() == 0);
    } else {
      CHECK(leader.commit_index() == 2);  // the planted bug does exactly what Figure 8 forbids
    }
    // Once the no-op (term 4) is on a majority, everything up to it commits.
    for (int v : {1, 2}) {
      append_response a;
      a.term = 4;
      a.success = true;
      a.match_index = 3;
      a.last_index = 3;
      leader.step(1'000'000, test_id(v), a, r);
    }
    CHECK(leader.commit_index() == 3);
  }
}

TEST_CASE("raft: a new leader overwrites uncommitted entries of a deposed leader") {
  cluster c(3);
  int l = c.elect();
  REQUIRE(c.propose(l, "committed").ok());
  c.run_for(100'000);
  // Isolate the leader and let it append entries nobody else sees.
  c.isolate(l);
  (void)c.propose(l, "lost-1");
  (void)c.propose(l, "lost-2");
  c.run_for(1'000'000);
  int l2 = -1;
  for (int i = 0; i < 3; ++i)
    if (i != l && c.nodes[i]->current_role() == role::leader) l2 = i;
  REQUIRE(l2 >= 0);
  REQUIRE(c.propose(l2, "new").ok());
  c.heal();
  c.run_for(1'000'000);
  for (int i = 0; i < 3; ++i)
    CHECK(c.commands(i) == std::vector<std::string>{"committed", "new"});
}

TEST_CASE("raft: CheckQuorum - an isolated leader steps down") {
  cluster c(3);
  int l = c.elect();
  c.isolate(l);
  c.run_for(600'000);
  CHECK(c.nodes[l]->current_role() != role::leader);
}

TEST_CASE("raft: PreVote - a partitioned follower does not inflate its term or disrupt the leader") {
  cluster c(3);
  int l = c.elect();
  REQUIRE(l >= 0);
  term_t term = c.nodes[l]->term();
  int f = (l + 1) % 3;
  c.isolate(f);
  c.run_for(3'000'000);  // many election timeouts
  CHECK(c.nodes[f]->term() == term);
  c.heal();
  c.run_for(1'000'000);
  CHECK(c.nodes[l]->current_role() == role::leader);
  CHECK(c.nodes[l]->term() == term);
}

TEST_CASE("raft: without PreVote a partitioned follower does inflate its term") {
  config base;
  base.pre_vote = false;
  cluster c(3, -1, base);
  int l = c.elect();
  term_t term = c.nodes[l]->term();
  int f = (l + 1) % 3;
  c.isolate(f);
  c.run_for(3'000'000);
  CHECK(c.nodes[f]->term() > term);  // the contrast that shows PreVote is doing the work
}

TEST_CASE("raft: leader lease - a follower that hears from its leader ignores vote requests") {
  cluster c(3);
  int l = c.elect();
  int f = (l + 1) % 3;
  int other = (l + 2) % 3;
  term_t term = c.nodes[f]->term();
  ready r;
  c.nodes[f]->step(c.now, c.ids[other], vote_request{term + 5, 100, term + 4, false, false}, r);
  CHECK(r.messages.empty());
  CHECK(c.nodes[f]->term() == term);
  // A transfer request bypasses the lease.
  ready r2;
  c.nodes[f]->step(c.now, c.ids[other], vote_request{term + 5, 100, term + 4, false, true}, r2);
  CHECK(c.nodes[f]->term() == term + 5);
}

TEST_CASE("raft: ReadIndex is confirmed only after a quorum acknowledges leadership") {
  cluster c(3);
  int l = c.elect();
  c.run_for(100'000);  // the no-op commits
  REQUIRE(c.propose(l, "w").ok());
  index_t commit = c.nodes[l]->commit_index();
  // Cut the leader off: the read must not be confirmed.
  c.isolate(l);
  ready r;
  REQUIRE(c.nodes[l]->read_index(c.now, 7, r).ok());
  c.handle(l, r);
  c.deliver();
  CHECK(c.reads[l].empty());
  c.run_for(600'000);  // CheckQuorum deposes it: the read fails rather than answering stale data
  CHECK(c.reads[l].empty());
  CHECK(c.reads_failed[l] == std::vector<uint64_t>{7});
  c.heal();
  int l2 = c.elect();
  c.run_for(100'000);
  ready r2;
  REQUIRE(c.nodes[l2]->read_index(c.now, 8, r2).ok());
  c.handle(l2, r2);
  c.deliver();
  REQUIRE(c.reads[l2].size() == 1);
  CHECK(c.reads[l2][0].id == 8);
  CHECK(c.reads[l2][0].index >= commit);
}

TEST_CASE("raft: ReadIndex on a follower is refused") {
  cluster c(3);
  int l = c.elect();
  ready r;
  CHECK(c.nodes[(l + 1) % 3]->read_index(c.now, 1, r).code == errc::unavailable);
}

TEST_CASE("raft: leadership transfer hands over to the target and refuses proposals meanwhile") {
  cluster c(3);
  int l = c.elect();
  REQUIRE(c.propose(l, "a").ok());
  c.run_for(100'000);
  int target = (l + 1) % 3;
  ready r;
  REQUIRE(c.nodes[l]->transfer_leadership(c.now, c.ids[target], r).ok());
  CHECK(c.nodes[l]->transferring());
  auto refused = c.nodes[l]->propose(c.now, bytes{1}, r);
  CHECK_FALSE(refused.ok());
  c.handle(l, r);
  c.deliver();
  c.run_for(50'000);
  CHECK(c.nodes[target]->current_role() == role::leader);
  CHECK(c.nodes[l]->current_role() == role::follower);
  REQUIRE(c.propose(target, "b").ok());
  c.run_for(100'000);
  CHECK(c.commands(l) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("raft: membership - a learner receives the log without voting then is promoted") {
  cluster c(4, 3);  // node 3 is not a member yet
  int l = c.elect();
  REQUIRE(c.propose(l, "a").ok());
  c.run_for(100'000);
  ready r;
  auto added = c.nodes[l]->change_membership(c.now, membership_change::add_learner, c.ids[3], r);
  REQUIRE(added.ok());
  // One change at a time.
  auto second = c.nodes[l]->change_membership(c.now, membership_change::remove, c.ids[3], r);
  CHECK(second.err().code == errc::already_exists);
  c.handle(l, r);
  c.run_for(200'000);
  CHECK(c.commands(3) == std::vector<std::string>{"a"});
  CHECK_FALSE(c.nodes[l]->is_voter(c.ids[3]));
  CHECK(c.nodes[3]->is_member(c.ids[3]));
  // A learner never campaigns, even when cut off.
  c.isolate(3);
  c.run_for(2'000'000);
  CHECK(c.nodes[3]->current_role() == role::follower);
  c.heal();
  c.run_for(200'000);
  l = c.leader();
  ready r2;
  REQUIRE(c.nodes[l]->change_membership(c.now, membership_change::add_voter, c.ids[3], r2).ok());
  c.handle(l, r2);
  c.run_for(200'000);
  for (int i = 0; i < 4; ++i) CHECK(c.nodes[i]->members().voters.size() == 4);
}

TEST_CASE("raft: membership - a removed leader steps down once the removal commits") {
  cluster c(3);
  int l = c.elect();
  c.run_for(100'000);
  ready r;
  REQUIRE(c.nodes[l]->change_membership(c.now, membership_change::remove, c.ids[l], r).ok());
  c.handle(l, r);
  c.run_for(2'000'000);
  CHECK(c.nodes[l]->current_role() != role::leader);
  int l2 = c.leader();
  REQUIRE(l2 >= 0);
  CHECK(l2 != l);
  CHECK(c.nodes[l2]->members().voters.size() == 2);
  REQUIRE(c.propose(l2, "after").ok());
  c.run_for(200'000);
  int other = 3 - l - l2;
  CHECK(c.commands(other) == std::vector<std::string>{"after"});
}

TEST_CASE("raft: a lagging follower catches up through a snapshot after compaction") {
  cluster c(3);
  int l = c.elect();
  int lag = (l + 1) % 3;
  c.crash(lag);
  for (int i = 0; i < 50; ++i) REQUIRE(c.propose(l, "v" + std::to_string(i)).ok());
  c.run_for(100'000);
  index_t applied = c.nodes[l]->applied_index();
  auto snap = std::make_shared<const bytes>(bytes{'S', 'N', 'A', 'P'});
  REQUIRE(c.nodes[l]->compact(applied, snap).ok());
  CHECK(c.nodes[l]->first_index() == applied + 1);
  CHECK(c.nodes[l]->compact(applied, snap).code == errc::invalid_argument);
  c.boot(lag);
  REQUIRE(c.propose(l, "tail").ok());
  c.run_for(500'000);
  REQUIRE(c.disks[lag].snapshot);
  CHECK(c.disks[lag].snapshot->index == applied);
  CHECK(*c.disks[lag].snapshot->data == *snap);
  CHECK(c.commands(lag) == std::vector<std::string>{"tail"});  // the rest came in the snapshot
  CHECK(c.nodes[lag]->commit_index() == c.nodes[l]->commit_index());
}

TEST_CASE("raft: restart restores term vote log and re-applies committed entries") {
  cluster c(3);
  int l = c.elect();
  for (int i = 0; i < 5; ++i) REQUIRE(c.propose(l, "v" + std::to_string(i)).ok());
  c.run_for(200'000);
  int f = (l + 1) % 3;
  auto before = c.commands(f);
  term_t term = c.nodes[f]->term();
  c.crash(f);
  c.boot(f);
  CHECK(c.nodes[f]->term() == term);
  CHECK(c.commands(f) == before);  // re-applied from the persisted commit index
  c.run_for(200'000);
  REQUIRE(c.propose(c.leader(), "after").ok());
  c.run_for(200'000);
  CHECK(c.commands(f).back() == "after");
}

TEST_CASE("raft: lost pipelined appends are recovered by the heartbeat") {
  cluster c(3);
  int l = c.elect();
  c.run_for(100'000);
  int f = (l + 1) % 3;
  c.cuts.insert({l, f});
  for (int i = 0; i < 10; ++i) REQUIRE(c.propose(l, "v" + std::to_string(i)).ok());
  c.heal();
  REQUIRE(c.propose(l, "last").ok());
  c.run_for(300'000);
  CHECK(c.commands(f).size() == 11);
  CHECK(c.commands(f) == c.commands(l));
}

TEST_CASE("raft: batching sends many entries in one append") {
  cluster c(3);
  int l = c.elect();
  c.run_for(100'000);
  int f = (l + 1) % 3;
  c.cuts.insert({l, f});
  for (int i = 0; i < 100; ++i) REQUIRE(c.propose(l, "v").ok());
  c.heal();
  // The follower is in probe state after a rejection; count entries per append from now on.
  c.run_for(300'000);
  CHECK(c.commands(f).size() == 100);
}

TEST_CASE("raft: configuration validation names the bad field") {
  config c;
  c.heartbeat_interval_us = c.election_timeout_min_us;
  auto s = validate(c);
  CHECK(s.code == errc::invalid_argument);
  CHECK(s.message.find("heartbeat_interval_us") != std::string::npos);
  c = config{};
  c.election_timeout_max_us = 1;
  CHECK(validate(c).message.find("election_timeout_max_us") != std::string::npos);
  CHECK(validate(config{}).ok());
}

TEST_CASE("raft: planted bug names parse") {
  CHECK(parse_planted_bug("commit-old-terms").value() == planted_bug::commit_old_terms);
  CHECK_FALSE(parse_planted_bug("nonsense").ok());
}

TEST_CASE("raft: a local read index only for a sole voter that leads and has committed in its term") {
  cluster solo(1);
  CHECK_FALSE(solo.nodes[0]->local_read_index().has_value());  // not yet leader
  int l = solo.elect();
  solo.run_for(100'000);  // the no-op commits
  REQUIRE(solo.nodes[l]->local_read_index().has_value());
  CHECK(*solo.nodes[l]->local_read_index() == solo.nodes[l]->commit_index());
  REQUIRE(solo.propose(l, "w").ok());
  solo.run_for(10'000);
  CHECK(*solo.nodes[l]->local_read_index() == solo.nodes[l]->commit_index());

  // Three voters: every read asks a quorum, leader or not.
  cluster three(3);
  int l3 = three.elect();
  three.run_for(100'000);
  CHECK_FALSE(three.nodes[l3]->local_read_index().has_value());
  CHECK_FALSE(three.nodes[(l3 + 1) % 3]->local_read_index().has_value());
}
