#include "runtime/cli/options.hpp"

#include <charconv>
#include <cstdio>
#include <sstream>

namespace cmesh::cli {

std::string parsed_options::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() || it->second.empty() ? fallback : it->second.back();
}

const std::vector<std::string>& parsed_options::all(const std::string& name) const {
  static const std::vector<std::string> none;
  auto it = values_.find(name);
  return it == values_.end() ? none : it->second;
}

result<parsed_options> parse_options(const command_spec& spec, int argc, char** argv) {
  parsed_options out;
  auto find = [&](const std::string& name) -> const option_spec* {
    for (const auto& o : spec.options)
      if (o.name == name) return &o;
    return nullptr;
  };
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      out.help_ = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      out.positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const option_spec* o = find(name);
    if (!o)
      return error{errc::invalid_argument, "unknown option --" + name + " (see " + spec.name + " --help)"};
    if (o->value_name.empty()) {
      if (inline_value) return error{errc::invalid_argument, "--" + name + " takes no value"};
      value = "true";
    } else if (!inline_value) {
      if (i + 1 >= argc)
        return error{errc::invalid_argument, "--" + name + " needs a value (" + o->value_name + ")"};
      value = argv[++i];
    }
    auto& slot = out.values_[name];
    if (!slot.empty() && !o->repeatable)
      return error{errc::invalid_argument, "--" + name + " given more than once"};
    slot.push_back(value);
  }
  return out;
}

std::string help_text(const command_spec& spec) {
  std::ostringstream os;
  os << spec.summary << "\n\nUsage: " << spec.usage << "\n";
  if (!spec.options.empty()) os << "\nOptions:\n";
  for (const auto& o : spec.options) {
    std::string left = "  --" + o.name + (o.value_name.empty() ? "" : " " + o.value_name);
    os << left;
    if (left.size() < 28) os << std::string(28 - left.size(), ' ');
    else os << "\n" << std::string(28, ' ');
    os << o.help;
    if (!o.default_text.empty()) os << " (default: " << o.default_text << ")";
    if (o.repeatable) os << " [repeatable]";
    os << "\n";
  }
  os << "  --help                    show this help\n";
  if (!spec.epilog.empty()) os << "\n" << spec.epilog << "\n";
  return os.str();
}

std::optional<parsed_options> parse_command_line(const command_spec& spec, int argc, char** argv,
                                                 int& exit_code) {
  auto parsed = parse_options(spec, argc, argv);
  if (!parsed) {
    std::fprintf(stderr, "%s: %s\n", spec.name.c_str(), parsed.err().message.c_str());
    exit_code = 2;  // cli::exit_usage
    return std::nullopt;
  }
  if (parsed->help()) {
    std::fputs(help_text(spec).c_str(), stdout);
    exit_code = 0;  // cli::exit_ok
    return std::nullopt;
  }
  return std::move(*parsed);
}

result<uint64_t> get_unsigned(const parsed_options& options, const std::string& name,
                              uint64_t fallback, uint64_t min, uint64_t max) {
  if (!options.has(name)) return fallback;
  auto text = options.get(name);
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
    return error{errc::invalid_argument, "--" + name + ": '" + text + "' is not a whole number"};
  if (value < min || value > max)
    return error{errc::invalid_argument, "--" + name + ": " + text + " is outside " +
                                             std::to_string(min) + ".." + std::to_string(max)};
  return value;
}

int usage_error(const command_spec& spec, const std::string& message) {
  std::fprintf(stderr, "%s: %s (see %s --help)\n", spec.name.c_str(), message.c_str(),
               spec.name.c_str());
  return 2;  // cli::exit_usage
}

std::vector<std::string> split_list(const std::string& text, char separator) {
  std::vector<std::string> items;
  std::string item;
  for (char c : text) {
    if (c != separator) {
      item += c;
    } else if (!item.empty()) {
      items.push_back(std::move(item));
      item.clear();
    }
  }
  if (!item.empty()) items.push_back(std::move(item));
  return items;
}

int run_with_options(int argc, char** argv, const command_spec& spec,
                     int (*body)(const command_spec&, const parsed_options&)) {
  int usage_code = 0;
  auto parsed = parse_command_line(spec, argc, argv, usage_code);
  if (!parsed) return usage_code;
  return body(spec, *parsed);
}

int run_subcommand(const char* command, const char* overview, int argc, char** argv,
                   const std::vector<subcommand>& table) {
  std::string names;
  for (size_t i = 0; i < table.size(); ++i)
    names += std::string(i == 0 ? "" : i + 1 == table.size() ? " or " : ", ") + table[i].name;
  if (argc < 1) {
    std::fprintf(stderr, "%s: give a subcommand: %s\n\n%s", command, names.c_str(), overview);
    return 2;
  }
  const std::string what = argv[0];
  if (what == "--help" || what == "-h" || what == "help") {
    std::fputs(overview, stdout);
    return 0;
  }
  for (const auto& sub : table)
    if (what == sub.name) return run_with_options(argc - 1, argv + 1, sub.spec(), sub.body);
  std::fprintf(stderr, "%s: unknown subcommand '%s' (expected %s)\n\n%s", command, what.c_str(), names.c_str(),
               overview);
  return 2;
}

}  // namespace cmesh::cli
