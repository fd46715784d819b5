// The simulated network's decisions, as a pure object: latency, loss, duplication, reordering,
// partitions, and the queue of messages in flight. No CAF: the simnet actor (sim/simnet_actor)
// feeds it sends and the driver (sim/simulation) pops deliveries when virtual time reaches them.
//
// Order: the network does not keep per-link FIFO order. Latency spread alone reorders messages,
// and `reorder` gives a fraction of them extra delay. Services must not rely on order.
#pragma once

#include <cstdint>
#include <queue>
#include <string>
#include <vector>

#include "messages/node_id.hpp"
#include "runtime/core/rng.hpp"
#include "sim/model/fault_profile.hpp"

namespace cmesh::sim {

enum class flight_kind : uint8_t { data, peer_up, dial_failed };

struct in_flight {
  int64_t deliver_us = 0;
  uint64_t sequence = 0;          // tie-break: equal times deliver in send order
  uint32_t from = 0;
  uint32_t to = 0;
  uint32_t to_incarnation = 0;    // a restarted node never gets its previous life's messages
  flight_kind kind = flight_kind::data;
  uint16_t service = 0;
  bytes payload;
  std::string address;            // peer_up: the other end's address; dial_failed: the dialed one
  std::string reason;             // dial_failed only
};

struct network_stats {
  uint64_t sent = 0;
  uint64_t delivered = 0;
  uint64_t lost = 0;           // random loss
  uint64_t partitioned = 0;    // dropped by a partition (at send or at delivery)
  uint64_t duplicated = 0;
  uint64_t to_dead_node = 0;   // destination crashed or restarted while in flight
  uint64_t reordered = 0;
  uint64_t dials = 0;
  uint64_t dials_failed = 0;
};

class network_model {
public:
  network_model(uint64_t seed, fault_profile profile, uint32_t node_count);

  // A message sent at `now_us`. Schedules 0 (lost), 1 or 2 (duplicated) deliveries.
  void send(int64_t now_us, uint32_t from, uint32_t to, uint32_t to_incarnation, uint16_t service,
            bytes payload);
  // A connection attempt from `from` to `to`. If `to` is up and both directions are open, both
  // ends get peer_up (the dialer after a round trip); otherwise the dialer gets dial_failed:
  // quickly ("connection refused") if only the process is down, after `dial_timeout_us` if the
  // network is cut.
  void dial(int64_t now_us, uint32_t from, uint32_t from_incarnation, const std::string& from_address,
            uint32_t to, uint32_t to_incarnation, bool to_up, const std::string& to_address);
  // A dial to an address that names no node.
  void dial_unknown(int64_t now_us, uint32_t from, uint32_t from_incarnation,
                    const std::string& address);
  // A dial the far end answers but the dialer must refuse (the handshake proves another identity
  // than the pinned one): dial_failed with `reason` after a round trip.
  void dial_refused(int64_t now_us, uint32_t from, uint32_t from_incarnation,
                    const std::string& address, const std::string& reason);

  bool link_open(int64_t at_us, uint32_t from, uint32_t to) const;
  // When `node` can next send or receive at or after `at_us`: at_us, or the end of the freeze
  // that holds it then.
  int64_t thawed_at(uint32_t node, int64_t at_us) const;
  int64_t sample_latency_us();

  bool empty() const { return queue_.empty(); }
  int64_t next_delivery_us() const { return queue_.top().deliver_us; }
  // Removes and returns the earliest message in flight. Requires !empty().
  in_flight pop();

  network_stats& stats() { return stats_; }
  const network_stats& stats() const { return stats_; }
  const fault_profile& profile() const { return profile_; }
  size_t in_flight_count() const { return queue_.size(); }

  static constexpr int64_t dial_timeout_us = 1000000;

private:
  // The heap orders small keys; the messages themselves stay put in a slab (a free list reuses
  // slots), so sifting moves 24 bytes instead of a whole message.
  struct key {
    int64_t deliver_us;
    uint64_t sequence;
    uint32_t slot;
  };
  struct later {
    bool operator()(const key& a, const key& b) const {
      return a.deliver_us != b.deliver_us ? a.deliver_us > b.deliver_us : a.sequence > b.sequence;
    }
  };
  struct compiled_partition {
    int64_t start_us, end_us;
    std::vector<bool> from_side, to_side;
    bool one_way;
  };
  void schedule(in_flight message);
  // dial_failed for the dialer `to` at `at_us` (counts a failed dial).
  void fail_dial(int64_t at_us, uint32_t to, uint32_t to_incarnation, const std::string& address,
                 const std::string& reason);
  double standard_normal();

  fault_profile profile_;
  uint32_t node_count_;
  rng rng_;
  std::vector<compiled_partition> partitions_;
  std::vector<std::vector<std::pair<int64_t, int64_t>>> freezes_;  // by node: [start, end)
  std::priority_queue<key, std::vector<key>, later> queue_;
  std::vector<in_flight> slab_;
  std::vector<uint32_t> free_slots_;
  uint64_t next_sequence_ = 0;
  double spare_normal_ = 0;
  bool has_spare_normal_ = false;
  network_stats stats_;
};

}  // namespace cmesh::sim
