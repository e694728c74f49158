#include "config_file.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string_view>
#include <utility>

namespace gatehouse_server {
namespace {

// What a flag takes, read off the option CLI11 built for it: a switch (add_flag), a list
// (a vector, repeatable or comma-separated), or one value of a CLI11 type.
enum class value_kind { boolean, list, whole_number, number, text };

value_kind kind_of(const CLI::Option& option) {
    if (option.get_expected_max() == 0) return value_kind::boolean;
    if (option.get_items_expected_max() > 1) return value_kind::list;
    const std::string type = option.get_type_name();
    const auto starts = [&type](std::string_view prefix) {
        return type.compare(0, prefix.size(), prefix) == 0;
    };
    if (starts("UINT") || starts("INT")) return value_kind::whole_number;
    if (starts("FLOAT")) return value_kind::number;
    return value_kind::text;
}

const char* expected(value_kind kind) {
    switch (kind) {
        case value_kind::boolean: return "true or false";
        case value_kind::list: return "an array of strings (or one string)";
        case value_kind::whole_number: return "a whole number";
        case value_kind::number: return "a number";
        case value_kind::text: return "a string";
    }
    return "a value";
}

// The value as CLI11 would have read it from the command line; false for a wrong TOML type.
bool to_arguments(const toml::node& value, value_kind kind, std::vector<std::string>& out) {
    switch (kind) {
        case value_kind::boolean:
            if (const auto b = value.value_exact<bool>()) {
                out.push_back(*b ? "true" : "false");
                return true;
            }
            return false;
        case value_kind::list:
            if (const auto s = value.value_exact<std::string>()) {
                out.push_back(*s);
                return true;
            }
            if (const auto* array = value.as_array()) {
                for (const auto& item : *array) {
                    const auto s = item.value_exact<std::string>();
                    if (!s) return false;
                    out.push_back(*s);
                }
                return true;
            }
            return false;
        case value_kind::whole_number:
            if (const auto i = value.value_exact<std::int64_t>()) {
                out.push_back(std::to_string(*i));
                return true;
            }
            return false;
        case value_kind::number:
            if (const auto i = value.value_exact<std::int64_t>()) {
                out.push_back(std::to_string(*i));
                return true;
            }
            if (const auto d = value.value_exact<double>()) {
                std::ostringstream text;
                text.precision(17);
                text << *d;
                out.push_back(text.str());
                return true;
            }
            return false;
        case value_kind::text:
            if (const auto s = value.value_exact<std::string>()) {
                out.push_back(*s);
                return true;
            }
            return false;
    }
    return false;
}

std::string flag_name(std::string_view key) {
    std::string flag = "--";
    for (const char c : key) flag += c == '_' ? '-' : c;
    return flag;
}

// Gives one key's value to its flag unless the command line or the environment set that flag.
// Returns why it cannot (empty when it could, or when the flag was set already); `applied`
// says whether the value was taken. `seen`: flag -> the key that named it first.
std::string apply_key(CLI::App& app, const std::string& name, const toml::node& value,
                      std::map<std::string, std::string>& seen, bool& applied) {
    applied = false;
    const std::string flag = flag_name(name);
    CLI::Option* option = flag == "--config" || flag == "--help" || flag == "--version"
                              ? nullptr
                              : app.get_option_no_throw(flag);
    if (option == nullptr) {
        return value.is_table() ? "unknown key (tables are not used: write key = value at the "
                                  "top level)"
                                : "unknown key (keys are the long flag names without --)";
    }
    if (const auto [first, inserted] = seen.emplace(flag, name); !inserted) {
        return "sets " + flag + ", as " + first->second + " does: keep one";
    }
    const value_kind kind = kind_of(*option);
    std::vector<std::string> arguments;
    if (!to_arguments(value, kind, arguments)) return std::string("expects ") + expected(kind);
    if (option->count() > 0) return {};  // the command line or the environment wins
    // CLI11 reads an empty variable as unset, so the file would win over what looks like an
    // override: the operator who exported `GATEHOUSE_X=` to clear a value would not get it.
    if (const std::string env = option->get_envname(); !env.empty()) {
        const char* set = std::getenv(env.c_str());
        if (set != nullptr && *set == '\0') {
            return env + " is empty and read as unset; the file's " + name +
                   " would apply: unset one";
        }
    }
    applied = true;
    // `key = []`: the list's default, which is empty for every list flag.
    if (arguments.empty()) return {};
    try {
        option->add_result(arguments);
        option->run_callback();
        return {};
    } catch (const CLI::Error&) {
        // CLI11's message quotes the value, which may be a secret.
        option->clear();
        applied = false;
        if (kind == value_kind::whole_number) return "not a whole number in range";
        const std::string type = option->get_type_name();  // "TEXT:{queue,drop,close}"
        const auto choices = type.find(":{");
        if (choices != std::string::npos) return "not one of " + type.substr(choices + 1);
        return "not a value " + flag + " accepts";
    }
}

}  // namespace

std::vector<config_problem> apply_config_file(CLI::App& app, const std::string& path,
                                              config_origins& origins) {
    std::vector<config_problem> problems;
    if (path.empty()) return problems;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
        problems.push_back({"--config", path + ": " + (ec ? ec.message() : "not a file")});
        return problems;
    }
    std::ifstream in(path, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.is_open() || in.bad()) {
        problems.push_back({"--config", path + ": cannot be read"});
        return problems;
    }
    toml::table table;
    try {
        table = toml::parse(content, path);
    } catch (const toml::parse_error& e) {
        // toml++'s description names what it expected and may quote a character or two of
        // the line, never a whole value; the line and column say where.
        const auto& where = e.source().begin;
        problems.push_back({"--config", path + ":" + std::to_string(where.line) + ":" +
                                            std::to_string(where.column) +
                                            ": not valid TOML: " + std::string(e.description())});
        return problems;
    }
    std::map<std::string, std::string> seen;
    // toml++ keeps a table sorted by key; the problems are told in the file's order.
    std::vector<std::pair<std::uint32_t, config_problem>> found;
    for (auto&& [key, value] : table) {
        const std::string name(key.str());
        const std::uint32_t line = key.source().begin.line;
        const std::string where = path + ':' + std::to_string(line);
        bool applied = false;
        const std::string why = apply_key(app, name, value, seen, applied);
        if (applied) origins[flag_name(name)] = where;
        if (!why.empty()) {
            std::string message = where;
            message.append(": ").append(name).append(": ").append(why);
            found.push_back({line, {"--config", std::move(message)}});
        }
    }
    std::stable_sort(found.begin(), found.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [line, problem] : found) problems.push_back(std::move(problem));
    return problems;
}

std::vector<std::string> settle_config(CLI::App& app, config& c) {
    config_origins origins;
    auto problems = apply_config_file(app, c.config_file, origins);
    for (auto& problem : check_config(c)) problems.push_back(std::move(problem));
    std::vector<std::string> lines;
    lines.reserve(problems.size());
    for (const auto& problem : problems) lines.push_back(describe(problem, origins));
    return lines;
}

std::string describe(const config_problem& problem, const config_origins& origins) {
    const auto from = origins.find(problem.flag);
    if (from == origins.end()) return problem.message;
    return from->second + ": " + problem.message;
}

}  // namespace gatehouse_server
