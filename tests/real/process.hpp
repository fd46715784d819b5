// Test harness for real processes: start the cmesh binary with arguments, capture its output to
// a file, wait for a line, signal it, collect its exit code. Linux only (posix_spawn).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace cmesh::testing {

class process {
public:
  // Starts `binary args...` with stdout and stderr appended to `log_path`.
  process(const std::string& binary, const std::vector<std::string>& args, std::string log_path)
      : log_path_(std::move(log_path)) {
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(binary.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~process() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  bool running() {
    if (pid_ <= 0 || exited_) return false;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      status_ = status;
      return false;
    }
    return true;
  }
  void signal(int sig) {
    if (running()) ::kill(pid_, sig);
  }
  // Waits for exit (up to timeout); returns the exit code, 128+signal if killed, -1 on timeout.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
      if (std::chrono::steady_clock::now() > deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (WIFEXITED(status_)) return WEXITSTATUS(status_);
    if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
    return -1;
  }
  std::string output() const {
    std::ifstream in(log_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // Polls the output until `predicate(output)` holds or the timeout passes.
  bool wait_for(const std::function<bool(const std::string&)>& predicate,
                std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (predicate(output())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return predicate(output());
  }
  bool wait_for_text(const std::string& text, std::chrono::milliseconds timeout) {
    return wait_for([&](const std::string& out) { return out.find(text) != std::string::npos; },
                    timeout);
  }
  const std::string& log_path() const { return log_path_; }

private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
  std::string log_path_;
};

// Runs a command to completion; returns {exit code, output}.
inline std::pair<int, std::string> run(const std::string& binary, const std::vector<std::string>& args,
                                       const std::string& log_path,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  std::remove(log_path.c_str());
  process p(binary, args, log_path);
  int code = p.wait(timeout);
  return {code, p.output()};
}

// A fresh temporary folder, removed with its contents at scope exit.
class temp_dir {
public:
  temp_dir() {
    std::string pattern = "/tmp/cmesh-test-XXXXXX";
    path_ = mkdtemp(pattern.data()) ? pattern : std::string();
  }
  ~temp_dir() {
    if (!path_.empty()) std::system(("rm -rf '" + path_ + "'").c_str());
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

// A loopback TCP port that was free a moment ago (bind to 0, read the port, close).
int free_port();

// `binary id new DIR/NAME.key`: a fresh identity file; returns its did:key.
inline std::string new_identity(const std::string& binary, const temp_dir& dir, const std::string& name) {
  auto [code, out] = run(binary, {"id", "new", dir.file(name + ".key")}, dir.file(name + ".id.log"));
  REQUIRE(code == 0);
  return out.substr(0, out.find('\n'));
}

}  // namespace cmesh::testing
