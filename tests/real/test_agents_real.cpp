// Real mode of the message bus, gossip search and imAlive membership: 5 `cmesh node` processes
// on loopback. A search (`cmesh search`) started at one node finds the twin whose profile matches
// on another; an RMB command from a client (a separate `cmesh rmb send` process) reaches a twin on another
// node through the node the client asked, and its reply comes back; killing a node removes it
// from the others' membership within the detection time.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/real/process.hpp"

using namespace std::chrono_literals;
using cmesh::testing::process;
using cmesh::testing::temp_dir;

namespace {

const std::string binary = CMESH_BINARY;

struct agent_node {
  std::string did;
  std::string key;
  std::string address;
  std::unique_ptr<process> proc;
};

std::string new_identity(const temp_dir& dir, const std::string& name) {
  return cmesh::testing::new_identity(binary, dir, name);
}

std::vector<agent_node> start_mesh(const temp_dir& dir, int count) {
  new_identity(dir, "alice");
  std::vector<agent_node> nodes(count);
  for (int i = 0; i < count; ++i) {
    auto& n = nodes[i];
    n.did = new_identity(dir, "n" + std::to_string(i));
    n.key = dir.file("n" + std::to_string(i) + ".key");
    n.address = "127.0.0.1:" + std::to_string(cmesh::testing::free_port());
  }
  for (int i = 0; i < count; ++i) {
    auto& n = nodes[i];
    std::vector<std::string> args = {"node", "--listen", n.address, "--data", dir.file("d" + std::to_string(i)),
                                     "--identity", n.key};
    if (i > 0) args.insert(args.end(), {"--join", nodes[0].address});
    // Node 2 also hosts a user's twin ("alice", made by the test before the mesh starts).
    if (i == 2) args.insert(args.end(), {"--twin", dir.file("alice.key")});
    // Node 0 also serves an aggregator directory; the others register their profiles there.
    if (i == 0) args.push_back("--aggregator");
    else args.insert(args.end(), {"--aggregator-at", nodes[0].address, "--aggregator-ttl", "10s"});
    // Every node sells groceries; only node 3 sells organic apples in Paris.
    args.insert(args.end(), {"--profile", i == 3 ? "category=grocery,name=apple,location=Paris,adjective=organic"
                                                 : "category=grocery,name=pear" + std::to_string(i)});
    n.proc = std::make_unique<process>(binary, args, dir.file("n" + std::to_string(i) + ".log"));
    REQUIRE(n.proc->started());
  }
  return nodes;
}

std::pair<int, std::string> search(const temp_dir& dir, std::vector<std::string> args) {
  static int runs = 0;
  args.insert(args.begin(), "search");
  return cmesh::testing::run(binary, args, dir.file("search-" + std::to_string(runs++) + ".log"), 20s);
}

std::pair<int, std::string> lookup(const temp_dir& dir, std::vector<std::string> args) {
  static int runs = 0;
  args.insert(args.begin(), "lookup");
  return cmesh::testing::run(binary, args, dir.file("lookup-" + std::to_string(runs++) + ".log"), 20s);
}

// Repeats a lookup once a second until `done` holds for its output (at most `limit`).
template <class F>
std::pair<int, std::string> lookup_until(const temp_dir& dir, const std::vector<std::string>& args,
                                         std::chrono::seconds limit, F done) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto result = lookup(dir, args);
    if (done(result) || std::chrono::steady_clock::now() > deadline) return result;
    std::this_thread::sleep_for(1s);
  }
}

std::pair<int, std::string> rmb(const temp_dir& dir, std::vector<std::string> args) {
  static int runs = 0;
  args.insert(args.begin(), {"rmb", "send"});
  return cmesh::testing::run(binary, args, dir.file("rmb-" + std::to_string(runs++) + ".log"), 20s);
}

}  // namespace

TEST_CASE("real agents: a search finds a twin on another node - an RMB command to it round-trips - a killed node leaves the membership") {
  temp_dir dir;
  auto nodes = start_mesh(dir, 5);
  // Every node learns the other four through imAlive membership.
  for (auto& n : nodes) {
    bool all = n.proc->wait_for(
        [&](const std::string& out) {
          for (const auto& other : nodes)
            if (&other != &n && out.find("swim member_joined peer=" + other.did) == std::string::npos)
              return false;
          return true;
        },
        15s);
    INFO("log of the node that did not see every other:\n" << n.proc->output());
    REQUIRE(all);
  }
  auto me = new_identity(dir, "client");
  // A gossip search started at node 0 finds the one agent whose profile matches: node 3.
  auto found = search(dir, {"name=apple", "adjective=Organic", "--node", nodes[0].address,
                            "--identity", dir.file("client.key"), "--wait", "1s"});
  INFO(found.second);
  REQUIRE(found.first == 0);
  // stdout: one line per match; stderr (same log): a summary.
  CHECK(found.second.find(nodes[3].did + " " + nodes[3].address +
                          " category=grocery,name=apple,location=paris,adjective=organic\n") == 0);
  CHECK(found.second.find("1 match for name=apple,adjective=organic") != std::string::npos);
  for (int i = 0; i < 5; ++i)
    if (i != 3) CHECK(found.second.find(nodes[i].did) == std::string::npos);
  std::string twin = found.second.substr(0, found.second.find(' '));
  auto groceries = search(dir, {"category=grocery", "--node", nodes[1].address, "--wait", "1s"});
  CHECK(groceries.first == 0);
  for (const auto& n : nodes) CHECK(groceries.second.find(n.did) != std::string::npos);
  auto none = search(dir, {"name=kiwi", "--node", nodes[2].address, "--wait", "300ms"});
  CHECK(none.first == 1);
  CHECK(none.second.find("did:key") == std::string::npos);
  CHECK(none.second.find("0 matches for name=kiwi") != std::string::npos);
  CHECK(search(dir, {"colour=red", "--node", nodes[2].address}).first == 2);

  // Ask node 0 for the twin the search found (node 3's own identity, hosted on node 3).
  auto first = rmb(dir, {"--to", twin, "--cmd", "counter.add", "--data", "visits", "--node",
                         nodes[0].address, "--identity", dir.file("client.key")});
  INFO(first.second);
  CHECK(first.first == 0);
  CHECK(first.second.find("1\n") == 0);
  auto second = rmb(dir, {"--to", nodes[3].did, "--cmd", "counter.add", "--data", "visits", "--node",
                          nodes[1].address});
  CHECK(second.first == 0);
  CHECK(second.second.find("2\n") == 0);
  auto who = rmb(dir, {"--to", nodes[3].did, "--cmd", "whoami", "--node", nodes[2].address,
                       "--identity", dir.file("client.key")});
  CHECK(who.first == 0);
  CHECK(who.second.find(nodes[3].did + " " + me) == 0);
  // A user's twin hosted by node 2 (--twin) is found through any node: node 2 told its peers
  // where it lives, with the twin's signed consent.
  auto alice = cmesh::testing::run(binary, {"id", "show", dir.file("alice.key")}, dir.file("alice.show.log")).second;
  alice = alice.substr(0, alice.find('\n'));
  auto alice_who = rmb(dir, {"--to", alice, "--cmd", "whoami", "--node", nodes[0].address, "--identity",
                             dir.file("client.key")});
  INFO(alice_who.second);
  CHECK(alice_who.first == 0);
  CHECK(alice_who.second.find(alice + " " + me) == 0);
  auto alice_count = rmb(dir, {"--to", alice, "--cmd", "counter.add", "--data", "x", "--node", nodes[4].address});
  CHECK(alice_count.first == 0);
  CHECK(alice_count.second.find("1\n") == 0);
  auto unknown = rmb(dir, {"--to", nodes[3].did, "--cmd", "launch", "--node", nodes[0].address});
  CHECK(unknown.first == 1);
  CHECK(unknown.second.find("command_failed unknown command 'launch'") != std::string::npos);
  auto usage = rmb(dir, {"--cmd", "echo", "--node", nodes[0].address});
  CHECK(usage.first == 2);

  // The aggregator on node 0 lists nodes 1-4 once they registered; a lookup is one round trip.
  auto apples = lookup_until(dir, {"name=apple", "--node", nodes[0].address}, 10s,
                             [](const auto& r) { return r.first == 0; });
  INFO(apples.second);
  CHECK(apples.first == 0);
  CHECK(apples.second.find(nodes[3].did + " " + nodes[3].address +
                           " category:grocery,name:apple,location:paris,adjective:organic\n") == 0);
  CHECK(apples.second.find("1 agent for name:apple") != std::string::npos);
  auto listed = lookup_until(dir, {"category=grocery", "--node", nodes[0].address}, 10s, [&](const auto& r) {
    return r.second.find("4 agents") != std::string::npos;
  });
  INFO(listed.second);
  for (int i = 1; i < 5; ++i) {
    INFO("node " << i << " log:\n" << nodes[i].proc->output());
    CHECK(listed.second.find(nodes[i].did) != std::string::npos);
  }
  CHECK(listed.second.find(nodes[0].did) == std::string::npos);  // node 0 serves, does not register
  auto not_served = lookup(dir, {"category=grocery", "--node", nodes[1].address});
  CHECK(not_served.first == 1);
  CHECK(not_served.second.find("not_served") != std::string::npos);

  // Kill node 4: the others declare it failed (suspicion first, then failure) within 15 s.
  nodes[4].proc->signal(SIGKILL);
  nodes[4].proc->wait(5s);
  for (int i = 0; i < 4; ++i) {
    CHECK(nodes[i].proc->wait_for_text("swim member_failed peer=" + nodes[4].did, 15s));
    // No healthy node is ever declared failed.
    auto log = nodes[i].proc->output();
    for (int j = 0; j < 4; ++j)
      CHECK(log.find("swim member_failed peer=" + nodes[j].did) == std::string::npos);
  }
  // Node 0 gives up dialing node 4 (its last attempt fails about 10 s after the kill) and keeps
  // serving: the aggregator answers, and node 4 has expired from it (10 s lifetime).
  CHECK(nodes[0].proc->wait_for_text("transport dial_failed peer=" + nodes[4].did, 25s));
  auto after = lookup_until(dir, {"category=grocery", "--node", nodes[0].address}, 15s, [&](const auto& r) {
    return r.second.find("3 agents") != std::string::npos;
  });
  INFO(after.second);
  CHECK(after.first == 0);
  CHECK(after.second.find(nodes[4].did) == std::string::npos);
  for (int i = 1; i < 4; ++i) CHECK(after.second.find(nodes[i].did) != std::string::npos);
  CHECK(nodes[0].proc->output().find("transport error_message") == std::string::npos);
  for (int i = 0; i < 4; ++i) nodes[i].proc->signal(SIGTERM);
  for (int i = 0; i < 4; ++i) CHECK(nodes[i].proc->wait(10s) == 0);
}
