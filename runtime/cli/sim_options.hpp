// The `cmesh sim` flags and their translation into sim::simulation_options (shared with
// `cmesh bench sim`).
#pragma once

#include <cstdint>

#include "runtime/cli/options.hpp"
#include "sim/simulation.hpp"

namespace cmesh::cli {

command_spec sim_command_spec();
// `random_seed` is used when --seed is absent (the chosen seed is printed, so it replays).
result<sim::simulation_options> sim_options_from(const parsed_options& parsed, uint64_t random_seed);

}  // namespace cmesh::cli
