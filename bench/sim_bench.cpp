// cmesh bench sim: simulator speed at 1,000 and 10,000 nodes next to the raw CAF ceiling measured
// in the same run, and peak memory. Each simulation runs in a child process (so its peak memory
// is its own); the ceiling runs in this process between them.
#include <cstdio>

#include "bench/bench_util.hpp"
#include "bench/caf_ceiling.hpp"
#include "bench/commands.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"

namespace cmesh::bench {

namespace {

cli::command_spec spec() {
  cli::command_spec s;
  s.name = "cmesh bench sim";
  s.summary = "Simulator speed: delivered messages per wall second at several node counts (flood "
              "workload over the real peer protocol, with and without LMDB), next to the raw CAF message rate "
              "under the test coordinator with the same driver, actor count and messages in flight.";
  s.usage = "cmesh bench sim [--nodes 1000,10000] [--runs R] [--out DIR]";
  s.options = {
      {"nodes", "LIST", "comma-separated node counts", "1000,10000"},
      {"runs", "R", "runs per size (medians are reported)", "3"},
      {"in-flight", "K", "flood probes in flight per node", "4"},
      {"storage", "MODE", "on, off or both (off = --no-storage: protocol and simulator only)", "both"},
      {"out", "DIR", "folder for sim.csv", "./bench-results"},
  };
  return s;
}

}  // namespace

int run_sim_bench(int argc, char** argv) {
  auto s = spec();
  int usage_code = 0;
  auto parsed = cli::parse_command_line(s, argc, argv, usage_code);
  if (!parsed) return usage_code;
  auto runs = cli::get_unsigned(*parsed, "runs", 3, 1, 50);
  auto in_flight = cli::get_unsigned(*parsed, "in-flight", 4, 1, 64);
  if (!runs || !in_flight) {
    std::fprintf(stderr, "cmesh bench sim: %s\n", (!runs ? runs.err() : in_flight.err()).message.c_str());
    return cli::exit_usage;
  }
  std::vector<uint32_t> sizes;
  std::string list = parsed->get("nodes", "1000,10000");
  for (size_t pos = 0; pos < list.size();) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    sizes.push_back(static_cast<uint32_t>(std::strtoul(list.substr(pos, comma - pos).c_str(), nullptr, 10)));
    pos = comma + 1;
  }
  std::string out = parsed->get("out", "./bench-results");
  std::string storage = parsed->get("storage", "both");
  std::vector<bool> storage_modes;
  if (storage == "on" || storage == "both") storage_modes.push_back(true);
  if (storage == "off" || storage == "both") storage_modes.push_back(false);
  if (storage_modes.empty()) {
    std::fprintf(stderr, "cmesh bench sim: --storage must be on, off or both\n");
    return cli::exit_usage;
  }
  std::printf("%-7s %-8s %5s %13s %13s %14s %10s %10s %9s\n", "nodes", "storage", "runs", "delivered/s",
              "sim_jobs/s", "caf_ceiling/s", "ratio_dlv", "ratio_jobs", "peak_MiB");
  std::vector<std::string> rows;
  for (auto n : sizes)
  for (bool with_storage : storage_modes) {
    if (n < 2) continue;
    std::vector<double> delivered, jobs, ceiling, rss;
    // Virtual duration: a few million deliveries per run, mostly past the join phase.
    std::string duration = n >= 5000 ? "3s" : "10s";
    for (uint64_t r = 0; r < *runs; ++r) {
      std::vector<std::string> args = {"sim", "--nodes", std::to_string(n), "--seed", std::to_string(1000 + r),
                                       "--duration", duration, "--flood", std::to_string(*in_flight), "--quiet"};
      if (!with_storage) args.push_back("--no-storage");
      auto child = run_self(args);
      if (child.exit_code != 0) {
        std::fprintf(stderr, "cmesh bench sim: simulation failed (exit %d):\n%s\n", child.exit_code,
                     child.output.c_str());
        return cli::exit_failed;
      }
      double wall = find_number(child.output, "wall_time");
      delivered.push_back(find_number(child.output, "delivered_per_wall_second"));
      jobs.push_back(find_number(child.output, "jobs") / wall);
      rss.push_back(static_cast<double>(child.peak_rss_kib) / 1024.0);
      ceiling.push_back(caf_ceiling_messages_per_second(n, static_cast<uint32_t>(*in_flight),
                                                        20ull * n < 4'000'000 ? 4'000'000 : 20ull * n, 1000 + r));
    }
    double d = median(delivered), j = median(jobs), c = median(ceiling), m = median(rss);
    const char* mode = with_storage ? "lmdb" : "none";
    std::printf("%-7u %-8s %5llu %13.0f %13.0f %14.0f %10.3f %10.3f %9.0f\n", n, mode, (unsigned long long)*runs,
                d, j, c, d / c, j / c, m);
    std::fflush(stdout);
    rows.push_back(format("%u,%s,%llu,%.0f,%.0f,%.0f,%.4f,%.4f,%.0f", n, mode, (unsigned long long)*runs, d, j, c,
                          d / c, j / c, m));
  }
  write_csv(out, "sim", "nodes,storage,runs,delivered_per_s,sim_jobs_per_s,caf_ceiling_per_s,ratio_delivered,ratio_jobs,peak_rss_mib", rows);
  std::printf("csv: %s/sim.csv\n", out.c_str());
  return cli::exit_ok;
}

}  // namespace cmesh::bench
