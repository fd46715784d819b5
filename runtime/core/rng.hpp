// Seeded pseudo-random source handed to every machine and actor (never a global one).
//
// xoshiro256** seeded through splitmix64: fast, small state, identical output on every platform,
// so a simulation seed replays bit for bit. Not for keys: key material comes from libsodium
// (real mode) or from the simulation seed through BLAKE2b (runtime/crypto/identity.hpp).
#pragma once

#include <cstdint>

namespace cmesh {

inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Mix two values into one seed, for deriving independent streams (per node, per purpose).
inline uint64_t mix_seed(uint64_t seed, uint64_t stream) {
  uint64_t s = seed ^ (stream * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL);
  return splitmix64(s);
}

class rng {
public:
  using result_type = uint64_t;

  explicit rng(uint64_t seed = 0) { reseed(seed); }

  void reseed(uint64_t seed) {
    uint64_t s = seed;
    for (auto& word : state_) word = splitmix64(s);
  }

  uint64_t next() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }
  uint64_t operator()() { return next(); }
  static constexpr uint64_t min() { return 0; }
  static constexpr uint64_t max() { return ~uint64_t{0}; }

  // Uniform in [0, bound); bound > 0. Lemire's multiply-shift (bias < 2^-64 * bound, fine here).
  uint64_t below(uint64_t bound) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * bound) >> 64);
  }
  // Uniform in [0, 1).
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool chance(double probability) { return probability > 0 && unit() < probability; }

  // A derived, independent generator (for handing to a sub-component).
  rng fork(uint64_t stream) { return rng(mix_seed(next(), stream)); }

private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
};

}  // namespace cmesh
