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
              "workload over the real peer protocol, storage on), next to the raw CAF message rate "
              "under the test coordinator with the same driver, actor count and messages in flight.";
  s.usage = "cmesh bench sim [--nodes 1000,10000] [--runs R] [--out DIR]";
  s.options = {
      {"nodes", "LIST", "comma-separated node counts", "1000,10000"},
      {"runs", "R", "runs per size (medians are reported)", "3"},
      {"in-flight", "K", "flood probes in flight per node", "4"},
      {"out", "DIR", "folder for sim.csv", "./bench-results"},
  };
  return s;
}

}  // namespace

int run_sim_bench(int argc, char** argv) {
  auto s = spec();
  auto parsed = cli::parse_options(s, argc, argv);
  if (!parsed) {
    std::fprintf(stderr, "cmesh bench sim: %s\n", parsed.err().message.c_str());
    return cli::exit_usage;
  }
  if (parsed->help()) {
    std::fputs(cli::help_text(s).c_str(), stdout);
    return cli::exit_ok;
  }
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
  std::printf("%-7s %6s %14s %14s %14s %10s %10s %10s\n", "nodes", "runs", "delivered/s", "sim_jobs/s",
              "caf_ceiling/s", "ratio_dlv", "ratio_jobs", "peak_MiB");
  std::vector<std::string> rows;
  for (auto n : sizes) {
    if (n < 2) continue;
    std::vector<double> delivered, jobs, ceiling, rss;
    // Virtual duration chosen so each run does a few million deliveries at most.
    std::string duration = n >= 5000 ? "2s" : "5s";
    for (uint64_t r = 0; r < *runs; ++r) {
      auto child = run_self({"sim", "--nodes", std::to_string(n), "--seed", std::to_string(1000 + r),
                             "--duration", duration, "--flood", std::to_string(*in_flight), "--quiet"});
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
    std::printf("%-7u %6llu %14.0f %14.0f %14.0f %10.3f %10.3f %10.0f\n", n, (unsigned long long)*runs, d, j,
                c, d / c, j / c, m);
    std::fflush(stdout);
    rows.push_back(format("%u,%llu,%.0f,%.0f,%.0f,%.4f,%.4f,%.0f", n, (unsigned long long)*runs, d, j, c,
                          d / c, j / c, m));
  }
  write_csv(out, "sim", "nodes,runs,delivered_per_s,sim_jobs_per_s,caf_ceiling_per_s,ratio_delivered,ratio_jobs,peak_rss_mib", rows);
  std::printf("csv: %s/sim.csv\n", out.c_str());
  return cli::exit_ok;
}

}  // namespace cmesh::bench
