// cmesh bench search-memory: what N simulated agents cost in memory when the caches of their
// gossip search actors (actors/gossip) are full. Issue 3's target: 10,000 simulated agents with
// full caches under 1.5 GiB.
//
// Each agent runs its swim (imAlive) and gossip actors in the deterministic simulator, as in
// cmesh bench gossip (64 random contacts, member tables of 80, no storage). With --fill, every
// gossip machine's caches are filled before its actor starts, through the machine's public API
// only (gossip::actor_context::prefill), with realistic rows: a 32-byte key, a loopback address
// ("127.0.0.1:4xxxx", 15 characters) and five tags drawn from small vocabularies of real words
// (4-15 characters each, so no tag needs a heap block of its own):
//   - request/response cache: request_cache_entries_max (1,000) searches, each started with one
//     fake contact and answered by one search_result of --rows rows (at most
//     responses_per_request_max, 100) that match its tags; the rows land in the cache exactly
//     as a real answer does (machine::receive);
//   - gossip cache: gossip_cache_entries_max (10,000) distinct tag sets, each received as a query
//     from --requesters distinct origins (at most requesters_per_tags_max, 4).
// Side effect of filling: the seen-search cache reaches its bound too (4,096 entries).
// Then the simulation runs --seconds of virtual time (membership traffic, contact lists).
//
// Reported per run: peak RSS, the heap retained by the filled caches (mallinfo2 before and after
// each machine's fill, summed), rows, and the caches' own byte accounting (seed 003's: 32 B key +
// address + tags per row). The parent runs each size with and without --fill.
#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "actors/gossip/gossip_machine.hpp"
#include "bench/bench_util.hpp"
#include "bench/commands.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/crypto/identity.hpp"
#include "sim/model/fault_profile.hpp"
#include "sim/simulation.hpp"

namespace cmesh::bench {

namespace {

const char* const categories[] = {"grocery", "clothing", "electronics", "art", "travel",
                                  "experience", "books", "furniture", "toys", "sports"};
const char* const subcategories[] = {"fruits", "vegetables", "dairy", "shoes", "jackets",
                                     "phones", "laptops", "paintings", "hotels", "tours"};
const char* const names[] = {
    "apple", "banana", "orange", "mango", "green tea", "olive oil", "sneakers", "rain jacket",
    "wool scarf", "smartphone", "headphones", "laptop bag", "oil painting", "sculpture",
    "city tour", "boat trip", "cooking class", "yoga retreat", "novel", "cookbook", "armchair",
    "bookshelf", "desk lamp", "puzzle", "board game", "football", "tennis racket", "bicycle",
    "kayak", "tent", "honey", "cheese", "bread", "coffee beans", "chocolate", "t-shirt", "jeans",
    "sandals", "watch", "camera", "printer", "tablet", "poster", "ceramics", "photo print",
    "wine tasting", "museum pass", "guitar", "violin", "skateboard"};
const char* const locations[] = {
    "paris", "dubai", "cairo", "new york", "london", "berlin", "tokyo", "amsterdam", "nairobi",
    "sao paulo", "mumbai", "lagos", "madrid", "rome", "toronto", "sydney", "seoul", "istanbul",
    "mexico city", "bangkok", "lisbon", "vienna", "cape town", "singapore", "dubai, uae",
    "brussels", "stockholm", "buenos aires", "casablanca", "hanoi"};
const char* const adjectives[] = {"organic", "pink", "cotton", "sustainable", "handmade",
                                  "vintage", "local", "fresh", "second hand", "new"};

template <size_t N>
const char* pick(const char* const (&list)[N], uint64_t i) {
  return list[i % N];
}

// Tag set number i: category, name and location vary (10 x 50 x 30 = 15,000 distinct sets).
gossip::search_tags query_tags(uint64_t i) {
  gossip::search_tags t;
  t.category = pick(categories, i);
  t.name = pick(names, i / 10);
  t.location = pick(locations, i / 500);
  return t;
}

bytes key_bytes(uint64_t a, uint64_t b) {
  bytes key(32);
  rng r(mix_seed(a, b));
  for (size_t i = 0; i < 32; i += 8) {
    uint64_t v = r.next();
    for (size_t j = 0; j < 8; ++j) key[i + j] = static_cast<uint8_t>(v >> (8 * j));
  }
  return key;
}

std::string loopback(uint64_t i) { return "127.0.0.1:" + std::to_string(40000 + i % 20000); }

size_t heap_in_use() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

struct fill_totals {
  size_t agents = 0;
  size_t request_entries = 0, request_rows = 0, request_accounted = 0, request_heap = 0;
  size_t gossip_entries = 0, gossip_rows = 0, gossip_accounted = 0, gossip_heap = 0;
};

// Fills one machine's caches through its public API (see the file comment). Deterministic.
void fill(uint64_t seed, uint32_t index, gossip::machine& m, size_t rows, size_t requesters,
          fill_totals& totals) {
  const auto& cfg = m.configuration();
  gossip::effects out;
  size_t heap0 = heap_in_use();
  // Gossip cache: queries from `requesters` origins for each of gossip_cache_entries_max tag sets.
  // hops_left 0 and no contacts: nothing is offered or forwarded.
  for (uint64_t g = 0; g < cfg.gossip_cache_entries_max; ++g) {
    gossip::query q;
    q.tags = query_tags(g);
    q.tags.adjective = pick(adjectives, g / 15000);
    q.hops_left = 0;
    for (uint64_t r = 0; r < requesters; ++r) {
      uint64_t origin = g * 8 + r;
      q.search_id = mix_seed(seed, index * 1'000'003ULL + g * 8 + r) | 1;
      q.origin_key = key_bytes(seed ^ 0x6f726967, origin);
      q.origin_address = loopback(origin);
      m.receive(node_id::from_bytes(q.origin_key.data()), q, 0, out);
      out.clear();
    }
  }
  size_t heap1 = heap_in_use();
  // Request cache: one search per entry, answered by one fake contact with `rows` matching rows.
  gossip::contact fake{node_id::from_bytes(key_bytes(seed ^ 0x66616b65, index).data()), "127.0.0.1:39999"};
  m.set_contacts({fake});
  for (uint64_t e = 0; e < cfg.request_cache_entries_max; ++e) {
    auto tags = query_tags(e + 3);  // other sets than the gossip cache's first ones
    auto id = m.start_search(tags, 0, out);
    out.clear();
    if (!id) continue;
    gossip::search_result answer;
    answer.search_id = *id;
    answer.source = gossip::result_from_query;
    for (uint64_t r = 0; r < rows; ++r) {
      gossip::agent_record row;
      uint64_t who = e * 128 + r;
      row.key = key_bytes(seed ^ 0x726f7773, who);
      row.address = loopback(who);
      row.tags = tags;
      row.tags.subcategory = pick(subcategories, who);
      row.tags.adjective = pick(adjectives, who / 10);
      answer.matches.push_back(std::move(row));
    }
    m.receive(fake.id, answer, 0, out);
    m.tick(cfg.search_timeout_us + 1, out);  // ends it if it wanted more matches than it got
    out.clear();
  }
  m.set_contacts({});
  size_t heap2 = heap_in_use();
  ++totals.agents;
  totals.gossip_entries += m.gossip_cache_size();
  totals.gossip_rows += m.gossip_cache_size() * requesters;
  totals.gossip_accounted += m.gossip_cache_bytes();
  totals.gossip_heap += heap1 - heap0;
  totals.request_entries += m.request_cache_size();
  totals.request_rows += m.request_cache_size() * rows;
  totals.request_accounted += m.request_cache_bytes();
  totals.request_heap += heap2 - heap1;
}

cli::command_spec run_spec() {
  cli::command_spec s;
  s.name = "cmesh bench search-memory-run";
  s.summary = "One run of cmesh bench search-memory (a child process): prints one summary line.";
  s.usage = "cmesh bench search-memory-run --nodes N [--fill] [--rows R] [--requesters Q] [--seconds S]";
  s.options = {{"nodes", "N", "agents", "1000"},
               {"fill", "", "fill every agent's gossip search caches before it starts", ""},
               {"rows", "R", "rows per request cache entry (1..100)", "100"},
               {"requesters", "Q", "requesters per gossip cache entry (1..4)", "4"},
               {"seconds", "S", "virtual seconds to run after the start", "3"},
               {"seed", "S", "simulation seed", "1"}};
  return s;
}

}  // namespace

int run_search_memory_scenario(int argc, char** argv) {
  auto s = run_spec();
  int usage_code = 0;
  auto parsed = cli::parse_command_line(s, argc, argv, usage_code);
  if (!parsed) return usage_code;
  auto nodes = cli::get_unsigned(*parsed, "nodes", 1000, 2, 200'000);
  auto rows = cli::get_unsigned(*parsed, "rows", 100, 1, 100);
  auto requesters = cli::get_unsigned(*parsed, "requesters", 4, 1, 4);
  auto seconds = cli::get_unsigned(*parsed, "seconds", 3, 1, 3600);
  auto seed = cli::get_unsigned(*parsed, "seed", 1, 0, ~uint64_t{0});
  bool with_fill = parsed->has("fill");
  if (!nodes || !rows || !requesters || !seconds || !seed) {
    std::fprintf(stderr, "cmesh bench search-memory-run: bad arguments (see --help)\n");
    return cli::exit_usage;
  }
  crypto_init();
  fill_totals totals;
  sim::simulation_options o;
  o.nodes = static_cast<uint32_t>(*nodes);
  o.seed = *seed;
  o.seed_nodes = 0;
  o.join_spread_us = 0;
  o.use_storage = false;
  o.duration_us = static_cast<int64_t>(*seconds) * 1'000'000;
  o.agents.swim = true;
  o.agents.contacts = 64;
  o.agents.membership.member_table_max = 80;
  o.agents.gossip = true;
  const size_t want_rows = *rows, want_requesters = *requesters;
  const uint64_t run_seed = *seed;
  auto wall_start = std::chrono::steady_clock::now();
  if (with_fill)
    o.agents.gossip_prefill = [&, want_rows, want_requesters, run_seed](uint32_t index, gossip::machine& m) {
      fill(run_seed, index, m, want_rows, want_requesters, totals);
      if (totals.agents % 100 == 0)
        std::fprintf(stderr, "  filled %zu of %u agents (%.0f wall s)\n", totals.agents, o.nodes,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count());
    };
  size_t heap_before = heap_in_use();
  auto created = sim::simulation::create(o);
  if (!created) {
    std::fprintf(stderr, "cmesh bench search-memory-run: %s\n", created.err().describe().c_str());
    return cli::exit_failed;
  }
  auto& simulation = **created;
  simulation.run_to_end();
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  size_t heap_after = heap_in_use();
  auto report = simulation.report();
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("nodes=%u fill=%d rows=%zu requesters=%zu filled_agents=%zu request_entries=%zu "
              "request_rows=%zu request_accounted_bytes=%zu request_heap_bytes=%zu gossip_entries=%zu "
              "gossip_rows=%zu gossip_accounted_bytes=%zu gossip_heap_bytes=%zu heap_growth_bytes=%zu "
              "nodes_up=%u jobs=%llu virtual_us=%lld wall_seconds=%.1f peak_rss_kib=%ld\n",
              o.nodes, with_fill ? 1 : 0, want_rows, want_requesters, totals.agents,
              totals.request_entries, totals.request_rows, totals.request_accounted,
              totals.request_heap, totals.gossip_entries, totals.gossip_rows, totals.gossip_accounted,
              totals.gossip_heap, heap_after - heap_before, report.nodes_up,
              static_cast<unsigned long long>(report.jobs_run), static_cast<long long>(report.virtual_us),
              wall, usage.ru_maxrss);
  if (!report.violations.empty()) {
    std::fprintf(stderr, "violations: %s\n", report.violations.front().c_str());
    return cli::exit_failed;
  }
  return cli::exit_ok;
}

namespace {

cli::command_spec spec() {
  cli::command_spec s;
  s.name = "cmesh bench search-memory";
  s.summary = "Peak memory of N simulated agents (swim + gossip search actors) whose search caches "
              "are full, against the same agents with empty caches.";
  s.usage = "cmesh bench search-memory [--sizes 100,300] [--rows R] [--requesters Q] [--runs R] [--out DIR]";
  s.options = {{"sizes", "LIST", "agent counts", "100,300"},
               {"rows", "R", "rows per request cache entry (100 = responses_per_request_max: full)", "100"},
               {"requesters", "Q", "requesters per gossip cache entry (4 = requesters_per_tags_max: full)", "4"},
               {"seconds", "S", "virtual seconds each run simulates", "3"},
               {"runs", "R", "runs per size and mode; medians are reported", "1"},
               {"out", "DIR", "folder for search-memory.csv", "./bench-results"}};
  s.epilog = "Full = every cache at its entry bound: 1,000 request entries x R rows, 10,000 gossip\n"
             "entries x Q requesters. Rows are filled through gossip::machine's public API (see\n"
             "bench/search_memory_bench.cpp). Memory grows linearly with agents: at R = 100 a full\n"
             "agent holds ~27.5 MiB, so 1,000 such agents do not fit in 24 GiB; use --rows 20 or 1 there.\n"
             "Results: docs/benchmarks.md.";
  return s;
}

}  // namespace

int run_search_memory_bench(int argc, char** argv) {
  auto s = spec();
  int usage_code = 0;
  auto parsed = cli::parse_command_line(s, argc, argv, usage_code);
  if (!parsed) return usage_code;
  auto runs = cli::get_unsigned(*parsed, "runs", 1, 1, 50);
  auto rows = cli::get_unsigned(*parsed, "rows", 100, 1, 100);
  auto requesters = cli::get_unsigned(*parsed, "requesters", 4, 1, 4);
  auto seconds = cli::get_unsigned(*parsed, "seconds", 3, 1, 3600);
  if (!runs || !rows || !requesters || !seconds) {
    std::fprintf(stderr, "cmesh bench search-memory: bad --runs, --rows, --requesters or --seconds\n");
    return cli::exit_usage;
  }
  std::string out = parsed->get("out", "./bench-results");
  std::filesystem::create_directories(out);
  std::printf("%-7s %5s %5s %12s %12s %14s %12s %12s %12s %12s\n", "agents", "rows", "req", "empty_MiB",
              "full_MiB", "full_MiB/agent", "req_B/row", "req_acct/row", "gsp_B/entry", "gsp_acct/e");
  std::vector<std::string> csv;
  for (const auto& size : cli::split_list(parsed->get("sizes", "100,300"))) {
    std::vector<double> empty_mib, full_mib, req_row, req_acct, gsp_entry, gsp_acct;
    for (uint64_t run = 0; run < *runs; ++run) {
      std::vector<std::string> common = {"bench", "search-memory-run", "--nodes", size, "--rows",
                                         std::to_string(*rows), "--requesters", std::to_string(*requesters),
                                         "--seconds", std::to_string(*seconds), "--seed", std::to_string(run + 1)};
      auto empty = run_self(common, true);
      auto with_fill = common;
      with_fill.push_back("--fill");
      std::fprintf(stderr, "search-memory: %s agents, filling caches (run %llu)\n", size.c_str(),
                   static_cast<unsigned long long>(run + 1));
      auto full = run_self(with_fill, true);
      for (const auto* child : {&empty, &full})
        if (child->exit_code != 0) {
          std::fprintf(stderr, "cmesh bench search-memory: %s agents failed:\n%s\n", size.c_str(),
                       child->output.c_str());
          return cli::exit_failed;
        }
      std::fputs(full.output.c_str(), stderr);
      empty_mib.push_back(empty.peak_rss_kib / 1024.0);
      full_mib.push_back(full.peak_rss_kib / 1024.0);
      double rows_n = find_number(full.output, "request_rows");
      double entries_g = find_number(full.output, "gossip_entries");
      req_row.push_back(find_number(full.output, "request_heap_bytes") / rows_n);
      req_acct.push_back(find_number(full.output, "request_accounted_bytes") / rows_n);
      gsp_entry.push_back(find_number(full.output, "gossip_heap_bytes") / entries_g);
      gsp_acct.push_back(find_number(full.output, "gossip_accounted_bytes") / entries_g);
    }
    double n = std::atof(size.c_str());
    std::printf("%-7s %5llu %5llu %12.0f %12.0f %14.2f %12.1f %12.1f %12.1f %12.1f\n", size.c_str(),
                static_cast<unsigned long long>(*rows), static_cast<unsigned long long>(*requesters),
                median(empty_mib), median(full_mib), median(full_mib) / n, median(req_row),
                median(req_acct), median(gsp_entry), median(gsp_acct));
    std::fflush(stdout);
    csv.push_back(format("%s,%llu,%llu,%llu,%.0f,%.0f,%.3f,%.1f,%.1f,%.1f,%.1f", size.c_str(),
                         static_cast<unsigned long long>(*rows),
                         static_cast<unsigned long long>(*requesters),
                         static_cast<unsigned long long>(*runs), median(empty_mib), median(full_mib),
                         median(full_mib) / n, median(req_row), median(req_acct), median(gsp_entry),
                         median(gsp_acct)));
  }
  write_csv(out, "search-memory",
            "agents,rows_per_request_entry,requesters_per_gossip_entry,runs,empty_peak_mib,"
            "full_peak_mib,full_mib_per_agent,request_heap_bytes_per_row,request_accounted_bytes_per_row,"
            "gossip_heap_bytes_per_entry,gossip_accounted_bytes_per_entry",
            csv);
  std::printf("csv: %s/search-memory.csv\n", out.c_str());
  return cli::exit_ok;
}

}  // namespace cmesh::bench
