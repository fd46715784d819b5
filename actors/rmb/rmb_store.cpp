#include "actors/rmb/rmb_store.hpp"

#include <cstring>

#include "messages/codec.hpp"

namespace cmesh::rmb {

namespace {

constexpr char dedup_prefix = 'd';
constexpr char outbox_prefix = 'o';
constexpr char twin_prefix = 't';
constexpr size_t key_chars = 1 + twin_key_bytes + uid_bytes;

// Optional envelopes are stored as lists of zero or one element.
struct stored_dedup {
  uint8_t state = 0;
  int64_t forget_at_ms = 0;
  bytes reply_node;
  std::vector<twin_envelope> request;
  std::vector<twin_envelope> reply;
  MSGPACK_DEFINE(state, forget_at_ms, reply_node, request, reply);
};

struct stored_outbox {
  twin_envelope message;
  bytes to_node;
  MSGPACK_DEFINE(message, to_node);
};

std::string key_for(char prefix, const message_key& key) {
  std::string k;
  k.reserve(key_chars);
  k.push_back(prefix);
  k.append(reinterpret_cast<const char*>(key.twin.key.data()), key.twin.key.size());
  k.append(reinterpret_cast<const char*>(key.uid.data()), key.uid.size());
  return k;
}

message_key key_from(std::string_view k) {
  message_key key;
  key.twin = node_id::from_bytes(reinterpret_cast<const uint8_t*>(k.data() + 1));
  std::memcpy(key.uid.data(), k.data() + 1 + twin_key_bytes, uid_bytes);
  return key;
}

std::string_view view(const bytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

node_id node_from(const bytes& b) {
  return b.size() == 32 ? node_id::from_bytes(b.data()) : node_id{};
}

template <class T>
std::vector<T> list_of(const std::optional<T>& value) {
  return value ? std::vector<T>{*value} : std::vector<T>{};
}

template <class T>
std::optional<T> optional_of(std::vector<T>& list) {
  if (list.empty()) return std::nullopt;
  return std::move(list.front());
}

result<bytes> encode(const dedup_record& r) {
  stored_dedup s{static_cast<uint8_t>(r.state), r.forget_at_ms, to_bytes(r.reply_node),
                 list_of(r.request), list_of(r.reply)};
  return pack_value(s);
}

result<bytes> encode(const outbox_record& r) {
  stored_outbox s{r.message, to_bytes(r.to_node)};
  return pack_value(s);
}

}  // namespace

result<message_store> message_store::open(store& storage) {
  auto db = storage.open_database("rmb");
  if (!db) return db.err();
  return message_store(&storage, *db);
}

result<restored_state> message_store::load() {
  restored_state out;
  auto reader = storage_->begin_read();
  if (!reader) return reader.err();
  error failure;
  auto visited = reader->for_each(db_, [&](std::string_view k, std::string_view v) {
    if (k.size() != key_chars) return true;  // not ours
    const auto* data = reinterpret_cast<const uint8_t*>(v.data());
    if (k[0] == dedup_prefix) {
      auto s = unpack_value<stored_dedup>(data, v.size());
      if (!s || s->state > static_cast<uint8_t>(dedup_state::done)) {
        failure = error{errc::malformed, "rmb dedup record: " +
                                             (s ? std::string("bad state") : s.err().describe())};
        return false;
      }
      dedup_record r;
      r.key = key_from(k);
      r.state = static_cast<dedup_state>(s->state);
      r.forget_at_ms = s->forget_at_ms;
      r.reply_node = node_from(s->reply_node);
      r.request = optional_of(s->request);
      r.reply = optional_of(s->reply);
      out.dedup.push_back(std::move(r));
    } else if (k[0] == outbox_prefix) {
      auto s = unpack_value<stored_outbox>(data, v.size());
      if (!s) {
        failure = error{errc::malformed, "rmb outbox record: " + s.err().describe()};
        return false;
      }
      out.outbox.push_back({std::move(s->message), node_from(s->to_node)});
    }
    return true;
  });
  if (visited) return visited;
  if (failure) return failure;
  return out;
}

status message_store::persist(const std::vector<store_op>& ops) { return persist(ops, {}); }

result<std::map<node_id, bytes>> message_store::load_twin_states() {
  auto reader = storage_->begin_read();
  if (!reader) return reader.err();
  std::map<node_id, bytes> out;
  auto visited = reader->for_each(db_, [&](std::string_view k, std::string_view v) {
    if (k.size() == 1 + twin_key_bytes && k[0] == twin_prefix)
      out[node_id::from_bytes(reinterpret_cast<const uint8_t*>(k.data() + 1))] = bytes(v.begin(), v.end());
    return true;
  });
  if (visited) return visited;
  return out;
}

status message_store::persist(const std::vector<store_op>& ops,
                              const std::vector<twin_write>& twin_states) {
  if (ops.empty() && twin_states.empty()) return {};
  auto txn = storage_->begin_write();
  if (!txn) return txn.err();
  status st;
  for (const auto& op : ops) {
    switch (op.what) {
      case store_op::action::put_dedup: {
        auto packed = encode(op.dedup);
        if (!packed) return packed.err();
        st = txn->put(db_, key_for(dedup_prefix, op.dedup.key), view(*packed));
        break;
      }
      case store_op::action::erase_dedup:
        st = txn->erase(db_, key_for(dedup_prefix, op.key));
        break;
      case store_op::action::put_outbox: {
        if (!well_formed(op.outbox.message))
          return error{errc::invalid_argument, "outbox message is not well formed"};
        auto packed = encode(op.outbox);
        if (!packed) return packed.err();
        st = txn->put(db_, key_for(outbox_prefix, key_of(op.outbox.message)), view(*packed));
        break;
      }
      case store_op::action::erase_outbox:
        st = txn->erase(db_, key_for(outbox_prefix, op.key));
        break;
    }
    if (!st.ok()) return st;
  }
  for (const auto& [twin, state] : twin_states) {
    std::string key(1, twin_prefix);
    key.append(reinterpret_cast<const char*>(twin.key.data()), twin.key.size());
    st = txn->put(db_, key, std::string_view(reinterpret_cast<const char*>(state.data()), state.size()));
    if (!st.ok()) return st;
  }
  st = txn->commit();
  if (st.ok()) st = storage_->sync();
  return st;
}

}  // namespace cmesh::rmb
