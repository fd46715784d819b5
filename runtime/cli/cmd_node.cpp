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
#include "runtime/core/address.hpp"
#include "runtime/crypto/identity.hpp"
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
  spec.usage = "cmesh node [--listen HOST:PORT] [--join [DID@]HOST:PORT]... [--data DIR] [--identity FILE]";
  spec.options = {
      {"listen", "HOST:PORT", "address to listen on (port 0 = any free port)", "127.0.0.1:7001"},
      {"join", "[DID@]HOST:PORT", "seed address to join through; with DID@ the node refuses anyone but that identity there", "", true},
      {"data", "DIR", "data folder (LMDB store; default identity file)", "./cmesh-data"},
      {"identity", "FILE", "identity key file (must exist; create with 'cmesh id new FILE')", "DIR/identity.key, created if missing"},
      {"advertise", "HOST:PORT", "address peers should dial to reach this node", "the listen address"},
      {"status-interval", "T", "print a status line this often (0 = never)", "10s"},
      {"verbose", "", "log every event, including each pong", ""},
  };
  spec.epilog =
      "Example, three nodes on one machine:\n"
      "  cmesh node --listen 127.0.0.1:7001 --data n1\n"
      "  cmesh node --listen 127.0.0.1:7002 --data n2 --join 127.0.0.1:7001\n"
      "  cmesh node --listen 127.0.0.1:7003 --data n3 --join 127.0.0.1:7001\n"
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
};

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
  return o;
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
  auto storage = store::open(options->data_directory + "/store", store_options{});
  if (!storage) {
    std::fprintf(stderr, "cmesh node: %s\n", storage.err().describe().c_str());
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
    config.load<caf::io::middleman>();
    config.set("logger.file-verbosity", caf::atom("quiet"));
    config.set("logger.console-verbosity", caf::atom("quiet"));
    config.set("middleman.heartbeat-interval", caf::timespan{0});
    caf::actor_system system{config};

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
    uint64_t rng_seed = 0;
    randombytes_buf(&rng_seed, sizeof rng_seed);
    setup.rng_seed = rng_seed;
    setup.storage = storage->get();
    setup.events = &log;
    auto services = spawn_node_services(system, manager, setup);
    log.line("node " + self_identity->did() + " listening on " + advertised + " data " +
             options->data_directory + " seeds " + std::to_string(options->seeds.size()));

    caf::scoped_actor self{system};
    int sig = wait_for_signal(signals, options->status_interval_us, [&] {
      log.line("status " + ask_status(self, services.front()) + " " + ask_status(self, manager));
    });
    log.line(std::string("shutting down on ") + (sig == SIGINT ? "SIGINT" : "SIGTERM"));
    for (const auto& service : services) ask_shutdown(self, service);  // goodbyes, final persist
    ask_shutdown(self, manager);                                         // flush and close links
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    for (const auto& service : services) self->send_exit(service, caf::exit_reason::user_shutdown);
    self->send_exit(manager, caf::exit_reason::user_shutdown);
  }
  storage->reset();  // closes LMDB after every actor is gone
  log.line("stopped cleanly");
  return exit_code;
}

}  // namespace cmesh::cli
