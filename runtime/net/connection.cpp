#include "runtime/net/connection.hpp"

#include <deque>

#include <sodium.h>

#include "messages/codec.hpp"
#include "messages/seam.hpp"
#include "runtime/core/event_sink.hpp"
#include "runtime/core/limits.hpp"
#include "runtime/crypto/handshake.hpp"
#include "runtime/crypto/secure_channel.hpp"
#include "runtime/net/net_atoms.hpp"

namespace cmesh::net {

namespace {

constexpr size_t read_chunk_bytes = 64 * 1024;

struct connection_state {
  connection_state(connection_params p, const std::array<uint8_t, 32>& ephemeral)
      : params(std::move(p)),
        shake(params.initiator ? handshake::role::initiator : handshake::role::responder,
              local_credentials{params.self, params.secret_key, params.advertised_address},
              ephemeral, params.expected_peer),
        reader(limits::handshake_message_bytes_max) {}

  connection_params params;
  handshake shake;
  std::optional<secure_channel> channel;
  frame_reader reader;
  node_id peer;
  bool up = false;
  bool closing = false;
  bool finished = false;
  uint64_t unacked_bytes = 0;       // handed to the socket, not yet written by the kernel
  std::deque<bytes> backlog;        // frames waiting while the socket is backed up
  size_t backlog_bytes = 0;
  // Envelopes handed to us since the last seal: sealed together, as one bundle when there are
  // several (one AEAD box and one frame for a burst), when the seal message we send ourselves
  // comes round, or at once when they reach a bundle's size limit.
  std::vector<bytes> outbox;
  size_t outbox_bytes = 0;
  bool seal_scheduled = false;
  uint64_t dropped_frames = 0;
  std::string remote;               // "ip:port" for log lines
};

using state_ptr = std::shared_ptr<connection_state>;

void report(const state_ptr& st, std::string_view kind, std::string_view detail) {
  if (st->params.events)
    st->params.events->record({st->params.self, "transport", kind, st->peer, detail, 0});
}

void write_raw(caf::io::broker* self, caf::io::connection_handle handle, const state_ptr& st,
               const bytes& frame) {
  self->write(handle, frame.size(), frame.data());
  self->flush(handle);
  st->unacked_bytes += frame.size();
}

// Closes the connection. Operating errors (bad bytes, failed authentication) end here with a
// logged reason; the node keeps serving every other connection.
void finish(caf::io::broker* self, caf::io::connection_handle handle, const caf::actor& manager,
            const state_ptr& st, const std::string& reason, bool retryable) {
  if (st->finished) return;
  st->finished = true;
  if (st->params.open_connections) --*st->params.open_connections;
  if (!reason.empty()) report(st, "connection_closed", st->remote + ": " + reason);
  if (st->params.initiator && !st->up)
    self->send(manager, conn_fail_atom::value, st->params.dialed_address, reason, retryable);
  self->close(handle);
  self->quit();
}

void send_frame(caf::io::broker* self, caf::io::connection_handle handle, const state_ptr& st,
                const bytes& plaintext) {
  auto sealed = st->channel->seal(plaintext.data(), plaintext.size());
  if (!sealed) {
    report(st, "send_error", sealed.err().describe());
    return;
  }
  auto frame = frame_with_length(*sealed);
  if (st->unacked_bytes + frame.size() <= limits::socket_unacked_bytes_max && st->backlog.empty()) {
    write_raw(self, handle, st, frame);
    return;
  }
  // Socket backed up: queue, bounded. Tail drop keeps what is already queued in order.
  if (st->backlog.size() >= limits::peer_queue_frames_max ||
      st->backlog_bytes + frame.size() > limits::peer_queue_bytes_max) {
    if (st->dropped_frames++ % 1024 == 0)
      report(st, "queue_full", "send queue full, dropping frames (tail drop); dropped so far: " +
                                   std::to_string(st->dropped_frames));
    return;
  }
  st->backlog_bytes += frame.size();
  st->backlog.push_back(std::move(frame));
}

// Seals what the outbox holds: one envelope as itself, several as one bundle.
void seal_outbox(caf::io::broker* self, caf::io::connection_handle handle, const state_ptr& st) {
  if (st->outbox.empty()) return;
  if (st->outbox.size() == 1) send_frame(self, handle, st, st->outbox.front());
  else send_frame(self, handle, st, encode_bundle(st->outbox));
  st->outbox.clear();
  st->outbox_bytes = 0;
}

// Queues an envelope for the next seal. A bundle never exceeds an envelope's limit: an envelope
// that would not fit seals the outbox first.
void enqueue(caf::io::broker* self, caf::io::connection_handle handle, const state_ptr& st, bytes envelope) {
  const size_t limit = limits::envelope_bytes_max;
  if (!st->outbox.empty() &&
      st->outbox_bytes + envelope.size() + bundle_overhead(st->outbox.size() + 1) > limit)
    seal_outbox(self, handle, st);
  st->outbox_bytes += envelope.size();
  st->outbox.push_back(std::move(envelope));
  if (!st->seal_scheduled) {
    st->seal_scheduled = true;
    self->send(self, seal_atom::value);
  }
}

void drain_backlog(caf::io::broker* self, caf::io::connection_handle handle, const state_ptr& st) {
  while (!st->backlog.empty() &&
         st->unacked_bytes + st->backlog.front().size() <= limits::socket_unacked_bytes_max) {
    st->backlog_bytes -= st->backlog.front().size();
    write_raw(self, handle, st, st->backlog.front());
    st->backlog.pop_front();
  }
}

// Handles one complete frame body. Returns an error to close the connection.
status on_frame(caf::io::broker* self, caf::io::connection_handle handle,
                const caf::actor& manager, const state_ptr& st, const bytes& body) {
  if (!st->up) {
    auto step = st->shake.on_message(body.data(), body.size());
    if (!step) return step.err();
    if (!step->reply.empty()) write_raw(self, handle, st, frame_with_length(step->reply));
    if (step->done) {
      const auto& outcome = st->shake.outcome();
      st->up = true;
      st->peer = outcome.peer;
      st->channel.emplace(outcome.keys);
      st->reader.set_body_bytes_max(limits::frame_bytes_max);
      self->send(manager, conn_up_atom::value, outcome.peer, outcome.peer_address,
                 caf::actor_cast<caf::actor>(self), st->params.initiator,
                 st->params.dialed_address);
    }
    return {};
  }
  auto plaintext = st->channel->open(body.data(), body.size());
  if (!plaintext) return plaintext.err();
  // Every envelope is checked before any is delivered: a bundle with one bad envelope closes the
  // connection without delivering the others (the same rule as for a bad frame).
  auto check = [&](const uint8_t* data, size_t size) -> result<uint16_t> {
    auto env = decode_envelope(data, size);
    if (!env) return env.err();
    if (env->source != st->peer)
      return error{errc::malformed, "envelope claims another source than the authenticated peer"};
    return env->service;
  };
  if (!is_bundle(plaintext->data(), plaintext->size())) {
    auto service = check(plaintext->data(), plaintext->size());
    if (!service) return service.err();
    self->send(manager, deliver_atom::value, st->peer, *service, std::move(*plaintext));
    return {};
  }
  auto parts = split_bundle(plaintext->data(), plaintext->size());
  if (!parts) return parts.err();
  std::vector<uint16_t> services;
  services.reserve(parts->size());
  for (const auto& [data, size] : *parts) {
    auto service = check(data, size);
    if (!service) return service.err();
    services.push_back(*service);
  }
  for (size_t i = 0; i < parts->size(); ++i) {
    const auto& [data, size] = (*parts)[i];
    self->send(manager, deliver_atom::value, st->peer, services[i], bytes(data, data + size));
  }
  return {};
}

}  // namespace

caf::behavior connection_broker(caf::io::broker* self, caf::io::connection_handle handle,
                                caf::actor manager, connection_params params) {
  std::array<uint8_t, 32> ephemeral;
  randombytes_buf(ephemeral.data(), ephemeral.size());  // real mode only: fresh per connection
  auto st = std::make_shared<connection_state>(std::move(params), ephemeral);
  if (st->params.open_connections) ++*st->params.open_connections;
  sodium_memzero(ephemeral.data(), ephemeral.size());
  st->remote = self->remote_addr(handle) + ":" + std::to_string(self->remote_port(handle));
  // The connection lives only as long as its manager.
  self->monitor(manager);
  self->set_down_handler([=](caf::down_msg&) { finish(self, handle, manager, st, "", false); });
  self->configure_read(handle, caf::io::receive_policy::at_most(read_chunk_bytes));
  self->ack_writes(handle, true);
  if (st->params.initiator) write_raw(self, handle, st, frame_with_length(st->shake.start()));
  self->delayed_send(self, std::chrono::milliseconds(limits::handshake_timeout_ms),
                     timeout_atom::value);
  return {
    [=](const caf::io::new_data_msg& msg) {
      if (st->finished) return;
      auto pushed = st->reader.push(reinterpret_cast<const uint8_t*>(msg.buf.data()), msg.buf.size());
      if (!pushed.ok()) return finish(self, handle, manager, st, pushed.describe(), false);
      while (auto body = st->reader.next()) {
        auto handled = on_frame(self, handle, manager, st, *body);
        if (!handled.ok()) {
          bool retryable = handled.code != errc::identity_mismatch && handled.code != errc::auth_failed;
          return finish(self, handle, manager, st, handled.describe(), retryable);
        }
      }
      if (st->reader.failed())
        finish(self, handle, manager, st, st->reader.failure().describe(), false);
    },
    [=](const caf::io::data_transferred_msg& msg) {
      st->unacked_bytes = msg.remaining;
      drain_backlog(self, handle, st);
      if (st->closing && st->backlog.empty() && st->unacked_bytes == 0)
        finish(self, handle, manager, st, "", false);
    },
    [=](frame_atom, bytes& envelope) {
      if (st->up && !st->closing && !st->finished) enqueue(self, handle, st, std::move(envelope));
    },
    [=](seal_atom) {
      st->seal_scheduled = false;
      if (st->up && !st->finished) seal_outbox(self, handle, st);
    },
    [=](close_atom) {
      if (!st->finished) seal_outbox(self, handle, st);  // what was handed to us before the close
      if (st->closing) return finish(self, handle, manager, st, "", false);  // waited long enough
      st->closing = true;
      if (st->backlog.empty() && st->unacked_bytes == 0) finish(self, handle, manager, st, "", false);
      else self->delayed_send(self, std::chrono::seconds(1), close_atom::value);  // bounded wait
    },
    [=](timeout_atom) {
      if (!st->up) finish(self, handle, manager, st, "handshake timed out", true);
    },
    [=](const caf::io::connection_closed_msg&) {
      finish(self, handle, manager, st, st->up ? "closed by peer" : "closed during handshake", true);
    },
  };
}

}  // namespace cmesh::net
