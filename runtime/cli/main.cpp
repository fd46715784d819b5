// cmesh: one binary for every role. `cmesh <command> --help` explains each command.
#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "runtime/cli/commands.hpp"

namespace {

const char* overview =
    "cmesh: a decentralized mesh runtime (CAF actors over an authenticated transport,\n"
    "or inside a deterministic simulator).\n"
    "\n"
    "Usage: cmesh <command> [options]\n"
    "\n"
    "Commands:\n"
    "  up        start a local mesh of node processes on loopback (the quick start)\n"
    "  node      run one node: listen, join seeds, keep peers, serve\n"
    "  id        identities (did:key, ed25519) and IAM sessions: new, show, session, token, revoke\n"
    "  sim       run a deterministic multi-node simulation with faults\n"
    "  bench     run a benchmark (transport, sim)\n"
    "  kv        get, put, del, cas in the replicated key/value store of a running group\n"
    "  name      register, resolve, transfer, release registrar names (NAME.mcom -> FQMN)\n"
    "  rmb       send a command to a twin over the reliable message bus and print its reply\n"
    "  search    find agents whose published tags match, through a node's gossip search\n"
    "  lookup    find agents by tags in an aggregator's directory (one round trip)\n"
    "  events    publish, subscribe and request on a node's events bus (sub, pub, request)\n"
    "  call      send a CMTP request (an FQMN) to a node's router; runs the IAM handshake\n"
    "  reputation  endorse or report an agent, or show its score at a node\n"
    "\n"
    "Run 'cmesh <command> --help' for the options of a command.\n";

}  // namespace

// The allocator keeps freed memory instead of returning it at every dip: a node allocates and
// frees message buffers in bursts (a batch of requests, a Raft append), and glibc's adaptive
// defaults would trim the heap and fault the pages back in for each burst. Up to 64 MiB of free
// heap stays mapped; allocations up to 32 MiB come from the heap, not a fresh mmap each.
void tune_allocator() {
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  mallopt(M_TOP_PAD, 16 << 20);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
}

int main(int argc, char** argv) {
  tune_allocator();
  if (argc < 2) {
    std::fputs(overview, stderr);
    return cmesh::cli::exit_usage;
  }
  std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(overview, stdout);
    return cmesh::cli::exit_ok;
  }
  int rest_argc = argc - 2;
  char** rest_argv = argv + 2;
  if (command == "node") return cmesh::cli::run_node(rest_argc, rest_argv);
  if (command == "id") return cmesh::cli::run_id(rest_argc, rest_argv);
  if (command == "sim") return cmesh::cli::run_sim(rest_argc, rest_argv);
  if (command == "up") return cmesh::cli::run_up(rest_argc, rest_argv);
  if (command == "bench") return cmesh::cli::run_bench(rest_argc, rest_argv);
  if (command == "kv") return cmesh::cli::run_kv(rest_argc, rest_argv);
  if (command == "name") return cmesh::cli::run_name(rest_argc, rest_argv);
  if (command == "rmb") return cmesh::cli::run_rmb(rest_argc, rest_argv);
  if (command == "search") return cmesh::cli::run_search(rest_argc, rest_argv);
  if (command == "lookup") return cmesh::cli::run_lookup(rest_argc, rest_argv);
  if (command == "events") return cmesh::cli::run_events(rest_argc, rest_argv);
  if (command == "call") return cmesh::cli::run_call(rest_argc, rest_argv);
  if (command == "reputation") return cmesh::cli::run_reputation(rest_argc, rest_argv);
  std::fprintf(stderr, "cmesh: unknown command '%s'\n\n%s", command.c_str(), overview);
  return cmesh::cli::exit_usage;
}
