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
      {"freeze", "SPEC", "NODE@START-END: the node neither sends nor receives then (a stop-the-world pause), e.g. 4@10s-12s", "", true},
      {"random-faults", "", "add a seeded storm of loss, duplication, reordering, partitions (some one-way) and crashes with restarts; the replay line spells it out", ""},
      {"election-faults", "", "add a seeded storm aimed at Raft elections and commitment: short partitions, frequent crashes with quick restarts, much reordering, plus --raft-nemesis; sets --election-timeout 150ms-155ms and --raft-batch 1 unless given; the replay line spells it out", ""},
      {"raft-nemesis", "", "reactive faults (with --raft): crash new leaders at once or within a few round trips, crash leaders right after their first commit, crash voters right after they grant a vote; restart them quickly", ""},
      {"data", "DIR", "keep node storage in DIR instead of a temporary folder", ""},
      {"keep-data", "", "do not delete the temporary storage folder at the end", ""},
      {"no-storage", "", "run without LMDB (protocol only; crashes then lose all state)", ""},
      {"agents", "", "run imAlive membership (actors/swim) on every node", ""},
      {"contacts", "K", "with --agents: every node starts knowing K random others instead of joining (then --seed-nodes may be 0)", "0"},
      {"swim-table-max", "N", "with --agents: members each node keeps", "16384"},
      {"swim-retransmit-mult", "M", "with --agents: membership news is sent M * ceil(log10(n+1)) times", "4"},
      {"swim-rumor-retransmit-mult", "M", "with --agents: a rumor is sent M * ceil(log10(n+1)) times", "4"},
      {"flood", "K", "benchmark workload: every node keeps K probes circulating to random nodes", "0 = off"},
      {"flood-payload", "BYTES", "payload of each flood probe", "64"},
      {"raft", "N", "nodes 0..N-1 form a Raft group serving the replicated key/value store", "0 = off"},
      {"kv-clients", "C", "simulated key/value clients (histories checked for linearizability)", "0"},
      {"kv-keys", "K", "keys the clients touch", "3"},
      {"kv-think", "T", "pause between a client's operations", "20ms"},
      {"election-timeout", "MIN-MAX", "Raft election timeout range, e.g. 150ms-300ms", "150ms-300ms"},
      {"heartbeat", "T", "Raft heartbeat interval", "50ms"},
      {"snapshot-every", "N", "compact a replica's log after N applied entries (0 = never)", "200"},
      {"raft-batch", "N", "most entries in one append message", "256"},
      {"churn", "T", "every T remove a random voter, next time add it back (until 80% of the run)", "off"},
      {"no-pre-vote", "", "disable Raft PreVote", ""},
      {"no-check-quorum", "", "disable Raft CheckQuorum and leader leases", ""},
      {"raft-planted-bug", "NAME", "test only: break one Raft rule (vote-ignores-log, commit-old-terms, vote-not-persisted, read-without-quorum)", "none"},
      {"seeds", "N", "sweep: run N seeds from --seed on, print failing seeds with their replay lines and a summary", "1"},
      {"verbose", "", "print every node event (small runs)", ""},
      {"quiet", "", "no progress lines on stderr", ""},
  };
  spec.epilog =
      "Examples:\n"
      "  cmesh sim --nodes 10 --seed 7 --duration 60s --loss 5% --partition 10s-20s:0-4/5-9\n"
      "  cmesh sim --nodes 6 --seed 3 --crash 2@5s+3s --verbose\n"
      "  cmesh sim --nodes 5 --raft 5 --kv-clients 4 --random-faults --churn 2s --seeds 1000\n"
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
  o.agents.swim = p.has("agents");
  auto contacts = get_unsigned(p, "contacts", 0, 0, limits::sim_nodes_max);
  if (!contacts) return contacts.err();
  o.agents.contacts = static_cast<uint32_t>(*contacts);
  auto table = get_unsigned(p, "swim-table-max", o.agents.membership.member_table_max, 2, 1'000'000);
  if (!table) return table.err();
  o.agents.membership.member_table_max = *table;
  auto mult = get_unsigned(p, "swim-retransmit-mult", o.agents.membership.retransmit_mult, 1, 64);
  if (!mult) return mult.err();
  o.agents.membership.retransmit_mult = static_cast<uint32_t>(*mult);
  auto rumor_mult =
      get_unsigned(p, "swim-rumor-retransmit-mult", o.agents.membership.rumor_retransmit_mult, 1, 64);
  if (!rumor_mult) return rumor_mult.err();
  o.agents.membership.rumor_retransmit_mult = static_cast<uint32_t>(*rumor_mult);
  bool contact_lists = o.agents.swim && o.agents.contacts > 0;
  auto seed_nodes = get_unsigned(p, "seed-nodes", 1, contact_lists ? 0 : 1, o.nodes);
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
  for (const auto& text : p.all("freeze")) {
    auto z = sim::parse_freeze(text, o.nodes);
    if (!z) return error{errc::invalid_argument, "--freeze: " + z.err().message};
    o.faults.freezes.push_back(*z);
  }
  for (const auto& text : p.all("crash")) {
    auto c = sim::parse_crash(text, o.nodes);
    if (!c) return error{errc::invalid_argument, "--crash: " + c.err().message};
    o.faults.crashes.push_back(*c);
  }
  if (p.has("random-faults")) {
    auto storm = sim::random_fault_storm(o.seed, o.nodes, 1'000'000, o.duration_us * 4 / 5);
    o.faults.latency = storm.latency;
    o.faults.loss = std::max(o.faults.loss, storm.loss);
    o.faults.duplicate = std::max(o.faults.duplicate, storm.duplicate);
    o.faults.reorder = std::max(o.faults.reorder, storm.reorder);
    for (auto& part : storm.partitions) o.faults.partitions.push_back(std::move(part));
    for (auto& c : storm.crashes) o.faults.crashes.push_back(c);
  }
  if (p.has("election-faults")) {
    auto storm = sim::election_fault_storm(o.seed, o.nodes, 1'000'000, o.duration_us * 4 / 5);
    o.faults.latency = storm.latency;
    o.faults.loss = std::max(o.faults.loss, storm.loss);
    o.faults.duplicate = std::max(o.faults.duplicate, storm.duplicate);
    o.faults.reorder = std::max(o.faults.reorder, storm.reorder);
    for (auto& part : storm.partitions) o.faults.partitions.push_back(std::move(part));
    for (auto& c : storm.crashes) o.faults.crashes.push_back(c);
  }
  if (p.has("raft-nemesis") || p.has("election-faults"))
    o.faults.nemesis = sim::standard_raft_nemesis(o.faults.latency.latency_us_median, 1'000'000,
                                                  o.duration_us * 4 / 5);
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
  auto voters = get_unsigned(p, "raft", 0, 0, o.nodes);
  if (!voters) return voters.err();
  o.raft.voters = static_cast<uint32_t>(*voters);
  auto clients = get_unsigned(p, "kv-clients", 0, 0, 10000);
  if (!clients) return clients.err();
  o.raft.clients = static_cast<uint32_t>(*clients);
  if (o.raft.clients > 0 && o.raft.voters == 0)
    return error{errc::invalid_argument, "--kv-clients needs a Raft group (--raft N)"};
  auto keys = get_unsigned(p, "kv-keys", 3, 1, 1000000);
  if (!keys) return keys.err();
  o.raft.keys = static_cast<uint32_t>(*keys);
  auto think = duration("kv-think", "20ms");
  if (!think) return think.err();
  o.raft.client_think_us = *think;
  // --election-faults comes with its own Raft settings (sim/model/fault_profile.hpp).
  bool election_faults = p.has("election-faults");
  auto range = p.get("election-timeout",
                     election_faults ? sim::format_duration_us(sim::election_storm_timeout_min_us) +
                                           "-" +
                                           sim::format_duration_us(sim::election_storm_timeout_max_us)
                                     : "150ms-300ms");
  auto dash = range.find('-');
  if (dash == std::string::npos)
    return error{errc::invalid_argument, "--election-timeout: expected MIN-MAX, e.g. 150ms-300ms"};
  auto lo = sim::parse_duration_us(range.substr(0, dash));
  auto hi = sim::parse_duration_us(range.substr(dash + 1));
  if (!lo || !hi) return error{errc::invalid_argument, "--election-timeout: '" + range + "' is not MIN-MAX"};
  o.raft.config.election_timeout_min_us = *lo;
  o.raft.config.election_timeout_max_us = *hi;
  auto heartbeat = duration("heartbeat", "50ms");
  if (!heartbeat) return heartbeat.err();
  o.raft.config.heartbeat_interval_us = *heartbeat;
  if (o.raft.voters > 0)
    if (auto s = raft::validate(o.raft.config); !s.ok())
      return error{errc::invalid_argument, "Raft timing: " + s.message};
  auto every = get_unsigned(p, "snapshot-every", 200, 0, UINT64_MAX);
  if (!every) return every.err();
  o.raft.snapshot_every = *every;
  auto batch = get_unsigned(p, "raft-batch", election_faults ? sim::election_storm_append_batch : 256,
                            1, 65536);
  if (!batch) return batch.err();
  o.raft.config.max_entries_per_append = *batch;
  if (p.has("churn")) {
    auto churn = duration("churn", "0");
    if (!churn) return churn.err();
    o.raft.churn_us = *churn;
  }
  o.raft.config.pre_vote = !p.has("no-pre-vote");
  o.raft.config.check_quorum = !p.has("no-check-quorum");
  if (p.has("raft-planted-bug")) {
    auto bug = raft::parse_planted_bug(p.get("raft-planted-bug"));
    if (!bug) return error{errc::invalid_argument, "--raft-planted-bug: " + bug.err().message};
    o.raft.config.bug = *bug;
  }
  return o;
}

}  // namespace cmesh::cli
