// A one-shot client exchange with one node over the real transport, for the command-line clients
// (cmesh kv, cmesh name, cmesh rmb, cmesh search). It runs a small actor system of its own,
// authenticates to the node with the handshake (so the node learns the caller's identity from
// the transport, never from the request), sends one request envelope to a service and waits for
// the envelope of the expected type with the same correlation.
//
// The client's transport listens on 127.0.0.1:0 (the transport always listens) and advertises
// that address in the handshake, so the node's peer service adds the client as a peer. The
// client says goodbye (peer protocol) before it closes, which removes it again at once.
//
// run_exchange never blocks much longer than the timeout. The actor system is leaked on purpose:
// callers _exit after printing, so a dialer blocked in connect() cannot hold the process up.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "messages/codec.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/core/address.hpp"
#include "runtime/crypto/identity.hpp"

namespace caf {
class actor;
class actor_system;
}  // namespace caf

namespace cmesh::cli {

inline constexpr int exit_unreachable = 3;  // timeout, cannot connect, connection lost

enum class exchange_kind { answered, timeout, cannot_connect, lost };

struct exchange_outcome {
  exchange_kind kind = exchange_kind::timeout;
  node_id from;
  envelope reply;        // when answered
  std::string message;   // otherwise: what went wrong, for the user
};

// What to do with an answer of the expected type and correlation.
struct reply_decision {
  enum class action { accept, redirect } what = action::accept;
  node_id redirect_to;            // redirect: send the same request (same bytes) to this node,
  std::string redirect_address;   // ...at this address, once
};

struct exchange_request {
  uint16_t service = 0;
  uint16_t reply_type = 0;
  // The request envelope for this correlation (called once per send; a redirect re-encodes).
  std::function<result<bytes>(const node_id& self, uint64_t correlation)> encode;
  // Optional: inspect an answer before it is accepted (e.g. 503 naming a leader -> redirect).
  std::function<reply_decision(const node_id& from, const envelope& reply)> judge;
  int64_t timeout_us = 5'000'000;
  bool verbose = false;  // print transport events on stderr
};

exchange_outcome run_exchange(const identity& me, const seed_spec& node, exchange_request request);

// The one actor system of a client process, created on first use and leaked (callers _exit).
// One per process: CAF 0.17 crashes when a second system is constructed while a thread of the
// first (a finished dialer) is still terminating (seen as a rare SIGSEGV in cmesh rmb send, which
// used to run two).
caf::actor_system& client_actor_system();

// How a client command ends: flushes stdout and stderr, then _exits with `code`, skipping the
// actor systems' teardown (a dialer blocked in connect() cannot hold the process up).
[[noreturn]] void exit_client(int code);

// The client's identity: read from `path` (the --identity option), or a fresh one when `path` is
// empty. Initializes libsodium. Errors: as read_identity_file, the message prefixed
// "--identity: ".
result<identity> client_identity(const std::string& path);

class parsed_options;

// The options every one-shot client command reads: --node, --identity, --timeout, --verbose.
struct client_options {
  identity me;
  seed_spec node;
  int64_t timeout_us = 0;
  bool verbose = false;
};

// Reads them. A non-empty `identity_required_because` makes --identity required (the text says
// why: "--identity FILE is required: <why>"); otherwise a fresh identity stands in. An empty
// `default_node` makes --node required. Errors (invalid_argument) name the option.
result<client_options> read_client_options(const parsed_options& p, std::string_view identity_required_because = {},
                                           std::string_view default_node = {},
                                           std::string_view default_timeout = "5s");

// A random 64-bit value other than 0 (correlations, client ids). Real mode only.
uint64_t random_nonzero();

// Closes a client transport's connections politely (goodbye and queued frames written first), for
// at most about a second and a half. For clients that run their own session (cmesh events sub).
void close_client_transport(caf::actor_system& system, const caf::actor& manager);

// For a failed exchange: prints the message on stderr and returns exit_unreachable.
int report_unreachable(const exchange_outcome& outcome);

// One typed request, one typed reply (T::service_id is the service): runs the exchange with
// c.me against `node` and decodes the answer as Reply. On failure prints why on stderr and sets
// exit_code (unreachable: report_unreachable's; malformed answer: 1). On success `from` is the
// node that answered. The reply's own status is the caller's to judge.
template <class Reply, class Request>
std::optional<Reply> ask_typed(const client_options& c, const seed_spec& node, const Request& request, node_id& from,
                               int& exit_code) {
  exchange_request exchange;
  exchange.service = Request::service_id;
  exchange.reply_type = Reply::type_id;
  exchange.timeout_us = c.timeout_us;
  exchange.verbose = c.verbose;
  exchange.encode = [request](const node_id& self, uint64_t correlation) {
    return encode_message(self, correlation, request);
  };
  auto outcome = run_exchange(c.me, node, std::move(exchange));
  if (outcome.kind != exchange_kind::answered) {
    exit_code = report_unreachable(outcome);
    return std::nullopt;
  }
  auto reply = decode_payload<Reply>(outcome.reply);
  if (!reply) {
    std::fprintf(stderr, "malformed answer from %s: %s\n", node.address.c_str(), reply.err().describe().c_str());
    exit_code = exit_failed;
    return std::nullopt;
  }
  from = outcome.from;
  return std::move(*reply);
}

}  // namespace cmesh::cli
