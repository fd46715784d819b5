// A small JSON value, parser and compact writer (RFC 8259), for CMTP bodies, FQMN arguments and
// JOSE headers and claims. No CAF, no exceptions on the parse path.
//
// - Objects keep their members in the order they were parsed or inserted (JOSE signs bytes, not
//   values, so nothing here reorders). A repeated member name is a parse error (RFC 7515 §5.2
//   requires rejecting or using the last; we reject).
// - Numbers: an integer literal that fits in int64 is kept as int64; anything else (fraction,
//   exponent, out of range) as double.
// - Strings are UTF-8; the parser rejects invalid UTF-8 and lone surrogates; \uXXXX escapes
//   (including surrogate pairs) are decoded.
// - dump() writes compact JSON (no spaces), escapes '"', '\\' and control characters (\n, \t, ...,
//   else \u00XX), and writes other characters as UTF-8.
// - Limits: nesting depth at most parse_limits::max_depth (default 64); input size is the caller's
//   business.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace cmesh::json {

class value;
using array = std::vector<value>;
using object = std::vector<std::pair<std::string, value>>;

class value {
public:
  using storage = std::variant<std::nullptr_t, bool, int64_t, double, std::string, array, object>;

  value() : v_(nullptr) {}
  value(std::nullptr_t) : v_(nullptr) {}
  value(bool b) : v_(b) {}
  value(int i) : v_(int64_t{i}) {}
  value(int64_t i) : v_(i) {}
  value(double d) : v_(d) {}
  value(const char* s) : v_(std::string(s)) {}
  value(std::string s) : v_(std::move(s)) {}
  value(std::string_view s) : v_(std::string(s)) {}
  value(array a) : v_(std::move(a)) {}
  value(object o) : v_(std::move(o)) {}

  bool is_null() const { return std::holds_alternative<std::nullptr_t>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_double() const { return std::holds_alternative<double>(v_); }
  bool is_number() const { return is_int() || is_double(); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_array() const { return std::holds_alternative<array>(v_); }
  bool is_object() const { return std::holds_alternative<object>(v_); }

  // Unchecked accessors: the caller has tested the kind (std::get throws otherwise).
  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_double() const { return is_int() ? double(as_int()) : std::get<double>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const array& as_array() const { return std::get<array>(v_); }
  array& as_array() { return std::get<array>(v_); }
  const object& as_object() const { return std::get<object>(v_); }
  object& as_object() { return std::get<object>(v_); }

  // Object member lookup (first match); nullptr if not an object or no such member.
  const value* find(std::string_view key) const;
  // Typed lookups: nullopt / nullptr if missing or of another kind.
  const std::string* find_string(std::string_view key) const;
  std::optional<int64_t> find_int(std::string_view key) const;
  // Appends or replaces member `key` (this must be an object).
  void set(std::string key, value v);

  const storage& raw() const { return v_; }
  friend bool operator==(const value& a, const value& b) { return a.v_ == b.v_; }

private:
  storage v_;
};

struct parse_limits {
  size_t max_depth = 64;
};

struct parse_error {
  size_t offset = 0;      // byte offset into the input where the problem was found
  std::string message;    // e.g. "expected ':' after object member name"
};

// Parses exactly one JSON value, surrounded by optional whitespace. On failure returns nullopt and,
// if err is given, fills it.
std::optional<value> parse(std::string_view text, parse_error* err = nullptr,
                           parse_limits limits = {});

// Compact serialization. Doubles use the shortest form that reads back to the same double, with
// ".0" added when that form looks like an integer (so 1.0 stays a double through parse); NaN and
// infinities, which JSON cannot express and parse never produces, are written as null.
std::string dump(const value& v);

}  // namespace cmesh::json
