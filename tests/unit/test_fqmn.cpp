// Tests for actors/router/fqmn: every opcode, the seed's examples, round trips through
// to_string, the scope table, and malformed inputs with their exact error columns and messages.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "actors/router/fqmn.hpp"
#include "runtime/crypto/identity.hpp"

namespace {

using namespace cmesh;
using namespace cmesh::router;

// An ed25519 did:key (56 characters) for 0xP, from a fixed key.
node_id router_key_of(uint8_t seed) {
  node_id id;
  for (size_t i = 0; i < id.key.size(); ++i) id.key[i] = static_cast<uint8_t>(seed + i);
  return id;
}
const std::string did_a = did_from_node_id(router_key_of(1));
const std::string did_b = did_from_node_id(router_key_of(100));

fqmn must_parse(const std::string& text) {
  fqmn_error err;
  auto parsed = parse_fqmn(text, &err);
  INFO("input: ", text, "\n", err.render(text));
  REQUIRE(parsed.has_value());
  // Both round trips hold for every accepted input.
  CHECK(to_string(*parsed) == text);
  auto again = parse_fqmn(to_string(*parsed));
  REQUIRE(again.has_value());
  CHECK(*again == *parsed);
  return *parsed;
}

void check_error(const std::string& text, size_t column, const std::string& message) {
  fqmn_error err;
  auto parsed = parse_fqmn(text, &err);
  INFO("input: ", text);
  REQUIRE_FALSE(parsed.has_value());
  INFO(err.render(text));
  CHECK(err.column == column);
  CHECK(err.message == message);
}

const std::string all_opcodes = "0xS, 0xSW, 0xE, 0xEW, 0xR, 0xRW, 0xI, 0xA, 0xC, 0xP";

}  // namespace

TEST_CASE("fqmn: the seed's examples") {
  const fqmn contract_only = must_parse("0xS:0x001");
  CHECK(contract_only.op == opcode::state_read);
  CHECK(contract_only.contract == "0x001");
  CHECK(contract_only.function.empty());
  CHECK_FALSE(contract_only.args.has_value());

  const fqmn hello = must_parse("0xS:0x001:hello_world");
  CHECK(hello.contract == "0x001");
  CHECK(hello.function == "hello_world");

  const fqmn registration = must_parse("0xRW:register:helloWorld.mcom:0xS:0x001");
  CHECK(registration.op == opcode::register_name);
  CHECK(registration.name == "helloWorld.mcom");
  REQUIRE(registration.target.has_value());
  CHECK(*registration.target == contract_only);

  // Any dotted name parses for 0xR; the router answers 404 for names it does not hold.
  const fqmn google = must_parse("0xR:google.com");
  CHECK(google.op == opcode::resolve);
  CHECK(google.name == "google.com");
  CHECK(must_parse("0xR:helloWorld.mcom").name == "helloWorld.mcom");
}

TEST_CASE("fqmn: state reads and writes") {
  const fqmn read = must_parse("0xS:0x001:get:{\"key\":\"a:b\"}");
  CHECK(read.function == "get");
  REQUIRE(read.args.has_value());
  CHECK(*read.args->find_string("key") == "a:b");
  CHECK(read.args_text == "{\"key\":\"a:b\"}");

  const fqmn write = must_parse("0xSW:0xdeadbeef:set_value:[1,2.5,\"x\"]");
  CHECK(write.op == opcode::state_write);
  CHECK(write.contract == "0xdeadbeef");
  CHECK(write.function == "set_value");
  CHECK(write.args->as_array().size() == 3);
  CHECK(must_parse("0xSW:0x0").contract == "0x0");
  CHECK(must_parse("0xS:0x" + std::string(64, 'f')).contract.size() == 66);
  CHECK(must_parse("0xS:0x1:_private9").function == "_private9");
  // JSON arguments keep their spelling, including whitespace JSON allows.
  CHECK(must_parse("0xS:0x1:f: { \"a\" : 1 } ").args_text == " { \"a\" : 1 } ");
  CHECK(must_parse("0xS:0x1:f:null").args->is_null());
  CHECK(must_parse("0xS:0x1:f:\"text with : colons\"").args->as_string() ==
        "text with : colons");
}

TEST_CASE("fqmn: events subjects and wildcards") {
  const fqmn read = must_parse("0xE:events.mined.*");
  CHECK(read.op == opcode::events_read);
  CHECK(read.subject == "events.mined.*");
  CHECK(must_parse("0xE:events.>").subject == "events.>");
  CHECK(must_parse("0xE:>").subject == ">");
  CHECK(must_parse("0xE:*.b.*").subject == "*.b.*");
  CHECK(must_parse("0xE:$SYS._INBOX.a-b").subject == "$SYS._INBOX.a-b");
  CHECK(must_parse("0xE:orders.*:{\"queue\":\"workers\"}").args->find_string("queue") != nullptr);

  const fqmn publish = must_parse("0xEW:chat.room1:{\"text\":\"hi: there\"}");
  CHECK(publish.op == opcode::events_publish);
  CHECK(publish.subject == "chat.room1");
  CHECK(*publish.args->find_string("text") == "hi: there");
  CHECK(must_parse("0xEW:a").subject == "a");
}

TEST_CASE("fqmn: names and registration") {
  const fqmn with_args = must_parse("0xR:helloWorld.mcom:{\"n\":1}");
  CHECK(with_args.name == "helloWorld.mcom");
  CHECK(with_args.args->find_int("n") == 1);
  CHECK(must_parse("0xR:a-b_c.sub.mcom").name == "a-b_c.sub.mcom");
  CHECK(must_parse("0xR:" + std::string(63, 'x') + ".mcom").name.size() == 68);

  const fqmn nested = must_parse("0xRW:register:my.mcom:0xR:other.mcom:[1]");
  CHECK(nested.target->op == opcode::resolve);
  CHECK(nested.target->name == "other.mcom");
  CHECK(nested.target->args.has_value());
  CHECK_FALSE(nested.args.has_value());

  const fqmn to_proxy = must_parse("0xRW:register:far.mcom:0xP:" + did_a + ":0xS:0x2:f");
  CHECK(to_proxy.target->op == opcode::proxy);
  CHECK(to_proxy.target->target->function == "f");
}

TEST_CASE("fqmn: iam consensus and contract calls") {
  CHECK(must_parse("0xI:session").action == "session");
  CHECK(must_parse("0xI:handshake.start").action == "handshake.start");
  CHECK(must_parse("0xI:credential").op == opcode::iam);

  const fqmn consensus = must_parse("0xC:kv:members.list");
  CHECK(consensus.op == opcode::consensus);
  CHECK(consensus.service == "kv");
  CHECK(consensus.action == "members.list");

  const fqmn call = must_parse("0xA:^1.2.0:0x001:transfer:{\"to\":\"bob\"}");
  CHECK(call.op == opcode::contract);
  REQUIRE(call.versions.comparators.size() == 1);
  const auto& caret = call.versions.comparators[0];
  CHECK(caret.op == version_comparator::relation::caret);
  CHECK(caret.major == 1);
  CHECK(caret.minor == 2u);
  CHECK(caret.patch == 0u);
  CHECK(call.contract == "0x001");
  CHECK(call.function == "transfer");

  CHECK(must_parse("0xA:*:0x001:f").versions.comparators.empty());
  const fqmn bounded = must_parse("0xA:>=1.0,<2:0x2a:g");
  REQUIRE(bounded.versions.comparators.size() == 2);
  CHECK(bounded.versions.comparators[0].op == version_comparator::relation::greater_equal);
  CHECK(bounded.versions.comparators[0].minor == 0u);
  CHECK_FALSE(bounded.versions.comparators[0].patch.has_value());
  CHECK(bounded.versions.comparators[1].op == version_comparator::relation::less);
  CHECK_FALSE(bounded.versions.comparators[1].minor.has_value());
  for (const char* range : {"0", "~0.1", ">1.2.3", "<=999999999.0.0", "1,2,3,4"})
    must_parse(std::string("0xA:") + range + ":0x1:f");
}

TEST_CASE("fqmn: proxies nest up to three levels") {
  const fqmn one = must_parse("0xP:" + did_a + ":0xS:0x001");
  CHECK(one.op == opcode::proxy);
  CHECK(one.router == did_a);
  CHECK(one.router_key == router_key_of(1));
  CHECK(one.target->contract == "0x001");

  const std::string hop_a = "0xP:" + did_a + ":";
  const std::string hop_b = "0xP:" + did_b + ":";
  const fqmn three = must_parse(hop_a + hop_b + hop_a + "0xSW:0x1:f:{}");
  CHECK(three.target->target->router == did_a);
  CHECK(three.target->target->target->op == opcode::state_write);

  // A fourth nested target is too deep; the error points at where it starts.
  REQUIRE(hop_a.size() == 61);
  check_error(hop_a + hop_b + hop_a + hop_b + "0xS:0x001", 244,
              "FQMN nested too deeply (at most 3 nested targets of 0xRW and 0xP)");
  check_error("0xRW:register:a.mcom:" + hop_a + hop_b + hop_a + "0xS:0x1", 21 + 183,
              "FQMN nested too deeply (at most 3 nested targets of 0xRW and 0xP)");
}

TEST_CASE("fqmn: copies are deep and equality ignores args_text") {
  const fqmn original = must_parse("0xP:" + did_a + ":0xS:0x001:f:[1]");
  fqmn copy = original;
  CHECK(copy == original);
  copy.target->function = "g";
  CHECK(original.target->function == "f");
  CHECK_FALSE(copy == original);

  fqmn spaced = must_parse("0xS:0x1:f: [1]");
  fqmn tight = must_parse("0xS:0x1:f:[1]");
  CHECK(spaced == tight);
  CHECK(to_string(spaced) != to_string(tight));

  // Built by hand without args_text: to_string writes the compact JSON.
  fqmn built;
  built.op = opcode::events_publish;
  built.subject = "a.b";
  built.args = json::value(json::object{{"x", json::value(1)}});
  CHECK(to_string(built) == "0xEW:a.b:{\"x\":1}");
  CHECK(parse_fqmn(to_string(built)) == built);

  fqmn proxy;
  proxy.op = opcode::proxy;
  proxy.router = did_b;
  proxy.router_key = router_key_of(100);
  proxy.target = nested_fqmn(built);
  CHECK(to_string(proxy) == "0xP:" + did_b + ":0xEW:a.b:{\"x\":1}");
  CHECK(parse_fqmn(to_string(proxy)) == proxy);
}

TEST_CASE("fqmn: scope and write table") {
  struct row {
    const char* text;
    std::string_view scope;
    bool write;
  };
  const std::vector<row> rows = {
      {"0xS:0x1", "state.read", false},
      {"0xSW:0x1", "state.write", true},
      {"0xE:a", "events.read", false},
      {"0xEW:a", "events.publish", true},
      {"0xR:a.mcom", "names.resolve", false},
      {"0xRW:register:a.mcom:0xS:0x1", "names.register", true},
      {"0xI:session", "iam", false},
      {"0xA:*:0x1:f", "contracts", true},
      {"0xC:kv:get", "consensus", false},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    const fqmn x = must_parse(r.text);
    CHECK(required_scope(x) == r.scope);
    CHECK(is_write(x) == r.write);
    CHECK(is_write(x.op) == r.write);
    CHECK(opcode_from_text(opcode_text(x.op)) == x.op);
  }
  const fqmn proxied_read = must_parse("0xP:" + did_a + ":0xS:0x1");
  const fqmn proxied_write = must_parse("0xP:" + did_a + ":0xSW:0x1");
  CHECK(required_scope(proxied_read) == "proxy");
  CHECK_FALSE(is_write(proxied_read));
  CHECK(is_write(proxied_write));
  CHECK(opcode_from_text("0xs") == std::nullopt);
  CHECK(opcode_from_text("0xSWX") == std::nullopt);
}

TEST_CASE("fqmn: malformed opcodes and separators") {
  check_error("", 0, "empty FQMN (expected an opcode: " + all_opcodes + ")");
  check_error("0xQ:foo", 0, "unknown opcode '0xQ' (expected one of " + all_opcodes + ")");
  check_error("0xs:0x001", 0,
              "unknown opcode '0xs' (expected one of " + all_opcodes +
                  "); opcodes are case-sensitive: 0xS");
  check_error("0xP:" + did_a + ":0xQ", 61,
              "unknown opcode '0xQ' (expected one of " + all_opcodes + ")");
  check_error(":0x001", 0, "expected an opcode (" + all_opcodes + "), found ':'");
  check_error("0xS", 3,
              "expected ':' and a contract id after opcode 0xS, found the end of the FQMN");
  check_error("0xS;0x001", 3, "unexpected ';' after opcode 0xS (expected ':')");
  check_error(std::string(4097, 'a'), 4096, "FQMN of 4097 bytes is longer than the limit of 4096");
}

TEST_CASE("fqmn: malformed state addresses") {
  check_error("0xS:001", 4,
              "expected a contract id ('0x' and lowercase hex digits, e.g. 0x001), found '001'");
  check_error("0xS:0x00A1", 8, "contract ids use lowercase hex digits, found 'A'");
  check_error("0xS:0x00g1", 8,
              "unexpected 'g' in contract id (expected a lowercase hex digit, ':' or the end)");
  check_error("0xS:0x", 6,
              "expected a lowercase hex digit after '0x' in contract id, found the end of the "
              "FQMN");
  check_error("0xS:0x" + std::string(65, '1'), 70, "contract id longer than 64 hex digits");
  check_error("0xS:0x001:", 10,
              "expected a function name (a letter or '_' first), found the end of the FQMN");
  check_error("0xS:0x001:9lives", 10,
              "expected a function name (a letter or '_' first), found '9'");
  check_error("0xS:0x001:hello world", 15,
              "unexpected ' ' in function name (expected a letter, digit or '_', ':' or the end)");
  check_error("0xS:0x1:" + std::string(65, 'f'), 72, "function name longer than 64 characters");
  check_error("0xS:0x001\n", 9,
              "unexpected byte 0x0A in contract id (expected a lowercase hex digit, ':' or the "
              "end)");
  // JSON errors point into the whole FQMN.
  check_error("0xS:0x001:f:{\"a\":}", 17,
              "invalid JSON arguments: unexpected '}' (expected a JSON value)");
  check_error("0xS:0x001:f:", 12,
              "invalid JSON arguments: unexpected end of input (expected a JSON value)");
  check_error("0xS:0x001:f:{\"a\":1,\"a\":2}", 19,
              "invalid JSON arguments: duplicate object member name \"a\"");
  check_error("0xS:0x1:f:" + std::string(33, '[') + std::string(33, ']'), 10 + 32,
              "invalid JSON arguments: nesting deeper than 32 levels");
}

TEST_CASE("fqmn: malformed subjects") {
  check_error("0xEW:a.*", 7,
              "wildcard '*' is not allowed in a publish subject (0xEW); only reads (0xE) take "
              "wildcards");
  check_error("0xE:a.>.b", 6, "wildcard '>' must be the last token of a subject");
  check_error("0xE:a..b", 6,
              "empty token in subject (expected a letter, digit, '_', '-', '$', '*' or '>'), found "
              "'.'");
  check_error("0xEW:a.", 7,
              "empty token in subject (expected a letter, digit, '_', '-', '$'), found the end of "
              "the FQMN");
  check_error("0xE:ab*", 6, "wildcard '*' must be a whole token");
  check_error("0xE:*b", 4, "wildcard '*' must be a whole token");
  check_error("0xE:a/b", 5,
              "unexpected '/' in subject (expected a letter, digit, '_', '-', '$' or '.', ':' or "
              "the end)");
  std::string many = "0xE:a";
  for (int i = 0; i < 16; ++i) many += ".a";
  check_error(many, 4 + 32, "subject has more than 16 tokens");
  check_error("0xE:" + std::string(256, 'a'), 4 + 255, "subject longer than 255 bytes");
}

TEST_CASE("fqmn: malformed names and registrations") {
  check_error("0xR:helloWorld", 4,
              "name 'helloWorld' has no '.' (expected a dotted name such as helloWorld.mcom)");
  check_error("0xR:hello..mcom", 10, "expected a label after '.' in name, found '.'");
  check_error("0xR:h\xC3\xA9llo.mcom", 5,
              "unexpected byte 0xC3 in name (expected a letter, digit, '_', '-', '.', ':' or the "
              "end)");
  check_error("0xR:" + std::string(64, 'x') + ".mcom", 4 + 63,
              "name label longer than 63 characters");
  check_error("0xRW:register:helloWorld.com:0xS:0x001", 25,
              "only .mcom names can be registered, found '.com'");
  check_error("0xRW:register:helloWorld.MCOM:0xS:0x001", 25,
              "only .mcom names can be registered, found '.MCOM'");
  check_error("0xRW:regist:a.mcom:0xS:0x001", 5,
              "expected 'register' (the only action of 0xRW), found 'regist'");
  check_error("0xRW:register:a.mcom", 20,
              "expected ':' and the target FQMN after name, found the end of the FQMN");
  check_error("0xRW:register:a.mcom:", 21, "expected a target FQMN, found the end of the FQMN");
  check_error("0xRW:register:a.mcom:0xRW:register:b.mcom:0xS:0x001", 21,
              "a name cannot map to a registration (0xRW target is 0xRW)");
  check_error("0xRW:register:a.mcom:0xS:0x1:f:{", 32,
              "invalid JSON arguments: unexpected end of input (expected a string naming an object "
              "member)");
}

TEST_CASE("fqmn: malformed iam consensus contract and proxy addresses") {
  check_error("0xI:session:x", 11, "unexpected ':' after action (nothing may follow it)");
  check_error("0xI:handshake.", 14,
              "expected an identifier after '.' in action, found the end of the FQMN");
  check_error("0xI:ses-sion", 7,
              "unexpected '-' in action (expected a letter, digit, '_', '.' or the end)");
  check_error("0xC:kv", 6, "expected ':' and an action after service, found the end of the FQMN");
  check_error("0xA:1.02:0x001:f", 6, "leading zeros are not allowed in a version number");
  check_error("0xA:=1.0:0x001:f", 4,
              "unexpected '=' in version range (write an exact version without '=')");
  check_error("0xA:1,2,3,4,5:0x001:f", 12, "version range has more than 4 comparators");
  check_error("0xA:^1.2.3.4:0x001:f", 10,
              "unexpected '.' in version range (expected a range such as ^1.2.0, >=1.0,<2 or *)");
  check_error("0xA:1.x:0x001:f", 6, "expected a version number, found 'x'");
  check_error("0xA:1000000000:0x1:f", 4, "version number larger than 999999999");
  check_error("0xA:1:0x001", 11,
              "expected ':' and a function name after contract id, found the end of the FQMN");
  check_error("0xP:did:web:example.com:0xS:0x001", 4,
              "expected a router did:key (did:key:z6Mk...), found 'did'");
  const std::string bad_char = did_a.substr(0, 55) + "0";
  check_error("0xP:" + bad_char + ":0xS:0x001", 4 + 55,
              "unexpected '0' in router did:key (not a base58btc character)");
  check_error("0xP:" + did_a, 60,
              "expected ':' and the target FQMN after router did:key, found the end of the FQMN");

  fqmn_error err;
  CHECK_FALSE(parse_fqmn("0xP:did:key:z6Mk:0xS:0x001", &err).has_value());
  CHECK(err.column == 4);
  CHECK(err.message.rfind("invalid router did:key: ", 0) == 0);
  CHECK_FALSE(parse_fqmn("0xP:did:key:z" + std::string(60, 'a') + ":0xS:0x1", &err).has_value());
  CHECK(err.column == 4);
  CHECK(err.message == "router did:key longer than 64 characters (an ed25519 did:key has 56)");
}

TEST_CASE("fqmn: error rendering and the result form") {
  const fqmn_error err{10, "expected a function name"};
  CHECK(err.describe() == "column 10: expected a function name");
  CHECK(err.render("0xS:0x001:9lives") ==
        "column 10: expected a function name\n0xS:0x001:9lives\n          ^");
  // At the end of the input the caret stands just past it; control bytes show as '?'.
  CHECK(fqmn_error{4, "m"}.render("0xS\n") == "column 4: m\n0xS?\n    ^");

  // Long inputs show an 80-byte window around the column.
  const std::string long_input = "0xE:" + std::string(200, 'a') + "/";
  fqmn_error far;
  REQUIRE_FALSE(parse_fqmn(long_input, &far).has_value());
  CHECK(far.column == 204);
  const std::string rendered = far.render(long_input);
  const std::string expected_line = "..." + std::string(40, 'a') + "/";
  CHECK(rendered == far.describe() + "\n" + expected_line + "\n" + std::string(43, ' ') + "^");
  const std::string head = fqmn_error{0, "m"}.render(std::string(200, 'b'));
  CHECK(head == "column 0: m\n" + std::string(80, 'b') + "...\n^");

  auto ok = parse_fqmn_result("0xS:0x001");
  REQUIRE(ok.ok());
  CHECK(ok->contract == "0x001");
  auto bad = parse_fqmn_result("0xQ");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.err().code == errc::malformed);
  CHECK(bad.err().message ==
        "column 0: unknown opcode '0xQ' (expected one of " + all_opcodes + ")");
}

TEST_CASE("fqmn: parse_fqmn_into one reused object gives what a fresh parse gives, whatever it held before") {
  const std::string did = identity::derive_for_simulation(77, 1).did();
  const std::vector<std::string> inputs = {
      "0xP:" + did + ":0xRW:register:a.mcom:0xS:0x2:f", "0xS:0x001:hello_world", "0xEW:orders.created:{\"id\":7}",
      "0xA:>=1.2,<2:0x00f:run", "0xR:helloWorld.mcom", "0xC:kv:status", "0xSW:0x3:g:[1,2]", "0xI:challenge",
      "0xE:orders.*:{\"queue\":\"workers\"}"};
  fqmn reused;
  for (int round = 0; round < 2; ++round)
    for (const auto& input : inputs) {
      INFO(input);
      fqmn_error problem;
      REQUIRE(parse_fqmn_into(input, reused, &problem));
      auto fresh = parse_fqmn(input);
      REQUIRE(fresh.has_value());
      CHECK(reused == *fresh);
      CHECK(to_string(reused) == input);
    }
  // A failure reports as parse_fqmn does.
  fqmn_error into_error, fresh_error;
  CHECK_FALSE(parse_fqmn_into("0xS:0xZZ", reused, &into_error));
  CHECK_FALSE(parse_fqmn("0xS:0xZZ", &fresh_error).has_value());
  CHECK(into_error.describe() == fresh_error.describe());
}
