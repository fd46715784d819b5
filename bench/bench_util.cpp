#include "bench/bench_util.hpp"
#include "runtime/cli/child_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace cmesh::bench {

double median(std::vector<double> values) { return percentile(std::move(values), 0.5); }

double percentile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  auto index = static_cast<size_t>(fraction * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

child_result run_self(const std::vector<std::string>& args, bool stderr_to_terminal) {
  child_result result;
  auto started = std::chrono::steady_clock::now();
  cli::child_process child;
  if (!cli::spawn_self(args, !stderr_to_terminal, false, child)) return result;
  pid_t pid = child.pid;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(child.output_fd, buffer, sizeof buffer)) > 0) result.output.append(buffer, n);
  ::close(child.output_fd);
  int status = 0;
  rusage usage{};
  ::wait4(pid, &status, 0, &usage);
  result.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.peak_rss_kib = usage.ru_maxrss;
  return result;
}

double find_number(const std::string& text, const std::string& key) {
  auto pos = text.find(key + "=");
  if (pos == std::string::npos) return -1;
  return std::strtod(text.c_str() + pos + key.size() + 1, nullptr);
}

void write_csv(const std::string& directory, const std::string& name, const std::string& header,
               const std::vector<std::string>& rows) {
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  std::string path = directory + "/" + name + ".csv";
  bool fresh = !std::filesystem::exists(path);
  std::ofstream out(path, std::ios::app);
  if (fresh) out << header << "\n";
  for (const auto& row : rows) out << row << "\n";
}

std::string format(const char* pattern, ...) {
  char buffer[1024];
  va_list args;
  va_start(args, pattern);
  std::vsnprintf(buffer, sizeof buffer, pattern, args);
  va_end(args);
  return buffer;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

}  // namespace cmesh::bench
