#include "runtime/cli/sim_options.hpp"

namespace cmesh::cli {

command_spec sim_command_spec() {
  command_spec spec;
  spec.name = "cmesh sim";
  spec.summary = "Run a deterministic multi-node simulation: the same node actors as real mode, on "
                 "one virtual clock, over a simulated network with seeded faults.";
  spec.usage = "cmesh sim [--nodes N] [--seed S] [--duration T] [fault options]";
  spec.options = {
      {"nodes", "N", "number of simulated nodes", "5"},
      {"seed", "S", "seed for everything random in the run; same seed = same run", "random, printed"},
      {"duration", "T", "virtual time to simulate (e.g. 30s, 2m)", "30s"},
      {"seed-nodes", "K", "nodes 0..K-1 are the seed addresses every node joins through", "1"},
      {"join-spread", "T", "nodes start at random times within this window", "1s"},
      {"latency", "T", "median one-way latency", "5ms"},
      {"latency-spread", "SIGMA", "log-normal shape of the latency (0 = constant)", "0.5"},
      {"loss", "P", "probability a message is lost (0..1 or %)", "0"},
      {"duplicate", "P", "probability a message is delivered twice", "0"},
      {"reorder", "P", "probability a message gets extra delay and is overtaken", "0"},
      {"partition", "SPEC", "START-END:A/B (both ways), START-END:A>B (one way), START-END:A (A vs rest)", "", true},
      {"crash", "SPEC", "NODE@TIME or NODE@TIME+RESTART_AFTER, e.g. 3@5s+4s", "", true},
      {"data", "DIR", "keep node storage in DIR instead of a temporary folder", ""},
      {"keep-data", "", "do not delete the temporary storage folder at the end", ""},
      {"no-storage", "", "run without LMDB (protocol only; crashes then lose all state)", ""},
      {"flood", "K", "benchmark workload: every node keeps K probes circulating to random nodes", "0 = off"},
      {"flood-payload", "BYTES", "payload of each flood probe", "64"},
      {"verbose", "", "print every node event (small runs)", ""},
      {"quiet", "", "no progress lines on stderr", ""},
  };
  spec.epilog =
      "Examples:\n"
      "  cmesh sim --nodes 10 --seed 7 --duration 60s --loss 5% --partition 10s-20s:0-4/5-9\n"
      "  cmesh sim --nodes 6 --seed 3 --crash 2@5s+3s --verbose\n"
      "Every run prints its seed and the command that replays it; the same command prints the\n"
      "same trace_hash.";
  return spec;
}

result<sim::simulation_options> sim_options_from(const parsed_options& p, uint64_t random_seed) {
  sim::simulation_options o;
  auto nodes = get_unsigned(p, "nodes", 5, 1, limits::sim_nodes_max);
  if (!nodes) return nodes.err();
  o.nodes = static_cast<uint32_t>(*nodes);
  auto seed = get_unsigned(p, "seed", random_seed, 0, UINT64_MAX);
  if (!seed) return seed.err();
  o.seed = *seed;
  auto seed_nodes = get_unsigned(p, "seed-nodes", 1, 1, o.nodes);
  if (!seed_nodes) return seed_nodes.err();
  o.seed_nodes = static_cast<uint32_t>(*seed_nodes);
  auto duration = [&](const std::string& name, const std::string& fallback) -> result<int64_t> {
    auto parsed = sim::parse_duration_us(p.get(name, fallback));
    if (!parsed) return error{errc::invalid_argument, "--" + name + ": " + parsed.err().message};
    return *parsed;
  };
  auto probability = [&](const std::string& name) -> result<double> {
    auto parsed = sim::parse_probability(p.get(name, "0"));
    if (!parsed) return error{errc::invalid_argument, "--" + name + ": " + parsed.err().message};
    return *parsed;
  };
  auto run_time = duration("duration", "30s");
  if (!run_time) return run_time.err();
  if (*run_time <= 0) return error{errc::invalid_argument, "--duration must be positive"};
  o.duration_us = *run_time;
  auto spread = duration("join-spread", "1s");
  if (!spread) return spread.err();
  o.join_spread_us = *spread;
  auto latency = duration("latency", "5ms");
  if (!latency) return latency.err();
  if (*latency <= 0) return error{errc::invalid_argument, "--latency must be positive"};
  o.faults.latency.latency_us_median = *latency;
  o.faults.latency.latency_us_min = std::min<int64_t>(100, *latency);
  o.faults.latency.latency_us_max = std::max<int64_t>(2'000'000, 20 * *latency);
  char* end = nullptr;
  auto spread_text = p.get("latency-spread", "0.5");
  o.faults.latency.latency_spread = std::strtod(spread_text.c_str(), &end);
  if (end != spread_text.c_str() + spread_text.size() || o.faults.latency.latency_spread < 0 ||
      o.faults.latency.latency_spread > 5)
    return error{errc::invalid_argument, "--latency-spread: '" + spread_text + "' is not in 0..5"};
  for (auto [name, target] : {std::pair{"loss", &o.faults.loss}, {"duplicate", &o.faults.duplicate},
                              {"reorder", &o.faults.reorder}}) {
    auto value = probability(name);
    if (!value) return value.err();
    *target = *value;
  }
  for (const auto& text : p.all("partition")) {
    auto part = sim::parse_partition(text, o.nodes);
    if (!part) return error{errc::invalid_argument, "--partition: " + part.err().message};
    o.faults.partitions.push_back(std::move(*part));
  }
  for (const auto& text : p.all("crash")) {
    auto c = sim::parse_crash(text, o.nodes);
    if (!c) return error{errc::invalid_argument, "--crash: " + c.err().message};
    o.faults.crashes.push_back(*c);
  }
  o.data_directory = p.get("data");
  o.keep_data = p.has("keep-data");
  o.use_storage = !p.has("no-storage");
  o.verbose = p.has("verbose");
  auto flood = get_unsigned(p, "flood", 0, 0, 1024);
  if (!flood) return flood.err();
  o.flood_in_flight = static_cast<uint32_t>(*flood);
  auto payload = get_unsigned(p, "flood-payload", 64, 0, 65536);
  if (!payload) return payload.err();
  o.flood_payload_bytes = static_cast<uint32_t>(*payload);
  return o;
}

}  // namespace cmesh::cli
