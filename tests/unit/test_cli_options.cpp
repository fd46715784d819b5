// Tests for runtime/cli/options.hpp: declarative option parsing, typed accessors, help text.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "runtime/cli/options.hpp"

namespace {

using namespace cmesh;
using namespace cmesh::cli;

command_spec sample_spec() {
  command_spec spec;
  spec.name = "cmesh sim";
  spec.summary = "Run a deterministic simulation.";
  spec.usage = "cmesh sim [options]";
  spec.options = {
      {"nodes", "N", "number of simulated nodes", "10", false},
      {"seed", "SEED", "simulation seed", "", false},
      {"partition", "SPEC", "cut the network for a while", "", true},
      {"quiet", "", "print only the summary", "", false},
      {"a-very-long-option-name", "VALUE", "an option whose name overflows the column", "", false},
  };
  spec.epilog = "Example: cmesh sim --nodes 100 --seed 7";
  return spec;
}

// argv as parse_options sees it: mutable C strings that outlive the call.
struct args {
  std::vector<std::string> storage;
  std::vector<char*> pointers;
  explicit args(std::vector<std::string> words) : storage(std::move(words)) {
    for (auto& word : storage) pointers.push_back(word.data());
  }
  int argc() const { return static_cast<int>(pointers.size()); }
  char** argv() { return pointers.data(); }
};

result<parsed_options> parse(std::vector<std::string> words) {
  args a(std::move(words));
  return parse_options(sample_spec(), a.argc(), a.argv());
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("cli options: flag followed by a separate value") {
  auto parsed = parse({"--nodes", "25", "--seed", "7"});
  REQUIRE(parsed.ok());
  CHECK(parsed->has("nodes"));
  CHECK(parsed->get("nodes") == "25");
  CHECK(parsed->get("seed") == "7");
  CHECK_FALSE(parsed->has("quiet"));
  CHECK_FALSE(parsed->help());
  CHECK(parsed->positional().empty());
}

TEST_CASE("cli options: flag with an inline value") {
  auto parsed = parse({"--nodes=25", "--seed=x=y"});
  REQUIRE(parsed.ok());
  CHECK(parsed->get("nodes") == "25");
  CHECK(parsed->get("seed") == "x=y");  // only the first '=' separates name and value
}

TEST_CASE("cli options: an inline value may be empty") {
  auto parsed = parse({"--seed="});
  REQUIRE(parsed.ok());
  CHECK(parsed->has("seed"));
  CHECK(parsed->get("seed", "fallback").empty());
}

TEST_CASE("cli options: boolean flags take no value") {
  auto parsed = parse({"--quiet", "--nodes", "3"});
  REQUIRE(parsed.ok());
  CHECK(parsed->has("quiet"));
  CHECK(parsed->get("quiet") == "true");
  CHECK(parsed->get("nodes") == "3");

  auto with_value = parse({"--quiet=yes"});
  REQUIRE_FALSE(with_value.ok());
  CHECK(with_value.err().code == errc::invalid_argument);
  CHECK(contains(with_value.err().message, "--quiet"));
  CHECK(contains(with_value.err().message, "takes no value"));
}

TEST_CASE("cli options: a boolean flag does not swallow the next word") {
  auto parsed = parse({"--quiet", "extra"});
  REQUIRE(parsed.ok());
  CHECK(parsed->get("quiet") == "true");
  REQUIRE(parsed->positional().size() == 1);
  CHECK(parsed->positional()[0] == "extra");
}

TEST_CASE("cli options: repeatable options keep every value in order") {
  auto parsed = parse({"--partition", "1s-2s:0/1", "--partition=3s-4s:2"});
  REQUIRE(parsed.ok());
  REQUIRE(parsed->all("partition").size() == 2);
  CHECK(parsed->all("partition")[0] == "1s-2s:0/1");
  CHECK(parsed->all("partition")[1] == "3s-4s:2");
  CHECK(parsed->get("partition") == "3s-4s:2");  // get is the last value
  CHECK(parsed->all("seed").empty());
}

TEST_CASE("cli options: a non-repeatable option given twice is an error") {
  auto parsed = parse({"--nodes", "3", "--nodes=4"});
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.err().code == errc::invalid_argument);
  CHECK(contains(parsed.err().message, "--nodes"));
  CHECK(contains(parsed.err().message, "more than once"));
}

TEST_CASE("cli options: unknown option names the option and points to --help") {
  auto parsed = parse({"--nodes", "3", "--colour", "red"});
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.err().code == errc::invalid_argument);
  CHECK(contains(parsed.err().message, "--colour"));
  CHECK(contains(parsed.err().message, "cmesh sim --help"));

  auto inline_form = parse({"--colour=red"});
  REQUIRE_FALSE(inline_form.ok());
  CHECK(contains(inline_form.err().message, "--colour"));
  CHECK_FALSE(contains(inline_form.err().message, "red"));  // the name, not the value
}

TEST_CASE("cli options: missing value at the end names the option and its value") {
  auto parsed = parse({"--seed", "1", "--nodes"});
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.err().code == errc::invalid_argument);
  CHECK(contains(parsed.err().message, "--nodes"));
  CHECK(contains(parsed.err().message, "needs a value"));
  CHECK(contains(parsed.err().message, "N"));
}

TEST_CASE("cli options: --help and -h set help") {
  auto long_form = parse({"--nodes", "3", "--help"});
  REQUIRE(long_form.ok());
  CHECK(long_form->help());
  CHECK(long_form->get("nodes") == "3");
  auto short_form = parse({"-h"});
  REQUIRE(short_form.ok());
  CHECK(short_form->help());
  CHECK_FALSE(short_form->has("help"));
}

TEST_CASE("cli options: positional words and a bare double dash") {
  auto parsed = parse({"run", "--nodes", "2", "--", "-x"});
  REQUIRE(parsed.ok());
  CHECK(parsed->positional() == std::vector<std::string>{"run", "--", "-x"});
  CHECK(parsed->get("nodes") == "2");
}

TEST_CASE("cli options: empty argument list parses to nothing") {
  auto parsed = parse({});
  REQUIRE(parsed.ok());
  CHECK_FALSE(parsed->help());
  CHECK(parsed->positional().empty());
  CHECK_FALSE(parsed->has("nodes"));
  CHECK(parsed->get("nodes", "10") == "10");
}

TEST_CASE("cli options: get_unsigned returns the value or the fallback") {
  auto parsed = parse({"--nodes", "250"});
  REQUIRE(parsed.ok());
  auto nodes = get_unsigned(*parsed, "nodes", 10, 1, 1000);
  REQUIRE(nodes.ok());
  CHECK(*nodes == 250);
  auto seed = get_unsigned(*parsed, "seed", 77, 0, 50);
  REQUIRE(seed.ok());
  CHECK(*seed == 77);  // absent: the fallback, not checked against the range
  auto bounds = parse({"--nodes", "1"});
  REQUIRE(bounds.ok());
  CHECK(get_unsigned(*bounds, "nodes", 10, 1, 1).ok());  // min and max are inclusive
}

TEST_CASE("cli options: get_unsigned rejects values outside the range") {
  auto low = parse({"--nodes", "0"});
  REQUIRE(low.ok());
  auto too_low = get_unsigned(*low, "nodes", 10, 1, 1000);
  REQUIRE_FALSE(too_low.ok());
  CHECK(too_low.err().code == errc::invalid_argument);
  CHECK(contains(too_low.err().message, "--nodes"));
  CHECK(contains(too_low.err().message, "1..1000"));

  auto high = parse({"--nodes", "1001"});
  REQUIRE(high.ok());
  auto too_high = get_unsigned(*high, "nodes", 10, 1, 1000);
  REQUIRE_FALSE(too_high.ok());
  CHECK(contains(too_high.err().message, "1001"));
  CHECK(contains(too_high.err().message, "1..1000"));
}

TEST_CASE("cli options: get_unsigned rejects text that is not a whole number") {
  for (std::string text : {"abc", "12x", "-3", "+3", " 3", "1.5", "", "18446744073709551616"}) {
    CAPTURE(text);
    auto parsed = parse({"--nodes=" + text});
    REQUIRE(parsed.ok());
    auto value = get_unsigned(*parsed, "nodes", 10, 0, UINT64_MAX);
    REQUIRE_FALSE(value.ok());
    CHECK(value.err().code == errc::invalid_argument);
    CHECK(contains(value.err().message, "--nodes"));
    CHECK(contains(value.err().message, "'" + text + "'"));
    CHECK(contains(value.err().message, "not a whole number"));
  }
}

TEST_CASE("cli options: help text lists every option with its details") {
  auto spec = sample_spec();
  auto text = help_text(spec);
  CHECK(contains(text, spec.summary));
  CHECK(contains(text, "Usage: cmesh sim [options]"));
  for (const auto& o : spec.options) {
    CAPTURE(o.name);
    CHECK(contains(text, "--" + o.name));
    CHECK(contains(text, o.help));
  }
  CHECK(contains(text, "--nodes N"));
  CHECK(contains(text, "(default: 10)"));
  CHECK(contains(text, "cut the network for a while [repeatable]"));
  CHECK_FALSE(contains(text, "print only the summary [repeatable]"));
  CHECK(contains(text, "--help"));
  CHECK(contains(text, spec.epilog));
  // An option name wider than the column moves its help to the next line.
  CHECK(contains(text, "--a-very-long-option-name VALUE\n"));
  // A short option's help is on its own line, aligned at column 28.
  CHECK(contains(text, "\n  --quiet" + std::string(28 - 9, ' ') + "print only the summary\n"));
}
