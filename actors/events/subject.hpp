// Subjects and subscription patterns of the events bus (NATS-style), and the index that finds every
// pattern matching a subject. Spec: docs/events.md, section 1.
//
// A subject is a string of tokens separated by '.': "orders.eu.created". Tokens are non-empty and
// contain no whitespace or control characters. A pattern may use two wildcards, each only as a
// whole token:
//   '*'  matches exactly one token            "orders.*.created" matches "orders.eu.created"
//   '>'  matches one or more trailing tokens  "orders.>" matches "orders.eu" and "orders.eu.x",
//        and only as the last token            but not "orders"
// A publish subject (and a reply subject) contains no wildcard character at all: '*' and '>' are
// refused anywhere in it, even inside a longer token (stricter than NATS, which treats "a*" as a
// literal; a subject that looks like a pattern is almost always a mistake).
//
// Pure functions and a plain data structure: no allocation outside the index, no I/O, no
// randomness. Thread confinement: subject_index has one owner (the events machine).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "messages/error.hpp"

namespace cmesh::events {

// Characters in a subject, pattern or reply subject. NATS has no hard limit; 256 keeps a routed
// message's header small and fits an inbox ("_INBOX." + 64 hex + "." + 20 digits = 92) with room.
inline constexpr size_t subject_chars_max = 256;
// Tokens in a subject or pattern. Bounds the index's depth and the work of one match (a trie walk
// branches at most in two per token: the literal child and the '*' child).
inline constexpr size_t subject_tokens_max = 16;
// Characters in a queue group name. Names follow the token rules (no '.', no wildcard).
inline constexpr size_t queue_group_chars_max = 64;

// A publish or reply subject: valid tokens, no '*' or '>' anywhere.
// Errors (invalid_argument, the message says why): empty, too long, too many tokens, an empty
// token (leading, trailing or doubled '.'), whitespace or a control character, a wildcard.
status validate_subject(std::string_view subject);

// A subscription pattern: valid tokens; '*' and '>' only as whole tokens, '>' only last.
// Errors (invalid_argument): as validate_subject, and a wildcard inside a token or '>' not last.
status validate_pattern(std::string_view pattern);

// A queue group name: 1 to queue_group_chars_max characters, no '.', no whitespace or control
// character, no wildcard. The empty string means "no queue group" and is not checked here.
status validate_queue_group(std::string_view name);

// True when `pattern` has a whole-token wildcard ("*" or ">"): callers that accept either kind.
bool has_wildcard(std::string_view pattern);

// Splits on '.'; keeps empty tokens (so validation can see them).
std::vector<std::string_view> split_tokens(std::string_view text);

// The matching rule, token by token (the reference the index is tested against).
// REQUIRES: validate_pattern(pattern) and validate_subject(subject) are ok.
bool pattern_matches(std::string_view pattern, std::string_view subject);

// A token trie from patterns to ids (subscription ids, interest handles). One id may be stored
// under several patterns, and one pattern may hold many ids.
//
// match() visits, for each subject token, at most the literal child and the '*' child of each
// reached node, so one match costs at most 2^subject_tokens_max node visits in the worst case
// (every level holding both) and about one path per matching pattern in practice.
class subject_index {
public:
  subject_index();
  ~subject_index();
  subject_index(subject_index&&) noexcept;
  subject_index& operator=(subject_index&&) noexcept;
  subject_index(const subject_index&) = delete;
  subject_index& operator=(const subject_index&) = delete;

  // Adds (pattern, id). Returns false (and changes nothing) if that pair is already present.
  // REQUIRES: validate_pattern(pattern) is ok.
  bool insert(std::string_view pattern, uint64_t id);
  // Removes (pattern, id) and prunes nodes left empty. Returns false if the pair was absent.
  bool erase(std::string_view pattern, uint64_t id);
  // Appends to `out` every id stored under a pattern that matches `subject`, each id once, in
  // ascending order (deterministic whatever the insertion history). Ids already in `out` before
  // the call are left alone.
  // REQUIRES: validate_subject(subject) is ok.
  void match(std::string_view subject, std::vector<uint64_t>& out) const;

  size_t size() const { return pairs_; }  // (pattern, id) pairs stored
  bool empty() const { return pairs_ == 0; }
  size_t node_count() const { return nodes_; }  // trie nodes, root included (for tests)

private:
  struct node;
  node* descend(std::string_view pattern, bool create, std::vector<node*>* path);
  void prune(const std::vector<node*>& path, const std::vector<std::string_view>& tokens);

  std::unique_ptr<node> root_;
  size_t pairs_ = 0;
  size_t nodes_ = 1;
};

}  // namespace cmesh::events
