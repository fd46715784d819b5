// The real half of `cmesh bench gossip`: rumor dissemination through the imAlive membership
// layer (actors/swim) across N node processes on loopback, and the same fan-out through
// nats-server (bench/nats_fanout) in the same run.
//
// Each node is a child process (`cmesh bench gossip-node`): the real transport and the node's
// service actors (peer service and swim, exactly as `cmesh node` runs them), plus a swim observer
// that timestamps the first copy of every rumor. Node 0 starts first and writes its port; the
// others join through it. Every node waits until it sees all the others, then, from a start time
// the parent chose (CLOCK_MONOTONIC, which every process on the machine shares), publishes its
// share of an open-loop schedule: rumor k is due at start + k / rate and is published by node
// k mod N, with its publish time in the payload. Two phases, like the NATS side:
//   latency     `rate` rumors per second for `seconds`: time to full coverage of a rumor is the
//               latest first receipt among the other N - 1 nodes minus its publish time;
//   throughput  `throughput_rate` offered per second for `seconds`: rumors that reached all other
//               nodes, per second of the phase plus its drain.
// Each node writes what it sent and received to a file; the parent joins the files.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/swim/swim_actor.hpp"
#include "bench/bench_util.hpp"
#include "bench/commands.hpp"
#include "bench/gossip_real.hpp"
#include "messages/seam.hpp"
#include "runtime/cli/child_process.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/crypto/identity.hpp"
#include "runtime/net/transport.hpp"
#include "runtime/node/node_services.hpp"

namespace cmesh::bench {

namespace {

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void sleep_until_ns(int64_t t) {
  int64_t now = monotonic_ns();
  if (t > now) std::this_thread::sleep_for(std::chrono::nanoseconds(t - now));
}

// Rumor ids: phase in bit 62, publishing node in bits 40..47, sequence below.
constexpr uint64_t throughput_bit = uint64_t{1} << 62;
uint64_t rumor_id(bool throughput, uint64_t node, uint64_t seq) {
  return (throughput ? throughput_bit : 0) | (node << 40) | seq;
}

struct receipts : swim::observer {
  std::mutex lock;
  std::map<uint64_t, int64_t> first_ns;  // rumor id -> receipt - publish (ns)
  void on_event(const node_id&, const swim::event& e, int64_t) override {
    if (e.kind != swim::event_kind::rumor_received || e.payload.size() < 8) return;
    int64_t now = monotonic_ns();
    int64_t sent = 0;
    std::memcpy(&sent, e.payload.data(), 8);
    std::lock_guard<std::mutex> guard(lock);
    first_ns.emplace(e.rumor_id, now - sent);
  }
  void on_sent(const node_id&, size_t, bool, int64_t) override {}
};

cli::command_spec node_spec() {
  cli::command_spec s;
  s.name = "cmesh bench gossip-node";
  s.summary = "One node of the real dissemination benchmark (started by cmesh bench gossip).";
  s.usage = "cmesh bench gossip-node --index I --nodes N --dir DIR --start-ns T [options]";
  s.options = {{"index", "I", "this node's index (0 writes its port to DIR/port)", ""},
               {"nodes", "N", "nodes in the run", "5"},
               {"dir", "DIR", "shared folder (port file, results)", ""},
               {"start-ns", "T", "CLOCK_MONOTONIC time of the first publish", ""},
               {"rate", "R", "latency phase: rumors per second over all nodes", "100"},
               {"throughput-rate", "R", "throughput phase: rumors offered per second over all nodes", "2000"},
               {"seconds", "S", "length of each phase", "3"},
               {"gossip-interval-us", "US", "swim gossip interval", "200000"},
               {"eager-fanout", "K", "swim eager push fanout for rumors", "0"}};
  return s;
}

}  // namespace

int run_gossip_node(int argc, char** argv) {
  auto s = node_spec();
  int usage_code = 0;
  auto parsed = cli::parse_command_line(s, argc, argv, usage_code);
  if (!parsed) return usage_code;
  auto index = cli::get_unsigned(*parsed, "index", 0, 0, 63);
  auto nodes = cli::get_unsigned(*parsed, "nodes", 5, 2, 64);
  auto rate = cli::get_unsigned(*parsed, "rate", 100, 1, 1'000'000);
  auto throughput_rate = cli::get_unsigned(*parsed, "throughput-rate", 2000, 1, 10'000'000);
  auto seconds = cli::get_unsigned(*parsed, "seconds", 3, 1, 600);
  auto interval = cli::get_unsigned(*parsed, "gossip-interval-us", 200'000, 1000, 10'000'000);
  auto eager = cli::get_unsigned(*parsed, "eager-fanout", 0, 0, swim::gossip_fanout_max);
  std::string dir = parsed->get("dir", "");
  int64_t start_ns = std::atoll(parsed->get("start-ns", "0").c_str());
  if (!index || !nodes || !rate || !throughput_rate || !seconds || !interval || !eager || dir.empty() ||
      start_ns <= 0) {
    std::fprintf(stderr, "cmesh bench gossip-node: bad arguments\n");
    return cli::exit_usage;
  }
  crypto_init();
  auto id = identity::generate();
  caf::actor_system_config config;
  caf::actor_system system{configure_for_transport(config)};
  auto started = start_transport(system, loopback_transport(id));
  if (!started) {
    std::fprintf(stderr, "gossip-node %llu: %s\n", static_cast<unsigned long long>(*index),
                 started.err().message.c_str());
    return cli::exit_failed;
  }
  auto [manager, port] = *started;
  std::string address = "127.0.0.1:" + std::to_string(port);
  std::string port_file = dir + "/port";
  if (*index == 0) {
    std::ofstream(port_file + ".tmp") << address << "\n";
    std::filesystem::rename(port_file + ".tmp", port_file);
  }
  std::string seed;
  for (int tries = 0; *index != 0 && seed.empty() && tries < 500; ++tries) {
    std::ifstream in(port_file);
    if (!(in >> seed)) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  receipts watcher;
  node_setup setup;
  setup.self = id.public_key;
  setup.listen_address = address;
  if (!seed.empty()) setup.seeds.push_back({seed, node_id{}});
  setup.rng_seed = mix_seed(static_cast<uint64_t>(start_ns), *index);
  swim_setup membership;
  membership.membership.gossip_interval_us = static_cast<int64_t>(*interval);
  membership.membership.eager_fanout = static_cast<uint32_t>(*eager);
  membership.watcher = &watcher;
  setup.swim = membership;
  auto services = spawn_node_services(system, manager, setup);
  caf::actor swim_actor = services.back();

  // Wait for the whole membership (bounded by the start time).
  {
    caf::scoped_actor self{system};
    size_t seen = 0;
    while (monotonic_ns() < start_ns - 100'000'000 && seen + 1 < *nodes) {
      self->request(swim_actor, std::chrono::seconds(1), swim::swim_members_atom::value)
          .receive([&](const std::vector<std::string>& lines) { seen = lines.size(); },
                   [&](const caf::error&) {});
      if (seen + 1 < *nodes) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (seen + 1 < *nodes)
      std::fprintf(stderr, "gossip-node %llu: only %zu of %llu other nodes known at the start\n",
                   static_cast<unsigned long long>(*index), seen,
                   static_cast<unsigned long long>(*nodes - 1));
  }

  // Publish this node's share of both open-loop schedules.
  std::vector<uint64_t> sent;
  auto publish_phase = [&](bool throughput, int64_t phase_start, uint64_t per_second) {
    uint64_t total = per_second * *seconds;
    for (uint64_t k = *index; k < total; k += *nodes) {
      sleep_until_ns(phase_start + static_cast<int64_t>(k * 1'000'000'000 / per_second));
      bytes payload(64, 0x42);
      int64_t now = monotonic_ns();
      std::memcpy(payload.data(), &now, 8);
      uint64_t rid = rumor_id(throughput, *index, k);
      caf::anon_send(swim_actor, swim::swim_rumor_atom::value, rid, payload);
      sent.push_back(rid);
    }
  };
  const int64_t drain_ns = 2'000'000'000;
  const int64_t phase_ns = static_cast<int64_t>(*seconds) * 1'000'000'000;
  publish_phase(false, start_ns, *rate);
  int64_t throughput_start = start_ns + phase_ns + drain_ns;
  publish_phase(true, throughput_start, *throughput_rate);
  sleep_until_ns(throughput_start + phase_ns + drain_ns);

  std::ofstream out(dir + "/node-" + std::to_string(*index) + ".txt");
  {
    std::lock_guard<std::mutex> guard(watcher.lock);
    for (auto rid : sent) out << "S " << rid << "\n";
    for (const auto& [rid, latency] : watcher.first_ns) out << "R " << rid << " " << latency << "\n";
  }
  out.close();
  for (const auto& service : services) caf::anon_send_exit(service, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(manager, caf::exit_reason::user_shutdown);
  std::fflush(stdout);
  ::_exit(cli::exit_ok);  // skip the actor system's teardown (connections still open)
}

std::optional<real_dissemination> run_real_dissemination(const real_options& options,
                                                         std::string& error) {
  std::string dir = (std::filesystem::temp_directory_path() /
                     ("cmesh-gossip-real-" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const int64_t start_ns = monotonic_ns() + options.warmup_ms * 1'000'000;
  std::vector<pid_t> children;
  for (int i = 0; i < options.nodes; ++i) {
    std::vector<std::string> args = {
        "bench", "gossip-node", "--index", std::to_string(i), "--nodes", std::to_string(options.nodes),
        "--dir", dir, "--start-ns", std::to_string(start_ns), "--rate",
        std::to_string(options.rate), "--throughput-rate", std::to_string(options.throughput_rate),
        "--seconds", std::to_string(options.seconds), "--gossip-interval-us",
        std::to_string(options.gossip_interval_us), "--eager-fanout",
        std::to_string(options.eager_fanout)};
    children.push_back(cli::spawn_logged("/proc/self/exe", args, dir + "/node-" + std::to_string(i) + ".log"));
    if (i == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  bool failed = false;
  for (size_t i = 0; i < children.size(); ++i) {
    int status = 0;
    if (children[i] <= 0 || ::waitpid(children[i], &status, 0) < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      failed = true;
      std::ifstream log(dir + "/node-" + std::to_string(i) + ".log");
      std::stringstream text;
      text << log.rdbuf();
      error = "node " + std::to_string(i) + " failed: " + text.str();
    }
  }
  if (failed) return std::nullopt;

  std::map<uint64_t, std::pair<int, int64_t>> coverage;  // id -> (receivers, latest latency)
  std::set<uint64_t> published;
  for (int i = 0; i < options.nodes; ++i) {
    std::ifstream in(dir + "/node-" + std::to_string(i) + ".txt");
    std::string kind;
    uint64_t rid = 0;
    while (in >> kind >> rid) {
      if (kind == "S") {
        published.insert(rid);
      } else {
        int64_t latency = 0;
        in >> latency;
        auto& c = coverage[rid];
        ++c.first;
        c.second = std::max(c.second, latency);
      }
    }
  }
  real_dissemination result;
  std::vector<double> latencies_ms;
  uint64_t throughput_complete = 0;
  for (auto rid : published) {
    bool throughput = (rid & throughput_bit) != 0;
    auto it = coverage.find(rid);
    bool complete = it != coverage.end() && it->second.first >= options.nodes - 1;
    if (throughput) {
      ++result.throughput_sent;
      if (complete) ++throughput_complete;
    } else {
      ++result.sent;
      if (complete) latencies_ms.push_back(it->second.second / 1e6);
      else ++result.incomplete;
    }
  }
  result.throughput_incomplete = result.throughput_sent - throughput_complete;
  result.disseminated_per_s = throughput_complete / double(options.seconds);
  result.p50_ms = latencies_ms.empty() ? 0 : percentile(latencies_ms, 0.50);
  result.p99_ms = latencies_ms.empty() ? 0 : percentile(latencies_ms, 0.99);
  result.max_ms = latencies_ms.empty() ? 0 : *std::max_element(latencies_ms.begin(), latencies_ms.end());
  std::filesystem::remove_all(dir);
  return result;
}

}  // namespace cmesh::bench
