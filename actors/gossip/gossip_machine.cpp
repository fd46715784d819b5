#include "actors/gossip/gossip_machine.hpp"

#include <algorithm>
#include <limits>
#include <cassert>
#include <optional>

#include "runtime/core/limits.hpp"

namespace cmesh::gossip {

namespace {

// Bytes a cache row costs: the key, the address and the tags (seed 003: "each cache row holds
// only public key, address and tags").
size_t tags_bytes(const search_tags& t) {
  return t.category.size() + t.subcategory.size() + t.name.size() + t.location.size() +
         t.adjective.size();
}
size_t row_bytes(const match& m) { return 32 + m.address.size() + tags_bytes(m.tags); }
// Bytes of a (origin, search id) key: used by the seen-search and pending-offer caches.
constexpr size_t search_key_bytes = 40;

std::optional<node_id> key_of(const bytes& key) {
  if (key.size() != 32) return std::nullopt;
  return node_id::from_bytes(key.data());
}

bool address_ok(const std::string& address) {
  return !address.empty() && address.size() <= limits::address_chars_max;
}

bool contains_key(const std::vector<match>& rows, const node_id& key) {
  return std::any_of(rows.begin(), rows.end(), [&](const match& m) { return m.key == key; });
}

void lower_and_trim(std::string& text) {
  for (auto& c : text)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  size_t first = text.find_first_not_of(' ');
  if (first == std::string::npos) {
    text.clear();
    return;
  }
  size_t last = text.find_last_not_of(' ');
  text = text.substr(first, last - first + 1);
}

template <class T>
result<wire_message> decode_as(const envelope& env) {
  auto decoded = decode_payload<T>(env);
  if (!decoded) return decoded.err();
  return wire_message{std::move(decoded).value()};
}

}  // namespace

result<search_tags> parse_tag_assignments(const std::vector<std::string>& items) {
  search_tags tags;
  std::vector<std::string> seen;
  for (const auto& item : items) {
    auto eq = item.find('=');
    if (eq == std::string::npos)
      return error{errc::invalid_argument,
                   "'" + item + "' is not KEY=VALUE (keys: category, subcategory, name, location, adjective)"};
    std::string key = item.substr(0, eq);
    std::string* field = key == "category"      ? &tags.category
                         : key == "subcategory" ? &tags.subcategory
                         : key == "name"        ? &tags.name
                         : key == "location"    ? &tags.location
                         : key == "adjective"   ? &tags.adjective
                                                : nullptr;
    if (field == nullptr)
      return error{errc::invalid_argument,
                   "unknown tag '" + key + "' (keys: category, subcategory, name, location, adjective)"};
    if (std::find(seen.begin(), seen.end(), key) != seen.end())
      return error{errc::invalid_argument, "tag '" + key + "' given twice"};
    seen.push_back(key);
    *field = item.substr(eq + 1);
  }
  return tags;
}

namespace {

// Calls f(key, value) for every non-empty tag, in the order of search_tags.
template <class F>
void for_each_tag(const search_tags& tags, F f) {
  const std::pair<const char*, const std::string*> fields[] = {
      {"category", &tags.category}, {"subcategory", &tags.subcategory}, {"name", &tags.name},
      {"location", &tags.location}, {"adjective", &tags.adjective}};
  for (const auto& [key, value] : fields)
    if (!value->empty()) f(key, *value);
}

}  // namespace

std::string format_tags(const search_tags& tags, char separator) {
  std::string out;
  for_each_tag(tags, [&](const char* key, const std::string& value) {
    if (!out.empty()) out += separator;
    out += key;
    out += '=';
    out += value;
  });
  return out;
}

std::vector<std::string> directory_tags(const search_tags& tags) {
  std::vector<std::string> out;
  for_each_tag(normalize(tags), [&](const char* key, const std::string& value) {
    out.push_back(std::string(key) + ':' + value);
  });
  return out;
}

agent_record record_of(const match& m) {
  return {bytes(m.key.key.begin(), m.key.key.end()), m.address, m.tags};
}

// ---- free functions --------------------------------------------------------------------------

status validate(const config& cfg) {
  auto positive = [](size_t v) { return v > 0; };
  const std::pair<const char*, bool> checks[] = {
      {"request_cache_entries_max", positive(cfg.request_cache_entries_max)},
      {"request_cache_bytes_max", positive(cfg.request_cache_bytes_max)},
      {"gossip_cache_entries_max", positive(cfg.gossip_cache_entries_max)},
      {"gossip_cache_bytes_max", positive(cfg.gossip_cache_bytes_max)},
      {"responses_per_request_max", positive(cfg.responses_per_request_max)},
      {"requesters_per_tags_max", positive(cfg.requesters_per_tags_max)},
      {"seen_searches_max", positive(cfg.seen_searches_max)},
      {"pending_offers_max", positive(cfg.pending_offers_max)},
      {"active_searches_max", positive(cfg.active_searches_max)},
      {"contacts_max", positive(cfg.contacts_max)},
      {"hops_max", cfg.hops_max >= 1},
      {"forward_fanout", positive(cfg.forward_fanout)},
      {"forward_accepts_per_search_max", positive(cfg.forward_accepts_per_search_max)},
      {"referrals_per_search_max", positive(cfg.referrals_per_search_max)},
      {"matches_wanted", positive(cfg.matches_wanted)},
      {"search_timeout_us", cfg.search_timeout_us > 0},
      {"offer_timeout_us", cfg.offer_timeout_us > 0},
      {"tag_chars_max", positive(cfg.tag_chars_max)},
  };
  for (const auto& [name, ok] : checks)
    if (!ok) return error{errc::invalid_argument, std::string("gossip config: ") + name +
                                                      " must be positive"};
  return ok_status();
}

bool tags_match(const search_tags& query, const search_tags& profile) {
  auto field = [](const std::string& wanted, const std::string& have) {
    return wanted.empty() || wanted == have;
  };
  return field(query.category, profile.category) &&
         field(query.subcategory, profile.subcategory) && field(query.name, profile.name) &&
         field(query.location, profile.location) && field(query.adjective, profile.adjective);
}

search_tags normalize(search_tags tags) {
  lower_and_trim(tags.category);
  lower_and_trim(tags.subcategory);
  lower_and_trim(tags.name);
  lower_and_trim(tags.location);
  lower_and_trim(tags.adjective);
  return tags;
}

status validate_tags(const search_tags& tags, size_t tag_chars_max, bool is_query) {
  const std::string* fields[] = {&tags.category, &tags.subcategory, &tags.name, &tags.location,
                                 &tags.adjective};
  bool any = false;
  for (const auto* field : fields) {
    if (field->size() > tag_chars_max)
      return error{errc::invalid_argument, "tag of " + std::to_string(field->size()) +
                                               " characters exceeds " +
                                               std::to_string(tag_chars_max)};
    any = any || !field->empty();
  }
  if (is_query && !any) return error{errc::invalid_argument, "a query needs at least one tag"};
  return ok_status();
}

const char* done_reason_name(done_reason reason) {
  switch (reason) {
    case done_reason::enough_matches: return "enough_matches";
    case done_reason::deadline: return "deadline";
    case done_reason::own_cache: return "own_cache";
    case done_reason::no_contacts: return "no_contacts";
  }
  return "unknown";
}

const char* event_name(event_kind kind) {
  switch (kind) {
    case event_kind::match_found: return "match_found";
    case event_kind::referral_followed: return "referral_followed";
    case event_kind::forward_accepted: return "forward_accepted";
    case event_kind::forwarded: return "forwarded";
    case event_kind::duplicate_dropped: return "duplicate_dropped";
    case event_kind::late: return "late";
  }
  return "unknown";
}

result<wire_message> decode_wire(const envelope& env) {
  if (env.service != services::gossip)
    return error{errc::unknown_type, "service " + std::to_string(env.service) + " is not gossip"};
  switch (env.type) {
    case query::type_id: return decode_as<query>(env);
    case search_result::type_id: return decode_as<search_result>(env);
    case referral::type_id: return decode_as<referral>(env);
    case forward_offer::type_id: return decode_as<forward_offer>(env);
    case forward_accept::type_id: return decode_as<forward_accept>(env);
    case cache_query::type_id: return decode_as<cache_query>(env);
  }
  return error{errc::unknown_type, "gossip message type " + std::to_string(env.type)};
}

// ---- machine: inputs -------------------------------------------------------------------------

machine::machine(config cfg, node_id self, std::string self_address, search_tags profile,
                 rng random)
    : config_(cfg), self_(self), self_address_(std::move(self_address)),
      profile_(normalize(std::move(profile))), rng_(random),
      request_cache_(cfg.request_cache_entries_max, cfg.request_cache_bytes_max),
      gossip_cache_(cfg.gossip_cache_entries_max, cfg.gossip_cache_bytes_max),
      seen_searches_(cfg.seen_searches_max, cfg.seen_searches_max * search_key_bytes),
      pending_offers_(cfg.pending_offers_max, cfg.pending_offers_max * 1024) {
  assert(validate(config_).ok());
  assert(validate_tags(profile_, config_.tag_chars_max, false).ok());
}

void machine::set_contacts(const std::vector<contact>& contacts) {
  contacts_.clear();
  for (const auto& c : contacts) {
    if (contacts_.size() >= config_.contacts_max) break;
    if (c.id == self_) continue;
    contacts_.emplace(c.id, c.address);
  }
}

status machine::set_profile(search_tags profile) {
  auto normalized = normalize(std::move(profile));
  if (auto e = validate_tags(normalized, config_.tag_chars_max, false)) return e;
  profile_ = std::move(normalized);
  return ok_status();
}

result<uint64_t> machine::start_search(search_tags tags, int64_t now_us, effects& out,
                                       int64_t timeout_us) {
  tags = normalize(std::move(tags));
  if (auto e = validate_tags(tags, config_.tag_chars_max, true)) return e;
  if (searches_.size() >= config_.active_searches_max)
    return error{errc::unavailable, std::to_string(searches_.size()) + " searches running (max " +
                                        std::to_string(config_.active_searches_max) + ")"};
  uint64_t id = 0;
  while (id == 0 || searches_.count(id) != 0) id = rng_.next();
  ++stats_.searches_started;
  auto& search = searches_[id];
  search.tags = tags;
  search.started_us = now_us;
  if (timeout_us <= 0 || timeout_us > config_.search_timeout_us)
    timeout_us = config_.search_timeout_us;
  search.deadline_us = now_us + timeout_us;
  seen_searches_.put({self_, id}, 0, search_key_bytes);  // our own query coming back is a dup

  if (const auto* cached = request_cache_.get(tags); cached != nullptr && !cached->empty()) {
    ++stats_.answered_from_own_cache;
    add_matches(id, search, *cached, out);
    finish(id, done_reason::own_cache, now_us, out);
    return id;
  }
  if (contacts_.empty()) {
    finish(id, done_reason::no_contacts, now_us, out);
    return id;
  }
  query message{id, bytes(self_.key.begin(), self_.key.end()), self_address_, tags,
                static_cast<uint8_t>(config_.hops_max - 1)};
  for (const auto& [contact_id, address] : contacts_)
    send(contact_id, {}, message, out, &search);
  return id;
}

status machine::receive(const node_id& from, const wire_message& message, int64_t now_us,
                        effects& out) {
  // Shape checks shared by every message that names an agent or carries tags.
  auto bad = [&](std::string what) -> status {
    ++stats_.malformed;
    return error{errc::malformed, "gossip: " + what};
  };
  if (auto* q = std::get_if<query>(&message)) {
    if (!key_of(q->origin_key)) return bad("query origin key is not 32 bytes");
    if (!address_ok(q->origin_address)) return bad("query origin address empty or too long");
    if (validate_tags(normalize(q->tags), config_.tag_chars_max, true))
      return bad("query tags invalid");
    handle(from, *q, now_us, out);
  } else if (auto* r = std::get_if<search_result>(&message)) {
    if (r->matches.size() > config_.responses_per_request_max)
      return bad("search_result carries " + std::to_string(r->matches.size()) + " matches");
    for (const auto& row : r->matches)
      if (!key_of(row.key) || !address_ok(row.address) ||
          validate_tags(row.tags, config_.tag_chars_max, false))
        return bad("search_result row malformed");
    handle(from, *r, now_us, out);
  } else if (auto* r = std::get_if<referral>(&message)) {
    if (!key_of(r->requester.key) || !address_ok(r->requester.address) ||
        r->referrer_address.size() > limits::address_chars_max)
      return bad("referral requester malformed");
    handle(from, *r, now_us, out);
  } else if (auto* o = std::get_if<forward_offer>(&message)) {
    if (o->offerer_address.size() > limits::address_chars_max)
      return bad("forward_offer address too long");
    handle(from, *o, now_us, out);
  } else if (auto* a = std::get_if<forward_accept>(&message)) {
    handle(from, *a, now_us, out);
  } else if (auto* c = std::get_if<cache_query>(&message)) {
    if (!address_ok(c->origin_address)) return bad("cache_query address empty or too long");
    if (validate_tags(normalize(c->tags), config_.tag_chars_max, true))
      return bad("cache_query tags invalid");
    handle(from, *c, now_us, out);
  }
  return ok_status();
}

void machine::tick(int64_t now_us, effects& out) {
  std::vector<uint64_t> expired;
  for (const auto& [id, search] : searches_)
    if (search.deadline_us <= now_us) expired.push_back(id);
  for (auto id : expired) finish(id, done_reason::deadline, now_us, out);
}

int64_t machine::next_deadline_us() const {
  int64_t next = std::numeric_limits<int64_t>::max();
  for (const auto& [id, search] : searches_) next = std::min(next, search.deadline_us);
  return next;
}

// ---- machine: one handler per message --------------------------------------------------------

// A contact's side: answer, else refer, else offer to forward (seed 003, "Gossipping").
void machine::handle(const node_id& from, const query& message, int64_t now_us, effects& out) {
  const node_id origin = *key_of(message.origin_key);
  const search_key key{origin, message.search_id};
  if (origin == self_ || seen_searches_.contains(key)) {
    ++stats_.duplicates_dropped;
    out.events.push_back({event_kind::duplicate_dropped, message.search_id, from});
    return;
  }
  seen_searches_.put(key, 0, search_key_bytes);
  ++stats_.queries_received;

  query forwardable = message;
  forwardable.tags = normalize(message.tags);
  forwardable.hops_left =
      std::min<uint8_t>(message.hops_left, static_cast<uint8_t>(config_.hops_max - 1));
  const auto& tags = forwardable.tags;

  // Look for an earlier requester before recording this one (who must not be referred to itself).
  std::optional<requester> earlier;
  if (const auto* found = referral_candidate(tags, origin)) earlier = *found;
  remember_gossip(tags, origin, message.origin_address);

  auto answers = local_answers(tags, origin);
  if (!answers.empty()) {
    search_result reply{message.search_id, result_from_query, {}};
    for (const auto& m : answers) reply.matches.push_back(record_of(m));
    ++stats_.answers_sent;
    send(origin, message.origin_address, std::move(reply), out);
    return;
  }

  const size_t targets =
      forwardable.hops_left == 0
          ? 0
          : std::min(config_.forward_fanout, forward_targets(from, origin).size());
  if (targets > 0)
    pending_offers_.put(key, pending_offer{forwardable, from, now_us + config_.offer_timeout_us},
                        search_key_bytes + 32 + message.origin_address.size() + tags_bytes(tags));
  if (earlier) {
    referral reply{message.search_id,
                   {bytes(earlier->key.key.begin(), earlier->key.key.end()), earlier->address, tags},
                   static_cast<uint16_t>(targets), self_address_};
    ++stats_.referrals_sent;
    send(origin, message.origin_address, std::move(reply), out);
  } else if (targets > 0) {
    ++stats_.offers_sent;
    send(origin, message.origin_address,
         forward_offer{message.search_id, static_cast<uint16_t>(targets), self_address_}, out);
  }
  // Otherwise a dead end: silence (the origin's deadline covers it).
}

// The origin's side: collect matches; an empty answer from a referred agent releases the forward
// offers its referrers made.
void machine::handle(const node_id& from, const search_result& message, int64_t now_us,
                     effects& out) {
  auto it = searches_.find(message.search_id);
  if (it == searches_.end()) {
    ++stats_.late;
    out.events.push_back({event_kind::late, message.search_id, from});
    return;
  }
  ++stats_.results_received;
  auto& search = it->second;
  std::vector<match> found;
  for (const auto& row : message.matches) {
    match m{*key_of(row.key), row.address, normalize(row.tags)};
    if (!tags_match(search.tags, m.tags) || m.key == self_) {
      ++stats_.rows_rejected;
      continue;
    }
    found.push_back(std::move(m));
  }
  const bool had_matches = !found.empty();
  cache_answers(search.tags, found);
  add_matches(message.search_id, search, std::move(found), out);

  auto referred = search.referred.find(from);
  if (message.source == result_from_cache_query && referred != search.referred.end() &&
      !referred->second.answered) {
    auto& agent = referred->second;
    agent.answered = true;
    agent.had_matches = had_matches;
    auto offerers = std::move(agent.offering_referrers);
    agent.offering_referrers.clear();
    if (!had_matches)
      for (const auto& offerer : offerers) maybe_accept(message.search_id, search, offerer, out);
  }
  if (search.matches.size() >= config_.matches_wanted)
    finish(message.search_id, done_reason::enough_matches, now_us, out);
}

void machine::handle(const node_id& from, const referral& message, int64_t, effects& out) {
  auto it = searches_.find(message.search_id);
  if (it == searches_.end()) {
    ++stats_.late;
    out.events.push_back({event_kind::late, message.search_id, from});
    return;
  }
  auto& search = it->second;
  const node_id referred_key = *key_of(message.requester.key);
  const bool can_forward = message.forward_contacts > 0;
  const contact referrer{from, message.referrer_address};
  if (referred_key == self_ || referred_key == from) {  // useless referral: treat as an offer
    if (can_forward) maybe_accept(message.search_id, search, referrer, out);
    return;
  }
  auto existing = search.referred.find(referred_key);
  if (existing != search.referred.end()) {
    auto& agent = existing->second;
    if (!agent.answered) {
      if (can_forward) agent.offering_referrers.push_back(referrer);
    } else if (!agent.had_matches && can_forward) {
      maybe_accept(message.search_id, search, referrer, out);
    }
    return;
  }
  if (search.referred.size() >= config_.referrals_per_search_max) {
    if (can_forward) maybe_accept(message.search_id, search, referrer, out);
    return;
  }
  auto& agent = search.referred[referred_key];
  if (can_forward) agent.offering_referrers.push_back(referrer);
  ++stats_.cache_queries_sent;
  out.events.push_back({event_kind::referral_followed, message.search_id, referred_key});
  send(referred_key, message.requester.address,
       cache_query{message.search_id, self_address_, search.tags}, out, &search);
}

void machine::handle(const node_id& from, const forward_offer& message, int64_t, effects& out) {
  auto it = searches_.find(message.search_id);
  if (it == searches_.end()) {
    ++stats_.late;
    out.events.push_back({event_kind::late, message.search_id, from});
    return;
  }
  if (message.contacts > 0)
    maybe_accept(message.search_id, it->second, contact{from, message.offerer_address}, out);
}

// A contact's side: the origin said yes; ask our contacts, one hop less.
void machine::handle(const node_id& from, const forward_accept& message, int64_t now_us,
                     effects& out) {
  const search_key key{from, message.search_id};
  const auto* pending = pending_offers_.peek(key);
  if (pending == nullptr || pending->expires_us < now_us) {
    pending_offers_.erase(key);
    ++stats_.late;
    out.events.push_back({event_kind::late, message.search_id, from});
    return;
  }
  pending_offer offer = *pending;
  pending_offers_.erase(key);
  auto targets = forward_targets(offer.received_from, from);
  const size_t picks = std::min(config_.forward_fanout, targets.size());
  query forwarded = offer.message;
  forwarded.hops_left = static_cast<uint8_t>(forwarded.hops_left - 1);
  for (size_t i = 0; i < picks; ++i) {  // seeded partial Fisher-Yates over an ordered list
    std::swap(targets[i], targets[i + rng_.below(targets.size() - i)]);
    ++stats_.queries_forwarded;
    send(targets[i], {}, forwarded, out);
  }
  ++stats_.forwards;
  out.events.push_back({event_kind::forwarded, message.search_id, from,
                        static_cast<int64_t>(picks)});
}

// A referred agent's side: answer from the request cache, or say "nothing" (empty list).
void machine::handle(const node_id& from, const cache_query& message, int64_t, effects& out) {
  auto answers = local_answers(normalize(message.tags), from);
  search_result reply{message.search_id, result_from_cache_query, {}};
  for (const auto& m : answers) reply.matches.push_back(record_of(m));
  ++stats_.cache_answers_sent;
  send(from, message.origin_address, std::move(reply), out);
}

// ---- machine: internals ----------------------------------------------------------------------

// Our own profile if it matches, then the request cache's rows (a read refreshes the entry);
// never `exclude` (the asker), at most responses_per_request_max.
std::vector<match> machine::local_answers(const search_tags& tags, const node_id& exclude) {
  std::vector<match> answers;
  if (tags_match(tags, profile_))
    answers.push_back({self_, self_address_, profile_});
  if (const auto* cached = request_cache_.get(tags)) {
    if (!cached->empty()) ++stats_.request_cache_hits;
    for (const auto& m : *cached) {
      if (answers.size() >= config_.responses_per_request_max) break;
      if (m.key != exclude && !contains_key(answers, m.key)) answers.push_back(m);
    }
  }
  return answers;
}

// The most recent earlier requester of these tags that is neither the origin nor us.
const machine::requester* machine::referral_candidate(const search_tags& tags,
                                                      const node_id& origin) {
  const auto* rows = gossip_cache_.get(tags);
  if (rows == nullptr) return nullptr;
  for (const auto& row : *rows)
    if (row.key != origin && row.key != self_) return &row;
  return nullptr;
}

void machine::remember_gossip(const search_tags& tags, const node_id& origin,
                              const std::string& address) {
  // Built at its final size (a vector grown by insertion keeps up to twice the room it needs, and
  // a full gossip cache holds 10,000 of these).
  const auto* old = gossip_cache_.peek(tags);
  std::vector<requester> rows;
  rows.reserve(std::min(config_.requesters_per_tags_max, 1 + (old ? old->size() : 0)));
  rows.push_back(requester{origin, address});
  if (old)
    for (const auto& r : *old)
      if (r.key != origin && rows.size() < config_.requesters_per_tags_max) rows.push_back(r);
  size_t size = tags_bytes(tags);
  for (const auto& r : rows) size += 32 + r.address.size();
  gossip_cache_.put(tags, std::move(rows), size);
}

// Merges answers into the request cache entry for `tags`: newest first, at most
// responses_per_request_max rows.
void machine::cache_answers(const search_tags& tags, const std::vector<match>& found) {
  if (found.empty()) return;
  // Built at its final size, as above.
  const size_t max = config_.responses_per_request_max;
  const auto* old = request_cache_.peek(tags);
  std::vector<match> rows;
  rows.reserve(std::min(max, found.size() + (old ? old->size() : 0)));
  for (const auto& m : found)
    if (rows.size() < max) rows.push_back(m);
  if (old)
    for (const auto& m : *old)
      if (rows.size() < max && !contains_key(rows, m.key)) rows.push_back(m);
  size_t size = tags_bytes(tags);
  for (const auto& m : rows) size += row_bytes(m);
  request_cache_.put(tags, std::move(rows), size);
}

// Contacts in key order, without the one who sent us the query and without its origin.
std::vector<node_id> machine::forward_targets(const node_id& received_from,
                                              const node_id& origin) {
  std::vector<node_id> targets;
  for (const auto& [id, address] : contacts_)
    if (id != received_from && id != origin) targets.push_back(id);
  return targets;
}

void machine::add_matches(uint64_t search_id, search_state& search, std::vector<match> found,
                          effects& out) {
  for (auto& m : found) {
    if (search.matches.size() >= config_.responses_per_request_max) break;
    if (m.key == self_ || contains_key(search.matches, m.key)) continue;
    out.events.push_back({event_kind::match_found, search_id, m.key});
    search.matches.push_back(std::move(m));
  }
}

// "You say yes, the cycle continues; you say no if you got responses."
void machine::maybe_accept(uint64_t search_id, search_state& search, const contact& offerer,
                           effects& out) {
  if (search.matches.size() >= config_.matches_wanted) return;
  if (search.accepts_sent >= config_.forward_accepts_per_search_max) return;
  ++search.accepts_sent;
  ++stats_.accepts_sent;
  out.events.push_back({event_kind::forward_accepted, search_id, offerer.id});
  send(offerer.id, offerer.address, forward_accept{search_id}, out, &search);
}

void machine::finish(uint64_t search_id, done_reason reason, int64_t now_us, effects& out) {
  auto it = searches_.find(search_id);
  assert(it != searches_.end());
  auto& search = it->second;
  out.done.push_back({search_id, search.tags, std::move(search.matches), reason,
                      search.started_us, now_us, search.messages_sent});
  ++stats_.searches_done;
  searches_.erase(it);
}

void machine::send(const node_id& to, const std::string& address, wire_message message,
                   effects& out, search_state* search) {
  ++stats_.messages_sent;
  if (search != nullptr) ++search->messages_sent;
  out.sends.push_back({to, address, std::move(message)});
}

}  // namespace cmesh::gossip
