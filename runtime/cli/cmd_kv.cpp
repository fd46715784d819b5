// cmesh kv / cmesh name: a one-shot client of the replicated key/value service and registrar
// (actors/kv). It runs its own small actor system with the real transport, authenticates to one
// node with the handshake (the node learns the caller's identity from it, never from the
// request), sends one kv::request envelope and prints the kv::response with that correlation.
//
// A follower forwards the request to the leader itself, so any member normally answers. A 503
// that names a leader and its address is retried once, with the same (client_id, sequence), so
// a write that did apply is not applied twice.
//
// The client's transport listens on 127.0.0.1:0 (the transport always listens) and advertises
// that address in the handshake, so the node's peer service adds the client as a peer. The
// client says goodbye (peer protocol) before it closes, which removes it again at once; a node
// that shared it with others meanwhile only loses a few dial attempts and log lines.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <sodium.h>

#include "messages/codec.hpp"
#include "messages/kv_messages.hpp"
#include "messages/peer_messages.hpp"
#include "messages/seam.hpp"
#include "messages/services.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/core/address.hpp"
#include "runtime/core/event_sink.hpp"
#include "runtime/crypto/identity.hpp"
#include "runtime/net/transport.hpp"
#include "sim/model/fault_profile.hpp"

namespace cmesh::cli {

namespace {

inline constexpr int exit_unreachable = 3;  // timeout, cannot connect, connection lost

using client_timeout_atom = caf::atom_constant<caf::atom("cl_tmo")>;

std::vector<option_spec> common_options(const std::string& identity_help) {
  return {
      {"node", "[DID@]HOST:PORT", "the node to ask (any member of the group); with DID@ the client refuses anyone but that identity there", ""},
      {"identity", "FILE", identity_help, ""},
      {"timeout", "T", "give up after this long (exit 3)", "5s"},
      {"verbose", "", "print transport events on stderr", ""},
  };
}

const char* exit_codes_text =
    "Exit codes: 0 success (2xx), 1 refused by the service (4xx/5xx, printed on stderr as\n"
    "'STATUS reason'), 2 bad usage, 3 timeout, cannot connect or connection lost.";

command_spec kv_spec() {
  command_spec spec;
  spec.name = "cmesh kv";
  spec.summary = "Read and write the replicated key/value store of a Raft group (nodes started with "
                 "--raft-member, or 'cmesh up --raft').";
  spec.usage =
      "cmesh kv get KEY --node [DID@]HOST:PORT [options]\n"
      "       cmesh kv put KEY VALUE --node ...\n"
      "       cmesh kv del KEY --node ...\n"
      "       cmesh kv cas KEY (--expect OLD | --expect-absent) NEW --node ...";
  spec.options = common_options("identity key file to authenticate with (default: a fresh one in memory)");
  spec.options.push_back({"expect", "OLD", "cas: the value the key must hold", ""});
  spec.options.push_back({"expect-absent", "", "cas: the key must be absent", ""});
  spec.epilog = std::string(
                    "get prints the value on stdout; writes print 'STATUS ok (index N)'.\n"
                    "Example:\n"
                    "  cmesh kv put greeting hello --node 127.0.0.1:7001\n"
                    "  cmesh kv get greeting --node 127.0.0.1:7002\n"
                    "  cmesh kv cas greeting --expect hello bonjour --node 127.0.0.1:7003\n") +
                exit_codes_text;
  return spec;
}

command_spec name_spec() {
  command_spec spec;
  spec.name = "cmesh name";
  spec.summary = "Register and resolve registrar names (NAME.mcom -> FQMN), owned by the identity "
                 "that registered them.";
  spec.usage =
      "cmesh name register NAME FQMN --identity FILE --node [DID@]HOST:PORT [options]\n"
      "       cmesh name resolve NAME --node ...\n"
      "       cmesh name transfer NAME DID --identity FILE --node ...\n"
      "       cmesh name release NAME --identity FILE --node ...";
  spec.options = common_options(
      "identity key file of the owner (required for register, transfer, release)");
  spec.epilog = std::string(
                    "resolve prints the target on stdout; the others print 'STATUS ok (index N)'.\n"
                    "Names: labels of letters, digits and '-', ending in .mcom, case-insensitive.\n"
                    "Example:\n"
                    "  cmesh id new me.key\n"
                    "  cmesh name register helloWorld.mcom 0xS:0x001 --identity me.key --node 127.0.0.1:7001\n"
                    "  cmesh name resolve helloWorld.mcom --node 127.0.0.1:7002\n") +
                exit_codes_text;
  return spec;
}

// ---- the request session ----------------------------------------------------------------------

enum class outcome_kind { answered, timeout, cannot_connect, lost };

struct outcome {
  outcome_kind kind = outcome_kind::timeout;
  kv::response response;
  std::string message;  // for anything but `answered`
};

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
  std::string address;   // where to reach the node
  node_id pinned;        // zero = whoever answers there
  kv::request request;
  int64_t timeout_us = 5'000'000;
  std::shared_ptr<std::promise<outcome>> done;
};

struct session_state {
  static inline const char* name = "cmesh.kv_client";
  session_params p;
  node_id target;          // the node the request went to; zero until known
  std::string target_address;
  uint64_t correlation = 0;
  bool retried = false;
  bool finished = false;
  std::set<node_id> connected;  // to say goodbye to
};

using session_actor = caf::stateful_actor<session_state>;

uint64_t random_nonzero() {
  uint64_t value = 0;
  while (value == 0) randombytes_buf(&value, sizeof value);
  return value;
}

void finish(session_actor* self, outcome result) {
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
  auto encoded = encode_message(st.p.self, st.correlation, st.p.request);
  if (!encoded) {
    outcome failed;
    failed.kind = outcome_kind::answered;
    failed.response.status = 413;
    failed.response.reason = "request cannot be encoded: " + encoded.err().describe();
    return finish(self, std::move(failed));
  }
  self->send(st.p.transport, send_atom::value, st.target, services::kv, std::move(*encoded));
}

void on_response(session_actor* self, const node_id& from, const bytes& data) {
  auto& st = self->state;
  auto env = decode_envelope(data.data(), data.size());
  if (!env || env->type != kv::response::type_id || env->correlation != st.correlation ||
      st.correlation == 0)
    return;  // not the answer we wait for (late, or another message)
  auto response = decode_payload<kv::response>(*env);
  if (!response) return;
  // A node that does not know the leader's address cannot forward; it names the leader instead.
  if (response->status == 503 && !st.retried && response->leader.size() == 32 &&
      !response->leader_address.empty() && parse_net_address(response->leader_address)) {
    auto leader = node_id::from_bytes(response->leader.data());
    if (leader != from && leader != st.p.self) {
      st.retried = true;
      st.target = leader;
      st.target_address = response->leader_address;
      self->send(st.p.transport, introduce_atom::value, leader, response->leader_address);
      return send_request(self);  // same client_id and sequence: deduplicated if it applied
    }
  }
  outcome answered;
  answered.kind = outcome_kind::answered;
  answered.response = std::move(*response);
  finish(self, std::move(answered));
}

caf::behavior session(session_actor* self, session_params params) {
  auto& st = self->state;
  st.p = std::move(params);
  self->set_default_handler(caf::drop);
  self->send(st.p.transport, register_atom::value, services::kv, caf::actor{self});
  st.target_address = st.p.address;
  if (!st.p.pinned.is_zero()) {
    // Known identity: the transport dials the address (pinned to it) when the first frame waits.
    st.target = st.p.pinned;
    self->send(st.p.transport, introduce_atom::value, st.target, st.p.address);
    send_request(self);
  } else {
    self->send(st.p.transport, dial_atom::value, st.p.address, node_id{});
  }
  self->delayed_send(self, std::chrono::microseconds(st.p.timeout_us), client_timeout_atom::value);
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
      outcome lost;
      lost.kind = outcome_kind::lost;
      lost.message = "the connection to " + s.target_address +
                     " closed before an answer (if this was a write, it may or may not have applied)";
      finish(self, std::move(lost));
    },
    [=](dial_failed_atom, const std::string& address, const std::string& reason) {
      outcome failed;
      failed.kind = outcome_kind::cannot_connect;
      failed.message = "cannot connect to " + address + ": " + reason;
      finish(self, std::move(failed));
    },
    [=](deliver_atom, const node_id& from, uint16_t service, const bytes& data) {
      if (service == services::kv) on_response(self, from, data);
    },
    [=](client_timeout_atom) {
      auto& s = self->state;
      outcome late;
      late.kind = outcome_kind::timeout;
      late.message = s.target.is_zero()
                         ? "no connection to " + s.target_address + " (timed out)"
                         : "no answer from " + s.target_address +
                               " (timed out; if this was a write, it may or may not have applied)";
      finish(self, std::move(late));
    },
  };
}

// Runs one request against the node; never blocks longer than about timeout_us.
outcome run_request(const identity& me, const seed_spec& node, const kv::request& request,
                    int64_t timeout_us, bool verbose) {
  // Leaked on purpose like the actor system below: transport threads may still report to it.
  auto& sink = *new client_sink(verbose);
  caf::actor_system_config config;
  config.load<caf::io::middleman>();
  config.set("logger.file-verbosity", caf::atom("quiet"));
  config.set("logger.console-verbosity", caf::atom("quiet"));
  config.set("middleman.heartbeat-interval", caf::timespan{0});
  // The actor system is never destroyed: the caller _exits, so a dialer blocked in connect()
  // cannot hold the process up after the answer or the timeout.
  auto* system = new caf::actor_system{config};

  transport_config transport_cfg;
  transport_cfg.self = me.public_key;
  transport_cfg.secret_key = me.secret_key;
  transport_cfg.listen_host = "127.0.0.1";
  transport_cfg.listen_port = 0;
  transport_cfg.events = &sink;
  transport_cfg.jitter_seed = randombytes_random();
  auto transport = start_transport(*system, transport_cfg);
  if (!transport) {
    outcome failed;
    failed.kind = outcome_kind::cannot_connect;
    failed.message = "cannot start the client transport: " + transport.err().message;
    return failed;
  }
  auto manager = transport->first;

  session_params params;
  params.transport = manager;
  params.self = me.public_key;
  params.address = node.address;
  params.pinned = node.pinned;
  params.request = request;
  params.timeout_us = timeout_us;
  params.done = std::make_shared<std::promise<outcome>>();
  auto future = params.done->get_future();
  system->spawn(session, std::move(params));

  outcome result;
  if (future.wait_for(std::chrono::microseconds(timeout_us) + std::chrono::seconds(2)) ==
      std::future_status::ready) {
    result = future.get();
  } else {
    result.kind = outcome_kind::timeout;
    result.message = "no answer from " + node.address + " (timed out)";
  }
  if (result.kind == outcome_kind::timeout) {
    auto why = sink.last_failure();
    if (!why.empty()) result.message += " [last transport event: " + why + "]";
  }
  // Close the connections politely (goodbye and queued frames written first), for at most
  // half a second, before the caller exits.
  {
    caf::scoped_actor self{*system};
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
  return result;
}

const char* status_text(uint16_t status) {
  switch (status) {
    case 200: return "ok";
    case 201: return "created";
    case 400: return "bad request";
    case 403: return "forbidden";
    case 404: return "not found";
    case 408: return "timeout";
    case 409: return "conflict";
    case 413: return "too large";
    case 500: return "internal error";
    case 503: return "unavailable";
    default: return "error";
  }
}

// Prints the outcome; returns the exit code.
int report(const outcome& result, kv::op operation) {
  if (result.kind != outcome_kind::answered) {
    std::fprintf(stderr, "%s\n", result.message.c_str());
    return exit_unreachable;
  }
  const auto& r = result.response;
  std::string reason = r.reason.empty() ? status_text(r.status) : r.reason;
  if (r.status >= 200 && r.status < 300) {
    if (operation == kv::op::get || operation == kv::op::name_resolve) {
      std::fwrite(r.value.data(), 1, r.value.size(), stdout);  // values may hold any bytes
      std::fputc('\n', stdout);
    } else {
      std::string note;
      if (operation == kv::op::del && !r.found) note = ", the key was absent";
      std::printf("%u %s%s (index %llu)\n", r.status, reason.c_str(), note.c_str(),
                  static_cast<unsigned long long>(r.index));
    }
    return exit_ok;
  }
  std::string extra;
  if (r.status == 503) {
    if (r.leader.size() == 32)
      extra = " (leader " + did_from_node_id(node_id::from_bytes(r.leader.data())) +
              (r.leader_address.empty() ? std::string() : " at " + r.leader_address) + ")";
  } else if (r.status == 409 && operation == kv::op::cas && r.found) {
    extra = " (current value: " + r.value + ")";
  }
  std::fprintf(stderr, "%u %s%s\n", r.status, reason.c_str(), extra.c_str());
  return exit_failed;
}

struct common {
  seed_spec node;
  int64_t timeout_us = 5'000'000;
  std::optional<identity> me;  // empty = none given
  bool verbose = false;
};

// Reads --node, --timeout, --identity. Prints the usage error and returns nullopt on failure.
std::optional<common> read_common(const command_spec& spec, const parsed_options& p,
                                  bool identity_required) {
  auto fail = [&](const std::string& message) -> std::optional<common> {
    std::fprintf(stderr, "%s: %s\n", spec.name.c_str(), message.c_str());
    return std::nullopt;
  };
  common c;
  if (!p.has("node")) return fail("--node [DID@]HOST:PORT is required (see " + spec.name + " --help)");
  auto node = parse_seed_spec(p.get("node"));
  if (!node) return fail("--node: " + node.err().message);
  c.node = *node;
  auto timeout = sim::parse_duration_us(p.get("timeout", "5s"));
  if (!timeout) return fail("--timeout: " + timeout.err().message);
  if (*timeout <= 0) return fail("--timeout: must be more than 0");
  c.timeout_us = *timeout;
  c.verbose = p.has("verbose");
  if (p.has("identity")) {
    auto loaded = read_identity_file(p.get("identity"));
    if (!loaded) return fail("--identity: " + loaded.err().describe());
    c.me = *loaded;
  } else if (identity_required) {
    return fail("--identity FILE is required: the caller's identity owns the name "
                "(create one with: cmesh id new FILE)");
  }
  return c;
}

int execute(const common& c, const kv::request& request) {
  auto me = c.me ? *c.me : identity::generate();
  auto result = run_request(me, c.node, request, c.timeout_us, c.verbose);
  int code = report(result, static_cast<kv::op>(request.operation));
  std::fflush(stdout);
  std::fflush(stderr);
  // See run_request: skip the actor system's teardown (the connection is already closed).
  ::_exit(code);
}

kv::request make_request(kv::op operation, std::string key, std::string value = {}) {
  kv::request r;
  r.operation = static_cast<uint8_t>(operation);
  r.key = std::move(key);
  r.value = std::move(value);
  bool read = operation == kv::op::get || operation == kv::op::name_resolve;
  if (!read) {
    // Exactly-once: a fresh client and sequence 1, so a retry of this very request is
    // recognised by the state machine and answered without applying it again.
    r.client_id = random_nonzero();
    r.sequence = 1;
  }
  return r;
}

int usage_error(const command_spec& spec, const std::string& message) {
  std::fprintf(stderr, "%s: %s (see %s --help)\n", spec.name.c_str(), message.c_str(),
               spec.name.c_str());
  return exit_usage;
}

}  // namespace

int run_kv(int argc, char** argv) {
  auto spec = kv_spec();
  int usage_code = 0;
  auto parsed = parse_command_line(spec, argc, argv, usage_code);
  if (!parsed) return usage_code;
  const auto& args = parsed->positional();
  if (args.empty()) return usage_error(spec, "expected get, put, del or cas");
  const std::string& verb = args[0];
  bool is_cas = verb == "cas";
  if (!is_cas && (parsed->has("expect") || parsed->has("expect-absent")))
    return usage_error(spec, "--expect and --expect-absent are for cas");
  kv::request request;
  if (verb == "get" || verb == "del") {
    if (args.size() != 2) return usage_error(spec, verb + " takes one KEY");
    request = make_request(verb == "get" ? kv::op::get : kv::op::del, args[1]);
  } else if (verb == "put") {
    if (args.size() != 3) return usage_error(spec, "put takes KEY VALUE");
    request = make_request(kv::op::put, args[1], args[2]);
  } else if (is_cas) {
    if (args.size() != 3) return usage_error(spec, "cas takes KEY NEW and --expect OLD or --expect-absent");
    bool expect = parsed->has("expect");
    bool absent = parsed->has("expect-absent");
    if (expect == absent) return usage_error(spec, "cas needs exactly one of --expect OLD and --expect-absent");
    request = make_request(kv::op::cas, args[1], args[2]);
    request.expect_present = expect;
    if (expect) request.expected = parsed->all("expect").back();
  } else {
    return usage_error(spec, "unknown kv command '" + verb + "': expected get, put, del or cas");
  }
  crypto_init();
  auto c = read_common(spec, *parsed, false);
  if (!c) return exit_usage;
  return execute(*c, request);
}

int run_name(int argc, char** argv) {
  auto spec = name_spec();
  int usage_code = 0;
  auto parsed = parse_command_line(spec, argc, argv, usage_code);
  if (!parsed) return usage_code;
  const auto& args = parsed->positional();
  if (args.empty()) return usage_error(spec, "expected register, resolve, transfer or release");
  const std::string& verb = args[0];
  kv::request request;
  crypto_init();
  if (verb == "register") {
    if (args.size() != 3) return usage_error(spec, "register takes NAME FQMN");
    request = make_request(kv::op::name_register, args[1], args[2]);
  } else if (verb == "resolve") {
    if (args.size() != 2) return usage_error(spec, "resolve takes one NAME");
    request = make_request(kv::op::name_resolve, args[1]);
  } else if (verb == "transfer") {
    if (args.size() != 3) return usage_error(spec, "transfer takes NAME DID");
    auto to = node_id_from_did(args[2]);
    if (!to) return usage_error(spec, "transfer: '" + args[2] + "' is not a did:key: " + to.err().message);
    request = make_request(kv::op::name_transfer, args[1],
                           std::string(to->key.begin(), to->key.end()));
  } else if (verb == "release") {
    if (args.size() != 2) return usage_error(spec, "release takes one NAME");
    request = make_request(kv::op::name_release, args[1]);
  } else {
    return usage_error(spec, "unknown name command '" + verb +
                                 "': expected register, resolve, transfer or release");
  }
  // Resolving needs no ownership, so any identity (a fresh one by default) will do.
  auto c = read_common(spec, *parsed, verb != "resolve");
  if (!c) return exit_usage;
  return execute(*c, request);
}

}  // namespace cmesh::cli
