#pragma once
// The one validation pass over the reference server's flags: run by `check-config` and at every
// start before anything is opened, bound or connected, so a bad value is a usage error (exit 2)
// that names its flag, whichever of them it is and however many there are.

#include <string>
#include <vector>

#include "server_config.hpp"

namespace gatehouse_server {

// One configuration problem: the flag it concerns, and a message that names it and never
// repeats a secret (a key, a password inside a URL).
struct config_problem {
    std::string flag;     // "--access-ttl"
    std::string message;  // "--access-ttl is seconds from 1 to 31536000"
};

// Every problem of `c`, in flag order; empty when the server may start. Opens nothing: URLs and
// addresses are parsed by the library's own checks (host names are not resolved), and the
// password-hash cost is tried once in memory.
std::vector<config_problem> check_config(const config& c);

}  // namespace gatehouse_server
