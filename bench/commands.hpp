#pragma once
namespace cmesh::bench {
int run_sim_bench(int argc, char** argv);
int run_election_bench(int argc, char** argv);
int run_kv_bench(int argc, char** argv);
int run_gossip_bench(int argc, char** argv);
int run_gossip_scenario(int argc, char** argv);  // child process of the gossip benchmark
int run_gossip_node(int argc, char** argv);      // one node of the real gossip benchmark
int run_router_bench(int argc, char** argv);
int run_router_run(int argc, char** argv);  // child process of the router benchmark
int run_membership_bench(int argc, char** argv);
int run_membership_scenario(int argc, char** argv);  // child process of the membership benchmark
int run_search_memory_bench(int argc, char** argv);
int run_search_memory_scenario(int argc, char** argv);  // child process of search-memory
int run_events_bench(int argc, char** argv);
int run_events_run(int argc, char** argv);  // child process of the events benchmark
int run_transport_bench(int argc, char** argv);
int run_transport_server(int argc, char** argv);  // child process of the transport benchmark
}  // namespace cmesh::bench
