#pragma once
// The listener of a gateway, independent of whether it speaks TLS: the two websocketpp
// server types (plain and TLS) differ in their config type only, and this interface keeps
// that template out of the rest of the gateway.

#include <memory>
#include <string>
#include <system_error>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>

namespace gatehouse::detail {

class gateway_core;

class transport_server {
public:
    virtual ~transport_server() = default;
    // Binds and starts accepting. Call before the I/O threads run.
    virtual std::error_code listen(const asio::ip::tcp::endpoint& endpoint) = 0;
    // The bound endpoint.
    virtual asio::ip::tcp::endpoint local_endpoint() const = 0;
    // Closes the listening socket. Asio's acceptor is not safe to close while an I/O thread
    // may be re-arming it, so call this only when no I/O thread runs.
    virtual void stop_listening() = 0;
};

std::unique_ptr<transport_server> make_plain_server(gateway_core& core, asio::io_context& io);
std::unique_ptr<transport_server> make_tls_server(gateway_core& core, asio::io_context& io,
                                                  std::shared_ptr<asio::ssl::context> tls);

}  // namespace gatehouse::detail
