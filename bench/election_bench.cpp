// cmesh bench election: Figure 16 of the Raft paper (Ongaro & Ousterhout 2014, §9.3) in the
// deterministic simulator. Five replicas (the real kv replica actor over the Raft machine) elect a
// leader; once it has led for a while it is crashed at a uniformly random point of its heartbeat
// interval, and we measure the virtual time until another replica becomes leader in a higher term.
// One trial is one fresh simulation (seed = base seed + trial index), so any trial replays alone.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "bench/bench_util.hpp"
#include "bench/commands.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/core/rng.hpp"
#include "sim/simulation.hpp"

namespace cmesh::bench {

namespace {

constexpr const char* default_ranges =
    "150-150,150-151,150-155,150-175,150-200,150-300,12-24,25-50,50-100,100-200";

cli::command_spec spec() {
  cli::command_spec s;
  s.name = "cmesh bench election";
  s.summary =
      "Raft leader election after a leader crash (Figure 16 of the Raft paper) in the simulator: 5 "
      "replicas, the leader is crashed at a random point of its heartbeat interval (half the minimum "
      "election timeout), and the virtual time until a new leader is elected is measured, for each "
      "election timeout range, with the paper's setup (no PreVote, no CheckQuorum) and with our "
      "defaults (both on). Writes election.csv, cdf-*.dat and election-*.png (gnuplot) to --out.";
  s.usage = "cmesh bench election [--trials N] [--ranges LIST] [--config MODE] [--out DIR]";
  s.options = {
      {"trials", "N", "trials per configuration and range", "1000"},
      {"ranges", "LIST", "election timeout ranges in ms, MIN-MAX, comma-separated (150-300 belongs to "
                         "both panels of the paper's figure: it runs once and is plotted in both)",
       default_ranges},
      {"config", "MODE", "paper (no PreVote, no CheckQuorum), defaults (both on) or both", "both"},
      {"seed", "S", "base seed: trial i runs with seed S+i", "1"},
      {"latency", "T", "median one-way latency (log-normal)", "7ms"},
      {"latency-spread", "SIGMA", "log-normal shape of the latency", "0.1"},
      {"stable", "T", "how long the first leader must have led before it is crashed", "500ms"},
      {"cap", "T", "give up on a trial after this much virtual time without a new leader", "30s"},
      {"out", "DIR", "folder for election.csv, the CDF data and the plots", "./bench-results/election"},
      {"verbose", "", "print every node event (use with --trials 1 to look at one trial)", ""},
  };
  s.epilog =
      "Examples:\n"
      "  cmesh bench election --trials 50\n"
      "  cmesh bench election --config paper --ranges 150-150 --seed 17 --trials 1 --verbose\n";
  return s;
}

struct timeout_range {
  int64_t min_us = 0;
  int64_t max_us = 0;
  std::string label;  // "150-300"
};

struct setup {
  bool pre_vote = false;
  bool check_quorum = false;
  int64_t latency_us = 7000;
  double latency_spread = 0.1;
  int64_t stable_us = 500'000;
  int64_t cap_us = 30'000'000;
  bool verbose = false;
};

// What one trial found. elapsed_us < 0: no leader within the cap.
struct trial {
  uint64_t seed = 0;
  bool setup_failed = false;  // no stable first leader (never seen so far)
  int64_t elapsed_us = -1;
  uint32_t old_leader = 0, new_leader = 0;
  uint64_t terms = 0;         // new leader's term minus the crashed leader's term
  int64_t crash_us = 0;
  std::vector<std::string> violations;
  std::string error;          // the trial could not be measured
  bool fatal = false;         // ... because the simulation could not be created (bad options)
};

constexpr int64_t setup_cap_us = 60'000'000;  // a first stable leader must appear before this

trial run_trial(const setup& su, const timeout_range& range, uint64_t seed) {
  trial t;
  t.seed = seed;
  sim::simulation_options o;
  o.nodes = 5;
  o.seed = seed;
  o.use_storage = false;
  o.join_spread_us = 5'000;
  o.faults.latency.latency_us_median = su.latency_us;
  o.faults.latency.latency_spread = su.latency_spread;
  // As `cmesh sim` sets them for this median.
  o.faults.latency.latency_us_min = std::min<int64_t>(100, su.latency_us);
  o.faults.latency.latency_us_max = std::max<int64_t>(2'000'000, 20 * su.latency_us);
  o.raft.voters = 5;
  o.raft.clients = 0;
  o.raft.snapshot_every = 0;
  o.raft.config.election_timeout_min_us = range.min_us;
  o.raft.config.election_timeout_max_us = range.max_us;
  o.raft.config.heartbeat_interval_us = range.min_us / 2;
  o.raft.config.pre_vote = su.pre_vote;
  o.raft.config.check_quorum = su.check_quorum;
  o.verbose = su.verbose;
  o.duration_us = setup_cap_us + su.stable_us + range.min_us + su.cap_us + 1'000'000;
  auto created = sim::simulation::create(o);
  if (!created) {
    t.error = created.err().message;
    t.fatal = true;
    return t;
  }
  auto& run = **created;

  // 1. A leader that has led for `stable`.
  int leader = -1;
  for (int64_t at = 10'000; at <= setup_cap_us && leader < 0; at += 10'000) {
    run.run_until(at);
    for (uint32_t i = 0; i < o.nodes; ++i) {
      const auto& v = run.view(i);
      if (v.up && v.raft_leader && v.raft_leader_since_us >= 0 && at - v.raft_leader_since_us >= su.stable_us)
        leader = static_cast<int>(i);
    }
  }
  if (leader < 0) {
    t.setup_failed = true;
    return t;
  }

  // 2. Crash it at a uniformly random point of its heartbeat interval.
  rng pick(mix_seed(seed, 0x454c4543));
  int64_t heartbeat = o.raft.config.heartbeat_interval_us;
  t.crash_us = run.now_us() + static_cast<int64_t>(pick.below(static_cast<uint64_t>(heartbeat)));
  run.run_until(t.crash_us);
  const auto& old = run.view(static_cast<uint32_t>(leader));
  if (!old.raft_leader) {
    t.error = "the leader stepped down before the crash";
    return t;
  }
  uint64_t old_term = old.raft_term;
  t.old_leader = static_cast<uint32_t>(leader);
  run.crash(t.old_leader);

  // 3. Step in 1 ms slices until another live node leads in a higher term; the election time
  // itself comes from raft_leader_since_us, so it is exact to the microsecond.
  for (int64_t at = t.crash_us + 1000; at <= t.crash_us + su.cap_us && t.elapsed_us < 0; at += 1000) {
    run.run_until(at);
    int64_t first = INT64_MAX;
    for (uint32_t i = 0; i < o.nodes; ++i) {
      const auto& v = run.view(i);
      if (i == t.old_leader || !v.up || !v.raft_leader || v.raft_term <= old_term) continue;
      if (v.raft_leader_since_us < first) {
        first = v.raft_leader_since_us;
        t.new_leader = i;
        t.terms = v.raft_term - old_term;
      }
    }
    if (first != INT64_MAX) t.elapsed_us = first - t.crash_us;
  }
  t.violations = run.report().violations;
  return t;
}

result<std::vector<timeout_range>> parse_ranges(const std::string& list) {
  std::vector<timeout_range> out;
  for (size_t pos = 0; pos < list.size();) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(pos, comma - pos);
    pos = comma + 1;
    auto dash = item.find('-');
    char* end = nullptr;
    timeout_range r;
    if (dash != std::string::npos) {
      double lo = std::strtod(item.c_str(), &end);
      bool ok_lo = end == item.c_str() + dash;
      double hi = std::strtod(item.c_str() + dash + 1, &end);
      bool ok_hi = end == item.c_str() + item.size() && dash + 1 < item.size();
      if (ok_lo && ok_hi && lo >= 1 && hi >= lo && hi <= 60'000) {
        r.min_us = static_cast<int64_t>(std::llround(lo * 1000));
        r.max_us = static_cast<int64_t>(std::llround(hi * 1000));
        r.label = item;
        out.push_back(r);
        continue;
      }
    }
    return error{errc::invalid_argument,
                 "--ranges: bad range '" + item + "' (expected MIN-MAX in ms, 1 <= MIN <= MAX, e.g. 150-300)"};
  }
  if (out.empty()) return error{errc::invalid_argument, "--ranges: no range given"};
  return out;
}

// Figure 16 / §9.3 as the paper states it, for the ranges it mentions.
const char* paper_says(const std::string& label) {
  if (label == "150-150") return "slowest split votes > 10 s";
  if (label == "150-155") return "median 287 ms";
  if (label == "150-200") return "worst 513 ms (of 1000)";
  if (label == "12-24") return "mean 35 ms, worst 152 ms";
  return "";
}

std::string ms(double us) {
  if (std::isinf(us)) return "n/a";
  return format("%.1f", us / 1000.0);
}

struct summary {
  size_t trials = 0, timeouts = 0, over_10s = 0, setup_failed = 0, errors = 0, violations = 0;
  double min = 0, median = 0, mean = 0, p90 = 0, p99 = 0, max = 0;  // us; inf = past the cap
  bool mean_is_bound = false;                                          // timeouts counted as the cap
  double terms_mean = 0;
};

summary summarize(const std::vector<trial>& trials, int64_t cap_us) {
  summary s;
  std::vector<double> values;
  double sum = 0, terms = 0;
  size_t elected = 0;
  for (const auto& t : trials) {
    if (t.setup_failed) { ++s.setup_failed; continue; }
    if (!t.error.empty()) { ++s.errors; continue; }
    if (!t.violations.empty()) ++s.violations;
    ++s.trials;
    if (t.elapsed_us < 0) {
      ++s.timeouts;
      if (cap_us >= 10'000'000) ++s.over_10s;
      values.push_back(std::numeric_limits<double>::infinity());
      sum += static_cast<double>(cap_us);
      continue;
    }
    if (t.elapsed_us > 10'000'000) ++s.over_10s;
    values.push_back(static_cast<double>(t.elapsed_us));
    sum += static_cast<double>(t.elapsed_us);
    terms += static_cast<double>(t.terms);
    ++elected;
  }
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.min = values.front();
  s.max = values.back();
  s.median = percentile(values, 0.5);
  s.p90 = percentile(values, 0.9);
  s.p99 = percentile(values, 0.99);
  s.mean = sum / static_cast<double>(values.size());
  s.mean_is_bound = s.timeouts > 0;
  s.terms_mean = elected ? terms / static_cast<double>(elected) : 0;
  return s;
}

std::string cell(double us) { return std::isinf(us) ? std::string(">cap") : format("%.1f", us / 1000.0); }

void print_header() {
  std::printf("| range (ms) | trials | min | median | mean | p90 | p99 | max | terms/election | > 10 s | no leader in cap | paper |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
}

void print_row(const timeout_range& r, const summary& s) {
  std::printf("| %s | %zu | %s | %s | %s%s | %s | %s | %s | %.2f | %zu | %zu | %s |\n", r.label.c_str(), s.trials,
              cell(s.min).c_str(), cell(s.median).c_str(), s.mean_is_bound ? ">" : "", cell(s.mean).c_str(),
              cell(s.p90).c_str(), cell(s.p99).c_str(), cell(s.max).c_str(), s.terms_mean, s.over_10s, s.timeouts,
              paper_says(r.label));
  std::fflush(stdout);
}

// CDF data: one gnuplot data block per range (index i), "elapsed_ms cumulative_percent"; trials past
// the cap are counted in the denominator but not plotted, so such a curve stays below 100%.
void write_cdf(const std::string& path, const std::vector<timeout_range>& ranges,
               const std::vector<std::vector<trial>>& results) {
  std::ofstream out(path, std::ios::trunc);
  for (size_t i = 0; i < ranges.size(); ++i) {
    std::vector<double> values;
    size_t total = 0;
    for (const auto& t : results[i]) {
      if (t.setup_failed || !t.error.empty()) continue;
      ++total;
      if (t.elapsed_us >= 0) values.push_back(static_cast<double>(t.elapsed_us) / 1000.0);
    }
    std::sort(values.begin(), values.end());
    out << "# " << ranges[i].label << "\n";
    for (size_t k = 0; k < values.size(); ++k)
      out << format("%.3f %.4f\n", values[k], 100.0 * static_cast<double>(k + 1) / static_cast<double>(total));
    if (values.empty()) out << "nan nan\n";
    out << "\n\n";
  }
}

bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

// Two panels like Figure 16: ranges starting at 150 ms (log time axis), then the others plus
// 150-300 (linear axis).
// Ranges where no trial elected a leader within the cap have no curve.
bool plot(const std::string& dir, const std::string& config_name, const std::string& title,
          const std::vector<timeout_range>& ranges, const std::vector<bool>& has_data) {
  std::vector<size_t> top, bottom;
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (!has_data[i]) continue;
    if (ranges[i].min_us == 150'000) top.push_back(i);
    if (ranges[i].min_us != 150'000) bottom.push_back(i);
  }
  for (size_t i = 0; i < ranges.size(); ++i)
    if (has_data[i] && ranges[i].min_us == 150'000 && ranges[i].max_us == 300'000) bottom.push_back(i);
  if (top.empty() && bottom.empty()) return false;
  std::string data = "cdf-" + config_name + ".dat";
  std::string script_path = dir + "/election-" + config_name + ".gp";
  std::ofstream gp(script_path, std::ios::trunc);
  gp << "set terminal pngcairo size 900,900 font 'sans,10'\n"
     << "set output 'election-" << config_name << ".png'\n"
     << "set multiplot layout 2,1 title '" << title << "'\n"
     << "set grid\nset key right bottom\nset ylabel 'cumulative percent'\nset yrange [0:100]\n";
  auto panel = [&](const std::vector<size_t>& which, bool log_axis) {
    if (which.empty()) return;
    if (log_axis)
      gp << "set logscale x\nset xrange [50:*]\n";
    else
      gp << "unset logscale x\nset xrange [0:*]\n";
    gp << "set xlabel 'time without leader (ms)'\nplot ";
    for (size_t k = 0; k < which.size(); ++k) {
      if (k) gp << ", ";
      gp << "'" << data << "' index " << which[k] << " using 1:2 with steps lw 2 lc " << which[k] + 1 << " title '" << ranges[which[k]].label
         << " ms'";
    }
    gp << "\n";
  };
  panel(top, true);
  panel(bottom, false);
  gp << "unset multiplot\n";
  gp.close();
  std::string command = "cd '" + dir + "' && gnuplot 'election-" + config_name + ".gp'";
  return std::system(command.c_str()) == 0;
}

}  // namespace

int run_election_bench(int argc, char** argv) {
  auto s = spec();
  int usage_code = 0;
  auto parsed = cli::parse_command_line(s, argc, argv, usage_code);
  if (!parsed) return usage_code;
  auto fail = [](const std::string& message) {
    std::fprintf(stderr, "cmesh bench election: %s\n", message.c_str());
    return cli::exit_usage;
  };
  auto trials = cli::get_unsigned(*parsed, "trials", 1000, 1, 1'000'000);
  if (!trials) return fail(trials.err().message);
  auto base_seed = cli::get_unsigned(*parsed, "seed", 1, 0, UINT64_MAX);
  if (!base_seed) return fail(base_seed.err().message);
  auto ranges = parse_ranges(parsed->get("ranges", default_ranges));
  if (!ranges) return fail(ranges.err().message);
  setup base;
  auto duration = [&](const char* name, const char* fallback, int64_t min_us) -> result<int64_t> {
    auto v = sim::parse_duration_us(parsed->get(name, fallback));
    if (!v) return error{errc::invalid_argument, std::string("--") + name + ": " + v.err().message};
    if (*v < min_us)
      return error{errc::invalid_argument, std::string("--") + name + ": must be at least " + sim::format_duration_us(min_us)};
    return *v;
  };
  auto latency = duration("latency", "7ms", 1);
  if (!latency) return fail(latency.err().message);
  auto stable = duration("stable", "500ms", 0);
  if (!stable) return fail(stable.err().message);
  auto cap = duration("cap", "30s", 1000);
  if (!cap) return fail(cap.err().message);
  base.latency_us = *latency;
  base.stable_us = *stable;
  base.cap_us = *cap;
  {
    std::string text = parsed->get("latency-spread", "0.1");
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !(v >= 0 && v <= 5))
      return fail("--latency-spread: '" + text + "' is not a number in 0..5");
    base.latency_spread = v;
  }
  base.verbose = parsed->has("verbose");
  struct configuration {
    std::string name;
    std::string title;
    bool pre_vote;
    bool check_quorum;
  };
  std::vector<configuration> configs;
  std::string mode = parsed->get("config", "both");
  if (mode == "paper" || mode == "both")
    configs.push_back({"paper", "paper setup: no PreVote, no CheckQuorum", false, false});
  if (mode == "defaults" || mode == "both")
    configs.push_back({"defaults", "cmesh defaults: PreVote and CheckQuorum on", true, true});
  if (configs.empty()) return fail("--config must be paper, defaults or both");
  std::string out = parsed->get("out", "./bench-results/election");
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) return fail("--out: cannot create '" + out + "': " + ec.message());
  std::filesystem::remove(out + "/election.csv", ec);

  std::printf("cmesh bench election: 5 replicas, one-way latency %s median (log-normal, spread %g), heartbeat = "
              "min timeout / 2, no storage (in-memory Raft log), %llu trials per range, seeds %llu..%llu, cap %s\n",
              sim::format_duration_us(base.latency_us).c_str(), base.latency_spread, (unsigned long long)*trials,
              (unsigned long long)*base_seed, (unsigned long long)(*base_seed + *trials - 1),
              sim::format_duration_us(base.cap_us).c_str());
  std::printf("times in ms from the crash until another replica is leader in a higher term\n");
  auto started = std::chrono::steady_clock::now();
  auto last_progress = started;
  auto wall = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(); };
  int exit_code = cli::exit_ok;
  std::vector<std::string> problems;
  std::map<std::string, std::vector<bool>> has_data;  // per configuration, per range: any leader?
  for (const auto& config : configs) {
    setup su = base;
    su.pre_vote = config.pre_vote;
    su.check_quorum = config.check_quorum;
    std::printf("\n%s\n\n", config.title.c_str());
    print_header();
    std::vector<std::vector<trial>> results(ranges->size());
    for (size_t r = 0; r < ranges->size(); ++r) {
      const auto& range = (*ranges)[r];
      auto range_started = std::chrono::steady_clock::now();
      std::vector<std::string> rows;
      trial slowest;
      bool have_slowest = false;
      auto duration_of = [](const trial& t) { return t.elapsed_us < 0 ? INT64_MAX : t.elapsed_us; };
      for (uint64_t i = 0; i < *trials; ++i) {
        auto t = run_trial(su, range, *base_seed + i);
        if (!t.error.empty()) {
          problems.push_back(format("%s %s seed %llu: ", config.name.c_str(), range.label.c_str(),
                                    (unsigned long long)t.seed) + t.error);
          if (t.fatal) {
            std::fprintf(stderr, "cmesh bench election: %s\n", problems.back().c_str());
            return cli::exit_usage;
          }
        }
        if (t.setup_failed)
          problems.push_back(format("%s %s seed %llu: no stable leader within %s", config.name.c_str(),
                                    range.label.c_str(), (unsigned long long)t.seed,
                                    sim::format_duration_us(setup_cap_us).c_str()));
        for (const auto& v : t.violations)
          problems.push_back(format("%s %s seed %llu: violation: ", config.name.c_str(), range.label.c_str(),
                                    (unsigned long long)t.seed) + v);
        if (!t.violations.empty()) exit_code = cli::exit_failed;
        if (!t.setup_failed && t.error.empty()) {
          rows.push_back(format("%s,%s,%llu,%llu,%s,%llu,%u,%u", config.name.c_str(), range.label.c_str(),
                                (unsigned long long)i, (unsigned long long)t.seed,
                                t.elapsed_us < 0 ? "timeout" : format("%.3f", static_cast<double>(t.elapsed_us) / 1000.0).c_str(),
                                (unsigned long long)t.terms, t.old_leader, t.new_leader));
          if (!have_slowest || duration_of(t) > duration_of(slowest)) slowest = t;
          have_slowest = true;
        }
        if (base.verbose)
          std::printf("trial %llu seed %llu: leader n%u crashed at %s, new leader n%u after %s ms (%llu terms)\n",
                      (unsigned long long)i, (unsigned long long)t.seed, t.old_leader,
                      sim::format_duration_us(t.crash_us).c_str(), t.new_leader,
                      t.elapsed_us < 0 ? "timeout" : ms(static_cast<double>(t.elapsed_us)).c_str(),
                      (unsigned long long)t.terms);
        results[r].push_back(std::move(t));
        auto now = std::chrono::steady_clock::now();
        if (std::chrono::duration<double>(now - last_progress).count() >= 2.0) {
          last_progress = now;
          std::fprintf(stderr, "progress: %s %s trial %llu/%llu, %.0fs wall\n", config.name.c_str(),
                       range.label.c_str(), (unsigned long long)(i + 1), (unsigned long long)*trials, wall());
        }
      }
      print_row(range, summarize(results[r], base.cap_us));
      write_csv(out, "election", "config,range,trial,seed,elapsed_ms,terms,old_leader,new_leader", rows);
      std::fprintf(stderr, "done: %s %s in %.1fs wall; slowest: seed %llu, %s\n", config.name.c_str(),
                   range.label.c_str(),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - range_started).count(),
                   (unsigned long long)slowest.seed,
                   slowest.elapsed_us < 0 ? "no leader within the cap"
                                          : (ms(static_cast<double>(slowest.elapsed_us)) + " ms").c_str());
    }
    write_cdf(out + "/cdf-" + config.name + ".dat", *ranges, results);
    auto& flags = has_data[config.name];
    for (const auto& per_range : results)
      flags.push_back(std::any_of(per_range.begin(), per_range.end(),
                                  [](const trial& t) { return t.error.empty() && !t.setup_failed && t.elapsed_us >= 0; }));
  }
  std::printf("\nwall time: %.1f s\n", wall());
  std::printf("csv: %s/election.csv\n", out.c_str());
  if (have_gnuplot()) {
    for (const auto& config : configs) {
      const auto& flags = has_data[config.name];
      if (std::none_of(flags.begin(), flags.end(), [](bool b) { return b; }))
        std::printf("plot: skipped for %s, no trial elected a leader\n", config.name.c_str());
      else if (plot(out, config.name, "Raft paper Figure 16 in cmesh sim - " + config.title, *ranges, flags))
        std::printf("plot: %s/election-%s.png\n", out.c_str(), config.name.c_str());
      else
        std::printf("plot: gnuplot failed for %s/election-%s.gp\n", out.c_str(), config.name.c_str());
    }
  } else {
    std::printf("plot: skipped, gnuplot is not installed (apt-get install gnuplot-nox); the CDF data is in "
                "%s/cdf-*.dat\n", out.c_str());
  }
  if (!problems.empty()) {
    std::printf("\nproblems (%zu):\n", problems.size());
    for (size_t i = 0; i < problems.size() && i < 50; ++i) std::printf("  %s\n", problems[i].c_str());
    std::printf("replay one trial: cmesh bench election --config CONFIG --ranges RANGE --seed SEED --trials 1 --verbose\n");
  }
  return exit_code;
}

}  // namespace cmesh::bench
