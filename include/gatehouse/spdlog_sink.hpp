#pragma once
/// @file
/// Header-only adapters from the library's log, access-log and audit sinks to an
/// `spdlog::logger`, for embedders who log with spdlog. The library itself does not link
/// spdlog: this header compiles only where the embedder includes and links spdlog.
///
/// ```cpp
/// auto logger = spdlog::stderr_color_mt("game");
/// gatehouse::gateway_options options;
/// options.log = gatehouse::spdlog_log_sink(logger, gatehouse::log_level::info);
/// options.access_log = gatehouse::spdlog_access_log_sink(logger);
/// ```

#include <spdlog/logger.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "gatehouse/log.hpp"

namespace gatehouse {

/// The spdlog level of a `log_level` (`warn` is `spdlog::level::warn`, `error` is `err`).
inline spdlog::level::level_enum to_spdlog_level(log_level level) noexcept {
    switch (level) {
        case log_level::debug: return spdlog::level::debug;
        case log_level::info: return spdlog::level::info;
        case log_level::warn: return spdlog::level::warn;
        case log_level::error: return spdlog::level::err;
    }
    return spdlog::level::err;
}

/// A `log_sink` writing each message at or above `min` to `logger` (which filters by its own
/// level too). The message is logged as it is, never read as a format string.
/// Thread safety: as `logger` (spdlog's `_mt` loggers may be called from any thread).
/// Lifetime: the sink shares ownership of `logger`.
inline log_sink spdlog_log_sink(std::shared_ptr<spdlog::logger> logger,
                                log_level min = log_level::info) {
    return [logger = std::move(logger), min](log_level level, std::string_view message) {
        if (level < min) return;
        const auto l = to_spdlog_level(level);
        if (!logger->should_log(l)) return;
        logger->log(l, spdlog::string_view_t(message.data(), message.size()));
    };
}

/// An `access_log_sink` writing each record as `access_line` at `level` (default info).
/// Thread safety and lifetime: as `spdlog_log_sink`.
inline access_log_sink spdlog_access_log_sink(std::shared_ptr<spdlog::logger> logger,
                                              log_level level = log_level::info) {
    return [logger = std::move(logger), l = to_spdlog_level(level)](const access_record& r) {
        if (!logger->should_log(l)) return;
        const std::string line = access_line(r);
        logger->log(l, spdlog::string_view_t(line.data(), line.size()));
    };
}

/// An `audit_sink` writing each record as `audit_line` at `level` (default warn).
/// Thread safety and lifetime: as `spdlog_log_sink`.
inline audit_sink spdlog_audit_sink(std::shared_ptr<spdlog::logger> logger,
                                    log_level level = log_level::warn) {
    return [logger = std::move(logger), l = to_spdlog_level(level)](const audit_record& r) {
        if (!logger->should_log(l)) return;
        const std::string line = audit_line(r);
        logger->log(l, spdlog::string_view_t(line.data(), line.size()));
    };
}

}  // namespace gatehouse
