#pragma once
// transport: the byte stream under the WebSocket and HTTP code. This example implements it on
// POSIX sockets (posix_transport.hpp); inside an engine it wraps the engine's socket subsystem
// (Unreal: an FSocket from ISocketSubsystem, with ESocketConnectionState for `connected`), and
// nothing above it changes.

#include <cstddef>
#include <cstdint>
#include <string>

namespace gh_client {

/// What a non-blocking send or receive came to.
enum class io_result : std::uint8_t {
    ok,           ///< Some bytes moved (`moved` says how many, at least 1).
    would_block,  ///< Nothing to read, or no room to write, right now: try again next tick.
    closed,       ///< The peer closed the connection (receive only).
    error,        ///< The connection is broken.
};

/// A TCP connection whose sends and receives never block.
///
/// Thread safety: none; one game thread drives it (from a session's tick).
class transport {
public:
    virtual ~transport() = default;
    /// Connects to `host:port`, waiting at most `timeout_ms`; false when that failed. The only
    /// call that may block (engines connect on a worker or with a timeout as well).
    virtual bool connect(const std::string& host, std::uint16_t port, int timeout_ms) = 0;
    /// Writes up to `size` bytes of `data`.
    virtual io_result send(const char* data, std::size_t size, std::size_t& moved) = 0;
    /// Reads up to `capacity` bytes into `data`.
    virtual io_result receive(char* data, std::size_t capacity, std::size_t& moved) = 0;
    /// Closes the connection (idempotent).
    virtual void close() = 0;
};

}  // namespace gh_client
