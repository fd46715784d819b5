// Tests for actors/peer/peer_machine.hpp: the pure peer protocol machine, driven with explicit
// times, checked through its effects. Ends with a small in-memory mesh of machines (no CAF).
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "actors/peer/peer_machine.hpp"

namespace {

using namespace cmesh;
using namespace cmesh::peer;

// Distinct ids ordered by n (the first byte decides the order).
node_id node(uint8_t n) {
  node_id id;
  id.key[0] = n;
  for (size_t i = 1; i < id.key.size(); ++i) id.key[i] = static_cast<uint8_t>(n * 7 + i);
  return id;
}

std::string address_of(uint8_t n) { return "10.0.0." + std::to_string(n) + ":7000"; }

peer_record record_of(const node_id& id, const std::string& address) {
  return {bytes(id.key.begin(), id.key.end()), address};
}

const node_id self_id = node(200);
const std::string self_address = "10.0.0.200:7000";

// A config that probes every idle peer on every tick (for tables of up to 64 peers).
config thorough_config() {
  config cfg;
  cfg.pings_per_tick = 64;
  return cfg;
}

machine make(config cfg = {}, std::vector<seed> seeds = {}, uint64_t rng_seed = 1) {
  return machine(self_id, self_address, std::move(seeds), cfg, rng_seed);
}

template <class T>
std::vector<std::pair<node_id, T>> sends_of(const effects& out) {
  std::vector<std::pair<node_id, T>> found;
  for (const auto& s : out.sends)
    if (auto* m = std::get_if<T>(&s.message)) found.emplace_back(s.to, *m);
  return found;
}

template <class T>
std::vector<T> sends_to(const effects& out, const node_id& to) {
  std::vector<T> found;
  for (const auto& [id, m] : sends_of<T>(out))
    if (id == to) found.push_back(m);
  return found;
}

std::vector<event> events_of(const effects& out, event_kind kind) {
  std::vector<event> found;
  for (const auto& e : out.events)
    if (e.kind == kind) found.push_back(e);
  return found;
}

std::set<node_id> ids_in(const peer_list& list) {
  std::set<node_id> ids;
  for (const auto& r : list.peers) {
    REQUIRE(r.key.size() == 32);
    ids.insert(node_id::from_bytes(r.key.data()));
  }
  return ids;
}

// Adds `n` as a confirmed peer through a connection.
void connect(machine& m, int64_t now, uint8_t n) {
  effects out;
  m.on_peer_up(now, node(n), address_of(n), out);
}

// Teaches `m` about unconfirmed peers through a peer list from `from`.
void learn(machine& m, int64_t now, const node_id& from, const std::vector<uint8_t>& ns) {
  peer_list list;
  for (auto n : ns) list.peers.push_back(record_of(node(n), address_of(n)));
  effects out;
  m.on_message(now, from, list, out);
}

// The nonce of the ping outstanding to `peer` in `out`, or 0.
uint64_t ping_nonce_to(const effects& out, const node_id& peer) {
  auto pings = sends_to<ping>(out, peer);
  return pings.empty() ? 0 : pings.back().nonce;
}

// Everything in `out`, as text: two machines with equal effects give equal text.
std::string describe(const effects& out) {
  std::ostringstream os;
  for (const auto& s : out.sends) {
    os << "send " << s.to.hex() << " ";
    std::visit(
        [&](const auto& m) {
          using T = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<T, ping>) os << "ping " << m.nonce << " " << m.address;
          if constexpr (std::is_same_v<T, pong>) os << "pong " << m.nonce;
          if constexpr (std::is_same_v<T, goodbye>) os << "goodbye " << int(m.reason);
          if constexpr (std::is_same_v<T, peer_list>) {
            os << "list";
            for (const auto& r : m.peers) os << " " << node_id::from_bytes(r.key.data()).hex();
          }
        },
        s.message);
    os << "\n";
  }
  for (const auto& d : out.dials) os << "dial " << d.address << " " << d.pinned.hex() << "\n";
  for (const auto& i : out.introductions) os << "intro " << i.peer.hex() << " " << i.address << "\n";
  for (const auto& e : out.events)
    os << "event " << event_name(e.kind) << " " << e.peer.hex() << " " << e.detail << " " << e.value
       << "\n";
  return os.str();
}

}  // namespace

// ---- start and seeds ---------------------------------------------------------------------------

TEST_CASE("peer machine: start dials every seed but never its own address") {
  std::vector<seed> seeds = {{"10.0.0.1:7000", node_id{}},
                             {self_address, node_id{}},
                             {"10.0.0.2:7000", node(2)}};
  auto m = make({}, seeds);
  effects out;
  m.start(0, {}, out);
  REQUIRE(out.dials.size() == 2);
  CHECK(out.dials[0].address == "10.0.0.1:7000");
  CHECK(out.dials[0].pinned.is_zero());
  CHECK(out.dials[1].address == "10.0.0.2:7000");
  CHECK(out.dials[1].pinned == node(2));
  auto dialed = events_of(out, event_kind::seed_dialed);
  REQUIRE(dialed.size() == 2);
  CHECK(dialed[1].detail == "10.0.0.2:7000");
  CHECK(dialed[1].peer == node(2));
  CHECK(out.sends.empty());
  CHECK(m.peers().empty());
  CHECK_FALSE(m.dirty());
}

TEST_CASE("peer machine: a node seeded only with itself never dials") {
  auto m = make({}, {{self_address, node_id{}}});
  effects out;
  m.start(0, {}, out);
  for (int64_t t = 500; t <= 30000; t += 500) m.tick(t, out);
  CHECK(out.dials.empty());
  CHECK(out.events.empty());
}

TEST_CASE("peer machine: remembered peers at start are added and pinged") {
  auto m = make();
  effects out;
  m.start(5000, {record_of(node(1), address_of(1)), record_of(node(2), address_of(2))}, out);
  REQUIRE(m.peers().size() == 2);
  for (uint8_t n : {1, 2}) {
    CAPTURE(int(n));
    const auto& state = m.peers().at(node(n));
    CHECK(state.address == address_of(n));
    CHECK_FALSE(state.confirmed);  // not heard from in this life yet
    auto pings = sends_to<ping>(out, node(n));
    REQUIRE(pings.size() == 1);
    CHECK(pings[0].nonce != 0);
    CHECK(pings[0].address == self_address);
    CHECK(state.ping_nonce == pings[0].nonce);
  }
  CHECK(events_of(out, event_kind::peer_added).size() == 2);
}

TEST_CASE("peer machine: start introduces remembered peers to the transport") {
  // The transport of a restarted node knows no address; without an introduction the pings to
  // remembered peers have no route (real mode drops them as no_route).
  auto m = make();
  effects out;
  m.start(0, {record_of(node(1), address_of(1)), record_of(node(2), address_of(2))}, out);
  REQUIRE(out.introductions.size() == 2);
  CHECK(out.introductions[0].peer == node(1));
  CHECK(out.introductions[0].address == address_of(1));
  CHECK(out.introductions[1].peer == node(2));
  CHECK(out.introductions[1].address == address_of(2));
}

TEST_CASE("peer machine: start skips bad remembered records and respects the table bound") {
  config cfg;
  cfg.peer_table_max = 2;
  auto m = make(cfg);
  effects out;
  peer_record short_key{bytes(31, 1), "10.0.0.9:7000"};
  m.start(0,
          {short_key, record_of(self_id, self_address), record_of(node(1), address_of(1)),
           record_of(node(2), address_of(2)), record_of(node(3), address_of(3))},
          out);
  CHECK(m.peers().size() == 2);
  CHECK(m.peers().count(node(1)) == 1);
  CHECK(m.peers().count(node(2)) == 1);
  CHECK(m.peers().count(node(3)) == 0);
  CHECK(m.peers().count(self_id) == 0);
  CHECK(sends_of<ping>(out).size() == 2);
}

// ---- connections and peer-list samples ---------------------------------------------------------

TEST_CASE("peer machine: peer_up adds a confirmed peer and sends it a peer list") {
  auto m = make();
  effects out;
  m.start(0, {}, out);
  out.clear();
  m.on_peer_up(1234, node(1), address_of(1), out);
  REQUIRE(m.peers().count(node(1)) == 1);
  const auto& state = m.peers().at(node(1));
  CHECK(state.confirmed);
  CHECK(state.address == address_of(1));
  CHECK(state.added_ms == 1234);
  CHECK(state.last_heard_ms == 1234);
  CHECK(state.missed == 0);
  CHECK(state.rtt_ms == -1);
  auto added = events_of(out, event_kind::peer_added);
  REQUIRE(added.size() == 1);
  CHECK(added[0].peer == node(1));
  auto lists = sends_to<peer_list>(out, node(1));
  REQUIRE(lists.size() == 1);
  CHECK(lists[0].peers.empty());  // we know nobody else yet
  CHECK(m.dirty());
}

TEST_CASE("peer machine: peer_up from itself is ignored") {
  auto m = make();
  effects out;
  m.on_peer_up(10, self_id, self_address, out);
  CHECK(m.peers().empty());
  CHECK(out.sends.empty());
  CHECK(out.events.empty());
}

TEST_CASE("peer machine: sample never lists the receiver or unconfirmed peers") {
  auto m = make();
  for (uint8_t n : {1, 2, 3}) connect(m, 10, n);
  learn(m, 20, node(1), {50, 51});  // known only by hearsay: unconfirmed
  REQUIRE(m.peers().size() == 5);
  effects out;
  m.on_peer_up(30, node(4), address_of(4), out);
  auto lists = sends_to<peer_list>(out, node(4));
  REQUIRE(lists.size() == 1);
  CHECK(ids_in(lists[0]) == std::set<node_id>{node(1), node(2), node(3)});
  for (const auto& r : lists[0].peers) {
    auto id = node_id::from_bytes(r.key.data());
    CHECK(r.address == m.peers().at(id).address);
  }
}

TEST_CASE("peer machine: sample leaves out suspects and peers not heard from recently") {
  config cfg = thorough_config();
  auto m = make(cfg);
  for (uint8_t n : {1, 2, 3}) connect(m, 0, n);
  effects out;
  m.tick(1000, out);  // pings 1 2 3
  m.on_message(1010, node(1), pong{ping_nonce_to(out, node(1))}, out);
  m.on_message(1010, node(3), pong{ping_nonce_to(out, node(3))}, out);
  out.clear();
  m.tick(3000, out);  // node 2 misses its ping
  REQUIRE(m.peers().at(node(2)).missed == 1);
  out.clear();
  m.on_peer_up(3100, node(4), address_of(4), out);
  CHECK(ids_in(sends_to<peer_list>(out, node(4)).at(0)) == std::set<node_id>{node(1), node(3)});
  // Later, without ticks: node 1 speaks again, node 3 stays quiet past share_heard_within_ms.
  m.on_message(8000, node(1), ping{9, address_of(1)}, out);
  out.clear();
  int64_t edge = 3100 + cfg.share_heard_within_ms;  // node 4 heard exactly that long ago
  m.on_peer_up(edge, node(5), address_of(5), out);
  CHECK(ids_in(sends_to<peer_list>(out, node(5)).at(0)) == std::set<node_id>{node(1), node(4)});
  out.clear();
  m.on_peer_up(edge + 1, node(6), address_of(6), out);
  CHECK(ids_in(sends_to<peer_list>(out, node(6)).at(0)) == std::set<node_id>{node(1), node(5)});
}

TEST_CASE("peer machine: sample has at most peer_list_entries_max distinct entries") {
  auto m = make();
  for (uint8_t n = 1; n <= 40; ++n) connect(m, n, n);
  effects out;
  m.on_peer_up(100, node(41), address_of(41), out);
  auto lists = sends_to<peer_list>(out, node(41));
  REQUIRE(lists.size() == 1);
  CHECK(lists[0].peers.size() == limits::peer_list_entries_max);
  auto ids = ids_in(lists[0]);
  CHECK(ids.size() == limits::peer_list_entries_max);  // no duplicates
  CHECK(ids.count(node(41)) == 0);
  CHECK(ids.count(self_id) == 0);
}

TEST_CASE("peer machine: peer_up for a known peer confirms it and updates its address") {
  auto m = make();
  learn(m, 10, node(9), {1});
  REQUIRE_FALSE(m.peers().at(node(1)).confirmed);
  m.clear_dirty();
  effects out;
  m.on_peer_up(50, node(1), "10.9.9.9:1", out);
  CHECK(m.peers().size() == 1);
  CHECK(m.peers().at(node(1)).confirmed);
  CHECK(m.peers().at(node(1)).address == "10.9.9.9:1");
  CHECK(m.peers().at(node(1)).last_heard_ms == 50);
  CHECK(events_of(out, event_kind::peer_added).empty());
  CHECK(sends_to<peer_list>(out, node(1)).size() == 1);
  CHECK(m.dirty());
}

TEST_CASE("peer machine: peer_down and dial failures leave the table alone") {
  auto m = make();
  connect(m, 0, 1);
  m.clear_dirty();
  effects out;
  m.on_peer_down(10, node(1), out);
  CHECK(m.peers().count(node(1)) == 1);
  m.on_dial_failed(20, "10.0.0.7:7000", "connection refused", out);
  CHECK(m.peers().size() == 1);
  auto failed = events_of(out, event_kind::dial_failed);
  REQUIRE(failed.size() == 1);
  CHECK(failed[0].detail == "10.0.0.7:7000: connection refused");
  CHECK(out.sends.empty());
  CHECK_FALSE(m.dirty());
}

// ---- ping and pong -----------------------------------------------------------------------------

TEST_CASE("peer machine: ping from a known peer gets a pong with the same nonce") {
  auto m = make();
  connect(m, 0, 1);
  effects out;
  m.on_message(700, node(1), ping{987654321, address_of(1)}, out);
  auto pongs = sends_to<pong>(out, node(1));
  REQUIRE(pongs.size() == 1);
  CHECK(pongs[0].nonce == 987654321);
  CHECK(m.peers().at(node(1)).last_heard_ms == 700);
  CHECK(events_of(out, event_kind::peer_added).empty());
}

TEST_CASE("peer machine: ping from an unknown node with an address adds it") {
  auto m = make();
  effects out;
  m.on_message(300, node(5), ping{17, address_of(5)}, out);
  REQUIRE(m.peers().count(node(5)) == 1);
  CHECK(m.peers().at(node(5)).confirmed);
  CHECK(m.peers().at(node(5)).address == address_of(5));
  CHECK(events_of(out, event_kind::peer_added).size() == 1);
  auto pongs = sends_to<pong>(out, node(5));
  REQUIRE(pongs.size() == 1);
  CHECK(pongs[0].nonce == 17);
}

TEST_CASE("peer machine: ping from an unknown node without a usable address is answered only") {
  auto m = make();
  effects out;
  m.on_message(300, node(5), ping{1, ""}, out);
  m.on_message(300, node(6), ping{2, std::string(limits::address_chars_max + 1, 'x')}, out);
  CHECK(m.peers().empty());
  CHECK(sends_to<pong>(out, node(5)).size() == 1);
  CHECK(sends_to<pong>(out, node(6)).size() == 1);
}

TEST_CASE("peer machine: messages claiming to come from itself are ignored") {
  auto m = make();
  effects out;
  m.on_message(1, self_id, ping{1, self_address}, out);
  m.on_message(1, self_id, goodbye{}, out);
  CHECK(m.peers().empty());
  CHECK(out.sends.empty());
  CHECK(out.events.empty());
}

TEST_CASE("peer machine: pong with the right nonce records the round trip") {
  auto m = make(thorough_config());
  connect(m, 0, 1);
  effects out;
  m.tick(1000, out);
  auto nonce = ping_nonce_to(out, node(1));
  REQUIRE(nonce != 0);
  CHECK(m.peers().at(node(1)).ping_nonce == nonce);
  out.clear();
  m.on_message(1042, node(1), pong{nonce}, out);
  const auto& state = m.peers().at(node(1));
  CHECK(state.rtt_ms == 42);
  CHECK(state.ping_nonce == 0);
  CHECK(state.pongs == 1);
  CHECK(state.missed == 0);
  auto pongs = events_of(out, event_kind::pong);
  REQUIRE(pongs.size() == 1);
  CHECK(pongs[0].peer == node(1));
  CHECK(pongs[0].value == 42);
}

TEST_CASE("peer machine: pong with a wrong nonce is ignored") {
  auto m = make(thorough_config());
  connect(m, 0, 1);
  effects out;
  m.tick(1000, out);
  auto nonce = ping_nonce_to(out, node(1));
  REQUIRE(nonce != 0);
  out.clear();
  m.on_message(1050, node(1), pong{nonce + 1}, out);
  CHECK(m.peers().at(node(1)).ping_nonce == nonce);
  CHECK(m.peers().at(node(1)).rtt_ms == -1);
  CHECK(m.peers().at(node(1)).pongs == 0);
  CHECK(events_of(out, event_kind::pong).empty());
}

TEST_CASE("peer machine: pong with nonce zero is never taken as an answer") {
  // Nonces start at 1 and 0 means "no ping outstanding": a pong{0} answers nothing.
  auto m = make(thorough_config());
  connect(m, 0, 1);
  effects out;
  m.on_message(500, node(1), pong{0}, out);  // nothing outstanding
  CHECK(events_of(out, event_kind::pong).empty());
  CHECK(m.peers().at(node(1)).pongs == 0);
  CHECK(m.peers().at(node(1)).rtt_ms == -1);
  // Nor does it reset a missed count.
  m.tick(1000, out);
  m.tick(3000, out);  // first ping missed, second sent
  REQUIRE(m.peers().at(node(1)).missed == 1);
  m.tick(5000, out);  // second missed, third sent
  REQUIRE(m.peers().at(node(1)).missed == 2);
  out.clear();
  m.on_message(5100, node(1), pong{0}, out);
  CHECK(m.peers().at(node(1)).missed == 2);
  CHECK(events_of(out, event_kind::pong).empty());
}

TEST_CASE("peer machine: a late pong after the timeout is ignored") {
  auto m = make(thorough_config());
  connect(m, 0, 1);
  effects out;
  m.tick(1000, out);
  auto first = ping_nonce_to(out, node(1));
  REQUIRE(first != 0);
  out.clear();
  m.tick(3000, out);  // first ping expires; a new one goes out
  CHECK(m.peers().at(node(1)).missed == 1);
  auto second = ping_nonce_to(out, node(1));
  REQUIRE(second != 0);
  CHECK(second != first);
  out.clear();
  m.on_message(3010, node(1), pong{first}, out);
  CHECK(events_of(out, event_kind::pong).empty());
  CHECK(m.peers().at(node(1)).missed == 1);
  CHECK(m.peers().at(node(1)).ping_nonce == second);
}

TEST_CASE("peer machine: missed_pings_max consecutive timeouts remove a peer") {
  config cfg = thorough_config();
  auto m = make(cfg);
  connect(m, 0, 1);
  m.clear_dirty();
  effects out;
  m.tick(1000, out);  // ping 1
  REQUIRE(ping_nonce_to(out, node(1)) != 0);
  for (uint32_t miss = 1; miss < cfg.missed_pings_max; ++miss) {
    out.clear();
    m.tick(1000 + miss * cfg.ping_timeout_ms, out);
    CAPTURE(miss);
    REQUIRE(m.peers().count(node(1)) == 1);  // fewer misses do not remove
    CHECK(m.peers().at(node(1)).missed == miss);
    CHECK(events_of(out, event_kind::peer_removed).empty());
    CHECK(ping_nonce_to(out, node(1)) != 0);  // probed again at once
  }
  CHECK_FALSE(m.dirty());
  out.clear();
  m.tick(1000 + cfg.missed_pings_max * cfg.ping_timeout_ms, out);
  CHECK(m.peers().count(node(1)) == 0);
  auto removed = events_of(out, event_kind::peer_removed);
  REQUIRE(removed.size() == 1);
  CHECK(removed[0].peer == node(1));
  CHECK(removed[0].detail == "ping timeout");
  CHECK(m.dirty());
}

TEST_CASE("peer machine: a ping is not counted missed before its timeout") {
  config cfg = thorough_config();
  auto m = make(cfg);
  connect(m, 0, 1);
  effects out;
  m.tick(1000, out);
  auto nonce = ping_nonce_to(out, node(1));
  m.tick(1000 + cfg.ping_timeout_ms - 1, out);
  CHECK(m.peers().at(node(1)).missed == 0);
  CHECK(m.peers().at(node(1)).ping_nonce == nonce);
  m.tick(1000 + cfg.ping_timeout_ms, out);
  CHECK(m.peers().at(node(1)).missed == 1);
}

TEST_CASE("peer machine: a pong between misses resets the count") {
  config cfg = thorough_config();
  auto m = make(cfg);
  connect(m, 0, 1);
  effects out;
  int64_t t = 1000;
  m.tick(t, out);
  for (uint32_t miss = 1; miss < cfg.missed_pings_max; ++miss) {
    t += cfg.ping_timeout_ms;
    m.tick(t, out);
  }
  REQUIRE(m.peers().at(node(1)).missed == cfg.missed_pings_max - 1);
  auto nonce = ping_nonce_to(out, node(1));
  out.clear();
  m.on_message(t + 10, node(1), pong{nonce}, out);
  CHECK(m.peers().at(node(1)).missed == 0);
  // It now takes missed_pings_max fresh misses again.
  t += cfg.ping_interval_ms;
  m.tick(t, out);
  REQUIRE(m.peers().at(node(1)).ping_nonce != 0);
  for (uint32_t miss = 1; miss < cfg.missed_pings_max; ++miss) {
    t += cfg.ping_timeout_ms;
    m.tick(t, out);
    CHECK(m.peers().count(node(1)) == 1);
  }
  t += cfg.ping_timeout_ms;
  m.tick(t, out);
  CHECK(m.peers().count(node(1)) == 0);
}

TEST_CASE("peer machine: a suspect is pinged again at once when a ping times out") {
  // No random probing at all: only the timeouts drive the pings, and detection still takes
  // exactly missed_pings_max timeouts from the first ping.
  config cfg;
  cfg.pings_per_tick = 0;
  auto m = make(cfg);
  connect(m, 0, 1);
  effects out;
  learn(m, 0, node(1), {2});  // learned peers are pinged at once
  m.on_message(0, node(1), ping{1, address_of(1)}, out);
  out.clear();
  m.tick(cfg.ping_timeout_ms - 1, out);
  CHECK(sends_of<ping>(out).empty());
  for (uint32_t miss = 1; miss < cfg.missed_pings_max; ++miss) {
    out.clear();
    m.tick(int64_t{miss} * cfg.ping_timeout_ms, out);
    CAPTURE(miss);
    CHECK(m.peers().at(node(2)).missed == miss);
    CHECK(sends_to<ping>(out, node(2)).size() == 1);
    CHECK(sends_to<ping>(out, node(1)).empty());  // never pinged: not a suspect
  }
  out.clear();
  m.tick(int64_t{cfg.missed_pings_max} * cfg.ping_timeout_ms, out);
  CHECK(m.peers().count(node(2)) == 0);
  CHECK(sends_of<ping>(out).empty());
  CHECK(m.peers().count(node(1)) == 1);
}

TEST_CASE("peer machine: probes per tick are bounded and skip busy or recent peers") {
  config cfg;
  cfg.pings_per_tick = 3;
  auto m = make(cfg);
  for (uint8_t n = 1; n <= 20; ++n) connect(m, 0, n);
  effects out;
  m.tick(1000, out);
  auto first = sends_of<ping>(out);
  CHECK(first.size() == 3);  // every peer is idle: all three probes are used
  std::set<node_id> pinged;
  for (const auto& [id, p] : first) pinged.insert(id);
  // Within the ping interval and with pings in flight, nobody is pinged twice.
  for (int64_t t = 1100; t < 2000; t += 100) {
    out.clear();
    m.tick(t, out);
    for (const auto& [id, p] : sends_of<ping>(out)) {
      CHECK(pinged.count(id) == 0);
      pinged.insert(id);
    }
    CHECK(sends_of<ping>(out).size() <= 3);
  }
}

TEST_CASE("peer machine: probing reaches every peer within size over pings_per_tick ticks") {
  config cfg;
  cfg.pings_per_tick = 3;
  auto m = make(cfg);
  for (uint8_t n = 1; n <= 9; ++n) connect(m, 0, n);
  std::set<node_id> pinged;
  for (int64_t t : {1000, 1100, 1200}) {
    effects out;
    m.tick(t, out);
    auto pings = sends_of<ping>(out);
    CHECK(pings.size() == 3);
    for (const auto& [id, p] : pings) pinged.insert(id);
  }
  CHECK(pinged.size() == 9);  // nine distinct peers in three ticks
}

TEST_CASE("peer machine: exchange sends one sample to one peer per interval") {
  config cfg;
  auto m = make(cfg);
  effects out;
  m.start(0, {}, out);
  for (uint8_t n = 1; n <= 5; ++n) connect(m, 0, n);
  out.clear();
  m.tick(cfg.exchange_interval_ms - 1, out);
  CHECK(sends_of<peer_list>(out).empty());
  out.clear();
  m.tick(cfg.exchange_interval_ms, out);
  auto lists = sends_of<peer_list>(out);
  REQUIRE(lists.size() == 1);
  CHECK(m.peers().count(lists[0].first) == 1);
  CHECK(ids_in(lists[0].second).count(lists[0].first) == 0);
  CHECK(lists[0].second.peers.size() == 4);
  out.clear();
  m.tick(cfg.exchange_interval_ms + 500, out);
  CHECK(sends_of<peer_list>(out).empty());
}

// ---- peer lists --------------------------------------------------------------------------------

TEST_CASE("peer machine: peer list entries are added unconfirmed introduced and pinged") {
  auto m = make();
  connect(m, 0, 1);
  effects out;
  peer_list list;
  list.peers = {record_of(node(2), address_of(2)), record_of(node(3), address_of(3))};
  m.on_message(100, node(1), list, out);
  for (uint8_t n : {2, 3}) {
    CAPTURE(int(n));
    REQUIRE(m.peers().count(node(n)) == 1);
    CHECK_FALSE(m.peers().at(node(n)).confirmed);
    CHECK(m.peers().at(node(n)).address == address_of(n));
    auto pings = sends_to<ping>(out, node(n));
    REQUIRE(pings.size() == 1);
    CHECK(pings[0].address == self_address);
  }
  REQUIRE(out.introductions.size() == 2);
  CHECK(out.introductions[0].peer == node(2));
  CHECK(out.introductions[0].address == address_of(2));
  CHECK(out.introductions[1].peer == node(3));
}

TEST_CASE("peer machine: bad peer list entries are ignored") {
  auto m = make();
  connect(m, 0, 1);
  effects out;
  peer_list list;
  list.peers = {
      {bytes(31, 5), "10.0.0.5:1"},                                       // short key
      {bytes(33, 5), "10.0.0.5:1"},                                       // long key
      {bytes{}, "10.0.0.5:1"},                                            // no key
      record_of(node(6), ""),                                             // no address
      record_of(node(7), std::string(limits::address_chars_max + 1, 'a')),  // address too long
      record_of(self_id, self_address),                                   // ourselves
      record_of(node(1), "10.7.7.7:7"),                                   // already known
      record_of(node(8), address_of(8)),                                  // the only good one
  };
  m.on_message(100, node(1), list, out);
  CHECK(m.peers().size() == 2);
  CHECK(m.peers().count(node(8)) == 1);
  CHECK(m.peers().at(node(1)).address == address_of(1));  // not overwritten by hearsay
  CHECK(m.peers().count(self_id) == 0);
  CHECK(sends_of<ping>(out).size() == 1);
  CHECK(out.introductions.size() == 1);
}

TEST_CASE("peer machine: only the first peer_list_entries_max entries of a list are read") {
  auto m = make();
  connect(m, 0, 1);
  effects out;
  peer_list list;
  list.peers.push_back(record_of(node(2), ""));  // invalid but still counts toward the limit
  for (uint8_t n = 10; n < 10 + 40; ++n) list.peers.push_back(record_of(node(n), address_of(n)));
  m.on_message(100, node(1), list, out);
  // Entries 1..15 of the list (nodes 10..24) are taken; everything after is not looked at.
  CHECK(m.peers().size() == 1 + (limits::peer_list_entries_max - 1));
  for (uint8_t n = 10; n < 10 + limits::peer_list_entries_max - 1; ++n)
    CHECK(m.peers().count(node(n)) == 1);
  CHECK(m.peers().count(node(10 + limits::peer_list_entries_max - 1)) == 0);
  CHECK(m.peers().count(node(49)) == 0);
}

TEST_CASE("peer machine: peer list entries never evict") {
  config cfg;
  cfg.peer_table_max = 4;
  auto m = make(cfg);
  connect(m, 0, 1);
  connect(m, 0, 2);
  effects out;
  peer_list list;
  for (uint8_t n = 10; n < 20; ++n) list.peers.push_back(record_of(node(n), address_of(n)));
  m.on_message(100, node(1), list, out);
  CHECK(m.peers().size() == 4);
  CHECK(m.peers().count(node(1)) == 1);
  CHECK(m.peers().count(node(2)) == 1);
  CHECK(events_of(out, event_kind::peer_removed).empty());
  out.clear();
  learn(m, 200, node(2), {30, 31});
  CHECK(m.peers().size() == 4);
  CHECK(m.peers().count(node(30)) == 0);
}

TEST_CASE("peer machine: ping from an unknown node does not evict when full") {
  config cfg;
  cfg.peer_table_max = 2;
  auto m = make(cfg);
  connect(m, 0, 1);
  connect(m, 0, 2);
  effects out;
  m.on_message(10, node(3), ping{5, address_of(3)}, out);
  CHECK(m.peers().size() == 2);
  CHECK(m.peers().count(node(3)) == 0);
  CHECK(events_of(out, event_kind::peer_removed).empty());
  CHECK(sends_to<pong>(out, node(3)).size() == 1);  // still answered
}

TEST_CASE("peer machine: peer_up into a full table evicts the least recently heard") {
  config cfg;
  cfg.peer_table_max = 3;
  auto m = make(cfg);
  connect(m, 100, 3);
  connect(m, 200, 1);
  connect(m, 300, 2);
  effects out;
  m.on_message(400, node(3), ping{1, address_of(3)}, out);  // node 3 is now the freshest
  out.clear();
  m.on_peer_up(500, node(4), address_of(4), out);
  CHECK(m.peers().size() == 3);
  CHECK(m.peers().count(node(4)) == 1);
  CHECK(m.peers().count(node(1)) == 0);  // heard at 200: the stalest
  auto removed = events_of(out, event_kind::peer_removed);
  REQUIRE(removed.size() == 1);
  CHECK(removed[0].peer == node(1));
  CHECK(removed[0].detail == "evicted");
}

TEST_CASE("peer machine: peer_up into a full table evicts unconfirmed peers first") {
  config cfg;
  cfg.peer_table_max = 3;
  auto m = make(cfg);
  connect(m, 100, 1);
  connect(m, 200, 2);
  learn(m, 300, node(1), {9});
  REQUIRE(m.peers().size() == 3);
  effects out;
  m.on_peer_up(400, node(4), address_of(4), out);
  CHECK(m.peers().count(node(9)) == 0);
  CHECK(m.peers().count(node(1)) == 1);
  CHECK(m.peers().count(node(4)) == 1);
}

TEST_CASE("peer machine: peer_up into a full table evicts the peer with most missed pings") {
  config cfg = thorough_config();
  cfg.peer_table_max = 2;
  auto m = make(cfg);
  connect(m, 100, 1);
  connect(m, 200, 2);
  effects out;
  m.tick(1000, out);  // pings both
  auto to_two = ping_nonce_to(out, node(2));
  REQUIRE(to_two != 0);
  m.on_message(1100, node(2), pong{to_two}, out);
  m.tick(3000, out);  // node 1's ping expires: missed 1
  REQUIRE(m.peers().at(node(1)).missed == 1);
  REQUIRE(m.peers().at(node(2)).missed == 0);
  m.on_message(3100, node(1), ping{77, address_of(1)}, out);  // node 1 heard more recently
  REQUIRE(m.peers().at(node(1)).last_heard_ms > m.peers().at(node(2)).last_heard_ms);
  out.clear();
  m.on_peer_up(3200, node(3), address_of(3), out);
  CHECK(m.peers().count(node(1)) == 0);
  CHECK(m.peers().count(node(2)) == 1);
  CHECK(m.peers().count(node(3)) == 1);
}

TEST_CASE("peer machine: table never exceeds peer_table_max under mixed inputs") {
  config cfg;
  cfg.peer_table_max = 8;
  auto m = make(cfg);
  rng random(99);
  effects out;
  m.start(0, {}, out);
  for (int64_t t = 1; t < 20000; t += 50) {
    auto n = static_cast<uint8_t>(1 + random.below(60));
    switch (random.below(4)) {
      case 0: m.on_peer_up(t, node(n), address_of(n), out); break;
      case 1: m.on_message(t, node(n), ping{static_cast<uint64_t>(t), address_of(n)}, out); break;
      case 2: learn(m, t, node(n), {static_cast<uint8_t>(n + 1), static_cast<uint8_t>(n + 2)}); break;
      default: m.tick(t, out); break;
    }
    REQUIRE(m.peers().size() <= cfg.peer_table_max);
    REQUIRE(m.peers().count(self_id) == 0);
    out.clear();
  }
}

// ---- goodbye and shutdown ----------------------------------------------------------------------

TEST_CASE("peer machine: goodbye removes the sender") {
  auto m = make();
  connect(m, 0, 1);
  connect(m, 0, 2);
  m.clear_dirty();
  effects out;
  m.on_message(10, node(1), goodbye{0}, out);
  CHECK(m.peers().count(node(1)) == 0);
  CHECK(m.peers().count(node(2)) == 1);
  auto removed = events_of(out, event_kind::peer_removed);
  REQUIRE(removed.size() == 1);
  CHECK(removed[0].detail == "goodbye");
  CHECK(m.dirty());
  out.clear();
  m.clear_dirty();
  m.on_message(20, node(9), goodbye{0}, out);  // unknown sender: nothing to do
  CHECK(out.events.empty());
  CHECK_FALSE(m.dirty());
}

TEST_CASE("peer machine: a peer removed by goodbye returns through ping") {
  auto m = make();
  connect(m, 0, 1);
  effects out;
  m.on_message(10, node(1), goodbye{0}, out);
  REQUIRE(m.peers().count(node(1)) == 0);
  m.tick(500, out);
  CHECK(m.peers().count(node(1)) == 0);  // nothing brings it back by itself
  m.on_message(600, node(1), ping{3, address_of(1)}, out);
  CHECK(m.peers().count(node(1)) == 1);
}

TEST_CASE("peer machine: shutdown says goodbye to every confirmed peer") {
  auto m = make();
  for (uint8_t n : {1, 2, 3}) connect(m, 0, n);
  learn(m, 10, node(1), {20, 21});
  effects out;
  m.shutdown(out);
  auto goodbyes = sends_of<goodbye>(out);
  std::set<node_id> to;
  for (const auto& [id, g] : goodbyes) {
    to.insert(id);
    CHECK(g.reason == 0);
  }
  CHECK(goodbyes.size() == 3);
  CHECK(to == std::set<node_id>{node(1), node(2), node(3)});
  CHECK(out.sends.size() == 3);
}

// ---- seed redial -------------------------------------------------------------------------------

TEST_CASE("peer machine: seeds are redialed after lonely_redial_ms while the table is empty") {
  config cfg;
  auto m = make(cfg, {{"10.0.0.1:7000", node_id{}}});
  effects out;
  m.start(1000, {}, out);
  REQUIRE(out.dials.size() == 1);
  out.clear();
  m.tick(1000 + cfg.lonely_redial_ms - 1, out);
  CHECK(out.dials.empty());
  m.tick(1000 + cfg.lonely_redial_ms, out);
  REQUIRE(out.dials.size() == 1);
  CHECK(out.dials[0].address == "10.0.0.1:7000");
  out.clear();
  m.tick(1000 + 2 * cfg.lonely_redial_ms - 1, out);
  CHECK(out.dials.empty());
  m.tick(1000 + 2 * cfg.lonely_redial_ms, out);
  CHECK(out.dials.size() == 1);
}

TEST_CASE("peer machine: seeds that are not confirmed peers are redialed after seed_redial_ms") {
  config cfg;
  auto m = make(cfg, {{address_of(1), node_id{}}, {address_of(2), node_id{}},
                      {address_of(3), node_id{}}});
  effects out;
  m.start(0, {}, out);
  connect(m, 100, 1);                // seed 1 is a confirmed peer
  learn(m, 200, node(1), {3});       // seed 3 is known only by hearsay
  out.clear();
  m.tick(cfg.lonely_redial_ms, out);  // not lonely: the short interval does not apply
  CHECK(out.dials.empty());
  m.tick(cfg.seed_redial_ms - 1, out);
  CHECK(out.dials.empty());
  out.clear();
  m.tick(cfg.seed_redial_ms, out);
  std::vector<std::string> dialed;
  for (const auto& d : out.dials) dialed.push_back(d.address);
  CHECK(dialed == std::vector<std::string>{address_of(2), address_of(3)});
  CHECK(events_of(out, event_kind::seed_dialed).size() == 2);
}

TEST_CASE("peer machine: no redial when every seed is a confirmed peer") {
  config cfg;
  auto m = make(cfg, {{address_of(1), node_id{}}});
  effects out;
  m.start(0, {}, out);
  connect(m, 10, 1);
  size_t dials = 0;
  for (int64_t t = 500; t <= 5 * cfg.seed_redial_ms; t += 500) {
    out.clear();
    m.tick(t, out);
    dials += out.dials.size();
    // Node 1 answers every ping, so it stays a confirmed peer.
    if (auto nonce = ping_nonce_to(out, node(1))) m.on_message(t + 1, node(1), pong{nonce}, out);
  }
  CHECK(m.peers().count(node(1)) == 1);
  CHECK(m.peers().at(node(1)).pongs > 10);
  CHECK(dials == 0);
}

// ---- persistence -------------------------------------------------------------------------------

TEST_CASE("peer machine: snapshot round-trips through start") {
  auto a = make();
  for (uint8_t n : {4, 1, 3}) connect(a, 0, n);
  learn(a, 10, node(1), {7});
  effects out;
  a.on_peer_up(20, node(9), "", out);  // no address: cannot be persisted
  auto snap = a.snapshot();
  CHECK(snap.size() == 4);
  auto b = make();
  b.start(100, snap, out);
  REQUIRE(b.peers().size() == 4);
  for (const auto& [id, state] : b.peers()) {
    REQUIRE(a.peers().count(id) == 1);
    CHECK(state.address == a.peers().at(id).address);
  }
  CHECK(b.peers().count(node(9)) == 0);
  // A second snapshot of the restored machine is the same rows.
  auto again = b.snapshot();
  REQUIRE(again.size() == snap.size());
  for (size_t i = 0; i < snap.size(); ++i) {
    CHECK(again[i].key == snap[i].key);
    CHECK(again[i].address == snap[i].address);
  }
}

TEST_CASE("peer machine: dirty flag tracks changes to what is persisted") {
  auto m = make();
  CHECK_FALSE(m.dirty());
  effects out;
  m.start(0, {}, out);
  CHECK_FALSE(m.dirty());
  m.on_peer_up(10, node(1), address_of(1), out);
  CHECK(m.dirty());
  m.clear_dirty();
  CHECK_FALSE(m.dirty());
  m.on_peer_up(20, node(1), address_of(1), out);  // same address: nothing new to persist
  CHECK_FALSE(m.dirty());
  m.on_message(30, node(1), ping{1, address_of(1)}, out);
  m.on_message(30, node(1), pong{12345}, out);
  CHECK_FALSE(m.dirty());
  m.on_peer_up(40, node(1), "10.1.1.1:1", out);  // address changed
  CHECK(m.dirty());
  m.clear_dirty();
  learn(m, 50, node(1), {2});
  CHECK(m.dirty());
  m.clear_dirty();
  m.on_message(60, node(2), goodbye{0}, out);
  CHECK(m.dirty());
  m.clear_dirty();
  m.shutdown(out);
  CHECK_FALSE(m.dirty());
}

// ---- determinism -------------------------------------------------------------------------------

namespace {

// A fixed script of inputs; returns the effects of every step as text.
std::string run_script(uint64_t rng_seed) {
  config cfg;
  auto m = make(cfg, {{"10.0.0.1:7000", node_id{}}}, rng_seed);
  std::string log;
  effects out;
  auto step = [&] {
    log += describe(out);
    log += "--\n";
    out.clear();
  };
  m.start(0, {record_of(node(90), address_of(90))}, out);
  step();
  for (uint8_t n = 1; n <= 30; ++n) {
    m.on_peer_up(n * 10, node(n), address_of(n), out);
    step();
  }
  for (int64_t t = 500; t <= 20000; t += 500) {
    m.tick(t, out);
    // Odd nodes answer their pings; even ones stay silent.
    std::vector<std::pair<node_id, uint64_t>> answers;
    for (const auto& [id, p] : sends_of<ping>(out))
      if (id.key[0] % 2 == 1) answers.emplace_back(id, p.nonce);
    step();
    for (const auto& [id, nonce] : answers) {
      m.on_message(t + 20, id, pong{nonce}, out);
      step();
    }
  }
  return log;
}

}  // namespace

TEST_CASE("peer machine: same seed and same inputs give identical effects") {
  auto first = run_script(7);
  CHECK(first.size() > 1000);
  CHECK(first == run_script(7));
}

TEST_CASE("peer machine: different seeds make different random choices") {
  CHECK(run_script(7) != run_script(8));
  // Samples are random: the same 30 peers come out in a different order.
  auto sample = [](uint64_t rng_seed) {
    auto m = make({}, {}, rng_seed);
    for (uint8_t n = 1; n <= 30; ++n) connect(m, 0, n);
    effects out;
    m.on_peer_up(1, node(31), address_of(31), out);
    return describe(out);
  };
  CHECK(sample(1) == sample(1));
  CHECK(sample(1) != sample(2));
}

TEST_CASE("peer machine: event names") {
  CHECK(std::string(event_name(event_kind::peer_added)) == "peer_added");
  CHECK(std::string(event_name(event_kind::peer_removed)) == "peer_removed");
  CHECK(std::string(event_name(event_kind::pong)) == "pong");
  CHECK(std::string(event_name(event_kind::dial_failed)) == "dial_failed");
  CHECK(std::string(event_name(event_kind::seed_dialed)) == "seed_dialed");
  CHECK(std::string(event_name(event_kind::refused)) == "refused");
}

// ---- a small in-memory mesh --------------------------------------------------------------------

namespace {

// N machines wired by a queue of timed deliveries with a fixed one-way latency. Dials to address
// "mesh:i" reach node i. A node that is down neither ticks nor receives anything.
class mesh {
public:
  mesh(size_t count, config cfg, int64_t latency_ms) : config_(cfg), latency_(latency_ms) {
    for (size_t i = 0; i < count; ++i) {
      ids_.push_back(node(static_cast<uint8_t>(i + 1)));
      index_[ids_.back()] = i;
      std::vector<seed> seeds = {{address(0), node_id{}}};
      machines_.push_back(std::make_unique<machine>(ids_[i], address(i), seeds, cfg, 1000 + i));
      up_.push_back(true);
    }
  }

  static std::string address(size_t i) { return "mesh:" + std::to_string(i); }

  void start_all(int64_t now) {
    for (size_t i = 0; i < machines_.size(); ++i) {
      int64_t at = now + static_cast<int64_t>(i) * 10;
      schedule({at, item::start, i, 0, {}, {}});
      // Stagger the ticks so the nodes are not in lockstep.
      schedule({at + static_cast<int64_t>(i) * 37 % config_.tick_ms + 1, item::tick, i, 0, {}, {}});
    }
  }

  void stop(size_t i) { up_[i] = false; }

  // Processes everything due up to and including `until`.
  void run_until(int64_t until) {
    while (!queue_.empty() && queue_.begin()->first.first <= until) {
      auto entry = queue_.begin()->second;
      now_ = queue_.begin()->first.first;
      queue_.erase(queue_.begin());
      handle(entry);
    }
    now_ = until;
  }

  const machine& at(size_t i) const { return *machines_[i]; }
  const node_id& id(size_t i) const { return ids_[i]; }
  size_t size() const { return machines_.size(); }
  int64_t now() const { return now_; }

  size_t confirmed(size_t i) const {
    size_t count = 0;
    for (const auto& [peer, state] : machines_[i]->peers()) count += state.confirmed ? 1 : 0;
    return count;
  }

private:
  struct item {
    enum kind_t { start, tick, message, peer_up, dial_failed } kind;
    size_t to;
    size_t from;
    wire_message payload;
    std::string address;
    item(int64_t when, kind_t k, size_t t, size_t f, wire_message p, std::string a)
        : kind(k), to(t), from(f), payload(std::move(p)), address(std::move(a)), at(when) {}
    int64_t at;
  };

  void schedule(item entry) {
    auto key = std::make_pair(entry.at, sequence_++);
    queue_.emplace(key, std::move(entry));
  }

  void handle(const item& entry) {
    size_t i = entry.to;
    if (!up_[i]) return;
    auto& m = *machines_[i];
    effects out;
    switch (entry.kind) {
      case item::start: m.start(now_, {}, out); break;
      case item::tick:
        m.tick(now_, out);
        schedule({now_ + config_.tick_ms, item::tick, i, 0, {}, {}});
        break;
      case item::message: m.on_message(now_, ids_[entry.from], entry.payload, out); break;
      case item::peer_up: m.on_peer_up(now_, ids_[entry.from], entry.address, out); break;
      case item::dial_failed: m.on_dial_failed(now_, entry.address, "refused", out); break;
    }
    carry_out(i, out);
  }

  void carry_out(size_t i, const effects& out) {
    for (const auto& s : out.sends) {
      REQUIRE(s.to != ids_[i]);
      schedule({now_ + latency_, item::message, index_.at(s.to), i, s.message, {}});
    }
    for (const auto& d : out.dials) {
      REQUIRE(d.address != address(i));
      size_t j = std::stoul(d.address.substr(5));
      if (up_[j]) {
        schedule({now_ + latency_, item::peer_up, j, i, {}, address(i)});
        schedule({now_ + 2 * latency_, item::peer_up, i, j, {}, address(j)});
      } else {
        schedule({now_ + 2 * latency_, item::dial_failed, i, j, {}, d.address});
      }
    }
  }

  config config_;
  int64_t latency_;
  int64_t now_ = 0;
  uint64_t sequence_ = 0;
  std::vector<node_id> ids_;
  std::map<node_id, size_t> index_;
  std::vector<std::unique_ptr<machine>> machines_;
  std::vector<bool> up_;
  std::map<std::pair<int64_t, uint64_t>, item> queue_;
};

}  // namespace

TEST_CASE("peer mesh: ten nodes joining through one seed each find at least five peers") {
  config cfg;
  mesh net(10, cfg, 20);
  net.start_all(0);
  int64_t all_joined_at = -1;
  for (int64_t t = 100; t <= 10000 && all_joined_at < 0; t += 100) {
    net.run_until(t);
    bool all = true;
    for (size_t i = 0; i < net.size(); ++i) all = all && net.confirmed(i) >= 5;
    if (all) all_joined_at = t;
  }
  CHECK(all_joined_at >= 0);
  CHECK(all_joined_at <= 10000);
  net.run_until(10000);
  for (size_t i = 0; i < net.size(); ++i) {
    CAPTURE(i);
    CHECK(net.confirmed(i) >= 5);
    CHECK(net.at(i).peers().count(net.id(i)) == 0);
    CHECK(net.at(i).peers().size() <= cfg.peer_table_max);
  }
}

namespace {

// Stops node `dead` at 10 s and returns when it was first gone from every other table (or -1 if
// not by `bound`). Checks that it stays gone and that the survivors still know each other.
int64_t silence_and_watch(const config& cfg, size_t dead, int64_t bound) {
  mesh net(10, cfg, 20);
  net.start_all(0);
  net.run_until(10000);
  for (size_t i = 0; i < net.size(); ++i)
    if (i != dead) REQUIRE(net.at(i).peers().count(net.id(dead)) == 1);
  net.stop(dead);
  int64_t gone_everywhere_at = -1;
  for (int64_t t = 10000; t <= bound && gone_everywhere_at < 0; t += 100) {
    net.run_until(t);
    bool gone = true;
    for (size_t i = 0; i < net.size(); ++i)
      if (i != dead) gone = gone && net.at(i).peers().count(net.id(dead)) == 0;
    if (gone) gone_everywhere_at = t;
  }
  if (gone_everywhere_at < 0) return -1;
  // Once no table holds it as a healthy peer, no peer list can bring it back.
  net.run_until(bound + 20000);
  for (size_t i = 0; i < net.size(); ++i) {
    CAPTURE(i);
    CHECK(net.at(i).peers().count(net.id(dead)) == 0);
    if (i != dead) CHECK(net.confirmed(i) >= 5);
  }
  return gone_everywhere_at;
}

}  // namespace

TEST_CASE("peer mesh: a node that stops answering is removed from every table") {
  // Default config. The last ping it answered may be up to ping_interval_ms old; round-robin
  // probing reaches each of the 9 peers within ceil(9 / pings_per_tick) ticks; then
  // missed_pings_max timeouts, each re-pinged at once; plus two ticks of slack.
  config cfg;
  int64_t ticks_to_reach = (9 + cfg.pings_per_tick - 1) / cfg.pings_per_tick;
  int64_t bound = 10000 + cfg.ping_interval_ms + int64_t{cfg.missed_pings_max} * cfg.ping_timeout_ms +
                  (ticks_to_reach + 2) * cfg.tick_ms;
  auto gone_at = silence_and_watch(cfg, 5, bound);
  CHECK(gone_at >= 0);
  // Not removed early either: it takes missed_pings_max timeouts.
  CHECK(gone_at > 10000 + int64_t{cfg.missed_pings_max - 1} * cfg.ping_timeout_ms);
}

TEST_CASE("peer mesh: with every peer probed each tick removal takes one interval plus the timeouts") {
  config cfg = thorough_config();
  int64_t bound = 10000 + cfg.ping_interval_ms + int64_t{cfg.missed_pings_max} * cfg.ping_timeout_ms +
                  2 * cfg.tick_ms;
  auto gone_at = silence_and_watch(cfg, 3, bound);
  CHECK(gone_at >= 0);
  CHECK(gone_at > 10000 + int64_t{cfg.missed_pings_max - 1} * cfg.ping_timeout_ms);
}
