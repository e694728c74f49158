#pragma once
/// @file
/// `redis_url`: where and how to reach one Redis server, parsed from a `redis://` URL, and
/// the same URL for logs with its password hidden.

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace gatehouse {

/// Where and how to reach one Redis server, as named by a `redis://` URL.
///
/// Thread safety: a plain value.
struct redis_url {
    std::string host;           ///< Host name, IPv4 literal or IPv6 literal (without brackets).
    std::uint16_t port = 6379;  ///< TCP port.
    std::string user;           ///< ACL user name; empty means the `default` user.
    std::string password;       ///< Password; empty means no AUTH is sent.
    int db = 0;                 ///< Logical database, 0-15; 0 means no SELECT is sent.
};

/// Parses `redis://[user:password@]host[:port][/db]`.
///
/// Also accepted: `redis://:password@host` (password only), percent-encoded user and password,
/// an IPv6 host in brackets (`redis://[::1]:6380`), and a trailing `/`. The port defaults to
/// 6379 and the database to 0; a database is one or two digits naming 0-15.
/// @param text the URL.
/// @param out receives the parsed URL; unchanged on error.
/// @return empty, or `std::errc::invalid_argument` for anything else (other schemes, query
///         strings, a user without a password, bad percent escapes, ports outside 1-65535).
/// Thread safety: pure function.
std::error_code parse_redis_url(std::string_view text, redis_url& out);

/// `u` as a URL for logs: `redis://user:***@host:port/db`, the password never shown (and
/// `:***@` whenever a user or password is set, so a log does not even say which).
/// Thread safety: pure function.
std::string redacted(const redis_url& u);

}  // namespace gatehouse
