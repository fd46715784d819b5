// cmesh bench transport: encrypted frames between two processes on loopback through the real
// transport (handshake, AEAD frames, manager and connection brokers) and the echo service.
// The client keeps `window` probes in flight and times each round trip.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <future>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <sodium.h>

#include "actors/bench/bench_actor.hpp"
#include "bench/bench_util.hpp"
#include "bench/commands.hpp"
#include "messages/bench_messages.hpp"
#include "messages/codec.hpp"
#include "messages/seam.hpp"
#include "runtime/cli/child_process.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/crypto/identity.hpp"
#include "runtime/net/transport.hpp"

namespace cmesh::bench {

namespace {

using clock_type = std::chrono::steady_clock;

struct run_result {
  double round_trips_per_second = 0;
  double p50_us = 0;
  double p99_us = 0;
};

struct driver_state {
  static inline const char* name = "cmesh.bench.driver";
  caf::actor transport;
  node_id self;
  node_id server;
  uint64_t warmup = 0;
  uint64_t total = 0;
  uint32_t window = 1;
  bytes padding;
  uint64_t sent = 0;
  uint64_t received = 0;
  std::vector<clock_type::time_point> sent_at;
  std::vector<double> rtt_us;
  clock_type::time_point measured_from;
  std::shared_ptr<std::promise<run_result>> done;
};

void send_probe(caf::stateful_actor<driver_state>* self) {
  auto& st = self->state;
  auto encoded = encode_message(st.self, 0, probe{st.sent, 0, st.padding});
  st.sent_at[st.sent] = clock_type::now();
  ++st.sent;
  self->send(st.transport, send_atom::value, st.server, services::bench, std::move(*encoded));
}

void begin(caf::stateful_actor<driver_state>* self) {
  auto& st = self->state;
  st.measured_from = clock_type::now();
  while (st.sent < st.total && st.sent < st.window) send_probe(self);
}

caf::behavior driver(caf::stateful_actor<driver_state>* self, driver_state init, bool dial,
                     std::string address) {
  self->state = std::move(init);
  auto& st = self->state;
  st.sent_at.resize(st.total);
  self->send(st.transport, register_atom::value, services::bench, caf::actor{self});
  if (dial) self->send(st.transport, dial_atom::value, address, st.server);
  else begin(self);
  return {
    [=](peer_up_atom, const node_id& peer, const std::string&) {
      if (peer == self->state.server && self->state.sent == 0) begin(self);
    },
    [=](deliver_atom, const node_id&, uint16_t, const bytes& data) {
      auto& s = self->state;
      auto env = decode_envelope(data.data(), data.size());
      if (!env) return;
      auto message = decode_payload<probe>(*env);
      if (!message || message->sequence >= s.total) return;
      auto now = clock_type::now();
      ++s.received;
      if (s.received == s.warmup) s.measured_from = now;
      if (s.received > s.warmup)
        s.rtt_us.push_back(std::chrono::duration<double, std::micro>(now - s.sent_at[message->sequence]).count());
      if (s.sent < s.total) send_probe(self);
      if (s.received == s.total) {
        double seconds = std::chrono::duration<double>(now - s.measured_from).count();
        run_result r;
        r.round_trips_per_second = static_cast<double>(s.total - s.warmup) / seconds;
        r.p50_us = percentile(s.rtt_us, 0.5);
        r.p99_us = percentile(s.rtt_us, 0.99);
        s.done->set_value(r);
        self->quit();
      }
    },
    [=](peer_down_atom, const node_id&) {},
    [=](dial_failed_atom, const std::string& where, const std::string& why) {
      std::fprintf(stderr, "cmesh bench transport: cannot reach the server at %s: %s\n", where.c_str(), why.c_str());
    },
  };
}

struct server_process {
  pid_t pid = -1;
  int output = -1;
  std::string address;
  node_id key;
};

bool start_server(server_process& server) {
  cli::child_process child;
  if (!cli::spawn_self({"bench", "transport-server"}, false, false, child)) return false;
  server.pid = child.pid;
  server.output = child.output_fd;
  std::string line;
  char c;
  pollfd p{server.output, POLLIN, 0};
  while (::poll(&p, 1, 10000) > 0 && ::read(server.output, &c, 1) == 1 && c != '\n') line += c;
  // "ready ADDRESS DID"
  auto first = line.find(' '), second = line.rfind(' ');
  if (line.rfind("ready ", 0) != 0 || first == second) return false;
  server.address = line.substr(first + 1, second - first - 1);
  auto key = node_id_from_did(line.substr(second + 1));
  if (!key) return false;
  server.key = *key;
  return true;
}

cli::command_spec spec() {
  cli::command_spec s;
  s.name = "cmesh bench transport";
  s.summary = "Real transport between two processes on loopback: encrypted round trips through the "
              "echo service; frames/s (two frames per round trip) and p50/p99 round-trip latency.";
  s.usage = "cmesh bench transport [--payloads 64,4096] [--windows 1,64] [--messages N] [--runs R]";
  s.options = {
      {"payloads", "LIST", "payload sizes in bytes", "64,4096"},
      {"windows", "LIST", "probes kept in flight (1 = unloaded latency)", "1,64"},
      {"messages", "N", "round trips per run at window > 1 (a quarter at window 1)", "40000"},
      {"runs", "R", "runs per configuration; medians are reported", "5"},
      {"out", "DIR", "folder for transport.csv", "./bench-results"},
  };
  return s;
}

std::vector<uint64_t> parse_list(const std::string& text) {
  std::vector<uint64_t> values;
  for (size_t pos = 0; pos < text.size();) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    values.push_back(std::strtoull(text.substr(pos, comma - pos).c_str(), nullptr, 10));
    pos = comma + 1;
  }
  return values;
}

}  // namespace

int run_transport_server(int, char**) {
  crypto_init();
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto id = identity::generate();
  caf::actor_system_config config;
  caf::actor_system system{configure_for_transport(config)};
  auto started = start_transport(system, loopback_transport(id));
  if (!started) {
    std::fprintf(stderr, "transport-server: %s\n", started.err().message.c_str());
    return cli::exit_failed;
  }
  auto [manager, port] = *started;
  auto echo = spawn_echo_actor(system, manager, id.public_key);
  std::printf("ready 127.0.0.1:%u %s\n", port, id.did().c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(manager, caf::exit_reason::user_shutdown);
  return cli::exit_ok;
}

int run_transport_bench(int argc, char** argv) {
  auto s = spec();
  int usage_code = 0;
  auto parsed = cli::parse_command_line(s, argc, argv, usage_code);
  if (!parsed) return usage_code;
  auto messages = cli::get_unsigned(*parsed, "messages", 40000, 100, 10'000'000);
  auto runs = cli::get_unsigned(*parsed, "runs", 5, 1, 100);
  if (!messages || !runs) {
    std::fprintf(stderr, "cmesh bench transport: %s\n", (!messages ? messages.err() : runs.err()).message.c_str());
    return cli::exit_usage;
  }
  auto payloads = parse_list(parsed->get("payloads", "64,4096"));
  auto windows = parse_list(parsed->get("windows", "1,64"));
  crypto_init();
  server_process server;
  if (!start_server(server)) {
    std::fprintf(stderr, "cmesh bench transport: the server process did not start\n");
    return cli::exit_failed;
  }
  auto id = identity::generate();
  int code = cli::exit_ok;
  {
    caf::actor_system_config config;
    caf::actor_system system{configure_for_transport(config)};
    auto started = start_transport(system, loopback_transport(id));
    if (!started) {
      std::fprintf(stderr, "cmesh bench transport: %s\n", started.err().message.c_str());
      ::kill(server.pid, SIGTERM);
      return cli::exit_failed;
    }
    auto manager = started->first;
    std::printf("%-8s %-7s %5s %14s %14s %10s %10s\n", "payload", "window", "runs", "round_trips/s",
                "frames/s", "p50_us", "p99_us");
    std::vector<std::string> rows;
    bool connected = false;
    for (auto payload : payloads) {
      for (auto window : windows) {
        std::vector<double> rate, p50, p99;
        uint64_t total = window > 1 ? *messages : std::max<uint64_t>(*messages / 4, 100);
        for (uint64_t r = 0; r < *runs; ++r) {
          driver_state init;
          init.transport = manager;
          init.self = id.public_key;
          init.server = server.key;
          init.total = total;
          init.warmup = total / 10;
          init.window = static_cast<uint32_t>(window);
          init.padding = bytes(payload, 0xa5);
          auto done = std::make_shared<std::promise<run_result>>();
          init.done = done;
          auto future = done->get_future();
          system.spawn(driver, std::move(init), !connected, server.address);
          if (future.wait_for(std::chrono::seconds(120)) != std::future_status::ready) {
            std::fprintf(stderr, "cmesh bench transport: run timed out\n");
            code = cli::exit_failed;
            break;
          }
          connected = true;
          auto result = future.get();
          rate.push_back(result.round_trips_per_second);
          p50.push_back(result.p50_us);
          p99.push_back(result.p99_us);
        }
        if (code != cli::exit_ok) break;
        double rt = median(rate);
        std::printf("%-8llu %-7llu %5llu %14.0f %14.0f %10.1f %10.1f\n", (unsigned long long)payload,
                    (unsigned long long)window, (unsigned long long)*runs, rt, 2 * rt, median(p50), median(p99));
        std::fflush(stdout);
        rows.push_back(format("%llu,%llu,%llu,%.0f,%.0f,%.1f,%.1f", (unsigned long long)payload,
                              (unsigned long long)window, (unsigned long long)*runs, rt, 2 * rt, median(p50),
                              median(p99)));
      }
    }
    write_csv(parsed->get("out", "./bench-results"), "transport",
              "payload_bytes,window,runs,round_trips_per_s,frames_per_s,p50_us,p99_us", rows);
    caf::anon_send_exit(manager, caf::exit_reason::user_shutdown);
  }
  ::kill(server.pid, SIGTERM);
  int status = 0;
  ::waitpid(server.pid, &status, 0);
  std::printf("csv: %s/transport.csv\n", parsed->get("out", "./bench-results").c_str());
  return code;
}

}  // namespace cmesh::bench
