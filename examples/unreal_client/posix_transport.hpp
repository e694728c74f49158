#pragma once
// posix_transport: `transport` on a POSIX TCP socket (Linux, macOS), non-blocking once
// connected. What an engine build replaces with its socket subsystem.

#include <cstddef>
#include <cstdint>
#include <string>

#include "transport.hpp"

namespace gh_client {

/// Thread safety: none (see `transport`). Lifetime: the destructor closes the socket.
class posix_transport final : public transport {
public:
    posix_transport() = default;
    ~posix_transport() override { close(); }
    posix_transport(const posix_transport&) = delete;
    posix_transport& operator=(const posix_transport&) = delete;

    bool connect(const std::string& host, std::uint16_t port, int timeout_ms) override;
    io_result send(const char* data, std::size_t size, std::size_t& moved) override;
    io_result receive(char* data, std::size_t capacity, std::size_t& moved) override;
    void close() override;

private:
    int fd_ = -1;
};

}  // namespace gh_client
