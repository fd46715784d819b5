// cmesh bench gossip: dissemination of one rumor through the imAlive membership layer
// (actors/swim) in the deterministic simulator: the same swim actors as real mode, over the
// simulated network, at 1,000 and 10,000 agents.
//
// Each scenario runs in a child process (`cmesh bench gossip-run`), so its peak memory is its own.
// Agents start from seeded random contact lists (no join phase), warm up for 2 s, then node 0
// broadcasts rumor 1. A round is one gossip interval (200 ms by default). Reported: rounds to 99%
// and 99.9% coverage of the live agents, messages (every kind) per live agent per round up to
// 99.9% coverage, relative message redundancy (messages carrying the rumor / (n - 1) - 1),
// delivered messages per wall second, peak memory. Writes gossip.csv, coverage-*.dat and a PNG
// of coverage against rounds (gnuplot) to --out.
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "actors/swim/swim_actor.hpp"
#include "bench/bench_util.hpp"
#include "bench/commands.hpp"
#include "bench/gossip_real.hpp"
#include "bench/nats_fanout.hpp"
#include "sim/model/fault_profile.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/crypto/identity.hpp"
#include "sim/simulation.hpp"

namespace cmesh::bench {

namespace {

constexpr int64_t warmup_us = 2'000'000;
constexpr int rounds_max = 40;

struct watch : swim::observer {
  std::map<node_id, uint32_t> index;
  std::vector<int64_t> first_us;
  int64_t t0 = 0;
  int64_t round_us = 0;
  std::vector<uint64_t> sent_in_round = std::vector<uint64_t>(rounds_max + 1, 0);
  uint64_t rumor_messages = 0;

  void on_event(const node_id& self, const swim::event& e, int64_t now_us) override {
    if (e.kind != swim::event_kind::rumor_received || e.rumor_id != 1) return;
    auto it = index.find(self);
    if (it != index.end() && first_us[it->second] < 0) first_us[it->second] = now_us;
  }
  void on_sent(const node_id&, size_t, bool carries_rumor, int64_t now_us) override {
    if (carries_rumor) ++rumor_messages;
    if (now_us < t0) return;
    auto round = static_cast<size_t>((now_us - t0) / round_us);
    if (round < sent_in_round.size()) ++sent_in_round[round];
  }
};

cli::command_spec run_spec() {
  cli::command_spec s;
  s.name = "cmesh bench gossip-run";
  s.summary = "One gossip benchmark scenario (a child process of cmesh bench gossip).";
  s.usage = "cmesh bench gossip-run --nodes N [--loss P] [--crashed P] [--seed S]";
  s.options = {{"nodes", "N", "agents", "1000"},
               {"loss", "P", "message loss probability", "0"},
               {"crashed", "P", "fraction of agents crashed just before the broadcast", "0"},
               {"contacts", "K", "contacts each agent starts with", "64"},
               {"seed", "S", "simulation seed", "1"}};
  return s;
}

}  // namespace

int run_gossip_scenario(int argc, char** argv) {
  auto s = run_spec();
  int usage_code = 0;
  auto parsed = cli::parse_command_line(s, argc, argv, usage_code);
  if (!parsed) return usage_code;
  auto nodes = cli::get_unsigned(*parsed, "nodes", 1000, 2, 200'000);
  auto contacts = cli::get_unsigned(*parsed, "contacts", 64, 1, 100'000);
  auto seed = cli::get_unsigned(*parsed, "seed", 1, 0, ~uint64_t{0});
  double loss = std::atof(parsed->get("loss", "0").c_str());
  double crashed = std::atof(parsed->get("crashed", "0").c_str());
  if (!nodes || !contacts || !seed || loss < 0 || loss >= 1 || crashed < 0 || crashed >= 1) {
    std::fprintf(stderr, "cmesh bench gossip-run: bad arguments\n");
    return cli::exit_usage;
  }
  crypto_init();
  watch w;
  sim::simulation_options o;
  o.nodes = static_cast<uint32_t>(*nodes);
  o.seed = *seed;
  o.seed_nodes = 0;  // no peer-protocol joins: agents start from contact lists
  o.join_spread_us = 0;
  o.use_storage = false;
  o.faults.loss = loss;
  o.agents.swim = true;
  o.agents.contacts = static_cast<uint32_t>(*contacts);
  // The transmit limit follows the contact list's size; scale it to what full membership of n
  // agents would give (mult * ceil(log10(n + 1))), so partial views do not shorten dissemination.
  const swim::config defaults;
  const double full_levels = std::ceil(std::log10(o.nodes + 1.0));
  const double partial_levels = std::ceil(std::log10(std::min<double>(*contacts, o.nodes - 1) + 2.0));
  auto scaled = [&](uint32_t mult) {
    return static_cast<uint32_t>(std::ceil(mult * full_levels / partial_levels));
  };
  o.agents.membership.rumor_retransmit_mult = scaled(defaults.rumor_retransmit_mult);
  o.agents.membership.retransmit_mult = scaled(defaults.retransmit_mult);
  // Partial views: an agent keeps at most its contact list's size (plus room for a few it hears
  // of), as a deployment of this size would; full tables at 10,000 agents are 10^8 entries.
  o.agents.membership.member_table_max = static_cast<size_t>(*contacts) + 16;
  o.agents.broadcast_at_us = warmup_us;
  o.agents.watcher = &w;
  w.t0 = warmup_us;
  w.round_us = o.agents.membership.gossip_interval_us;
  o.duration_us = warmup_us + rounds_max * w.round_us;
  // Crash a seeded fraction (never node 0, the origin) 1 ms before the broadcast: nobody has
  // noticed them yet, so they still receive gossip that is lost.
  rng pick(mix_seed(*seed, 0x6372617368));
  std::vector<bool> down(o.nodes, false);
  auto crash_count = static_cast<uint32_t>(crashed * o.nodes);
  for (uint32_t c = 0; c < crash_count;) {
    auto i = static_cast<uint32_t>(1 + pick.below(o.nodes - 1));
    if (down[i]) continue;
    down[i] = true;
    ++c;
    o.faults.crashes.push_back({i, warmup_us - 1000, -1});
  }
  for (uint32_t i = 0; i < o.nodes; ++i)
    w.index[identity::derive_for_simulation(o.seed, i).public_key] = i;
  w.first_us.assign(o.nodes, -1);
  w.first_us[0] = warmup_us;

  auto created = sim::simulation::create(o);
  if (!created) {
    std::fprintf(stderr, "cmesh bench gossip-run: %s\n", created.err().describe().c_str());
    return cli::exit_failed;
  }
  auto& simulation = **created;
  auto wall_start = std::chrono::steady_clock::now();
  simulation.run_to_end();
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  auto report = simulation.report();

  uint32_t live = o.nodes - crash_count;
  std::vector<double> coverage(rounds_max + 1, 0);
  for (int r = 0; r <= rounds_max; ++r) {
    uint32_t have = 0;
    for (uint32_t i = 0; i < o.nodes; ++i)
      if (!down[i] && w.first_us[i] >= 0 && w.first_us[i] <= w.t0 + r * w.round_us) ++have;
    coverage[r] = static_cast<double>(have) / live;
  }
  auto rounds_to = [&](double fraction) {
    for (int r = 0; r <= rounds_max; ++r)
      if (coverage[r] >= fraction) return r;
    return -1;
  };
  int r99 = rounds_to(0.99), r999 = rounds_to(0.999);
  int window = r999 > 0 ? r999 : rounds_max;
  uint64_t messages = 0;
  for (int r = 0; r < window; ++r) messages += w.sent_in_round[r];
  double per_agent_round = static_cast<double>(messages) / live / window;
  double redundancy = static_cast<double>(w.rumor_messages) / (live - 1) - 1;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("seed=%llu nodes=%u live=%u rounds_99=%d rounds_999=%d final_coverage=%.5f "
              "messages_per_agent_round=%.2f rumor_messages=%llu redundancy=%.2f "
              "delivered_per_wall_second=%.0f wall_seconds=%.2f peak_rss_kib=%ld\n",
              static_cast<unsigned long long>(o.seed), o.nodes, live, r99, r999, coverage[rounds_max],
              per_agent_round, static_cast<unsigned long long>(w.rumor_messages), redundancy,
              report.network.delivered / wall, wall, usage.ru_maxrss);
  std::printf("coverage");
  for (int r = 0; r <= 20 && r <= rounds_max; ++r) std::printf(" %.5f", coverage[r]);
  std::printf("\n");
  if (!report.violations.empty()) {
    std::fprintf(stderr, "violations: %s\n", report.violations.front().c_str());
    return cli::exit_failed;
  }
  return cli::exit_ok;
}

namespace {

cli::command_spec spec() {
  cli::command_spec s;
  s.name = "cmesh bench gossip";
  s.summary = "Rumor dissemination through imAlive membership in the simulator: rounds to 99% and "
              "99.9% coverage, messages per agent per round, redundancy, speed, peak memory.";
  s.usage = "cmesh bench gossip [--only sim|real] [--sizes 1000,10000] [--runs R] [--out DIR]";
  s.options = {{"only", "sim|real", "run only the simulated or only the real part", "both"},
               {"sizes", "LIST", "simulated agent counts", "1000,10000"},
               {"runs", "R", "seeds per simulated scenario, and runs of the real part; medians are reported", "3"},
               {"contacts", "K", "contacts each simulated agent starts with", "64"},
               {"real-nodes", "N", "node processes of the real part", "5"},
               {"real-seconds", "S", "length of each real phase", "3"},
               {"real-rate", "R", "real latency phase: rumors (messages) per second over all nodes", "100"},
               {"throughput-rate", "R", "real throughput phase: rumors offered per second", "10000"},
               {"gossip-interval", "T", "imAlive gossip interval of the real nodes", "200ms"},
               {"eager-fanout", "K", "rumor eager push fanout of the real nodes (0 = rounds only)", "2"},
               {"nats", "PATH", "nats-server for the reference ('none' skips it)", "/usr/sbin/nats-server"},
               {"out", "DIR", "folder for gossip.csv, gossip-real.csv, coverage data and plots", "./bench-results"}};
  s.epilog = "Simulated scenarios: clean (no faults) and loss10-crash20 (10% loss, 20% of agents crashed\n"
             "just before the broadcast). Targets: 99.9% in <= 10 rounds (clean), <= 14 (faults), <= 4\n"
             "messages per agent per round.\n"
             "Real part: N cmesh node processes on loopback disseminate rumors (time to reach every\n"
             "other node: p50/p99; rumors fully disseminated per second), then the same fan-out\n"
             "through nats-server (one subscriber connection per node), reported as ratios.\n"
             "Results: docs/benchmarks.md.";
  return s;
}

}  // namespace

namespace {

int run_real_part(const cli::parsed_options& parsed, uint64_t runs) {
  auto nodes = cli::get_unsigned(parsed, "real-nodes", 5, 2, 32);
  auto seconds = cli::get_unsigned(parsed, "real-seconds", 3, 1, 120);
  auto rate = cli::get_unsigned(parsed, "real-rate", 100, 1, 100'000);
  auto throughput_rate = cli::get_unsigned(parsed, "throughput-rate", 10000, 1, 1'000'000);
  auto interval = sim::parse_duration_us(parsed.get("gossip-interval", "200ms"));
  auto eager = cli::get_unsigned(parsed, "eager-fanout", 2, 0, swim::gossip_fanout_max);
  if (!nodes || !seconds || !rate || !throughput_rate || !interval || *interval < 1000 || !eager) {
    std::fprintf(stderr, "cmesh bench gossip: bad --real-nodes, --real-seconds, --real-rate, "
                         "--throughput-rate or --gossip-interval (at least 1ms)\n");
    return cli::exit_usage;
  }
  std::string nats = parsed.get("nats", "/usr/sbin/nats-server");
  bool with_nats = nats != "none";
  if (with_nats && !nats_server_available(nats)) {
    std::fprintf(stderr, "cmesh bench gossip: nats-server not found at %s; apt-get install nats-server "
                         "(or --nats none)\n", nats.c_str());
    return cli::exit_failed;
  }
  std::string out = parsed.get("out", "./bench-results");
  std::filesystem::create_directories(out);
  real_options options;
  options.nodes = static_cast<int>(*nodes);
  options.seconds = static_cast<int>(*seconds);
  options.rate = static_cast<int>(*rate);
  options.throughput_rate = static_cast<int>(*throughput_rate);
  options.gossip_interval_us = *interval;
  options.eager_fanout = static_cast<uint32_t>(*eager);
  nats_fanout_options reference;
  reference.server_path = nats;
  reference.nodes = options.nodes;
  reference.seconds = static_cast<double>(options.seconds);
  reference.rate_per_s = options.rate;
  std::printf("\nreal: %d node processes on loopback, 64-byte messages, %d/s for latency, %d/s offered "
              "for throughput, gossip interval %lld ms, eager fanout %u, %llu run(s)\n",
              options.nodes, options.rate, options.throughput_rate,
              static_cast<long long>(options.gossip_interval_us / 1000), options.eager_fanout,
              static_cast<unsigned long long>(runs));
  std::printf("%-10s %4s %16s %10s %10s %10s %12s\n", "system", "run", "disseminated/s",
              "p50_ms", "p99_ms", "max_ms", "incomplete");
  auto print_row = [](const std::string& system, uint64_t run, double rate, double p50, double p99,
                      double max, uint64_t incomplete, uint64_t sent) {
    std::printf("%-10s %4llu %16.0f %10.2f %10.2f %10.2f %5llu/%-6llu\n", system.c_str(),
                static_cast<unsigned long long>(run + 1), rate, p50, p99, max,
                static_cast<unsigned long long>(incomplete), static_cast<unsigned long long>(sent));
    std::fflush(stdout);
  };
  std::vector<double> ours_rate, ours_p50, ours_p99, theirs_rate, theirs_p50, theirs_p99;
  for (uint64_t run = 0; run < runs; ++run) {
    auto run_ours = [&]() -> bool {
      std::string error;
      auto r = run_real_dissemination(options, error);
      if (!r) {
        std::fprintf(stderr, "cmesh bench gossip: real run failed: %s\n", error.c_str());
        return false;
      }
      print_row("cmesh", run, r->disseminated_per_s, r->p50_ms, r->p99_ms, r->max_ms,
                r->incomplete + r->throughput_incomplete, r->sent + r->throughput_sent);
      ours_rate.push_back(r->disseminated_per_s);
      ours_p50.push_back(r->p50_ms);
      ours_p99.push_back(r->p99_ms);
      return true;
    };
    auto run_theirs = [&]() -> bool {
      if (!with_nats) return true;
      std::string error;
      auto r = run_nats_fanout(reference, error);
      if (!r) {
        std::fprintf(stderr, "cmesh bench gossip: nats reference failed: %s\n", error.c_str());
        return false;
      }
      print_row("nats " + r->server_version, run, r->disseminated_per_s, r->p50_ms, r->p99_ms,
                r->max_ms, r->incomplete + r->throughput_incomplete, r->sent + r->throughput_sent);
      theirs_rate.push_back(r->disseminated_per_s);
      theirs_p50.push_back(r->p50_ms);
      theirs_p99.push_back(r->p99_ms);
      return true;
    };
    // Alternate which system goes first (the machine is shared and noisy).
    bool ok = run % 2 == 0 ? (run_ours() && run_theirs()) : (run_theirs() && run_ours());
    if (!ok) return cli::exit_failed;
  }
  std::printf("median cmesh: %.0f disseminated/s, p50 %.2f ms, p99 %.2f ms\n", median(ours_rate),
              median(ours_p50), median(ours_p99));
  std::vector<std::string> rows;
  rows.push_back(format("cmesh,%d,%lld,%u,%llu,%.0f,%.3f,%.3f", options.nodes,
                        static_cast<long long>(options.gossip_interval_us / 1000), options.eager_fanout,
                        static_cast<unsigned long long>(runs), median(ours_rate), median(ours_p50),
                        median(ours_p99)));
  if (with_nats) {
    std::printf("median nats:  %.0f disseminated/s, p50 %.2f ms, p99 %.2f ms\n", median(theirs_rate),
                median(theirs_p50), median(theirs_p99));
    std::printf("ratio cmesh/nats: throughput %.4fx, p50 %.1fx, p99 %.1fx (latency: higher is slower)\n",
                median(ours_rate) / median(theirs_rate), median(ours_p50) / median(theirs_p50),
                median(ours_p99) / median(theirs_p99));
    rows.push_back(format("nats,%d,,,%llu,%.0f,%.3f,%.3f", options.nodes,
                          static_cast<unsigned long long>(runs), median(theirs_rate),
                          median(theirs_p50), median(theirs_p99)));
  }
  write_csv(out, "gossip-real", "system,nodes,gossip_interval_ms,eager_fanout,runs,disseminated_per_s,p50_ms,p99_ms",
            rows);
  std::printf("csv: %s/gossip-real.csv\n", out.c_str());
  return cli::exit_ok;
}

}  // namespace

int run_gossip_bench(int argc, char** argv) {
  auto s = spec();
  int usage_code = 0;
  auto parsed = cli::parse_command_line(s, argc, argv, usage_code);
  if (!parsed) return usage_code;
  auto runs = cli::get_unsigned(*parsed, "runs", 3, 1, 50);
  if (!runs) {
    std::fprintf(stderr, "cmesh bench gossip: --runs: %s\n", runs.err().message.c_str());
    return cli::exit_usage;
  }
  std::string only = parsed->get("only", "both");
  if (only != "both" && only != "sim" && only != "real") {
    std::fprintf(stderr, "cmesh bench gossip: --only: expected sim or real\n");
    return cli::exit_usage;
  }
  if (only == "real") return run_real_part(*parsed, *runs);
  std::string sizes_text = parsed->get("sizes", "1000,10000");
  std::string contacts = parsed->get("contacts", "64");
  std::string out = parsed->get("out", "./bench-results");
  std::vector<std::string> sizes = cli::split_list(sizes_text);
  struct scenario {
    const char* name;
    const char* loss;
    const char* crashed;
  };
  const scenario scenarios[] = {{"clean", "0", "0"}, {"loss10-crash20", "0.1", "0.2"}};
  std::printf("%-8s %-15s %4s %9s %10s %12s %10s %14s %10s\n", "agents", "scenario", "runs",
              "rounds99", "rounds99.9", "msgs/agent/r", "redundancy", "delivered/s", "peak_MiB");
  std::vector<std::string> rows;
  std::filesystem::create_directories(out);
  for (const auto& size : sizes) {
    for (const auto& sc : scenarios) {
      std::vector<double> r99, r999, per, rmr, speed, memory;
      std::vector<std::vector<double>> curves;
      for (uint64_t run = 0; run < *runs; ++run) {
        auto child = run_self({"bench", "gossip-run", "--nodes", size, "--loss", sc.loss,
                               "--crashed", sc.crashed, "--contacts", contacts, "--seed",
                               std::to_string(run + 1)});
        if (child.exit_code != 0) {
          std::fprintf(stderr, "cmesh bench gossip: %s agents, %s, seed %llu failed:\n%s\n", size.c_str(),
                       sc.name, static_cast<unsigned long long>(run + 1), child.output.c_str());
          return cli::exit_failed;
        }
        r99.push_back(find_number(child.output, "rounds_99"));
        r999.push_back(find_number(child.output, "rounds_999"));
        per.push_back(find_number(child.output, "messages_per_agent_round"));
        rmr.push_back(find_number(child.output, "redundancy"));
        speed.push_back(find_number(child.output, "delivered_per_wall_second"));
        memory.push_back(child.peak_rss_kib / 1024.0);
        auto at = child.output.find("coverage ");
        std::vector<double> curve;
        if (at != std::string::npos) {
          const char* p = child.output.c_str() + at + 9;
          char* end = nullptr;
          for (double v = std::strtod(p, &end); end != p; v = std::strtod(p, &end)) {
            curve.push_back(v);
            p = end;
          }
        }
        curves.push_back(curve);
      }
      std::printf("%-8s %-15s %4llu %9.0f %10.0f %12.2f %10.2f %14.0f %10.0f\n", size.c_str(), sc.name,
                  static_cast<unsigned long long>(*runs), median(r99), median(r999), median(per),
                  median(rmr), median(speed), median(memory));
      std::fflush(stdout);
      rows.push_back(format("%s,%s,%llu,%.0f,%.0f,%.2f,%.2f,%.0f,%.0f", size.c_str(), sc.name,
                            static_cast<unsigned long long>(*runs), median(r99), median(r999),
                            median(per), median(rmr), median(speed), median(memory)));
      std::ofstream data(out + "/coverage-" + size + "-" + sc.name + ".dat");
      for (size_t r = 0; !curves.empty() && r < curves[0].size(); ++r) {
        std::vector<double> at_round;
        for (const auto& c : curves)
          if (r < c.size()) at_round.push_back(c[r]);
        data << r << " " << 100 * median(at_round) << "\n";
      }
    }
  }
  write_csv(out, "gossip",
            "agents,scenario,runs,rounds_99,rounds_999,messages_per_agent_round,redundancy,"
            "delivered_per_wall_second,peak_mib",
            rows);
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
    std::ofstream gp(out + "/gossip.gp");
    gp << "set terminal png size 900,600\nset output 'gossip.png'\nset key bottom right\n"
          "set xlabel 'gossip rounds after the broadcast'\nset ylabel 'live agents with the rumor (%)'\n"
          "set yrange [0:100.5]\nset grid\nplot ";
    bool first = true;
    for (const auto& size : sizes)
      for (const auto& sc : scenarios) {
        gp << (first ? "" : ", ") << "'coverage-" << size << "-" << sc.name << ".dat' with linespoints title '"
           << size << " " << sc.name << "'";
        first = false;
      }
    gp << "\n";
    gp.close();
    if (std::system(("cd '" + out + "' && gnuplot gossip.gp").c_str()) == 0)
      std::printf("plot: %s/gossip.png\n", out.c_str());
  } else {
    std::printf("gnuplot not found: no plot (apt-get install gnuplot-nox)\n");
  }
  std::printf("csv: %s/gossip.csv\n", out.c_str());
  if (only == "sim") return cli::exit_ok;
  return run_real_part(*parsed, *runs);
}

}  // namespace cmesh::bench
