// Tests for sim/model/network_model.hpp: the simulated network's latency, loss, duplication,
// partitions, delivery order and dial outcomes.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "sim/model/network_model.hpp"

namespace {

using namespace cmesh;
using namespace cmesh::sim;

fault_profile constant_latency(int64_t us) {
  fault_profile profile;
  profile.latency.latency_us_median = us;
  profile.latency.latency_spread = 0;
  profile.latency.latency_us_min = 1;
  profile.latency.latency_us_max = 10 * us;
  return profile;
}

std::vector<in_flight> drain(network_model& network) {
  std::vector<in_flight> out;
  while (!network.empty()) out.push_back(network.pop());
  return out;
}

// Sends one message and reports whether it was scheduled (a partition or loss drops it).
bool delivered(network_model& network, int64_t now_us, uint32_t from, uint32_t to) {
  size_t before = network.in_flight_count();
  network.send(now_us, from, to, 0, 1, bytes{1});
  bool scheduled = network.in_flight_count() > before;
  drain(network);
  return scheduled;
}

partition make_partition(int64_t start, int64_t end, std::vector<uint32_t> from,
                         std::vector<uint32_t> to, bool one_way) {
  partition p;
  p.start_us = start;
  p.end_us = end;
  p.from_side = std::move(from);
  p.to_side = std::move(to);
  p.one_way = one_way;
  return p;
}

}  // namespace

TEST_CASE("network model: the same seed gives the same deliveries") {
  fault_profile profile;
  profile.loss = 0.1;
  profile.duplicate = 0.1;
  profile.reorder = 0.1;
  auto run = [&](uint64_t seed) {
    network_model network(seed, profile, 8);
    for (int i = 0; i < 2000; ++i)
      network.send(i * 100, static_cast<uint32_t>(i % 8), static_cast<uint32_t>((i * 3 + 1) % 8), 0,
                   1, bytes{static_cast<uint8_t>(i)});
    std::vector<std::pair<int64_t, uint8_t>> deliveries;
    for (auto& m : drain(network)) deliveries.emplace_back(m.deliver_us, m.payload.at(0));
    return deliveries;
  };
  auto first = run(42);
  CHECK(first.size() > 1000);
  CHECK(first == run(42));
  CHECK(first != run(43));
}

TEST_CASE("network model: loss rate matches the configured probability") {
  fault_profile profile = constant_latency(1000);
  profile.loss = 0.2;
  network_model network(7, profile, 2);
  const int sends = 100000;
  for (int i = 0; i < sends; ++i) network.send(i, 0, 1, 0, 1, bytes{});
  // Binomial(100000, 0.2): sigma ~ 126; 5 sigma ~ 630.
  CHECK(network.stats().sent == sends);
  CHECK(network.stats().lost > 20000 - 630);
  CHECK(network.stats().lost < 20000 + 630);
  CHECK(network.in_flight_count() == sends - network.stats().lost);
  CHECK(network.stats().partitioned == 0);
  CHECK(network.stats().duplicated == 0);
}

TEST_CASE("network model: no loss means every message is scheduled") {
  network_model network(1, constant_latency(1000), 2);
  for (int i = 0; i < 1000; ++i) network.send(i, 0, 1, 0, 1, bytes{});
  CHECK(network.in_flight_count() == 1000);
  CHECK(network.stats().lost == 0);
}

TEST_CASE("network model: duplication delivers some messages twice") {
  fault_profile profile = constant_latency(1000);
  profile.duplicate = 0.1;
  network_model network(9, profile, 2);
  const int sends = 100000;
  for (int i = 0; i < sends; ++i) {
    bytes payload(4);
    payload[0] = static_cast<uint8_t>(i);
    payload[1] = static_cast<uint8_t>(i >> 8);
    payload[2] = static_cast<uint8_t>(i >> 16);
    network.send(i, 0, 1, 0, 1, std::move(payload));
  }
  auto dup = network.stats().duplicated;
  // Binomial(100000, 0.1): sigma ~ 95.
  CHECK(dup > 10000 - 500);
  CHECK(dup < 10000 + 500);
  auto all = drain(network);
  CHECK(all.size() == sends + dup);
  // Each duplicated message arrives as two copies with the same payload.
  std::vector<int> copies(sends, 0);
  for (const auto& m : all) {
    REQUIRE(m.payload.size() == 4);
    ++copies[m.payload[0] | (m.payload[1] << 8) | (m.payload[2] << 16)];
  }
  CHECK(std::count(copies.begin(), copies.end(), 2) == static_cast<long>(dup));
  CHECK(std::count(copies.begin(), copies.end(), 1) == static_cast<long>(sends - dup));
}

TEST_CASE("network model: latency median is near the configured median and varies") {
  fault_profile profile;
  profile.latency.latency_us_median = 5000;
  profile.latency.latency_spread = 0.5;
  profile.latency.latency_us_min = 1;
  profile.latency.latency_us_max = 100000000;
  network_model network(3, profile, 2);
  std::vector<int64_t> samples;
  for (int i = 0; i < 20001; ++i) samples.push_back(network.sample_latency_us());
  std::set<int64_t> distinct(samples.begin(), samples.end());
  CHECK(distinct.size() > 1000);
  std::nth_element(samples.begin(), samples.begin() + 10000, samples.end());
  int64_t median = samples[10000];
  CHECK(median > 4500);
  CHECK(median < 5500);
}

TEST_CASE("network model: zero spread gives a constant latency") {
  network_model network(3, constant_latency(2500), 2);
  for (int i = 0; i < 1000; ++i) CHECK(network.sample_latency_us() == 2500);
  for (int i = 0; i < 10; ++i) network.send(100, 0, 1, 0, 1, bytes{});
  for (const auto& m : drain(network)) CHECK(m.deliver_us == 2600);
}

TEST_CASE("network model: latency is clamped to its bounds") {
  fault_profile profile;
  profile.latency.latency_us_median = 5000;
  profile.latency.latency_spread = 3.0;  // very wide: many samples fall outside the bounds
  profile.latency.latency_us_min = 2000;
  profile.latency.latency_us_max = 8000;
  network_model network(5, profile, 2);
  int at_min = 0, at_max = 0;
  for (int i = 0; i < 10000; ++i) {
    auto us = network.sample_latency_us();
    CHECK(us >= 2000);
    CHECK(us <= 8000);
    at_min += us == 2000;
    at_max += us == 8000;
  }
  CHECK(at_min > 1000);  // the clamp is really exercised on both sides
  CHECK(at_max > 1000);

  fault_profile constant = constant_latency(100);
  constant.latency.latency_us_min = 300;
  network_model clamped_up(5, constant, 2);
  CHECK(clamped_up.sample_latency_us() == 300);
  constant = constant_latency(10000);
  constant.latency.latency_us_max = 400;
  constant.latency.latency_us_min = 1;
  network_model clamped_down(5, constant, 2);
  CHECK(clamped_down.sample_latency_us() == 400);
}

TEST_CASE("network model: two-way partition blocks both directions inside its window only") {
  fault_profile profile = constant_latency(1000);
  profile.partitions.push_back(make_partition(1000, 2000, {0, 1}, {2, 3}, false));
  network_model network(1, profile, 5);
  CHECK_FALSE(network.link_open(1000, 0, 2));
  CHECK_FALSE(network.link_open(1500, 2, 0));
  CHECK_FALSE(network.link_open(1999, 3, 1));
  CHECK(network.link_open(999, 0, 2));   // before start
  CHECK(network.link_open(2000, 0, 2));  // end is exclusive
  CHECK(network.link_open(1500, 0, 1));  // same side
  CHECK(network.link_open(1500, 2, 3));
  CHECK(network.link_open(1500, 0, 4));  // node 4 is on neither side
  CHECK(network.link_open(1500, 4, 2));

  CHECK_FALSE(delivered(network, 1500, 0, 2));
  CHECK_FALSE(delivered(network, 1500, 2, 0));
  CHECK(delivered(network, 2500, 0, 2));
  CHECK(delivered(network, 1500, 0, 1));
  CHECK(network.stats().partitioned == 2);
}

TEST_CASE("network model: one-way partition blocks only the named direction") {
  fault_profile profile = constant_latency(1000);
  profile.partitions.push_back(make_partition(0, 5000, {0}, {1}, true));
  network_model network(1, profile, 3);
  CHECK_FALSE(network.link_open(100, 0, 1));
  CHECK(network.link_open(100, 1, 0));
  CHECK(network.link_open(100, 0, 2));
  CHECK_FALSE(delivered(network, 100, 0, 1));
  CHECK(delivered(network, 100, 1, 0));
  CHECK(network.stats().partitioned == 1);
}

TEST_CASE("network model: partition against the rest cuts a set off from every other node") {
  fault_profile profile = constant_latency(1000);
  profile.partitions.push_back(make_partition(0, 5000, {2}, {}, false));
  network_model network(1, profile, 4);
  for (uint32_t other : {0u, 1u, 3u}) {
    CAPTURE(other);
    CHECK_FALSE(network.link_open(10, 2, other));
    CHECK_FALSE(network.link_open(10, other, 2));
  }
  CHECK(network.link_open(10, 0, 1));
  CHECK(network.link_open(10, 3, 0));
}

TEST_CASE("network model: queue pops by delivery time then send order") {
  network_model network(1, constant_latency(1000), 3);
  network.send(500, 0, 1, 0, 1, bytes{1});  // at 1500
  network.send(0, 0, 1, 0, 1, bytes{2});    // at 1000
  network.send(500, 1, 2, 0, 1, bytes{3});  // at 1500, after payload 1
  network.send(200, 2, 0, 0, 1, bytes{4});  // at 1200
  network.send(0, 1, 0, 0, 1, bytes{5});    // at 1000, after payload 2
  CHECK(network.next_delivery_us() == 1000);
  std::vector<uint8_t> order;
  std::vector<int64_t> times;
  for (auto& m : drain(network)) {
    order.push_back(m.payload.at(0));
    times.push_back(m.deliver_us);
  }
  CHECK(order == std::vector<uint8_t>{2, 5, 4, 1, 3});
  CHECK(times == std::vector<int64_t>{1000, 1000, 1200, 1500, 1500});
  CHECK(network.empty());
}

TEST_CASE("network model: a delivered message keeps its addressing") {
  network_model network(1, constant_latency(700), 4);
  network.send(10, 3, 1, 5, 9, bytes{7, 8});
  auto m = network.pop();
  CHECK(m.kind == flight_kind::data);
  CHECK(m.from == 3);
  CHECK(m.to == 1);
  CHECK(m.to_incarnation == 5);
  CHECK(m.service == 9);
  CHECK(m.payload == bytes{7, 8});
  CHECK(m.deliver_us == 710);
}

TEST_CASE("network model: reorder delays some messages past later ones") {
  fault_profile profile = constant_latency(1000);
  profile.reorder = 0.3;
  network_model network(11, profile, 2);
  for (int i = 0; i < 1000; ++i) network.send(i * 10, 0, 1, 0, 1, bytes{static_cast<uint8_t>(i % 256)});
  auto reordered = network.stats().reordered;
  CHECK(reordered > 200);
  CHECK(reordered < 400);
  auto all = drain(network);
  int overtaken = 0;
  for (size_t i = 1; i < all.size(); ++i) overtaken += all[i].sequence < all[i - 1].sequence;
  CHECK(overtaken > 0);
  for (const auto& m : all) {
    CHECK(m.deliver_us >= static_cast<int64_t>(m.sequence) * 10 + 1000);
    CHECK(m.deliver_us <= static_cast<int64_t>(m.sequence) * 10 + 1000 + 2000);
  }
}

TEST_CASE("network model: dial to an up node gives peer_up to both ends") {
  network_model network(1, constant_latency(1000), 3);
  network.dial(100, 0, 4, "sim:0", 2, 6, true, "sim:2");
  CHECK(network.stats().dials == 1);
  CHECK(network.stats().dials_failed == 0);
  auto accepted = network.pop();
  CHECK(accepted.kind == flight_kind::peer_up);
  CHECK(accepted.to == 2);
  CHECK(accepted.from == 0);
  CHECK(accepted.to_incarnation == 6);
  CHECK(accepted.address == "sim:0");  // the acceptor learns where the dialer listens
  CHECK(accepted.deliver_us == 1100);
  auto reply = network.pop();
  CHECK(reply.kind == flight_kind::peer_up);
  CHECK(reply.to == 0);
  CHECK(reply.from == 2);
  CHECK(reply.to_incarnation == 4);
  CHECK(reply.address == "sim:2");
  CHECK(reply.deliver_us == 2100);  // after a round trip
  CHECK(network.empty());
}

TEST_CASE("network model: dial to a down node is refused after a round trip") {
  network_model network(1, constant_latency(1000), 3);
  network.dial(0, 0, 1, "sim:0", 1, 1, false, "sim:1");
  auto reply = network.pop();
  CHECK(reply.kind == flight_kind::dial_failed);
  CHECK(reply.to == 0);
  CHECK(reply.to_incarnation == 1);
  CHECK(reply.address == "sim:1");
  CHECK(reply.reason == "connection refused");
  CHECK(reply.deliver_us == 2000);
  CHECK(network.empty());
  CHECK(network.stats().dials == 1);
  CHECK(network.stats().dials_failed == 1);
}

TEST_CASE("network model: dial across a partition times out") {
  fault_profile profile = constant_latency(1000);
  // One-way in the reverse direction is enough: a connection needs both directions.
  profile.partitions.push_back(make_partition(0, 10000, {1}, {0}, true));
  network_model network(1, profile, 2);
  network.dial(500, 0, 0, "sim:0", 1, 0, true, "sim:1");
  auto reply = network.pop();
  CHECK(reply.kind == flight_kind::dial_failed);
  CHECK(reply.to == 0);
  CHECK(reply.address == "sim:1");
  CHECK(reply.reason == "connection timed out");
  CHECK(reply.deliver_us == 500 + network_model::dial_timeout_us);
  CHECK(network.empty());
  CHECK(network.stats().dials_failed == 1);
  // After the partition the same dial succeeds.
  network.dial(10000, 0, 0, "sim:0", 1, 0, true, "sim:1");
  auto all = drain(network);
  REQUIRE(all.size() == 2);
  CHECK(all[0].kind == flight_kind::peer_up);
  CHECK(all[1].kind == flight_kind::peer_up);
}

TEST_CASE("network model: dial to an unknown address fails at once") {
  network_model network(1, constant_latency(1000), 2);
  network.dial_unknown(300, 1, 2, "sim:99");
  auto reply = network.pop();
  CHECK(reply.kind == flight_kind::dial_failed);
  CHECK(reply.to == 1);
  CHECK(reply.to_incarnation == 2);
  CHECK(reply.address == "sim:99");
  CHECK(reply.reason == "no node at this address");
  CHECK(reply.deliver_us == 301);
  CHECK(network.stats().dials == 1);
  CHECK(network.stats().dials_failed == 1);
}

TEST_CASE("network model: stats count every outcome") {
  fault_profile profile = constant_latency(1000);
  profile.partitions.push_back(make_partition(0, 1000, {0}, {1}, false));
  network_model network(1, profile, 3);
  network.send(0, 0, 1, 0, 1, bytes{});    // partitioned
  network.send(0, 0, 2, 0, 1, bytes{});    // scheduled
  network.send(2000, 0, 1, 0, 1, bytes{}); // scheduled (partition over)
  network.dial(0, 0, 0, "a", 2, 0, true, "c");
  network.dial(0, 0, 0, "a", 2, 0, false, "c");
  network.dial_unknown(0, 0, 0, "x");
  const auto& stats = network.stats();
  CHECK(stats.sent == 3);
  CHECK(stats.partitioned == 1);
  CHECK(stats.lost == 0);
  CHECK(stats.duplicated == 0);
  CHECK(stats.reordered == 0);
  CHECK(stats.dials == 3);
  CHECK(stats.dials_failed == 2);
  CHECK(network.in_flight_count() == 2 + 2 + 1 + 1);
  CHECK(stats.delivered == 0);  // counted by the driver, not by the model
}

TEST_CASE("network model: a refused dial reports the dialed address and the reason after a round trip") {
  cmesh::sim::fault_profile profile;
  profile.latency.latency_spread = 0;
  profile.latency.latency_us_median = 1000;
  cmesh::sim::network_model network(3, profile, 4);
  network.dial_refused(500, 2, 7, "sim:1", "identity_mismatch: expected aa, got bb");
  REQUIRE_FALSE(network.empty());
  auto reply = network.pop();
  CHECK(reply.kind == cmesh::sim::flight_kind::dial_failed);
  CHECK(reply.to == 2);
  CHECK(reply.to_incarnation == 7);
  CHECK(reply.address == "sim:1");
  CHECK(reply.reason.find("identity_mismatch") == 0);
  CHECK(reply.deliver_us == 2500);
  CHECK(network.stats().dials_failed == 1);
}

TEST_CASE("network model: a frozen node receives and sends only when it thaws") {
  auto profile = constant_latency(1000);
  profile.freezes.push_back({1, 10'000, 50'000});
  network_model network(1, profile, 3);
  network.send(0, 0, 1, 0, 1, bytes{1});        // arrives at 1000: before the freeze
  network.send(9'500, 0, 1, 0, 1, bytes{2});    // would arrive at 10500: held until 50000
  network.send(20'000, 1, 2, 0, 1, bytes{3});   // sent while frozen: leaves at 50000
  network.send(20'000, 0, 2, 0, 1, bytes{4});   // unrelated nodes: unaffected
  auto out = drain(network);
  REQUIRE(out.size() == 4);
  CHECK(out[0].payload == bytes{1});
  CHECK(out[0].deliver_us == 1000);
  CHECK(out[1].payload == bytes{4});
  CHECK(out[1].deliver_us == 21'000);
  CHECK(out[2].payload == bytes{2});
  CHECK(out[2].deliver_us == 50'000);
  CHECK(out[3].payload == bytes{3});
  CHECK(out[3].deliver_us == 51'000);
  CHECK(network.thawed_at(1, 49'999) == 50'000);
  CHECK(network.thawed_at(1, 50'000) == 50'000);
  CHECK(network.thawed_at(0, 20'000) == 20'000);
}
