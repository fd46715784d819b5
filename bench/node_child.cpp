#include "bench/node_child.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <filesystem>

#include "bench/bench_util.hpp"
#include "runtime/cli/child_process.hpp"

namespace cmesh::bench {

node_child::~node_child() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
}

result<std::unique_ptr<node_child>> node_child::start(const std::string& dir, const std::vector<std::string>& extra) {
  std::unique_ptr<node_child> child(new node_child());
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  child->key_ = identity::generate();
  const std::string key_file = dir + "/node.key";
  if (!write_identity_file(key_file, child->key_).ok()) return error{errc::io_error, "cannot write " + key_file};
  child->address_ = "127.0.0.1:" + std::to_string(free_port());
  child->log_ = dir + "/node.log";
  std::vector<std::string> args = {"node", "--listen", child->address_, "--data", dir + "/node", "--identity", key_file};
  for (std::string arg : extra) {
    for (const auto& [name, value] : {std::pair<std::string, std::string>{"{address}", child->address_},
                                      std::pair<std::string, std::string>{"{did}", child->key_.did()}})
      for (auto at = arg.find(name); at != std::string::npos; at = arg.find(name))
        arg.replace(at, name.size(), value);
    args.push_back(std::move(arg));
  }
  child->pid_ = cli::spawn_logged("/proc/self/exe", args, child->log_);
  if (child->pid_ < 0) return error{errc::io_error, "cannot start cmesh node"};
  return child;
}

}  // namespace cmesh::bench
