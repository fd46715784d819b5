// cmesh node: run one node. Listens, joins seeds, keeps peers, serves until SIGINT/SIGTERM, then
// says goodbye to its peers, flushes its connections and closes its store.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <sodium.h>

#include "messages/seam.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/log_sink.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/core/mesh_clock.hpp"
#include "runtime/core/address.hpp"
#include "runtime/crypto/identity.hpp"
#include "runtime/crypto/jose.hpp"
#include "runtime/net/transport.hpp"
#include "runtime/node/node_services.hpp"
#include "runtime/store/store.hpp"
#include "sim/model/fault_profile.hpp"

namespace cmesh::cli {

namespace {

command_spec node_spec() {
  command_spec spec;
  spec.name = "cmesh node";
  spec.summary = "Run one cmesh node: listen for peers, join the mesh through seed addresses, keep a "
                 "peer table alive with pings, and serve until SIGINT or SIGTERM.";
  spec.usage = "cmesh node [--listen HOST:PORT] [--join [DID@]HOST:PORT]... [--data DIR] [--identity FILE]\n"
               "                  [--raft-member DID@HOST:PORT]...";
  spec.options = {
      {"listen", "HOST:PORT", "address to listen on (port 0 = any free port)", "127.0.0.1:7001"},
      {"join", "[DID@]HOST:PORT", "seed address to join through; with DID@ the node refuses anyone but that identity there", "", true},
      {"data", "DIR", "data folder (LMDB store; default identity file)", "./cmesh-data"},
      {"identity", "FILE", "identity key file (must exist; create with 'cmesh id new FILE')", "DIR/identity.key, created if missing"},
      {"advertise", "HOST:PORT", "address peers should dial to reach this node", "the listen address"},
      {"status-interval", "T", "print a status line this often (0 = never)", "10s"},
      {"verbose", "", "log every event, including each pong", ""},
      {"twin", "FILE", "also host this user identity (a key file from 'cmesh id new') as an RMB twin; other agents learn where it lives; repeatable", "", true},
      {"profile", "KEY=VALUE[,KEY=VALUE]", "tags this node publishes for gossip search (keys: category, subcategory, name, location, adjective); repeatable", "", true},
      {"aggregator", "", "serve an aggregator directory (tag -> agents; lookups with 'cmesh lookup')", ""},
      {"aggregator-at", "[DID@]HOST:PORT", "register this node's --profile at that aggregator and keep it listed with imAlives (can be this node)", ""},
      {"aggregator-ttl", "T", "how long the aggregator keeps this node listed without an imAlive (10s to 1h)", "120s"},
      {"iam-session-ttl", "T", "lifetime of the session tokens this node's IAM issues ('cmesh id session'; 1m to 24h, whole seconds)", "1h"},
      {"raft-member", "DID@HOST:PORT", "member of the replicated key/value group (Raft group 0); give every member, this node included, the same list on every member", "", true},
      {"election-timeout", "MIN-MAX", "Raft election timeout range (with --raft-member)", "150ms-300ms"},
      {"heartbeat", "T", "Raft heartbeat interval (with --raft-member)", "50ms"},
  };
  spec.epilog =
      "Example, three nodes on one machine:\n"
      "  cmesh node --listen 127.0.0.1:7001 --data n1\n"
      "  cmesh node --listen 127.0.0.1:7002 --data n2 --join 127.0.0.1:7001\n"
      "  cmesh node --listen 127.0.0.1:7003 --data n3 --join 127.0.0.1:7001\n"
      "Replicated key/value store and registrar: start each member with the same list of\n"
      "--raft-member DID@HOST:PORT (DIDs from 'cmesh id new FILE'), its own included; members are\n"
      "dialed like --join seeds. Then use 'cmesh kv' and 'cmesh name' against any member.\n"
      "Exit codes: 0 clean shutdown, 1 runtime failure (port in use, store), 2 bad usage or input\n"
      "(bad address, unreadable or world-readable key file, unwritable data folder).";
  return spec;
}

struct node_options {
  net_address listen;
  std::vector<seed_spec> seeds;
  std::string data_directory;
  std::string identity_path;
  bool identity_explicit = false;
  std::string advertise;
  int64_t status_interval_us = 10'000'000;
  bool verbose = false;
  std::vector<seed_spec> raft_members;  // pinned: DID@HOST:PORT
  gossip::search_tags profile;
  bool aggregator = false;
  std::optional<seed_spec> aggregator_at;
  uint32_t aggregator_ttl_s = aggregator::client_config{}.ttl_s;
  raft::config raft_config;
  std::vector<identity> twins;  // extra RMB twins (--twin)
  int64_t iam_session_ttl_s = iam::config{}.session_ttl_s;
};

// Bounds of --iam-session-ttl: under a minute a client spends its time on handshakes; over a day
// a stolen token lives too long.
constexpr int64_t iam_session_ttl_s_min = 60;
constexpr int64_t iam_session_ttl_s_max = 24 * 3600;

result<node_options> read_options(const parsed_options& p) {
  node_options o;
  auto listen = parse_net_address(p.get("listen", "127.0.0.1:7001"), true);
  if (!listen) return error{errc::invalid_argument, "--listen: " + listen.err().message};
  o.listen = *listen;
  for (const auto& text : p.all("join")) {
    auto seed = parse_seed_spec(text);
    if (!seed) return error{errc::invalid_argument, "--join: " + seed.err().message};
    o.seeds.push_back(*seed);
  }
  o.data_directory = p.get("data", "./cmesh-data");
  o.identity_explicit = p.has("identity");
  o.identity_path = p.get("identity", o.data_directory + "/identity.key");
  if (p.has("advertise")) {
    auto adv = parse_net_address(p.get("advertise"));
    if (!adv) return error{errc::invalid_argument, "--advertise: " + adv.err().message};
    o.advertise = adv->to_string();
  }
  auto interval = sim::parse_duration_us(p.get("status-interval", "10s"));
  if (!interval) return error{errc::invalid_argument, "--status-interval: " + interval.err().message};
  o.status_interval_us = *interval;
  o.verbose = p.has("verbose");
  for (const auto& path : p.all("twin")) {
    auto twin = read_identity_file(path);
    if (!twin) return error{errc::invalid_argument, "--twin " + path + ": " + twin.err().message};
    for (const auto& other : o.twins)
      if (other.public_key == twin->public_key)
        return error{errc::invalid_argument, "--twin " + path + ": the same identity is given twice"};
    o.twins.push_back(*twin);
  }
  std::vector<std::string> assignments;
  for (const auto& text : p.all("profile"))
    for (auto& item : split_list(text)) assignments.push_back(std::move(item));
  auto profile = gossip::parse_tag_assignments(assignments);
  if (!profile) return error{errc::invalid_argument, "--profile: " + profile.err().message};
  if (auto bad = gossip::validate_tags(*profile, gossip::config{}.tag_chars_max, false))
    return error{errc::invalid_argument, "--profile: " + bad.message};
  o.profile = *profile;
  o.aggregator = p.has("aggregator");
  if (p.has("aggregator-at")) {
    auto at = parse_seed_spec(p.get("aggregator-at"));
    if (!at) return error{errc::invalid_argument, "--aggregator-at: " + at.err().message};
    if (gossip::directory_tags(o.profile).empty())
      return error{errc::invalid_argument, "--aggregator-at needs a --profile to register"};
    o.aggregator_at = *at;
  }
  if (p.has("aggregator-ttl")) {
    if (!o.aggregator_at) return error{errc::invalid_argument, "--aggregator-ttl needs --aggregator-at"};
    auto ttl = sim::parse_duration_us(p.get("aggregator-ttl"));
    aggregator::config limits;
    if (!ttl || *ttl % 1'000'000 != 0 || *ttl / 1'000'000 < limits.ttl_s_min ||
        *ttl / 1'000'000 > limits.ttl_s_max)
      return error{errc::invalid_argument, "--aggregator-ttl: expected whole seconds from " +
                                               std::to_string(limits.ttl_s_min) + "s to " +
                                               std::to_string(limits.ttl_s_max) + "s"};
    o.aggregator_ttl_s = static_cast<uint32_t>(*ttl / 1'000'000);
  }
  if (p.has("iam-session-ttl")) {
    auto ttl = sim::parse_duration_us(p.get("iam-session-ttl"));
    if (!ttl || *ttl % 1'000'000 != 0 || *ttl / 1'000'000 < iam_session_ttl_s_min ||
        *ttl / 1'000'000 > iam_session_ttl_s_max)
      return error{errc::invalid_argument, "--iam-session-ttl: expected whole seconds from 60s to 24h"};
    o.iam_session_ttl_s = *ttl / 1'000'000;
  }
  for (const auto& text : p.all("raft-member")) {
    auto member = parse_seed_spec(text);
    if (!member) return error{errc::invalid_argument, "--raft-member: " + member.err().message};
    if (member->pinned.is_zero())
      return error{errc::invalid_argument,
                   "--raft-member: '" + text + "' has no identity: expected DID@HOST:PORT"};
    for (const auto& other : o.raft_members)
      if (other.pinned == member->pinned)
        return error{errc::invalid_argument, "--raft-member: " + did_from_node_id(member->pinned) +
                                                 " is given more than once"};
    o.raft_members.push_back(*member);
  }
  if (o.raft_members.empty() && (p.has("election-timeout") || p.has("heartbeat")))
    return error{errc::invalid_argument, "--election-timeout and --heartbeat need --raft-member"};
  if (p.has("election-timeout")) {
    auto range = p.get("election-timeout");
    auto dash = range.find('-');
    if (dash == std::string::npos)
      return error{errc::invalid_argument, "--election-timeout: expected MIN-MAX, e.g. 150ms-300ms"};
    auto lo = sim::parse_duration_us(range.substr(0, dash));
    auto hi = sim::parse_duration_us(range.substr(dash + 1));
    if (!lo || !hi)
      return error{errc::invalid_argument, "--election-timeout: '" + range + "' is not MIN-MAX"};
    o.raft_config.election_timeout_min_us = *lo;
    o.raft_config.election_timeout_max_us = *hi;
  }
  if (p.has("heartbeat")) {
    auto heartbeat = sim::parse_duration_us(p.get("heartbeat"));
    if (!heartbeat) return error{errc::invalid_argument, "--heartbeat: " + heartbeat.err().message};
    o.raft_config.heartbeat_interval_us = *heartbeat;
  }
  if (!o.raft_members.empty())
    if (auto s = raft::validate(o.raft_config); !s.ok())
      return error{errc::invalid_argument, "Raft timing: " + s.message};
  return o;
}

// The Raft group of --raft-member: every member a voter, snapshots every 10,000 entries.
// The node's own identity must be one of the members.
result<raft_setup> raft_setup_for(const node_options& o, const node_id& self) {
  raft_setup rs;
  rs.group = 0;
  rs.config = o.raft_config;
  rs.snapshot_every = 10'000;
  bool self_listed = false;
  for (const auto& m : o.raft_members) {
    rs.voters.push_back(m.pinned);
    rs.addresses[m.pinned] = m.address;
    if (m.pinned == self) self_listed = true;
  }
  if (!self_listed)
    return error{errc::invalid_argument,
                 "--raft-member: this node's identity " + did_from_node_id(self) +
                     " is not one of the members; list every member, this node included"};
  return rs;
}

// The data folder must exist (we create it) and be writable by us.
status prepare_data_directory(const std::string& directory) {
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  if (ec) return {errc::permission_denied, "cannot create data folder " + directory + ": " + ec.message()};
  std::string probe = directory + "/.write-test";
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    return {errc::permission_denied, "data folder " + directory + " is not writable: " + std::strerror(errno)};
  ::close(fd);
  ::unlink(probe.c_str());
  return {};
}

result<identity> load_identity(const node_options& o, log_sink& log) {
  auto loaded = read_identity_file(o.identity_path);
  if (loaded) return loaded;
  if (loaded.err().code == errc::not_found && o.identity_explicit)
    return error{errc::not_found, loaded.err().message + " (create one with: cmesh id new " +
                                      o.identity_path + ")"};
  if (loaded.err().code != errc::not_found) return loaded.err();
  auto fresh = identity::generate();
  if (auto s = write_identity_file(o.identity_path, fresh); !s.ok()) return s;
  log.line("created identity " + fresh.did() + " in " + o.identity_path);
  return fresh;
}

int wait_for_signal(const sigset_t& signals, int64_t status_interval_us,
                    const std::function<void()>& on_status) {
  for (;;) {
    timespec timeout{};
    int64_t wait_us = status_interval_us > 0 ? status_interval_us : 3'600'000'000;
    timeout.tv_sec = wait_us / 1'000'000;
    timeout.tv_nsec = (wait_us % 1'000'000) * 1000;
    int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig > 0) return sig;
    if (errno == EAGAIN && status_interval_us > 0) on_status();
  }
}


std::string ask_status(caf::scoped_actor& self, const caf::actor& whom) {
  std::string answer = "?";
  self->request(whom, std::chrono::seconds(2), status_atom::value)
      .receive([&](const std::string& text) { answer = text; },
               [&](const caf::error&) { answer = "no answer"; });
  return answer;
}

void ask_shutdown(caf::scoped_actor& self, const caf::actor& whom) {
  self->request(whom, std::chrono::seconds(2), shutdown_atom::value)
      .receive([](caf::atom_value) {}, [](const caf::error&) {});
}

}  // namespace

int run_node(int argc, char** argv) {
  auto spec = node_spec();
  int usage_code = 0;
  auto parsed = parse_command_line(spec, argc, argv, usage_code);
  if (!parsed) return usage_code;
  auto options = read_options(*parsed);
  if (!options) {
    std::fprintf(stderr, "cmesh node: %s\n", options.err().message.c_str());
    return exit_usage;
  }
  crypto_init();
  log_sink log(options->verbose);
  if (auto s = prepare_data_directory(options->data_directory); !s.ok()) {
    std::fprintf(stderr, "cmesh node: %s\n", s.message.c_str());
    return exit_usage;
  }
  auto self_identity = load_identity(*options, log);
  if (!self_identity) {
    std::fprintf(stderr, "cmesh node: %s\n", self_identity.err().describe().c_str());
    return exit_usage;
  }
  std::optional<raft_setup> raft_group;
  if (!options->raft_members.empty()) {
    auto rs = raft_setup_for(*options, self_identity->public_key);
    if (!rs) {
      std::fprintf(stderr, "cmesh node: %s\n", rs.err().message.c_str());
      return exit_usage;
    }
    raft_group = std::move(*rs);
  }
  auto storage = store::open(options->data_directory + "/store", store_options{});
  if (!storage) {
    std::fprintf(stderr, "cmesh node: %s\n", storage.err().describe().c_str());
    return exit_failed;
  }
  // The Raft replica gets an LMDB environment of its own: LMDB allows one write transaction per
  // environment, and the replica (fsync per flush) and the peer service run on different
  // scheduler threads. Its own environment also keeps its fsyncs from waiting on the other's.
  std::unique_ptr<store> raft_storage;
  if (raft_group) {
    auto opened = store::open(options->data_directory + "/raft", store_options{});
    if (!opened) {
      std::fprintf(stderr, "cmesh node: %s\n", opened.err().describe().c_str());
      return exit_failed;
    }
    raft_storage = std::move(*opened);
  }
  // The RMB agent too (its own environment for the same reason).
  auto rmb_storage = store::open(options->data_directory + "/rmb", store_options{});
  if (!rmb_storage) {
    std::fprintf(stderr, "cmesh node: %s\n", rmb_storage.err().describe().c_str());
    return exit_failed;
  }
  // And the IAM, whose revocations must survive a restart.
  auto iam_storage = store::open(options->data_directory + "/iam", store_options{});
  if (!iam_storage) {
    std::fprintf(stderr, "cmesh node: %s\n", iam_storage.err().describe().c_str());
    return exit_failed;
  }

  // Block the shutdown signals before CAF starts its threads, so only sigtimedwait sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  int exit_code = exit_ok;
  {
    caf::actor_system_config config;
    // The router gets a thread of its own (below), but the scheduler keeps a worker per core: a
    // node also runs the network multiplexer, and the kv replica's fsync holds a worker while it
    // syncs, so the other actors need a second one.
    caf::actor_system system{configure_for_transport(config)};

    transport_config transport_cfg;
    transport_cfg.self = self_identity->public_key;
    transport_cfg.secret_key = self_identity->secret_key;
    transport_cfg.listen_host = options->listen.host;
    transport_cfg.listen_port = options->listen.port;
    transport_cfg.advertised_address = options->advertise;
    transport_cfg.events = &log;
    transport_cfg.jitter_seed = randombytes_random();
    auto transport = start_transport(system, transport_cfg);
    if (!transport) {
      std::fprintf(stderr, "cmesh node: %s\n", transport.err().message.c_str());
      return exit_failed;
    }
    auto [manager, port] = *transport;
    std::string advertised = options->advertise.empty()
                                 ? net_address{options->listen.host, port}.to_string()
                                 : options->advertise;
    node_setup setup;
    setup.self = self_identity->public_key;
    setup.listen_address = advertised;
    for (const auto& s : options->seeds) setup.seeds.push_back({s.address, s.pinned});
    // The other Raft members are seeds too, so the peer mesh includes the whole group (the
    // replica reaches them through the transport's address book either way).
    if (raft_group)
      for (const auto& m : options->raft_members) {
        if (m.pinned == self_identity->public_key) continue;
        bool joined = false;
        for (const auto& s : setup.seeds) joined = joined || s.address == m.address;
        if (!joined) setup.seeds.push_back({m.address, m.pinned});
      }
    setup.raft = raft_group;
    uint64_t rng_seed = 0;
    randombytes_buf(&rng_seed, sizeof rng_seed);
    setup.rng_seed = rng_seed;
    setup.storage = storage->get();
    setup.raft_storage = raft_storage.get();
    setup.rmb_storage = rmb_storage->get();
    setup.iam_storage = iam_storage->get();
    setup.client_sessions_required = true;
    rmb_setup bus;
    bus.twins.push_back(*self_identity);  // the node's own identity is its first twin
    for (const auto& twin : options->twins)
      if (twin.public_key != self_identity->public_key) bus.twins.push_back(twin);
    bus.epoch_offset_us = mesh_epoch_offset_us();
    setup.rmb = std::move(bus);
    setup.swim = swim_setup{};
    gossip_setup search;
    search.profile = options->profile;
    setup.gossip = std::move(search);
    {
      // Always there, idle unless serving or registering: a lookup sent to a node that serves no
      // directory is answered not_served instead of timing out.
      aggregator_setup directory;
      directory.serve = options->aggregator;
      if (options->aggregator_at) {
        directory.register_self = true;
        directory.agent = *self_identity;
        directory.aggregator_address = options->aggregator_at->address;
        directory.aggregator_id = options->aggregator_at->pinned;
        directory.tags = gossip::directory_tags(options->profile);
        directory.client.ttl_s = options->aggregator_ttl_s;
      }
      directory.epoch_offset_us = mesh_epoch_offset_us();
      setup.aggregator = std::move(directory);
    }
    setup.events_bus = events_setup{};  // the events bus: always on, idle costs one digest/s/peer
    reputation_setup standing;            // reputation: always on, idle until claims arrive
    standing.signer = *self_identity;
    standing.epoch_offset_us = mesh_epoch_offset_us();
    setup.reputation = std::move(standing);
    router_setup routing;  // CMTP: the clients' front door (cmesh call)
    routing.signer = *self_identity;
    routing.epoch_offset_us = mesh_epoch_offset_us();
    routing.own_thread = true;
    setup.router = std::move(routing);
    iam_setup identity_service;           // IAM: always on (handshake, session tokens)
    identity_service.signer = *self_identity;
    identity_service.iam.session_ttl_s = options->iam_session_ttl_s;
    identity_service.random = jose::secure_random_source();
    identity_service.epoch_offset_us = mesh_epoch_offset_us();
    setup.iam = std::move(identity_service);
    setup.events = &log;
    auto services = spawn_node_services(system, manager, setup);
    log.line("node " + self_identity->did() + " listening on " + advertised + " data " +
             options->data_directory + " seeds " + std::to_string(setup.seeds.size()));
    if (raft_group && raft_group->addresses[setup.self] != advertised)
      log.line("warning: this node's --raft-member address " + raft_group->addresses[setup.self] +
               " differs from its address " + advertised + "; the other members dial the former");
    if (raft_group)
      log.line("kv replica of Raft group 0 with " + std::to_string(raft_group->voters.size()) +
               " members (election timeout " +
               std::to_string(raft_group->config.election_timeout_min_us / 1000) + "-" +
               std::to_string(raft_group->config.election_timeout_max_us / 1000) + "ms, heartbeat " +
               std::to_string(raft_group->config.heartbeat_interval_us / 1000) + "ms)");

    caf::scoped_actor self{system};
    int sig = wait_for_signal(signals, options->status_interval_us, [&] {
      std::string line = "status ";
      line += ask_status(self, services.front());
      line += ' ';
      line += ask_status(self, manager);
      for (size_t i = 1; i < services.size(); ++i) {
        line += ' ';
        line += ask_status(self, services[i]);
      }
      log.line(line);
    });
    log.line(std::string("shutting down on ") + (sig == SIGINT ? "SIGINT" : "SIGTERM"));
    for (const auto& service : services) ask_shutdown(self, service);  // goodbyes, final persist
    ask_shutdown(self, manager);                                         // flush and close links
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    for (const auto& service : services) self->send_exit(service, caf::exit_reason::user_shutdown);
    self->send_exit(manager, caf::exit_reason::user_shutdown);
  }
  raft_storage.reset();
  rmb_storage->reset();
  iam_storage->reset();
  storage->reset();  // closes LMDB after every actor is gone
  log.line("stopped cleanly");
  return exit_code;
}

}  // namespace cmesh::cli
