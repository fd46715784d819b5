// cmesh bench kv: throughput and latency of the replicated key/value service on 3 real node
// processes on loopback (durable: every Raft flush is synced), and in the same run the same
// workload against Debian's etcd 3.4 (3 etcd processes on loopback, also syncing its WAL).
//
// Workload, identical for both: C closed-loop clients spread round-robin over the 3 members (a
// follower hands a request to the leader, in both systems), 8-byte keys from a key space of K,
// 256-byte values. A write phase of D seconds, then a linearizable read phase of D seconds over
// the keys written. Latency is measured per request by the client, from send to answer.
//
// Clients: ours speak the cmesh transport (one encrypted connection per member, the requests of
// all clients multiplexed on it; see runtime/cli/cmd_kv.cpp for the one-shot client). etcd's
// speak HTTP/1.1 with keep-alive to etcd's own JSON gateway (/v3/kv/put, /v3/kv/range), one
// connection per client, because Debian ships no etcd benchmark tool and no gRPC library; the
// gateway's JSON translation costs etcd some CPU, which docs/benchmarks.md states with the figures.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <thread>
#include <unordered_map>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <sodium.h>

#include "actors/ignore_unexpected.hpp"
#include "bench/bench_util.hpp"
#include "bench/commands.hpp"
#include "messages/codec.hpp"
#include "messages/kv_messages.hpp"
#include "messages/seam.hpp"
#include "messages/services.hpp"
#include "runtime/cli/child_process.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/crypto/identity.hpp"
#include "runtime/net/transport.hpp"
#include "runtime/cli/iam_client.hpp"
#include "sim/model/fault_profile.hpp"

namespace cmesh::bench {

namespace {

using clock_type = std::chrono::steady_clock;
using load_tick_atom = caf::atom_constant<caf::atom("kvb_tick")>;

inline constexpr int members = 3;
inline constexpr auto request_timeout = std::chrono::seconds(2);  // then the client re-sends

struct workload {
  uint32_t clients = 16;
  uint32_t keys = 1000;
  uint32_t value_bytes = 256;
  std::chrono::microseconds warmup{1'000'000};
  std::chrono::microseconds duration{5'000'000};
};

struct phase_result {
  double ops_per_second = 0;
  double p50_us = 0;
  double p99_us = 0;
  uint64_t ok = 0;
  uint64_t failed = 0;   // answered, but not 2xx/404 (e.g. 503 during an election)
  uint64_t resent = 0;   // no answer within request_timeout
};

// Eight bytes, distinct for 10^7 keys.
std::string key_name(uint32_t i) { return format("k%07u", i % 10'000'000u); }

std::string random_value(uint32_t size) {
  std::string value(size, 'v');
  for (auto& c : value) c = static_cast<char>('a' + randombytes_uniform(26));
  return value;
}

// Summarises one phase from per-request latencies measured after the warm-up.
phase_result summarise(std::vector<double>& latencies_us, double seconds, uint64_t failed,
                       uint64_t resent) {
  phase_result r;
  r.ok = latencies_us.size();
  r.failed = failed;
  r.resent = resent;
  r.ops_per_second = seconds > 0 ? static_cast<double>(r.ok) / seconds : 0;
  r.p50_us = percentile(latencies_us, 0.5);
  r.p99_us = percentile(latencies_us, 0.99);
  return r;
}

// ---- processes ----------------------------------------------------------------------------------

void stop_processes(std::vector<pid_t>& pids) {
  for (auto pid : pids)
    if (pid > 0) ::kill(pid, SIGTERM);
  auto deadline = clock_type::now() + std::chrono::seconds(10);
  for (auto& pid : pids) {
    if (pid <= 0) continue;
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (clock_type::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid = -1;
  }
}

struct cmesh_cluster {
  std::vector<pid_t> pids;
  std::vector<node_id> keys;
  std::vector<std::string> addresses;
};

bool start_cmesh(const std::string& dir, cmesh_cluster& cluster) {
  std::vector<std::string> dids, key_files;
  for (int i = 0; i < members; ++i) {
    auto id = identity::generate();
    key_files.push_back(dir + "/n" + std::to_string(i) + ".key");
    if (!write_identity_file(key_files.back(), id).ok()) return false;
    cluster.keys.push_back(id.public_key);
    dids.push_back(id.did());
    cluster.addresses.push_back("127.0.0.1:" + std::to_string(free_port()));
  }
  for (int i = 0; i < members; ++i) {
    std::vector<std::string> args = {"node", "--listen", cluster.addresses[i], "--data",
                                     dir + "/n" + std::to_string(i), "--identity", key_files[i]};
    for (int j = 0; j < members; ++j) {
      args.push_back("--raft-member");
      args.push_back(dids[j] + "@" + cluster.addresses[j]);
    }
    pid_t pid = cli::spawn_logged("/proc/self/exe", args, dir + "/n" + std::to_string(i) + ".log");
    if (pid < 0) return false;
    cluster.pids.push_back(pid);
  }
  return true;
}

struct etcd_cluster {
  std::vector<pid_t> pids;
  std::vector<int> client_ports;
};

bool start_etcd(const std::string& program, const std::string& dir, etcd_cluster& cluster) {
  std::vector<int> peer_ports;
  std::string initial;
  for (int i = 0; i < members; ++i) {
    cluster.client_ports.push_back(free_port());
    peer_ports.push_back(free_port());
    if (i) initial += ",";
    initial += format("e%d=http://127.0.0.1:%d", i, peer_ports[i]);
  }
  for (int i = 0; i < members; ++i) {
    std::string client = format("http://127.0.0.1:%d", cluster.client_ports[i]);
    std::string peer = format("http://127.0.0.1:%d", peer_ports[i]);
    std::vector<std::string> args = {
        "--name", format("e%d", i), "--data-dir", dir + format("/e%d", i),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", initial, "--initial-cluster-state", "new",
        "--initial-cluster-token", "cmesh-bench", "--log-level", "warn"};
    pid_t pid = cli::spawn_logged(program, args, dir + format("/e%d.log", i));
    if (pid < 0) return false;
    cluster.pids.push_back(pid);
  }
  return true;
}

// ---- the cmesh load generator: one actor drives every client over the node's transport -------

struct load_params {
  caf::actor transport;
  node_id self;
  std::vector<node_id> nodes;
  workload shape;
  bool writes = true;
  bool probe = false;  // readiness probe: one client per member until each has answered 2xx
  std::shared_ptr<std::promise<phase_result>> done;
};

struct load_state {
  static inline const char* name = "cmesh.bench.kv_load";
  struct client {
    uint64_t client_id = 0;
    uint64_t sequence = 0;
    uint64_t correlation = 0;
    size_t node = 0;
    uint32_t cursor = 0;
    clock_type::time_point sent;
    bool answered_ok = false;
  };
  load_params p;
  std::string value;
  std::vector<client> clients;
  std::unordered_map<uint64_t, size_t> by_correlation;
  uint64_t next_correlation = 1;
  clock_type::time_point measure_from, stop_at;
  std::vector<double> latencies_us;
  uint64_t failed = 0, resent = 0;
  bool stopping = false;
};

using load_actor = caf::stateful_actor<load_state>;

void issue(load_actor* self, size_t index, bool fresh) {
  auto& st = self->state;
  auto& c = st.clients[index];
  st.by_correlation.erase(c.correlation);
  kv::request request;
  if (st.p.writes || st.p.probe) {
    request.operation = static_cast<uint8_t>(kv::op::put);
    request.client_id = c.client_id;
    if (fresh) ++c.sequence;  // a re-send keeps its sequence: applied at most once
    request.sequence = c.sequence;
    request.value = st.value;
  } else {
    request.operation = static_cast<uint8_t>(kv::op::get);
  }
  if (fresh) ++c.cursor;
  request.key = key_name(static_cast<uint32_t>(c.client_id * 7919 + c.cursor) % st.p.shape.keys);
  c.correlation = st.next_correlation++;
  st.by_correlation[c.correlation] = index;
  c.sent = clock_type::now();
  auto encoded = encode_message(st.p.self, c.correlation, request);
  self->send(st.p.transport, send_atom::value, st.p.nodes[c.node], services::kv, std::move(*encoded));
}

void finish_load(load_actor* self) {
  auto& st = self->state;
  double seconds = std::chrono::duration<double>(st.stop_at - st.measure_from).count();
  st.p.done->set_value(summarise(st.latencies_us, seconds, st.failed, st.resent));
  self->quit();
}

void on_answer(load_actor* self, const bytes& data) {
  auto& st = self->state;
  auto env = decode_envelope(data.data(), data.size());
  if (!env || env->type != kv::response::type_id) return;
  auto found = st.by_correlation.find(env->correlation);
  if (found == st.by_correlation.end()) return;  // late answer to a re-sent request
  auto response = decode_payload<kv::response>(*env);
  if (!response) return;
  size_t index = found->second;
  auto& c = st.clients[index];
  st.by_correlation.erase(found);
  c.correlation = 0;
  auto now = clock_type::now();
  bool ok = (response->status >= 200 && response->status < 300) || response->status == 404;
  if (st.p.probe) {
    c.answered_ok = c.answered_ok || ok;
    bool all = true;
    for (const auto& other : st.clients) all = all && other.answered_ok;
    if (all) return finish_load(self);
    return;  // the tick re-sends to a member that has not answered 2xx yet
  }
  if (!ok) ++st.failed;
  else if (now >= st.measure_from && now < st.stop_at)
    st.latencies_us.push_back(std::chrono::duration<double, std::micro>(now - c.sent).count());
  if (now >= st.stop_at) {
    st.stopping = true;
    if (st.by_correlation.empty()) finish_load(self);
    return;
  }
  issue(self, index, ok);
}

caf::behavior load_generator(load_actor* self, load_params params) {
  auto& st = self->state;
  st.p = std::move(params);
  st.value = random_value(st.p.shape.value_bytes);
  self->set_default_handler(ignore_unexpected);
  self->send(st.p.transport, register_atom::value, services::kv, caf::actor{self});
  uint32_t count = st.p.probe ? static_cast<uint32_t>(st.p.nodes.size()) : st.p.shape.clients;
  for (uint32_t i = 0; i < count; ++i) {
    load_state::client c;
    randombytes_buf(&c.client_id, sizeof c.client_id);
    c.client_id |= 1;
    c.node = i % st.p.nodes.size();
    st.clients.push_back(c);
  }
  auto now = clock_type::now();
  st.measure_from = now + st.p.shape.warmup;
  st.stop_at = st.measure_from + st.p.shape.duration;
  for (size_t i = 0; i < st.clients.size(); ++i) issue(self, i, true);
  self->send(self, load_tick_atom::value);
  return {
    [=](deliver_atom, const node_id&, uint16_t service, const bytes& data) {
      if (service == services::kv) on_answer(self, data);
    },
    [=](load_tick_atom) {
      auto& s = self->state;
      auto now = clock_type::now();
      for (size_t i = 0; i < s.clients.size(); ++i) {
        auto& c = s.clients[i];
        bool idle_probe = s.p.probe && !c.answered_ok && c.correlation == 0;
        bool overdue = c.correlation != 0 && now - c.sent > request_timeout;
        if (overdue && s.stopping) {
          s.by_correlation.erase(c.correlation);
          c.correlation = 0;
          continue;
        }
        if (overdue) ++s.resent;
        if (overdue || idle_probe) issue(self, i, false);
      }
      if (s.stopping && s.by_correlation.empty()) return finish_load(self);
      if (!s.p.probe && now >= s.stop_at) s.stopping = true;
      self->delayed_send(self, std::chrono::milliseconds(100), load_tick_atom::value);
    },
    [=](peer_up_atom, const node_id&, const std::string&) {},
    [=](peer_down_atom, const node_id&) {},
    [=](dial_failed_atom, const std::string&, const std::string&) {},
  };
}

// ---- etcd clients: blocking HTTP/1.1 with keep-alive, one thread and connection per client ----

std::string base64(const std::string& data) {
  std::string out(sodium_base64_ENCODED_LEN(data.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(data.data()),
                    data.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

class http_connection {
public:
  explicit http_connection(int port) : port_(port) {}
  ~http_connection() { close(); }

  // POSTs `body` to `path`; returns the HTTP status, or -1 if the connection failed.
  int post(const std::string& path, const std::string& body) {
    if (fd_ < 0 && !open()) return -1;
    std::string request = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " +
                          "application/json\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\n\r\n" + body;
    if (!write_all(request)) return fail();
    std::string head;
    size_t end = std::string::npos;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
      if (!read_more()) return fail();
    head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    int status = std::atoi(head.c_str() + head.find(' ') + 1);
    size_t length = 0;
    auto at = head.find("Content-Length: ");
    if (at != std::string::npos) length = std::strtoull(head.c_str() + at + 16, nullptr, 10);
    while (buffer_.size() < length)
      if (!read_more()) return fail();
    body_ = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return status;
  }
  const std::string& body() const { return body_; }

private:
  bool open() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval timeout{2, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close();
      return false;
    }
    return true;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buffer_.clear();
  }
  int fail() {
    close();
    return -1;
  }
  bool write_all(const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }
  bool read_more() {
    char chunk[16384];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int port_;
  int fd_ = -1;
  std::string buffer_;
  std::string body_;
};

bool etcd_ready(const etcd_cluster& cluster, std::chrono::seconds budget) {
  auto deadline = clock_type::now() + budget;
  for (int port : cluster.client_ports) {
    http_connection connection(port);
    std::string body = "{\"key\":\"" + base64("ready") + "\",\"value\":\"" + base64("1") + "\"}";
    while (connection.post("/v3/kv/put", body) != 200) {
      if (clock_type::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  return true;
}

phase_result run_etcd_phase(const etcd_cluster& cluster, const workload& shape, bool writes) {
  auto start = clock_type::now();
  auto measure_from = start + shape.warmup;
  auto stop_at = measure_from + shape.duration;
  std::string value = base64(random_value(shape.value_bytes));
  std::vector<std::vector<double>> latencies(shape.clients);
  std::vector<uint64_t> failed(shape.clients, 0);
  std::vector<std::thread> threads;
  for (uint32_t i = 0; i < shape.clients; ++i) {
    threads.emplace_back([&, i] {
      http_connection connection(cluster.client_ports[i % cluster.client_ports.size()]);
      uint64_t client_id = randombytes_random();
      for (uint32_t cursor = 1;; ++cursor) {
        auto sent = clock_type::now();
        if (sent >= stop_at) break;
        std::string key = base64(key_name(static_cast<uint32_t>(client_id * 7919 + cursor) % shape.keys));
        int status = writes ? connection.post("/v3/kv/put", "{\"key\":\"" + key + "\",\"value\":\"" + value + "\"}")
                            : connection.post("/v3/kv/range", "{\"key\":\"" + key + "\"}");
        auto now = clock_type::now();
        if (status != 200) {
          ++failed[i];
          if (status < 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        } else if (now >= measure_from && now < stop_at) {
          latencies[i].push_back(std::chrono::duration<double, std::micro>(now - sent).count());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<double> all;
  uint64_t failures = 0;
  for (uint32_t i = 0; i < shape.clients; ++i) {
    all.insert(all.end(), latencies[i].begin(), latencies[i].end());
    failures += failed[i];
  }
  double seconds = std::chrono::duration<double>(shape.duration).count();
  return summarise(all, seconds, failures, 0);
}

// ---- one run of each system ---------------------------------------------------------------------

struct system_result {
  bool ok = false;
  std::string error;
  phase_result writes, reads;
};

std::optional<phase_result> run_load(caf::actor_system& system, const load_params& base,
                                     bool writes, bool probe, std::chrono::seconds budget) {
  auto params = base;
  params.writes = writes;
  params.probe = probe;
  params.done = std::make_shared<std::promise<phase_result>>();
  auto future = params.done->get_future();
  auto actor = system.spawn(load_generator, params);
  if (future.wait_for(budget) != std::future_status::ready) {
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    return std::nullopt;
  }
  return future.get();
}

system_result run_cmesh(const std::string& dir, const workload& shape) {
  system_result result;
  cmesh_cluster cluster;
  if (!start_cmesh(dir, cluster)) {
    stop_processes(cluster.pids);
    result.error = "cannot start the cmesh nodes (logs in " + dir + ")";
    return result;
  }
  auto me = identity::generate();
  // cmesh node serves only keys that hold a session of it (docs/iam.md §13): one handshake per
  // member before the load, outside the measured phases.
  for (int i = 0; i < members; ++i) {
    int code = 0;
    cli::client_options member{me, seed_spec{cluster.addresses[i], cluster.keys[i]}, 5'000'000, false};
    if (!cli::ensure_session(member, "state.read state.write", code)) {
      stop_processes(cluster.pids);
      result.error = "no IAM session at member " + std::to_string(i) + " (logs in " + dir + ")";
      return result;
    }
  }
  {
    caf::actor_system_config config;
    caf::actor_system system{configure_for_transport(config)};
    auto started = start_transport(system, client_transport(me));
    if (!started) {
      result.error = "client transport: " + started.err().message;
    } else {
      auto manager = started->first;
      for (int i = 0; i < members; ++i)
        caf::anon_send(manager, introduce_atom::value, cluster.keys[i], cluster.addresses[i]);
      load_params base;
      base.transport = manager;
      base.self = me.public_key;
      base.nodes = cluster.keys;
      base.shape = shape;
      auto budget = std::chrono::duration_cast<std::chrono::seconds>(shape.warmup + shape.duration) +
                    std::chrono::seconds(30);
      if (!run_load(system, base, true, true, std::chrono::seconds(30))) {
        result.error = "the cmesh group did not answer within 30 s (logs in " + dir + ")";
      } else {
        auto writes = run_load(system, base, true, false, budget);
        auto reads = writes ? run_load(system, base, false, false, budget) : std::nullopt;
        if (writes && reads) {
          result.ok = true;
          result.writes = *writes;
          result.reads = *reads;
        } else {
          result.error = "a cmesh phase did not finish (logs in " + dir + ")";
        }
      }
      caf::anon_send_exit(manager, caf::exit_reason::user_shutdown);
    }
  }
  stop_processes(cluster.pids);
  return result;
}

system_result run_etcd(const std::string& program, const std::string& dir, const workload& shape) {
  system_result result;
  etcd_cluster cluster;
  if (!start_etcd(program, dir, cluster)) {
    stop_processes(cluster.pids);
    result.error = "cannot start " + program;
    return result;
  }
  if (!etcd_ready(cluster, std::chrono::seconds(30))) {
    result.error = "etcd did not accept writes within 30 s (logs in " + dir + ")";
  } else {
    result.writes = run_etcd_phase(cluster, shape, true);
    result.reads = run_etcd_phase(cluster, shape, false);
    result.ok = true;
  }
  stop_processes(cluster.pids);
  return result;
}

cli::command_spec spec() {
  cli::command_spec s;
  s.name = "cmesh bench kv";
  s.summary = "Replicated key/value throughput and latency: 3 cmesh node processes on loopback "
              "(durable, synced), and Debian's etcd 3.4 with the same workload in the same run.";
  s.usage = "cmesh bench kv [--clients C] [--duration D] [--runs R] [--etcd PATH|none]";
  s.options = {
      {"clients", "C", "closed-loop clients, spread over the 3 members", "16"},
      {"duration", "D", "measured time of each phase (writes, then linearizable reads)", "5s"},
      {"warmup", "W", "unmeasured time before each phase", "1s"},
      {"keys", "K", "key space (8-byte keys)", "1000"},
      {"value-bytes", "N", "value size", "256"},
      {"runs", "R", "runs of each system (alternating order); medians are reported", "3"},
      {"etcd", "PATH", "the etcd binary, or 'none' to measure cmesh alone", "/usr/bin/etcd"},
      {"out", "DIR", "folder for kv.csv", "./bench-results"},
      {"keep", "", "keep the data folders and logs of each run", ""},
  };
  s.epilog =
      "Prints per-run lines and a table of medians with the ratios cmesh/etcd (throughput: higher\n"
      "is better for cmesh above 1; latency: lower is better for cmesh below 1).";
  return s;
}

void print_phase(const char* system, int run, const char* phase, const phase_result& r) {
  std::printf("  run %d %-5s %-6s %9.0f ops/s  p50 %8.0f us  p99 %8.0f us  (failed %llu, resent %llu)\n",
              run, system, phase, r.ops_per_second, r.p50_us, r.p99_us,
              static_cast<unsigned long long>(r.failed), static_cast<unsigned long long>(r.resent));
  std::fflush(stdout);
}

struct medians {
  std::vector<double> ops, p50, p99;
  void add(const phase_result& r) {
    ops.push_back(r.ops_per_second);
    p50.push_back(r.p50_us);
    p99.push_back(r.p99_us);
  }
};

}  // namespace

int run_kv_bench(int argc, char** argv) {
  auto s = spec();
  int usage_code = 0;
  auto parsed = cli::parse_command_line(s, argc, argv, usage_code);
  if (!parsed) return usage_code;
  auto usage = [&](const std::string& message) {
    std::fprintf(stderr, "cmesh bench kv: %s (see cmesh bench kv --help)\n", message.c_str());
    return cli::exit_usage;
  };
  workload shape;
  auto clients = cli::get_unsigned(*parsed, "clients", 16, 1, 1024);
  auto keys = cli::get_unsigned(*parsed, "keys", 1000, 1, 10'000'000);
  auto value_bytes = cli::get_unsigned(*parsed, "value-bytes", 256, 1, 65536);
  auto runs = cli::get_unsigned(*parsed, "runs", 3, 1, 50);
  auto duration = sim::parse_duration_us(parsed->get("duration", "5s"));
  auto warmup = sim::parse_duration_us(parsed->get("warmup", "1s"));
  if (!clients) return usage("--clients: " + clients.err().message);
  if (!keys) return usage("--keys: " + keys.err().message);
  if (!value_bytes) return usage("--value-bytes: " + value_bytes.err().message);
  if (!runs) return usage("--runs: " + runs.err().message);
  if (!duration || *duration <= 0) return usage("--duration: expected a positive duration such as 5s");
  if (!warmup || *warmup < 0) return usage("--warmup: expected a duration such as 1s");
  shape.clients = static_cast<uint32_t>(*clients);
  shape.keys = static_cast<uint32_t>(*keys);
  shape.value_bytes = static_cast<uint32_t>(*value_bytes);
  shape.duration = std::chrono::microseconds(*duration);
  shape.warmup = std::chrono::microseconds(*warmup);
  std::string etcd = parsed->get("etcd", "/usr/bin/etcd");
  bool with_etcd = etcd != "none";
  if (with_etcd && ::access(etcd.c_str(), X_OK) != 0)
    return usage("no etcd at " + etcd + " (install Debian's etcd-server, or pass --etcd none)");
  crypto_init();
  ::signal(SIGPIPE, SIG_IGN);

  std::printf("cmesh bench kv: 3 members on loopback, %u clients, %u-byte keys, %u-byte values, "
              "key space %u, %.1f s per phase after %.1f s warm-up, %llu run(s)%s\n",
              shape.clients, 8u, shape.value_bytes, shape.keys, *duration / 1e6, *warmup / 1e6,
              static_cast<unsigned long long>(*runs), with_etcd ? ", against etcd" : "");
  std::fflush(stdout);
  medians ours_w, ours_r, etcd_w, etcd_r;
  for (uint64_t run = 0; run < *runs; ++run) {
    char pattern[] = "/tmp/cmesh-bench-kv-XXXXXX";
    std::string dir = ::mkdtemp(pattern);
    bool etcd_first = with_etcd && run % 2 == 1;
    for (int turn = 0; turn < 2; ++turn) {
      bool is_etcd = (turn == 0) == etcd_first;
      if (is_etcd && !with_etcd) continue;
      auto r = is_etcd ? run_etcd(etcd, dir, shape) : run_cmesh(dir, shape);
      const char* name = is_etcd ? "etcd" : "cmesh";
      if (!r.ok) {
        std::fprintf(stderr, "cmesh bench kv: run %llu, %s: %s\n",
                     static_cast<unsigned long long>(run + 1), name, r.error.c_str());
        return cli::exit_failed;
      }
      print_phase(name, static_cast<int>(run + 1), "writes", r.writes);
      print_phase(name, static_cast<int>(run + 1), "reads", r.reads);
      (is_etcd ? etcd_w : ours_w).add(r.writes);
      (is_etcd ? etcd_r : ours_r).add(r.reads);
    }
    if (!parsed->has("keep")) std::filesystem::remove_all(dir);
    else std::printf("  run %llu data and logs kept in %s\n", static_cast<unsigned long long>(run + 1), dir.c_str());
  }

  std::printf("\nmedians over %llu run(s):\n%-7s %-6s %12s %10s %10s\n",
              static_cast<unsigned long long>(*runs), "system", "phase", "ops/s", "p50_us", "p99_us");
  std::vector<std::string> rows;
  auto line = [&](const char* system, const char* phase, medians& m) {
    std::printf("%-7s %-6s %12.0f %10.0f %10.0f\n", system, phase, median(m.ops), median(m.p50), median(m.p99));
    rows.push_back(format("%s,%s,%u,%u,%llu,%.0f,%.0f,%.0f", system, phase, shape.clients,
                          shape.value_bytes, static_cast<unsigned long long>(*runs), median(m.ops),
                          median(m.p50), median(m.p99)));
  };
  line("cmesh", "writes", ours_w);
  line("cmesh", "reads", ours_r);
  if (with_etcd) {
    line("etcd", "writes", etcd_w);
    line("etcd", "reads", etcd_r);
    auto ratio = [](medians& a, medians& b) {
      std::printf("  throughput %.2fx, p50 %.2fx, p99 %.2fx\n", median(a.ops) / median(b.ops),
                  median(a.p50) / median(b.p50), median(a.p99) / median(b.p99));
    };
    std::printf("cmesh/etcd writes:");
    ratio(ours_w, etcd_w);
    std::printf("cmesh/etcd reads: ");
    ratio(ours_r, etcd_r);
  }
  auto out = parsed->get("out", "./bench-results");
  write_csv(out, "kv", "system,phase,clients,value_bytes,runs,ops_per_s,p50_us,p99_us", rows);
  std::printf("csv: %s/kv.csv\n", out.c_str());
  return cli::exit_ok;
}

}  // namespace cmesh::bench
