// The ceiling for the simulator benchmark: raw CAF messages per wall second under the
// test_coordinator, driven exactly like the simulator (seeded random pick of the next runnable
// actor), with the same actor count and the same number of messages in flight per actor, but no
// network model, codec or protocol.
#include "bench/caf_ceiling.hpp"

#include <chrono>
#include <memory>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "runtime/core/rng.hpp"

namespace cmesh::bench {

namespace {

using bounce_atom = caf::atom_constant<caf::atom("bounce")>;

struct shared_ring {
  std::vector<caf::actor> actors;
  uint64_t remaining = 0;
};

struct bouncer_state {
  static inline const char* name = "cmesh.bench.bouncer";
  rng random;
};

caf::behavior bouncer(caf::stateful_actor<bouncer_state>* self, std::shared_ptr<shared_ring> ring,
                      uint64_t seed) {
  self->state.random.reseed(seed);
  return {
    [=](bounce_atom, uint64_t hops) {
      if (ring->remaining == 0) return;
      --ring->remaining;
      auto& next = ring->actors[self->state.random.below(ring->actors.size())];
      self->send(next, bounce_atom::value, hops + 1);
    },
  };
}

}  // namespace

double caf_ceiling_messages_per_second(uint32_t actors, uint32_t in_flight, uint64_t messages,
                                       uint64_t seed) {
  caf::actor_system_config config;
  config.set("scheduler.policy", caf::atom("testing"));
  config.set("logger.file-verbosity", caf::atom("quiet"));
  config.set("logger.console-verbosity", caf::atom("quiet"));
  caf::actor_system system{config};
  auto& scheduler = dynamic_cast<caf::scheduler::test_coordinator&>(system.scheduler());
  auto ring = std::make_shared<shared_ring>();
  for (uint32_t i = 0; i < actors; ++i) ring->actors.push_back(system.spawn(bouncer, ring, mix_seed(seed, i)));
  scheduler.run();
  for (const auto& actor : ring->actors)
    for (uint32_t k = 0; k < in_flight; ++k) caf::anon_send(actor, bounce_atom::value, uint64_t{0});
  ring->remaining = messages;
  rng picker(seed);
  uint64_t processed = 0;
  auto started = std::chrono::steady_clock::now();
  while (scheduler.has_job()) {
    auto& jobs = scheduler.jobs;
    auto pick = picker.below(jobs.size());
    if (pick != 0) std::swap(jobs[0], jobs[pick]);
    scheduler.run_once();
    ++processed;
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  for (const auto& actor : ring->actors) caf::anon_send_exit(actor, caf::exit_reason::kill);
  scheduler.run();
  ring->actors.clear();
  return static_cast<double>(processed) / seconds;
}

}  // namespace cmesh::bench
