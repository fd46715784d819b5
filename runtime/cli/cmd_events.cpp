// cmesh events: a client of a node's events bus (docs/events.md section 10). The client
// authenticates to the node with its identity (the transport handshake) and speaks the client_*
// messages of messages/events_messages.hpp:
//   sub      subscribe, print each message as one line, acknowledge it (flow control)
//   pub      publish one message
//   request  publish with an inbox and print the first reply
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <set>
#include <string>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/ignore_unexpected.hpp"
#include "messages/codec.hpp"
#include "messages/events_messages.hpp"
#include "messages/peer_messages.hpp"
#include "messages/seam.hpp"
#include "messages/services.hpp"
#include "runtime/cli/client_exchange.hpp"
#include "runtime/cli/iam_client.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/net/transport.hpp"
#include "sim/model/fault_profile.hpp"

namespace cmesh::cli {

namespace {

using namespace cmesh::events;  // the client_* wire messages and status codes

using ev_flush_atom = caf::atom_constant<caf::atom("ev_flush")>;
using ev_stop_atom = caf::atom_constant<caf::atom("ev_stop")>;
using ev_timeout_atom = caf::atom_constant<caf::atom("ev_tmo")>;

const char* overview =
    "cmesh events: publish and subscribe on a node's events bus (subjects like orders.eu.created;\n"
    "patterns may use '*' for one token and '>' for the rest).\n"
    "\n"
    "Usage: cmesh events <sub|pub|request> ... [options]\n"
    "  sub      PATTERN                print every message on matching subjects\n"
    "  pub      SUBJECT PAYLOAD        publish one message\n"
    "  request  SUBJECT PAYLOAD        publish with a reply inbox and print the first reply\n"
    "\n"
    "Run 'cmesh events <sub|pub|request> --help' for the options.\n";

const option_spec node_option{"node", "[DID@]HOST:PORT", "the node to talk to", "127.0.0.1:7001"};
const option_spec identity_option{"identity", "FILE", "the client's key file (default: a fresh identity)", ""};
const option_spec verbose_option{"verbose", "", "print transport events on stderr", ""};

command_spec sub_spec() {
  command_spec spec;
  spec.name = "cmesh events sub";
  spec.summary = "Subscribe to a subject pattern on a node and print each message: SUBJECT PAYLOAD.";
  spec.usage = "cmesh events sub PATTERN [--queue GROUP] [--count N] [--node [DID@]HOST:PORT]";
  spec.options = {
      {"queue", "GROUP", "join a queue group: each message goes to one member of the group", ""},
      {"count", "N", "exit after N messages (default: run until SIGINT or SIGTERM)", ""},
      {"pending", "N", "messages the node may hold unacknowledged for us before it drops (slow consumer)", "the node's default (8192)"},
      node_option,
      identity_option,
      verbose_option,
  };
  spec.epilog =
      "Prints 'subscribed to PATTERN on ADDRESS' on stderr once the node accepted the subscription,\n"
      "then one line per message on stdout: the subject, a space, the payload (bytes below 0x20,\n"
      "0x7f and '\\' are written as \\xNN). A note on stderr when the node drops messages because\n"
      "we were too slow.\n"
      "Exit codes: 0 N messages printed or stopped by a signal, 1 the node refused, 2 bad usage or\n"
      "a pattern the node refused, 3 the node cannot be reached or the connection was lost.\n"
      "Example:\n"
      "  cmesh events sub 'orders.>' --count 2 --node 127.0.0.1:7001\n";
  return spec;
}

command_spec pub_spec() {
  command_spec spec;
  spec.name = "cmesh events pub";
  spec.summary = "Publish one message on a subject through a node.";
  spec.usage = "cmesh events pub SUBJECT PAYLOAD [--node [DID@]HOST:PORT]";
  spec.options = {
      {"reply-to", "SUBJECT", "the reply subject the subscribers see", ""},
      node_option,
      identity_option,
      verbose_option,
  };
  spec.epilog =
      "Prints on stderr whether any subscription matched, as the node knows the mesh's interest\n"
      "(a message nobody wants goes nowhere; delivery is at most once, as NATS core).\n"
      "Exit codes: 0 published, 1 the node refused, 2 bad usage or a subject the node refused,\n"
      "3 the node cannot be reached.\n"
      "Example:\n"
      "  cmesh events pub orders.created hello --node 127.0.0.1:7001\n";
  return spec;
}

command_spec request_spec() {
  command_spec spec;
  spec.name = "cmesh events request";
  spec.summary = "Publish a request with a reply inbox through a node and print the first reply.";
  spec.usage = "cmesh events request SUBJECT PAYLOAD [--timeout T] [--node [DID@]HOST:PORT]";
  spec.options = {
      {"timeout", "T", "how long the node waits for a reply (at most 60s)", "2s"},
      node_option,
      identity_option,
      verbose_option,
  };
  spec.epilog =
      "Prints the reply's payload on stdout.\n"
      "Exit codes: 0 a reply, 1 no responders (nobody subscribed to SUBJECT) or no reply in time,\n"
      "2 bad usage or a subject the node refused, 3 the node cannot be reached.\n"
      "Example:\n"
      "  cmesh events request prices.apple '' --timeout 1s --node 127.0.0.1:7001\n";
  return spec;
}

std::string printable(const bytes& data) {
  std::string out;
  out.reserve(data.size());
  for (uint8_t c : data) {
    if (c < 0x20 || c == 0x7f || c == '\\') {
      char buffer[5];
      std::snprintf(buffer, sizeof buffer, "\\x%02x", unsigned(c));
      out += buffer;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

bytes bytes_of(const std::string& text) { return bytes(text.begin(), text.end()); }

// The common options: --node (default 127.0.0.1:7001), --identity.
std::optional<client_options> read_client(const command_spec& spec, const parsed_options& p, int& code) {
  auto c = read_client_options(p, "", "127.0.0.1:7001");
  if (!c) {
    code = usage_error(spec, c.err().message);
    return std::nullopt;
  }
  return std::move(*c);
}

// The exit code for a refusal: the node found our input bad (2) or could not serve it (1).
int refused(const command_spec& spec, const client_reply& reply) {
  std::fprintf(stderr, "%s: %u %s\n", spec.name.c_str(), unsigned(reply.status), reply.reason.c_str());
  return reply.status == client_bad_request || reply.status == client_too_large ? exit_usage
                                                                                 : exit_failed;
}

// One request, one client_reply.
template <class T>
exchange_outcome ask(const client_options& c, const T& message, int64_t timeout_us) {
  exchange_request exchange;
  exchange.service = services::events;
  exchange.reply_type = client_reply::type_id;
  exchange.timeout_us = timeout_us;
  exchange.verbose = c.verbose;
  exchange.encode = [message](const node_id& self, uint64_t correlation) {
    return encode_message(self, correlation, message);
  };
  return run_exchange(c.me, c.node, std::move(exchange));
}

// The scope the command line asks for when a node wants a session (docs/iam.md §13).
constexpr const char* events_scope = "events.read events.publish";

std::optional<client_reply> decode_reply(const client_options& c, const exchange_outcome& outcome);

// ask(), and when the node answers 401 (this key holds no session there) one handshake and one
// more try.
template <class T>
exchange_outcome ask_in_session(const client_options& c, const T& message, int64_t timeout_us) {
  auto outcome = ask(c, message, timeout_us);
  if (outcome.kind != exchange_kind::answered) return outcome;
  auto reply = decode_payload<client_reply>(outcome.reply);
  const bool scope_missing = reply && reply->status == client_forbidden && reply->reason.rfind("insufficient_scope", 0) == 0;
  if (!reply || (reply->status != client_unauthorized && !scope_missing)) return outcome;
  int code = 0;
  if (!ensure_session(c, events_scope, code)) return outcome;
  return ask(c, message, timeout_us);
}

std::optional<client_reply> decode_reply(const client_options& c, const exchange_outcome& outcome) {
  auto reply = decode_payload<client_reply>(outcome.reply);
  if (!reply) {
    std::fprintf(stderr, "malformed answer from %s: %s\n", c.node.address.c_str(),
                 reply.err().describe().c_str());
    return std::nullopt;
  }
  return *reply;
}

// ---- pub, request --------------------------------------------------------------------------------

int run_pub(const command_spec& spec, const parsed_options& p) {
  if (p.positional().size() != 2) return usage_error(spec, "give SUBJECT and PAYLOAD");
  int code = 0;
  auto c = read_client(spec, p, code);
  if (!c) return code;
  client_publish message;
  message.subject = p.positional()[0];
  message.payload = bytes_of(p.positional()[1]);
  message.reply_to = p.get("reply-to");
  auto outcome = ask_in_session(*c, message, 5'000'000);
  if (outcome.kind != exchange_kind::answered) return report_unreachable(outcome);
  auto reply = decode_reply(*c, outcome);
  if (!reply) return exit_failed;
  if (reply->status != client_ok) return refused(spec, *reply);
  std::fprintf(stderr, "published on %s%s\n", message.subject.c_str(),
               reply->interest ? "" : " (no subscriber known to the node: nobody gets it)");
  return exit_ok;
}

int run_request(const command_spec& spec, const parsed_options& p) {
  if (p.positional().size() != 2) return usage_error(spec, "give SUBJECT and PAYLOAD");
  auto timeout = sim::parse_duration_us(p.get("timeout", "2s"));
  if (!timeout || *timeout < 1000 || *timeout > 60'000'000)
    return usage_error(spec, "--timeout: expected a duration between 1ms and 60s, such as 2s");
  int code = 0;
  auto c = read_client(spec, p, code);
  if (!c) return code;
  client_request message;
  message.subject = p.positional()[0];
  message.payload = bytes_of(p.positional()[1]);
  message.timeout_ms = static_cast<uint32_t>(*timeout / 1000);
  auto outcome = ask_in_session(*c, message, *timeout + 3'000'000);
  if (outcome.kind != exchange_kind::answered) return report_unreachable(outcome);
  auto reply = decode_reply(*c, outcome);
  if (!reply) return exit_failed;
  if (reply->status == client_no_responders) {
    std::fprintf(stderr, "no responders for %s\n", message.subject.c_str());
    return exit_failed;
  }
  if (reply->status == client_timeout) {
    std::fprintf(stderr, "no reply for %s within %s\n", message.subject.c_str(),
                 p.get("timeout", "2s").c_str());
    return exit_failed;
  }
  if (reply->status != client_ok) return refused(spec, *reply);
  std::printf("%s\n", printable(reply->payload).c_str());
  return exit_ok;
}

// ---- sub: a long-lived session --------------------------------------------------------------------

struct sub_params {
  caf::actor transport;
  node_id self;
  std::string address;
  node_id pinned;
  client_subscribe request;
  uint64_t count = 0;  // 0 = until stopped
  std::shared_ptr<std::promise<int>> done;
};

struct sub_state {
  static inline const char* name = "cmesh.events_sub";
  sub_params p;
  node_id target;
  uint64_t correlation = 0;
  uint64_t sid = 0;  // 0 until subscribed
  uint64_t received = 0;
  uint32_t unacked_messages = 0;
  uint64_t unacked_bytes = 0;
  bool flush_pending = false;
  bool finished = false;
  std::set<node_id> connected;
};

using sub_actor = caf::stateful_actor<sub_state>;

void send_to_node(sub_actor* self, const bytes& data) {
  auto& st = self->state;
  self->send(st.p.transport, send_atom::value, st.target, services::events, data);
}

void flush_acks(sub_actor* self) {
  auto& st = self->state;
  st.flush_pending = false;
  if (st.unacked_messages == 0) return;
  client_ack ack;
  ack.sid = st.sid;
  ack.messages = st.unacked_messages;
  ack.payload_bytes = st.unacked_bytes;
  st.unacked_messages = 0;
  st.unacked_bytes = 0;
  if (auto encoded = encode_message(st.p.self, 0, ack)) send_to_node(self, *encoded);
}

void finish(sub_actor* self, int code) {
  auto& st = self->state;
  if (st.finished) return;
  st.finished = true;
  flush_acks(self);
  for (const auto& peer : st.connected) {
    auto bye = encode_message(st.p.self, 0, cmesh::peer::goodbye{0});
    if (bye) self->send(st.p.transport, send_atom::value, peer, services::peer, std::move(*bye));
  }
  st.p.done->set_value(code);
  self->quit();
}

void send_subscribe(sub_actor* self) {
  auto& st = self->state;
  st.correlation = random_nonzero();
  auto encoded = encode_message(st.p.self, st.correlation, st.p.request);
  if (!encoded) {
    std::fprintf(stderr, "cmesh events sub: cannot encode the subscription: %s\n",
                 encoded.err().describe().c_str());
    return finish(self, exit_usage);
  }
  send_to_node(self, *encoded);
}

void on_node_envelope(sub_actor* self, const bytes& data) {
  auto& st = self->state;
  auto env = decode_envelope(data.data(), data.size());
  if (!env) return;
  if (env->type == client_reply::type_id && env->correlation == st.correlation && st.sid == 0) {
    auto reply = decode_payload<client_reply>(*env);
    if (!reply) {
      std::fprintf(stderr, "cmesh events sub: malformed answer: %s\n", reply.err().describe().c_str());
      return finish(self, exit_failed);
    }
    if (reply->status != client_ok) {
      std::fprintf(stderr, "cmesh events sub: %u %s\n", unsigned(reply->status), reply->reason.c_str());
      return finish(self, reply->status == client_bad_request ? exit_usage : exit_failed);
    }
    st.sid = reply->sid;
    std::string group = st.p.request.queue_group.empty() ? "" : " in queue group " + st.p.request.queue_group;
    std::fprintf(stderr, "subscribed to %s%s on %s\n", st.p.request.pattern.c_str(), group.c_str(),
                 st.p.address.c_str());
    std::fflush(stderr);
    return;
  }
  if (st.sid == 0) return;
  if (env->type == client_message::type_id) {
    auto m = decode_payload<client_message>(*env);
    if (!m || m->sid != st.sid) return;
    std::printf("%s %s\n", m->subject.c_str(), printable(m->payload).c_str());
    std::fflush(stdout);
    ++st.received;
    ++st.unacked_messages;
    st.unacked_bytes += m->payload.size();
    if (st.p.count > 0 && st.received >= st.p.count) return finish(self, exit_ok);
    // Acknowledge after the messages already in our mailbox: one ack per burst.
    if (!st.flush_pending) {
      st.flush_pending = true;
      self->send(self, ev_flush_atom::value);
    }
    return;
  }
  if (env->type == client_notice::type_id) {
    auto n = decode_payload<client_notice>(*env);
    if (!n || n->sid != st.sid) return;
    if (n->kind == "slow_consumer") {
      std::fprintf(stderr,
                   "slow consumer: the node dropped %llu message%s for us (%llu in all; %u waiting "
                   "for our acknowledgement)\n",
                   static_cast<unsigned long long>(n->dropped), n->dropped == 1 ? "" : "s",
                   static_cast<unsigned long long>(n->dropped_total), unsigned(n->pending_messages));
      std::fflush(stderr);
    } else if (n->kind == "ended") {
      std::fprintf(stderr, "the node ended the subscription\n");
      return finish(self, exit_ok);
    } else if (n->kind == "session_ended") {
      std::fprintf(stderr, "the node ended the subscription: our session was revoked\n");
      return finish(self, exit_failed);
    }
  }
}

caf::behavior sub_session(sub_actor* self, sub_params params) {
  auto& st = self->state;
  st.p = std::move(params);
  self->set_default_handler(ignore_unexpected);
  self->send(st.p.transport, register_atom::value, services::events, caf::actor{self});
  if (!st.p.pinned.is_zero()) {
    st.target = st.p.pinned;
    self->send(st.p.transport, introduce_atom::value, st.target, st.p.address);
    send_subscribe(self);
  } else {
    self->send(st.p.transport, dial_atom::value, st.p.address, node_id{});
  }
  self->delayed_send(self, std::chrono::seconds(10), ev_timeout_atom::value);
  return {
    [=](peer_up_atom, const node_id& peer, const std::string&) {
      auto& s = self->state;
      s.connected.insert(peer);
      if (s.target.is_zero() && peer != s.p.self) {
        s.target = peer;
        send_subscribe(self);
      }
    },
    [=](peer_down_atom, const node_id& peer) {
      auto& s = self->state;
      s.connected.erase(peer);
      if (peer != s.target) return;
      std::fprintf(stderr, "cmesh events sub: the connection to %s was lost\n", s.p.address.c_str());
      finish(self, exit_unreachable);
    },
    [=](dial_failed_atom, const std::string& address, const std::string& reason) {
      std::fprintf(stderr, "cannot connect to %s: %s\n", address.c_str(), reason.c_str());
      finish(self, exit_unreachable);
    },
    [=](deliver_atom, const node_id& from, uint16_t service, const bytes& data) {
      if (service == services::events && from == self->state.target) on_node_envelope(self, data);
    },
    [=](ev_flush_atom) { flush_acks(self); },
    [=](ev_timeout_atom) {
      if (self->state.sid != 0) return;
      std::fprintf(stderr, "no answer from %s (timed out)\n", self->state.p.address.c_str());
      finish(self, exit_unreachable);
    },
    [=](ev_stop_atom) { finish(self, exit_ok); },
  };
}

int run_sub(const command_spec& spec, const parsed_options& p) {
  if (p.positional().size() != 1) return usage_error(spec, "give exactly one PATTERN");
  auto count = get_unsigned(p, "count", 0, 1, 1'000'000'000);
  if (!count) return usage_error(spec, count.err().message);
  auto pending = get_unsigned(p, "pending", 0, 1, 65536);
  if (!pending) return usage_error(spec, pending.err().message);
  int code = 0;
  auto c = read_client(spec, p, code);
  if (!c) return code;

  // Block the stop signals before CAF starts its threads, so only sigtimedwait sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // A node that requires sessions (docs/iam.md §13) serves only keys that hold one: open it first.
  if (!ensure_session(*c, events_scope, code)) return code;

  auto* system = &client_actor_system();  // one per process (see client_exchange.hpp)
  auto transport = start_transport(*system, client_transport(c->me));
  if (!transport) {
    std::fprintf(stderr, "cannot start the client transport: %s\n", transport.err().message.c_str());
    return exit_unreachable;
  }
  auto manager = transport->first;
  sub_params params;
  params.transport = manager;
  params.self = c->me.public_key;
  params.address = c->node.address;
  params.pinned = c->node.pinned;
  params.request.pattern = p.positional()[0];
  params.request.queue_group = p.get("queue");
  params.request.max_messages = static_cast<uint32_t>(std::min<uint64_t>(*count, UINT32_MAX));
  params.request.pending_messages = static_cast<uint32_t>(*pending);
  params.count = *count;
  params.done = std::make_shared<std::promise<int>>();
  auto future = params.done->get_future();
  auto session = system->spawn(sub_session, std::move(params));

  int result = exit_ok;
  for (;;) {
    if (future.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready) {
      result = future.get();
      break;
    }
    timespec tick{0, 100'000'000};
    if (sigtimedwait(&signals, nullptr, &tick) > 0) {
      caf::anon_send(session, ev_stop_atom::value);
      if (future.wait_for(std::chrono::seconds(2)) == std::future_status::ready) result = future.get();
      break;
    }
  }
  close_client_transport(*system, manager);
  return result;
}

}  // namespace

int run_events(int argc, char** argv) {
  int code = run_subcommand("cmesh events", overview, argc, argv,
                            {{"sub", sub_spec, run_sub}, {"pub", pub_spec, run_pub}, {"request", request_spec, run_request}});
  exit_client(code);
}

}  // namespace cmesh::cli
