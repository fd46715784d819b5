// Tests for runtime/crypto/base58.hpp and runtime/crypto/identity.hpp.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

#include "runtime/crypto/base58.hpp"
#include "runtime/crypto/identity.hpp"

namespace {

using namespace cmesh;

constexpr const char* zero_seed_did = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";

// A fresh directory under /tmp, removed with its files when the test ends.
class temp_directory {
public:
  temp_directory() {
    char pattern[] = "/tmp/cmesh-identity-test-XXXXXX";
    const char* made = ::mkdtemp(pattern);
    REQUIRE(made != nullptr);
    path_ = made;
  }
  ~temp_directory() {
    for (const auto& file : files_) ::unlink(file.c_str());
    ::rmdir(path_.c_str());
  }
  std::string file(const std::string& name) {
    files_.insert(path_ + "/" + name);
    return path_ + "/" + name;
  }

private:
  std::string path_;
  std::set<std::string> files_;
};

void write_text(const std::string& path, const std::string& text, mode_t mode) {
  {
    std::ofstream out(path, std::ios::trunc);
    out << text;
  }
  REQUIRE(::chmod(path.c_str(), mode) == 0);
}

std::string encode_text(std::string_view text) {
  return base58btc_encode(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

}  // namespace

TEST_CASE("identity: the all-zero seed gives the known did:key") {
  const identity id = identity::from_seed({});
  CHECK(id.did() == zero_seed_did);
  auto parsed = node_id_from_did(zero_seed_did);
  REQUIRE(parsed.ok());
  CHECK(*parsed == id.public_key);
}

TEST_CASE("base58: known encodings") {
  CHECK(encode_text("") == "");
  CHECK(encode_text("hello world") == "StV1DL6CwTryKyV");
  const uint8_t zeros[] = {0, 0, 0x28, 0x7f, 0xb4, 0xcd};
  CHECK(base58btc_encode(zeros, sizeof zeros) == "11233QC4");
  const uint8_t only_zeros[] = {0, 0, 0};
  CHECK(base58btc_encode(only_zeros, sizeof only_zeros) == "111");
}

TEST_CASE("base58: round trips including leading zero bytes") {
  for (size_t zeros = 0; zeros < 4; ++zeros) {
    for (size_t length = zeros; length < 40; ++length) {
      bytes data(length, 0);
      for (size_t i = zeros; i < length; ++i) data[i] = static_cast<uint8_t>(i * 37 + 11);
      auto back = base58btc_decode(base58btc_encode(data.data(), data.size()));
      REQUIRE(back.ok());
      CHECK(*back == data);
    }
  }
  const bytes all_ff(33, 0xff);
  auto back = base58btc_decode(base58btc_encode(all_ff.data(), all_ff.size()));
  REQUIRE(back.ok());
  CHECK(*back == all_ff);
}

TEST_CASE("base58: characters outside the alphabet are refused") {
  for (const char* text : {"0abc", "abcO", "Il", "ab c", "abc\xff"}) {
    auto out = base58btc_decode(text);
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::malformed);
  }
}

TEST_CASE("identity: did round trip") {
  for (uint64_t index = 0; index < 20; ++index) {
    const identity id = identity::derive_for_simulation(99, index);
    const std::string did = did_from_node_id(id.public_key);
    CHECK(did.rfind("did:key:z6Mk", 0) == 0);
    auto back = node_id_from_did(did);
    REQUIRE(back.ok());
    CHECK(*back == id.public_key);
  }
}

TEST_CASE("identity: did parse errors") {
  const std::string good = zero_seed_did;
  const auto refused = [](std::string_view did) {
    auto out = node_id_from_did(did);
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::malformed);
    return out.err().message;
  };
  CHECK(refused("").find("did:key:z") != std::string::npos);
  refused("did:web:example.com");
  refused("did:key:f" + good.substr(9));                // another multibase
  refused(good.substr(0, 20) + "0" + good.substr(21));  // '0' is not base58
  refused(good + std::string(200, 'z'));
  // Right length, wrong multicodec: 0xec 0x01 (x25519-pub) + 32 bytes.
  bytes x25519(34, 7);
  x25519[0] = 0xec;
  x25519[1] = 0x01;
  CHECK(refused("did:key:z" + base58btc_encode(x25519.data(), x25519.size())).find("multicodec") !=
        std::string::npos);
  // Right multicodec, wrong length.
  bytes short_key(33, 7);
  short_key[0] = 0xed;
  short_key[1] = 0x01;
  CHECK(refused("did:key:z" + base58btc_encode(short_key.data(), short_key.size()))
            .find("31 bytes") != std::string::npos);
  bytes long_key(35, 7);
  long_key[0] = 0xed;
  long_key[1] = 0x01;
  refused("did:key:z" + base58btc_encode(long_key.data(), long_key.size()));
  refused("did:key:z");
}

TEST_CASE("identity: sign and verify") {
  const identity id = identity::from_seed({1, 2, 3});
  const std::string message = "attack at dawn";
  const auto* data = reinterpret_cast<const uint8_t*>(message.data());
  const auto signature = id.sign(data, message.size());
  CHECK(verify_signature(id.public_key, data, message.size(), signature.data()));

  auto tampered = signature;
  tampered[10] ^= 1;
  CHECK_FALSE(verify_signature(id.public_key, data, message.size(), tampered.data()));
  std::string changed = message;
  changed[0] = 'A';
  CHECK_FALSE(verify_signature(id.public_key, reinterpret_cast<const uint8_t*>(changed.data()),
                               changed.size(), signature.data()));
  const identity other = identity::from_seed({9});
  CHECK_FALSE(verify_signature(other.public_key, data, message.size(), signature.data()));

  const auto empty_signature = id.sign(nullptr, 0);
  CHECK(verify_signature(id.public_key, nullptr, 0, empty_signature.data()));
}

TEST_CASE("identity: derive_for_simulation is deterministic and distinct per index") {
  const identity a = identity::derive_for_simulation(42, 0);
  const identity b = identity::derive_for_simulation(42, 0);
  CHECK(a.seed == b.seed);
  CHECK(a.public_key == b.public_key);
  std::set<node_id> keys;
  for (uint64_t index = 0; index < 100; ++index)
    keys.insert(identity::derive_for_simulation(42, index).public_key);
  CHECK(keys.size() == 100);
  CHECK(identity::derive_for_simulation(43, 0).public_key != a.public_key);
}

TEST_CASE("identity: generate gives distinct working identities") {
  const identity a = identity::generate();
  const identity b = identity::generate();
  CHECK(a.public_key != b.public_key);
  CHECK(identity::from_seed(a.seed).public_key == a.public_key);
}

TEST_CASE("identity: key file is written with mode 0600 and read back") {
  temp_directory dir;
  const std::string path = dir.file("node.key");
  const identity id = identity::derive_for_simulation(7, 3);
  REQUIRE_FALSE(write_identity_file(path, id));
  struct stat info {};
  REQUIRE(::stat(path.c_str(), &info) == 0);
  CHECK((info.st_mode & 07777) == 0600);

  auto back = read_identity_file(path);
  REQUIRE(back.ok());
  CHECK(back->seed == id.seed);
  CHECK(back->public_key == id.public_key);
  CHECK(back->secret_key == id.secret_key);

  std::ifstream in(path);
  std::string first_line;
  std::getline(in, first_line);
  CHECK(first_line == "# cmesh identity. Keep this file secret (mode 0600).");
}

TEST_CASE("identity: key file is never overwritten") {
  temp_directory dir;
  const std::string path = dir.file("node.key");
  REQUIRE_FALSE(write_identity_file(path, identity::from_seed({1})));
  const status again = write_identity_file(path, identity::from_seed({2}));
  CHECK(again.code == errc::already_exists);
  auto back = read_identity_file(path);
  REQUIRE(back.ok());
  CHECK(back->public_key == identity::from_seed({1}).public_key);
}

TEST_CASE("identity: key file readable by group or others is refused") {
  temp_directory dir;
  const std::string path = dir.file("node.key");
  REQUIRE_FALSE(write_identity_file(path, identity::from_seed({})));

  REQUIRE(::chmod(path.c_str(), 0644) == 0);
  auto others = read_identity_file(path);
  REQUIRE_FALSE(others.ok());
  CHECK(others.err().code == errc::permission_denied);
  CHECK(others.err().message ==
        "identity file " + path + " is readable by others (mode 0644); run: chmod 600 " + path);

  REQUIRE(::chmod(path.c_str(), 0640) == 0);
  auto group = read_identity_file(path);
  REQUIRE_FALSE(group.ok());
  CHECK(group.err().code == errc::permission_denied);
  CHECK(group.err().message.find("readable by group (mode 0640)") != std::string::npos);

  REQUIRE(::chmod(path.c_str(), 0620) == 0);
  auto writable = read_identity_file(path);
  REQUIRE_FALSE(writable.ok());
  CHECK(writable.err().message.find("writable by group") != std::string::npos);

  REQUIRE(::chmod(path.c_str(), 0400) == 0);
  CHECK(read_identity_file(path).ok());
}

TEST_CASE("identity: malformed key files are refused") {
  temp_directory dir;
  const std::string path = dir.file("node.key");
  const std::string seed_hex(64, '0');
  const auto refused = [&](const std::string& text) {
    ::unlink(path.c_str());
    write_text(path, text, 0600);
    auto out = read_identity_file(path);
    REQUIRE_FALSE(out.ok());
    CHECK(out.err().code == errc::malformed);
    return out.err().message;
  };
  CHECK(refused("# nothing here\n").find("missing") != std::string::npos);
  CHECK(refused("did = " + std::string(zero_seed_did) + "\n").find("missing") != std::string::npos);
  refused("seed = " + seed_hex.substr(1) + "\n");
  refused("seed = " + seed_hex + "0\n");
  refused("seed = " + seed_hex.substr(2) + "zz\n");
  refused("seed " + seed_hex + "\n");
  refused("seed = " + seed_hex + "\nseed = " + seed_hex + "\n");
  refused("colour = blue\nseed = " + seed_hex + "\n");
  refused(std::string(5000, '#'));
  const identity other = identity::from_seed({5});
  CHECK(refused("did = " + other.did() + "\nseed = " + seed_hex + "\n").find("does not match") !=
        std::string::npos);

  // Whitespace, CRLF line ends and a missing did line are fine.
  ::unlink(path.c_str());
  write_text(path, "\r\n  seed=" + seed_hex + "  \r\n", 0600);
  auto fine = read_identity_file(path);
  REQUIRE(fine.ok());
  CHECK(fine->did() == zero_seed_did);
}

TEST_CASE("identity: missing key file and unwritable path") {
  temp_directory dir;
  auto missing = read_identity_file(dir.file("absent.key"));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.err().code == errc::not_found);

  const status no_directory =
      write_identity_file(dir.file("absent") + "/node.key", identity::from_seed({}));
  CHECK(no_directory.code == errc::not_found);
  CHECK(no_directory.message.find("absent/node.key") != std::string::npos);

  const std::string not_a_directory = dir.file("plain");
  write_text(not_a_directory, "x", 0600);
  const status under_file =
      write_identity_file(not_a_directory + "/node.key", identity::from_seed({}));
  CHECK(under_file.code == errc::io_error);
}
