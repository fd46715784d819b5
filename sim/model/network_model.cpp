#include "sim/model/network_model.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace cmesh::sim {

network_model::network_model(uint64_t seed, fault_profile profile, uint32_t node_count)
    : profile_(std::move(profile)), node_count_(node_count), rng_(mix_seed(seed, 0x6e6574)) {
  for (const auto& p : profile_.partitions) {
    compiled_partition c{p.start_us, p.end_us, std::vector<bool>(node_count, false),
                         std::vector<bool>(node_count, false), p.one_way};
    for (auto n : p.from_side) c.from_side.at(n) = true;
    if (p.to_side.empty()) {
      for (uint32_t n = 0; n < node_count; ++n) c.to_side[n] = !c.from_side[n];
    } else {
      for (auto n : p.to_side) c.to_side.at(n) = true;
    }
    partitions_.push_back(std::move(c));
  }
  freezes_.resize(node_count);
  for (const auto& f : profile_.freezes) freezes_.at(f.node).push_back({f.start_us, f.end_us});
}

int64_t network_model::thawed_at(uint32_t node, int64_t at_us) const {
  // Overlapping freezes chain: keep moving to the end of any freeze that holds the node.
  for (bool moved = true; moved;) {
    moved = false;
    for (const auto& [start, end] : freezes_[node])
      if (at_us >= start && at_us < end) {
        at_us = end;
        moved = true;
      }
  }
  return at_us;
}

bool network_model::link_open(int64_t at_us, uint32_t from, uint32_t to) const {
  for (const auto& p : partitions_) {
    if (at_us < p.start_us || at_us >= p.end_us) continue;
    if (p.from_side[from] && p.to_side[to]) return false;
    if (!p.one_way && p.to_side[from] && p.from_side[to]) return false;
  }
  return true;
}

double network_model::standard_normal() {
  // Box-Muller with our own generator: identical on every platform for a given seed.
  if (has_spare_normal_) {
    has_spare_normal_ = false;
    return spare_normal_;
  }
  double u1 = 0;
  while (u1 <= 1e-300) u1 = rng_.unit();
  double u2 = rng_.unit();
  double radius = std::sqrt(-2.0 * std::log(u1));
  spare_normal_ = radius * std::sin(2.0 * M_PI * u2);
  has_spare_normal_ = true;
  return radius * std::cos(2.0 * M_PI * u2);
}

int64_t network_model::sample_latency_us() {
  const auto& l = profile_.latency;
  double value = static_cast<double>(l.latency_us_median);
  if (l.latency_spread > 0) value *= std::exp(l.latency_spread * standard_normal());
  auto us = static_cast<int64_t>(value);
  return std::clamp(us, l.latency_us_min, std::max(l.latency_us_min, l.latency_us_max));
}

void network_model::schedule(in_flight message) {
  message.sequence = next_sequence_++;
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slab_.size());
    slab_.emplace_back();
  }
  queue_.push({message.deliver_us, message.sequence, slot});
  slab_[slot] = std::move(message);
}

void network_model::send(int64_t now_us, uint32_t from, uint32_t to, uint32_t to_incarnation,
                         uint16_t service, bytes payload) {
  assert(from < node_count_ && to < node_count_);
  ++stats_.sent;
  // A frozen sender's message leaves when it thaws.
  now_us = thawed_at(from, now_us);
  if (!link_open(now_us, from, to)) {
    ++stats_.partitioned;
    return;
  }
  if (rng_.chance(profile_.loss)) {
    ++stats_.lost;
    return;
  }
  int copies = rng_.chance(profile_.duplicate) ? 2 : 1;
  if (copies == 2) ++stats_.duplicated;
  for (int copy = 0; copy < copies; ++copy) {
    in_flight message;
    message.deliver_us = now_us + sample_latency_us();
    if (rng_.chance(profile_.reorder)) {
      ++stats_.reordered;
      message.deliver_us += static_cast<int64_t>(
          rng_.below(static_cast<uint64_t>(2 * profile_.latency.latency_us_median) + 1));
    }
    // A frozen receiver takes it when it thaws.
    message.deliver_us = thawed_at(to, message.deliver_us);
    message.from = from;
    message.to = to;
    message.to_incarnation = to_incarnation;
    message.kind = flight_kind::data;
    message.service = service;
    message.payload = copy + 1 == copies ? std::move(payload) : payload;
    schedule(std::move(message));
  }
}

void network_model::dial(int64_t now_us, uint32_t from, uint32_t from_incarnation,
                         const std::string& from_address, uint32_t to, uint32_t to_incarnation,
                         bool to_up, const std::string& to_address) {
  ++stats_.dials;
  bool open = link_open(now_us, from, to) && link_open(now_us, to, from);
  in_flight reply;
  reply.from = to;
  reply.to = from;
  reply.to_incarnation = from_incarnation;
  if (!open) {
    ++stats_.dials_failed;
    reply.kind = flight_kind::dial_failed;
    reply.deliver_us = now_us + dial_timeout_us;
    reply.address = to_address;
    reply.reason = "connection timed out";
    schedule(std::move(reply));
    return;
  }
  int64_t there = sample_latency_us();
  int64_t back = sample_latency_us();
  if (!to_up) {
    ++stats_.dials_failed;
    reply.kind = flight_kind::dial_failed;
    reply.deliver_us = now_us + there + back;
    reply.address = to_address;
    reply.reason = "connection refused";
    schedule(std::move(reply));
    return;
  }
  in_flight accepted;
  accepted.kind = flight_kind::peer_up;
  accepted.from = from;
  accepted.to = to;
  accepted.to_incarnation = to_incarnation;
  accepted.deliver_us = now_us + there;
  accepted.address = from_address;
  schedule(std::move(accepted));
  reply.kind = flight_kind::peer_up;
  reply.deliver_us = now_us + there + back;
  reply.address = to_address;
  schedule(std::move(reply));
}

void network_model::dial_unknown(int64_t now_us, uint32_t from, uint32_t from_incarnation,
                                 const std::string& address) {
  fail_dial(now_us + 1, from, from_incarnation, address, "no node at this address");
}

void network_model::dial_refused(int64_t now_us, uint32_t from, uint32_t from_incarnation,
                                 const std::string& address, const std::string& reason) {
  int64_t round_trip = sample_latency_us() + sample_latency_us();
  fail_dial(now_us + round_trip, from, from_incarnation, address, reason);
}

void network_model::fail_dial(int64_t at_us, uint32_t to, uint32_t to_incarnation,
                              const std::string& address, const std::string& reason) {
  ++stats_.dials;
  ++stats_.dials_failed;
  in_flight reply;
  reply.from = to;
  reply.to = to;
  reply.to_incarnation = to_incarnation;
  reply.kind = flight_kind::dial_failed;
  reply.deliver_us = at_us;
  reply.address = address;
  reply.reason = reason;
  schedule(std::move(reply));
}

in_flight network_model::pop() {
  assert(!queue_.empty());
  uint32_t slot = queue_.top().slot;
  queue_.pop();
  in_flight message = std::move(slab_[slot]);
  free_slots_.push_back(slot);
  return message;
}

}  // namespace cmesh::sim
