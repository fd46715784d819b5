// cmesh bench <name>: benchmarks over the real code paths. Each prints a table and writes CSV.
#include <cstdio>
#include <string>

#include "bench/commands.hpp"
#include "runtime/cli/commands.hpp"

namespace cmesh::cli {

int run_bench(int argc, char** argv) {
  const char* usage =
      "Usage: cmesh bench <name> [options]\n\n"
      "Benchmarks:\n"
      "  gossip      rumor dissemination through imAlive membership at 1,000 and 10,000 simulated agents\n"
      "  membership  imAlive failure detector in the simulator: false removals with frozen agents, crash detection time\n"
      "  search-memory  peak memory of simulated agents whose gossip search caches are full\n"
      "  transport   encrypted frames between two processes on loopback: frames/s, p50/p99 latency\n"
      "  sim         simulator speed at 1,000 and 10,000 nodes vs the raw CAF ceiling, peak memory\n"
      "  election    Raft leader election time after a leader crash (the Raft paper's Figure 16), simulated\n"
      "  kv          replicated key/value writes and reads on 3 processes, against etcd in the same run\n"
      "  router      the seed's workload: 30,000 authenticated CMTP requests at one node, in-process and over the wire\n"
      "  events      the events bus against nats-server: one client publishing to a subject it subscribes to\n\n"
      "Run 'cmesh bench <name> --help' for options. Results: docs/benchmarks.md.\n";
  if (argc < 1) {
    std::fputs(usage, stderr);
    return exit_usage;
  }
  std::string name = argv[0];
  if (name == "--help" || name == "-h") {
    std::fputs(usage, stdout);
    return exit_ok;
  }
  if (name == "sim") return bench::run_sim_bench(argc - 1, argv + 1);
  if (name == "election") return bench::run_election_bench(argc - 1, argv + 1);
  if (name == "gossip") return bench::run_gossip_bench(argc - 1, argv + 1);
  if (name == "gossip-run") return bench::run_gossip_scenario(argc - 1, argv + 1);
  if (name == "gossip-node") return bench::run_gossip_node(argc - 1, argv + 1);
  if (name == "membership") return bench::run_membership_bench(argc - 1, argv + 1);
  if (name == "membership-run") return bench::run_membership_scenario(argc - 1, argv + 1);
  if (name == "search-memory") return bench::run_search_memory_bench(argc - 1, argv + 1);
  if (name == "search-memory-run") return bench::run_search_memory_scenario(argc - 1, argv + 1);
  if (name == "kv") return bench::run_kv_bench(argc - 1, argv + 1);
  if (name == "router") return bench::run_router_bench(argc - 1, argv + 1);
  if (name == "router-run") return bench::run_router_run(argc - 1, argv + 1);
  if (name == "events") return bench::run_events_bench(argc - 1, argv + 1);
  if (name == "events-run") return bench::run_events_run(argc - 1, argv + 1);
  if (name == "transport") return bench::run_transport_bench(argc - 1, argv + 1);
  if (name == "transport-server") return bench::run_transport_server(argc - 1, argv + 1);
  std::fprintf(stderr, "cmesh bench: unknown benchmark '%s'\n\n%s", name.c_str(), usage);
  return exit_usage;
}

}  // namespace cmesh::cli
