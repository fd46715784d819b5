// cmesh bench events: the events bus against nats-server, the system it is modelled on, in the
// same run and the same shape: one client connection subscribed to `bench.events` publishes N
// messages of B bytes to that subject through the broker, at most W published and not yet back.
//   cmesh: a `cmesh node` process (the events bus behind the encrypted transport); the client is
//          this process, with an IAM session for events.read and events.publish (docs/iam.md §13).
//          Publishes go with correlation 0 (not acknowledged, as NATS's PUB; a refusal would
//          still be answered), and the client acknowledges deliveries in groups of 256
//          (client_ack), as the events client protocol asks.
//   cmesh-acked: the same with every publish acknowledged by the node (client_reply).
//   nats:  nats-server on loopback; the client is the minimal NATS client of nats_fanout.cpp with
//          echo on (plain TCP, no TLS, no authentication, fire-and-forget PUB).
// Reported per mode: wall time from the first publish to the last receipt, messages per second,
// and each message's publish-to-receipt latency (steady clock in one process).
//
// Each run is a child process (`cmesh bench events-run`), so its peak memory is its own.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/ignore_unexpected.hpp"
#include "bench/bench_util.hpp"
#include "bench/commands.hpp"
#include "bench/nats_fanout.hpp"
#include "bench/node_child.hpp"
#include "messages/codec.hpp"
#include "messages/events_messages.hpp"
#include "messages/seam.hpp"
#include "messages/services.hpp"
#include "runtime/cli/client_exchange.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/iam_client.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/crypto/identity.hpp"
#include "runtime/net/transport.hpp"

namespace cmesh::bench {

namespace {

using clock_type = std::chrono::steady_clock;
constexpr const char* loop_subject = "bench.events";
constexpr uint32_t ack_every = 256;

struct run_params {
  std::string mode;  // cmesh (publishes not acknowledged) | cmesh-acked | nats
  std::string dir;
  uint64_t messages = 100000;
  uint32_t payload = 64;
  uint32_t window = 1024;
};

struct run_outcome {
  double seconds = 0;
  std::vector<double> latencies_us;  // cmesh: every message's
  double p50_us = 0, p99_us = 0;
  std::string error;
};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count();
}

// ---- the cmesh client: subscribe, then publish with a window --------------------------------

struct driver_params {
  caf::actor transport;
  node_id self, node;
  run_params run;
  std::shared_ptr<std::promise<run_outcome>> done;
};

struct driver_state {
  static inline const char* name = "cmesh.bench.events_driver";
  driver_params p;
  uint64_t sid = 0;
  uint64_t published = 0;
  uint64_t received = 0;
  uint32_t unacked = 0;
  uint64_t unacked_bytes = 0;
  int64_t t0 = 0;
  bytes payload;
  run_outcome outcome;
  bool finished = false;
};

using driver_actor = caf::stateful_actor<driver_state>;

void send_message(driver_actor* self, const bytes& data) {
  auto& st = self->state;
  self->send(st.p.transport, send_atom::value, st.p.node, services::events, data);
}

void finish(driver_actor* self, std::string error) {
  auto& st = self->state;
  if (st.finished) return;
  st.finished = true;
  st.outcome.seconds = static_cast<double>(now_ns() - st.t0) / 1e9;
  st.outcome.error = std::move(error);
  st.p.done->set_value(std::move(st.outcome));
  self->quit();
}

void publish_more(driver_actor* self) {
  auto& st = self->state;
  while (st.published < st.p.run.messages && st.published - st.received < st.p.run.window) {
    const uint64_t seq = st.published++;
    const int64_t sent = now_ns();
    std::memcpy(st.payload.data(), &seq, 8);
    std::memcpy(st.payload.data() + 8, &sent, 8);
    events::client_publish m;
    m.subject = loop_subject;
    m.payload = st.payload;
    // Correlation 0: fire-and-forget, as NATS's PUB; otherwise the node acknowledges each.
    const uint64_t correlation = st.p.run.mode == "cmesh-acked" ? 2 + seq : 0;
    auto encoded = encode_message(st.p.self, correlation, m);
    if (!encoded) return finish(self, "cannot encode a publish: " + encoded.err().describe());
    send_message(self, *encoded);
  }
}

void on_delivery(driver_actor* self, const events::client_message& m) {
  auto& st = self->state;
  if (m.payload.size() < 16) return;
  uint64_t seq = 0;
  int64_t sent = 0;
  std::memcpy(&seq, m.payload.data(), 8);
  std::memcpy(&sent, m.payload.data() + 8, 8);
  st.outcome.latencies_us.push_back(static_cast<double>(now_ns() - sent) / 1e3);
  ++st.received;
  ++st.unacked;
  st.unacked_bytes += m.payload.size();
  if (st.unacked >= ack_every || st.received == st.p.run.messages) {
    events::client_ack ack;
    ack.sid = st.sid;
    ack.messages = st.unacked;
    ack.payload_bytes = st.unacked_bytes;
    st.unacked = 0;
    st.unacked_bytes = 0;
    if (auto encoded = encode_message(st.p.self, 0, ack)) send_message(self, *encoded);
  }
  if (st.received == st.p.run.messages) return finish(self, "");
  publish_more(self);
}

caf::behavior driver(driver_actor* self, driver_params params) {
  auto& st = self->state;
  st.p = std::move(params);
  st.payload.assign(std::max<uint32_t>(16, st.p.run.payload), 'x');
  self->set_default_handler(ignore_unexpected);
  self->send(st.p.transport, register_atom::value, services::events, caf::actor{self});
  events::client_subscribe sub;
  sub.pattern = loop_subject;
  sub.pending_messages = std::max<uint32_t>(8192, 2 * st.p.run.window);
  auto encoded = encode_message(st.p.self, 1, sub);
  if (encoded) send_message(self, *encoded);
  return {
    [=](deliver_atom, const node_id&, uint16_t service, const bytes& data) {
      auto& s = self->state;
      if (service != services::events || s.finished) return;
      auto env = decode_envelope(data.data(), data.size());
      if (!env) return;
      if (env->type == events::client_message::type_id) {
        auto m = decode_payload<events::client_message>(*env);
        if (m) on_delivery(self, *m);
        return;
      }
      if (env->type == events::client_notice::type_id) {
        auto n = decode_payload<events::client_notice>(*env);
        return finish(self, "the node sent notice '" + (n ? n->kind : std::string("?")) + "'");
      }
      if (env->type != events::client_reply::type_id) return;
      auto r = decode_payload<events::client_reply>(*env);
      if (!r) return finish(self, "unreadable reply: " + r.err().describe());
      if (r->status != events::client_ok)
        return finish(self, "the node answered " + std::to_string(r->status) + " " + r->reason);
      if (env->correlation == 1) {  // subscribed: start
        s.sid = r->sid;
        s.t0 = now_ns();
        publish_more(self);
      }
    },
    [=](peer_up_atom, const node_id&, const std::string&) {},
    [=](peer_down_atom, const node_id&) { finish(self, "the node closed the connection"); },
    [=](dial_failed_atom, const std::string&, const std::string& why) { finish(self, "cannot reach the node: " + why); },
  };
}

run_outcome run_cmesh(const run_params& p) {
  run_outcome result;
  auto node_process = node_child::start(p.dir);
  if (!node_process) {
    result.error = node_process.err().message;
    return result;
  }
  const identity& node = (*node_process)->key();
  const std::string& address = (*node_process)->address();
  auto me = identity::generate();
  // A session for both scopes, retried while the node starts.
  cli::client_options c{me, seed_spec{address, node.public_key}, 2'000'000, false};
  bool session = false;
  for (auto until = clock_type::now() + std::chrono::seconds(20); !session && clock_type::now() < until;) {
    int code = 0;
    session = cli::ensure_session(c, "events.read events.publish", code);
    if (!session) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  if (!session) {
    result.error = "no IAM session with the node within 20 s (log: " + (*node_process)->log() + ")";
    return result;
  }
  caf::actor_system_config config;
  caf::actor_system system{configure_for_transport(config)};
  auto started = start_transport(system, client_transport(me));
  if (!started) {
    result.error = "client transport: " + started.err().message;
    return result;
  }
  auto manager = started->first;
  caf::anon_send(manager, introduce_atom::value, node.public_key, address);
  driver_params d;
  d.transport = manager;
  d.self = me.public_key;
  d.node = node.public_key;
  d.run = p;
  d.done = std::make_shared<std::promise<run_outcome>>();
  auto future = d.done->get_future();
  auto actor = system.spawn(driver, std::move(d));
  if (future.wait_for(std::chrono::seconds(120)) != std::future_status::ready) {
    caf::anon_send_exit(actor, caf::exit_reason::kill);
    result.error = "the run did not finish within 120 s";
  } else {
    result = future.get();
  }
  caf::anon_send_exit(manager, caf::exit_reason::user_shutdown);
  return result;
}

run_outcome run_nats(const run_params& p) {
  run_outcome result;
  nats_loopback_options o;
  o.messages = p.messages;
  o.payload = std::max<uint32_t>(24, p.payload);
  o.window = p.window;
  std::string error;
  auto r = run_nats_loopback(o, error);
  if (!r) {
    result.error = error;
    return result;
  }
  result.seconds = r->seconds;
  result.p50_us = r->p50_us;
  result.p99_us = r->p99_us;
  if (!r->in_order) result.error = "nats-server delivered out of order";
  return result;
}

cli::command_spec run_spec() {
  cli::command_spec s;
  s.name = "cmesh bench events-run";
  s.summary = "One events benchmark run (a child process of cmesh bench events).";
  s.usage = "cmesh bench events-run --mode cmesh|cmesh-acked|nats --dir DIR [--messages N] [--payload B] [--window W]";
  s.options = {{"mode", "M", "cmesh, cmesh-acked or nats", ""},
               {"dir", "DIR", "data folder for this run", ""},
               {"messages", "N", "messages published", "100000"},
               {"payload", "B", "bytes per message (at least 24)", "64"},
               {"window", "W", "messages published and not yet back", "1024"}};
  return s;
}

cli::command_spec bench_spec() {
  cli::command_spec s;
  s.name = "cmesh bench events";
  s.summary = "The events bus against nats-server: one client publishing to a subject it subscribes to.";
  s.usage = "cmesh bench events [--messages N] [--payload B] [--window W] [--runs R] [--only cmesh|cmesh-acked|nats] [--out DIR]";
  s.options = {{"messages", "N", "messages per run", "100000"},
               {"payload", "B", "bytes per message (at least 24)", "64"},
               {"window", "W", "messages published and not yet back", "1024"},
               {"runs", "R", "runs per mode (medians are reported)", "3"},
               {"only", "MODE", "run only cmesh, cmesh-acked or nats", ""},
               {"out", "DIR", "folder for events.csv", "./bench-results"}};
  s.epilog =
      "cmesh: a `cmesh node` process; the client holds an IAM session and talks the events client\n"
      "protocol over the encrypted transport, publishing without acknowledgements (as NATS's PUB).\n"
      "cmesh-acked: the same, every publish acknowledged by the node.\n"
      "nats: nats-server (Debian's package) with a plain-TCP client, echo on.\n"
      "Results: docs/benchmarks.md.\n";
  return s;
}

}  // namespace

int run_events_run(int argc, char** argv) {
  auto spec = run_spec();
  int code = 0;
  auto parsed = cli::parse_command_line(spec, argc, argv, code);
  if (!parsed) return code;
  run_params p;
  p.mode = parsed->get("mode");
  p.dir = parsed->get("dir");
  auto messages = cli::get_unsigned(*parsed, "messages", 100000, 1, 100'000'000);
  auto payload = cli::get_unsigned(*parsed, "payload", 64, 24, 1'000'000);
  auto window = cli::get_unsigned(*parsed, "window", 1024, 1, 65536);
  if ((p.mode != "cmesh" && p.mode != "cmesh-acked" && p.mode != "nats") || p.dir.empty() || !messages ||
      !payload || !window)
    return cli::usage_error(spec, "--mode cmesh|cmesh-acked|nats and --dir are required; --payload 24..1000000, --window 1..65536");
  p.messages = *messages;
  p.payload = static_cast<uint32_t>(*payload);
  p.window = static_cast<uint32_t>(*window);
  crypto_init();
  auto out = p.mode == "nats" ? run_nats(p) : run_cmesh(p);
  if (!out.latencies_us.empty()) {
    out.p50_us = percentile(out.latencies_us, 0.5);
    out.p99_us = percentile(out.latencies_us, 0.99);
  }
  if (!out.error.empty()) {
    std::fprintf(stderr, "cmesh bench events-run: %s\n", out.error.c_str());
    std::fflush(stderr);
    ::_exit(cli::exit_failed);
  }
  std::printf("mode=%s messages=%llu wall_ms=%.1f per_s=%.0f p50_us=%.0f p99_us=%.0f\n", p.mode.c_str(),
              static_cast<unsigned long long>(p.messages), out.seconds * 1000, p.messages / out.seconds, out.p50_us,
              out.p99_us);
  std::fflush(stdout);
  ::_exit(cli::exit_ok);  // skip the actor system's teardown
}

int run_events_bench(int argc, char** argv) {
  auto spec = bench_spec();
  int code = 0;
  auto parsed = cli::parse_command_line(spec, argc, argv, code);
  if (!parsed) return code;
  auto runs = cli::get_unsigned(*parsed, "runs", 3, 1, 100);
  auto messages = cli::get_unsigned(*parsed, "messages", 100000, 1, 100'000'000);
  auto payload = cli::get_unsigned(*parsed, "payload", 64, 24, 1'000'000);
  auto window = cli::get_unsigned(*parsed, "window", 1024, 1, 65536);
  const std::string only = parsed->get("only");
  if (!runs || !messages || !payload || !window ||
      (!only.empty() && only != "cmesh" && only != "cmesh-acked" && only != "nats"))
    return cli::usage_error(spec, "bad --runs, --messages, --payload, --window or --only");
  const std::string out_dir = parsed->get("out", "./bench-results");
  std::filesystem::create_directories(out_dir);
  std::vector<std::string> modes;
  if (only.empty() || only == "cmesh") modes.push_back("cmesh");
  if (only.empty() || only == "cmesh-acked") modes.push_back("cmesh-acked");
  if (only.empty() || only == "nats") {
    if (nats_server_available("/usr/sbin/nats-server")) modes.push_back("nats");
    else std::fprintf(stderr, "nats-server not found at /usr/sbin/nats-server (apt-get install nats-server): no reference\n");
  }
  // The modes alternate run by run, so both see the same machine load.
  std::map<std::string, std::vector<double>> wall, per_s, p50, p99, rss;
  int result = cli::exit_ok;
  for (uint64_t r = 0; r < *runs; ++r)
    for (const auto& mode : modes) {
      auto dir = std::filesystem::temp_directory_path() /
                 format("cmesh-bench-events-%d-%s-%llu", ::getpid(), mode.c_str(), static_cast<unsigned long long>(r));
      std::fprintf(stderr, "events %s run %llu/%llu ...\n", mode.c_str(), static_cast<unsigned long long>(r + 1),
                   static_cast<unsigned long long>(*runs));
      auto child = run_self({"bench", "events-run", "--mode", mode, "--dir", dir.string(), "--messages",
                             std::to_string(*messages), "--payload", std::to_string(*payload), "--window",
                             std::to_string(*window)});
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
      if (child.exit_code != 0) {
        std::fprintf(stderr, "cmesh bench events: %s run failed:\n%s\n", mode.c_str(), child.output.c_str());
        result = cli::exit_failed;
        continue;
      }
      std::fprintf(stderr, "  %s", child.output.c_str());
      wall[mode].push_back(find_number(child.output, "wall_ms"));
      per_s[mode].push_back(find_number(child.output, "per_s"));
      p50[mode].push_back(find_number(child.output, "p50_us"));
      p99[mode].push_back(find_number(child.output, "p99_us"));
      rss[mode].push_back(child.peak_rss_kib / 1024.0);
    }
  std::vector<std::string> rows;
  for (const auto& mode : modes) {
    if (wall[mode].empty()) continue;
    std::printf("%-11s %llu messages of %llu bytes, window %llu, median of %zu: %.1f ms, %.0f messages/s, p50 %.0f us, "
                "p99 %.0f us, peak %.0f MiB (client process)\n",
                mode.c_str(), static_cast<unsigned long long>(*messages), static_cast<unsigned long long>(*payload),
                static_cast<unsigned long long>(*window), wall[mode].size(), median(wall[mode]), median(per_s[mode]),
                median(p50[mode]), median(p99[mode]), median(rss[mode]));
    rows.push_back(format("%s,%llu,%llu,%llu,%zu,%.1f,%.0f,%.0f,%.0f,%.0f", mode.c_str(),
                          static_cast<unsigned long long>(*messages), static_cast<unsigned long long>(*payload),
                          static_cast<unsigned long long>(*window), wall[mode].size(), median(wall[mode]),
                          median(per_s[mode]), median(p50[mode]), median(p99[mode]), median(rss[mode])));
  }
  for (const char* mode : {"cmesh", "cmesh-acked"})
    if (!per_s[mode].empty() && !per_s["nats"].empty())
      std::printf("ratio %s/nats (messages/s): %.3f\n", mode, median(per_s[mode]) / median(per_s["nats"]));
  write_csv(out_dir, "events", "mode,messages,payload,window,runs,wall_ms,messages_per_s,p50_us,p99_us,peak_mib", rows);
  std::printf("csv: %s/events.csv\n", out_dir.c_str());
  return result;
}

}  // namespace cmesh::bench
