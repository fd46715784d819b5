#include "runtime/cli/client_exchange.hpp"

#include <chrono>
#include <cstdio>

#include <unistd.h>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <sodium.h>

#include "actors/ignore_unexpected.hpp"
#include "messages/peer_messages.hpp"
#include "messages/seam.hpp"
#include "messages/services.hpp"
#include "runtime/core/event_sink.hpp"
#include "runtime/net/transport.hpp"
#include "runtime/cli/options.hpp"
#include "sim/model/fault_profile.hpp"

namespace cmesh::cli {

namespace {

using client_timeout_atom = caf::atom_constant<caf::atom("cl_tmo")>;

// Transport events: remembered for error messages, printed with --verbose.
class client_sink : public event_sink {
public:
  explicit client_sink(bool verbose) : verbose_(verbose) {}
  void record(const node_event& event) override {
    std::lock_guard<std::mutex> guard(mutex_);
    std::string text = std::string(event.service) + " " + std::string(event.kind);
    if (!event.peer.is_zero()) text += " peer=" + did_from_node_id(event.peer);
    if (!event.detail.empty()) text += " " + std::string(event.detail);
    if (verbose_) std::fprintf(stderr, "cmesh: %s\n", text.c_str());
    if (event.kind == "connection_closed" || event.kind == "dial_failed") last_failure_ = text;
  }
  std::string last_failure() {
    std::lock_guard<std::mutex> guard(mutex_);
    return last_failure_;
  }

private:
  std::mutex mutex_;
  bool verbose_;
  std::string last_failure_;
};

struct session_params {
  caf::actor transport;
  node_id self;
  std::string address;  // where to reach the node
  node_id pinned;       // zero = whoever answers there
  exchange_request request;
  std::shared_ptr<std::promise<exchange_outcome>> done;
};

struct session_state {
  static inline const char* name = "cmesh.client_exchange";
  session_params p;
  node_id target;  // the node the request went to; zero until known
  std::string target_address;
  uint64_t correlation = 0;
  bool redirected = false;
  bool finished = false;
  std::set<node_id> connected;  // to say goodbye to
};

using session_actor = caf::stateful_actor<session_state>;

void finish(session_actor* self, exchange_outcome result) {
  auto& st = self->state;
  if (st.finished) return;
  st.finished = true;
  // Leave the nodes' peer tables before the answer is handed over (and the transport closed).
  for (const auto& peer : st.connected) {
    auto bye = encode_message(st.p.self, 0, cmesh::peer::goodbye{0});
    if (bye) self->send(st.p.transport, send_atom::value, peer, services::peer, std::move(*bye));
  }
  st.p.done->set_value(std::move(result));
  self->quit();
}

void send_request(session_actor* self) {
  auto& st = self->state;
  st.correlation = random_nonzero();
  auto encoded = st.p.request.encode(st.p.self, st.correlation);
  if (!encoded) {
    exchange_outcome failed;
    failed.kind = exchange_kind::cannot_connect;
    failed.message = "the request cannot be encoded: " + encoded.err().describe();
    return finish(self, std::move(failed));
  }
  self->send(st.p.transport, send_atom::value, st.target, st.p.request.service, std::move(*encoded));
}

void on_reply(session_actor* self, const node_id& from, const bytes& data) {
  auto& st = self->state;
  auto env = decode_envelope(data.data(), data.size());
  if (!env || env->type != st.p.request.reply_type || env->correlation != st.correlation ||
      st.correlation == 0)
    return;  // not the answer we wait for (late, or another message)
  if (st.p.request.judge) {
    auto decision = st.p.request.judge(from, *env);
    if (decision.what == reply_decision::action::redirect && !st.redirected &&
        decision.redirect_to != from && decision.redirect_to != st.p.self &&
        parse_net_address(decision.redirect_address)) {
      st.redirected = true;
      st.target = decision.redirect_to;
      st.target_address = decision.redirect_address;
      self->send(st.p.transport, introduce_atom::value, st.target, st.target_address);
      return send_request(self);
    }
  }
  exchange_outcome answered;
  answered.kind = exchange_kind::answered;
  answered.from = from;
  answered.reply = std::move(*env);
  finish(self, std::move(answered));
}

caf::behavior session(session_actor* self, session_params params) {
  auto& st = self->state;
  st.p = std::move(params);
  self->set_default_handler(ignore_unexpected);
  self->send(st.p.transport, register_atom::value, st.p.request.service, caf::actor{self});
  st.target_address = st.p.address;
  if (!st.p.pinned.is_zero()) {
    // Known identity: the transport dials the address (pinned to it) when the first frame waits.
    st.target = st.p.pinned;
    self->send(st.p.transport, introduce_atom::value, st.target, st.p.address);
    send_request(self);
  } else {
    self->send(st.p.transport, dial_atom::value, st.p.address, node_id{});
  }
  self->delayed_send(self, std::chrono::microseconds(st.p.request.timeout_us),
                     client_timeout_atom::value);
  return {
    [=](peer_up_atom, const node_id& peer, const std::string&) {
      auto& s = self->state;
      s.connected.insert(peer);
      if (s.target.is_zero() && peer != s.p.self) {
        s.target = peer;
        send_request(self);
      }
    },
    [=](peer_down_atom, const node_id& peer) {
      auto& s = self->state;
      s.connected.erase(peer);
      if (peer != s.target || s.correlation == 0) return;
      exchange_outcome lost;
      lost.kind = exchange_kind::lost;
      lost.message = "the connection to " + s.target_address +
                     " closed before an answer (if this was a write, it may or may not have applied)";
      finish(self, std::move(lost));
    },
    [=](dial_failed_atom, const std::string& address, const std::string& reason) {
      exchange_outcome failed;
      failed.kind = exchange_kind::cannot_connect;
      failed.message = "cannot connect to " + address + ": " + reason;
      finish(self, std::move(failed));
    },
    [=](deliver_atom, const node_id& from, uint16_t service, const bytes& data) {
      if (service == self->state.p.request.service) on_reply(self, from, data);
    },
    [=](client_timeout_atom) {
      auto& s = self->state;
      exchange_outcome late;
      late.kind = exchange_kind::timeout;
      late.message = s.target.is_zero()
                         ? "no connection to " + s.target_address + " (timed out)"
                         : "no answer from " + s.target_address +
                               " (timed out; if this was a write, it may or may not have applied)";
      finish(self, std::move(late));
    },
  };
}

}  // namespace

// Closes the connections politely (goodbye and queued frames written first), for at most half a
// second.
void close_client_transport(caf::actor_system& system, const caf::actor& manager) {
  caf::scoped_actor self{system};
  self->request(manager, std::chrono::seconds(1), shutdown_atom::value)
      .receive([](caf::atom_value) {}, [](const caf::error&) {});
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (std::chrono::steady_clock::now() < deadline) {
    bool closed = false;
    self->request(manager, std::chrono::milliseconds(200), status_atom::value)
        .receive([&](const std::string& text) { closed = text.rfind("connections=0 ", 0) == 0; },
                 [&](const caf::error&) { closed = true; });
    if (closed) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

result<identity> client_identity(const std::string& path) {
  crypto_init();
  if (path.empty()) return identity::generate();
  auto loaded = read_identity_file(path);
  if (!loaded) return error{loaded.err().code, "--identity: " + loaded.err().describe()};
  return loaded;
}

result<client_options> read_client_options(const parsed_options& p, std::string_view identity_required_because,
                                           std::string_view default_node, std::string_view default_timeout) {
  if (default_node.empty() && !p.has("node"))
    return error{errc::invalid_argument, "--node [DID@]HOST:PORT is required"};
  if (!identity_required_because.empty() && !p.has("identity"))
    return error{errc::invalid_argument,
                 "--identity FILE is required: " + std::string(identity_required_because)};
  client_options c;
  auto node = parse_seed_spec(p.get("node", std::string(default_node)));
  if (!node) return error{errc::invalid_argument, "--node: " + node.err().message};
  c.node = *node;
  auto timeout = sim::parse_duration_us(p.get("timeout", std::string(default_timeout)));
  if (!timeout || *timeout <= 0) return error{errc::invalid_argument, "--timeout: expected a duration such as 5s"};
  c.timeout_us = *timeout;
  auto me = client_identity(p.get("identity", ""));
  if (!me) return me.err();
  c.me = *me;
  c.verbose = p.has("verbose");
  return c;
}

uint64_t random_nonzero() {
  uint64_t value = 0;
  while (value == 0) randombytes_buf(&value, sizeof value);
  return value;
}

int report_unreachable(const exchange_outcome& outcome) {
  std::fprintf(stderr, "%s\n", outcome.message.c_str());
  return exit_unreachable;
}

caf::actor_system& client_actor_system() {
  static caf::actor_system_config* config = new caf::actor_system_config;
  static caf::actor_system* system = new caf::actor_system{configure_for_transport(*config)};
  return *system;
}

exchange_outcome run_exchange(const identity& me, const seed_spec& node, exchange_request request) {
  // Leaked on purpose like the actor system: transport threads may still report to it.
  auto& sink = *new client_sink(request.verbose);
  auto* system = &client_actor_system();
  auto transport = start_transport(*system, client_transport(me, &sink));
  if (!transport) {
    exchange_outcome failed;
    failed.kind = exchange_kind::cannot_connect;
    failed.message = "cannot start the client transport: " + transport.err().message;
    return failed;
  }
  auto manager = transport->first;
  int64_t timeout_us = request.timeout_us;

  session_params params;
  params.transport = manager;
  params.self = me.public_key;
  params.address = node.address;
  params.pinned = node.pinned;
  params.request = std::move(request);
  params.done = std::make_shared<std::promise<exchange_outcome>>();
  auto future = params.done->get_future();
  system->spawn(session, std::move(params));

  exchange_outcome result;
  if (future.wait_for(std::chrono::microseconds(timeout_us) + std::chrono::seconds(2)) ==
      std::future_status::ready) {
    result = future.get();
  } else {
    result.kind = exchange_kind::timeout;
    result.message = "no answer from " + node.address + " (timed out)";
  }
  if (result.kind == exchange_kind::timeout) {
    auto why = sink.last_failure();
    if (!why.empty()) result.message += " [last transport event: " + why + "]";
  }
  close_client_transport(*system, manager);
  return result;
}

void exit_client(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  ::_exit(code);
}

}  // namespace cmesh::cli
