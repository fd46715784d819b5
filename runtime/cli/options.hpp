// Declarative command-line options: each command lists its flags with help text, and gets
// `--help`, unknown-flag errors and missing-value errors for free. Pure; no CAF.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "messages/error.hpp"

namespace cmesh::cli {

struct option_spec {
  std::string name;         // without dashes: "nodes"
  std::string value_name;   // "N"; empty = boolean flag
  std::string help;
  std::string default_text; // shown in --help; empty = none
  bool repeatable = false;
};

struct command_spec {
  std::string name;         // "cmesh sim"
  std::string summary;      // one line
  std::string usage;        // "cmesh sim [options]"
  std::vector<option_spec> options;
  std::string epilog;       // examples
};

class parsed_options {
public:
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  // Last value given (or `fallback`).
  std::string get(const std::string& name, const std::string& fallback = {}) const;
  const std::vector<std::string>& all(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }
  bool help() const { return help_; }
  // Replaces every value of `name` with `value` (a command that reruns itself with a new seed).
  void set(const std::string& name, std::string value) { values_[name] = {std::move(value)}; }

private:
  friend result<parsed_options> parse_options(const command_spec&, int, char**);
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

// Parses argv[first..argc). Errors name the flag and point to --help.
result<parsed_options> parse_options(const command_spec& spec, int argc, char** argv);
std::string help_text(const command_spec& spec);

// The preamble of every command: parses argv; on a usage error prints "NAME: reason" to stderr and
// sets `exit_code` to 2; on --help prints the help to stdout and sets `exit_code` to 0. Returns the
// options only when the command should go on to run.
std::optional<parsed_options> parse_command_line(const command_spec& spec, int argc, char** argv,
                                                 int& exit_code);

// For a usage problem found after parsing: prints "NAME: message (see NAME --help)" to stderr and
// returns 2 (cli::exit_usage).
int usage_error(const command_spec& spec, const std::string& message);

// Parses argv against `spec` and runs `body` on the result; returns the usage exit code when
// parsing stops (bad option, or --help printed). For subcommands (cmesh events sub, ...).
int run_with_options(int argc, char** argv, const command_spec& spec,
                     int (*body)(const command_spec&, const parsed_options&));

// One subcommand of a command with several (cmesh events sub|pub|request, ...).
struct subcommand {
  const char* name;
  command_spec (*spec)();
  int (*body)(const command_spec&, const parsed_options&);
};

// argv[0] names one of `table`: runs it on the rest of argv (run_with_options). "--help", "-h"
// and "help" print `overview` (exit 0); a missing or unknown name prints an error naming
// `command` and the overview on stderr (exit 2).
int run_subcommand(const char* command, const char* overview, int argc, char** argv,
                   const std::vector<subcommand>& table);

// "a,b,,c" -> {"a", "b", "c"}: the items between separators, empty ones skipped.
std::vector<std::string> split_list(const std::string& text, char separator = ',');

// Typed accessors with clear errors: "--nodes: 'abc' is not a whole number".
result<uint64_t> get_unsigned(const parsed_options& options, const std::string& name,
                              uint64_t fallback, uint64_t min, uint64_t max);

}  // namespace cmesh::cli
