#pragma once
// The reference server's log output on stderr (--log-format, --log-level): one line per event,
// timestamps in UTC (ISO 8601 with milliseconds and `Z`), as text or as one JSON object per
// line. The library's messages, the access records (`"kind":"access"`) and the audit records
// (`"kind":"audit"`, at warn) all go through one spdlog sink, so lines never interleave, and
// spdlog's own error reports are written in the same format. The ready line is not a log line:
// it stays on stdout (main.cpp).

#include <spdlog/logger.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "gatehouse/log.hpp"

namespace gatehouse_server {

enum class log_format { text, json };

// `text` or `json` (the flag's values; anything else is text).
log_format parse_log_format(std::string_view name) noexcept;

// The library's (log.hpp): valid UTF-8 as it is, invalid bytes as U+FFFD.
using gatehouse::append_json_string;

// `2026-12-07T04:40:00.123Z`.
void append_utc_timestamp(std::string& out, std::chrono::system_clock::time_point at);

// The members after `ts` and `level` of an access or audit line in JSON, without braces:
// `"msg":"GET /health 200","kind":"access","type":"http","method":"GET",...`.
std::string access_json_members(const gatehouse::access_record& record);
std::string audit_json_members(const gatehouse::audit_record& record);

// The server's loggers. Thread safety: every member may be called from any thread.
class log_output {
public:
    // `level`: an spdlog level name (--log-level).
    log_output(log_format format, const std::string& level);

    // Where main.cpp writes its own lines.
    const std::shared_ptr<spdlog::logger>& logger() const noexcept { return logger_; }
    // For gateway_options::log and the other components' `log`.
    gatehouse::log_sink sink() const;
    // For gateway_options::access_log: empty when info lines are not logged at all, so that
    // the gateway builds no records for nothing.
    gatehouse::access_log_sink access_sink() const;
    // For accounts_options::audit (warn).
    gatehouse::audit_sink audit_sink() const;

private:
    log_format format_;
    std::shared_ptr<spdlog::logger> logger_;
    // The same sink, for records whose JSON members are already written (`ts` and `level` are
    // added by the formatter).
    std::shared_ptr<spdlog::logger> records_;
};

}  // namespace gatehouse_server
