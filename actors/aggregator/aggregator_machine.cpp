#include "actors/aggregator/aggregator_machine.hpp"

#include <algorithm>
#include <cassert>
#include <string_view>

#include <msgpack.hpp>

namespace cmesh::aggregator {

namespace {

constexpr std::string_view registration_domain = "cmesh-aggregator-registration-v1";
constexpr std::string_view alive_domain = "cmesh-aggregator-alive-v1";
constexpr size_t key_bytes = 32;
constexpr size_t signature_bytes = 64;

using refusal = std::pair<status_code, std::string>;

int64_t to_ms(int64_t now_us) { return now_us / 1000; }

void pack_domain(msgpack::packer<msgpack::sbuffer>& packer, std::string_view domain) {
  packer.pack_str(static_cast<uint32_t>(domain.size()));
  packer.pack_str_body(domain.data(), static_cast<uint32_t>(domain.size()));
}

bytes buffer_bytes(const msgpack::sbuffer& buffer) {
  const auto* begin = reinterpret_cast<const uint8_t*>(buffer.data());
  return bytes(begin, begin + buffer.size());
}

bool verify(const bytes& key, const bytes& signed_bytes, const bytes& signature) {
  if (key.size() != key_bytes || signature.size() != signature_bytes) return false;
  return verify_signature(node_id::from_bytes(key.data()), signed_bytes.data(),
                          signed_bytes.size(), signature.data());
}

std::vector<std::string> sorted(std::vector<std::string> tags) {
  std::sort(tags.begin(), tags.end());
  return tags;
}

bool has_all(const std::vector<std::string>& sorted_tags, const std::vector<std::string>& wanted) {
  return std::all_of(wanted.begin(), wanted.end(), [&](const std::string& tag) {
    return std::binary_search(sorted_tags.begin(), sorted_tags.end(), tag);
  });
}

registration_reply reply_of(uint64_t request_id, status_code code, std::string reason,
                            int64_t expires_ms = 0) {
  return {request_id, static_cast<uint8_t>(code), std::move(reason),
          static_cast<uint64_t>(std::max<int64_t>(expires_ms, 0))};
}

}  // namespace

// ---- signatures ------------------------------------------------------------------------------

bytes registration_signing_bytes(const agent_registration& r) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_array(7);
  pack_domain(packer, registration_domain);
  packer.pack(r.agent);
  packer.pack(r.address);
  packer.pack(r.tags);
  packer.pack(r.ttl_s);
  packer.pack(r.sequence);
  packer.pack(r.signed_ms);
  return buffer_bytes(buffer);
}

bytes alive_signing_bytes(const i_am_alive& a) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_array(4);
  pack_domain(packer, alive_domain);
  packer.pack(a.agent);
  packer.pack(a.sequence);
  packer.pack(a.signed_ms);
  return buffer_bytes(buffer);
}

void sign_registration(agent_registration& r, const identity& agent) {
  r.agent.assign(agent.public_key.key.begin(), agent.public_key.key.end());
  auto signed_bytes = registration_signing_bytes(r);
  auto signature = agent.sign(signed_bytes.data(), signed_bytes.size());
  r.signature.assign(signature.begin(), signature.end());
}

void sign_alive(i_am_alive& a, const identity& agent) {
  a.agent.assign(agent.public_key.key.begin(), agent.public_key.key.end());
  auto signed_bytes = alive_signing_bytes(a);
  auto signature = agent.sign(signed_bytes.data(), signed_bytes.size());
  a.signature.assign(signature.begin(), signature.end());
}

bool verify_registration(const agent_registration& r) {
  return verify(r.agent, registration_signing_bytes(r), r.signature);
}

bool verify_alive(const i_am_alive& a) {
  return verify(a.agent, alive_signing_bytes(a), a.signature);
}

// ---- config and names ------------------------------------------------------------------------

const char* event_name(event_kind kind) {
  switch (kind) {
    case event_kind::registered: return "registered";
    case event_kind::refreshed: return "refreshed";
    case event_kind::expired: return "expired";
    case event_kind::refused: return "refused";
  }
  return "unknown";
}

status validate(const config& cfg) {
  auto bad = [](const char* field, const char* why) {
    return error{errc::invalid_argument, std::string("aggregator config: ") + field + " " + why};
  };
  if (cfg.tick_ms == 0) return bad("tick_ms", "must be positive");
  if (cfg.ttl_s_min == 0 || cfg.ttl_s_min > cfg.ttl_s_max)
    return bad("ttl_s_min", "must be in 1 .. ttl_s_max");
  if (cfg.agents_max == 0) return bad("agents_max", "must be positive");
  if (cfg.agents_per_tag_max == 0) return bad("agents_per_tag_max", "must be positive");
  if (cfg.tags_per_agent_max == 0) return bad("tags_per_agent_max", "must be positive");
  if (cfg.tag_chars_max == 0) return bad("tag_chars_max", "must be positive");
  if (cfg.lookup_tags_max == 0) return bad("lookup_tags_max", "must be positive");
  if (cfg.lookup_results_max == 0) return bad("lookup_results_max", "must be positive");
  return {};
}

// ---- the aggregator --------------------------------------------------------------------------

machine::machine(config cfg, uint64_t rng_seed) : config_(cfg), rng_(rng_seed) {
  assert(validate(config_).ok());
}

void machine::on_message(int64_t now_us, const node_id& from, const request_message& message,
                         effects& out) {
  const int64_t now_ms = to_ms(now_us);
  if (auto* m = std::get_if<register_agent>(&message)) {
    out.sends.push_back({from, handle_register(now_ms, *m, out)});
  } else if (auto* m = std::get_if<i_am_alive>(&message)) {
    out.sends.push_back({from, handle_alive(now_ms, *m, out)});
  } else if (auto* m = std::get_if<lookup_agents>(&message)) {
    out.sends.push_back({from, handle_lookup(now_ms, *m)});
  }
}

std::optional<refusal> machine::check_tags(const std::vector<std::string>& tags,
                                           size_t tags_max) const {
  if (tags.empty()) return refusal{status_code::malformed, "no tags"};
  if (tags.size() > tags_max)
    return refusal{status_code::too_large,
                   std::to_string(tags.size()) + " tags exceed " + std::to_string(tags_max)};
  for (const auto& tag : tags) {
    if (tag.empty()) return refusal{status_code::malformed, "empty tag"};
    if (tag.size() > config_.tag_chars_max)
      return refusal{status_code::too_large,
                     "tag of " + std::to_string(tag.size()) + " chars exceeds " +
                         std::to_string(config_.tag_chars_max)};
  }
  auto ordered = sorted(tags);
  if (std::adjacent_find(ordered.begin(), ordered.end()) != ordered.end())
    return refusal{status_code::malformed, "duplicate tag"};
  return std::nullopt;
}

std::optional<refusal> machine::check_signed_time(int64_t now_ms, uint64_t signed_ms) const {
  auto signed_at = static_cast<int64_t>(std::min<uint64_t>(signed_ms, INT64_MAX / 2));
  if (signed_at > now_ms + config_.clock_skew_ms_max)
    return refusal{status_code::malformed, "signed in the future beyond clock_skew_ms_max"};
  if (signed_at + config_.signed_within_ms < now_ms)
    return refusal{status_code::stale, "signed " + std::to_string(now_ms - signed_at) +
                                           " ms ago, more than signed_within_ms"};
  return std::nullopt;
}

registration_reply machine::handle_register(int64_t now_ms, const register_agent& m,
                                            effects& out) {
  const auto& r = m.registration;
  auto refuse = [&](status_code code, std::string reason) {
    node_id agent = r.agent.size() == key_bytes ? node_id::from_bytes(r.agent.data()) : node_id{};
    out.events.push_back({event_kind::refused, agent, code, reason});
    return reply_of(m.request_id, code, std::move(reason));
  };
  if (r.agent.size() != key_bytes || r.signature.size() != signature_bytes)
    return refuse(status_code::malformed, "agent key or signature has the wrong size");
  if (auto bad = check_tags(r.tags, config_.tags_per_agent_max))
    return refuse(bad->first, std::move(bad->second));
  if (r.address.empty()) return refuse(status_code::malformed, "empty address");
  if (r.address.size() > config_.address_chars_max)
    return refuse(status_code::too_large, "address exceeds address_chars_max");
  if (r.ttl_s < config_.ttl_s_min || r.ttl_s > config_.ttl_s_max)
    return refuse(status_code::malformed, "ttl_s " + std::to_string(r.ttl_s) + " not in " +
                                              std::to_string(config_.ttl_s_min) + " .. " +
                                              std::to_string(config_.ttl_s_max));
  if (!verify_registration(r))
    return refuse(status_code::bad_signature, "registration is not signed by its agent key");
  if (auto bad = check_signed_time(now_ms, r.signed_ms))
    return refuse(bad->first, std::move(bad->second));

  node_id agent = node_id::from_bytes(r.agent.data());
  auto existing = entries_.find(agent);
  if (existing != entries_.end() && r.sequence <= existing->second.last_sequence)
    return refuse(status_code::stale, "sequence " + std::to_string(r.sequence) +
                                          " is not newer than " +
                                          std::to_string(existing->second.last_sequence));
  if (existing == entries_.end() && entries_.size() >= config_.agents_max)
    return refuse(status_code::full, "directory holds agents_max agents");
  auto tags = sorted(r.tags);
  for (const auto& tag : tags) {
    auto list = by_tag_.find(tag);
    bool already = existing != entries_.end() &&
                   std::binary_search(existing->second.tags.begin(),
                                      existing->second.tags.end(), tag);
    if (!already && list != by_tag_.end() && list->second.size() >= config_.agents_per_tag_max)
      return refuse(status_code::full, "tag '" + tag + "' lists agents_per_tag_max agents");
  }

  bool fresh = existing == entries_.end();
  if (!fresh) unlist(agent, existing->second);
  entry& e = entries_[agent];
  e.registration = r;
  e.tags = std::move(tags);
  e.last_sequence = r.sequence;
  for (const auto& tag : e.tags) by_tag_[tag].insert(agent);
  set_expiry(agent, e, now_ms + int64_t{r.ttl_s} * 1000);
  out.events.push_back({fresh ? event_kind::registered : event_kind::refreshed, agent,
                        status_code::ok, r.address});
  return reply_of(m.request_id, status_code::ok, {}, e.expires_ms);
}

registration_reply machine::handle_alive(int64_t now_ms, const i_am_alive& m, effects& out) {
  auto refuse = [&](status_code code, std::string reason) {
    node_id agent = m.agent.size() == key_bytes ? node_id::from_bytes(m.agent.data()) : node_id{};
    out.events.push_back({event_kind::refused, agent, code, reason});
    return reply_of(m.request_id, code, std::move(reason));
  };
  if (m.agent.size() != key_bytes || m.signature.size() != signature_bytes)
    return refuse(status_code::malformed, "agent key or signature has the wrong size");
  if (!verify_alive(m))
    return refuse(status_code::bad_signature, "imAlive is not signed by its agent");
  if (auto bad = check_signed_time(now_ms, m.signed_ms))
    return refuse(bad->first, std::move(bad->second));
  node_id agent = node_id::from_bytes(m.agent.data());
  auto it = entries_.find(agent);
  if (it == entries_.end() || it->second.expires_ms <= now_ms)
    return refuse(status_code::unknown_agent, "no live registration: register again");
  if (m.sequence <= it->second.last_sequence)
    return refuse(status_code::stale, "sequence " + std::to_string(m.sequence) +
                                          " is not newer than " +
                                          std::to_string(it->second.last_sequence));
  it->second.last_sequence = m.sequence;
  set_expiry(agent, it->second, now_ms + int64_t{it->second.registration.ttl_s} * 1000);
  out.events.push_back({event_kind::refreshed, agent, status_code::ok, {}});
  return reply_of(m.request_id, status_code::ok, {}, it->second.expires_ms);
}

lookup_reply machine::handle_lookup(int64_t now_ms, const lookup_agents& m) {
  lookup_reply reply;
  reply.request_id = m.request_id;
  if (auto bad = check_tags(m.tags, config_.lookup_tags_max)) {
    reply.status = static_cast<uint8_t>(bad->first);
    reply.reason = std::move(bad->second);
    return reply;
  }
  // Walk the shortest of the requested tag lists; each candidate must carry every tag.
  const std::set<node_id>* shortest = nullptr;
  for (const auto& tag : m.tags) {
    auto list = by_tag_.find(tag);
    if (list == by_tag_.end()) return reply;  // some tag has no agent: nothing matches
    if (!shortest || list->second.size() < shortest->size()) shortest = &list->second;
  }
  std::vector<const entry*> matches;
  for (const auto& agent : *shortest) {
    const auto& e = entries_.at(agent);
    if (e.expires_ms > now_ms && has_all(e.tags, m.tags)) matches.push_back(&e);
  }
  size_t limit = m.limit == 0 ? config_.lookup_results_max
                              : std::min<size_t>(m.limit, config_.lookup_results_max);
  size_t picks = std::min(limit, matches.size());
  // A seeded partial shuffle: when more match than fit, every match has the same chance, so no
  // agent is starved of lookups by its key order.
  for (size_t i = 0; i < picks; ++i) {
    size_t j = i + rng_.below(matches.size() - i);
    std::swap(matches[i], matches[j]);
    reply.agents.push_back(matches[i]->registration);
  }
  return reply;
}

void machine::tick(int64_t now_us, effects& out) {
  const int64_t now_ms = to_ms(now_us);
  while (!by_expiry_.empty() && by_expiry_.begin()->first <= now_ms) {
    node_id agent = by_expiry_.begin()->second;
    by_expiry_.erase(by_expiry_.begin());
    auto it = entries_.find(agent);
    assert(it != entries_.end());
    for (const auto& tag : it->second.tags) {
      auto list = by_tag_.find(tag);
      list->second.erase(agent);
      if (list->second.empty()) by_tag_.erase(list);
    }
    entries_.erase(it);
    out.events.push_back({event_kind::expired, agent, status_code::ok, {}});
  }
}

size_t machine::agents_with_tag(const std::string& tag) const {
  auto list = by_tag_.find(tag);
  return list == by_tag_.end() ? 0 : list->second.size();
}

// Removes `agent` from the tag lists of its current entry (before the entry is replaced).
void machine::unlist(const node_id& agent, const entry& e) {
  for (const auto& tag : e.tags) {
    auto list = by_tag_.find(tag);
    if (list == by_tag_.end()) continue;
    list->second.erase(agent);
    if (list->second.empty()) by_tag_.erase(list);
  }
}

void machine::set_expiry(const node_id& agent, entry& e, int64_t expires_ms) {
  if (e.expires_ms != 0) by_expiry_.erase({e.expires_ms, agent});
  e.expires_ms = expires_ms;
  by_expiry_.insert({expires_ms, agent});
}

// ---- the agent side --------------------------------------------------------------------------

client::client(identity self, std::string address, std::vector<std::string> tags,
               node_id aggregator, client_config cfg)
    : self_(self), address_(std::move(address)), tags_(std::move(tags)), aggregator_(aggregator),
      config_(cfg) {
  assert(config_.refresh_divisor >= 1 && config_.ttl_s >= 1);
}

void client::start(int64_t now_us, client_effects& out) { send_registration(now_us, out); }

// Strictly increasing, and at least the clock in ms: a restarted client (sequence_ back to 0)
// still beats every sequence it used before, as long as its clock moved forward.
uint64_t client::next_sequence(int64_t now_us) {
  sequence_ = std::max<uint64_t>(sequence_ + 1, static_cast<uint64_t>(now_us / 1000));
  return sequence_;
}

void client::send_registration(int64_t now_us, client_effects& out) {
  register_agent m;
  m.request_id = next_request_id_++;
  m.registration.address = address_;
  m.registration.tags = tags_;
  m.registration.ttl_s = config_.ttl_s;
  m.registration.sequence = next_sequence(now_us);
  m.registration.signed_ms = static_cast<uint64_t>(now_us / 1000);
  sign_registration(m.registration, self_);
  pending_ = {m.request_id, now_us};
  out.sends.push_back({aggregator_, std::move(m)});
}

void client::send_alive(int64_t now_us, client_effects& out) {
  i_am_alive m;
  m.request_id = next_request_id_++;
  m.sequence = next_sequence(now_us);
  m.signed_ms = static_cast<uint64_t>(now_us / 1000);
  sign_alive(m, self_);
  pending_ = {m.request_id, now_us};
  out.sends.push_back({aggregator_, std::move(m)});
}

void client::tick(int64_t now_us, client_effects& out) {
  const int64_t timeout_us = int64_t{config_.reply_timeout_ms} * 1000;
  if (registered_ && to_ms(now_us) >= expires_ms_) registered_ = false;  // lapsed unrefreshed
  if (pending_.request_id != 0 && now_us - pending_.sent_us >= timeout_us) pending_ = {};
  if (pending_.request_id == 0 && now_us >= next_refresh_us_) {
    if (registered_)
      send_alive(now_us, out);
    else
      send_registration(now_us, out);
  }
  for (auto it = lookups_.begin(); it != lookups_.end();) {
    if (now_us - it->second.sent_us < timeout_us) {
      ++it;
      continue;
    }
    lookup_result timed_out;
    timed_out.request_id = it->first;
    timed_out.timed_out = true;
    out.lookups.push_back(std::move(timed_out));
    it = lookups_.erase(it);
  }
}

result<uint64_t> client::lookup(int64_t now_us, std::vector<std::string> tags, uint32_t limit,
                                client_effects& out) {
  if (lookups_.size() >= config_.lookups_pending_max)
    return error{errc::unavailable, "lookups_pending_max lookups already pending"};
  lookup_agents m;
  m.request_id = next_request_id_++;
  m.tags = tags;
  m.limit = limit;
  lookups_[m.request_id] = {std::move(tags), now_us};
  uint64_t id = m.request_id;
  out.sends.push_back({aggregator_, std::move(m)});
  return id;
}

void client::on_message(int64_t now_us, const node_id& from, const reply_message& message,
                        client_effects& out) {
  if (from != aggregator_) return;  // only our aggregator answers us
  if (auto* reply = std::get_if<registration_reply>(&message))
    on_registration_reply(now_us, *reply, out);
  else if (auto* reply = std::get_if<lookup_reply>(&message))
    on_lookup_reply(*reply, out);
}

void client::on_registration_reply(int64_t now_us, const registration_reply& reply,
                                   client_effects& out) {
  if (reply.request_id == 0 || reply.request_id != pending_.request_id) return;  // late
  pending_ = {};
  auto code = static_cast<status_code>(reply.status);
  const int64_t refresh_us = int64_t{config_.ttl_s} * 1'000'000 / config_.refresh_divisor;
  if (code == status_code::ok) {
    bool was = registered_;
    registered_ = true;
    expires_ms_ = static_cast<int64_t>(reply.expires_ms);
    next_refresh_us_ = now_us + refresh_us;
    out.events.push_back({was ? event_kind::refreshed : event_kind::registered,
                          self_.public_key, code, {}});
    return;
  }
  out.events.push_back({event_kind::refused, self_.public_key, code, reply.reason});
  registered_ = false;
  // The aggregator forgot us (restart, or we were late): register again at once. Anything else
  // will not get better by repeating it at once: try again at the next refresh time.
  if (code == status_code::unknown_agent || code == status_code::stale)
    send_registration(now_us, out);
  else
    next_refresh_us_ = now_us + refresh_us;
}

void client::on_lookup_reply(const lookup_reply& reply, client_effects& out) {
  auto it = lookups_.find(reply.request_id);
  if (it == lookups_.end()) return;  // late or unknown
  lookup_result result;
  result.request_id = reply.request_id;
  result.code = static_cast<status_code>(reply.status);
  result.reason = reply.reason;
  auto wanted = it->second.tags;
  for (const auto& agent : reply.agents) {
    if (verify_registration(agent) && has_all(sorted(agent.tags), wanted))
      result.agents.push_back(agent);
    else
      ++result.discarded;
  }
  lookups_.erase(it);
  out.lookups.push_back(std::move(result));
}

}  // namespace cmesh::aggregator
