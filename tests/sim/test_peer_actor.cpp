// The peer actor alone under CAF's test_coordinator, driven by hand: a fake transport records
// what the actor sends through the seam, and the test delivers seam messages to it.
// (CAF's own expect() DSL needs CAF's test engine and crashes under doctest: not used here.)
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/peer/peer_actor.hpp"
#include "messages/codec.hpp"
#include "messages/peer_messages.hpp"
#include "messages/seam.hpp"
#include "messages/services.hpp"
#include "runtime/core/event_sink.hpp"
#include "runtime/node/node_services.hpp"
#include "runtime/store/store.hpp"

using namespace std::chrono_literals;
using cmesh::bytes;
using cmesh::node_id;

namespace {

// ---- what the fake transport saw ----------------------------------------------------------------

struct sent_message {
  node_id to;
  uint16_t service = 0;
  bytes data;
};

struct transport_log {
  std::vector<std::string> order;  // "send", "dial", "register", "introduce", in arrival order
  std::vector<sent_message> sends;
  std::vector<std::pair<std::string, node_id>> dials;
  std::vector<std::pair<uint16_t, caf::actor>> registers;
  std::vector<std::pair<node_id, std::string>> introductions;

  void clear() {
    order.clear();
    sends.clear();
    dials.clear();
    registers.clear();
    introductions.clear();
  }
};

caf::behavior fake_transport(caf::event_based_actor*, std::shared_ptr<transport_log> log) {
  return {
    [=](cmesh::send_atom, const node_id& to, uint16_t service, const bytes& data) {
      log->order.push_back("send");
      log->sends.push_back({to, service, data});
    },
    [=](cmesh::dial_atom, const std::string& address, const node_id& pinned) {
      log->order.push_back("dial");
      log->dials.emplace_back(address, pinned);
    },
    [=](cmesh::register_atom, uint16_t service, const caf::actor& actor) {
      log->order.push_back("register");
      log->registers.emplace_back(service, actor);
    },
    [=](cmesh::introduce_atom, const node_id& peer, const std::string& address) {
      log->order.push_back("introduce");
      log->introductions.emplace_back(peer, address);
    },
  };
}

struct recorded_event {
  std::string kind;
  node_id peer;
  std::string detail;
};

struct recording_sink : cmesh::event_sink {
  std::vector<recorded_event> events;
  void record(const cmesh::node_event& e) override {
    events.push_back({std::string(e.kind), e.peer, std::string(e.detail)});
  }
  size_t count(const std::string& kind) const {
    size_t n = 0;
    for (const auto& e : events) n += e.kind == kind ? 1 : 0;
    return n;
  }
};

node_id make_id(uint8_t tag) {
  node_id id;
  for (size_t i = 0; i < id.key.size(); ++i) id.key[i] = static_cast<uint8_t>(tag + i * 7);
  return id;
}

template <class T>
bytes encode(const node_id& source, const T& message) {
  auto encoded = cmesh::encode_message(source, 0, message);
  REQUIRE(encoded.ok());
  return std::move(*encoded);
}

// The sends to `to` that decode as a T (from envelopes whose source is `self`).
template <class T>
std::vector<T> sent_as(const transport_log& log, const node_id& self, const node_id& to) {
  std::vector<T> out;
  for (const auto& m : log.sends) {
    if (m.to != to || m.service != cmesh::services::peer) continue;
    auto env = cmesh::decode_envelope(m.data.data(), m.data.size());
    REQUIRE(env.ok());
    CHECK(env->source == self);
    CHECK(env->service == cmesh::services::peer);
    if (env->type != T::type_id) continue;
    auto decoded = cmesh::decode_payload<T>(*env);
    REQUIRE(decoded.ok());
    out.push_back(std::move(*decoded));
  }
  return out;
}

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  std::shared_ptr<transport_log> log = std::make_shared<transport_log>();
  recording_sink sink;
  caf::actor transport;
  std::vector<caf::actor> actors;  // killed before the system goes away
  node_id self = make_id(1);
  node_id x = make_id(50);
  node_id y = make_id(90);

  static caf::actor_system_config& prepare(caf::actor_system_config& c) {
    c.set("scheduler.policy", caf::atom("testing"));
    c.set("logger.file-verbosity", caf::atom("quiet"));
    c.set("logger.console-verbosity", caf::atom("quiet"));
    return c;
  }

  fixture()
      : sys(prepare(cfg)), sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())) {
    transport = sys.spawn(fake_transport, log);
    actors.push_back(transport);
    sched.run();
  }

  ~fixture() {
    // A testing-mode system with a live self-rearming timer actor never finishes destruction.
    for (const auto& a : actors) caf::anon_send_exit(a, caf::exit_reason::kill);
    sched.run();
    actors.clear();
    transport = nullptr;
    log->clear();
  }

  cmesh::peer::actor_context context(cmesh::store* storage = nullptr) {
    cmesh::peer::actor_context c;
    c.self = self;
    c.listen_address = "sim:1";
    c.seeds = {{"sim:0", node_id{}}};
    c.rng_seed = 42;
    c.storage = storage;
    c.events = &sink;
    return c;
  }

  caf::actor spawn_peer(cmesh::store* storage = nullptr) {
    auto a = cmesh::peer::spawn_peer_actor(sys, transport, context(storage));
    actors.push_back(a);
    sched.run();
    return a;
  }

  void kill(const caf::actor& a) {
    caf::anon_send_exit(a, caf::exit_reason::kill);
    sched.run();
  }

  // Advances virtual time in tick-sized steps, running every message in between.
  void advance(std::chrono::milliseconds total) {
    for (auto step = 0ms; step < total; step += 100ms) {
      sched.advance_time(100ms);
      sched.run();
    }
  }

  void deliver(const caf::actor& peer, const node_id& from, bytes data) {
    caf::anon_send(peer, cmesh::deliver_atom::value, from, cmesh::services::peer, std::move(data));
    sched.run();
  }
};

struct temp_folder {
  std::string path;
  temp_folder() {
    path = (std::filesystem::temp_directory_path() / "cmesh-peer-test-XXXXXX").string();
    if (!mkdtemp(path.data())) path.clear();
  }
  ~temp_folder() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

std::unique_ptr<cmesh::store> open_sim_store(const std::string& dir) {
  cmesh::store_options so;
  so.map_bytes = cmesh::limits::store_map_bytes_sim;
  so.durable = false;
  so.simulate_crashes = true;
  auto opened = cmesh::store::open(dir, so);
  REQUIRE_MESSAGE(opened.ok(), (opened.ok() ? std::string() : opened.err().describe()));
  return std::move(*opened);
}

}  // namespace

TEST_CASE_FIXTURE(fixture, "peer actor: registers for the peer service and dials its seed on start") {
  auto peer = spawn_peer();
  REQUIRE(log->registers.size() == 1);
  CHECK(log->registers[0].first == cmesh::services::peer);
  CHECK(log->registers[0].second == peer);
  REQUIRE(log->dials.size() == 1);
  CHECK(log->dials[0].first == "sim:0");
  CHECK(log->dials[0].second.is_zero());
  CHECK(log->sends.empty());  // nobody to talk to yet
  REQUIRE(!log->order.empty());
  CHECK(log->order.front() == "register");
  CHECK(sink.count("seed_dialed") == 1);
}

TEST_CASE_FIXTURE(fixture, "peer actor: spawn_node_services starts the same registered peer service") {
  cmesh::node_setup setup;
  setup.self = self;
  setup.listen_address = "sim:1";
  setup.seeds = {{"sim:0", node_id{}}, {"sim:1", node_id{}}};  // its own address is skipped
  setup.rng_seed = 3;
  setup.events = &sink;
  auto services = cmesh::spawn_node_services(sys, transport, setup);
  for (const auto& a : services) actors.push_back(a);
  sched.run();
  REQUIRE(!services.empty());
  REQUIRE(log->registers.size() == services.size());
  CHECK(log->registers[0].first == cmesh::services::peer);
  CHECK(log->registers[0].second == services[0]);
  REQUIRE(log->dials.size() == 1);
  CHECK(log->dials[0].first == "sim:0");
}

TEST_CASE_FIXTURE(fixture, "peer actor: a new connection gets a peer list and later a ping") {
  auto peer = spawn_peer();
  // Two connections: the second one should be offered the first one in its peer list.
  caf::anon_send(peer, cmesh::peer_up_atom::value, x, std::string("sim:50"));
  sched.run();
  auto lists_x = sent_as<cmesh::peer::peer_list>(*log, self, x);
  REQUIRE(lists_x.size() == 1);
  CHECK(lists_x[0].peers.empty());  // it knew nobody else
  CHECK(sink.count("peer_added") == 1);

  caf::anon_send(peer, cmesh::peer_up_atom::value, y, std::string("sim:90"));
  sched.run();
  auto lists_y = sent_as<cmesh::peer::peer_list>(*log, self, y);
  REQUIRE(lists_y.size() == 1);
  REQUIRE(lists_y[0].peers.size() == 1);
  CHECK(lists_y[0].peers[0].key == bytes(x.key.begin(), x.key.end()));
  CHECK(lists_y[0].peers[0].address == "sim:50");

  // Ticks (500ms) probe peers not pinged for ping_interval_ms (1s): a ping to x follows.
  CHECK(sent_as<cmesh::peer::ping>(*log, self, x).empty());
  advance(3000ms);
  auto pings = sent_as<cmesh::peer::ping>(*log, self, x);
  REQUIRE(!pings.empty());
  CHECK(pings.back().nonce != 0);
  CHECK(pings.back().address == "sim:1");
  // Answering the outstanding one is counted as a pong; an unknown nonce is not.
  deliver(peer, x, encode(x, cmesh::peer::pong{pings.back().nonce + 1000}));
  CHECK(sink.count("pong") == 0);
  deliver(peer, x, encode(x, cmesh::peer::pong{pings.back().nonce}));
  CHECK(sink.count("pong") == 1);
  CHECK(sink.count("malformed") == 0);
}

TEST_CASE_FIXTURE(fixture, "peer actor: answers a ping with a pong carrying the same nonce") {
  auto peer = spawn_peer();
  deliver(peer, x, encode(x, cmesh::peer::ping{123456789, "sim:50"}));
  auto pongs = sent_as<cmesh::peer::pong>(*log, self, x);
  REQUIRE(pongs.size() == 1);
  CHECK(pongs[0].nonce == 123456789);
  // A ping from an unknown node that says where it listens makes it a peer.
  REQUIRE(sink.count("peer_added") == 1);
  CHECK(sink.events.back().kind == "peer_added");
  CHECK(sink.events.back().peer == x);

  deliver(peer, y, encode(y, cmesh::peer::ping{7, "sim:90"}));
  auto pongs_y = sent_as<cmesh::peer::pong>(*log, self, y);
  REQUIRE(pongs_y.size() == 1);
  CHECK(pongs_y[0].nonce == 7);
  CHECK(sent_as<cmesh::peer::pong>(*log, self, x).size() == 1);  // nothing more for x
}

TEST_CASE_FIXTURE(fixture, "peer actor: drops malformed input and keeps working") {
  auto peer = spawn_peer();
  auto sends_before = log->sends.size();

  deliver(peer, x, bytes{0xde, 0xad, 0xbe, 0xef});               // not msgpack at all
  deliver(peer, x, bytes{});                                      // empty
  deliver(peer, x, encode(y, cmesh::peer::ping{5, "sim:90"}));    // source is not the sender
  auto valid = encode(x, cmesh::peer::ping{6, "sim:50"});
  deliver(peer, x, bytes(valid.begin(), valid.begin() + valid.size() / 2));  // truncated
  cmesh::envelope odd;
  odd.type = 99;
  odd.source = x;
  odd.service = cmesh::services::peer;
  odd.payload = bytes{0xc0};
  auto odd_bytes = cmesh::encode_envelope(odd);
  REQUIRE(odd_bytes.ok());
  deliver(peer, x, *odd_bytes);                                    // unknown message type
  cmesh::envelope bad_payload;
  bad_payload.type = cmesh::peer::ping::type_id;
  bad_payload.source = x;
  bad_payload.service = cmesh::services::peer;
  bad_payload.payload = bytes{0xa1, 'a'};                          // "a" is not a ping
  auto bad_bytes = cmesh::encode_envelope(bad_payload);
  REQUIRE(bad_bytes.ok());
  deliver(peer, x, *bad_bytes);

  CHECK(sink.count("malformed") == 6);
  CHECK(log->sends.size() == sends_before);  // nothing answered
  CHECK(sink.count("peer_added") == 0);     // and nobody added

  deliver(peer, x, valid);  // the actor is alive and still answers
  auto pongs = sent_as<cmesh::peer::pong>(*log, self, x);
  REQUIRE(pongs.size() == 1);
  CHECK(pongs[0].nonce == 6);
  CHECK(sink.count("malformed") == 6);
}

TEST_CASE_FIXTURE(fixture, "peer actor: shutdown says goodbye to connected peers and then ignores input") {
  auto peer = spawn_peer();
  caf::anon_send(peer, cmesh::peer_up_atom::value, x, std::string("sim:50"));
  sched.run();
  caf::anon_send(peer, cmesh::shutdown_atom::value);
  sched.run();
  CHECK(sent_as<cmesh::peer::goodbye>(*log, self, x).size() == 1);
  auto sends = log->sends.size();
  deliver(peer, x, encode(x, cmesh::peer::ping{9, "sim:50"}));
  advance(2000ms);
  CHECK(log->sends.size() == sends);
}

TEST_CASE_FIXTURE(fixture, "peer actor: a restarted actor pings the peers persisted in its store") {
  temp_folder dir;
  REQUIRE(!dir.path.empty());
  auto storage = open_sim_store(dir.path);
  auto first = spawn_peer(storage.get());
  caf::anon_send(first, cmesh::peer_up_atom::value, x, std::string("sim:50"));
  sched.run();
  // The table is persisted (and synced) on a tick at most every persist_interval_ms (1s).
  advance(1200ms);
  CHECK(sink.count("storage_error") == 0);
  kill(first);
  storage->simulate_crash();  // only what was synced survives
  storage.reset();

  storage = open_sim_store(dir.path);
  log->clear();
  sink.events.clear();
  auto second = spawn_peer(storage.get());
  (void)second;
  // Before any input: the remembered peer is back in the table and pinged.
  auto pings = sent_as<cmesh::peer::ping>(*log, self, x);
  REQUIRE(pings.size() == 1);
  CHECK(pings[0].address == "sim:1");
  bool remembered = false;
  for (const auto& e : sink.events)
    if (e.kind == "peer_added" && e.peer == x && e.detail == "remembered sim:50") remembered = true;
  CHECK(remembered);
  REQUIRE(log->dials.size() == 1);  // and it still dials its seed
  CHECK(log->dials[0].first == "sim:0");
  kill(second);
  storage.reset();
}

TEST_CASE_FIXTURE(fixture, "peer actor: a crash before the table was synced loses it") {
  temp_folder dir;
  REQUIRE(!dir.path.empty());
  auto storage = open_sim_store(dir.path);
  auto first = spawn_peer(storage.get());
  caf::anon_send(first, cmesh::peer_up_atom::value, x, std::string("sim:50"));
  sched.run();
  advance(600ms);  // one tick at 500ms: too early to persist
  kill(first);
  storage->simulate_crash();
  storage.reset();

  storage = open_sim_store(dir.path);
  log->clear();
  auto second = spawn_peer(storage.get());
  (void)second;
  CHECK(sent_as<cmesh::peer::ping>(*log, self, x).empty());
  kill(second);
  storage.reset();
}

// The real transport routes a send to a node it has no connection to through its address book,
// which only `introduce` (or a connection) fills: a restarted node's transport knows no
// addresses, so remembered peers must be introduced before they are pinged. (The simulator
// routes by key and ignores introduce, so no whole simulation can show this.)
TEST_CASE_FIXTURE(fixture, "peer actor: remembered peers are introduced to the transport before the first ping") {
  temp_folder dir;
  REQUIRE(!dir.path.empty());
  auto storage = open_sim_store(dir.path);
  auto first = spawn_peer(storage.get());
  caf::anon_send(first, cmesh::peer_up_atom::value, x, std::string("sim:50"));
  sched.run();
  advance(1200ms);
  kill(first);
  storage->simulate_crash();
  storage.reset();
  storage = open_sim_store(dir.path);
  log->clear();
  auto second = spawn_peer(storage.get());
  (void)second;
  REQUIRE(sent_as<cmesh::peer::ping>(*log, self, x).size() == 1);
  REQUIRE(log->introductions.size() == 1);
  CHECK(log->introductions[0].first == x);
  CHECK(log->introductions[0].second == "sim:50");
  auto introduce_at = std::find(log->order.begin(), log->order.end(), "introduce");
  auto send_at = std::find(log->order.begin(), log->order.end(), "send");
  CHECK(introduce_at < send_at);
  kill(second);
  storage.reset();
}

// CAF 0.17's stock default handlers answer an unexpected message with an error, which CAF delivers
// to the sender even for a plain send; the real transport once quit on such an answer (to a
// dial_failed it told every service about) and took the listener down with it. Every service
// must take the seam's notifications and unknown messages without answering anything.
TEST_CASE_FIXTURE(fixture, "node services: seam notifications and unknown messages get no answer") {
  cmesh::node_setup setup;
  setup.self = self;
  setup.listen_address = "sim:1";
  setup.seeds = {{"sim:0", node_id{}}};
  setup.rng_seed = 5;
  setup.events = &sink;
  setup.bench_echo = true;
  setup.swim = cmesh::swim_setup{};
  setup.gossip = cmesh::gossip_setup{};
  cmesh::aggregator_setup directory;
  directory.serve = true;
  setup.aggregator = directory;
  setup.events_bus = cmesh::events_setup{};
  cmesh::reputation_setup standing;
  standing.signer = cmesh::identity::derive_for_simulation(5, 0);
  setup.self = standing.signer.public_key;
  setup.reputation = standing;
  cmesh::iam_setup identity_service;
  identity_service.signer = standing.signer;
  setup.iam = identity_service;
  auto services = cmesh::spawn_node_services(sys, transport, setup);
  for (const auto& a : services) actors.push_back(a);
  sched.run();
  REQUIRE(services.size() == 8);  // peer, echo, swim, gossip, aggregator, events, reputation, iam
  auto answers = std::make_shared<std::vector<std::string>>();
  auto prober = sys.spawn([=, this](caf::event_based_actor* probe) -> caf::behavior {
    probe->set_error_handler([=](caf::error& e) { answers->push_back(probe->system().render(e)); });
    probe->set_default_handler([=](caf::scheduled_actor*, caf::message_view& m) -> caf::result<caf::message> {
      answers->push_back(caf::to_string(m.content()));
      return caf::message{};
    });
    for (const auto& service : services) {
      probe->send(service, cmesh::dial_failed_atom::value, std::string("sim:9"), std::string("refused"));
      probe->send(service, cmesh::peer_down_atom::value, x);
      probe->send(service, caf::atom("bogus"), 42);
    }
    return {[](cmesh::tick_atom) {}};
  });
  actors.push_back(prober);
  sched.run();
  INFO((answers->empty() ? std::string() : answers->front()));
  CHECK(answers->empty());
}
