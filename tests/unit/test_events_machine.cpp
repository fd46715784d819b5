// Tests for actors/events/events_machine: a few machines wired together by a tiny in-test network
// (every message encoded to an envelope and decoded again), driven with explicit times and checked
// through their effects. No CAF.
#include <doctest/doctest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "actors/events/events_machine.hpp"
#include "messages/codec.hpp"

namespace {

using namespace cmesh;
using namespace cmesh::events;

// Distinct ids for n < 65536, ordered by n.
node_id node(uint32_t n) {
  node_id id;
  id.key[0] = static_cast<uint8_t>(n >> 8);
  id.key[1] = static_cast<uint8_t>(n);
  for (size_t i = 2; i < id.key.size(); ++i) id.key[i] = static_cast<uint8_t>(n * 13 + i);
  return id;
}

bytes text(const std::string& s) { return bytes(s.begin(), s.end()); }
std::string text_of(const bytes& b) { return std::string(b.begin(), b.end()); }
std::string text_of(const std::shared_ptr<const bytes>& b) { return b ? text_of(*b) : "<null>"; }

constexpr int64_t ms = 1000;
constexpr int64_t second = 1'000'000;

// What one node's shell saw.
struct node_output {
  std::vector<delivery> deliveries;
  std::vector<slow_consumer> reports;
  std::vector<request_done> done;
  std::vector<event> events;
  std::map<uint32_t, size_t> routed_to;  // routed_message sends per target node
};

struct net_message {
  uint32_t from = 0;
  uint32_t to = 0;
  bytes data;
};

// N machines, all peers of each other. Sends are encoded and queued FIFO; run() delivers until the
// network is quiet. With auto_ack the shell acknowledges every delivery at once.
class cluster {
public:
  explicit cluster(uint32_t n, uint64_t seed = 7, config cfg = config{}) : cfg_(cfg), seed_(seed) {
    outputs_.resize(n);
    for (uint32_t i = 0; i < n; ++i) machines_.push_back(make_machine(i, 0));
    for (uint32_t i = 0; i < n; ++i)
      for (uint32_t j = i + 1; j < n; ++j) connect(i, j);
    run();
  }

  machine& at(uint32_t i) { return *machines_[i]; }
  node_output& output(uint32_t i) { return outputs_[i]; }
  std::deque<net_message>& wire() { return wire_; }
  int64_t now() const { return now_us_; }
  void advance(int64_t us) { now_us_ += us; }
  bool auto_ack = true;

  void connect(uint32_t a, uint32_t b) {
    effects out;
    at(a).peer_up(node(b), now_us_, out);
    execute(a, out);
    at(b).peer_up(node(a), now_us_, out);
    execute(b, out);
  }
  // A new incarnation of node i (fresh machine, new rng stream): its peers see it come up again.
  void restart(uint32_t i) {
    machines_[i] = make_machine(i, ++incarnations_);
    for (uint32_t j = 0; j < machines_.size(); ++j)
      if (j != i) connect(i, j);
  }

  status subscribe(uint32_t i, uint64_t sid, const std::string& pattern,
                   const std::string& group = {}, pending_limits limits = {}) {
    effects out;
    auto s = at(i).subscribe(sid, pattern, group, limits, out);
    execute(i, out);
    run();
    return s;
  }
  status unsubscribe(uint32_t i, uint64_t sid) {
    effects out;
    auto s = at(i).unsubscribe(sid, out);
    execute(i, out);
    run();
    return s;
  }
  // Publishes on node i; returns the machine's own effects (before the network runs).
  effects publish(uint32_t i, const std::string& subject, const std::string& payload,
                  const std::string& reply_to = {}) {
    effects out;
    auto s = at(i).publish(subject, reply_to, text(payload), now_us_, out);
    REQUIRE_MESSAGE(s.ok(), s.describe());
    effects copy = out;
    execute(i, out);
    run();
    return copy;
  }
  uint64_t request(uint32_t i, const std::string& subject, const std::string& payload,
                   int64_t timeout_us) {
    effects out;
    auto id = at(i).request(subject, text(payload), timeout_us, now_us_, out);
    REQUIRE(id.ok());
    execute(i, out);
    run();
    return *id;
  }
  void tick(uint32_t i) {
    effects out;
    at(i).tick(now_us_, out);
    execute(i, out);
  }
  void tick_all() {
    for (uint32_t i = 0; i < machines_.size(); ++i) tick(i);
    run();
  }

  void execute(uint32_t from, effects& out) {
    for (auto& s : out.sends) {
      const uint32_t to = index_of(s.to);
      if (std::holds_alternative<routed_message>(s.message)) ++outputs_[from].routed_to[to];
      bytes encoded = std::visit(
          [&](const auto& m) {
            auto e = encode_message(node(from), 0, m);
            REQUIRE(e.ok());
            return std::move(e).value();
          },
          s.message);
      wire_.push_back({from, to, std::move(encoded)});
    }
    auto& o = outputs_[from];
    for (auto& d : out.deliveries) {
      if (auto_ack) REQUIRE(at(from).delivered(d.sid, 1, d.payload->size()).ok());
      o.deliveries.push_back(d);
    }
    o.reports.insert(o.reports.end(), out.slow_consumers.begin(), out.slow_consumers.end());
    o.done.insert(o.done.end(), out.requests_done.begin(), out.requests_done.end());
    o.events.insert(o.events.end(), out.events.begin(), out.events.end());
    out.clear();
  }
  void deliver(const net_message& m) {
    auto env = decode_envelope_from(node(m.from), m.data);
    REQUIRE(env.ok());
    auto message = decode_wire(*env);
    REQUIRE(message.ok());
    effects out;
    auto s = at(m.to).receive(node(m.from), *message, now_us_, out);
    REQUIRE_MESSAGE(s.ok(), s.describe());
    execute(m.to, out);
  }
  void run() {
    while (!wire_.empty()) {
      auto m = std::move(wire_.front());
      wire_.pop_front();
      deliver(m);
    }
  }
  void drop_wire() { wire_.clear(); }

private:
  std::unique_ptr<machine> make_machine(uint32_t i, uint64_t incarnation) {
    return std::make_unique<machine>(cfg_, node(i), rng(mix_seed(seed_, i * 1000 + incarnation)));
  }
  uint32_t index_of(const node_id& id) const {
    for (uint32_t i = 0; i < machines_.size(); ++i)
      if (node(i) == id) return i;
    FAIL("send to an unknown node");
    return 0;
  }

  config cfg_;
  uint64_t seed_;
  uint64_t incarnations_ = 0;
  std::vector<std::unique_ptr<machine>> machines_;
  std::vector<node_output> outputs_;
  std::deque<net_message> wire_;
  int64_t now_us_ = 0;
};

size_t routed_sends(const effects& out) {
  return static_cast<size_t>(std::count_if(out.sends.begin(), out.sends.end(), [](const auto& s) {
    return std::holds_alternative<routed_message>(s.message);
  }));
}

std::vector<std::string> payloads_for(const node_output& o, uint64_t sid) {
  std::vector<std::string> found;
  for (const auto& d : o.deliveries)
    if (d.sid == sid) found.push_back(text_of(d.payload));
  return found;
}

}  // namespace

// ---- configuration and codec -----------------------------------------------------------------------

TEST_CASE("events config: defaults validate and each bound is checked") {
  CHECK(validate(config{}).ok());
  CHECK(sync_parts_max(config{}) == 16);
  config bad;
  bad.remote_lines_per_peer_max = bad.subscriptions_max - 1;
  CHECK(validate(bad).code == errc::invalid_argument);
  bad = config{};
  bad.interest_lease_us = bad.digest_interval_us;
  CHECK(validate(bad).code == errc::invalid_argument);
  bad = config{};
  bad.payload_bytes_max = limits::envelope_bytes_max;
  CHECK(validate(bad).code == errc::invalid_argument);
  bad = config{};
  bad.pending_messages_default = bad.pending_messages_max + 1;
  CHECK(validate(bad).code == errc::invalid_argument);
  bad = config{};
  bad.lines_per_message_max = 100000;
  CHECK(validate(bad).code == errc::invalid_argument);
}

TEST_CASE("events codec: every wire message round-trips through an envelope") {
  const node_id from = node(3);
  auto round_trip = [&](const auto& message) {
    auto encoded = encode_message(from, 0, message);
    REQUIRE(encoded.ok());
    auto env = decode_envelope_from(from, *encoded);
    REQUIRE(env.ok());
    CHECK(env->service == events_service);
    auto decoded = decode_wire(*env);
    REQUIRE(decoded.ok());
    using T = std::decay_t<decltype(message)>;
    REQUIRE(std::holds_alternative<T>(*decoded));
    return std::get<T>(*decoded);
  };
  const interest_entry line{"orders.*.created", "billing", 3};
  auto d = round_trip(interest_delta{11, 4, {line, {"a.>", "", 0}}});
  CHECK(d.epoch == 11);
  CHECK(d.version == 4);
  CHECK(d.changes == std::vector<interest_entry>{line, {"a.>", "", 0}});
  auto s = round_trip(interest_sync{12, 9, 1, 3, {line}});
  CHECK((s.epoch == 12 && s.version == 9 && s.part == 1 && s.parts == 3));
  CHECK(s.entries == std::vector<interest_entry>{line});
  auto r = round_trip(interest_sync_request{5, 6});
  CHECK((r.known_epoch == 5 && r.known_version == 6));
  auto g = round_trip(interest_digest{UINT64_MAX, 0});
  CHECK((g.epoch == UINT64_MAX && g.version == 0));
  const bytes binary = text(std::string("hello\0world", 11));
  auto m = round_trip(routed_message{"orders.eu.created", "_INBOX.x.1", binary,
                                     {"billing", "shipping"}});
  CHECK(m.subject == "orders.eu.created");
  CHECK(m.reply_to == "_INBOX.x.1");
  CHECK(m.payload == binary);
  CHECK(m.queue_groups == std::vector<std::string>{"billing", "shipping"});
  // An empty payload and no groups.
  auto empty = round_trip(routed_message{"a", "", {}, {}});
  CHECK(empty.payload.empty());

  envelope env;
  env.service = events_service;
  env.type = 99;
  env.payload = {0x90};
  CHECK(decode_wire(env).err().code == errc::unknown_type);
  env.type = interest_digest::type_id;
  env.payload = {0x92, 0xa1, 'x', 0x01};  // a string where the epoch (an integer) belongs
  CHECK(decode_wire(env).err().code == errc::malformed);
  env.type = routed_message::type_id;
  env.payload = {0x94, 0x01, 0x02, 0x03, 0x04};  // integers where strings belong
  CHECK(decode_wire(env).err().code == errc::malformed);
  env.service = events_service + 1;
  CHECK(decode_wire(env).err().code == errc::unknown_type);
}

// ---- one node --------------------------------------------------------------------------------------

TEST_CASE("events machine: local publish reaches matching local subscribers only") {
  cluster c(1);
  REQUIRE(c.subscribe(0, 1, "orders.*").ok());
  REQUIRE(c.subscribe(0, 2, "orders.>").ok());
  REQUIRE(c.subscribe(0, 3, "billing.>").ok());
  auto out = c.publish(0, "orders.eu", "m1", "reply.here");
  CHECK(out.sends.empty());
  REQUIRE(out.deliveries.size() == 2);
  CHECK(out.deliveries[0].sid == 1);
  CHECK(out.deliveries[1].sid == 2);
  CHECK(out.deliveries[0].subject == "orders.eu");
  CHECK(out.deliveries[0].reply_to == "reply.here");
  CHECK(out.deliveries[0].payload == out.deliveries[1].payload);  // one shared payload
  out = c.publish(0, "orders.eu.x", "m2");
  REQUIRE(out.deliveries.size() == 1);
  CHECK(out.deliveries[0].sid == 2);
  CHECK(c.at(0).statistics().unmatched == 0);
  c.publish(0, "nobody.listens", "m3");
  CHECK(c.at(0).statistics().unmatched == 1);
}

TEST_CASE("events machine: subscribe and publish refuse bad input") {
  cluster c(1);
  effects out;
  auto& m = c.at(0);
  CHECK(m.subscribe(1, "a..b", "", {}, out).code == errc::invalid_argument);
  CHECK(m.subscribe(1, "a.>.b", "", {}, out).code == errc::invalid_argument);
  CHECK(m.subscribe(1, "a", "bad.group", {}, out).code == errc::invalid_argument);
  CHECK(m.subscribe(1, "a", "", {m.configuration().pending_messages_max + 1, 0}, out).code ==
        errc::invalid_argument);
  CHECK(m.subscribe(1, "a", "", {}, out).ok());
  CHECK(m.subscribe(1, "b", "", {}, out).code == errc::already_exists);
  CHECK(m.unsubscribe(2, out).code == errc::not_found);
  CHECK(m.publish("a.*", "", {}, 0, out).code == errc::invalid_argument);
  CHECK(m.publish("a", "bad reply", {}, 0, out).code == errc::invalid_argument);
  CHECK(m.publish("a", "", bytes(m.configuration().payload_bytes_max + 1), 0, out).code ==
        errc::too_large);
  CHECK(m.request("a", {}, 0, 0, out).err().code == errc::invalid_argument);
  CHECK(m.request("a", {}, m.configuration().request_timeout_us_max + 1, 0, out).err().code ==
        errc::invalid_argument);
  CHECK(m.delivered(9, 1, 1).code == errc::not_found);
  CHECK(m.delivered(1, 1, 0).code == errc::invalid_argument);  // nothing pending
  config small;
  small.subscriptions_max = 2;
  machine tiny(small, node(1), rng(1));
  CHECK(tiny.subscribe(1, "a", "", {}, out).ok());
  CHECK(tiny.subscribe(2, "a", "", {}, out).ok());
  CHECK(tiny.subscribe(3, "a", "", {}, out).code == errc::unavailable);
}

// ---- interest propagation --------------------------------------------------------------------------

TEST_CASE("events interest: nothing goes to peers without interest, then only to the interested") {
  cluster c(3);
  auto out = c.publish(0, "orders.eu", "before");
  CHECK(out.sends.empty());
  CHECK(c.at(0).statistics().unmatched == 1);

  REQUIRE(c.subscribe(1, 10, "orders.*").ok());
  CHECK(c.at(0).remote_line_count(node(1)) == 1);
  CHECK(c.at(2).remote_line_count(node(1)) == 1);
  out = c.publish(0, "orders.eu", "during");
  REQUIRE(out.sends.size() == 1);
  CHECK(out.sends[0].to == node(1));
  CHECK(payloads_for(c.output(1), 10) == std::vector<std::string>{"during"});
  CHECK(c.output(2).deliveries.empty());
  CHECK(c.publish(0, "billing.eu", "other subject").sends.empty());

  REQUIRE(c.unsubscribe(1, 10).ok());
  CHECK(c.at(0).remote_line_count(node(1)) == 0);
  out = c.publish(0, "orders.eu", "after");
  CHECK(out.sends.empty());
  CHECK(payloads_for(c.output(1), 10) == std::vector<std::string>{"during"});
}

TEST_CASE("events interest: a node gets one message per publish however many patterns match") {
  cluster c(3);
  REQUIRE(c.subscribe(1, 10, "a.*").ok());
  REQUIRE(c.subscribe(1, 11, "a.>").ok());
  REQUIRE(c.subscribe(1, 12, ">").ok());
  REQUIRE(c.subscribe(1, 13, "a.b", "workers").ok());
  REQUIRE(c.subscribe(1, 14, "a.b").ok());
  REQUIRE(c.subscribe(1, 15, "a.b").ok());  // same pattern again: no new advertisement
  CHECK(c.at(0).remote_line_count(node(1)) == 5);
  auto out = c.publish(0, "a.b", "x");
  REQUIRE(routed_sends(out) == 1);
  const auto& routed = std::get<routed_message>(out.sends[0].message);
  CHECK(routed.queue_groups == std::vector<std::string>{"workers"});  // the only member is there
  std::set<uint64_t> sids;
  for (const auto& d : c.output(1).deliveries) sids.insert(d.sid);
  CHECK(sids == std::set<uint64_t>{10, 11, 12, 13, 14, 15});
  CHECK(c.output(1).deliveries.size() == 6);
}

TEST_CASE("events interest: plain counts are advertised as presence, queue counts as weights") {
  cluster c(2);
  const uint64_t version = c.at(1).interest_version();
  REQUIRE(c.subscribe(1, 1, "a").ok());
  REQUIRE(c.subscribe(1, 2, "a").ok());
  REQUIRE(c.subscribe(1, 3, "a", "q").ok());
  REQUIRE(c.subscribe(1, 4, "a", "q").ok());
  CHECK(c.at(1).interest_version() == version + 3);  // the second plain "a" changed nothing
  const auto lines = c.at(1).advertised_interest();
  CHECK(lines == std::vector<interest_entry>{{"a", "", 1}, {"a", "q", 2}});
  REQUIRE(c.unsubscribe(1, 1).ok());
  CHECK(c.at(1).interest_version() == version + 3);
  REQUIRE(c.unsubscribe(1, 2).ok());
  CHECK(c.at(1).advertised_interest() == std::vector<interest_entry>{{"a", "q", 2}});
  CHECK(c.at(0).remote_line_count(node(1)) == 1);
}

TEST_CASE("events interest: peer down removes its interest, peer up restores it") {
  cluster c(3);
  REQUIRE(c.subscribe(1, 10, "orders.>").ok());
  REQUIRE(c.subscribe(2, 20, "orders.>", "q").ok());
  CHECK(c.at(0).has_interest("orders.x"));
  effects out;
  c.at(0).peer_down(node(1), out);
  c.at(0).peer_down(node(2), out);
  CHECK(c.at(0).remote_line_count(node(1)) == 0);
  CHECK_FALSE(c.at(0).knows_peer(node(1)));
  CHECK(c.at(0).peers_up() == 0);
  CHECK_FALSE(c.at(0).has_interest("orders.x"));
  CHECK(c.publish(0, "orders.x", "lost").sends.empty());
  // Node 0 no longer tells nodes 1 and 2 about its own subscriptions.
  effects sub_out;
  REQUIRE(c.at(0).subscribe(1, "z", "", {}, sub_out).ok());
  CHECK(sub_out.sends.empty());

  c.connect(0, 1);
  c.connect(0, 2);
  c.run();
  CHECK(c.at(0).remote_line_count(node(1)) == 1);
  CHECK(c.at(1).remote_line_count(node(0)) == 1);  // the sync on peer up carried "z"
  CHECK(c.publish(0, "orders.x", "found").sends.size() == 2);
}

TEST_CASE("events interest: a silent peer's lease expires; its next digest brings it back") {
  cluster c(2);
  REQUIRE(c.subscribe(1, 10, "orders.>").ok());
  c.advance(4 * second);
  c.tick(0);  // node 0 sends a digest, nothing expires yet
  c.drop_wire();
  CHECK(c.at(0).remote_line_count(node(1)) == 1);
  CHECK(c.at(0).next_deadline() == 5 * second);  // node 1's lease: last heard at 0
  c.advance(1 * second);
  c.tick(0);
  c.drop_wire();
  CHECK(c.at(0).remote_line_count(node(1)) == 0);
  CHECK(c.at(0).statistics().leases_expired == 1);
  REQUIRE_FALSE(c.output(0).events.empty());
  CHECK(c.output(0).events.back().kind == event_kind::interest_expired);
  CHECK(c.output(0).events.back().value == 1);
  CHECK(c.publish(0, "orders.x", "lost").sends.empty());

  c.tick(1);  // node 1's digest: node 0 holds no table for it, asks for a sync
  c.run();
  CHECK(c.at(0).knows_peer(node(1)));
  CHECK(c.at(0).remote_line_count(node(1)) == 1);
  CHECK(c.publish(0, "orders.x", "found").sends.size() == 1);
}

TEST_CASE("events interest: lost, reordered and duplicated deltas converge through the digest") {
  cluster c(2);
  for (uint64_t sid = 1; sid <= 5; ++sid) {
    effects out;
    REQUIRE(c.at(1).subscribe(sid, "s." + std::to_string(sid), "", {}, out).ok());
    c.execute(1, out);
  }
  auto deltas = c.wire();
  REQUIRE(deltas.size() == 5);
  c.drop_wire();
  // Lose the second delta, deliver the rest backwards, one twice.
  c.deliver(deltas[4]);
  c.deliver(deltas[3]);
  c.deliver(deltas[4]);
  c.deliver(deltas[2]);
  c.deliver(deltas[0]);
  CHECK(c.at(0).remote_line_count(node(1)) == 1);  // version 1 applied, 3..5 wait for 2
  CHECK(c.at(0).statistics().deltas_buffered == 4);  // 5, 4, the duplicate 5, 3
  CHECK(c.at(0).statistics().sync_requests_sent == 0);
  CHECK(c.wire().empty());

  c.advance(second);
  c.tick(1);  // digest (epoch, 5): node 0 is at 1, asks for a sync
  c.run();
  CHECK(c.at(0).statistics().sync_requests_sent == 1);
  CHECK(c.at(0).remote_line_count(node(1)) == 5);
  for (uint64_t sid = 1; sid <= 5; ++sid)
    CHECK(c.at(0).has_interest("s." + std::to_string(sid)));
  // A late copy of the lost delta is a duplicate now.
  c.deliver(deltas[1]);
  CHECK(c.at(0).statistics().deltas_duplicate >= 1);
  CHECK(c.at(0).remote_line_count(node(1)) == 5);

  // A delta that arrives before the one it follows is applied when the gap fills, without a sync.
  effects out;
  REQUIRE(c.at(1).subscribe(6, "s.6", "", {}, out).ok());
  REQUIRE(c.at(1).subscribe(7, "s.7", "", {}, out).ok());
  c.execute(1, out);
  auto more = c.wire();
  c.drop_wire();
  c.deliver(more[1]);
  c.deliver(more[0]);
  CHECK(c.at(0).remote_line_count(node(1)) == 7);
  CHECK(c.at(0).statistics().sync_requests_sent == 1);
}

TEST_CASE("events interest: a large table travels in parts and applies only when complete") {
  config cfg;
  cfg.lines_per_message_max = 4;
  cfg.subscriptions_max = 16;
  cfg.remote_lines_per_peer_max = 16;
  cfg.remote_lines_max = 64;
  cluster c(2, 7, cfg);
  effects out;
  for (uint64_t sid = 1; sid <= 10; ++sid)
    REQUIRE(c.at(1).subscribe(sid, "p." + std::to_string(sid), "", {}, out).ok());
  // Node 0 was down for these: it reconnects and gets the whole table.
  out.clear();
  c.at(0).peer_down(node(1), out);
  c.at(1).peer_up(node(0), c.now(), out);
  c.execute(1, out);
  auto parts = c.wire();
  c.drop_wire();
  REQUIRE(parts.size() == 3);  // 10 lines in parts of 4
  c.deliver(parts[2]);
  c.deliver(parts[0]);
  c.deliver(parts[0]);  // a duplicate part
  CHECK_FALSE(c.at(0).knows_peer(node(1)));
  CHECK(c.at(0).remote_line_count(node(1)) == 0);
  c.deliver(parts[1]);
  CHECK(c.at(0).knows_peer(node(1)));
  CHECK(c.at(0).remote_line_count(node(1)) == 10);
  // The same table again is ignored.
  c.deliver(parts[0]);
  c.deliver(parts[1]);
  c.deliver(parts[2]);
  CHECK(c.at(0).remote_line_count(node(1)) == 10);
  CHECK(c.at(0).statistics().syncs_applied >= 1);
}

TEST_CASE("events interest: a restarted peer's new table replaces the old one") {
  cluster c(2);
  REQUIRE(c.subscribe(1, 10, "old.>").ok());
  const auto old_epoch = c.at(1).interest_epoch();
  c.restart(1);
  c.run();
  CHECK(c.at(1).interest_epoch() != old_epoch);
  CHECK(c.at(0).remote_line_count(node(1)) == 0);
  CHECK_FALSE(c.at(0).has_interest("old.x"));
  REQUIRE(c.subscribe(1, 10, "new.>").ok());
  CHECK(c.at(0).has_interest("new.x"));
}

TEST_CASE("events interest: under seeded loss, duplication and reordering every view converges") {
  for (uint64_t seed : {1, 2, 3, 4, 5}) {
    INFO("seed ", seed);
    cluster c(3, seed);
    rng chaos(seed * 977);
    const char* patterns[] = {"a", "a.*", "a.>", "b.c", ">", "*.c"};
    const char* groups[] = {"", "", "q", "r"};
    std::map<uint32_t, std::set<uint64_t>> live;  // node -> its sids
    uint64_t next_sid = 1;
    for (int step = 0; step < 400; ++step) {
      const auto n = static_cast<uint32_t>(chaos.below(3));
      effects out;
      if (live[n].empty() || chaos.below(3) != 0) {
        REQUIRE(c.at(n).subscribe(next_sid, patterns[chaos.below(6)], groups[chaos.below(4)], {},
                                  out)
                    .ok());
        live[n].insert(next_sid++);
      } else {
        auto it = live[n].begin();
        std::advance(it, static_cast<std::ptrdiff_t>(chaos.below(live[n].size())));
        REQUIRE(c.at(n).unsubscribe(*it, out).ok());
        live[n].erase(it);
      }
      c.execute(n, out);
      // A few messages leave the network in random order: 20% lost, 10% delivered twice.
      for (int k = 0; k < 3 && !c.wire().empty(); ++k) {
        auto& wire = c.wire();
        const auto i = static_cast<std::ptrdiff_t>(chaos.below(wire.size()));
        auto m = wire[static_cast<size_t>(i)];
        wire.erase(wire.begin() + i);
        if (chaos.chance(0.2)) continue;
        if (chaos.chance(0.1)) wire.push_back(m);
        c.deliver(m);
      }
      c.advance(20 * ms);
      if (step % 10 == 0)
        for (uint32_t j = 0; j < 3; ++j) c.tick(j);
    }
    // Then a reliable network for a few digest intervals.
    for (int t = 0; t < 50; ++t) {
      c.advance(100 * ms);
      c.tick_all();
    }
    uint64_t repairs = 0, buffered = 0;
    for (uint32_t a = 0; a < 3; ++a) {
      repairs += c.at(a).statistics().syncs_applied;
      buffered += c.at(a).statistics().deltas_buffered;
    }
    CHECK(repairs > 6);   // more than the syncs of the first connections: losses were repaired
    CHECK(buffered > 0);  // and reordering was seen
    for (uint32_t a = 0; a < 3; ++a)
      for (uint32_t b = 0; b < 3; ++b) {
        if (a == b) continue;
        INFO(a, " views ", b);
        CHECK(c.at(a).knows_peer(node(b)));
        CHECK(c.at(a).remote_interest(node(b)) == c.at(b).advertised_interest());
      }
  }
}

TEST_CASE("events interest: malformed peer messages are refused and counted") {
  cluster c(2);
  auto& m = c.at(0);
  effects out;
  const auto from = node(1);
  CHECK(m.receive(node(0), interest_digest{1, 1}, 0, out).code == errc::malformed);
  CHECK(m.receive(from, interest_delta{0, 1, {}}, 0, out).code == errc::malformed);
  CHECK(m.receive(from, interest_delta{1, 0, {}}, 0, out).code == errc::malformed);
  CHECK(m.receive(from, interest_delta{1, 1, {{"a..b", "", 1}}}, 0, out).code == errc::malformed);
  CHECK(m.receive(from, interest_delta{1, 1, {{"a", "q.x", 1}}}, 0, out).code == errc::malformed);
  CHECK(m.receive(from, interest_sync{1, 1, 2, 2, {}}, 0, out).code == errc::malformed);
  CHECK(m.receive(from, interest_sync{1, 1, 0, 1, {{"a", "", 0}}}, 0, out).code ==
        errc::malformed);
  CHECK(m.receive(from, interest_sync{1, 1, 0, 1000, {}}, 0, out).code == errc::malformed);
  CHECK(m.receive(from, interest_digest{0, 1}, 0, out).code == errc::malformed);
  CHECK(m.receive(from, routed_message{"a.*", "", {}, {}}, 0, out).code == errc::malformed);
  CHECK(m.receive(from, routed_message{"a", "r r", {}, {}}, 0, out).code == errc::malformed);
  CHECK(m.receive(from, routed_message{"a", "", {}, {"b", "a"}}, 0, out).code == errc::malformed);
  CHECK(m.receive(from, routed_message{"a", "", {}, {"a", "a"}}, 0, out).code == errc::malformed);
  CHECK(m.receive(from, routed_message{"a", "", bytes(m.configuration().payload_bytes_max + 1),
                                       {}},
                  0, out)
            .code == errc::malformed);
  CHECK(m.statistics().malformed == 14);
  CHECK(out.sends.empty());
  CHECK(out.deliveries.empty());
}

// ---- queue groups ----------------------------------------------------------------------------------

TEST_CASE("events queue groups: exactly one member per group across three nodes") {
  cluster c(3, 42);
  // "workers": one member on node 0, two on node 1, one on node 2 (patterns differ, all match).
  const std::map<uint64_t, std::string> group_of = {
      {1, "workers"}, {11, "workers"}, {12, "workers"}, {21, "workers"},
      {2, "audit"},   {13, "audit"}};
  REQUIRE(c.subscribe(0, 1, "jobs.*", "workers").ok());
  REQUIRE(c.subscribe(1, 11, "jobs.>", "workers").ok());
  REQUIRE(c.subscribe(1, 12, "jobs.run", "workers").ok());
  REQUIRE(c.subscribe(2, 21, "jobs.run", "workers").ok());
  REQUIRE(c.subscribe(0, 2, "jobs.run", "audit").ok());
  REQUIRE(c.subscribe(1, 13, ">", "audit").ok());
  REQUIRE(c.subscribe(2, 22, "jobs.*").ok());  // a plain subscriber gets everything
  REQUIRE(c.subscribe(0, 3, "jobs.run").ok());  // and so does this one

  const int messages = 900;
  for (int i = 0; i < messages; ++i) {
    auto out = c.publish(static_cast<uint32_t>(i % 3), "jobs.run", "m" + std::to_string(i));
    // At most one routed message per node per publish.
    std::set<node_id> targets;
    for (const auto& s : out.sends) CHECK(targets.insert(s.to).second);
  }
  // Per message: how many deliveries per group, and to which member.
  std::map<std::string, std::map<std::string, int>> per_message;  // payload -> group -> count
  std::map<uint64_t, int> per_member;
  int plain_22 = 0, plain_3 = 0;
  for (uint32_t n = 0; n < 3; ++n) {
    for (const auto& d : c.output(n).deliveries) {
      if (d.sid == 22) { ++plain_22; continue; }
      if (d.sid == 3) { ++plain_3; continue; }
      ++per_message[text_of(d.payload)][group_of.at(d.sid)];
      ++per_member[d.sid];
    }
  }
  CHECK(plain_22 == messages);
  CHECK(plain_3 == messages);
  REQUIRE(per_message.size() == static_cast<size_t>(messages));
  for (const auto& [payload, groups] : per_message) {
    INFO(payload);
    CHECK(groups.at("workers") == 1);
    CHECK(groups.at("audit") == 1);
  }
  // Weighted by member count: four workers, two auditors, each about its share.
  for (uint64_t sid : {1, 11, 12, 21}) CHECK(per_member[sid] > messages / 4 - 90);
  for (uint64_t sid : {2, 13}) CHECK(per_member[sid] > messages / 2 - 100);
  CHECK(c.at(1).statistics().queue_group_misses == 0);
}

TEST_CASE("events queue groups: a member that left after the pick is a counted miss") {
  cluster c(2);
  REQUIRE(c.subscribe(1, 10, "jobs", "workers").ok());
  effects out;
  REQUIRE(c.at(0).publish("jobs", "", text("x"), 0, out).ok());
  REQUIRE(out.sends.size() == 1);
  // The member leaves before the message arrives (node 0 has not heard yet).
  effects unsub;
  REQUIRE(c.at(1).unsubscribe(10, unsub).ok());
  c.execute(0, out);
  c.run();
  CHECK(c.at(1).statistics().queue_group_misses == 1);
  CHECK(c.output(1).deliveries.empty());
}

TEST_CASE("events queue groups: a full member is skipped for one with room") {
  cluster c(1);
  c.auto_ack = false;
  REQUIRE(c.subscribe(0, 1, "jobs", "workers", {1, 0}).ok());
  REQUIRE(c.subscribe(0, 2, "jobs", "workers", {1, 0}).ok());
  c.publish(0, "jobs", "a");
  c.publish(0, "jobs", "b");
  CHECK(c.output(0).deliveries.size() == 2);  // one each, whoever was drawn first
  CHECK(c.at(0).statistics().dropped_slow_consumer == 0);
  c.publish(0, "jobs", "c");  // both full now
  CHECK(c.output(0).deliveries.size() == 2);
  CHECK(c.at(0).statistics().dropped_slow_consumer == 1);
}

// ---- request / reply -------------------------------------------------------------------------------

TEST_CASE("events request: a remote responder's reply ends the request") {
  cluster c(3);
  REQUIRE(c.subscribe(2, 20, "svc.echo", "echo").ok());
  const uint64_t id = c.request(0, "svc.echo", "ping", 2 * second);
  CHECK(c.at(0).pending_requests() == 1);
  REQUIRE(c.output(2).deliveries.size() == 1);
  const auto asked = c.output(2).deliveries[0];
  CHECK(text_of(asked.payload) == "ping");
  CHECK(asked.reply_to == c.at(0).inbox_prefix() + std::to_string(id));
  CHECK(asked.reply_to.rfind("_INBOX." + node(0).hex() + ".", 0) == 0);
  // The responder's shell publishes the answer on the inbox. Nobody subscribed to it: the inbox
  // names node 0, so node 2 sends it straight there (and nowhere else).
  auto reply = c.publish(2, asked.reply_to, "pong");
  REQUIRE(reply.sends.size() == 1);
  CHECK(reply.sends[0].to == node(0));
  REQUIRE(c.output(0).done.size() == 1);
  CHECK(c.output(0).done[0].request_id == id);
  CHECK(c.output(0).done[0].outcome == request_outcome::reply);
  CHECK(text_of(c.output(0).done[0].payload) == "pong");
  CHECK(c.at(0).pending_requests() == 0);
  CHECK(c.at(0).next_deadline() != 2 * second);  // the request's deadline is gone
  // A second reply is late: counted, not reported as a result.
  c.publish(2, asked.reply_to, "pong again");
  CHECK(c.output(0).done.size() == 1);
  CHECK(c.at(0).statistics().late_replies == 1);
}

TEST_CASE("events request: a local responder works the same way") {
  cluster c(1);
  REQUIRE(c.subscribe(0, 1, "svc.time").ok());
  const uint64_t id = c.request(0, "svc.time", "", second);
  REQUIRE(c.output(0).deliveries.size() == 1);
  auto out = c.publish(0, c.output(0).deliveries[0].reply_to, "noon");
  CHECK(out.sends.empty());
  REQUIRE(out.requests_done.size() == 1);
  CHECK(out.requests_done[0].request_id == id);
  CHECK(text_of(out.requests_done[0].payload) == "noon");
}

TEST_CASE("events request: no interest anywhere is no_responders at once") {
  cluster c(3);
  REQUIRE(c.subscribe(1, 10, "svc.other").ok());
  effects out;
  auto id = c.at(0).request("svc.echo", text("ping"), second, 0, out);
  REQUIRE(id.ok());
  CHECK(out.sends.empty());
  REQUIRE(out.requests_done.size() == 1);
  CHECK(out.requests_done[0].request_id == *id);
  CHECK(out.requests_done[0].outcome == request_outcome::no_responders);
  CHECK(out.requests_done[0].payload == nullptr);
  CHECK(c.at(0).pending_requests() == 0);
  CHECK(c.at(0).statistics().requests_no_responders == 1);
  // After the responder goes away, the same holds for a subject that used to have interest.
  REQUIRE(c.unsubscribe(1, 10).ok());
  out.clear();
  REQUIRE(c.at(0).request("svc.other", {}, second, 0, out).ok());
  REQUIRE(out.requests_done.size() == 1);
  CHECK(out.requests_done[0].outcome == request_outcome::no_responders);
}

TEST_CASE("events request: no reply by the deadline is a timeout; a later reply is late") {
  cluster c(2);
  REQUIRE(c.subscribe(1, 10, "svc.slow").ok());
  c.advance(100 * ms);
  const uint64_t first = c.request(0, "svc.slow", "1", 500 * ms);
  c.advance(100 * ms);
  const uint64_t second_id = c.request(0, "svc.slow", "2", 200 * ms);
  CHECK(c.at(0).next_deadline() == 400 * ms);  // the second request's deadline comes first
  c.advance(199 * ms);
  c.tick(0);
  CHECK(c.output(0).done.empty());
  c.advance(1 * ms);
  c.tick(0);
  REQUIRE(c.output(0).done.size() == 1);
  CHECK(c.output(0).done[0].request_id == second_id);
  CHECK(c.output(0).done[0].outcome == request_outcome::timeout);
  CHECK(c.at(0).next_deadline() == 600 * ms);
  c.advance(200 * ms);
  c.tick(0);
  REQUIRE(c.output(0).done.size() == 2);
  CHECK(c.output(0).done[1].request_id == first);
  CHECK(c.output(0).done[1].outcome == request_outcome::timeout);
  CHECK(c.at(0).pending_requests() == 0);
  CHECK(c.at(0).statistics().requests_timed_out == 2);
  c.run();
  // The responder answers too late.
  c.publish(1, c.output(1).deliveries[0].reply_to, "late");
  CHECK(c.output(0).done.size() == 2);
  CHECK(c.at(0).statistics().late_replies == 1);
  // cancel_request forgets a pending request.
  const uint64_t third = c.request(0, "svc.slow", "3", second);
  CHECK(c.at(0).cancel_request(third));
  CHECK_FALSE(c.at(0).cancel_request(third));
  CHECK(c.at(0).pending_requests() == 0);
}

TEST_CASE("events request: pending requests are bounded") {
  config cfg;
  cfg.requests_pending_max = 2;
  cluster c(1, 7, cfg);
  REQUIRE(c.subscribe(0, 1, "svc").ok());
  effects out;
  CHECK(c.at(0).request("svc", {}, second, 0, out).ok());
  CHECK(c.at(0).request("svc", {}, second, 0, out).ok());
  CHECK(c.at(0).request("svc", {}, second, 0, out).err().code == errc::unavailable);
}

// ---- slow consumers --------------------------------------------------------------------------------

TEST_CASE("events slow consumer: drops over the bound are reported with counts, rate-limited") {
  cluster c(2);
  c.auto_ack = false;
  REQUIRE(c.subscribe(1, 10, "feed", "", {2, 0}).ok());
  for (int i = 0; i < 10; ++i) c.publish(0, "feed", "m" + std::to_string(i));
  CHECK(payloads_for(c.output(1), 10) == std::vector<std::string>{"m0", "m1"});
  CHECK(c.at(1).pending_of(10) == std::make_pair(uint32_t{2}, uint64_t{4}));
  CHECK(c.at(1).statistics().dropped_slow_consumer == 8);
  // The first drop is reported at once; the other seven wait for the interval to end.
  REQUIRE(c.output(1).reports.size() == 1);
  CHECK(c.output(1).reports[0].sid == 10);
  CHECK(c.output(1).reports[0].dropped == 1);
  CHECK(c.output(1).reports[0].dropped_total == 1);
  CHECK(c.output(1).reports[0].pending_messages == 2);
  CHECK(c.at(1).next_deadline() <= second);
  c.advance(second - 1);
  c.tick(1);
  CHECK(c.output(1).reports.size() == 1);
  c.advance(1);
  c.tick(1);
  REQUIRE(c.output(1).reports.size() == 2);
  CHECK(c.output(1).reports[1].dropped == 7);
  CHECK(c.output(1).reports[1].dropped_total == 8);
  CHECK_FALSE(c.output(1).reports[1].final);

  // The shell acknowledges: room again.
  CHECK(c.at(1).delivered(10, 2, 4).ok());
  CHECK(c.at(1).pending_of(10) == std::make_pair(uint32_t{0}, uint64_t{0}));
  c.publish(0, "feed", "m10");
  CHECK(payloads_for(c.output(1), 10).back() == "m10");

  // A drop inside the interval is reported at unsubscribe (final), never lost.
  c.publish(0, "feed", "m11");  // fits: pending is 2 again
  c.advance(100 * ms);
  c.publish(0, "feed", "m12");
  CHECK(c.output(1).reports.size() == 2);  // m12's drop waits (last report 100 ms ago)
  REQUIRE(c.unsubscribe(1, 10).ok());
  REQUIRE(c.output(1).reports.size() == 3);
  CHECK(c.output(1).reports[2].dropped == 1);
  CHECK(c.output(1).reports[2].dropped_total == 9);
  CHECK(c.output(1).reports[2].final);
  uint64_t reported = 0;
  for (const auto& r : c.output(1).reports) reported += r.dropped;
  CHECK(reported == c.at(1).statistics().dropped_slow_consumer);
}

TEST_CASE("events slow consumer: the byte bound counts payload bytes") {
  cluster c(1);
  c.auto_ack = false;
  REQUIRE(c.subscribe(0, 1, "blob", "", {0, 10}).ok());
  c.publish(0, "blob", "123456");
  c.publish(0, "blob", "12345");  // 6 + 5 > 10: dropped
  c.publish(0, "blob", "1234");   // 6 + 4 = 10: fits
  CHECK(payloads_for(c.output(0), 1) == std::vector<std::string>{"123456", "1234"});
  CHECK(c.at(0).pending_of(1) == std::make_pair(uint32_t{2}, uint64_t{10}));
  REQUIRE(c.output(0).reports.size() == 1);
  CHECK(c.output(0).reports[0].dropped == 1);
  CHECK(c.output(0).reports[0].pending_bytes == 6);
}

// ---- determinism -----------------------------------------------------------------------------------

TEST_CASE("events machine: the same seed gives the same picks and the same traffic") {
  auto trace = [](uint64_t seed) {
    cluster c(3, seed);
    REQUIRE(c.subscribe(0, 1, "t.*", "g").ok());
    REQUIRE(c.subscribe(1, 2, "t.>", "g").ok());
    REQUIRE(c.subscribe(2, 3, "t.x", "g").ok());
    REQUIRE(c.subscribe(2, 4, "t.x", "g").ok());
    for (int i = 0; i < 50; ++i) c.publish(static_cast<uint32_t>(i % 3), "t.x", std::to_string(i));
    std::vector<std::pair<uint64_t, std::string>> seen;
    for (uint32_t n = 0; n < 3; ++n)
      for (const auto& d : c.output(n).deliveries) seen.emplace_back(d.sid, text_of(d.payload));
    return seen;
  };
  const auto a = trace(5);
  CHECK(a.size() == 50);
  CHECK(a == trace(5));
  CHECK(a != trace(6));
}

TEST_CASE("events publish: with no listener anywhere a subject is only counted, but an inbox still goes to its node") {
  cluster c(2);
  auto out = c.publish(1, "audit.trail.x", "nobody");
  CHECK(out.sends.empty());
  CHECK(out.deliveries.empty());
  CHECK(c.at(1).statistics().unmatched == 1);
  CHECK(c.at(1).statistics().published == 1);
  // No subscription on either node, yet a reply to node 0's inbox must reach node 0.
  out = c.publish(1, c.at(0).inbox_prefix() + "7", "late reply");
  REQUIRE(out.sends.size() == 1);
  CHECK(out.sends[0].to == node(0));
  CHECK(c.at(1).statistics().unmatched == 1);
}
