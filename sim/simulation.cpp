#include "sim/simulation.hpp"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include <sys/resource.h>
#include <unistd.h>

#include <caf/scheduler/test_coordinator.hpp>

#include "messages/seam.hpp"
#include "runtime/core/event_sink.hpp"
#include "runtime/crypto/identity.hpp"
#include "runtime/node/node_services.hpp"
#include "sim/world.hpp"
#include "actors/kv/kv_actor.hpp"
#include "actors/rmb/rmb_actor.hpp"
#include "sim/kv_client.hpp"
#include "sim/model/linearizability.hpp"
#include "sim/model/raft_checker.hpp"

namespace cmesh::sim {

namespace {

enum class node_action { start, crash, restart, churn, nemesis_crash_leader, nemesis_crash_voter };

constexpr std::string_view meta_database = "meta";
constexpr std::string_view identity_key = "identity_seed";

// The simulated RMB client: hands each command to the sending node's agent at its time (the
// agent as it is then: a restarted node has a new one) and records how it ended.
caf::behavior rmb_client(caf::event_based_actor* self, world* shared, uint64_t seed,
                         std::vector<rmb_command> commands, std::vector<rmb_outcome>* outcomes) {
  using namespace std::chrono;
  auto now_us = [self] {
    return duration_cast<microseconds>(self->clock().now().time_since_epoch()).count();
  };
  for (size_t i = 0; i < commands.size(); ++i)
    self->delayed_send(self, microseconds(std::max<int64_t>(0, commands[i].at_us - now_us())),
                       tick_atom::value, static_cast<uint64_t>(i));
  return {
    [=](tick_atom, uint64_t i) {
      const auto& c = commands[i];
      auto record = [=](uint8_t code, std::string reason, std::string reply) {
        if (outcomes) outcomes->push_back({static_cast<size_t>(i), code, std::move(reason), std::move(reply), now_us()});
      };
      const auto* agent = c.from_node < shared->nodes.size() && shared->nodes[c.from_node].view.up
                              ? shared->nodes[c.from_node].service(services::rmb)
                              : nullptr;
      if (agent == nullptr) {
        record(255, "sender down", "");
        return;
      }
      auto key = [&](uint32_t node) {
        auto id = identity::derive_for_simulation(seed, node).public_key;
        return bytes(id.key.begin(), id.key.end());
      };
      self->request(*agent, seconds(120), rmb::rmb_send_atom::value, key(c.from_node), key(c.to_node),
                    c.command, bytes(c.data.begin(), c.data.end()), uint32_t{300})
          .then([=](uint8_t code, const std::string& reason, const bytes& reply) {
                  record(code, reason, std::string(reply.begin(), reply.end()));
                },
                [=](const caf::error&) { record(255, "no outcome", ""); });
    },
  };
}

}  // namespace

class simulation::impl : public event_sink {
public:
  explicit impl(simulation_options opts)
      : options(std::move(opts)), picker(mix_seed(options.seed, 0x7069636b)) {}

  simulation_options options;
  caf::actor_system_config config;
  std::unique_ptr<caf::actor_system> system;
  caf::scheduler::test_coordinator* scheduler = nullptr;
  std::unique_ptr<world> shared;
  caf::actor simnet;
  rng picker;
  std::string data_root;
  bool remove_data_root = false;
  caf::actor_clock::time_point epoch;
  // Scheduled node actions by virtual time; multimap keeps insertion order for equal times.
  std::multimap<int64_t, std::pair<node_action, uint32_t>> agenda;
  uint64_t jobs_run = 0;
  uint64_t timers_fired = 0;
  uint64_t crashes = 0;
  uint64_t restarts = 0;
  std::shared_ptr<const std::vector<node_id>> flood_nodes;  // benchmark workload only
  std::vector<node_id> agent_ids;  // every node's key, when agents start from contact lists
  // Raft runs.
  std::unique_ptr<raft_checker> checker;
  kv_history history;
  std::vector<caf::actor> clients;
  std::vector<node_id> raft_voters;
  rng churn_random{0};
  int64_t churn_removed = -1;
  void churn();
  // The reactive faults (fault_profile::nemesis): the replicas report to `watch`, which hands
  // everything to the checker and lets the nemesis look at the same stream.
  class replica_watch : public raft::observer {
  public:
    explicit replica_watch(impl* owner) : owner_(owner) {}
    void on_persisted(const node_id& node, uint32_t group, const raft::ready& r,
                      const raft::machine& m) override {
      owner_->checker->on_persisted(node, group, r, m);
      owner_->nemesis_watch(node, r, m);
    }
    void on_applied(const node_id& node, uint32_t group, const raft::entry& e,
                    uint64_t state_hash) override {
      owner_->checker->on_applied(node, group, e, state_hash);
    }
    void on_restored(const node_id& node, uint32_t group, raft::index_t applied,
                     uint64_t state_hash) override {
      owner_->checker->on_restored(node, group, applied, state_hash);
    }

  private:
    impl* owner_;
  };
  std::unique_ptr<replica_watch> watch;
  rng nemesis_random{0};
  std::vector<uint64_t> nemesis_first_commit;  // per node: the last term it committed in as leader
  void nemesis_watch(const node_id& node, const raft::ready& r, const raft::machine& m);
  void nemesis_crash(uint32_t index, int64_t restart_max_us);

  status setup();
  void run_until(int64_t until_us);
  int64_t now_ns() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               scheduler->clock().current_time - epoch)
        .count();
  }
  void deliver_due();
  void run_agenda_due();
  void boot(uint32_t index);
  void crash(uint32_t index);
  void deliver(in_flight message);
  void shutdown_all();
  void record(const node_event& event) override;
  std::string name_of(const node_id& id) const;
};

// ---- setup --------------------------------------------------------------------------------------

status simulation::impl::setup() {
  if (options.nodes == 0 || options.nodes > limits::sim_nodes_max)
    return {errc::invalid_argument,
            "--nodes must be between 1 and " + std::to_string(limits::sim_nodes_max)};
  // Seeds may be 0 only when agents start from contact lists (nothing needs to join).
  bool contact_lists = options.agents.swim && options.agents.contacts > 0;
  if ((options.seed_nodes == 0 && !contact_lists) || options.seed_nodes > options.nodes)
    return {errc::invalid_argument, "--seed-nodes must be between 1 and --nodes"};
  for (const auto& c : options.faults.crashes)
    if (c.node >= options.nodes)
      return {errc::invalid_argument, "crash names node " + std::to_string(c.node) +
                                          " but there are only " + std::to_string(options.nodes)};
  crypto_init();
  if (options.use_storage) {
    // Fail before the run, not in the middle of it: one descriptor per simulated LMDB store.
    rlimit files{};
    getrlimit(RLIMIT_NOFILE, &files);
    if (files.rlim_cur < options.nodes + 256)
      return {errc::unavailable, "simulated storage needs about " +
                                     std::to_string(options.nodes + 256) +
                                     " open files but the limit is " + std::to_string(files.rlim_cur) +
                                     " (raise ulimit -n or use --no-storage)"};
    if (options.data_directory.empty()) {
      // Simulated storage never needs the disk's durability (crashes are modelled by the store's
      // undo journal), so prefer memory-backed /dev/shm: creating thousands of environments on a
      // disk file system costs more than the whole simulation.
      const char* tmp = std::getenv("TMPDIR");
      std::string base = tmp && *tmp ? tmp : (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
      std::string pattern = base + "/cmesh-sim-XXXXXX";
      if (!mkdtemp(pattern.data()))
        return {errc::io_error, "cannot create a temporary folder from " + pattern};
      data_root = pattern;
      remove_data_root = !options.keep_data;
    } else {
      data_root = options.data_directory;
      std::error_code ec;
      std::filesystem::create_directories(data_root, ec);
      if (ec) return {errc::io_error, "cannot create " + data_root + ": " + ec.message()};
    }
  }
  config.set("scheduler.policy", caf::atom("testing"));
  config.set("logger.file-verbosity", caf::atom("quiet"));
  config.set("logger.console-verbosity", caf::atom("quiet"));
  system = std::make_unique<caf::actor_system>(config);
  scheduler = &dynamic_cast<caf::scheduler::test_coordinator&>(system->scheduler());
  epoch = scheduler->clock().current_time;
  shared = std::make_unique<world>(options.seed, options.faults, options.nodes);
  shared->nodes.resize(options.nodes);
  for (uint32_t i = 0; i < options.nodes; ++i) {
    auto& slot = shared->nodes[i];
    slot.view.address = sim_address(i);
    if (!data_root.empty()) slot.data_directory = data_root + "/node-" + std::to_string(i);
  }
  simnet = spawn_simnet(*system, shared.get());
  if (options.flood_in_flight > 0) {
    auto ids = std::make_shared<std::vector<node_id>>();
    for (uint32_t i = 0; i < options.nodes; ++i)
      ids->push_back(identity::derive_for_simulation(options.seed, i).public_key);
    flood_nodes = std::move(ids);
  }
  if (options.agents.swim) {
    if (auto s = swim::validate(options.agents.membership); !s.ok()) return s;
    if (options.agents.contacts > 0)
      for (uint32_t i = 0; i < options.nodes; ++i)
        agent_ids.push_back(identity::derive_for_simulation(options.seed, i).public_key);
  }
  if (options.raft.voters > 0) {
    if (options.raft.voters > options.nodes)
      return {errc::invalid_argument, "raft voters (" + std::to_string(options.raft.voters) +
                                          ") exceed the node count"};
    auto cfg = options.raft.config;
    if (auto s = raft::validate(cfg); !s.ok()) return s;
    for (uint32_t i = 0; i < options.raft.voters; ++i)
      raft_voters.push_back(identity::derive_for_simulation(options.seed, i).public_key);
    for (uint32_t i = 0; i < options.nodes; ++i)
      shared->index_of_node[identity::derive_for_simulation(options.seed, i).public_key] = i;
    checker = std::make_unique<raft_checker>([this](const node_id& id) { return name_of(id); },
                                             [this](std::string what) {
                                               shared->violation(std::move(what));
                                             });
    for (uint32_t c = 0; c < options.raft.clients; ++c) {
      kv_client_config cc;
      cc.id = c;
      cc.seed = mix_seed(options.seed, 0x636c69656e74 + c);
      cc.keys = options.raft.keys;
      cc.think_us = options.raft.client_think_us;
      cc.identity = identity::derive_for_simulation(options.seed, options.nodes + c).public_key;
      clients.push_back(spawn_kv_client(*system, shared.get(), &history, cc));
    }
    churn_random.reseed(mix_seed(options.seed, 0x636875726e));
    nemesis_random.reseed(mix_seed(options.seed, 0x6e656d65736973));
    watch = std::make_unique<replica_watch>(this);
    if (options.raft.churn_us > 0)
      agenda.emplace(options.raft.churn_us, std::make_pair(node_action::churn, 0u));
  }
  if (!options.agents.rmb_commands.empty()) {
    if (!options.agents.rmb) return {errc::invalid_argument, "RMB commands need agents.rmb"};
    for (const auto& c : options.agents.rmb_commands)
      if (c.from_node >= options.nodes || c.to_node >= options.nodes)
        return {errc::invalid_argument, "an RMB command names a node that does not exist"};
    clients.push_back(system->spawn(rmb_client, shared.get(), options.seed,
                                    options.agents.rmb_commands, options.agents.rmb_outcomes));
  }
  for (const auto& c : options.agents.reputation.claims)
    if (!options.agents.reputation.enabled || c.node >= options.nodes || c.subject >= options.nodes ||
        c.impersonated >= options.nodes)
      return {errc::invalid_argument,
              "a reputation claim names a node that does not exist or reputation is off"};
  if (!options.agents.cmtp_commands.empty()) {
    if (!options.agents.router) return {errc::invalid_argument, "CMTP commands need agents.router"};
    for (const auto& c : options.agents.cmtp_commands)
      if (c.node >= options.nodes)
        return {errc::invalid_argument, "a CMTP command names a node that does not exist"};
    clients.push_back(spawn_cmtp_client(*system, shared.get(), options.seed, options.agents.cmtp_commands,
                                        options.agents.cmtp_outcomes));
  }
  if (!options.agents.events_commands.empty()) {
    if (!options.agents.events) return {errc::invalid_argument, "events commands need agents.events"};
    for (const auto& c : options.agents.events_commands)
      if (c.node >= options.nodes)
        return {errc::invalid_argument, "an events command names a node that does not exist"};
    clients.push_back(spawn_events_client(*system, shared.get(), options.agents.events_commands,
                                          options.agents.events_outcomes));
  }
  // Node 0 starts first; the others join at seeded random times within the join spread.
  rng starts(mix_seed(options.seed, 0x7374617274));
  for (uint32_t i = 0; i < options.nodes; ++i) {
    int64_t at = i == 0 || options.join_spread_us <= 0
                     ? 0
                     : static_cast<int64_t>(starts.below(static_cast<uint64_t>(options.join_spread_us)));
    agenda.emplace(at, std::make_pair(node_action::start, i));
  }
  for (const auto& c : options.faults.crashes) agenda.emplace(c.at_us, std::make_pair(node_action::crash, c.node));
  return {};
}

// ---- node lifecycle -----------------------------------------------------------------------------

void simulation::impl::boot(uint32_t index) {
  auto& slot = shared->nodes[index];
  auto& view = slot.view;
  if (view.up) return;
  identity self = identity::derive_for_simulation(options.seed, index);
  if (options.use_storage) {
    store_options store_opts;
    store_opts.map_bytes = limits::store_map_bytes_sim;
    store_opts.durable = false;
    store_opts.simulate_crashes = true;
    auto opened = store::open(slot.data_directory, store_opts);
    if (!opened) {
      shared->violation("node " + std::to_string(index) + " cannot open its store: " +
                        opened.err().describe());
      return;
    }
    slot.storage = std::move(*opened);
    // The identity lives in the node's own storage: first boot writes it durably, a restart
    // reads it back (so a restarted node proves it kept its identity through its storage).
    auto meta = slot.storage->open_database(meta_database);
    auto reader = meta ? slot.storage->begin_read() : result<store::read_txn>(meta.err());
    auto stored = reader ? reader->get(*meta, identity_key) : result<std::optional<bytes>>(reader.err());
    if (stored && *stored && (*stored)->size() == 32) {
      std::array<uint8_t, 32> seed_bytes;
      std::copy((*stored)->begin(), (*stored)->end(), seed_bytes.begin());
      self = identity::from_seed(seed_bytes);
    } else if (meta) {
      auto txn = slot.storage->begin_write();
      status s = txn ? txn->put(*meta, identity_key,
                                std::string_view(reinterpret_cast<const char*>(self.seed.data()), 32))
                     : txn.err();
      if (s.ok()) s = txn->commit();
      if (s.ok()) s = slot.storage->sync();
      if (!s.ok()) shared->violation("node " + std::to_string(index) + " cannot store its identity: " + s.describe());
    }
  }
  if (view.started && self.public_key != view.id)
    shared->violation("node " + std::to_string(index) + " changed identity across a restart");
  view.id = self.public_key;
  view.started = true;
  view.up = true;
  ++view.incarnation;
  shared->index_of_node[view.id] = index;
  node_setup setup;
  setup.self = view.id;
  setup.listen_address = view.address;
  for (uint32_t s = 0; s < options.seed_nodes; ++s) setup.seeds.push_back({sim_address(s), node_id{}});
  setup.peer_config = options.peer_config;
  setup.rng_seed = mix_seed(options.seed, (uint64_t{index} << 20) + view.incarnation);
  setup.storage = slot.storage.get();
  setup.events = this;
  setup.bench_flood_nodes = flood_nodes;
  setup.bench_flood_in_flight = options.flood_in_flight;
  setup.bench_flood_payload_bytes = options.flood_payload_bytes;
  if (options.agents.swim) {
    swim_setup ss;
    ss.membership = options.agents.membership;
    ss.watcher = options.agents.watcher;
    if (index == 0) ss.broadcast_at_us = options.agents.broadcast_at_us;
    if (options.agents.contacts > 0 && options.nodes > 1) {
      // A seeded random sample of the others (distinct, not self).
      rng pick(mix_seed(options.seed, 0x636f6e74616374 + index));
      uint32_t want = std::min<uint32_t>(options.agents.contacts, options.nodes - 1);
      std::set<uint32_t> chosen;
      while (chosen.size() < want) {
        auto j = static_cast<uint32_t>(pick.below(options.nodes));
        if (j != index) chosen.insert(j);
      }
      for (auto j : chosen) {
        swim::member_record record;
        record.key = bytes(agent_ids[j].key.begin(), agent_ids[j].key.end());
        record.address = sim_address(j);
        ss.known.push_back(std::move(record));
      }
    }
    setup.swim = std::move(ss);
  }
  if (options.agents.gossip) {
    gossip_setup gs;
    gs.search = options.agents.search;
    gs.profile.category = "grocery";
    gs.profile.name = "n" + std::to_string(index % 100);
    if (options.agents.gossip_prefill)
      gs.prefill = [fill = options.agents.gossip_prefill, index](gossip::machine& m) { fill(index, m); };
    setup.gossip = std::move(gs);
  }
  if (options.agents.rmb) {
    rmb_setup bus;
    bus.twins.push_back(self);
    bus.observer = options.agents.rmb_observer;
    setup.rmb = std::move(bus);
  }
  if (options.agents.aggregator.enabled) {
    const auto& opts = options.agents.aggregator;
    aggregator_setup directory;
    directory.serve = index == 0;
    if (index != 0) {
      directory.register_self = true;
      directory.agent = self;
      directory.aggregator_address = sim_address(0);
      directory.aggregator_id = identity::derive_for_simulation(options.seed, 0).public_key;
      directory.tags = {"category:grocery", "name:n" + std::to_string(index % 3)};
      directory.client.ttl_s = opts.ttl_s;
    }
    for (const auto& [node, lookup] : opts.lookups)
      if (node == index) directory.lookups.push_back(lookup);
    directory.watcher = opts.watcher;
    setup.aggregator = std::move(directory);
  }
  if (options.agents.reputation.enabled) {
    reputation_setup rs;
    rs.signer = self;
    rs.observer = options.agents.reputation.watcher;
    for (const auto& c : options.agents.reputation.claims) {
      if (c.node != index) continue;
      reputation::scheduled_claim claim;
      claim.at_us = c.at_us;
      claim.what = c.what;
      claim.subject = identity::derive_for_simulation(options.seed, c.subject).public_key;
      claim.subject_address = sim_address(c.subject);
      claim.reason = c.reason;
      claim.impersonated = identity::derive_for_simulation(options.seed, c.impersonated).public_key;
      rs.claims.push_back(std::move(claim));
    }
    setup.reputation = std::move(rs);
  }
  if (options.agents.router) {
    router_setup rs;
    rs.signer = self;
    setup.router = std::move(rs);
  }
  if (options.agents.iam) {
    iam_setup is;
    is.signer = self;
    setup.iam = std::move(is);
  }
  if (options.agents.events) {
    events_setup es;
    es.observer = options.agents.events_observer;
    setup.events_bus = std::move(es);
  }
  if (index < options.raft.voters) {
    raft_setup rs;
    rs.voters = raft_voters;
    for (uint32_t v = 0; v < options.raft.voters; ++v) rs.addresses[raft_voters[v]] = sim_address(v);
    rs.config = options.raft.config;
    rs.snapshot_every = options.raft.snapshot_every;
    rs.observer = watch.get();
    setup.raft = std::move(rs);
  }
  slot.actors = spawn_node_services(*system, simnet, setup);
  for (const auto& actor : slot.actors) shared->set_node_of(actor.id(), index);
  shared->trace.add(mix64(0x5354415254 ^ (uint64_t{index} << 8) ^ view.incarnation));
}

void simulation::impl::crash(uint32_t index) {
  auto& slot = shared->nodes[index];
  if (!slot.view.up) return;
  slot.view.up = false;
  slot.view.raft_leader = false;
  ++crashes;
  // Kill the node's actors now: exit messages are urgent, so each actor's next activation
  // terminates it before it handles anything else.
  std::vector<caf::abstract_actor*> doomed;
  for (const auto& actor : slot.actors) {
    doomed.push_back(caf::actor_cast<caf::abstract_actor*>(actor));
    caf::anon_send_exit(actor, caf::exit_reason::kill);
  }
  scheduler->run_jobs_filtered([&](caf::resumable* job) {
    auto* actor = dynamic_cast<caf::abstract_actor*>(job);
    return std::find(doomed.begin(), doomed.end(), actor) != doomed.end();
  });
  for (const auto& actor : slot.actors) shared->forget_actor(actor.id());
  slot.actors.clear();
  slot.services.clear();
  slot.view.peers.clear();
  if (slot.storage) {
    slot.storage->simulate_crash();  // what the node had not synced is gone
    slot.storage.reset();
  }
  shared->trace.add(mix64(0x43524153480000 ^ (uint64_t{index} << 8) ^ slot.view.incarnation));
  for (const auto& c : options.faults.crashes)
    if (c.node == index && c.restart_after_us >= 0 && c.at_us <= shared->now_us &&
        shared->now_us < c.at_us + c.restart_after_us)
      agenda.emplace(c.at_us + c.restart_after_us, std::make_pair(node_action::restart, index));
}

// ---- the driver ---------------------------------------------------------------------------------

void simulation::impl::deliver(in_flight message) {
  auto& w = *shared;
  auto& target = w.nodes[message.to];
  uint64_t fate = 0;
  if (!target.view.up || target.view.incarnation != message.to_incarnation) {
    ++w.network.stats().to_dead_node;
    fate = 1;
  } else if (message.kind == flight_kind::data &&
             !w.network.link_open(w.now_us, message.from, message.to)) {
    ++w.network.stats().partitioned;  // the partition began while the message was in flight
    fate = 2;
  }
  uint64_t digest = message.kind == flight_kind::data
                        ? hash_bytes(message.payload.data(), message.payload.size())
                        : hash_bytes(message.address.data(), message.address.size());
  w.trace.add(mix64(static_cast<uint64_t>(w.now_us)) ^ (uint64_t{message.from} << 40) ^
              (uint64_t{message.to} << 16) ^ (uint64_t(message.kind) << 8) ^ fate ^
              (uint64_t{message.service} << 32) ^ digest);
  if (fate != 0) return;
  const auto& from_id = w.nodes[message.from].view.id;
  switch (message.kind) {
    case flight_kind::data:
      if (auto* service = target.service(message.service)) {
        ++w.network.stats().delivered;
        caf::anon_send(*service, deliver_atom::value, from_id, message.service,
                       std::move(message.payload));
      }
      break;
    case flight_kind::peer_up:
      for (const auto& [sid, actor] : target.services)
        caf::anon_send(actor, peer_up_atom::value, from_id, message.address);
      break;
    case flight_kind::dial_failed:
      for (const auto& [sid, actor] : target.services)
        caf::anon_send(actor, dial_failed_atom::value, message.address, message.reason);
      break;
  }
}

void simulation::impl::deliver_due() {
  auto& network = shared->network;
  while (!network.empty() && network.next_delivery_us() <= shared->now_us) deliver(network.pop());
}

void simulation::impl::run_agenda_due() {
  while (!agenda.empty() && agenda.begin()->first <= shared->now_us) {
    auto [action, index] = agenda.begin()->second;
    agenda.erase(agenda.begin());
    switch (action) {
      case node_action::start: boot(index); break;
      case node_action::crash: crash(index); break;
      case node_action::churn: churn(); break;
      case node_action::nemesis_crash_leader:
        nemesis_crash(index, options.faults.nemesis.leader_restart_max_us);
        break;
      case node_action::nemesis_crash_voter:
        nemesis_crash(index, options.faults.nemesis.vote_restart_max_us);
        break;
      case node_action::restart:
        if (shared->nodes[index].view.up) break;  // already restarted by hand
        ++restarts;
        ++shared->nodes[index].view.restarts;
        boot(index);
        break;
    }
  }
}

void simulation::impl::run_until(int64_t until_us) {
  until_us = std::min(until_us, options.duration_us);
  for (;;) {
    run_agenda_due();
    deliver_due();
    if (scheduler->has_job()) {
      // Seeded choice among runnable actors: the interleaving is part of what the seed fixes.
      auto& jobs = scheduler->jobs;
      auto pick = picker.below(jobs.size());
      if (pick != 0) std::swap(jobs[0], jobs[pick]);
      scheduler->run_once();
      ++jobs_run;
      continue;
    }
    // Idle: jump virtual time to the earliest of the next timer, delivery and node action.
    int64_t next_ns = INT64_MAX;
    const auto& timers = scheduler->clock().schedule();
    if (!timers.empty())
      next_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(timers.begin()->first - epoch).count();
    if (!shared->network.empty()) next_ns = std::min(next_ns, shared->network.next_delivery_us() * 1000);
    if (!agenda.empty()) next_ns = std::min(next_ns, agenda.begin()->first * 1000);
    int64_t now = now_ns();
    if (next_ns > until_us * 1000) {
      if (until_us * 1000 > now) scheduler->advance_time(std::chrono::nanoseconds(until_us * 1000 - now));
      shared->now_us = until_us;
      return;
    }
    if (next_ns > now) timers_fired += scheduler->advance_time(std::chrono::nanoseconds(next_ns - now));
    else if (!timers.empty() && next_ns <= now) timers_fired += scheduler->advance_time(std::chrono::nanoseconds(0));
    shared->now_us = now_ns() / 1000;
  }
}

// Membership changes during faults: remove a random voter, next time add it back. Sent to every
// live replica; only the leader accepts (the others answer "not the leader").
void simulation::impl::churn() {
  uint32_t voters = options.raft.voters;
  // Churn stops at 80% of the run (once a removed voter is back) so the group can settle.
  bool stopping = shared->now_us >= options.duration_us * 4 / 5;
  if (stopping && churn_removed < 0) return;
  agenda.emplace(shared->now_us + options.raft.churn_us, std::make_pair(node_action::churn, 0u));
  uint8_t change;
  uint32_t who;
  if (churn_removed >= 0) {
    change = static_cast<uint8_t>(raft::membership_change::add_voter);
    who = static_cast<uint32_t>(churn_removed);
    churn_removed = -1;
  } else {
    change = static_cast<uint8_t>(raft::membership_change::remove);
    who = static_cast<uint32_t>(churn_random.below(voters));
    churn_removed = who;
  }
  shared->trace.add(mix64(0x4348524e ^ (uint64_t{change} << 32) ^ who));
  for (uint32_t i = 0; i < voters; ++i) {
    const auto& slot = shared->nodes[i];
    if (!slot.view.up) continue;
    if (const auto* replica = slot.service(services::kv))
      caf::anon_send(*replica, kv::raft_admin_atom::value, change, raft_voters[who]);
  }
}

// The nemesis sees every ready a replica made durable. It runs inside the replica's flush, after
// the persist step; the messages are queued for the simulated network actor (a leader's appends
// possibly before the persist step), which has not taken any of them yet. A crash scheduled at the
// current instant runs as soon as that flush returns, before the network took them: they are
// dropped, as unsent data is in a real crash. One scheduled 1us later runs after they left.
void simulation::impl::nemesis_watch(const node_id& node, const raft::ready& r,
                                     const raft::machine& m) {
  const auto& n = options.faults.nemesis;
  if (!n.enabled() || shared->now_us < n.start_us || shared->now_us >= n.end_us) return;
  auto it = shared->index_of_node.find(node);
  if (it == shared->index_of_node.end()) return;
  uint32_t index = it->second;
  auto crash_at = [&](int64_t delay, node_action action) {
    agenda.emplace(shared->now_us + delay, std::make_pair(action, index));
  };
  bool became_leader = false;
  for (const auto& ev : r.events) became_leader |= ev.kind == "became_leader";
  if (became_leader && nemesis_random.chance(n.crash_new_leader)) {
    int64_t delay = 0;
    if (!nemesis_random.chance(1.0 / 3))
      delay = 1 + static_cast<int64_t>(nemesis_random.below(
                      static_cast<uint64_t>(std::max<int64_t>(1, n.leader_crash_delay_max_us))));
    crash_at(delay, node_action::nemesis_crash_leader);
  }
  if (m.current_role() == raft::role::leader && !r.committed.empty()) {
    if (nemesis_first_commit.size() <= index) nemesis_first_commit.resize(index + 1, 0);
    if (nemesis_first_commit[index] != m.term()) {
      nemesis_first_commit[index] = m.term();
      if (nemesis_random.chance(n.crash_after_first_commit))
        crash_at(0, node_action::nemesis_crash_leader);
    }
  }
  for (const auto& out : r.messages) {
    const auto* vote = std::get_if<raft::vote_response>(&out.message);
    if (!vote || !vote->granted || vote->pre_vote) continue;
    if (nemesis_random.chance(n.crash_after_vote)) crash_at(1, node_action::nemesis_crash_voter);
    break;
  }
}

void simulation::impl::nemesis_crash(uint32_t index, int64_t restart_max_us) {
  if (!shared->nodes[index].view.up) return;
  // Never take down more than a minority of the voters: the group must be able to go on.
  uint32_t down = 0;
  for (uint32_t i = 0; i < options.raft.voters; ++i) down += shared->nodes[i].view.up ? 0 : 1;
  if (index < options.raft.voters && down + 1 > (options.raft.voters - 1) / 2) return;
  crash(index);
  int64_t after = 1 + static_cast<int64_t>(nemesis_random.below(
                          static_cast<uint64_t>(std::max<int64_t>(1, restart_max_us))));
  agenda.emplace(shared->now_us + after, std::make_pair(node_action::restart, index));
}

void simulation::impl::shutdown_all() {
  if (!system) return;
  for (auto& client : clients) caf::anon_send_exit(client, caf::exit_reason::kill);
  clients.clear();
  for (auto& slot : shared->nodes) {
    for (const auto& actor : slot.actors) caf::anon_send_exit(actor, caf::exit_reason::kill);
    slot.actors.clear();
    slot.services.clear();
  }
  caf::anon_send_exit(simnet, caf::exit_reason::kill);
  simnet = nullptr;
  scheduler->run();
  system.reset();
  for (auto& slot : shared->nodes) slot.storage.reset();
}

// ---- events from the nodes' actors --------------------------------------------------------------

std::string simulation::impl::name_of(const node_id& id) const {
  auto it = shared->index_of_node.find(id);
  return it == shared->index_of_node.end() ? id.short_name() : "n" + std::to_string(it->second);
}

void simulation::impl::record(const node_event& event) {
  auto& w = *shared;
  auto it = w.index_of_node.find(event.node);
  if (it == w.index_of_node.end()) {
    w.violation("event from an unknown node " + event.node.short_name());
    return;
  }
  uint32_t index = it->second;
  auto& view = w.nodes[index].view;
  if (!view.up) w.violation("node " + std::to_string(index) + " reported '" + std::string(event.kind) + "' while down");
  if (event.kind == "peer_added") {
    if (event.peer == view.id) w.violation("node " + std::to_string(index) + " added itself as a peer");
    view.peers.insert(event.peer);
    if (view.peers.size() > options.peer_config.peer_table_max)
      w.violation("node " + std::to_string(index) + " holds more peers than peer_table_max");
  } else if (event.kind == "peer_removed") {
    view.peers.erase(event.peer);
  } else if (event.kind == "pong") {
    ++view.pongs;
  } else if (event.kind == "malformed") {
    ++view.malformed;
  } else if (event.service == "kv") {
    if (event.kind == "became_leader") {
      view.raft_leader = true;
      view.raft_term = static_cast<uint64_t>(event.value);
      view.raft_leader_since_us = w.now_us;
    } else if (event.kind == "became_follower" || event.kind == "became_candidate" ||
               event.kind == "became_pre_candidate") {
      view.raft_leader = false;
      view.raft_term = static_cast<uint64_t>(event.value);
    }
  }
  w.trace.add(hash_bytes(event.kind.data(), event.kind.size(), index) ^ event.peer.prefix64() ^
              static_cast<uint64_t>(event.value));
  if (options.verbose)
    std::printf("[%10.6fs] n%u %.*s %.*s %s %.*s\n", static_cast<double>(w.now_us) / 1e6, index,
                static_cast<int>(event.service.size()), event.service.data(),
                static_cast<int>(event.kind.size()), event.kind.data(),
                event.peer.is_zero() ? "-" : name_of(event.peer).c_str(),
                static_cast<int>(event.detail.size()), event.detail.data());
}

// ---- public face --------------------------------------------------------------------------------

simulation::simulation(std::unique_ptr<impl> state) : impl_(std::move(state)) {}

simulation::~simulation() {
  impl_->shutdown_all();
  if (impl_->remove_data_root) {
    std::error_code ec;
    std::filesystem::remove_all(impl_->data_root, ec);
  }
}

result<std::unique_ptr<simulation>> simulation::create(simulation_options options) {
  auto state = std::make_unique<impl>(std::move(options));
  if (auto s = state->setup(); !s.ok()) return s;
  return std::unique_ptr<simulation>(new simulation(std::move(state)));
}

void simulation::run_until(int64_t until_us) { impl_->run_until(until_us); }
bool simulation::finished() const { return impl_->shared->now_us >= impl_->options.duration_us; }
int64_t simulation::now_us() const { return impl_->shared->now_us; }
void simulation::crash(uint32_t node) { impl_->crash(node); }
void simulation::restart(uint32_t node) {
  if (impl_->shared->nodes.at(node).view.up) return;  // nothing to restart: keep the counts true
  ++impl_->restarts;
  ++impl_->shared->nodes.at(node).view.restarts;
  impl_->boot(node);
}
const node_view& simulation::view(uint32_t node) const { return impl_->shared->nodes.at(node).view; }
const simulation_options& simulation::options() const { return impl_->options; }

simulation_report simulation::report() const {
  const auto& w = *impl_->shared;
  simulation_report r;
  r.seed = impl_->options.seed;
  r.trace_hash = w.trace.value();
  r.trace_events = w.trace.events();
  r.virtual_us = w.now_us;
  r.jobs_run = impl_->jobs_run;
  r.timers_fired = impl_->timers_fired;
  r.crashes = impl_->crashes;
  r.restarts = impl_->restarts;
  r.network = w.network.stats();
  r.nodes = static_cast<uint32_t>(w.nodes.size());
  r.violations = w.violations;
  size_t total = 0;
  r.peers_min = SIZE_MAX;
  for (const auto& slot : w.nodes) {
    r.pongs += slot.view.pongs;
    r.malformed += slot.view.malformed;
    if (!slot.view.up) continue;
    ++r.nodes_up;
    total += slot.view.peers.size();
    r.peers_min = std::min(r.peers_min, slot.view.peers.size());
  }
  if (r.nodes_up == 0) r.peers_min = 0;
  r.peers_mean = r.nodes_up ? static_cast<double>(total) / r.nodes_up : 0;
  if (impl_->checker) {
    const auto& stats = impl_->checker->statistics();
    r.raft_leaders = stats.leaders_elected;
    r.raft_max_term = stats.max_term;
    r.raft_committed = stats.committed_max;
    const auto& h = impl_->history;
    for (const auto& op : h.operations) {
      if (op.result == kv_operation::outcome::ok) ++r.kv_ok;
      else if (op.result == kv_operation::outcome::failed) ++r.kv_failed;
      else ++r.kv_unknown;
    }
    r.kv_attempts = h.attempts;
    r.kv_redirects = h.redirects;
    auto verdict = check_linearizability(h.operations);
    r.linearizability_states = verdict.states_explored;
    r.linearizability_timed_out = verdict.timed_out;
    if (!verdict.linearizable)
      r.violations.push_back("linearizability: " + verdict.explanation);
  }
  return r;
}

std::string replay_command(const simulation_options& o) {
  std::string cmd = "cmesh sim --nodes " + std::to_string(o.nodes) + " --seed " +
                    std::to_string(o.seed) + " --duration " + format_duration_us(o.duration_us);
  if (o.seed_nodes != 1) cmd += " --seed-nodes " + std::to_string(o.seed_nodes);
  if (o.agents.swim) {
    cmd += " --agents";
    if (o.agents.contacts > 0) cmd += " --contacts " + std::to_string(o.agents.contacts);
    const swim::config defaults;
    if (o.agents.membership.member_table_max != defaults.member_table_max)
      cmd += " --swim-table-max " + std::to_string(o.agents.membership.member_table_max);
    if (o.agents.membership.retransmit_mult != defaults.retransmit_mult)
      cmd += " --swim-retransmit-mult " + std::to_string(o.agents.membership.retransmit_mult);
    if (o.agents.membership.rumor_retransmit_mult != defaults.rumor_retransmit_mult)
      cmd += " --swim-rumor-retransmit-mult " + std::to_string(o.agents.membership.rumor_retransmit_mult);
  }
  if (o.join_spread_us != 1'000'000) cmd += " --join-spread " + format_duration_us(o.join_spread_us);
  const auto& f = o.faults;
  auto number = [](double v) {
    // Shortest text that parses back to exactly v ("%g" kept only 6 digits: 0.1234567 -> 0.123457).
    char buffer[32];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
    return std::string(buffer, ec == std::errc{} ? end : buffer);
  };
  cmd += " --latency " + format_duration_us(f.latency.latency_us_median);
  cmd += " --latency-spread " + number(f.latency.latency_spread);
  if (f.loss > 0) cmd += " --loss " + number(f.loss);
  if (f.duplicate > 0) cmd += " --duplicate " + number(f.duplicate);
  if (f.reorder > 0) cmd += " --reorder " + number(f.reorder);
  for (const auto& p : f.partitions) {
    auto set = [](const std::vector<uint32_t>& nodes) {
      std::string out;
      for (size_t i = 0; i < nodes.size(); ++i) {
        size_t j = i;
        while (j + 1 < nodes.size() && nodes[j + 1] == nodes[j] + 1) ++j;
        if (!out.empty()) out += ",";
        out += std::to_string(nodes[i]);
        if (j > i) out += "-" + std::to_string(nodes[j]);
        i = j;
      }
      return out;
    };
    cmd += " --partition " + format_duration_us(p.start_us) + "-" + format_duration_us(p.end_us) +
           ":" + set(p.from_side);
    if (!p.to_side.empty()) cmd += (p.one_way ? ">" : "/") + set(p.to_side);
  }
  for (const auto& c : f.crashes) {
    cmd += " --crash " + std::to_string(c.node) + "@" + format_duration_us(c.at_us);
    if (c.restart_after_us >= 0) cmd += "+" + format_duration_us(c.restart_after_us);
  }
  for (const auto& z : f.freezes)
    cmd += " --freeze " + std::to_string(z.node) + "@" + format_duration_us(z.start_us) + "-" +
           format_duration_us(z.end_us);
  if (!o.use_storage) cmd += " --no-storage";
  if (o.raft.voters > 0) {
    const auto& rc = o.raft.config;
    cmd += " --raft " + std::to_string(o.raft.voters) + " --kv-clients " +
           std::to_string(o.raft.clients) + " --kv-keys " + std::to_string(o.raft.keys) +
           " --election-timeout " + format_duration_us(rc.election_timeout_min_us) + "-" +
           format_duration_us(rc.election_timeout_max_us) + " --heartbeat " +
           format_duration_us(rc.heartbeat_interval_us) + " --snapshot-every " +
           std::to_string(o.raft.snapshot_every);
    if (o.raft.client_think_us != 20'000) cmd += " --kv-think " + format_duration_us(o.raft.client_think_us);
    if (rc.max_entries_per_append != 256) cmd += " --raft-batch " + std::to_string(rc.max_entries_per_append);
    if (o.raft.churn_us > 0) cmd += " --churn " + format_duration_us(o.raft.churn_us);
    if (!rc.pre_vote) cmd += " --no-pre-vote";
    if (!rc.check_quorum) cmd += " --no-check-quorum";
    // The flag stands for standard_raft_nemesis over [1 s, 80% of the run), as `cmesh sim` sets it.
    if (f.nemesis.enabled()) cmd += " --raft-nemesis";
    if (rc.bug != raft::planted_bug::none)
      cmd += std::string(" --raft-planted-bug ") + raft::planted_bug_name(rc.bug);
  }
  if (o.flood_in_flight > 0)
    cmd += " --flood " + std::to_string(o.flood_in_flight) + " --flood-payload " +
           std::to_string(o.flood_payload_bytes);
  return cmd;
}

}  // namespace cmesh::sim
