// Reference fan-out through nats-server on loopback, for `cmesh bench gossip`.
//
// run_nats_fanout starts nats-server as a child process on a free 127.0.0.1 port, opens one
// NATS connection per "node" (5 by default, mirroring 5 cmesh node processes), subscribes every
// node to one subject with echo disabled, and has each message published by one node (round
// robin) reach the other nodes through the server. Each node is a thread of this process with
// its own connection and its own event loop (poll on a non-blocking socket); the client is a
// minimal plain-TCP NATS client written here (INFO, CONNECT, SUB, PUB, MSG/HMSG, PING/PONG,
// +OK/-ERR), with no TLS and no authentication. The server is killed and reaped before the
// function returns, on success and on every error path.
//
// Two phases on the same connections:
//  (a) throughput: every node publishes as fast as flow allows for `seconds`; a node keeps at
//      most `window` of its own messages not yet received by all other nodes. Reported:
//      messages received by all other nodes per second, and deliveries (one message received
//      by one node) per second, over the time from the first publish to full coverage of the
//      last message.
//  (b) latency: open loop, `rate_per_s` messages per second in total (message k is due at
//      t0 + k / rate and is published by node k mod nodes) for `seconds`. Time to full coverage
//      of a message = latest receipt among the other nodes - publish time, both read from
//      std::chrono::steady_clock (CLOCK_MONOTONIC) in one process. The publish time is read
//      just before the PUB is handed to the socket; the receipt time when the receiving node's
//      loop parses the MSG.
// Payloads are `payload` bytes: a 24-byte header (magic, phase, origin node, sequence number,
// send timestamp in steady_clock ns) padded with filler.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace cmesh::bench {

struct nats_fanout_options {
  std::string server_path = "/usr/sbin/nats-server";  // a name without '/' is looked up in PATH
  int nodes = 5;               // 2..64 connections; each message must reach nodes - 1 of them
  double seconds = 3;          // length of each phase
  double rate_per_s = 1000;    // latency phase: messages per second over all nodes
  size_t payload = 64;         // bytes per message, at least 24
  size_t window = 4096;        // throughput phase: per-node cap on messages not yet fully covered
  double drain_seconds = 2;    // after a phase's last publish: wait this long for stragglers
};

struct nats_fanout_result {
  // Throughput phase.
  double disseminated_per_s = 0;   // messages received by all nodes - 1 other nodes, per second
  double deliveries_per_s = 0;     // (message, receiving node) pairs per second
  uint64_t throughput_sent = 0;    // messages published in the throughput phase
  uint64_t throughput_incomplete = 0;  // of those, not fully covered within drain_seconds
  double throughput_elapsed_s = 0;     // first publish to full coverage of the last message
  // Latency phase.
  double p50_ms = 0, p99_ms = 0, max_ms = 0;  // time to full coverage over complete messages
  uint64_t sent = 0;        // messages published in the latency phase
  uint64_t incomplete = 0;  // of those, not fully covered within drain_seconds
  // The server's self-reported version (INFO "version"), e.g. "2.9.10".
  std::string server_version;
};

// Runs both phases. On failure returns nullopt with a one-line reason in `error` (binary
// missing: "nats-server not found at PATH; apt-get install nats-server").
std::optional<nats_fanout_result> run_nats_fanout(const nats_fanout_options& options,
                                                  std::string& error);

// The events benchmark's reference (cmesh bench events): one connection subscribed to a subject
// publishes `messages` messages of `payload` bytes to it through nats-server (echo on), at most
// `window` published and not yet back. Reported: wall time from the first publish to the last
// receipt, messages per second, and each message's publish-to-receipt latency (steady_clock, one
// process).
struct nats_loopback_options {
  std::string server_path = "/usr/sbin/nats-server";
  uint64_t messages = 100000;
  size_t payload = 64;     // at least 24 (the header)
  uint64_t window = 1024;
  double timeout_seconds = 60;
};

struct nats_loopback_result {
  double seconds = 0;
  double messages_per_s = 0;
  double p50_us = 0, p99_us = 0;
  bool in_order = true;  // every message came back in publish order
  std::string server_version;
};

std::optional<nats_loopback_result> run_nats_loopback(const nats_loopback_options& options, std::string& error);

// True if `path` (or, for a name without '/', some PATH entry) is an executable regular file.
bool nats_server_available(const std::string& path);

}  // namespace cmesh::bench
