// Entry points of the `cmesh` subcommands. Each returns the process exit code:
// 0 success, 1 the run failed (a check or invariant did not hold), 2 bad usage or input.
// The kv and name clients add 3: timeout, cannot connect, or connection lost.
#pragma once

namespace cmesh::cli {

int run_node(int argc, char** argv);
int run_id(int argc, char** argv);
int run_sim(int argc, char** argv);
int run_up(int argc, char** argv);
int run_bench(int argc, char** argv);
int run_kv(int argc, char** argv);    // cmesh kv: client of the replicated key/value store
int run_name(int argc, char** argv);  // cmesh name: client of the registrar
int run_rmb(int argc, char** argv);   // cmesh rmb: send a command to a twin
int run_search(int argc, char** argv);  // cmesh search: gossip search for agents by tags
int run_lookup(int argc, char** argv);  // cmesh lookup: agents by tags from an aggregator
int run_events(int argc, char** argv);  // cmesh events: sub, pub, request on the events bus
int run_call(int argc, char** argv);
int run_credential(int argc, char** argv);  // cmesh id credential (called by run_id)     // cmesh call: one CMTP request to a router
int run_reputation(int argc, char** argv);  // cmesh reputation: endorse, report, present, show

inline constexpr int exit_ok = 0;
inline constexpr int exit_failed = 1;
inline constexpr int exit_usage = 2;

}  // namespace cmesh::cli
