#include "actors/events/subject.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <functional>

namespace cmesh::events {

namespace {

bool is_space_or_control(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte <= 0x20 || byte == 0x7f;  // space, tab, CR, LF and every other control character
}

status invalid(std::string_view what, std::string_view text) {
  // Quote at most the first 64 characters: the text may be hostile and long.
  std::string quoted(text.substr(0, 64));
  if (text.size() > 64) quoted += "...";
  return error{errc::invalid_argument, std::string("events: ") + std::string(what) + " in \"" +
                                           quoted + "\""};
}

// The tokens of a subject of at most subject_tokens_max tokens, without allocating (every
// publish splits its subject: this is on the bus's hot path). Returns false if there are more.
struct token_array {
  std::array<std::string_view, subject_tokens_max> items;
  size_t count = 0;
};

bool split_into(std::string_view text, token_array& out, size_t* total = nullptr) {
  out.count = 0;
  size_t n = 0;
  size_t start = 0;
  while (true) {
    const size_t dot = text.find('.', start);
    const auto token = text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (n < subject_tokens_max) out.items[n] = token;
    ++n;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (total) *total = n;
  out.count = std::min(n, subject_tokens_max);
  return n <= subject_tokens_max;
}

// Shared checks of subjects and patterns; `pattern` allows whole-token wildcards.
status check_subject(std::string_view text, bool pattern) {
  if (text.empty()) return error{errc::invalid_argument, "events: empty subject"};
  if (text.size() > subject_chars_max)
    return invalid("subject of " + std::to_string(text.size()) + " characters exceeds " +
                       std::to_string(subject_chars_max),
                   text);
  token_array tokens;
  size_t total = 0;
  if (!split_into(text, tokens, &total))
    return invalid("subject of " + std::to_string(total) + " tokens exceeds " +
                       std::to_string(subject_tokens_max),
                   text);
  for (size_t i = 0; i < tokens.count; ++i) {
    const auto token = tokens.items[i];
    if (token.empty()) return invalid("empty token", text);
    for (char c : token) {
      if (is_space_or_control(c)) return invalid("whitespace or control character", text);
      if (c != '*' && c != '>') continue;
      if (!pattern) return invalid("wildcard in a publish subject", text);
      if (token.size() != 1) return invalid("wildcard inside a token", text);
      if (c == '>' && i + 1 != tokens.count) return invalid("'>' before the last token", text);
    }
  }
  return ok_status();
}

void insert_sorted(std::vector<uint64_t>& ids, uint64_t id, bool& inserted) {
  auto it = std::lower_bound(ids.begin(), ids.end(), id);
  inserted = it == ids.end() || *it != id;
  if (inserted) ids.insert(it, id);
}

bool erase_sorted(std::vector<uint64_t>& ids, uint64_t id) {
  auto it = std::lower_bound(ids.begin(), ids.end(), id);
  if (it == ids.end() || *it != id) return false;
  ids.erase(it);
  return true;
}

}  // namespace

// ---- validation and the matching rule ------------------------------------------------------------

std::vector<std::string_view> split_tokens(std::string_view text) {
  std::vector<std::string_view> tokens;
  size_t start = 0;
  while (true) {
    const size_t dot = text.find('.', start);
    if (dot == std::string_view::npos) {
      tokens.push_back(text.substr(start));
      return tokens;
    }
    tokens.push_back(text.substr(start, dot - start));
    start = dot + 1;
  }
}

status validate_subject(std::string_view subject) { return check_subject(subject, false); }

status validate_pattern(std::string_view pattern) { return check_subject(pattern, true); }

status validate_queue_group(std::string_view name) {
  if (name.empty()) return error{errc::invalid_argument, "events: empty queue group"};
  if (name.size() > queue_group_chars_max)
    return invalid("queue group of " + std::to_string(name.size()) + " characters exceeds " +
                       std::to_string(queue_group_chars_max),
                   name);
  for (char c : name) {
    if (is_space_or_control(c)) return invalid("whitespace or control character", name);
    if (c == '.' || c == '*' || c == '>') return invalid("'.' or wildcard in a queue group", name);
  }
  return ok_status();
}

bool has_wildcard(std::string_view pattern) {
  for (auto token : split_tokens(pattern))
    if (token == "*" || token == ">") return true;
  return false;
}

bool pattern_matches(std::string_view pattern, std::string_view subject) {
  const auto want = split_tokens(pattern);
  const auto have = split_tokens(subject);
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] == ">") return have.size() > i;  // one or more tokens left
    if (i >= have.size()) return false;
    if (want[i] != "*" && want[i] != have[i]) return false;
  }
  return want.size() == have.size();
}

// ---- the index ---------------------------------------------------------------------------------

struct subject_index::node {
  std::map<std::string, std::unique_ptr<node>, std::less<>> literal;  // ordered: deterministic
  std::unique_ptr<node> any_one;  // the '*' child
  std::vector<uint64_t> exact;    // ids of patterns that end at this node, ascending
  std::vector<uint64_t> tail;     // ids of patterns that end with '>' after this node, ascending

  bool unused() const { return literal.empty() && !any_one && exact.empty() && tail.empty(); }
};

subject_index::subject_index() : root_(std::make_unique<node>()) {}
subject_index::~subject_index() = default;
subject_index::subject_index(subject_index&&) noexcept = default;
subject_index& subject_index::operator=(subject_index&&) noexcept = default;

// The node of `pattern` without its final '>' (if any). With `create`, missing nodes are added;
// otherwise returns null when one is missing. `path` receives root .. result.
subject_index::node* subject_index::descend(std::string_view pattern, bool create,
                                            std::vector<node*>* path) {
  auto tokens = split_tokens(pattern);
  if (tokens.back() == ">") tokens.pop_back();
  node* at = root_.get();
  if (path) path->push_back(at);
  for (auto token : tokens) {
    std::unique_ptr<node>* child = nullptr;
    if (token == "*") {
      child = &at->any_one;
    } else {
      auto it = at->literal.find(token);
      if (it == at->literal.end()) {
        if (!create) return nullptr;
        it = at->literal.emplace(std::string(token), nullptr).first;
      }
      child = &it->second;
    }
    if (!*child) {
      if (!create) return nullptr;
      *child = std::make_unique<node>();
      ++nodes_;
    }
    at = child->get();
    if (path) path->push_back(at);
  }
  return at;
}

bool subject_index::insert(std::string_view pattern, uint64_t id) {
  assert(validate_pattern(pattern).ok());
  node* at = descend(pattern, true, nullptr);
  const bool is_tail = split_tokens(pattern).back() == ">";
  bool inserted = false;
  insert_sorted(is_tail ? at->tail : at->exact, id, inserted);
  if (inserted) ++pairs_;
  return inserted;
}

bool subject_index::erase(std::string_view pattern, uint64_t id) {
  assert(validate_pattern(pattern).ok());
  std::vector<node*> path;
  node* at = descend(pattern, false, &path);
  if (at == nullptr) return false;
  auto tokens = split_tokens(pattern);
  const bool is_tail = tokens.back() == ">";
  if (!erase_sorted(is_tail ? at->tail : at->exact, id)) return false;
  --pairs_;
  if (is_tail) tokens.pop_back();
  prune(path, tokens);
  return true;
}

// Removes unused nodes from the deepest up; path[i] is reached from path[i - 1] by tokens[i - 1].
void subject_index::prune(const std::vector<node*>& path,
                          const std::vector<std::string_view>& tokens) {
  for (size_t i = path.size() - 1; i > 0; --i) {
    if (!path[i]->unused()) return;
    node* parent = path[i - 1];
    if (tokens[i - 1] == "*") {
      parent->any_one.reset();
    } else {
      auto it = parent->literal.find(tokens[i - 1]);
      assert(it != parent->literal.end());
      parent->literal.erase(it);
    }
    --nodes_;
  }
}

namespace {

// Depth-first; depth is at most subject_tokens_max, so recursion is bounded.
template <class Node>
void visit_matches(const Node& at, const token_array& tokens, size_t depth, std::vector<uint64_t>& out) {
  if (depth == tokens.count) {
    out.insert(out.end(), at.exact.begin(), at.exact.end());
    return;
  }
  out.insert(out.end(), at.tail.begin(), at.tail.end());  // '>' needs one token or more: here
  auto it = at.literal.find(tokens.items[depth]);
  if (it != at.literal.end()) visit_matches(*it->second, tokens, depth + 1, out);
  if (at.any_one) visit_matches(*at.any_one, tokens, depth + 1, out);
}

}  // namespace

void subject_index::match(std::string_view subject, std::vector<uint64_t>& out) const {
  token_array tokens;
  const bool fits = split_into(subject, tokens);
  assert(fits);  // a validated subject
  (void)fits;
  const size_t first = out.size();
  visit_matches(*root_, tokens, 0, out);
  if (out.size() - first > 1) {
    std::sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
    out.erase(std::unique(out.begin() + static_cast<std::ptrdiff_t>(first), out.end()), out.end());
  }
}

}  // namespace cmesh::events
