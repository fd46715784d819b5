// The router (actors/router) in the simulator: 3 nodes forming a Raft group, each running the
// router, IAM and the events bus; a simulated CMTP client plays the seed's flow, and a simulated
// events client subscribed to events.> observes the audit trail. The leader crashes mid-flow.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "runtime/crypto/identity.hpp"
#include "sim/simulation.hpp"

using namespace cmesh;
using sim::cmtp_command;
using sim::cmtp_outcome;

namespace {

struct flow_result {
  std::vector<cmtp_outcome> calls;
  std::vector<sim::events_outcome> observed;
  std::vector<std::string> violations;
  std::string replay;
};

const cmtp_outcome* answer_of(const flow_result& r, size_t index) {
  const cmtp_outcome* found = nullptr;
  for (const auto& o : r.calls)
    if (o.command_index == index) {
      CHECK(found == nullptr);  // exactly one answer per request
      found = &o;
    }
  return found;
}

// 3 nodes forming a Raft group, each with the router, IAM and events bus.
sim::simulation_options router_options(uint64_t seed, int64_t duration_us) {
  sim::simulation_options o;
  o.nodes = 3;
  o.seed = seed;
  o.duration_us = duration_us;
  o.raft.voters = 3;
  o.agents.router = true;
  o.agents.iam = true;
  o.agents.events = true;
  return o;
}

// Runs `o` to its end into `r` (replay command and violations; the outcomes `o` points at).
void run_into(const sim::simulation_options& o, flow_result& r) {
  r.replay = sim::replay_command(o);
  auto s = sim::simulation::create(o);
  REQUIRE(s);
  (*s)->run_to_end();
  r.violations = (*s)->report().violations;
}

flow_result run_flow(uint64_t seed, bool crash_leader) {
  auto o = router_options(seed, 20'000'000);
  flow_result r;
  auto at = [](double s) { return static_cast<int64_t>(s * 1'000'000); };
  o.agents.cmtp_commands = {
      {at(4.0), 0, 0, "reg1", "0xRW:register:helloWorld.mcom:0xS:0x001", ""},
      {at(4.5), 1, 0, "reg2", "0xRW:register:helloWorldExample.mcom:0xS:0x001:hello_world", ""},
      {at(5.0), 2, 1, "reg3", "0xRW:register:helloWorld.mcom:0xS:0x002", ""},  // client 1: taken
      {at(5.5), 0, 0, "w1", "0xSW:0x001", "\"contract state\""},
      {at(6.0), 1, 0, "w2", "0xSW:0x001:hello_world", "\"hello, world\""},
      {at(12.0), 2, 0, "r1", "0xR:helloWorld.mcom", ""},
      {at(12.5), 0, 0, "r2", "0xR:helloWorldExample.mcom", ""},
      {at(13.0), 1, 0, "r3", "0xR:google.com", ""},
      {at(13.5), 2, 0, "bad", "0xQ:x", ""},
      // A client without the write scope.
      {at(14.0), 0, 2, "ro", "0xSW:0x001", "\"x\"", "state.read names.resolve"},
      // During the crashes (when there are any): through node 2, which stays up.
      {at(7.2), 2, 0, "during", "0xSW:0x001:during", "\"d\""},
      // 0xP: node 1's router forwards to node 2's, which trusts node 1's IAM (same Raft group).
      {at(14.5), 1, 0, "px", "0xP:" + identity::derive_for_simulation(seed, 2).did() + ":0xR:helloWorldExample.mcom", ""},
  };
  if (crash_leader) {
    // Crash whichever node is then leader: all three in turn for 1.5 s each, between the writes
    // and the reads. A majority stays up at every moment.
    o.faults.crashes.push_back({0, at(7.0), at(1.5)});
    o.faults.crashes.push_back({1, at(8.7), at(1.5)});
  }
  o.agents.cmtp_outcomes = &r.calls;
  sim::events_command watch;
  watch.what = sim::events_command::kind::subscribe;
  watch.at_us = at(3.0);
  watch.node = 0;
  watch.subject = "events.>";
  o.agents.events_commands = {watch};
  if (crash_leader) {
    // A subscription lives as long as its node: subscribe again once node 0 is back.
    watch.at_us = at(9.0);
    o.agents.events_commands.push_back(watch);
  }
  o.agents.events_outcomes = &r.observed;
  run_into(o, r);
  return r;
}

}  // namespace

TEST_CASE("sim router: the seed's flow - registered once, resolved and dispatched through any router, 404 for google.com, audit trail on the bus - with and without leader crashes") {
  for (uint64_t seed : {71, 72}) {
    for (bool crash : {false, true}) {
      auto r = run_flow(seed, crash);
      INFO("seed " << seed << std::string(crash ? " with crashes" : "") << "; replay: " << r.replay);
      CHECK(r.violations.empty());
      auto status = [&](size_t i) {
        const auto* a = answer_of(r, i);
        return a ? a->status : uint16_t{0};
      };
      CHECK(status(0) == 201);
      CHECK(status(1) == 201);
      CHECK(status(2) == 409);
      CHECK(status(3) == 200);
      CHECK(status(4) == 200);
      CHECK(status(5) == 200);
      CHECK(status(6) == 200);
      CHECK(status(7) == 404);
      CHECK(status(8) == 400);
      CHECK(status(9) == 403);
      // Written while the leader was down: answered exactly once, committed or refused plainly.
      const uint16_t during = status(10);
      CHECK((during == 200 || during == 503 || during == 408));
      CHECK(status(11) == 200);
      if (const auto* a = answer_of(r, 11)) CHECK(a->body == "\"hello, world\"");
      if (const auto* a = answer_of(r, 5)) CHECK(a->body == "\"contract state\"");
      if (const auto* a = answer_of(r, 6)) CHECK(a->body == "\"hello, world\"");
      if (const auto* a = answer_of(r, 3)) CHECK(a->audit.size() == 32);

      // The audit trail as the subscriber on node 0 saw it: every write that went through node 0
      // (reg1, w1, r2) left requests/responses/mined, and the writes confirmed.
      std::map<std::string, int> subjects;
      for (const auto& e : r.observed)
        if (e.what == sim::events_outcome::kind::message) ++subjects[e.subject];
      CHECK(subjects["events.responses.reg1"] == 1);
      CHECK(subjects["events.mined.reg1"] == 1);
      CHECK(subjects["events.confirmed.reg1"] == 1);
      CHECK(subjects["events.mined.w1"] == 1);
      CHECK(subjects["events.confirmed.w1"] == 1);
      CHECK(subjects["events.mined.r2"] == 1);
      CHECK(subjects["events.confirmed.r2"] == 0);  // a read is never confirmed
      CHECK(subjects["events.requests"] >= 3);
      // Refusals before the audit step leave no trail.
      CHECK(subjects.count("events.mined.ro") == 0);
      CHECK(subjects.count("events.mined.bad") == 0);
    }
  }
}

TEST_CASE("sim router: same seed, same answers") {
  auto a = run_flow(73, true);
  auto b = run_flow(73, true);
  REQUIRE(a.calls.size() == b.calls.size());
  for (size_t i = 0; i < a.calls.size(); ++i) {
    CHECK(a.calls[i].command_index == b.calls[i].command_index);
    CHECK(a.calls[i].status == b.calls[i].status);
    CHECK(a.calls[i].at_us == b.calls[i].at_us);
    CHECK(a.calls[i].audit == b.calls[i].audit);
  }
}

namespace {

// The same requests, sent in two in-process batch calls (router_batch_atom) or one call each.
flow_result run_batch_flow(uint64_t seed, bool batched) {
  auto o = router_options(seed, 12'000'000);
  auto at = [](double s) { return static_cast<int64_t>(s * 1'000'000); };
  std::vector<cmtp_command> commands = {
      {at(5.0), 0, 0, "b1", "0xRW:register:batch.mcom:0xS:0x009", ""},
      {at(5.0), 0, 0, "b2", "0xSW:0x009", "\"batched\""},
      {at(5.0), 0, 0, "b3", "0xQ:x", ""},
      {at(5.0), 0, 0, "b2", "0xS:0x009", ""},  // the same tx while b2 is in flight
      {at(5.0), 0, 2, "b5", "0xSW:0x009", "\"x\"", "state.read names.resolve"},
      {at(5.0), 0, 0, "b6", "0xEW:batch.events.x", "\"e\""},
      {at(8.0), 0, 1, "c1", "0xR:batch.mcom", ""},
      {at(8.0), 0, 1, "c2", "0xS:0x009", ""},
      {at(8.0), 0, 1, "c3", "0xR:google.com", ""},
  };
  for (auto& c : commands) c.batched = batched;
  o.agents.cmtp_commands = commands;
  flow_result r;
  o.agents.cmtp_outcomes = &r.calls;
  run_into(o, r);
  return r;
}

}  // namespace

TEST_CASE("sim router: a batch call answers every request in order, as one call per request would") {
  auto batched = run_batch_flow(74, true);
  auto single = run_batch_flow(74, false);
  INFO("replay: " << batched.replay);
  CHECK(batched.violations.empty());
  CHECK(single.violations.empty());
  const std::vector<uint16_t> expected = {201, 200, 400, 409, 403, 200, 200, 200, 404};
  REQUIRE(batched.calls.size() == expected.size());
  REQUIRE(single.calls.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("command " << i);
    const auto* b = answer_of(batched, i);
    const auto* s = answer_of(single, i);
    REQUIRE(b != nullptr);
    REQUIRE(s != nullptr);
    CHECK(b->status == expected[i]);
    CHECK(s->status == expected[i]);
    CHECK(b->body == s->body);
    // Requests refused before the audit step carry no audit hash; the others do.
    const bool audited = expected[i] != 400 && expected[i] != 409 && expected[i] != 403;
    CHECK(b->audit.size() == (audited ? 32u : 0u));
  }
  CHECK(answer_of(batched, 6)->body == "\"batched\"");
  CHECK(answer_of(batched, 7)->body == "\"batched\"");
  // Answered together: every request of a batch at the same virtual moment.
  CHECK(answer_of(batched, 0)->at_us == answer_of(batched, 2)->at_us);
  CHECK(answer_of(batched, 6)->at_us == answer_of(batched, 8)->at_us);
}
