#include "runtime/cli/log_sink.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

#include "runtime/crypto/identity.hpp"

namespace cmesh::cli {

namespace {

std::string timestamp() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto seconds = system_clock::to_time_t(now);
  auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[40];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03lldZ", buffer, static_cast<long long>(millis));
  return out;
}

bool noisy(std::string_view kind) {
  // Per-message events that would flood the log at steady state; shown with --verbose.
  return kind == "pong" || kind == "seed_dialed";
}

}  // namespace

void log_sink::record(const node_event& event) {
  if (!verbose_ && noisy(event.kind)) return;
  std::string text = std::string(event.service) + " " + std::string(event.kind);
  if (!event.peer.is_zero()) text += " peer=" + did_from_node_id(event.peer);
  if (!event.detail.empty()) text += " " + std::string(event.detail);
  if (event.kind == "pong") text += " rtt=" + std::to_string(event.value) + "ms";
  line(text);
}

void log_sink::line(const std::string& text) {
  std::lock_guard<std::mutex> guard(mutex_);
  std::printf("%s %s\n", timestamp().c_str(), text.c_str());
  std::fflush(stdout);
}

}  // namespace cmesh::cli
