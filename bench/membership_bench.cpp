// cmesh bench membership: the imAlive failure detector (actors/swim) measured with the real swim
// actors in the deterministic simulator, over long runs. Two scenarios (issue 3's targets):
//
//   frozen: every --freeze-every a fresh seeded 10% of the agents is frozen for 2 s (a
//     stop-the-world pause: nothing in or out, state kept) under 5% message loss, for long enough
//     that agents x protocol periods reaches 10^6 or more. Nobody crashes, so every failure
//     declaration is a false removal. Reported: false removals (declarations, and distinct agents
//     declared), suspicion events, refutations, member-periods.
//   crash: every --crash-every a fresh seeded 1% of the agents crashes at a seeded random instant
//     of that window (and stays down). Per crashed agent: the time from its crash to the first
//     suspicion of it by any live agent ("detection", SWIM's metric: some member's probe of it
//     failed) and to the first failure declaration by any live agent ("removal": detection plus
//     the suspicion timeout), in protocol periods: mean, median, p99, max.
//
// Agents start knowing every other agent (full views, what a converged join gives; SWIM's and
// Lifeguard's setting), or with --contacts K from K seeded random contacts with member tables of
// K + 16 (partial views, as cmesh bench gossip uses with K = 64). Each run is a child process (`cmesh bench membership-run`) that prints
// progress on stderr and one summary line on stdout. Writes membership.csv to --out.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "actors/swim/swim_actor.hpp"
#include "bench/bench_util.hpp"
#include "bench/commands.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/crypto/identity.hpp"
#include "sim/membership_log.hpp"
#include "sim/model/fault_profile.hpp"
#include "sim/simulation.hpp"

namespace cmesh::bench {

namespace {

constexpr int64_t first_wave_us = 10'000'000;  // faults start after this warm-up

cli::command_spec run_spec() {
  cli::command_spec s;
  s.name = "cmesh bench membership-run";
  s.summary = "One run of cmesh bench membership (a child process): prints one summary line.";
  s.usage = "cmesh bench membership-run --scenario frozen|crash [--nodes N] [--seconds S] [--seed S]";
  s.options = {{"scenario", "frozen|crash", "what to inject", "frozen"},
               {"nodes", "N", "agents", "1000"},
               {"seconds", "S", "virtual seconds to run", "1000"},
               {"seed", "S", "simulation seed", "1"},
               {"loss", "P", "message loss probability", "0.05 (frozen), 0 (crash)"},
               {"contacts", "K", "0: full views (every agent starts knowing all others; member table "
                                 "16,384); K > 0: partial views of K random contacts (member table K + 16)", "0"},
               {"fraction", "P", "agents frozen (crashed) per wave", "0.1 (frozen), 0.01 (crash)"},
               {"every", "T", "one wave every T", "10s"},
               {"retransmit-mult", "M", "swim retransmit_mult: membership news is sent M * ceil(log10(n + 1)) times", "8"},
               {"freeze-for", "T", "length of a freeze", "2s"},
               {"tail", "T", "quiet time after the last wave (crash: room for the suspicion timeout)",
                "20s (frozen), 60s (crash)"}};
  return s;
}

struct detection_summary {
  double mean = 0, median = 0, p99 = 0, max = 0;
  size_t count = 0;
};

// The numbers after "NAME " on a line of the child's output.
std::vector<double> find_list(const std::string& text, const std::string& name) {
  std::vector<double> values;
  auto at = text.find("\n" + name + " ");
  if (at == std::string::npos) at = text.find("\n" + name + "\n");
  if (at == std::string::npos) return values;
  const char* p = text.c_str() + at + 1 + name.size();
  char* end = nullptr;
  for (double v = std::strtod(p, &end); end != p; v = std::strtod(p, &end)) {
    values.push_back(v);
    p = end;
  }
  return values;
}

detection_summary summarize(std::vector<double> values) {
  detection_summary s;
  s.count = values.size();
  if (values.empty()) return s;
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / values.size();
  s.median = median(values);
  s.p99 = percentile(values, 0.99);
  s.max = *std::max_element(values.begin(), values.end());
  return s;
}

}  // namespace

int run_membership_scenario(int argc, char** argv) {
  auto s = run_spec();
  int usage_code = 0;
  auto parsed = cli::parse_command_line(s, argc, argv, usage_code);
  if (!parsed) return usage_code;
  std::string scenario = parsed->get("scenario", "frozen");
  bool frozen = scenario == "frozen";
  auto nodes = cli::get_unsigned(*parsed, "nodes", 1000, 10, 200'000);
  auto seconds = cli::get_unsigned(*parsed, "seconds", 1000, 1, 1'000'000);
  auto seed = cli::get_unsigned(*parsed, "seed", 1, 0, ~uint64_t{0});
  auto contacts = cli::get_unsigned(*parsed, "contacts", 0, 0, 100'000);
  auto retransmit = cli::get_unsigned(*parsed, "retransmit-mult", swim::config{}.retransmit_mult, 1, 64);
  double loss = std::atof(parsed->get("loss", frozen ? "0.05" : "0").c_str());
  double fraction = std::atof(parsed->get("fraction", frozen ? "0.1" : "0.01").c_str());
  auto every = sim::parse_duration_us(parsed->get("every", "10s"));
  auto freeze_for = sim::parse_duration_us(parsed->get("freeze-for", "2s"));
  auto tail = sim::parse_duration_us(parsed->get("tail", frozen ? "20s" : "60s"));
  if ((!frozen && scenario != "crash") || !nodes || !seconds || !seed || !contacts || !retransmit || !every ||
      !freeze_for || !tail || *every <= 0 || *freeze_for <= 0 || *freeze_for >= *every ||
      loss < 0 || loss >= 1 || fraction <= 0 || fraction >= 1) {
    std::fprintf(stderr, "cmesh bench membership-run: bad arguments (see --help)\n");
    return cli::exit_usage;
  }
  crypto_init();
  sim::membership_log log;
  sim::simulation_options o;
  o.nodes = static_cast<uint32_t>(*nodes);
  o.seed = *seed;
  o.seed_nodes = 0;  // no joins: agents start from contact lists
  o.join_spread_us = 0;
  o.use_storage = false;
  o.faults.loss = loss;
  o.duration_us = static_cast<int64_t>(*seconds) * 1'000'000;
  o.agents.swim = true;
  if (*contacts == 0) {
    o.agents.contacts = o.nodes - 1;  // full views, the member table at its default bound
  } else {
    o.agents.contacts = static_cast<uint32_t>(*contacts);
    o.agents.membership.member_table_max = static_cast<size_t>(*contacts) + 16;
  }
  o.agents.membership.retransmit_mult = static_cast<uint32_t>(*retransmit);
  o.agents.watcher = &log;
  const int64_t period_us = o.agents.membership.protocol_period_us;
  const auto per_wave = std::max<uint32_t>(1, static_cast<uint32_t>(fraction * o.nodes));

  // Waves: from first_wave_us, one every `every`, while the wave (and its tail) fits in the run.
  rng pick(mix_seed(o.seed, 0x6d656d62657273));
  std::vector<bool> down(o.nodes, false);
  std::vector<std::pair<uint32_t, int64_t>> crashes;  // (agent, at)
  uint64_t waves = 0;
  for (int64_t wave = first_wave_us; wave + *every + *tail <= o.duration_us; wave += *every) {
    std::set<uint32_t> chosen;
    uint32_t available = 0;
    for (uint32_t i = 0; i < o.nodes; ++i) available += down[i] ? 0 : 1;
    if (available <= per_wave) break;
    while (chosen.size() < per_wave) {
      auto i = static_cast<uint32_t>(pick.below(o.nodes));
      if (!down[i]) chosen.insert(i);
    }
    ++waves;
    for (auto i : chosen) {
      if (frozen) {
        o.faults.freezes.push_back({i, wave, wave + *freeze_for});
      } else {
        int64_t at = wave + static_cast<int64_t>(pick.below(static_cast<uint64_t>(*every)));
        down[i] = true;
        crashes.emplace_back(i, at);
        o.faults.crashes.push_back({i, at, -1});
      }
    }
  }
  std::vector<node_id> keys(o.nodes);
  for (uint32_t i = 0; i < o.nodes; ++i) keys[i] = identity::derive_for_simulation(o.seed, i).public_key;
  for (const auto& [i, at] : crashes) log.watch_from_us[keys[i]] = at;

  auto created = sim::simulation::create(o);
  if (!created) {
    std::fprintf(stderr, "cmesh bench membership-run: %s\n", created.err().describe().c_str());
    return cli::exit_failed;
  }
  auto& simulation = **created;
  auto wall_start = std::chrono::steady_clock::now();
  auto wall = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  };
  for (int step = 1; step <= 10; ++step) {
    simulation.run_until(o.duration_us * step / 10);
    std::fprintf(stderr, "  %s seed %llu: %3d%% (%lld of %lld virtual s, %.0f wall s, %llu suspicions, "
                         "%llu failure declarations so far)\n",
                 scenario.c_str(), static_cast<unsigned long long>(o.seed), step * 10,
                 static_cast<long long>(simulation.now_us() / 1'000'000),
                 static_cast<long long>(o.duration_us / 1'000'000), wall(),
                 static_cast<unsigned long long>(log.suspicions),
                 static_cast<unsigned long long>(log.failures));
  }
  double wall_seconds = wall();
  auto report = simulation.report();

  // A false removal: a failure declaration about an agent that was up at that moment. Crashed
  // agents stay down, so "was ever crashed" is "was down", except for a declaration made before
  // its crash, which the watch window excludes from detection anyway; count those as false too.
  std::set<node_id> crashed_keys;
  for (const auto& [i, at] : crashes) crashed_keys.insert(keys[i]);
  uint64_t false_removals = 0;
  std::set<node_id> falsely_removed;
  for (const auto& [observer, members] : log.declarations)
    for (const auto& m : members)
      if (!crashed_keys.count(m)) {
        ++false_removals;
        falsely_removed.insert(m);
      }
  // Where false removals come from: the declared agent was frozen shortly before (its freeze
  // ended at most 80 s earlier: longer than the longest suspicion timeout at 1,000 agents), or
  // the declaring agent was, or neither.
  std::map<node_id, std::vector<std::pair<int64_t, int64_t>>> frozen_windows;
  for (const auto& f : o.faults.freezes) frozen_windows[keys[f.node]].emplace_back(f.start_us, f.end_us);
  auto frozen_before = [&](const node_id& who, int64_t at) {
    auto it = frozen_windows.find(who);
    if (it == frozen_windows.end()) return false;
    for (const auto& [start, end] : it->second)
      if (start <= at && at <= end + 80'000'000) return true;
    return false;
  };
  uint64_t false_member_frozen = 0, false_observer_frozen = 0, false_other = 0;
  for (const auto& d : log.timeline) {
    if (crashed_keys.count(d.member)) continue;
    if (frozen_before(d.member, d.at_us)) ++false_member_frozen;
    else if (frozen_before(d.observer, d.at_us)) ++false_observer_frozen;
    else ++false_other;
  }
  uint64_t member_periods = uint64_t{o.nodes} * static_cast<uint64_t>(o.duration_us / period_us);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("scenario=%s seed=%llu nodes=%u virtual_s=%lld waves=%llu member_periods=%llu "
              "suspicions=%llu refutations=%llu failure_declarations=%llu false_removals=%llu "
              "agents_falsely_removed=%zu false_of_recently_frozen=%llu false_by_recently_frozen=%llu "
              "false_other=%llu",
              scenario.c_str(), static_cast<unsigned long long>(o.seed), o.nodes,
              static_cast<long long>(o.duration_us / 1'000'000), static_cast<unsigned long long>(waves),
              static_cast<unsigned long long>(member_periods),
              static_cast<unsigned long long>(log.suspicions),
              static_cast<unsigned long long>(log.refutations),
              static_cast<unsigned long long>(log.failures),
              static_cast<unsigned long long>(false_removals), falsely_removed.size(),
              static_cast<unsigned long long>(false_member_frozen),
              static_cast<unsigned long long>(false_observer_frozen),
              static_cast<unsigned long long>(false_other));
  std::vector<double> detect_all, remove_all;
  if (!frozen) {
    std::vector<double> detect, remove;
    for (const auto& [i, at] : crashes) {
      auto s = log.first_suspected_us.find(keys[i]);
      auto f = log.first_failed_us.find(keys[i]);
      // A member declared failed without a suspicion seen first cannot happen (failure follows
      // suspicion at the accuser); if it did, the failure time is its detection.
      int64_t first = s != log.first_suspected_us.end() ? s->second
                      : f != log.first_failed_us.end() ? f->second : -1;
      if (first >= 0) detect.push_back(static_cast<double>(first - at) / period_us);
      if (f != log.first_failed_us.end()) remove.push_back(static_cast<double>(f->second - at) / period_us);
    }
    auto d = summarize(detect), r = summarize(remove);
    std::printf(" crashed=%zu detected=%zu detect_mean=%.3f detect_median=%.3f detect_p99=%.3f "
                "detect_max=%.3f removed=%zu remove_mean=%.3f remove_median=%.3f remove_p99=%.3f "
                "remove_max=%.3f",
                crashes.size(), d.count, d.mean, d.median, d.p99, d.max, r.count, r.mean, r.median,
                r.p99, r.max);
    detect_all = detect;
    remove_all = remove;
  }
  std::printf(" wall_seconds=%.1f speedup=%.2f peak_rss_kib=%ld\n", wall_seconds,
              static_cast<double>(o.duration_us) / 1e6 / wall_seconds, usage.ru_maxrss);
  if (!frozen) {
    // Every crash's figures, for the parent to pool over runs (first suspicion, first failure).
    std::printf("detect_periods");
    for (double v : detect_all) std::printf(" %.4f", v);
    std::printf("\nremove_periods");
    for (double v : remove_all) std::printf(" %.4f", v);
    std::printf("\n");
  }
  if (!report.violations.empty()) {
    std::fprintf(stderr, "violations: %s\n", report.violations.front().c_str());
    return cli::exit_failed;
  }
  return cli::exit_ok;
}

namespace {

cli::command_spec spec() {
  cli::command_spec s;
  s.name = "cmesh bench membership";
  s.summary = "imAlive failure detector with the real swim actors in the simulator: false removals "
              "with frozen agents over >= 10^6 member-periods, and crash detection time.";
  s.usage = "cmesh bench membership [--scenarios frozen,crash] [--nodes N] [--runs R] [--out DIR]";
  s.options = {{"scenarios", "LIST", "frozen, crash or both", "frozen,crash"},
               {"nodes", "N", "agents", "1000"},
               {"frozen-seconds", "S", "virtual length of a frozen run (member-periods = N x S)", "1000"},
               {"crash-seconds", "S", "virtual length of a crash run", "170"},
               {"contacts", "K", "0: full views (every agent knows all others); K > 0: partial views of K "
                                 "random contacts, member tables of K + 16 (as cmesh bench gossip: 64)", "0"},
               {"retransmit-mult", "M", "swim retransmit_mult of every agent (membership news)", "8"},
               {"runs", "R", "seeds per scenario (1..R); medians are reported, false removals summed", "3"},
               {"out", "DIR", "folder for membership.csv", "./bench-results"}};
  s.epilog = "frozen: every 10 s a fresh 10% of the agents is frozen for 2 s, 5% loss; every failure\n"
             "declaration is a false removal (nobody crashes). Target: <= 1 per 10^6 member-periods.\n"
             "crash: every 10 s a fresh 1% of the agents crashes at a random instant, no loss; per crash,\n"
             "periods until the first suspicion (detection; target: 1.6 on average) and until the first\n"
             "failure declaration (removal = detection + suspicion timeout) by any live agent.\n"
             "Views: full by default (every agent knows every other: SWIM's setting); --contacts 64 gives\n"
             "the partial views of cmesh bench gossip. A 1,000-agent frozen run of 1,000 s with full views\n"
             "takes ~10 minutes on an idle core (20-40 on a busy one); each run prints progress on stderr.\n"
             "Results: docs/benchmarks.md.";
  return s;
}

}  // namespace

int run_membership_bench(int argc, char** argv) {
  auto s = spec();
  int usage_code = 0;
  auto parsed = cli::parse_command_line(s, argc, argv, usage_code);
  if (!parsed) return usage_code;
  auto runs = cli::get_unsigned(*parsed, "runs", 3, 1, 50);
  auto nodes = cli::get_unsigned(*parsed, "nodes", 1000, 10, 200'000);
  auto frozen_seconds = cli::get_unsigned(*parsed, "frozen-seconds", 1000, 40, 1'000'000);
  auto crash_seconds = cli::get_unsigned(*parsed, "crash-seconds", 170, 90, 1'000'000);
  auto contacts = cli::get_unsigned(*parsed, "contacts", 0, 0, 100'000);
  auto retransmit = cli::get_unsigned(*parsed, "retransmit-mult", swim::config{}.retransmit_mult, 1, 64);
  if (!runs || !retransmit || !nodes || !frozen_seconds || !crash_seconds || !contacts) {
    std::fprintf(stderr, "cmesh bench membership: bad --runs, --nodes, --frozen-seconds, "
                         "--crash-seconds or --contacts (see --help)\n");
    return cli::exit_usage;
  }
  std::string out = parsed->get("out", "./bench-results");
  std::filesystem::create_directories(out);
  std::vector<std::string> rows;
  for (const auto& scenario : cli::split_list(parsed->get("scenarios", "frozen,crash"))) {
    if (scenario != "frozen" && scenario != "crash") {
      std::fprintf(stderr, "cmesh bench membership: unknown scenario '%s'\n", scenario.c_str());
      return cli::exit_usage;
    }
    bool frozen = scenario == "frozen";
    std::string seconds = std::to_string(frozen ? *frozen_seconds : *crash_seconds);
    std::printf("%s: %llu agents, %s, %s virtual s per run, %llu run(s)\n", scenario.c_str(),
                static_cast<unsigned long long>(*nodes),
                *contacts == 0 ? "full views" : ("partial views of " + std::to_string(*contacts)).c_str(),
                seconds.c_str(), static_cast<unsigned long long>(*runs));
    std::fflush(stdout);
    std::vector<double> speed, memory, detect, remove;
    uint64_t member_periods = 0, false_removals = 0, suspicions = 0, refutations = 0, crashed = 0,
             detected = 0, removed = 0;
    double falsely_removed = 0;
    for (uint64_t run = 0; run < *runs; ++run) {
      auto child = run_self({"bench", "membership-run", "--scenario", scenario, "--nodes",
                             std::to_string(*nodes), "--seconds", seconds, "--contacts",
                             std::to_string(*contacts), "--retransmit-mult", std::to_string(*retransmit),
                             "--seed", std::to_string(run + 1)},
                            /*stderr_to_terminal=*/true);
      if (child.exit_code != 0) {
        std::fprintf(stderr, "cmesh bench membership: %s seed %llu failed:\n%s\n", scenario.c_str(),
                     static_cast<unsigned long long>(run + 1), child.output.c_str());
        return cli::exit_failed;
      }
      std::printf("%s", child.output.substr(0, child.output.find('\n') + 1).c_str());
      std::fflush(stdout);
      member_periods += static_cast<uint64_t>(find_number(child.output, "member_periods"));
      false_removals += static_cast<uint64_t>(find_number(child.output, "false_removals"));
      falsely_removed += find_number(child.output, "agents_falsely_removed");
      suspicions += static_cast<uint64_t>(find_number(child.output, "suspicions"));
      refutations += static_cast<uint64_t>(find_number(child.output, "refutations"));
      speed.push_back(find_number(child.output, "speedup"));
      memory.push_back(child.peak_rss_kib / 1024.0);
      if (!frozen) {
        crashed += static_cast<uint64_t>(find_number(child.output, " crashed"));
        detected += static_cast<uint64_t>(find_number(child.output, " detected"));
        removed += static_cast<uint64_t>(find_number(child.output, " removed")  /* not agents_falsely_removed */);
        for (double v : find_list(child.output, "detect_periods")) detect.push_back(v);
        for (double v : find_list(child.output, "remove_periods")) remove.push_back(v);
      }
    }
    std::printf("%s total over %llu run(s): %llu member-periods, %llu suspicion events, %llu "
                "refutations, %llu false removals (%.0f agents), %.3f per 10^6 member-periods; "
                "median speedup %.2fx, peak %.0f MiB\n",
                scenario.c_str(), static_cast<unsigned long long>(*runs),
                static_cast<unsigned long long>(member_periods),
                static_cast<unsigned long long>(suspicions),
                static_cast<unsigned long long>(refutations),
                static_cast<unsigned long long>(false_removals), falsely_removed,
                member_periods ? 1e6 * false_removals / member_periods : 0.0, median(speed),
                median(memory));
    auto d = summarize(detect), r = summarize(remove);
    if (!frozen)
      std::printf("crash, all runs pooled (protocol periods): detection mean %.2f median %.2f p99 %.2f "
                  "max %.2f (%llu of %llu crashes detected); removal mean %.2f median %.2f p99 %.2f "
                  "max %.2f (%llu removed)\n",
                  d.mean, d.median, d.p99, d.max, static_cast<unsigned long long>(detected),
                  static_cast<unsigned long long>(crashed), r.mean, r.median, r.p99, r.max,
                  static_cast<unsigned long long>(removed));
    std::fflush(stdout);
    rows.push_back(format("%s,%llu,%llu,%llu,%s,%llu,%llu,%llu,%llu,%llu,%.0f,%llu,%.3f,%.3f,%.3f,%.3f,%.3f,"
                          "%.3f,%.3f,%.3f,%.2f,%.0f",
                          scenario.c_str(), static_cast<unsigned long long>(*nodes),
                          static_cast<unsigned long long>(*contacts),
                          static_cast<unsigned long long>(*retransmit), seconds.c_str(),
                          static_cast<unsigned long long>(*runs),
                          static_cast<unsigned long long>(member_periods),
                          static_cast<unsigned long long>(suspicions),
                          static_cast<unsigned long long>(refutations),
                          static_cast<unsigned long long>(false_removals), falsely_removed,
                          static_cast<unsigned long long>(crashed), d.mean, d.median, d.p99, d.max,
                          r.mean, r.median, r.p99, r.max, median(speed), median(memory)));
  }
  write_csv(out, "membership",
            "scenario,agents,contacts,retransmit_mult,virtual_s,runs,member_periods,suspicions,refutations,false_removals,"
            "agents_falsely_removed,crashed,detect_mean,detect_median,detect_p99,detect_max,"
            "remove_mean,remove_median,remove_p99,remove_max,speedup,peak_mib",
            rows);
  std::printf("csv: %s/membership.csv\n", out.c_str());
  return cli::exit_ok;
}

}  // namespace cmesh::bench
