#pragma once
/// @file
/// `command_bus`: where the gateway puts the commands it accepts (docs/protocol.md section 4).

#include <functional>
#include <string_view>
#include <system_error>

#include "gatehouse/envelope.hpp"

namespace gatehouse {

/// Called once per `append()`: with the bus's entry id (e.g. `"1700000000000-0"`) when the
/// bus holds the command, or with an error (typically `errc::bus_unavailable`) when it was
/// not accepted. `entry_id` is valid only during the call.
using append_handler = std::function<void(std::error_code error, std::string_view entry_id)>;

/// The command bus: an append-only stream of accepted commands that backend services read.
///
/// The gateway acks a client's command only when `done` reports an entry id, so an
/// implementation calls it with success only once the command is durably on the bus as far
/// as that bus promises (for Redis: XADD answered).
///
/// Each entry carries docs/protocol.md section 4's fields: `type`, `payload` with `codec`
/// (`json`, `msgpack`, or `protobuf` for `payload_format::bytes`), `correlation_id`, and
/// from `command.origin`: `player_id`, `connection_id`, `client`, `ts_ms`; plus the
/// gateway id the implementation was configured with.
///
/// Thread safety: `append` and `connected` may be called from any thread concurrently.
/// `done` may run on the calling thread before `append` returns, or later on a thread of
/// the bus's choosing; it must not block.
class command_bus {
public:
    virtual ~command_bus() = default;

    /// Appends `command`; calls `done` exactly once, also when the bus is being destroyed.
    /// `command` is valid only during the call (the gateway reuses it for the connection's
    /// next message): an implementation copies or formats what it needs before returning.
    virtual void append(const envelope& command, append_handler done) = 0;

    /// True while `append` can succeed; drives `GET /ready`.
    virtual bool connected() const noexcept = 0;
};

/// The `codec` field value for a payload format: `json`, `msgpack` or `protobuf`.
std::string_view bus_codec_name(payload_format format) noexcept;

/// The `client` field value for a client kind: `player`, `bot` or `system`.
std::string_view bus_client_name(client_kind client) noexcept;

}  // namespace gatehouse
