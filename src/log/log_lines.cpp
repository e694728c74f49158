// Access and audit records as text lines (log.hpp): `key=value` pairs, greppable and safe to
// print. A value a client chose (a target, a login name) could otherwise forge a second line
// or a field of its own, so anything beyond plain printable ASCII is quoted and escaped.

#include <cstdio>
#include <string>
#include <string_view>

#include "gatehouse/log.hpp"

namespace gatehouse {
namespace {

bool needs_quotes(std::string_view value) noexcept {
    if (value.empty()) return true;
    for (const char ch : value) {
        const auto c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c >= 0x7F || c == '"' || c == '=' || c == '\\') return true;
    }
    return false;
}

void field(std::string& out, std::string_view key, std::string_view value) {
    if (value.empty()) return;
    out += ' ';
    out += key;
    out += '=';
    if (needs_quotes(value)) {
        // ASCII only: the line stays plain text whatever the client sent.
        append_json_string(out, value, json_escape::ascii);
    } else {
        out += value;
    }
}

void number(std::string& out, std::string_view key, unsigned long long value) {
    out += ' ';
    out += key;
    out += '=';
    out += std::to_string(value);
}

}  // namespace

std::string_view to_string(access_record::kind what) noexcept {
    switch (what) {
        case access_record::kind::http: return "http";
        case access_record::kind::websocket: return "websocket";
        case access_record::kind::event_stream: return "event_stream";
    }
    return "http";
}

std::string access_line(const access_record& r) {
    std::string out = "access";
    field(out, "type", to_string(r.what));
    field(out, "method", r.method);
    field(out, "target", r.target);
    field(out, "route", r.route);
    number(out, "status", static_cast<unsigned long long>(r.status < 0 ? 0 : r.status));
    if (r.what == access_record::kind::websocket) {
        number(out, "close_code", static_cast<unsigned long long>(r.close_code));
    }
    // Milliseconds with microsecond precision: what operators read, without a float's noise.
    const long long us = r.duration.count() < 0 ? 0 : r.duration.count();
    char duration[32];
    std::snprintf(duration, sizeof duration, "%lld.%03lld", us / 1000, us % 1000);
    field(out, "duration_ms", duration);
    number(out, "bytes_received", r.bytes_received);
    number(out, "bytes_sent", r.bytes_sent);
    field(out, "client_address", r.client_address);
    field(out, "player_id", r.player_id);
    return out;
}

std::string audit_line(const audit_record& r) {
    std::string out = "audit";
    field(out, "event", r.event);
    field(out, "username", r.username);
    field(out, "player_id", r.player_id);
    field(out, "client_address", r.client_address);
    field(out, "detail", r.detail);
    return out;
}

}  // namespace gatehouse
