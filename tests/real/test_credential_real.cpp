// cmesh id credential: an SD-JWT credential issued, presented with one attribute of three, and
// verified, all through the CLI; what was not asked for never leaves the holder.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/real/process.hpp"

using cmesh::testing::temp_dir;

namespace {

const std::string binary = CMESH_BINARY;

std::pair<int, std::string> cmesh_run(const temp_dir& dir, std::vector<std::string> args) {
  static int runs = 0;
  return cmesh::testing::run(binary, args, dir.file("cred-" + std::to_string(runs++) + ".log"));
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

TEST_CASE("real credential: issue three attributes, present one to a verifier, verify it; the others stay hidden; wrong nonce, audience, issuer or holder refused") {
  temp_dir dir;
  auto issuer = first_line(cmesh_run(dir, {"id", "new", dir.file("issuer.key")}).second);
  auto alice = first_line(cmesh_run(dir, {"id", "new", dir.file("alice.key")}).second);
  cmesh_run(dir, {"id", "new", dir.file("eve.key")});

  auto [issued_code, credential] = cmesh_run(dir, {"id", "credential", "issue", "--identity", dir.file("issuer.key"),
                                                   "--holder", alice, "--claims",
                                                   R"({"family_name":"Möbius","birthdate":"1990-01-01","email":"a@example.com"})",
                                                   "--visible", R"({"type":"ID"})"});
  INFO(credential);
  REQUIRE(issued_code == 0);
  credential = first_line(credential);
  CHECK(std::count(credential.begin(), credential.end(), '~') == 4);  // issuer JWT ~ 3 disclosures ~

  auto [present_code, presentation] =
      cmesh_run(dir, {"id", "credential", "present", credential, "--identity", dir.file("alice.key"), "--disclose",
                      "family_name", "--audience", "shop", "--nonce", "n-123"});
  INFO(presentation);
  REQUIRE(present_code == 0);
  presentation = first_line(presentation);
  // issuer JWT ~ one disclosure ~ KB-JWT: the other two disclosures are not in it.
  CHECK(std::count(presentation.begin(), presentation.end(), '~') == 2);

  auto [verify_code, verified] = cmesh_run(dir, {"id", "credential", "verify", presentation, "--issuer", issuer,
                                                 "--audience", "shop", "--nonce", "n-123"});
  INFO(verified);
  CHECK(verify_code == 0);
  CHECK(verified.find("disclosed family_name\n") == 0);
  CHECK(verified.find("\"family_name\":\"Möbius\"") != std::string::npos);
  CHECK(verified.find("\"type\":\"ID\"") != std::string::npos);
  CHECK(verified.find("1990") == std::string::npos);
  CHECK(verified.find("example.com") == std::string::npos);

  auto wrong_nonce = cmesh_run(dir, {"id", "credential", "verify", presentation, "--issuer", issuer, "--audience",
                                     "shop", "--nonce", "n-999"});
  CHECK(wrong_nonce.first == 1);
  CHECK(wrong_nonce.second.find("wrong_nonce") != std::string::npos);
  auto wrong_audience = cmesh_run(dir, {"id", "credential", "verify", presentation, "--issuer", issuer, "--audience",
                                        "bank", "--nonce", "n-123"});
  CHECK(wrong_audience.first == 1);
  CHECK(wrong_audience.second.find("wrong_audience") != std::string::npos);
  auto wrong_issuer = cmesh_run(dir, {"id", "credential", "verify", presentation, "--issuer", alice, "--audience",
                                      "shop", "--nonce", "n-123"});
  CHECK(wrong_issuer.first == 1);
  CHECK(wrong_issuer.second.find("wrong_issuer") != std::string::npos);
  // Only the holder's key can present it.
  auto eve = cmesh_run(dir, {"id", "credential", "present", credential, "--identity", dir.file("eve.key"),
                             "--disclose", "family_name", "--audience", "shop", "--nonce", "n"});
  CHECK(eve.first == 1);
  CHECK(eve.second.find("identity_mismatch") != std::string::npos);
  // Asking for an attribute the credential does not have is a usage error.
  auto missing = cmesh_run(dir, {"id", "credential", "present", credential, "--identity", dir.file("alice.key"),
                                 "--disclose", "height", "--audience", "shop", "--nonce", "n"});
  CHECK(missing.first == 2);
}
