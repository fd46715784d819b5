// Real mode of the events bus: 3 `cmesh node` processes on loopback joined into a mesh, and
// `cmesh events sub|pub|request` processes as clients of different nodes.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/real/process.hpp"

using namespace std::chrono_literals;
using cmesh::testing::process;
using cmesh::testing::temp_dir;

namespace {

const std::string binary = CMESH_BINARY;

struct bus_node {
  std::string did;
  std::string address;
  std::unique_ptr<process> proc;
};

std::string new_identity(const temp_dir& dir, const std::string& name) {
  return cmesh::testing::new_identity(binary, dir, name);
}

std::pair<int, std::string> events(const temp_dir& dir, std::vector<std::string> args) {
  static int runs = 0;
  args.insert(args.begin(), "events");
  return cmesh::testing::run(binary, args, dir.file("events-" + std::to_string(runs++) + ".log"), 20s);
}

// Publishes until the node says some subscription matched (the subscriber's interest may still be
// on its way to the publishing node): the first publish that matched is the one delivered, the
// earlier ones went nowhere.
bool publish_when_wanted(const temp_dir& dir, const std::string& subject, const std::string& payload,
                         const std::string& node) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto [code, out] = events(dir, {"pub", subject, payload, "--node", node});
    REQUIRE(code == 0);
    REQUIRE(out.find("published on " + subject) != std::string::npos);
    if (out.find("no subscriber known") == std::string::npos) return true;
    std::this_thread::sleep_for(200ms);
  }
  return false;
}

}  // namespace

TEST_CASE("real events: a wildcard subscriber on one node gets messages published on two others - no responders - bad subjects are refused and the node keeps serving") {
  temp_dir dir;
  std::vector<bus_node> nodes(3);
  for (int i = 0; i < 3; ++i) {
    nodes[i].did = new_identity(dir, "n" + std::to_string(i));
    nodes[i].address = "127.0.0.1:" + std::to_string(cmesh::testing::free_port());
  }
  for (int i = 0; i < 3; ++i) {
    std::vector<std::string> args = {"node", "--listen", nodes[i].address, "--data",
                                     dir.file("d" + std::to_string(i)), "--identity",
                                     dir.file("n" + std::to_string(i) + ".key")};
    if (i > 0) args.insert(args.end(), {"--join", nodes[0].address});
    nodes[i].proc = std::make_unique<process>(binary, args, dir.file("n" + std::to_string(i) + ".log"));
    REQUIRE(nodes[i].proc->started());
  }
  // The bus is a full mesh: every node holds every other's interest table.
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      if (i == j) continue;
      bool joined = nodes[i].proc->wait_for_text("events sync_applied peer=" + nodes[j].did, 20s);
      INFO("node " << i << " never got node " << j << "'s interest table; its log:\n"
                   << nodes[i].proc->output());
      REQUIRE(joined);
    }

  process sub(binary, {"events", "sub", "orders.>", "--count", "2", "--node", nodes[2].address},
              dir.file("sub.log"));
  REQUIRE(sub.started());
  REQUIRE(sub.wait_for_text("subscribed to orders.> on " + nodes[2].address, 15s));
  CHECK(publish_when_wanted(dir, "orders.created", "hello", nodes[0].address));
  CHECK(publish_when_wanted(dir, "orders.eu.shipped", "world", nodes[1].address));
  CHECK(sub.wait(15s) == 0);
  auto got = sub.output();
  INFO(got);
  CHECK(got.find("orders.created hello\n") != std::string::npos);
  CHECK(got.find("orders.eu.shipped world\n") != std::string::npos);
  CHECK(nodes[2].proc->wait_for_text("max_messages reached", 5s));
  // Nobody else was subscribed, so nothing else was printed.
  size_t lines = 0;
  for (char c : got) lines += c == '\n' ? 1 : 0;
  CHECK(lines == 3);  // "subscribed ..." and the two messages

  // A request nobody listens to ends at once with "no responders".
  auto none = events(dir, {"request", "svc.none", "ping", "--node", nodes[0].address});
  CHECK(none.first == 1);
  CHECK(none.second.find("no responders") != std::string::npos);

  // Bad input: refused with a reason by the node (exit 2), logged, and the node keeps serving.
  auto bad = events(dir, {"request", "bad subject*", "x", "--node", nodes[0].address});
  CHECK(bad.first == 2);
  CHECK(bad.second.find("400 invalid_argument") != std::string::npos);
  auto bad_pattern = events(dir, {"sub", "orders.>.eu", "--node", nodes[0].address});
  CHECK(bad_pattern.first == 2);
  CHECK(bad_pattern.second.find("'>' before the last token") != std::string::npos);
  CHECK(nodes[0].proc->wait_for_text("events client_refused", 5s));
  CHECK(events(dir, {"pub", "orders.x", "--node", nodes[0].address}).first == 2);  // usage
  CHECK(events(dir, {"request", "a", "b", "--timeout", "99s"}).first == 2);

  process audit(binary, {"events", "sub", "audit.*", "--queue", "auditors", "--count", "1", "--node",
                         nodes[0].address},
                dir.file("audit.log"));
  REQUIRE(audit.wait_for_text("subscribed to audit.* in queue group auditors on " + nodes[0].address, 15s));
  CHECK(publish_when_wanted(dir, "audit.login", "alice", nodes[2].address));
  CHECK(audit.wait(15s) == 0);
  CHECK(audit.output().find("audit.login alice\n") != std::string::npos);

  // A subscriber stopped by a signal exits 0 and the node drops its subscription at once.
  process stopped(binary, {"events", "sub", "tmp.>", "--node", nodes[1].address}, dir.file("tmp.log"));
  REQUIRE(stopped.wait_for_text("subscribed to tmp.>", 15s));
  stopped.signal(SIGTERM);
  CHECK(stopped.wait(10s) == 0);
  CHECK(nodes[1].proc->wait_for_text("tmp.> (client down)", 10s));
  auto after = events(dir, {"pub", "tmp.x", "y", "--node", nodes[1].address});
  CHECK(after.first == 0);
  CHECK(after.second.find("no subscriber known") != std::string::npos);

  for (auto& n : nodes) n.proc->signal(SIGTERM);
  for (auto& n : nodes) CHECK(n.proc->wait(10s) == 0);
}
