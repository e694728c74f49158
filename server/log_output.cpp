#include "log_output.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <utility>

#include "gatehouse/spdlog_sink.hpp"

namespace gatehouse_server {
namespace {

constexpr std::string_view records_logger = "gatehouse.record";
const char* json_level(spdlog::level::level_enum level) noexcept {
    switch (level) {
        case spdlog::level::trace: return "trace";
        case spdlog::level::debug: return "debug";
        case spdlog::level::info: return "info";
        case spdlog::level::warn: return "warn";
        case spdlog::level::err: return "error";
        case spdlog::level::critical: return "critical";
        default: return "info";
    }
}

void append_line_start(std::string& out, std::chrono::system_clock::time_point at,
                       spdlog::level::level_enum level) {
    out += "{\"ts\":\"";
    append_utc_timestamp(out, at);
    out += "\",\"level\":\"";
    out += json_level(level);
    out += '"';
}

// One JSON object per line. Messages are escaped into `msg`; records (logged through the
// records logger) come with their members written already.
class json_formatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        std::string line;
        line.reserve(msg.payload.size() + 64);
        append_line_start(line, msg.time, msg.level);
        const std::string_view payload(msg.payload.data(), msg.payload.size());
        if (std::string_view(msg.logger_name.data(), msg.logger_name.size()) == records_logger) {
            line += ',';
            line += payload;
        } else {
            line += ",\"msg\":";
            append_json_string(line, payload);
        }
        line += "}\n";
        dest.append(line.data(), line.data() + line.size());
    }

    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<json_formatter>();
    }
};

// spdlog reports its own failures (a sink that threw) through this, in the same format, rather
// than as its default `[*** LOG ERROR ***]` line.
void report_spdlog_error(log_format format, const std::string& what) {
    std::string line;
    if (format == log_format::json) {
        append_line_start(line, std::chrono::system_clock::now(), spdlog::level::err);
        line += ",\"msg\":";
        append_json_string(line, "spdlog: " + what);
        line += "}\n";
    } else {
        append_utc_timestamp(line, std::chrono::system_clock::now());
        line += " error spdlog: " + what + "\n";
    }
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

void append_number(std::string& out, std::string_view key, unsigned long long value) {
    out += ",\"";
    out += key;
    out += "\":";
    out += std::to_string(value);
}

void append_text(std::string& out, std::string_view key, std::string_view value) {
    if (value.empty()) return;
    out += ",\"";
    out += key;
    out += "\":";
    append_json_string(out, value);
}

}  // namespace

log_format parse_log_format(std::string_view name) noexcept {
    return name == "json" ? log_format::json : log_format::text;
}

void append_utc_timestamp(std::string& out, std::chrono::system_clock::time_point at) {
    using namespace std::chrono;
    const auto ms = duration_cast<milliseconds>(at.time_since_epoch()).count();
    const auto seconds = static_cast<std::time_t>(ms / 1000 - (ms % 1000 < 0 ? 1 : 0));
    const auto millis = static_cast<int>((ms % 1000 + 1000) % 1000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[40];
    const int n =
        std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                      utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
    if (n > 0) out.append(text, static_cast<std::size_t>(n));
}

std::string access_json_members(const gatehouse::access_record& r) {
    using kind = gatehouse::access_record::kind;
    std::string summary;
    if (r.what == kind::http) {
        summary =
            std::string(r.method) + " " + std::string(r.target) + " " + std::to_string(r.status);
    } else if (r.what == kind::websocket) {
        summary = "websocket " + std::string(r.target) + " closed " + std::to_string(r.close_code);
    } else {
        summary = "event stream " + std::string(r.target) + " ended";
    }
    std::string out = "\"msg\":";
    append_json_string(out, summary);
    out += ",\"kind\":\"access\"";
    append_text(out, "type", gatehouse::to_string(r.what));
    append_text(out, "method", r.method);
    append_text(out, "target", r.target);
    append_text(out, "route", r.route);
    append_number(out, "status", static_cast<unsigned long long>(r.status < 0 ? 0 : r.status));
    if (r.what == kind::websocket) {
        append_number(out, "close_code", static_cast<unsigned long long>(r.close_code));
    }
    const long long us = r.duration.count() < 0 ? 0 : r.duration.count();
    char duration[32];
    std::snprintf(duration, sizeof duration, "%lld.%03lld", us / 1000, us % 1000);
    out += ",\"duration_ms\":";
    out += duration;
    append_number(out, "bytes_received", r.bytes_received);
    append_number(out, "bytes_sent", r.bytes_sent);
    append_text(out, "client_address", r.client_address);
    append_text(out, "player_id", r.player_id);
    return out;
}

std::string audit_json_members(const gatehouse::audit_record& r) {
    std::string out = "\"msg\":";
    append_json_string(out, "audit " + std::string(r.event));
    out += ",\"kind\":\"audit\"";
    append_text(out, "event", r.event);
    append_text(out, "username", r.username);
    append_text(out, "player_id", r.player_id);
    append_text(out, "client_address", r.client_address);
    append_text(out, "detail", r.detail);
    return out;
}

log_output::log_output(log_format format, const std::string& level) : format_(format) {
    std::shared_ptr<spdlog::sinks::sink> sink;
    if (format == log_format::json) {
        // No colours: escape codes would be part of the JSON text.
        sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        sink->set_formatter(std::make_unique<json_formatter>());
    } else {
        sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
        sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
            "%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc));
    }
    // Not registered in spdlog's global registry: nothing else of the process finds them.
    logger_ = std::make_shared<spdlog::logger>("gatehouse", sink);
    records_ = std::make_shared<spdlog::logger>(std::string(records_logger), sink);
    for (const auto& l : {logger_, records_}) {
        l->set_level(spdlog::level::from_str(level));
        l->flush_on(spdlog::level::info);
        l->set_error_handler(
            [format](const std::string& what) { report_spdlog_error(format, what); });
    }
}

gatehouse::log_sink log_output::sink() const {
    // The logger's own level (--log-level) filters.
    return gatehouse::spdlog_log_sink(logger_, gatehouse::log_level::debug);
}

gatehouse::access_log_sink log_output::access_sink() const {
    if (!records_->should_log(spdlog::level::info)) return {};
    if (format_ == log_format::text) return gatehouse::spdlog_access_log_sink(logger_);
    return [records = records_](const gatehouse::access_record& r) {
        const std::string members = access_json_members(r);
        records->log(spdlog::level::info, spdlog::string_view_t(members.data(), members.size()));
    };
}

gatehouse::audit_sink log_output::audit_sink() const {
    if (format_ == log_format::text) return gatehouse::spdlog_audit_sink(logger_);
    return [records = records_](const gatehouse::audit_record& r) {
        if (!records->should_log(spdlog::level::warn)) return;
        const std::string members = audit_json_members(r);
        records->log(spdlog::level::warn, spdlog::string_view_t(members.data(), members.size()));
    };
}

}  // namespace gatehouse_server
