#include "actors/kv/kv_machine.hpp"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <utility>

#include "messages/codec.hpp"
#include "runtime/core/limits.hpp"
#include "runtime/crypto/identity.hpp"

namespace cmesh::kv {

namespace {

// ---- limits of this file ------------------------------------------------------------------------
// Bytes a command adds around key, value and expected: field tags, integers, the 32-byte caller
// and the envelope around it. Generous on purpose.
constexpr size_t command_overhead_bytes = 1024;
// Entries per array in a snapshot. The decoder refuses arrays over limits::decode_elements_max,
// so the data and the sessions are written as arrays of chunks of this many entries (any state
// of up to 4096 * 65536 entries restores).
constexpr size_t snapshot_chunk_entries = 4096;
// Largest snapshot restore() accepts. The state has no byte bound of its own (keys are not
// counted), so this bounds what a hostile or corrupt snapshot can make us allocate.
constexpr size_t snapshot_bytes_max = size_t{1} << 30;
constexpr uint64_t snapshot_version = 1;
// Fields of a session in a snapshot: client_id, sequence, last_used_index, response.
constexpr uint32_t snapshot_session_fields = 4;
// Fields of a response (MSGPACK_DEFINE of kv::response).
constexpr uint32_t response_fields = 7;

using data_map = std::map<std::string, std::string>;

// ---- responses ----------------------------------------------------------------------------------

response answer(uint16_t status, std::string reason = {}) {
  response r;
  r.status = status;
  r.reason = std::move(reason);
  return r;
}

response found_answer(uint16_t status, bool found, std::string reason = {}) {
  response r = answer(status, std::move(reason));
  r.found = found;
  return r;
}

bool is_read(op operation) { return operation == op::get || operation == op::name_resolve; }

bool is_plain_write(op operation) {
  return operation == op::put || operation == op::del || operation == op::cas;
}

bool starts_with_name_prefix(std::string_view key) {
  return key.substr(0, name_key_prefix.size()) == name_key_prefix;
}

// ---- names --------------------------------------------------------------------------------------

bool is_label_character(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = lower(c);
  return out;
}

std::string describe_character(char c) {
  const auto code = static_cast<unsigned>(static_cast<uint8_t>(c));
  if (code >= 0x21 && code < 0x7f) return std::string("character '") + c + "'";
  static const char digits[] = "0123456789abcdef";
  return std::string("byte 0x") + digits[code >> 4] + digits[code & 15];
}

std::string bad_name(size_t position, const std::string& what) {
  return "bad name at position " + std::to_string(position) + ": " + what;
}

// The data key of a (valid) name.
std::string name_key(std::string_view name) {
  return std::string(name_key_prefix) + lowercase(name);
}

std::string owner_text(const bytes& owner) {
  assert(owner.size() == 32);
  return did_from_node_id(node_id::from_bytes(owner.data()));
}

// Decodes and checks a stored name record.
result<name_record> decode_record(const std::string& value) {
  auto record = unpack_value<name_record>(reinterpret_cast<const uint8_t*>(value.data()),
                                          value.size());
  if (!record) return record.err();
  if (record->owner.size() != 32)
    return error{errc::malformed, "name record owner is " + std::to_string(record->owner.size()) +
                                      " bytes, expected 32"};
  if (record->target.empty() || record->target.size() > name_target_bytes_max)
    return error{errc::malformed, "name record target of " +
                                      std::to_string(record->target.size()) + " bytes"};
  return record;
}

result<std::string> encode_record(const name_record& record) {
  auto packed = pack_value(record);
  if (!packed) return packed.err();
  return std::string(packed->begin(), packed->end());
}

response corrupt_record(const error& e) {
  return answer(500, "corrupt name record: " + e.describe());
}

bool is_node_key(const bytes& key) { return key.size() == 32; }

// ---- hashing ------------------------------------------------------------------------------------

uint64_t fnv1a(uint64_t hash, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= p[i];
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

// MurmurHash3's 64-bit finalizer: spreads FNV's weak high bits before the hashes are summed.
uint64_t mix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

// The key's length comes first (little-endian, whatever the platform) so ("ab", "c") and
// ("a", "bc") hash differently.
uint64_t entry_hash(const std::string& key, const std::string& value) {
  uint8_t length[8];
  uint64_t n = key.size();
  for (auto& b : length) {
    b = static_cast<uint8_t>(n);
    n >>= 8;
  }
  uint64_t hash = 0xcbf29ce484222325ULL;
  hash = fnv1a(hash, length, sizeof length);
  hash = fnv1a(hash, key.data(), key.size());
  hash = fnv1a(hash, value.data(), value.size());
  return mix64(hash);
}

// ---- snapshot decoding --------------------------------------------------------------------------

// The array in `object`, or null if it is not one (of `size` elements when size is given).
const msgpack::object_array* as_array(const msgpack::object& object, int64_t size = -1) {
  if (object.type != msgpack::type::ARRAY) return nullptr;
  if (size >= 0 && object.via.array.size != static_cast<uint64_t>(size)) return nullptr;
  return &object.via.array;
}

error malformed(const std::string& what) { return error{errc::malformed, "snapshot: " + what}; }

}  // namespace

// ---- free functions -----------------------------------------------------------------------------

status validate_limits(const limits_config& limits) {
  if (limits.key_bytes_max == 0)
    return error{errc::invalid_argument, "key_bytes_max must be at least 1"};
  if (limits.value_bytes_max < 32)
    return error{errc::invalid_argument,
                 "value_bytes_max must be at least 32 (a name transfer carries a 32-byte key)"};
  if (limits.key_bytes_max > limits::envelope_bytes_max ||
      limits.value_bytes_max > limits::envelope_bytes_max ||
      limits.key_bytes_max + 2 * limits.value_bytes_max + command_overhead_bytes >
          limits::envelope_bytes_max)
    return error{errc::invalid_argument,
                 "key_bytes_max + 2 * value_bytes_max must leave a command room in one envelope (" +
                     std::to_string(limits::envelope_bytes_max) + " bytes)"};
  return ok_status();
}

std::string check_name(std::string_view name) {
  if (name.empty()) return bad_name(0, "empty name");
  size_t label_start = 0;
  size_t labels = 0;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (i == name_chars_max)
      return bad_name(i, "longer than " + std::to_string(name_chars_max) + " characters");
    if (c == '.') {
      if (i == label_start) return bad_name(i, "empty label");
      if (name[i - 1] == '-') return bad_name(i - 1, "label ends with '-'");
      ++labels;
      label_start = i + 1;
      continue;
    }
    if (!is_label_character(c))
      return bad_name(i, describe_character(c) + " is not allowed (letters, digits, '-', '.')");
    if (c == '-' && i == label_start) return bad_name(i, "label starts with '-'");
    if (i - label_start == name_label_chars_max)
      return bad_name(i, "label longer than " + std::to_string(name_label_chars_max) +
                             " characters");
  }
  if (label_start == name.size()) return bad_name(name.size() - 1, "name ends with '.'");
  if (name.back() == '-') return bad_name(name.size() - 1, "label ends with '-'");
  if (labels == 0) return bad_name(name.size(), "a name ends with \".mcom\"");
  if (lowercase(name.substr(label_start)) != "mcom")
    return bad_name(label_start, "last label must be \"mcom\"");
  return {};
}

// ---- machine ------------------------------------------------------------------------------------

machine::machine(limits_config limits) : limits_(limits) {
  assert(validate_limits(limits_).ok());
}

response machine::validate(const request& req, const limits_config& limits) {
  if (req.operation < static_cast<uint8_t>(op::get) ||
      req.operation > static_cast<uint8_t>(op::name_release))
    return answer(400, "unknown operation " + std::to_string(req.operation));
  const auto operation = static_cast<op>(req.operation);
  if (req.key.empty()) return answer(400, "empty key");
  if (req.key.size() > limits.key_bytes_max)
    return answer(413, "key of " + std::to_string(req.key.size()) + " bytes exceeds " +
                           std::to_string(limits.key_bytes_max));
  if (req.value.size() > limits.value_bytes_max)
    return answer(413, "value of " + std::to_string(req.value.size()) + " bytes exceeds " +
                           std::to_string(limits.value_bytes_max));
  if (req.expected.size() > limits.value_bytes_max)
    return answer(413, "expected value of " + std::to_string(req.expected.size()) +
                           " bytes exceeds " + std::to_string(limits.value_bytes_max));
  if (is_plain_write(operation)) {
    if (starts_with_name_prefix(req.key))
      return answer(400, "keys under \"name/\" belong to the registrar: use the name operations");
    return answer(0);
  }
  if (operation == op::get) return answer(0);
  if (auto reason = check_name(req.key); !reason.empty()) return answer(400, std::move(reason));
  if (operation == op::name_register) {
    if (req.value.empty()) return answer(400, "empty name target");
    if (req.value.size() > name_target_bytes_max)
      return answer(413, "name target of " + std::to_string(req.value.size()) +
                             " bytes exceeds " + std::to_string(name_target_bytes_max));
  }
  if (operation == op::name_transfer && req.value.size() != 32)
    return answer(400, "the new owner must be a 32-byte node key, got " +
                           std::to_string(req.value.size()) + " bytes");
  return answer(0);
}

response machine::apply(uint64_t index, const command& cmd) {
  assert(index > applied_index_);
  applied_index_ = index;
  response invalid = validate(cmd.req, limits_);
  if (invalid.status != 0) {
    invalid.index = index;
    return invalid;
  }
  if (is_read(static_cast<op>(cmd.req.operation))) {
    response r = read(cmd.req);
    r.index = index;
    return r;
  }
  const bool exactly_once = cmd.req.client_id != 0 && cmd.req.sequence != 0;
  if (exactly_once) {
    auto it = sessions_.find(cmd.req.client_id);
    if (it != sessions_.end()) {
      touch(it, index);
      if (cmd.req.sequence == it->second.sequence) return it->second.last;
      if (cmd.req.sequence < it->second.sequence) {
        response r = answer(400, "stale sequence " + std::to_string(cmd.req.sequence) +
                                     ": client " + std::to_string(cmd.req.client_id) +
                                     " already applied sequence " +
                                     std::to_string(it->second.sequence));
        r.index = index;
        return r;
      }
    }
  }
  response r = execute(cmd);
  r.index = index;
  if (exactly_once) remember(cmd.req.client_id, cmd.req.sequence, index, r);
  return r;
}

response machine::execute(const command& cmd) {
  switch (static_cast<op>(cmd.req.operation)) {
    case op::put: return put(cmd.req);
    case op::del: return del(cmd.req);
    case op::cas: return cas(cmd.req);
    case op::name_register: return name_register(cmd.req, cmd.caller);
    case op::name_transfer: return name_transfer(cmd.req, cmd.caller);
    case op::name_release: return name_release(cmd.req, cmd.caller);
    case op::get:
    case op::name_resolve: break;
  }
  assert(false && "validated reads and unknown operations never reach execute");
  return answer(500, "unexpected operation");
}

response machine::read(const request& req) const {
  response invalid = validate(req, limits_);
  if (invalid.status != 0) return invalid;
  const auto operation = static_cast<op>(req.operation);
  if (operation == op::get) {
    auto it = data_.find(req.key);
    if (it == data_.end()) return found_answer(404, false, "no such key");
    response r = found_answer(200, true);
    r.value = it->second;
    return r;
  }
  if (operation == op::name_resolve) {
    auto it = data_.find(name_key(req.key));
    if (it == data_.end()) return found_answer(404, false, "no such name");
    auto record = decode_record(it->second);
    if (!record) return corrupt_record(record.err());
    response r = found_answer(200, true);
    r.value = std::move(record->target);
    return r;
  }
  return answer(400, "operation " + std::to_string(req.operation) + " is not a read");
}

// ---- plain writes -------------------------------------------------------------------------------

response machine::put(const request& req) {
  const bool existed = data_.find(req.key) != data_.end();
  set_value(req.key, req.value);
  return found_answer(200, existed);
}

response machine::del(const request& req) {
  auto it = data_.find(req.key);
  if (it == data_.end()) return found_answer(200, false);
  erase_value(it);
  return found_answer(200, true);
}

response machine::cas(const request& req) {
  auto it = data_.find(req.key);
  const bool present = it != data_.end();
  if (req.expect_present && !present)
    return found_answer(409, false, "compare-and-swap failed: the key is absent");
  if (req.expect_present && it->second != req.expected) {
    response r = found_answer(409, true, "compare-and-swap failed: the key holds another value");
    r.value = it->second;
    return r;
  }
  if (!req.expect_present && present) {
    response r = found_answer(409, true, "compare-and-swap failed: the key is present");
    r.value = it->second;
    return r;
  }
  set_value(req.key, req.value);
  return found_answer(200, present);
}

// ---- registrar ----------------------------------------------------------------------------------

response machine::name_register(const request& req, const bytes& caller) {
  if (!is_node_key(caller)) return answer(400, "the caller is not a 32-byte node key");
  const std::string key = name_key(req.key);
  auto it = data_.find(key);
  if (it != data_.end()) {
    auto record = decode_record(it->second);
    if (!record) return corrupt_record(record.err());
    return found_answer(409, true, "name taken (owner " + owner_text(record->owner) + ")");
  }
  auto encoded = encode_record(name_record{caller, req.value});
  if (!encoded) return answer(500, "cannot encode name record: " + encoded.err().describe());
  set_value(key, std::move(*encoded));
  return found_answer(201, false);
}

response machine::name_transfer(const request& req, const bytes& caller) {
  if (!is_node_key(caller)) return answer(400, "the caller is not a 32-byte node key");
  const std::string key = name_key(req.key);
  auto it = data_.find(key);
  if (it == data_.end()) return found_answer(404, false, "no such name");
  auto record = decode_record(it->second);
  if (!record) return corrupt_record(record.err());
  if (record->owner != caller) return found_answer(403, true, "not the owner of the name");
  record->owner.assign(req.value.begin(), req.value.end());
  auto encoded = encode_record(*record);
  if (!encoded) return answer(500, "cannot encode name record: " + encoded.err().describe());
  set_value(key, std::move(*encoded));
  return found_answer(200, true);
}

response machine::name_release(const request& req, const bytes& caller) {
  if (!is_node_key(caller)) return answer(400, "the caller is not a 32-byte node key");
  auto it = data_.find(name_key(req.key));
  if (it == data_.end()) return found_answer(404, false, "no such name");
  auto record = decode_record(it->second);
  if (!record) return corrupt_record(record.err());
  if (record->owner != caller) return found_answer(403, true, "not the owner of the name");
  erase_value(it);
  return found_answer(200, true);
}

// ---- data and sessions --------------------------------------------------------------------------

void machine::set_value(const std::string& key, std::string value) {
  auto [it, inserted] = data_.try_emplace(key);
  if (!inserted) data_hash_ -= entry_hash(it->first, it->second);
  it->second = std::move(value);
  data_hash_ += entry_hash(it->first, it->second);
}

void machine::erase_value(data_map::iterator it) {
  data_hash_ -= entry_hash(it->first, it->second);
  data_.erase(it);
}

void machine::touch(std::map<uint64_t, session>::iterator it, uint64_t index) {
  sessions_by_use_.erase(it->second.last_used_index);
  it->second.last_used_index = index;
  sessions_by_use_.emplace(index, it->first);
}

void machine::remember(uint64_t client_id, uint64_t sequence, uint64_t index,
                       const response& last) {
  auto it = sessions_.find(client_id);
  if (it == sessions_.end()) {
    if (limits_.sessions_max == 0) return;
    while (sessions_.size() >= limits_.sessions_max) evict_oldest_session();
    it = sessions_.emplace(client_id, session{}).first;
    it->second.last_used_index = index;
    sessions_by_use_.emplace(index, client_id);
  }
  it->second.sequence = sequence;
  it->second.last = last;
  assert(sessions_.size() == sessions_by_use_.size());
}

void machine::evict_oldest_session() {
  assert(!sessions_by_use_.empty());
  auto oldest = sessions_by_use_.begin();
  sessions_.erase(oldest->second);
  sessions_by_use_.erase(oldest);
}

// ---- snapshots ----------------------------------------------------------------------------------
// Wire form (snapshot_version 1), a msgpack array of 4:
//   [version, applied_index,
//    data:     [[[key, value], ... up to snapshot_chunk_entries], ...]   keys strictly increasing
//    sessions: [[[client_id, sequence, last_used_index, response], ...], ...]  by client_id]

bytes machine::snapshot() const {
  try {
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> packer(buffer);
    packer.pack_array(4);
    packer.pack(snapshot_version);
    packer.pack(applied_index_);
    auto chunk_count = [](size_t n) {
      return static_cast<uint32_t>((n + snapshot_chunk_entries - 1) / snapshot_chunk_entries);
    };
    packer.pack_array(chunk_count(data_.size()));
    size_t written = 0;
    for (const auto& [key, value] : data_) {
      if (written % snapshot_chunk_entries == 0)
        packer.pack_array(static_cast<uint32_t>(
            std::min(snapshot_chunk_entries, data_.size() - written)));
      packer.pack_array(2);
      packer.pack(key);
      packer.pack(value);
      ++written;
    }
    packer.pack_array(chunk_count(sessions_.size()));
    written = 0;
    for (const auto& [client_id, s] : sessions_) {
      if (written % snapshot_chunk_entries == 0)
        packer.pack_array(static_cast<uint32_t>(
            std::min(snapshot_chunk_entries, sessions_.size() - written)));
      packer.pack_array(snapshot_session_fields);
      packer.pack(client_id);
      packer.pack(s.sequence);
      packer.pack(s.last_used_index);
      packer.pack(s.last);
      ++written;
    }
    return codec_detail::to_bytes(buffer);
  } catch (const std::exception& e) {
    // Only allocation can fail here. Without a snapshot the replica could hand Raft an empty
    // state and lose data, so stop instead (TigerBeetle: crash rather than continue wrong).
    std::fprintf(stderr, "kv::machine::snapshot: %s\n", e.what());
    std::abort();
  }
}

status machine::restore(const bytes& data) {
  auto handle = codec_detail::unpack_object(data.data(), data.size(), snapshot_bytes_max,
                                            "snapshot");
  if (!handle) return error{handle.err().code, "snapshot: " + handle.err().message};
  data_map new_data;
  uint64_t new_hash = 0;
  std::map<uint64_t, session> new_sessions;
  std::map<uint64_t, uint64_t> new_by_use;
  uint64_t new_applied = 0;
  try {
    const msgpack::object& root = handle->get();
    const auto* fields = as_array(root);
    if (!fields || fields->size == 0) return malformed("not an array");
    const uint64_t version = fields->ptr[0].as<uint64_t>();
    if (version != snapshot_version)
      return error{errc::unsupported_version,
                   "snapshot: unsupported version " + std::to_string(version)};
    if (fields->size != 4)
      return malformed(std::to_string(fields->size) + " fields, expected 4");
    new_applied = fields->ptr[1].as<uint64_t>();

    const auto* data_chunks = as_array(fields->ptr[2]);
    if (!data_chunks) return malformed("data is not an array");
    size_t entry_number = 0;
    for (uint32_t c = 0; c < data_chunks->size; ++c) {
      const auto* chunk = as_array(data_chunks->ptr[c]);
      if (!chunk) return malformed("data chunk " + std::to_string(c) + " is not an array");
      for (uint32_t e = 0; e < chunk->size; ++e, ++entry_number) {
        const std::string where = "entry " + std::to_string(entry_number);
        const auto* pair = as_array(chunk->ptr[e], 2);
        if (!pair) return malformed(where + " is not a [key, value] pair");
        auto key = pair->ptr[0].as<std::string>();
        auto value = pair->ptr[1].as<std::string>();
        if (key.empty()) return malformed(where + " has an empty key");
        if (!new_data.empty() && !(new_data.rbegin()->first < key))
          return malformed(where + ": keys are not in strictly increasing order");
        if (starts_with_name_prefix(key)) {
          std::string_view name = std::string_view(key).substr(name_key_prefix.size());
          if (!check_name(name).empty() || lowercase(name) != name)
            return malformed(where + " is under \"name/\" but is not a lowercase name");
          auto record = decode_record(value);
          if (!record) return malformed(where + ": " + record.err().describe());
        }
        new_hash += entry_hash(key, value);
        new_data.emplace_hint(new_data.end(), std::move(key), std::move(value));
      }
    }

    const auto* session_chunks = as_array(fields->ptr[3]);
    if (!session_chunks) return malformed("sessions is not an array");
    size_t session_number = 0;
    for (uint32_t c = 0; c < session_chunks->size; ++c) {
      const auto* chunk = as_array(session_chunks->ptr[c]);
      if (!chunk) return malformed("session chunk " + std::to_string(c) + " is not an array");
      for (uint32_t e = 0; e < chunk->size; ++e, ++session_number) {
        const std::string where = "session " + std::to_string(session_number);
        const auto* items = as_array(chunk->ptr[e], snapshot_session_fields);
        if (!items) return malformed(where + " does not have 4 fields");
        const uint64_t client_id = items->ptr[0].as<uint64_t>();
        session s;
        s.sequence = items->ptr[1].as<uint64_t>();
        s.last_used_index = items->ptr[2].as<uint64_t>();
        if (!as_array(items->ptr[3], response_fields))
          return malformed(where + ": the response does not have 7 fields");
        items->ptr[3].convert(s.last);
        if (client_id == 0 || s.sequence == 0)
          return malformed(where + " has client 0 or sequence 0");
        if (s.last_used_index == 0 || s.last_used_index > new_applied)
          return malformed(where + " was last used at index " +
                           std::to_string(s.last_used_index) + ", after the applied index");
        if (!new_sessions.empty() && !(new_sessions.rbegin()->first < client_id))
          return malformed(where + ": clients are not in strictly increasing order");
        if (!new_by_use.emplace(s.last_used_index, client_id).second)
          return malformed(where + " shares its last used index with another session");
        new_sessions.emplace_hint(new_sessions.end(), client_id, std::move(s));
      }
    }
  } catch (const std::bad_alloc&) {
    return error{errc::too_large, "snapshot: out of memory while restoring"};
  } catch (const std::exception& e) {
    return malformed(std::string("a field has the wrong type: ") + e.what());
  } catch (...) {
    return malformed("a field has the wrong type");
  }
  while (new_sessions.size() > limits_.sessions_max) {
    auto oldest = new_by_use.begin();
    new_sessions.erase(oldest->second);
    new_by_use.erase(oldest);
  }
  data_ = std::move(new_data);
  data_hash_ = new_hash;
  sessions_ = std::move(new_sessions);
  sessions_by_use_ = std::move(new_by_use);
  applied_index_ = new_applied;
  return ok_status();
}

}  // namespace cmesh::kv
