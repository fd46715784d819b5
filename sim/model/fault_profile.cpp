#include "sim/model/fault_profile.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "runtime/core/rng.hpp"

namespace cmesh::sim {

namespace {

result<uint64_t> parse_unsigned(std::string_view text, std::string_view what) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
    return error{errc::invalid_argument,
                 "'" + std::string(text) + "' is not a valid " + std::string(what)};
  return value;
}

}  // namespace

result<int64_t> parse_duration_us(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && (std::isdigit(static_cast<unsigned char>(text[digits])) ||
                                   text[digits] == '.'))
    ++digits;
  std::string number(text.substr(0, digits));
  std::string_view unit = text.substr(digits);
  double multiplier = 0;
  if (unit.empty() || unit == "ms") multiplier = 1e3;
  else if (unit == "us") multiplier = 1;
  else if (unit == "s") multiplier = 1e6;
  else if (unit == "m" || unit == "min") multiplier = 60e6;
  else if (unit == "h") multiplier = 3600e6;
  char* end = nullptr;
  double value = number.empty() ? -1 : std::strtod(number.c_str(), &end);
  double us = value * multiplier + 0.5;
  // us >= 2^63 would not fit int64_t (the conversion is undefined and wraps negative on x86).
  if (multiplier == 0 || number.empty() || end != number.c_str() + number.size() || value < 0 ||
      us >= 0x1p63)
    return error{errc::invalid_argument, "'" + std::string(text) +
                                             "' is not a duration (examples: 250ms, 10s, 2m)"};
  return static_cast<int64_t>(us);
}

result<std::vector<uint32_t>> parse_node_set(std::string_view text, uint32_t node_count) {
  std::vector<uint32_t> nodes;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    auto item = text.substr(pos, comma - pos);
    auto dash = item.find('-');
    auto first = parse_unsigned(item.substr(0, dash), "node index");
    if (!first) return first.err();
    uint64_t last = *first;
    if (dash != std::string_view::npos) {
      auto parsed = parse_unsigned(item.substr(dash + 1), "node index");
      if (!parsed) return parsed.err();
      last = *parsed;
    }
    if (last < *first)
      return error{errc::invalid_argument, "node range '" + std::string(item) +
                                               "' is reversed (write the smaller index first)"};
    if (last >= node_count)
      return error{errc::invalid_argument, "node range '" + std::string(item) +
                                               "' is outside 0-" +
                                               std::to_string(node_count - 1)};
    for (uint64_t n = *first; n <= last; ++n) nodes.push_back(static_cast<uint32_t>(n));
    pos = comma + 1;
  }
  std::sort(nodes.begin(), nodes.end());
  nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
  return nodes;
}

result<partition> parse_partition(std::string_view text, uint32_t node_count) {
  auto fail = [&](const std::string& why) {
    return error{errc::invalid_argument,
                 "bad partition '" + std::string(text) + "': " + why +
                     " (expected START-END:SET/SET, START-END:SET>SET or START-END:SET, "
                     "e.g. 10s-20s:0-4/5-9)"};
  };
  auto colon = text.find(':');
  if (colon == std::string_view::npos) return fail("missing ':'");
  auto window = text.substr(0, colon);
  auto dash = window.find('-');
  if (dash == std::string_view::npos) return fail("missing '-' between start and end");
  auto start = parse_duration_us(window.substr(0, dash));
  auto end = parse_duration_us(window.substr(dash + 1));
  if (!start) return fail(start.err().message);
  if (!end) return fail(end.err().message);
  if (*end <= *start) return fail("end must be after start");
  partition p;
  p.start_us = *start;
  p.end_us = *end;
  auto sides = text.substr(colon + 1);
  auto split = sides.find_first_of("/>");
  p.one_way = split != std::string_view::npos && sides[split] == '>';
  auto from = parse_node_set(sides.substr(0, split), node_count);
  if (!from) return fail(from.err().message);
  p.from_side = std::move(*from);
  if (split != std::string_view::npos) {
    auto to = parse_node_set(sides.substr(split + 1), node_count);
    if (!to) return fail(to.err().message);
    p.to_side = std::move(*to);
  }
  return p;
}

result<crash> parse_crash(std::string_view text, uint32_t node_count) {
  auto fail = [&](const std::string& why) {
    return error{errc::invalid_argument, "bad crash '" + std::string(text) + "': " + why +
                                             " (expected NODE@TIME or NODE@TIME+RESTART_AFTER,"
                                             " e.g. 3@5s+4s)"};
  };
  auto at = text.find('@');
  if (at == std::string_view::npos) return fail("missing '@'");
  auto node = parse_unsigned(text.substr(0, at), "node index");
  if (!node) return fail(node.err().message);
  if (*node >= node_count) return fail("node " + std::to_string(*node) + " does not exist");
  auto rest = text.substr(at + 1);
  auto plus = rest.find('+');
  auto when = parse_duration_us(rest.substr(0, plus));
  if (!when) return fail(when.err().message);
  crash c;
  c.node = static_cast<uint32_t>(*node);
  c.at_us = *when;
  if (plus != std::string_view::npos) {
    auto after = parse_duration_us(rest.substr(plus + 1));
    if (!after) return fail(after.err().message);
    c.restart_after_us = *after;
  }
  return c;
}

result<freeze> parse_freeze(std::string_view text, uint32_t node_count) {
  auto fail = [&](const std::string& why) {
    return error{errc::invalid_argument, "bad freeze '" + std::string(text) + "': " + why +
                                             " (expected NODE@START-END, e.g. 4@10s-12s)"};
  };
  auto at = text.find('@');
  if (at == std::string_view::npos) return fail("missing '@'");
  auto node = parse_unsigned(text.substr(0, at), "node index");
  if (!node) return fail(node.err().message);
  if (*node >= node_count) return fail("node " + std::to_string(*node) + " does not exist");
  auto rest = text.substr(at + 1);
  auto dash = rest.find('-');
  if (dash == std::string_view::npos) return fail("missing '-'");
  auto start = parse_duration_us(rest.substr(0, dash));
  if (!start) return fail(start.err().message);
  auto end = parse_duration_us(rest.substr(dash + 1));
  if (!end) return fail(end.err().message);
  if (*end <= *start) return fail("the end is not after the start");
  return freeze{static_cast<uint32_t>(*node), *start, *end};
}

result<double> parse_probability(std::string_view text) {
  bool percent = !text.empty() && text.back() == '%';
  std::string number(percent ? text.substr(0, text.size() - 1) : text);
  char* end = nullptr;
  double value = number.empty() ? -1 : std::strtod(number.c_str(), &end);
  if (percent) value /= 100;
  // Written so that NaN ("nan") fails the range check too.
  if (number.empty() || end != number.c_str() + number.size() || !(value >= 0 && value <= 1))
    return error{errc::invalid_argument,
                 "'" + std::string(text) + "' is not a probability (0..1 or 0%..100%)"};
  return value;
}

std::string format_duration_us(int64_t us) {
  char buffer[32];
  if (us % 1000000 == 0) std::snprintf(buffer, sizeof buffer, "%llds", (long long)(us / 1000000));
  else if (us % 1000 == 0) std::snprintf(buffer, sizeof buffer, "%lldms", (long long)(us / 1000));
  else std::snprintf(buffer, sizeof buffer, "%lldus", (long long)us);
  return buffer;
}

}  // namespace cmesh::sim


namespace cmesh::sim {

fault_profile random_fault_storm(uint64_t seed, uint32_t nodes, int64_t start_us, int64_t end_us) {
  rng r(mix_seed(seed, 0x73746f726d));
  fault_profile f;
  f.latency.latency_us_median = 2000 + static_cast<int64_t>(r.below(8000));
  f.latency.latency_spread = 0.3 + r.unit() * 1.2;
  f.loss = r.unit() * 0.08;
  f.duplicate = r.unit() * 0.04;
  f.reorder = r.unit() * 0.10;
  auto random_set = [&](uint32_t size) {
    std::vector<uint32_t> all(nodes);
    for (uint32_t i = 0; i < nodes; ++i) all[i] = i;
    for (uint32_t i = 0; i + 1 < nodes; ++i) std::swap(all[i], all[i + r.below(nodes - i)]);
    all.resize(size);
    std::sort(all.begin(), all.end());
    return all;
  };
  if (nodes < 2 || end_us <= start_us) return f;
  // Partitions: one every 0.5-2.5 s, lasting 0.3-3 s (they overlap sometimes).
  for (int64_t t = start_us + static_cast<int64_t>(r.below(1'000'000)); t < end_us;
       t += 500'000 + static_cast<int64_t>(r.below(2'000'000))) {
    partition p;
    p.start_us = t;
    p.end_us = std::min(end_us, t + 300'000 + static_cast<int64_t>(r.below(2'700'000)));
    uint32_t minority = 1 + static_cast<uint32_t>(r.below(std::max<uint32_t>(1, (nodes - 1) / 2)));
    auto side = random_set(nodes);
    p.from_side.assign(side.begin(), side.begin() + minority);
    std::sort(p.from_side.begin(), p.from_side.end());
    if (r.chance(0.3)) {
      // One way: the minority cannot reach some of the others (or the reverse).
      p.one_way = true;
      uint32_t others = 1 + static_cast<uint32_t>(r.below(nodes - minority));
      p.to_side.assign(side.begin() + minority, side.begin() + minority + others);
      std::sort(p.to_side.begin(), p.to_side.end());
      if (r.chance(0.5)) std::swap(p.from_side, p.to_side);
    }
    f.partitions.push_back(std::move(p));
  }
  // Crashes: one every 1-4 s, restarting after 0.1-3 s.
  for (int64_t t = start_us + static_cast<int64_t>(r.below(2'000'000)); t < end_us;
       t += 1'000'000 + static_cast<int64_t>(r.below(3'000'000))) {
    crash c;
    c.node = static_cast<uint32_t>(r.below(nodes));
    c.at_us = t;
    c.restart_after_us = 100'000 + static_cast<int64_t>(r.below(2'900'000));
    c.restart_after_us = std::min(c.restart_after_us, std::max<int64_t>(1, end_us - t));
    f.crashes.push_back(c);
  }
  return f;
}

}  // namespace cmesh::sim

namespace cmesh::sim {

raft_nemesis standard_raft_nemesis(int64_t latency_median_us, int64_t start_us, int64_t end_us) {
  raft_nemesis n;
  n.start_us = start_us;
  n.end_us = end_us;
  int64_t median = std::max<int64_t>(1, latency_median_us);
  n.crash_new_leader = 0.9;
  n.leader_crash_delay_max_us = 3 * median;
  n.crash_after_first_commit = 0.9;
  n.leader_restart_max_us = 100'000;
  n.crash_after_vote = 1.0;
  n.vote_restart_max_us = std::max<int64_t>(1, median / 5);
  return n;
}

fault_profile election_fault_storm(uint64_t seed, uint32_t nodes, int64_t start_us,
                                   int64_t end_us) {
  rng r(mix_seed(seed, 0x656c656374));
  fault_profile f;
  f.latency.latency_us_median = 1000 + static_cast<int64_t>(r.below(4000));
  f.latency.latency_spread = 0.8 + r.unit() * 0.7;
  f.loss = r.unit() * 0.03;
  f.duplicate = r.unit() * 0.02;
  f.reorder = 0.05 + r.unit() * 0.20;
  f.nemesis = standard_raft_nemesis(f.latency.latency_us_median, start_us, end_us);
  if (nodes < 2 || end_us <= start_us) return f;
  auto random_set = [&](uint32_t size) {
    std::vector<uint32_t> all(nodes);
    for (uint32_t i = 0; i < nodes; ++i) all[i] = i;
    for (uint32_t i = 0; i + 1 < nodes; ++i) std::swap(all[i], all[i + r.below(nodes - i)]);
    all.resize(size);
    std::sort(all.begin(), all.end());
    return all;
  };
  // Short partitions, one every 0.4-1.6 s, lasting 0.1-0.8 s, cutting off one node or (five or
  // more nodes) two: long enough to depose a leader, short enough that it comes back with what it
  // appended alone.
  for (int64_t t = start_us + static_cast<int64_t>(r.below(800'000)); t < end_us;
       t += 400'000 + static_cast<int64_t>(r.below(1'200'000))) {
    partition p;
    p.start_us = t;
    p.end_us = std::min(end_us, t + 100'000 + static_cast<int64_t>(r.below(700'000)));
    uint32_t cut = nodes >= 5 && r.chance(0.5) ? 2 : 1;
    p.from_side = random_set(cut);
    f.partitions.push_back(std::move(p));
  }
  // Crashes: one every 0.5-2 s, restarting after 20-400 ms.
  for (int64_t t = start_us + static_cast<int64_t>(r.below(1'000'000)); t < end_us;
       t += 500'000 + static_cast<int64_t>(r.below(1'500'000))) {
    crash c;
    c.node = static_cast<uint32_t>(r.below(nodes));
    c.at_us = t;
    c.restart_after_us = 20'000 + static_cast<int64_t>(r.below(380'000));
    c.restart_after_us = std::min(c.restart_after_us, std::max<int64_t>(1, end_us - t));
    f.crashes.push_back(c);
  }
  return f;
}

}  // namespace cmesh::sim
