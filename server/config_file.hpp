#pragma once
// The reference server's configuration file (`--config PATH`, docs/operations.md): TOML whose
// top-level keys are the long flag names without `--` (underscores allowed for dashes), read
// with toml++ and applied under the command line and the environment, never over them.

#include <CLI/CLI.hpp>
#include <map>
#include <string>
#include <vector>

#include "config_check.hpp"

namespace gatehouse_server {

// Where each flag the file set was written ("gatehouse.toml:12"), for the check's messages.
using config_origins = std::map<std::string, std::string>;

// Reads the file `path` (unless empty) and gives each of its keys to the flag of that name,
// except to the flags the command line or the environment already set (CLI11's count). Call
// after `app.parse`. Returns every problem: an unreadable file, a TOML syntax error, an
// unknown key, a key set twice, a value of the wrong type or out of its flag's choices, each
// naming the file, its line and the key, never the value (it may be a secret). The flags set
// from the file are recorded in `origins`.
std::vector<config_problem> apply_config_file(CLI::App& app, const std::string& path,
                                              config_origins& origins);

// After `app.parse`: applies the file `c.config_file` names, then check_config; one line per
// problem, those of the file first (what apply_config_file and describe give).
std::vector<std::string> settle_config(CLI::App& app, config& c);

// One line for a problem: `FILE:LINE: ` first when the file set its flag.
std::string describe(const config_problem& problem, const config_origins& origins);

}  // namespace gatehouse_server
