// Real mode of reputation: 4 `cmesh node` processes on loopback and the `cmesh reputation` client.
// A client's fraud report submitted at one node is gossiped to the others and shows in their
// scores (with the report, verified by the client); an endorsement counts at its subject's node and
// can be shown to another node; a replayed or tampered claim is refused with the reason.
#include <doctest/doctest.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/real/process.hpp"

using namespace std::chrono_literals;
using cmesh::testing::process;
using cmesh::testing::temp_dir;

namespace {

const std::string binary = CMESH_BINARY;

struct rep_node {
  std::string did;
  std::string address;
  std::unique_ptr<process> proc;
};

std::string new_identity(const temp_dir& dir, const std::string& name) {
  return cmesh::testing::new_identity(binary, dir, name);
}

std::pair<int, std::string> reputation(const temp_dir& dir, std::vector<std::string> args) {
  static int runs = 0;
  args.insert(args.begin(), "reputation");
  return cmesh::testing::run(binary, args, dir.file("rep-" + std::to_string(runs++) + ".log"), 20s);
}

// Repeats `show DID --node ADDR` every 200 ms until its output contains `text` (at most `limit`).
std::pair<int, std::string> show_until(const temp_dir& dir, const std::string& did, const std::string& node,
                                       const std::string& text, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto result = reputation(dir, {"show", did, "--node", node});
    if (result.second.find(text) != std::string::npos || std::chrono::steady_clock::now() > deadline)
      return result;
    std::this_thread::sleep_for(200ms);
  }
}

}  // namespace

TEST_CASE("real reputation: a report spreads to the other nodes - an endorsement counts where it is shown - replayed, tampered and bad requests are refused") {
  temp_dir dir;
  std::vector<rep_node> nodes(4);
  for (int i = 0; i < 4; ++i) {
    nodes[i].did = new_identity(dir, "n" + std::to_string(i));
    nodes[i].address = "127.0.0.1:" + std::to_string(cmesh::testing::free_port());
  }
  for (int i = 0; i < 4; ++i) {
    std::vector<std::string> args = {"node", "--listen", nodes[i].address, "--data", dir.file("d" + std::to_string(i)),
                                     "--identity", dir.file("n" + std::to_string(i) + ".key")};
    if (i > 0) args.insert(args.end(), {"--join", nodes[0].address});
    nodes[i].proc = std::make_unique<process>(binary, args, dir.file("n" + std::to_string(i) + ".log"));
    REQUIRE(nodes[i].proc->started());
  }
  for (auto& n : nodes) {
    bool all = n.proc->wait_for(
        [&](const std::string& out) {
          for (const auto& other : nodes)
            if (&other != &n && out.find("swim member_joined peer=" + other.did) == std::string::npos) return false;
          return true;
        },
        15s);
    INFO("log of the node that did not see every other:\n" << n.proc->output());
    REQUIRE(all);
  }
  auto client = new_identity(dir, "client");
  const std::string key = dir.file("client.key");

  // A fraud report about node 3, submitted at node 0 and saved.
  auto [code, out] = reputation(dir, {"report", nodes[3].did, "--reason", "fraud", "--evidence-text",
                                      "order 17 paid, never delivered", "--identity", key, "--node",
                                      nodes[0].address, "--save", dir.file("fraud.claim")});
  INFO(out);
  CHECK(code == 0);
  CHECK(out.find("accepted; score at " + nodes[0].address + " now -10") != std::string::npos);
  // Gossiped on: nodes 1 and 2 hold it and show the report, signed by the client.
  for (int i : {1, 2}) {
    auto [show_code, shown] = show_until(dir, nodes[3].did, nodes[i].address, "score -10", 10s);
    INFO("node " << i << ": " << shown);
    CHECK(show_code == 0);
    CHECK(shown.find("score -10 endorsers 0 reporters 1 report_weight 10") != std::string::npos);
    CHECK(shown.find("report fraud by " + client) != std::string::npos);
  }
  // Reports are never sent to their subject.
  auto at_subject = reputation(dir, {"show", nodes[3].did, "--node", nodes[3].address});
  CHECK(at_subject.second.find("score 0 endorsers 0 reporters 0") != std::string::npos);
  // The saved report presented again where it already counts: a replay.
  auto replayed = reputation(dir, {"present", dir.file("fraud.claim"), "--node", nodes[1].address});
  INFO(replayed.second);
  CHECK(replayed.first == 1);
  CHECK(replayed.second.find("refused: replay:") != std::string::npos);

  // An endorsement of node 1 sent to node 1, then shown to node 2.
  auto endorsed = reputation(dir, {"endorse", nodes[1].did, "--resource-text", "https://n1.example/page",
                                   "--identity", key, "--node", nodes[1].address, "--save", dir.file("e.claim")});
  INFO(endorsed.second);
  CHECK(endorsed.first == 0);
  CHECK(endorsed.second.find("now 1") != std::string::npos);
  auto again = reputation(dir, {"present", dir.file("e.claim"), "--node", nodes[1].address});
  CHECK(again.first == 1);
  CHECK(again.second.find("refused: replay:") != std::string::npos);
  auto elsewhere = reputation(dir, {"present", dir.file("e.claim"), "--node", nodes[2].address});
  INFO(elsewhere.second);
  CHECK(elsewhere.first == 0);
  auto card = reputation(dir, {"show", nodes[1].did, "--node", nodes[2].address});
  CHECK(card.second.find("score 1 endorsers 1 reporters 0") != std::string::npos);

  // The saved endorsement altered by one character inside its signature: refused at a node
  // that never saw it.
  std::string text;
  {
    std::ifstream in(dir.file("e.claim"));
    std::getline(in, text);
  }
  REQUIRE(text.size() > 40);
  char& c = text[text.size() - 20];
  c = c == 'A' ? 'B' : 'A';
  {
    std::ofstream outf(dir.file("tampered.claim"));
    outf << text << "\n";
  }
  auto tampered = reputation(dir, {"present", dir.file("tampered.claim"), "--node", nodes[3].address});
  INFO(tampered.second);
  CHECK(tampered.first == 1);
  CHECK(tampered.second.find("refused: bad_signature:") != std::string::npos);

  // Bad usage exits 2 with a reason; an unreachable node exits 3.
  auto bad_did = reputation(dir, {"show", "did:key:nonsense", "--node", nodes[0].address});
  CHECK(bad_did.first == 2);
  CHECK(bad_did.second.find("not a did:key") != std::string::npos);
  auto no_identity = reputation(dir, {"report", nodes[3].did, "--reason", "spam", "--evidence-text", "x",
                                      "--node", nodes[0].address});
  CHECK(no_identity.first == 2);
  CHECK(no_identity.second.find("--identity FILE is required") != std::string::npos);
  auto bad_reason = reputation(dir, {"report", nodes[3].did, "--reason", "rude", "--evidence-text", "x",
                                     "--identity", key, "--node", nodes[0].address});
  CHECK(bad_reason.first == 2);
  auto unreachable = reputation(dir, {"show", nodes[3].did, "--node",
                                      "127.0.0.1:" + std::to_string(cmesh::testing::free_port()), "--timeout", "2s"});
  CHECK(unreachable.first == 3);

  for (auto& n : nodes) CHECK(n.proc->running());
}
