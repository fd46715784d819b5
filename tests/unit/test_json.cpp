// Tests for runtime/core/json: the value type, the parser (valid inputs, every error with its
// offset and message, numbers, escapes, UTF-8, duplicates, depth) and the compact writer.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "runtime/core/json.hpp"

namespace {

using namespace cmesh;
using json::value;

value must_parse(std::string_view text) {
  json::parse_error err;
  auto parsed = json::parse(text, &err);
  INFO("text: ", text, " error at ", err.offset, ": ", err.message);
  REQUIRE(parsed.has_value());
  return *parsed;
}

json::parse_error must_fail(std::string_view text, json::parse_limits limits = {}) {
  json::parse_error err;
  auto parsed = json::parse(text, &err, limits);
  INFO("text: ", text);
  REQUIRE_FALSE(parsed.has_value());
  return err;
}

void check_error(std::string_view text, size_t offset, std::string_view message) {
  const auto err = must_fail(text);
  INFO("text: ", text, " error: ", err.message);
  CHECK(err.offset == offset);
  CHECK(err.message == message);
}

std::string nested_arrays(size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

}  // namespace

TEST_CASE("json: scalars parse to their kinds") {
  CHECK(must_parse("null").is_null());
  CHECK(must_parse("true").as_bool() == true);
  CHECK(must_parse("false").as_bool() == false);
  CHECK(must_parse("\"hi\"").as_string() == "hi");
  CHECK(must_parse(" \t\r\n 7 \n").as_int() == 7);
  CHECK(must_parse("[]").as_array().empty());
  CHECK(must_parse("{}").as_object().empty());
}

TEST_CASE("json: integers that fit int64 stay integers and others become doubles") {
  CHECK(must_parse("0").as_int() == 0);
  CHECK(must_parse("-0").is_int());
  CHECK(must_parse("123").as_int() == 123);
  CHECK(must_parse("9223372036854775807").as_int() == std::numeric_limits<int64_t>::max());
  CHECK(must_parse("-9223372036854775808").as_int() == std::numeric_limits<int64_t>::min());

  const value too_big = must_parse("9223372036854775808");
  REQUIRE(too_big.is_double());
  CHECK(too_big.as_double() == 9223372036854775808.0);
  CHECK(must_parse("-9223372036854775809").is_double());

  CHECK(must_parse("1.5").as_double() == 1.5);
  CHECK(must_parse("1e3").is_double());
  CHECK(must_parse("1e3").as_double() == 1000.0);
  CHECK(must_parse("1E-2").as_double() == 0.01);
  CHECK(must_parse("2.5e+1").as_double() == 25.0);
  CHECK(must_parse("-0.0").is_double());
  CHECK(must_parse("1.0").is_double());
  CHECK(must_parse("7").as_double() == 7.0);  // as_double widens integers
  CHECK(value(int64_t{1}) != value(1.0));      // different kinds are different values
}

TEST_CASE("json: numbers beyond double range") {
  check_error("1e400", 0, "number out of range for a double");
  check_error("[-12.5e999999999999]", 1, "number out of range for a double");
  // Underflow rounds to zero, keeping the sign.
  const value tiny = must_parse("1e-400");
  REQUIRE(tiny.is_double());
  CHECK(tiny.as_double() == 0.0);
  CHECK_FALSE(std::signbit(tiny.as_double()));
  CHECK(std::signbit(must_parse("-1e-400").as_double()));
  CHECK(must_parse("0.0000000000000000000000000000000000000000000000000000000000000000000000000"
                   "00000000000000000000000000000000000000000000000000000000000000000000000000000"
                   "00000000000000000000000000000000000000000000000000000000000000000000000000000"
                   "00000000000000000000000000000000000000000000000000000000000000000000000000000"
                   "00000000000000000000000000000000000000000001")
            .as_double() == 0.0);
  CHECK(must_parse("5e-324").as_double() > 0.0);  // the smallest subnormal survives
}

TEST_CASE("json: malformed numbers") {
  check_error("01", 0, "leading zeros are not allowed in a number");
  check_error("-01", 1, "leading zeros are not allowed in a number");
  check_error("1.", 2, "unexpected end of input (expected a digit after '.')");
  check_error("1.e5", 2, "unexpected 'e' (expected a digit after '.')");
  check_error("1e", 2, "unexpected end of input (expected a digit in the exponent)");
  check_error("1e+", 3, "unexpected end of input (expected a digit in the exponent)");
  check_error("-", 1, "unexpected end of input (expected a digit in the number)");
  check_error("-a", 1, "unexpected 'a' (expected a digit in the number)");
  check_error("+1", 0, "unexpected '+' (expected a JSON value)");
  check_error(".5", 0, "unexpected '.' (expected a JSON value)");
  check_error("0x10", 1, "unexpected 'x' after the JSON value");
  check_error("NaN", 0, "unexpected 'N' (expected a JSON value)");
}

TEST_CASE("json: escapes decode including surrogate pairs") {
  CHECK(must_parse(R"("\"\\\/\b\f\n\r\t")").as_string() == "\"\\/\b\f\n\r\t");
  CHECK(must_parse(R"("\u0041")").as_string() == "A");
  CHECK(must_parse(R"("\u00e9")").as_string() == "\xC3\xA9");
  CHECK(must_parse(R"("\u20AC")").as_string() == "\xE2\x82\xAC");
  CHECK(must_parse(R"("\uD83D\uDE00")").as_string() == "\xF0\x9F\x98\x80");
  CHECK(must_parse(R"("\udbff\udfff")").as_string() == "\xF4\x8F\xBF\xBF");
  const std::string with_nul = must_parse(R"("a\u0000b")").as_string();
  CHECK(with_nul == std::string("a\0b", 3));
}

TEST_CASE("json: bad escapes and lone surrogates are rejected") {
  check_error(R"("\q")", 1, "invalid escape '\\q'");
  check_error("\"\\\x01\"", 1, "invalid escape (backslash followed by byte 0x01)");
  check_error(R"("\u12G4")", 5, "invalid \\u escape (expected 4 hex digits)");
  check_error(R"("\u12)", 3, "invalid \\u escape (expected 4 hex digits)");
  check_error(R"("ab\uDE00")", 3, "lone low surrogate \\u escape (no high surrogate before it)");
  check_error(R"("\uD800")", 1,
              "lone high surrogate \\u escape (expected a \\uDC00-\\uDFFF escape after it)");
  check_error(R"("\uD800\u0041")", 1,
              "lone high surrogate \\u escape (expected a \\uDC00-\\uDFFF escape after it)");
  check_error(R"("\uD800x")", 1,
              "lone high surrogate \\u escape (expected a \\uDC00-\\uDFFF escape after it)");
  check_error(R"("\uD800\uZZZZ")", 9, "invalid \\u escape (expected 4 hex digits)");
  check_error("\"abc", 0, "unterminated string (no closing '\"')");
  check_error("\"abc\\", 0, "unterminated string (no closing '\"')");
  check_error("\"a\nb\"", 2, "control character (byte 0x0A) in string must be escaped");
  check_error("\"\t\"", 1, "control character (byte 0x09) in string must be escaped");
}

TEST_CASE("json: raw UTF-8 is kept and invalid UTF-8 is rejected") {
  CHECK(must_parse("\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"").as_string() ==
        "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  CHECK(must_parse("\"\xEF\xBF\xBF\"").is_string());      // U+FFFF
  CHECK(must_parse("\"\xED\x9F\xBF\"").is_string());      // U+D7FF, just below the surrogates
  check_error("\"a\x80\"", 2, "invalid UTF-8 in string (unexpected continuation byte 0x80)");
  check_error("\"\xC0\xAF\"", 1, "invalid UTF-8 in string (overlong encoding, byte 0xC0)");
  check_error("\"\xE0\x80\x80\"", 1, "invalid UTF-8 in string (overlong encoding)");
  check_error("\"\xF0\x80\x80\x80\"", 1, "invalid UTF-8 in string (overlong encoding)");
  check_error("\"\xED\xA0\x80\"", 1,
              "invalid UTF-8 in string (encoded surrogate U+D800-U+DFFF)");
  check_error("\"\xF4\x90\x80\x80\"", 1, "invalid UTF-8 in string (code point above U+10FFFF)");
  check_error("\"\xF5\x80\x80\x80\"", 1, "invalid UTF-8 in string (byte 0xF5 is never valid)");
  check_error("\"\xFF\"", 1, "invalid UTF-8 in string (byte 0xFF is never valid)");
  check_error("\"\xC3\"", 2, "invalid UTF-8 in string (byte 0x22 is not a continuation byte)");
  check_error("\"\xE2\x82", 1, "invalid UTF-8 in string (truncated sequence)");
  check_error("\"\xE2\x82x\"", 3, "invalid UTF-8 in string (byte 0x78 is not a continuation byte)");
  // Outside strings any non-ASCII byte is simply unexpected.
  check_error("\xEF\xBB\xBF{}", 0, "unexpected byte 0xEF (expected a JSON value)");
}

TEST_CASE("json: structural errors carry offsets") {
  check_error("", 0, "unexpected end of input (expected a JSON value)");
  check_error("   ", 3, "unexpected end of input (expected a JSON value)");
  check_error("[1,]", 3, "unexpected ']' (expected a JSON value)");
  check_error("[1 2]", 3, "unexpected '2' (expected ',' or ']' after an array element)");
  check_error("[1", 2, "unexpected end of input (expected ',' or ']' after an array element)");
  check_error("{\"a\" 1}", 5, "unexpected '1' (expected ':' after an object member name)");
  check_error("{1:2}", 1, "unexpected '1' (expected a string naming an object member)");
  check_error("{\"a\":1,}", 7, "unexpected '}' (expected a string naming an object member)");
  check_error("{\"a\":1 \"b\":2}", 7,
              "unexpected '\"' (expected ',' or '}' after an object member)");
  check_error("{\"a\":}", 5, "unexpected '}' (expected a JSON value)");
  check_error("tru", 0, "invalid literal (expected 'true')");
  check_error("nul", 0, "invalid literal (expected 'null')");
  check_error("[falsy]", 1, "invalid literal (expected 'false')");
  check_error("[falsey]", 6, "unexpected 'y' (expected ',' or ']' after an array element)");
  check_error("[1] x", 4, "unexpected 'x' after the JSON value");
  check_error("{} {}", 3, "unexpected '{' after the JSON value");
  check_error("'a'", 0, "unexpected ''' (expected a JSON value)");
}

TEST_CASE("json: repeated member names are rejected") {
  check_error(R"({"a":1,"a":2})", 7, "duplicate object member name \"a\"");
  check_error(R"({"a":{"b":1,"c":2,"b":3}})", 18, "duplicate object member name \"b\"");
  // Escapes decode before comparing: "\u0061" is "a".
  check_error(R"({"a":1,"\u0061":2})", 7, "duplicate object member name \"a\"");
  CHECK(must_parse(R"({"a":1,"A":2})").as_object().size() == 2);
  CHECK(must_parse(R"({"a":{"a":1}})").is_object());  // same name at another level is fine

  // Large objects switch to a set; the first repeated name is still the one reported.
  std::string big = "{";
  for (int i = 0; i < 100; ++i) big += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  const size_t offset = big.size();
  big += "\"k42\":0,\"k7\":1}";
  check_error(big, offset, "duplicate object member name \"k42\"");
  std::string distinct = "{";
  for (int i = 0; i < 100; ++i)
    distinct += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
  distinct += "}";
  CHECK(must_parse(distinct).as_object().size() == 100);
}

TEST_CASE("json: nesting depth limit") {
  CHECK(must_parse(nested_arrays(64)).is_array());
  const auto err = must_fail(nested_arrays(65));
  CHECK(err.offset == 64);
  CHECK(err.message == "nesting deeper than 64 levels");
  CHECK(must_fail(nested_arrays(100000)).offset == 64);  // no stack overflow

  json::parse_limits shallow;
  shallow.max_depth = 2;
  CHECK(json::parse(R"({"a":[1]})", nullptr, shallow).has_value());
  const auto err2 = must_fail(R"({"a":[{}]})", shallow);
  CHECK(err2.offset == 6);
  CHECK(err2.message == "nesting deeper than 2 levels");
  shallow.max_depth = 0;
  CHECK(json::parse("5", nullptr, shallow).has_value());
  CHECK_FALSE(json::parse("[]", nullptr, shallow).has_value());
}

TEST_CASE("json: the error out-parameter is optional") {
  CHECK_FALSE(json::parse("[").has_value());
  CHECK(json::parse("[]").has_value());
}

TEST_CASE("json: objects keep member order and lookups find the first match") {
  value v = must_parse(R"({"z":1,"a":"x","m":[true,null]})");
  const auto& members = v.as_object();
  REQUIRE(members.size() == 3);
  CHECK(members[0].first == "z");
  CHECK(members[1].first == "a");
  CHECK(members[2].first == "m");
  REQUIRE(v.find("m") != nullptr);
  CHECK(v.find("m")->as_array().size() == 2);
  CHECK(v.find("nope") == nullptr);
  REQUIRE(v.find_string("a") != nullptr);
  CHECK(*v.find_string("a") == "x");
  CHECK(v.find_string("z") == nullptr);  // wrong kind
  CHECK(v.find_int("z") == 1);
  CHECK(v.find_int("a") == std::nullopt);
  CHECK(v.find_int("nope") == std::nullopt);
  CHECK(value(5).find("z") == nullptr);  // not an object

  v.set("a", value(2));  // replaces in place
  v.set("b", value("new"));  // appends
  CHECK(json::dump(v) == R"({"z":1,"a":2,"m":[true,null],"b":"new"})");
}

TEST_CASE("json: dump writes compact JSON") {
  CHECK(json::dump(value()) == "null");
  CHECK(json::dump(value(true)) == "true");
  CHECK(json::dump(value(std::numeric_limits<int64_t>::min())) == "-9223372036854775808");
  CHECK(json::dump(value(1.0)) == "1.0");
  CHECK(json::dump(value(-0.0)) == "-0.0");
  CHECK(json::dump(value(0.1)) == "0.1");
  CHECK(json::dump(value(1e21)) == "1e+21");
  CHECK(json::dump(value(123456789012345678.0)) == "123456789012345680.0");
  CHECK(json::dump(value(std::numeric_limits<double>::infinity())) == "null");
  CHECK(json::dump(value(std::numeric_limits<double>::quiet_NaN())) == "null");
  CHECK(json::dump(value("q\"b\\s/\b\f\n\r\t\x01\x1f\x7f\xC3\xA9")) ==
        "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xC3\xA9\"");
  CHECK(json::dump(value(std::string("a\0b", 3))) == "\"a\\u0000b\"");
  json::object o;
  o.emplace_back("k", value(json::array{value(1), value("x"), value(json::object{})}));
  CHECK(json::dump(value(o)) == R"({"k":[1,"x",{}]})");
}

TEST_CASE("json: dump and parse round-trip") {
  const char* canonical[] = {
      "null", "true", "0", "-1", "1.5", "-0.0", "1e+300", "5e-324", "\"\"",
      R"(["a",[],{},[[1]],{"x":{"y":null}}])",
      R"({"iss":"did:key:z6Mk","exp":1700000000,"scope":["state.read","events.read"]})",
      "\"\\u0000\\u001f\\\"\\\\\xF0\x9F\x98\x80\"",
  };
  for (const char* text : canonical) {
    INFO(text);
    const value v = must_parse(text);
    CHECK(json::dump(v) == text);
    CHECK(must_parse(json::dump(v)) == v);
  }
  // Non-canonical input comes back canonical, and the value survives.
  const char* loose[] = {" [ 1 , 2 ] ", R"("\u0041\/")", "1E2", "0.50", "[1e-400]"};
  for (const char* text : loose) {
    INFO(text);
    const value v = must_parse(text);
    CHECK(must_parse(json::dump(v)) == v);
  }
  CHECK(json::dump(must_parse(R"("\u0041\/")")) == "\"A/\"");
  // Doubles go through the shortest representation and come back bit-identical.
  for (double d : {0.1, 1.0 / 3.0, 2.2250738585072014e-308, 1.7976931348623157e308, -123.456}) {
    const value back = must_parse(json::dump(value(d)));
    REQUIRE(back.is_double());
    CHECK(back.as_double() == d);
  }
}
