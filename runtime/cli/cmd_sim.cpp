// cmesh sim: a deterministic multi-node simulation. Prints its seed and the replay command first,
// progress on long runs, then a summary and the trace hash.
#include <chrono>
#include <cstdio>
#include <random>

#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/cli/sim_options.hpp"
#include "runtime/core/descriptor_limit.hpp"
#include "sim/simulation.hpp"

namespace cmesh::cli {

namespace {

void print_summary(const sim::simulation_report& r, double wall_seconds, double setup_seconds) {
  std::printf("summary:\n");
  std::printf("  virtual_time=%s wall_time=%.3fs setup_time=%.3fs speedup=%.1fx\n",
              sim::format_duration_us(r.virtual_us).c_str(), wall_seconds, setup_seconds,
              wall_seconds > 0 ? static_cast<double>(r.virtual_us) / 1e6 / wall_seconds : 0.0);
  std::printf("  nodes=%u up=%u crashes=%llu restarts=%llu\n", r.nodes, r.nodes_up,
              (unsigned long long)r.crashes, (unsigned long long)r.restarts);
  std::printf("  peers_mean=%.2f peers_min=%zu pongs=%llu malformed=%llu\n", r.peers_mean,
              r.peers_min, (unsigned long long)r.pongs, (unsigned long long)r.malformed);
  const auto& n = r.network;
  std::printf("  network: sent=%llu delivered=%llu lost=%llu partitioned=%llu duplicated=%llu "
              "reordered=%llu to_dead_node=%llu dials=%llu dials_failed=%llu\n",
              (unsigned long long)n.sent, (unsigned long long)n.delivered,
              (unsigned long long)n.lost, (unsigned long long)n.partitioned,
              (unsigned long long)n.duplicated, (unsigned long long)n.reordered,
              (unsigned long long)n.to_dead_node, (unsigned long long)n.dials,
              (unsigned long long)n.dials_failed);
  std::printf("  scheduler: jobs=%llu timers=%llu trace_events=%llu delivered_per_wall_second=%.0f\n",
              (unsigned long long)r.jobs_run, (unsigned long long)r.timers_fired,
              (unsigned long long)r.trace_events,
              wall_seconds > 0 ? static_cast<double>(n.delivered) / wall_seconds : 0.0);
  if (r.raft_leaders > 0 || r.kv_ok + r.kv_failed + r.kv_unknown > 0) {
    std::printf("  raft: leaders_elected=%llu max_term=%llu committed=%llu\n",
                (unsigned long long)r.raft_leaders, (unsigned long long)r.raft_max_term,
                (unsigned long long)r.raft_committed);
    std::printf("  kv: ok=%llu failed=%llu unknown=%llu attempts=%llu redirects=%llu "
                "linearizability_states=%llu%s\n",
                (unsigned long long)r.kv_ok, (unsigned long long)r.kv_failed,
                (unsigned long long)r.kv_unknown, (unsigned long long)r.kv_attempts,
                (unsigned long long)r.kv_redirects, (unsigned long long)r.linearizability_states,
                r.linearizability_timed_out ? " (search budget exhausted: undecided)" : "");
  }
}

// Many seeds, one after the other (the Raft torture runs): one line per failing seed with its
// replay command, progress on stderr, and a summary with simulated time per wall-clock second.
int run_sweep(parsed_options parsed, uint64_t first_seed, uint64_t count, bool quiet) {
  uint64_t failed = 0, ops = 0, leaders = 0;
  int64_t virtual_us = 0;
  auto started = std::chrono::steady_clock::now();
  auto last_progress = started;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t seed = first_seed + i;
    parsed.set("seed", std::to_string(seed));
    auto options = sim_options_from(parsed, seed);
    if (!options) {
      std::fprintf(stderr, "cmesh sim: %s\n", options.err().message.c_str());
      return exit_usage;
    }
    auto created = sim::simulation::create(*options);
    if (!created) {
      std::fprintf(stderr, "cmesh sim: %s\n", created.err().describe().c_str());
      return exit_usage;
    }
    (*created)->run_to_end();
    auto report = (*created)->report();
    virtual_us += report.virtual_us;
    ops += report.kv_ok;
    leaders += report.raft_leaders;
    if (!report.violations.empty()) {
      ++failed;
      std::printf("seed %llu: %zu violations, first: %s\n  replay: %s\n", (unsigned long long)seed,
                  report.violations.size(), report.violations.front().substr(0, 300).c_str(),
                  sim::replay_command(*options).c_str());
      std::fflush(stdout);
    }
    auto now = std::chrono::steady_clock::now();
    if (!quiet && now - last_progress > std::chrono::seconds(2)) {
      last_progress = now;
      std::fprintf(stderr, "progress: %llu / %llu seeds, %llu failed, %.1fs wall\n",
                   (unsigned long long)(i + 1), (unsigned long long)count,
                   (unsigned long long)failed,
                   std::chrono::duration<double>(now - started).count());
    }
  }
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("sweep: seeds %llu..%llu: %llu failed, %llu passed\n", (unsigned long long)first_seed,
              (unsigned long long)(first_seed + count - 1), (unsigned long long)failed,
              (unsigned long long)(count - failed));
  std::printf("  simulated=%.1fs wall=%.2fs simulated_per_wall_second=%.1f kv_ok=%llu leaders=%llu\n",
              static_cast<double>(virtual_us) / 1e6, wall,
              wall > 0 ? static_cast<double>(virtual_us) / 1e6 / wall : 0.0,
              (unsigned long long)ops, (unsigned long long)leaders);
  return failed == 0 ? exit_ok : exit_failed;
}

}  // namespace

int run_sim(int argc, char** argv) {
  auto spec = sim_command_spec();
  int usage_code = 0;
  auto parsed = parse_command_line(spec, argc, argv, usage_code);
  if (!parsed) return usage_code;
  auto options = sim_options_from(*parsed, std::random_device{}());
  if (!options) {
    std::fprintf(stderr, "cmesh sim: %s\n", options.err().message.c_str());
    return exit_usage;
  }
  if (options->use_storage) {
    auto limit = ensure_descriptor_limit(sim_descriptors_needed(options->nodes));
    if (!limit) {
      std::fprintf(stderr, "cmesh sim: %s\n", limit.err().message.c_str());
      return exit_usage;
    }
  }
  bool quiet = parsed->has("quiet");
  auto seeds = get_unsigned(*parsed, "seeds", 1, 1, 10'000'000);
  if (!seeds) {
    std::fprintf(stderr, "cmesh sim: %s\n", seeds.err().message.c_str());
    return exit_usage;
  }
  if (*seeds > 1) return run_sweep(*parsed, options->seed, *seeds, quiet);
  std::printf("cmesh sim: seed=%llu nodes=%u duration=%s\n", (unsigned long long)options->seed,
              options->nodes, sim::format_duration_us(options->duration_us).c_str());
  std::printf("replay: %s\n", sim::replay_command(*options).c_str());
  std::fflush(stdout);

  auto started = std::chrono::steady_clock::now();
  auto created = sim::simulation::create(*options);
  if (!created) {
    std::fprintf(stderr, "cmesh sim: %s\n", created.err().describe().c_str());
    return exit_usage;
  }
  auto& simulation = **created;
  // Speed is measured over the run loop; creating the nodes' stores is reported as setup_time.
  auto setup_done = std::chrono::steady_clock::now();
  double setup_seconds = std::chrono::duration<double>(setup_done - started).count();
  // Run in slices of virtual time so progress can be shown on long runs (the simulator itself
  // never reads the wall clock; this loop does).
  const int64_t slice_us = 1'000'000;
  auto last_progress = started;
  while (!simulation.finished()) {
    simulation.run_until(simulation.now_us() + slice_us);
    auto now = std::chrono::steady_clock::now();
    if (!quiet && now - last_progress > std::chrono::seconds(2)) {
      last_progress = now;
      auto r = simulation.report();
      std::fprintf(stderr, "progress: %s / %s virtual, %llu delivered, %.1fs wall\n",
                   sim::format_duration_us(r.virtual_us).c_str(),
                   sim::format_duration_us(options->duration_us).c_str(),
                   (unsigned long long)r.network.delivered,
                   std::chrono::duration<double>(now - started).count());
    }
  }
  auto report = simulation.report();
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - setup_done).count();
  print_summary(report, wall, setup_seconds);
  if (!report.violations.empty()) {
    std::printf("invariants: %zu VIOLATED\n", report.violations.size());
    for (const auto& v : report.violations) std::printf("  violation: %s\n", v.c_str());
    std::printf("replay: %s\n", sim::replay_command(*options).c_str());
  } else {
    std::printf("invariants: ok\n");
  }
  std::printf("trace_hash=%016llx\n", (unsigned long long)report.trace_hash);
  return report.violations.empty() ? exit_ok : exit_failed;
}

}  // namespace cmesh::cli
