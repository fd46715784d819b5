// Reference fan-out through nats-server on loopback; see nats_fanout.hpp for what is measured.
//
// Layout of this file: small POSIX helpers, a minimal NATS client (nats_conn), the nats-server
// child process (server_process), the two measured phases, and run_nats_fanout tying them
// together. The client follows the NATS client protocol as documented: the server greets with
// INFO, the client answers CONNECT, then sends SUB/PUB/PING/PONG lines terminated by CRLF and
// receives MSG/HMSG (control line, then exactly #bytes of payload, then CRLF), PING, PONG,
// +OK, -ERR and asynchronous INFO.
#include "bench/nats_fanout.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace cmesh::bench {

namespace {

// ---------------------------------------------------------------------------------------------
// Helpers

constexpr int64_t ns_per_ms = 1'000'000;
constexpr int64_t ns_per_s = 1'000'000'000;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void sleep_ns(int64_t ns) {
  if (ns > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(ns));
}

std::string errno_text(const char* what, int code) {
  char buffer[256];
  // GNU strerror_r: returns a pointer to the message (maybe not into buffer).
  const char* text = strerror_r(code, buffer, sizeof buffer);
  return std::string(what) + ": " + text;
}

std::string errno_text(const char* what) { return errno_text(what, errno); }

class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~unique_fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

timespec to_timespec(int64_t ns) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns / ns_per_s);
  ts.tv_nsec = static_cast<long>(ns % ns_per_s);
  return ts;
}

// Connects to 127.0.0.1:port, non-blocking, TCP_NODELAY. Invalid fd + error on failure.
unique_fd tcp_connect_loopback(uint16_t port, int64_t deadline_ns, std::string& error) {
  unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    error = errno_text("socket");
    return {};
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    if (errno != EINPROGRESS) {
      error = errno_text(("connect to 127.0.0.1:" + std::to_string(port)).c_str());
      return {};
    }
    for (;;) {
      int64_t left = deadline_ns - now_ns();
      if (left <= 0) {
        error = "connect to 127.0.0.1:" + std::to_string(port) + " timed out";
        return {};
      }
      pollfd p{fd.get(), POLLOUT, 0};
      timespec ts = to_timespec(left);
      int ready = ::ppoll(&p, 1, &ts, nullptr);
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) {
        error = errno_text("poll");
        return {};
      }
      if (ready > 0) break;
    }
    int code = 0;
    socklen_t length = sizeof code;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &code, &length) != 0) code = errno;
    if (code != 0) {
      error = errno_text(("connect to 127.0.0.1:" + std::to_string(port)).c_str(), code);
      return {};
    }
  }
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// A port that was free on 127.0.0.1 a moment ago (bound with port 0, then released).
int free_loopback_port(std::string& error) {
  unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    error = errno_text("socket");
    return -1;
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = 0;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    error = errno_text("finding a free loopback port");
    return -1;
  }
  return ntohs(address.sin_port);
}

bool executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// `path` itself if it names a directory entry (contains '/'), else the first PATH match.
std::string resolve_binary(const std::string& path) {
  if (path.empty()) return {};
  if (path.find('/') != std::string::npos) return executable_file(path) ? path : std::string{};
  const char* env = std::getenv("PATH");
  std::string_view dirs = env ? env : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
  while (!dirs.empty()) {
    size_t colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + path;
    if (executable_file(candidate)) return candidate;
  }
  return {};
}

bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 'a' + 'A');
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 'a' + 'A');
    if (x != y) return false;
  }
  return true;
}

bool parse_size(std::string_view text, size_t& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

// Raw value of a top-level "key": string contents (no unescaping) or number token. Enough for
// the INFO fields read here ("version", "max_payload"); not a general JSON parser.
std::string_view json_value(std::string_view json, std::string_view key) {
  std::string quoted = "\"" + std::string(key) + "\"";
  size_t at = json.find(quoted);
  if (at == std::string_view::npos) return {};
  at = json.find(':', at + quoted.size());
  if (at == std::string_view::npos) return {};
  ++at;
  while (at < json.size() && (json[at] == ' ' || json[at] == '\t')) ++at;
  if (at < json.size() && json[at] == '"') {
    size_t end = json.find('"', at + 1);
    if (end == std::string_view::npos) return {};
    return json.substr(at + 1, end - at - 1);
  }
  size_t end = at;
  while (end < json.size() && json[end] != ',' && json[end] != '}' && json[end] != ' ') ++end;
  return json.substr(at, end - at);
}

std::string printable(std::string_view text, size_t limit = 120) {
  std::string out;
  for (char c : text.substr(0, limit)) out += (c >= 32 && c < 127) ? c : '?';
  if (text.size() > limit) out += "...";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Minimal NATS client over one non-blocking TCP connection. Single-threaded: one thread at a
// time drives it (handing it between threads needs the usual happens-before, e.g. join).

using msg_handler = std::function<void(const char* payload, size_t size)>;

class nats_conn {
 public:
  static constexpr size_t max_control_line = 4096;   // server default is 4 KiB as well
  static constexpr size_t max_incoming_payload = 64u << 20;

  // TCP connect, read INFO, send CONNECT, and confirm with a PING/PONG round trip (a rejected
  // CONNECT comes back as -ERR before the PONG).
  bool open(uint16_t port, const std::string& client_name, int64_t deadline_ns, bool echo = false) {
    fd_ = tcp_connect_loopback(port, deadline_ns, error_);
    if (!fd_.valid()) return false;
    msg_handler ignore = [](const char*, size_t) {};
    while (!got_info_) {
      int64_t left = deadline_ns - now_ns();
      if (left <= 0) return fail("timed out waiting for INFO from nats-server");
      if (!pump(std::min<int64_t>(left, 10 * ns_per_ms), ignore)) return false;
    }
    // protocol 1: we accept asynchronous INFO; echo: copies of our own messages (when subscribed).
    out_ += "CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false,\"name\":\"";
    out_ += client_name;
    out_ += "\",\"lang\":\"cpp\",\"version\":\"0.1\",\"protocol\":1,\"echo\":";
    out_ += echo ? "true" : "false";
    out_ += "}\r\n";
    return flush(deadline_ns, ignore);
  }

  void subscribe(std::string_view subject, std::string_view sid) {
    out_ += "SUB ";
    out_ += subject;
    out_ += ' ';
    out_ += sid;
    out_ += "\r\n";
  }

  // Queues a PUB; it goes out on the next pump or flush.
  void publish(std::string_view subject, const char* data, size_t size) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, size);
    (void)ec;
    out_ += "PUB ";
    out_ += subject;
    out_ += ' ';
    out_.append(digits, end);
    out_ += "\r\n";
    out_.append(data, size);
    out_ += "\r\n";
  }

  // PING and wait for its PONG: the server has then processed everything sent before it.
  bool flush(int64_t deadline_ns, const msg_handler& on_msg) {
    uint64_t target = pongs_ + 1;
    out_ += "PING\r\n";
    while (pongs_ < target) {
      int64_t left = deadline_ns - now_ns();
      if (left <= 0) return fail("timed out waiting for PONG from nats-server");
      if (!pump(std::min<int64_t>(left, 10 * ns_per_ms), on_msg)) return false;
    }
    return true;
  }

  // One round of I/O: write what is queued, read and dispatch what has arrived; if nothing
  // arrived, wait up to timeout_ns for input (or for room to write, if output is queued).
  bool pump(int64_t timeout_ns, const msg_handler& on_msg) {
    if (!write_some()) return false;
    long got = read_some();
    if (!parse(on_msg) || got < 0) return false;
    if (got == 0 && timeout_ns > 0) {
      pollfd p{fd_.get(), static_cast<short>(POLLIN | (pending_out() ? POLLOUT : 0)), 0};
      timespec ts = to_timespec(timeout_ns);
      int ready = ::ppoll(&p, 1, &ts, nullptr);
      if (ready < 0 && errno != EINTR) return fail(errno_text("poll"));
      if (ready > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
        got = read_some();
        if (!parse(on_msg) || got < 0) return false;
      }
    }
    return write_some();
  }

  size_t pending_out() const { return out_.size() - out_begin_; }
  const std::string& error() const { return error_; }
  const std::string& server_version() const { return server_version_; }
  size_t max_payload() const { return max_payload_; }

 private:
  bool fail(std::string text) {
    error_ = std::move(text);
    return false;
  }

  bool write_some() {
    while (out_begin_ < out_.size()) {
      ssize_t n = ::send(fd_.get(), out_.data() + out_begin_, out_.size() - out_begin_,
                         MSG_NOSIGNAL);
      if (n > 0) {
        out_begin_ += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return fail(errno_text("send to nats-server"));
    }
    if (out_begin_ == out_.size()) {
      out_.clear();
      out_begin_ = 0;
    } else if (out_begin_ >= (1u << 20)) {
      out_.erase(0, out_begin_);
      out_begin_ = 0;
    }
    return true;
  }

  // Reads what the socket holds, up to 256 KiB. Bytes read, or -1 on error or end of stream
  // (error_ set; whatever was read before is still parsed, so a final -ERR is reported).
  long read_some() {
    long total = 0;
    while (total < (256 << 10)) {
      if (in_.size() - in_end_ < (16u << 10)) {
        if (in_begin_ > 0) {
          std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
          in_end_ -= in_begin_;
          in_begin_ = 0;
        }
        if (in_.size() - in_end_ < (16u << 10)) in_.resize(std::max<size_t>(in_.size() * 2, 64u << 10));
      }
      ssize_t n = ::recv(fd_.get(), in_.data() + in_end_, in_.size() - in_end_, 0);
      if (n > 0) {
        in_end_ += static_cast<size_t>(n);
        total += n;
        continue;
      }
      if (n == 0) {
        fail("nats-server closed the connection");
        return -1;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      fail(errno_text("recv from nats-server"));
      return -1;
    }
    return total;
  }

  // Consumes every complete protocol message in the input buffer; keeps a partial control line
  // or a partial payload for the next read.
  bool parse(const msg_handler& on_msg) {
    while (in_begin_ < in_end_) {
      const char* start = in_.data() + in_begin_;
      size_t available = in_end_ - in_begin_;
      if (in_payload_) {
        if (available < payload_size_ + 2) break;
        if (start[payload_size_] != '\r' || start[payload_size_ + 1] != '\n')
          return fail("nats-server: message payload not followed by CRLF");
        in_begin_ += payload_size_ + 2;
        in_payload_ = false;
        on_msg(start + header_size_, payload_size_ - header_size_);
        continue;
      }
      const void* newline = std::memchr(start, '\n', available);
      if (newline == nullptr) {
        if (available > max_control_line)
          return fail("nats-server: control line longer than " +
                      std::to_string(max_control_line) + " bytes");
        break;
      }
      size_t length = static_cast<size_t>(static_cast<const char*>(newline) - start);
      in_begin_ += length + 1;
      if (length > 0 && start[length - 1] == '\r') --length;
      if (!control(std::string_view(start, length))) return false;
    }
    if (in_begin_ == in_end_) in_begin_ = in_end_ = 0;
    return true;
  }

  bool control(std::string_view line) {
    std::string_view tokens[8];
    size_t count = 0;
    size_t at = 0;
    while (at < line.size() && count < 8) {
      while (at < line.size() && (line[at] == ' ' || line[at] == '\t')) ++at;
      size_t end = at;
      while (end < line.size() && line[end] != ' ' && line[end] != '\t') ++end;
      if (end > at) tokens[count++] = line.substr(at, end - at);
      at = end;
    }
    if (count == 0) return true;  // blank line: tolerated
    std::string_view op = tokens[0];
    if (!got_info_ && !equals_ignore_case(op, "INFO"))
      return fail("expected INFO from the server, got: " + printable(line));

    if (equals_ignore_case(op, "MSG")) {  // MSG <subject> <sid> [reply-to] <#bytes>
      if (count != 4 && count != 5) return fail("nats-server: bad MSG line: " + printable(line));
      if (!parse_size(tokens[count - 1], payload_size_) || payload_size_ > max_incoming_payload)
        return fail("nats-server: bad MSG size: " + printable(line));
      header_size_ = 0;
      in_payload_ = true;
    } else if (equals_ignore_case(op, "HMSG")) {  // HMSG <subj> <sid> [reply] <#hdr> <#total>
      size_t headers = 0;
      if ((count != 5 && count != 6) || !parse_size(tokens[count - 2], headers) ||
          !parse_size(tokens[count - 1], payload_size_) || headers > payload_size_ ||
          payload_size_ > max_incoming_payload)
        return fail("nats-server: bad HMSG line: " + printable(line));
      header_size_ = headers;  // the handler gets the payload after the headers
      in_payload_ = true;
    } else if (equals_ignore_case(op, "PING")) {
      out_ += "PONG\r\n";
    } else if (equals_ignore_case(op, "PONG")) {
      ++pongs_;
    } else if (equals_ignore_case(op, "+OK")) {
      // Only sent in verbose mode; harmless.
    } else if (equals_ignore_case(op, "-ERR")) {
      return fail("nats-server: " + printable(line));
    } else if (equals_ignore_case(op, "INFO")) {
      std::string_view json = line.substr(std::min(line.size(), line.find('{')));
      if (!got_info_) {
        server_version_ = std::string(json_value(json, "version"));
        size_t limit = 0;
        if (parse_size(json_value(json, "max_payload"), limit) && limit > 0) max_payload_ = limit;
        if (json_value(json, "tls_required") == "true")
          return fail("nats-server requires TLS, which this client does not speak");
        if (json_value(json, "auth_required") == "true")
          return fail("nats-server requires authentication, which this client does not do");
      }
      got_info_ = true;  // later INFOs (cluster updates) are accepted and ignored
    } else {
      return fail("nats-server: unexpected protocol line: " + printable(line));
    }
    return true;
  }

  unique_fd fd_;
  std::vector<char> in_;
  size_t in_begin_ = 0, in_end_ = 0;
  std::string out_;
  size_t out_begin_ = 0;
  bool in_payload_ = false;
  size_t payload_size_ = 0;  // MSG: #bytes; HMSG: #total bytes
  size_t header_size_ = 0;   // HMSG: #header bytes, skipped before the handler
  bool got_info_ = false;
  uint64_t pongs_ = 0;
  std::string server_version_;
  size_t max_payload_ = 1u << 20;
  std::string error_;
};

// ---------------------------------------------------------------------------------------------
// nats-server as a child process. Its stdout/stderr go to an already-unlinked temporary file,
// read back for error messages. The child gets PR_SET_PDEATHSIG so it dies with the forking
// thread if this process is killed without unwinding.

class server_process {
 public:
  server_process() = default;
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;
  ~server_process() { stop(); }

  bool start(const std::string& binary, int port, std::string& error) {
    char log_path[] = "/tmp/cmesh-nats-fanout-XXXXXX";
    log_.reset(::mkostemp(log_path, O_CLOEXEC));
    if (!log_.valid()) {
      error = errno_text("creating the nats-server log file");
      return false;
    }
    ::unlink(log_path);
    unique_fd null_in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    int exec_pipe[2];
    if (!null_in.valid() || ::pipe2(exec_pipe, O_CLOEXEC) != 0) {
      error = errno_text("starting nats-server");
      return false;
    }
    unique_fd exec_read(exec_pipe[0]), exec_write(exec_pipe[1]);

    // Everything the child needs is prepared before fork: it only makes system calls.
    // No JetStream (-js), monitoring (-m) or cluster (--cluster) unless asked for; none is.
    std::string port_text = std::to_string(port);
    std::vector<std::string> args = {binary, "-a", "127.0.0.1", "-p", port_text,
                                     "-n", "cmesh-fanout-reference"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t parent = ::getpid();

    pid_t pid = ::fork();
    if (pid < 0) {
      error = errno_text("fork");
      return false;
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(null_in.get(), 0);
      ::dup2(log_.get(), 1);
      ::dup2(log_.get(), 2);
      ::execv(argv[0], argv.data());
      int code = errno;
      ssize_t ignored = ::write(exec_write.get(), &code, sizeof code);
      (void)ignored;
      ::_exit(127);
    }
    pid_ = pid;
    exec_write.reset();
    int code = 0;
    ssize_t n;
    do {
      n = ::read(exec_read.get(), &code, sizeof code);
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof code)) {
      reap_blocking();
      error = errno_text(("cannot execute " + binary).c_str(), code);
      return false;
    }
    return true;
  }

  // If the server has exited, reaps it and describes how.
  bool exited(std::string& how) {
    if (pid_ <= 0) return true;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == 0) return false;
    pid_ = -1;
    how = WIFEXITED(status)   ? "exit code " + std::to_string(WEXITSTATUS(status))
          : WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                : "unknown status";
    return true;
  }

  // SIGTERM, up to 2 s to exit, then SIGKILL; always reaps.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int64_t deadline = now_ns() + 2 * ns_per_s;
    while (now_ns() < deadline) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno == ECHILD)) {
        pid_ = -1;
        return;
      }
      sleep_ns(5 * ns_per_ms);
    }
    ::kill(pid_, SIGKILL);
    reap_blocking();
  }

  // The last `limit` bytes the server wrote, on one line.
  std::string log_tail(size_t limit = 600) const {
    if (!log_.valid()) return {};
    struct stat st {};
    if (::fstat(log_.get(), &st) != 0 || st.st_size <= 0) return "(empty log)";
    size_t size = static_cast<size_t>(st.st_size);
    size_t from = size > limit ? size - limit : 0;
    std::string text(size - from, '\0');
    ssize_t n = ::pread(log_.get(), text.data(), text.size(), static_cast<off_t>(from));
    if (n <= 0) return {};
    text.resize(static_cast<size_t>(n));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    for (char& c : text)
      if (c == '\n') c = '|';
    return printable(text, limit);
  }

 private:
  void reap_blocking() {
    if (pid_ <= 0) return;
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

  pid_t pid_ = -1;
  unique_fd log_;
};

// Starts the server on a free port and waits (5 s) until it accepts TCP connections. Retries
// with another port if the chosen one was taken in between.
bool start_server(const std::string& binary, server_process& server, int& port,
                  std::string& error) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    port = free_loopback_port(error);
    if (port < 0) return false;
    if (!server.start(binary, port, error)) return false;
    int64_t deadline = now_ns() + 5 * ns_per_s;
    for (;;) {
      std::string how;
      if (server.exited(how)) {
        std::string log = server.log_tail();
        if (log.find("address already in use") != std::string::npos && attempt < 2) break;
        error = "nats-server exited during startup (" + how + "): " + log;
        return false;
      }
      std::string connect_error;
      unique_fd probe = tcp_connect_loopback(static_cast<uint16_t>(port),
                                             now_ns() + 200 * ns_per_ms, connect_error);
      if (probe.valid()) return true;
      if (now_ns() >= deadline) {
        error = "nats-server did not accept connections on 127.0.0.1:" + std::to_string(port) +
                " within 5 s; log: " + server.log_tail();
        server.stop();
        return false;
      }
      sleep_ns(20 * ns_per_ms);
    }
  }
  error = "nats-server could not bind a free loopback port";
  return false;
}

// Finds the nats-server binary at `path` (or in PATH) and starts it: start_server, with the
// "not found" message a user can act on.
bool start_nats(const std::string& path, server_process& server, int& port, std::string& error) {
  std::string binary = resolve_binary(path);
  if (binary.empty()) {
    error = "nats-server not found at " + path + "; apt-get install nats-server";
    return false;
  }
  return start_server(binary, server, port, error);
}


// ---------------------------------------------------------------------------------------------
// Payload and shared measurement state

constexpr uint32_t payload_magic = 0x464e4d43;  // "CMNF" little-endian
constexpr uint16_t phase_throughput = 1;
constexpr uint16_t phase_latency = 2;
constexpr int max_nodes = 64;
constexpr std::string_view subject = "cmesh.bench.fanout";

struct wire_header {
  uint32_t magic;
  uint16_t phase;
  uint16_t origin;   // publishing node
  uint64_t seq;      // throughput: per-origin sequence; latency: global message index
  int64_t send_ns;   // steady_clock at publish
};
static_assert(sizeof(wire_header) == 24);

bool decode(const char* data, size_t size, wire_header& h) {
  if (size < sizeof h) return false;
  std::memcpy(&h, data, sizeof h);
  return h.magic == payload_magic;
}

struct alignas(64) padded_counter {
  std::atomic<uint64_t> value{0};
};
struct alignas(64) counter_row {  // one cache-line-aligned row per receiving node
  std::atomic<uint64_t> from[max_nodes] = {};
};

struct run_state {
  explicit run_state(int n)
      : nodes(n),
        got(new counter_row[static_cast<size_t>(n)]),
        sent(new padded_counter[static_cast<size_t>(n)]),
        receipts(new padded_counter[static_cast<size_t>(n)]) {}

  void fail(const std::string& text) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (first_error.empty()) first_error = text;
    abort.store(true);
  }
  bool halted() const { return abort.load(std::memory_order_relaxed) || stop.load(std::memory_order_relaxed); }

  const int nodes;
  std::atomic<bool> abort{false};
  std::atomic<bool> stop{false};
  std::atomic<int> publishers_done{0};
  std::mutex error_mutex;
  std::string first_error;
  int64_t t0 = 0;  // phase start, steady_clock ns

  // Throughput: got[r].from[o] = messages of origin o received by node r (in order, without
  // gaps: anything else fails the run); sent[o] = messages origin o has published.
  std::unique_ptr<counter_row[]> got;
  std::unique_ptr<padded_counter[]> sent;

  // Latency: message k (published by node k % nodes) has send_ns[k] (written by its origin)
  // and recv_ns[k * nodes + r] (written by receiver r, 0 = not received); receipts[r] counts.
  uint64_t total = 0;
  double rate = 0;
  std::vector<int64_t> send_ns;
  std::vector<int64_t> recv_ns;
  std::unique_ptr<padded_counter[]> receipts;

  static size_t at(int i) { return static_cast<size_t>(i); }
  std::atomic<uint64_t>& got_by(int receiver, int origin) const {
    return got[at(receiver)].from[at(origin)];
  }

  uint64_t fully_covered() const {  // throughput phase
    uint64_t covered = 0;
    for (int o = 0; o < nodes; ++o) covered += min_received(o);
    return covered;
  }
  uint64_t min_received(int origin) const {
    uint64_t low = ~uint64_t{0};
    for (int r = 0; r < nodes; ++r)
      if (r != origin) low = std::min(low, got_by(r, origin).load(std::memory_order_acquire));
    return low;
  }
  uint64_t total_sent() const {
    uint64_t sum = 0;
    for (int o = 0; o < nodes; ++o) sum += sent[at(o)].value.load(std::memory_order_acquire);
    return sum;
  }
};

// Runs body(i) on nodes threads, wait() on this one, then stops and joins them.
void run_phase(run_state& s, const std::function<void(int)>& body,
               const std::function<void()>& wait) {
  s.stop.store(false);
  s.publishers_done.store(0);
  std::vector<std::thread> threads;
  try {
    for (int i = 0; i < s.nodes; ++i) threads.emplace_back(body, i);
  } catch (const std::exception& e) {
    s.fail(std::string("starting node threads: ") + e.what());
  }
  if (!s.abort.load()) wait();
  s.stop.store(true);
  for (auto& t : threads) t.join();
}

std::string node_error(int node, const std::string& text) {
  return "node " + std::to_string(node) + ": " + text;
}

// ---------------------------------------------------------------------------------------------
// Phase (a): throughput

void throughput_node(nats_conn& conn, int me, run_state& s, const nats_fanout_options& o,
                     int64_t end_ns) {
  std::vector<char> payload(o.payload, 'x');
  uint64_t next = 0;
  bool publishing = true;
  std::atomic<uint64_t>* mine = s.got[run_state::at(me)].from;
  msg_handler on_msg = [&](const char* data, size_t size) {
    wire_header h;
    if (!decode(data, size, h)) return s.fail(node_error(me, "malformed payload"));
    if (h.phase != phase_throughput) return;  // straggler from another phase
    if (h.origin >= s.nodes) return s.fail(node_error(me, "bad origin in payload"));
    if (h.origin == me)
      return s.fail(node_error(me, "received its own message although CONNECT had echo:false"));
    uint64_t expected = mine[h.origin].load(std::memory_order_relaxed);
    if (h.seq != expected)
      return s.fail(node_error(me, "from node " + std::to_string(h.origin) + " expected seq " +
                                       std::to_string(expected) + ", got " +
                                       std::to_string(h.seq) + " (lost or reordered)"));
    mine[h.origin].store(expected + 1, std::memory_order_release);
  };

  sleep_ns(s.t0 - now_ns());
  constexpr size_t max_batch = 256;
  constexpr size_t max_queued_bytes = 256u << 10;
  while (!s.halted()) {
    bool blocked = false;
    if (publishing) {
      int64_t now = now_ns();
      if (now >= end_ns) {
        publishing = false;
        s.publishers_done.fetch_add(1);
      } else {
        uint64_t covered = s.min_received(me);
        uint64_t room = covered + o.window > next ? covered + o.window - next : 0;
        size_t batch = static_cast<size_t>(std::min<uint64_t>(room, max_batch));
        if (conn.pending_out() >= max_queued_bytes) batch = 0;
        blocked = batch == 0;
        for (size_t i = 0; i < batch; ++i) {
          wire_header h{payload_magic, phase_throughput, static_cast<uint16_t>(me), next, now};
          std::memcpy(payload.data(), &h, sizeof h);
          conn.publish(subject, payload.data(), payload.size());
          ++next;
        }
        if (batch > 0) s.sent[run_state::at(me)].value.store(next, std::memory_order_release);
      }
    }
    int64_t timeout = publishing ? (blocked ? 200'000 : 0) : ns_per_ms;
    if (!conn.pump(timeout, on_msg)) {
      s.fail(node_error(me, conn.error()));
      break;
    }
  }
  if (publishing) s.publishers_done.fetch_add(1);
}

// ---------------------------------------------------------------------------------------------
// Phase (b): open-loop latency

void latency_node(nats_conn& conn, int me, run_state& s, const nats_fanout_options& o) {
  std::vector<char> payload(o.payload, 'x');
  const uint64_t n = static_cast<uint64_t>(s.nodes);
  uint64_t next = static_cast<uint64_t>(me);
  bool done = false;
  uint64_t received = 0;
  auto due = [&](uint64_t k) {
    return s.t0 + static_cast<int64_t>(static_cast<double>(k) * 1e9 / s.rate);
  };
  msg_handler on_msg = [&](const char* data, size_t size) {
    int64_t now = now_ns();
    wire_header h;
    if (!decode(data, size, h)) return s.fail(node_error(me, "malformed payload"));
    if (h.phase != phase_latency) return;  // straggler from the throughput phase
    if (h.origin >= s.nodes || h.seq >= s.total || h.seq % n != h.origin)
      return s.fail(node_error(me, "bad origin or index in payload"));
    if (h.origin == me)
      return s.fail(node_error(me, "received its own message although CONNECT had echo:false"));
    int64_t& slot = s.recv_ns[h.seq * n + static_cast<uint64_t>(me)];
    if (slot != 0) return s.fail(node_error(me, "message " + std::to_string(h.seq) + " twice"));
    slot = now;
    s.receipts[run_state::at(me)].value.store(++received, std::memory_order_relaxed);
  };

  while (!s.halted()) {
    int64_t now = now_ns();
    while (next < s.total && due(next) <= now) {
      wire_header h{payload_magic, phase_latency, static_cast<uint16_t>(me), next, now};
      std::memcpy(payload.data(), &h, sizeof h);
      conn.publish(subject, payload.data(), payload.size());
      s.send_ns[next] = now;  // the PUB is written by the pump right below
      next += n;
    }
    if (next >= s.total && !done) {
      done = true;
      s.publishers_done.fetch_add(1);
    }
    int64_t timeout = ns_per_ms;
    if (next < s.total) timeout = std::clamp<int64_t>(due(next) - now_ns(), 0, ns_per_ms);
    if (!conn.pump(timeout, on_msg)) {
      s.fail(node_error(me, conn.error()));
      break;
    }
  }
  if (!done) s.publishers_done.fetch_add(1);
}

double percentile_sorted(const std::vector<double>& sorted, double fraction) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<size_t>(std::ceil(fraction * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

}  // namespace

bool nats_server_available(const std::string& path) { return !resolve_binary(path).empty(); }

std::optional<nats_fanout_result> run_nats_fanout(const nats_fanout_options& options,
                                                  std::string& error) {
  error.clear();
  const auto& o = options;
  if (o.nodes < 2 || o.nodes > max_nodes) {
    error = "nats fan-out: nodes must be in 2.." + std::to_string(max_nodes);
    return std::nullopt;
  }
  if (!(o.seconds > 0 && o.seconds <= 3600) || !(o.rate_per_s > 0) ||
      !(o.drain_seconds >= 0 && o.drain_seconds <= 600) || o.window == 0) {
    error = "nats fan-out: seconds, rate_per_s, window must be positive, drain_seconds >= 0";
    return std::nullopt;
  }
  if (o.payload < sizeof(wire_header)) {
    error = "nats fan-out: payload must be at least " + std::to_string(sizeof(wire_header)) +
            " bytes";
    return std::nullopt;
  }
  double latency_messages = std::floor(o.rate_per_s * o.seconds);
  if (latency_messages < 1 || latency_messages > 5e6) {
    error = "nats fan-out: rate_per_s * seconds must be in 1..5,000,000";
    return std::nullopt;
  }
  server_process server;  // stopped and reaped by its destructor on every path
  int port = 0;
  if (!start_nats(o.server_path, server, port, error)) return std::nullopt;

  // Connect every node, subscribe, and flush: once each PONG is back, every subscription is
  // registered, so no node publishes before all others listen.
  const int n = o.nodes;
  std::vector<std::unique_ptr<nats_conn>> conns;
  msg_handler ignore = [](const char*, size_t) {};
  int64_t deadline = now_ns() + 5 * ns_per_s;
  for (int i = 0; i < n; ++i) {
    conns.push_back(std::make_unique<nats_conn>());
    if (!conns.back()->open(static_cast<uint16_t>(port), "cmesh-fanout-" + std::to_string(i),
                            deadline)) {
      error = node_error(i, conns.back()->error());
      return std::nullopt;
    }
    if (o.payload > conns.back()->max_payload()) {
      error = "nats fan-out: payload exceeds the server's max_payload of " +
              std::to_string(conns.back()->max_payload());
      return std::nullopt;
    }
    conns.back()->subscribe(subject, "1");
  }
  for (int i = 0; i < n; ++i)
    if (!conns[static_cast<size_t>(i)]->flush(deadline, ignore)) {
      error = node_error(i, conns[static_cast<size_t>(i)]->error());
      return std::nullopt;
    }

  nats_fanout_result result;
  result.server_version = conns[0]->server_version();
  run_state s(n);
  const int64_t phase_ns = static_cast<int64_t>(o.seconds * 1e9);
  const int64_t drain_ns = static_cast<int64_t>(o.drain_seconds * 1e9);
  constexpr int64_t start_delay = 20 * ns_per_ms;  // lets every thread be up before t0

  // (a) throughput
  s.t0 = now_ns() + start_delay;
  int64_t end_ns = s.t0 + phase_ns;
  int64_t finished_ns = 0;
  run_phase(
      s, [&](int i) { throughput_node(*conns[static_cast<size_t>(i)], i, s, o, end_ns); },
      [&] {
        while (!s.abort.load() && s.publishers_done.load() < n) sleep_ns(ns_per_ms);
        int64_t give_up = now_ns() + drain_ns;
        while (!s.abort.load()) {
          int64_t now = now_ns();
          if (s.fully_covered() == s.total_sent()) {
            finished_ns = now;
            break;
          }
          if (now >= give_up) {
            finished_ns = now;
            break;
          }
          sleep_ns(ns_per_ms / 2);
        }
      });
  if (s.abort.load()) {
    error = "nats fan-out (throughput): " + s.first_error;
    return std::nullopt;
  }
  uint64_t deliveries = 0;
  for (int r = 0; r < n; ++r)
    for (int from = 0; from < n; ++from) deliveries += s.got_by(r, from).load();
  uint64_t covered = s.fully_covered();
  result.throughput_sent = s.total_sent();
  result.throughput_incomplete = result.throughput_sent - covered;
  result.throughput_elapsed_s = static_cast<double>(finished_ns - s.t0) / 1e9;
  result.disseminated_per_s = static_cast<double>(covered) / result.throughput_elapsed_s;
  result.deliveries_per_s = static_cast<double>(deliveries) / result.throughput_elapsed_s;

  // (b) latency
  s.total = static_cast<uint64_t>(latency_messages);
  s.rate = o.rate_per_s;
  s.send_ns.assign(s.total, 0);
  s.recv_ns.assign(s.total * static_cast<uint64_t>(n), 0);
  const uint64_t expected_receipts = s.total * static_cast<uint64_t>(n - 1);
  s.t0 = now_ns() + start_delay;
  run_phase(
      s, [&](int i) { latency_node(*conns[static_cast<size_t>(i)], i, s, o); },
      [&] {
        while (!s.abort.load() && s.publishers_done.load() < n) sleep_ns(ns_per_ms);
        int64_t give_up = now_ns() + drain_ns;
        while (!s.abort.load() && now_ns() < give_up) {
          uint64_t receipts = 0;
          for (int r = 0; r < n; ++r) receipts += s.receipts[run_state::at(r)].value.load();
          if (receipts == expected_receipts) break;
          sleep_ns(ns_per_ms);
        }
      });
  if (s.abort.load()) {
    error = "nats fan-out (latency): " + s.first_error;
    return std::nullopt;
  }
  std::vector<double> coverage_ms;
  coverage_ms.reserve(s.total);
  for (uint64_t k = 0; k < s.total; ++k) {
    if (s.send_ns[k] == 0) continue;  // not published (cannot happen without abort)
    ++result.sent;
    int64_t last = 0;
    bool complete = true;
    for (int r = 0; r < n; ++r) {
      if (static_cast<uint64_t>(r) == k % static_cast<uint64_t>(n)) continue;
      int64_t t = s.recv_ns[k * static_cast<uint64_t>(n) + static_cast<uint64_t>(r)];
      if (t == 0) complete = false;
      last = std::max(last, t);
    }
    if (complete)
      coverage_ms.push_back(static_cast<double>(last - s.send_ns[k]) / 1e6);
    else
      ++result.incomplete;
  }
  if (coverage_ms.empty()) {
    error = "nats fan-out (latency): no message reached all nodes";
    return std::nullopt;
  }
  std::sort(coverage_ms.begin(), coverage_ms.end());
  result.p50_ms = percentile_sorted(coverage_ms, 0.50);
  result.p99_ms = percentile_sorted(coverage_ms, 0.99);
  result.max_ms = coverage_ms.back();
  return result;
}

std::optional<nats_loopback_result> run_nats_loopback(const nats_loopback_options& o, std::string& error) {
  error.clear();
  if (o.messages == 0 || o.window == 0 || o.payload < sizeof(wire_header)) {
    error = "nats loopback: messages and window must be positive, payload at least " +
            std::to_string(sizeof(wire_header)) + " bytes";
    return std::nullopt;
  }
  server_process server;  // stopped and reaped by its destructor on every path
  int port = 0;
  if (!start_nats(o.server_path, server, port, error)) return std::nullopt;
  nats_conn conn;
  msg_handler ignore = [](const char*, size_t) {};
  if (!conn.open(static_cast<uint16_t>(port), "cmesh-events-bench", now_ns() + 5 * ns_per_s, /*echo=*/true)) {
    error = "nats loopback: " + conn.error();
    return std::nullopt;
  }
  constexpr std::string_view loop_subject = "bench.events";
  conn.subscribe(loop_subject, "1");
  if (!conn.flush(now_ns() + 5 * ns_per_s, ignore)) {
    error = "nats loopback: " + conn.error();
    return std::nullopt;
  }
  nats_loopback_result result;
  result.server_version = conn.server_version();
  std::vector<double> latencies_us;
  latencies_us.reserve(o.messages);
  uint64_t published = 0, received = 0;
  bool out_of_order = false;
  msg_handler on_msg = [&](const char* data, size_t size) {
    wire_header h{};
    if (!decode(data, size, h)) return;
    if (h.seq != received) out_of_order = true;
    latencies_us.push_back(static_cast<double>(now_ns() - h.send_ns) / 1e3);
    ++received;
  };
  std::string payload(o.payload, 'x');
  const int64_t t0 = now_ns();
  const int64_t give_up = t0 + static_cast<int64_t>(o.timeout_seconds * 1e9);
  while (received < o.messages) {
    if (now_ns() > give_up) {
      error = "nats loopback: " + std::to_string(received) + " of " + std::to_string(o.messages) +
              " messages came back within " + std::to_string(o.timeout_seconds) + " s";
      return std::nullopt;
    }
    while (published < o.messages && published - received < o.window) {
      wire_header h{payload_magic, 0, 0, published, now_ns()};
      std::memcpy(payload.data(), &h, sizeof h);
      conn.publish(loop_subject, payload.data(), payload.size());
      ++published;
    }
    if (!conn.pump(ns_per_ms, on_msg)) {
      error = "nats loopback: " + conn.error();
      return std::nullopt;
    }
  }
  result.seconds = static_cast<double>(now_ns() - t0) / 1e9;
  result.messages_per_s = static_cast<double>(o.messages) / result.seconds;
  std::sort(latencies_us.begin(), latencies_us.end());
  result.p50_us = percentile_sorted(latencies_us, 0.50);
  result.p99_us = percentile_sorted(latencies_us, 0.99);
  result.in_order = !out_of_order;
  return result;
}

}  // namespace cmesh::bench
