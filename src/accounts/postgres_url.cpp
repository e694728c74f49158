#include "accounts/postgres_url.hpp"

#include <libpq-fe.h>

#include <charconv>
#include <memory>

namespace gatehouse::detail {
namespace postgres {
namespace {

struct options_freer {
    void operator()(PQconninfoOption* o) const noexcept { PQconninfoFree(o); }
};

// A quoted part of a libpq URI message may be the whole URI, password included.
std::string without_quoted(std::string_view message) {
    std::string out;
    bool quoted = false;
    for (const char c : message) {
        if (c == '"') {
            if (!quoted) out += "\"...\"";
            quoted = !quoted;
        } else if (!quoted && c != '\n') {
            out += c;
        }
    }
    return out;
}

// Splits gatehouse's own `pool_size` off the query; the rest goes to libpq. Empty `why` on
// success.
std::string take_pool_size(std::string& url, std::size_t& pool_size) {
    const std::size_t q = url.find('?');
    if (q == std::string::npos) return {};
    std::string kept;
    std::string_view rest = std::string_view(url).substr(q + 1);
    while (!rest.empty()) {
        const std::size_t amp = rest.find('&');
        const std::string_view param = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        constexpr std::string_view key = "pool_size=";
        if (param.substr(0, key.size()) == key) {
            const std::string_view value = param.substr(key.size());
            std::size_t n = 0;
            const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (ec != std::errc() || end != value.data() + value.size() || n < 1 || n > 64) {
                return "pool_size must be a whole number from 1 to 64";
            }
            pool_size = n;
            continue;
        }
        if (!kept.empty()) kept += '&';
        kept += param;
    }
    url.resize(q);
    if (!kept.empty()) url += "?" + kept;
    return {};
}

std::string shown_url(const PQconninfoOption* parsed) {
    std::string user;
    std::string host;
    std::string port;
    std::string dbname;
    for (const auto* o = parsed; o->keyword != nullptr; ++o) {
        if (o->val == nullptr) continue;
        const std::string_view k = o->keyword;
        if (k == "user") user = o->val;
        if (k == "host") host = o->val;
        if (k == "port") port = o->val;
        if (k == "dbname") dbname = o->val;
    }
    std::string out = "postgresql://";
    if (!user.empty()) out += user + "@";
    out += host;
    if (!port.empty()) out += ":" + port;
    if (!dbname.empty()) out += "/" + dbname;
    return out;
}

}  // namespace

std::string parse_url(std::string_view url, postgres_options& options, conninfo& out) {
    std::string text(url);
    if (text.find('\0') != std::string::npos) return "the URL contains NUL";
    if (auto why = take_pool_size(text, options.pool_size); !why.empty()) return why;
    char* error = nullptr;
    const std::unique_ptr<PQconninfoOption, options_freer> parsed(
        PQconninfoParse(text.c_str(), &error));
    if (parsed == nullptr) {
        std::string why = "cannot parse the URL";
        if (error != nullptr) {
            why += ": " + without_quoted(error);
            PQfreemem(error);
        }
        return why + " (postgresql://[user[:password]@][host][:port][/dbname][?param=value...])";
    }
    bool has_timeout = false;
    bool has_name = false;
    for (const auto* o = parsed.get(); o->keyword != nullptr; ++o) {
        if (o->val == nullptr) continue;
        const std::string_view k = o->keyword;
        // Text parameters and results are UTF-8 whatever the URL says; the store validates
        // what it sends as such.
        if (k == "client_encoding") continue;
        if (k == "password") out.password = o->val;
        has_timeout = has_timeout || k == "connect_timeout";
        has_name = has_name || k == "application_name";
        out.keys.emplace_back(k);
        out.values.emplace_back(o->val);
    }
    if (!has_timeout) {
        out.keys.emplace_back("connect_timeout");
        out.values.push_back(std::to_string(options.connect_timeout_s));
    }
    if (!has_name) {
        out.keys.emplace_back("application_name");
        out.values.emplace_back("gatehouse");
    }
    out.keys.emplace_back("client_encoding");
    out.values.emplace_back("UTF8");
    out.shown = shown_url(parsed.get());
    return {};
}

}  // namespace postgres

std::string redacted_postgres_url(std::string_view url) {
    postgres_options ignored;
    postgres::conninfo info;
    if (!postgres::parse_url(url, ignored, info).empty()) return "postgresql://(unparsable URL)";
    return info.shown;
}

}  // namespace gatehouse::detail
