// cmesh up: the quick start. Starts a local mesh of real `cmesh node` processes on loopback
// (node 0 is the seed the others join), prefixes and relays their logs, and stops them all
// cleanly on Ctrl-C (or after --duration).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/cli/child_process.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/crypto/identity.hpp"
#include "sim/model/fault_profile.hpp"

namespace cmesh::cli {

namespace {

command_spec up_spec() {
  command_spec spec;
  spec.name = "cmesh up";
  spec.summary = "Start a local mesh: N real node processes on loopback, each with its own identity "
                 "and data folder; node 0 is the seed the others join. Ctrl-C stops them cleanly.";
  spec.usage = "cmesh up [--nodes N] [--base-port PORT] [--data DIR] [--duration T] [--raft]";
  spec.options = {
      {"nodes", "N", "number of node processes", "3"},
      {"base-port", "PORT", "node i listens on 127.0.0.1:(PORT+i)", "7001"},
      {"data", "DIR", "parent folder of the nodes' data folders (kept between runs)", "./cmesh-mesh"},
      {"duration", "T", "stop after this long (e.g. 30s); default runs until Ctrl-C", ""},
      {"verbose", "", "relay every node event, including pongs", ""},
      {"raft", "", "make every node a member of the replicated key/value group (cmesh kv, cmesh name); keep --nodes the same between runs on one DIR", ""},
  };
  spec.epilog = "Each node keeps its identity in DIR/node-i/identity.key, so a second 'cmesh up' brings\n"
                "back the same mesh (and with --raft the same key/value data).\n"
                "Example: cmesh up --nodes 3 --raft, then in another terminal:\n"
                "  cmesh kv put greeting hello --node 127.0.0.1:7001\n"
                "  cmesh kv get greeting --node 127.0.0.1:7002";
  return spec;
}

struct child {
  pid_t pid = -1;
  int output_fd = -1;
  std::string name;
  std::string partial;
  bool exited = false;
  int exit_code = 0;
};

void relay(child& c) {
  char buffer[4096];
  ssize_t n = ::read(c.output_fd, buffer, sizeof buffer);
  if (n <= 0) {
    ::close(c.output_fd);
    c.output_fd = -1;
    return;
  }
  c.partial.append(buffer, static_cast<size_t>(n));
  size_t newline;
  while ((newline = c.partial.find('\n')) != std::string::npos) {
    std::printf("[%s] %s\n", c.name.c_str(), c.partial.substr(0, newline).c_str());
    c.partial.erase(0, newline + 1);
  }
  std::fflush(stdout);
}

void reap(std::vector<child>& children) {
  for (auto& c : children) {
    if (c.exited) continue;
    int status = 0;
    if (::waitpid(c.pid, &status, WNOHANG) == c.pid) {
      c.exited = true;
      c.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
  }
}

}  // namespace

int run_up(int argc, char** argv) {
  auto spec = up_spec();
  int usage_code = 0;
  auto parsed = parse_command_line(spec, argc, argv, usage_code);
  if (!parsed) return usage_code;
  auto nodes = get_unsigned(*parsed, "nodes", 3, 1, 64);
  auto base_port = get_unsigned(*parsed, "base-port", 7001, 1, 65535);
  if (!nodes || !base_port) {
    std::fprintf(stderr, "cmesh up: %s\n", (!nodes ? nodes.err() : base_port.err()).message.c_str());
    return exit_usage;
  }
  if (*base_port + *nodes - 1 > 65535) {
    std::fprintf(stderr, "cmesh up: --base-port %llu leaves no room for %llu nodes\n",
                 (unsigned long long)*base_port, (unsigned long long)*nodes);
    return exit_usage;
  }
  int64_t duration_us = -1;
  if (parsed->has("duration")) {
    auto d = sim::parse_duration_us(parsed->get("duration"));
    if (!d) {
      std::fprintf(stderr, "cmesh up: --duration: %s\n", d.err().message.c_str());
      return exit_usage;
    }
    duration_us = *d;
  }
  std::string data = parsed->get("data", "./cmesh-mesh");
  bool raft = parsed->has("raft");

  // With --raft every node must know every member's identity before it starts: create the
  // identity files here (the node would create the same file itself) and read their DIDs.
  std::vector<std::string> raft_members;
  if (raft) {
    crypto_init();
    for (uint64_t i = 0; i < *nodes; ++i) {
      std::string folder = data + "/node-" + std::to_string(i);
      std::error_code ec;
      std::filesystem::create_directories(folder, ec);
      if (ec) {
        std::fprintf(stderr, "cmesh up: cannot create %s: %s\n", folder.c_str(), ec.message().c_str());
        return exit_usage;
      }
      std::string key_path = folder + "/identity.key";
      auto id = read_identity_file(key_path);
      if (!id && id.err().code == errc::not_found) {
        auto fresh = identity::generate();
        if (auto s = write_identity_file(key_path, fresh); !s.ok()) {
          std::fprintf(stderr, "cmesh up: %s\n", s.describe().c_str());
          return exit_usage;
        }
        id = fresh;
      }
      if (!id) {
        std::fprintf(stderr, "cmesh up: %s\n", id.err().describe().c_str());
        return exit_usage;
      }
      raft_members.push_back(id->did() + "@127.0.0.1:" + std::to_string(*base_port + i));
    }
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::vector<child> children(*nodes);
  std::string seed = "127.0.0.1:" + std::to_string(*base_port);
  std::printf("cmesh up: starting %llu nodes on 127.0.0.1:%llu..%llu, data in %s (Ctrl-C stops)\n",
              (unsigned long long)*nodes, (unsigned long long)*base_port,
              (unsigned long long)(*base_port + *nodes - 1), data.c_str());
  std::fflush(stdout);
  for (size_t i = 0; i < children.size(); ++i) {
    auto& c = children[i];
    c.name = "n" + std::to_string(i);
    std::vector<std::string> args = {"node", "--listen",
                                      "127.0.0.1:" + std::to_string(*base_port + i), "--data",
                                      data + "/node-" + std::to_string(i), "--status-interval", "5s"};
    if (i > 0) args.insert(args.end(), {"--join", seed});
    for (const auto& member : raft_members) args.insert(args.end(), {"--raft-member", member});
    if (parsed->has("verbose")) args.push_back("--verbose");
    child_process started;
    if (!spawn_self(args, true, true, started)) {
      std::fprintf(stderr, "cmesh up: cannot start node %zu\n", i);
      return exit_failed;
    }
    c.pid = started.pid;
    c.output_fd = started.output_fd;
    if (i == 0) usleep(200000);  // let the seed bind before the others dial it
  }

  if (raft) {
    std::string first = "127.0.0.1:" + std::to_string(*base_port);
    std::string last = "127.0.0.1:" + std::to_string(*base_port + *nodes - 1);
    std::printf("cmesh up: every node is a member of the replicated key/value group; from another "
                "terminal, against any node:\n"
                "  cmesh kv put greeting hello --node %s\n"
                "  cmesh kv get greeting --node %s\n"
                "  cmesh id new me.key && cmesh name register hello.mcom 0xS:0x001 --identity me.key --node %s\n"
                "  cmesh name resolve hello.mcom --node %s\n",
                first.c_str(), last.c_str(), first.c_str(), last.c_str());
    std::fflush(stdout);
  }
  auto started = std::chrono::steady_clock::now();
  int result = exit_ok;
  bool stopping = false;
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<child*> owners;
    for (auto& c : children)
      if (c.output_fd >= 0) {
        fds.push_back({c.output_fd, POLLIN, 0});
        owners.push_back(&c);
      }
    if (fds.empty()) break;
    ::poll(fds.data(), fds.size(), 200);
    for (size_t i = 0; i < fds.size(); ++i)
      if (fds[i].revents & (POLLIN | POLLHUP)) relay(*owners[i]);
    reap(children);
    timespec zero{};
    bool signalled = sigtimedwait(&signals, nullptr, &zero) > 0;
    bool timed_out = duration_us >= 0 &&
                     std::chrono::steady_clock::now() - started > std::chrono::microseconds(duration_us);
    bool child_failed = false;
    for (auto& c : children)
      if (c.exited && !stopping) {
        std::printf("cmesh up: %s exited with code %d; stopping the mesh\n", c.name.c_str(), c.exit_code);
        child_failed = true;
        result = exit_failed;
      }
    if (!stopping && (signalled || timed_out || child_failed)) {
      stopping = true;
      std::printf("cmesh up: stopping all nodes\n");
      for (auto& c : children)
        if (!c.exited) ::kill(c.pid, SIGTERM);
    }
  }
  for (auto& c : children) {
    if (!c.exited) {
      int status = 0;
      ::waitpid(c.pid, &status, 0);
      c.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (c.exit_code != 0) result = exit_failed;
  }
  std::printf("cmesh up: all nodes stopped%s\n", result == exit_ok ? " cleanly" : " (some with errors)");
  return result;
}

}  // namespace cmesh::cli
