// cmesh id new FILE | cmesh id show FILE: create or show an ed25519 identity named as did:key.
#include <cstdio>

#include "runtime/cli/commands.hpp"
#include "runtime/cli/options.hpp"
#include "runtime/crypto/identity.hpp"

namespace cmesh::cli {

namespace {

command_spec id_spec() {
  command_spec spec;
  spec.name = "cmesh id";
  spec.summary = "Create or show a node or user identity (ed25519 key, named as did:key).";
  spec.usage = "cmesh id new FILE | cmesh id show FILE";
  spec.epilog =
      "  new FILE   create a fresh identity in FILE (mode 0600; refuses to overwrite)\n"
      "  show FILE  print the did:key of the identity in FILE (refuses files others can read)\n"
      "Example:\n  cmesh id new node1.key && cmesh node --identity node1.key";
  return spec;
}

}  // namespace

int run_id(int argc, char** argv) {
  auto spec = id_spec();
  int usage_code = 0;
  auto parsed = parse_command_line(spec, argc, argv, usage_code);
  if (!parsed) return usage_code;
  const auto& args = parsed->positional();
  if (args.size() != 2 || (args[0] != "new" && args[0] != "show")) {
    std::fprintf(stderr, "cmesh id: expected 'new FILE' or 'show FILE' (see cmesh id --help)\n");
    return exit_usage;
  }
  crypto_init();
  const auto& path = args[1];
  if (args[0] == "new") {
    auto id = identity::generate();
    if (auto s = write_identity_file(path, id); !s.ok()) {
      std::fprintf(stderr, "cmesh id: %s\n", s.describe().c_str());
      return exit_failed;
    }
    std::printf("%s\n", id.did().c_str());
    return exit_ok;
  }
  auto id = read_identity_file(path);
  if (!id) {
    std::fprintf(stderr, "cmesh id: %s\n", id.err().describe().c_str());
    return exit_failed;
  }
  std::printf("%s\n", id->did().c_str());
  return exit_ok;
}

}  // namespace cmesh::cli
